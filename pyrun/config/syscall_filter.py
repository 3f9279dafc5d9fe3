"""``linux.seccomp`` (config-linux.md "Seccomp") parsed into records, once,
when config.json is loaded: the system call filter as the config states it.

Every check that needs nothing but the JSON is made here, each error a
:class:`~pyrun.errors.ConfigError` naming the field
(``linux.seccomp.syscalls[3].action``): the names of actions, operators,
architectures and flags; ``errnoRet`` only with the actions that return it;
``SCMP_ACT_NOTIFY`` never the default, never for ``write``, and only with a
``listenerPath``. What depends on the host -- whether this libseccomp knows
an architecture or a system call, whether this kernel takes a flag -- is
:mod:`pyrun.security.seccomp`'s, which compiles these records into a
filter before any container process exists.

As runc's specconv turns the spec's ``LinuxSeccomp`` into a
``configs.Seccomp``: nothing below the config model reads the JSON.
"""

from __future__ import annotations

from pyrun.config.jsontypes import UINT16_MAX, UINT64_MAX, check, get, integer
from pyrun.errors import ConfigError
from pyrun.record import field, record

BASE = "linux.seccomp"

#: The actions without a value, and those that return ``errnoRet`` (EPERM when unset).
FIXED_ACTIONS = ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP",
                 "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY")
VALUE_ACTIONS = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")
ACTIONS = sorted([*FIXED_ACTIONS, *VALUE_ACTIONS])

#: The comparisons of an argument (seccomp_rule_add(3)).
OPERATORS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
             "SCMP_CMP_MASKED_EQ")

#: The runtime-spec's architectures; libseccomp's name is the lowercased
#: suffix (seccomp_arch_resolve_name(3)). Those this libseccomp lacks are
#: refused when the filter is compiled.
ARCHS = [
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64", "SCMP_ARCH_LOONGARCH64",
]

#: seccomp(2) filter flags pyrun can set (through a libseccomp attribute each).
#: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs libseccomp >= 2.6: unknown here.
FLAGS = ("SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_LOG")

MAX_ARGS = 6  # system calls have at most six arguments


@record(frozen=True)
class Arg:
    """One comparison: argument ``index`` ``op`` ``value`` (for
    SCMP_CMP_MASKED_EQ: ``(arg & value) == value_two``)."""

    index: int
    op: str
    value: int
    value_two: int


@record
class Rule:
    """One entry of ``syscalls``: the action for these names (and arguments)."""

    names: list[str]
    action: str
    errno_ret: int | None  # for SCMP_ACT_ERRNO and SCMP_ACT_TRACE only
    args: list[Arg]
    path: str  # linux.seccomp.syscalls[i], for the errors found when compiling


@record
class Seccomp:
    """``linux.seccomp``, checked."""

    default_action: str
    default_errno_ret: int | None = None
    architectures: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    listener_path: str | None = None
    listener_metadata: str = ""
    syscalls: list[Rule] = field(default_factory=list)


def _action(obj: dict, key: str, errno_key: str, path: str) -> tuple[str, int | None]:
    """obj[key], an action's name, with obj[errno_key] where it may be given."""
    name = get(obj, key, str, path, required=True)
    ret = integer(obj, errno_key, path, 0, UINT16_MAX)
    if name in VALUE_ACTIONS:
        return name, ret
    if name not in FIXED_ACTIONS:
        raise ConfigError(f"{path}.{key}", f"unknown action {name!r} (expected one of {', '.join(ACTIONS)})")
    if ret is not None:
        raise ConfigError(f"{path}.{errno_key}",
                          f"is only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {name}")
    return name, None


def _arg(obj: dict, path: str) -> Arg:
    index = integer(obj, "index", path, 0, MAX_ARGS - 1, required=True)
    value = integer(obj, "value", path, 0, UINT64_MAX, required=True)
    value_two = integer(obj, "valueTwo", path, 0, UINT64_MAX) or 0
    op = get(obj, "op", str, path, required=True)
    if op not in OPERATORS:
        raise ConfigError(f"{path}.op", f"unknown operator {op!r} (expected one of {', '.join(OPERATORS)})")
    return Arg(index, op, value, value_two)  # type: ignore[arg-type]


def _rule(obj: dict, path: str) -> Rule:
    names = get(obj, "names", list, path, required=True)
    if not names:
        raise ConfigError(f"{path}.names", "must contain at least one name")
    for j, name in enumerate(names):
        check(name, str, f"{path}.names[{j}]")
        if not name or "\0" in name:
            raise ConfigError(f"{path}.names[{j}]", f"invalid system call name {name!r}")
    action, errno_ret = _action(obj, "action", "errnoRet", path)
    args = []
    for k, item in enumerate(get(obj, "args", list, path) or []):
        arg_path = f"{path}.args[{k}]"
        args.append(_arg(check(item, dict, arg_path), arg_path))
    return Rule(list(names), action, errno_ret, args, path)


def _names(seccomp: dict, key: str, known, base: str, unknown) -> list[str]:
    """A list of strings at ``key``, each one of ``known``; ``unknown(name)``
    words the error for one that is not."""
    out = []
    for i, name in enumerate(get(seccomp, key, list, base) or []):
        path = f"{base}.{key}[{i}]"
        check(name, str, path)
        if name not in known:
            raise ConfigError(path, unknown(name))
        out.append(name)
    return out


def parse(seccomp, base: str = BASE) -> Seccomp:
    """``linux.seccomp`` -> :class:`Seccomp`. Raises :class:`ConfigError`."""
    seccomp = check(seccomp, dict, base)
    if seccomp.get("defaultAction") == "SCMP_ACT_NOTIFY":
        raise ConfigError(f"{base}.defaultAction", "SCMP_ACT_NOTIFY cannot be the default action")
    default, default_ret = _action(seccomp, "defaultAction", "defaultErrnoRet", base)

    archs = _names(seccomp, "architectures", ARCHS, base, lambda a: f"unknown architecture {a!r}")
    flags = _names(seccomp, "flags", FLAGS, base,
                   lambda f: f"unknown or unsupported flag {f!r} (known: {', '.join(FLAGS)})")

    listener_path = get(seccomp, "listenerPath", str, base) or None
    if listener_path is not None and "\0" in listener_path:
        raise ConfigError(f"{base}.listenerPath", "must not contain a nul byte")
    metadata = get(seccomp, "listenerMetadata", str, base) or ""

    rules = []
    for i, item in enumerate(get(seccomp, "syscalls", list, base) or []):
        path = f"{base}.syscalls[{i}]"
        rule = _rule(check(item, dict, path), path)
        if rule.action == "SCMP_ACT_NOTIFY":
            if listener_path is None:
                raise ConfigError(f"{base}.listenerPath", f"is required by SCMP_ACT_NOTIFY in {path}")
            if "write" in rule.names:
                j = rule.names.index("write")
                raise ConfigError(f"{path}.names[{j}]", "SCMP_ACT_NOTIFY cannot be used for write")
        rules.append(rule)
    return Seccomp(default, default_ret, archs, flags, listener_path, metadata, rules)
