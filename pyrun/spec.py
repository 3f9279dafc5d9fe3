"""The bundle's config.json: load it, type-check it, turn it into records.

Pure logic (no syscalls beyond reading the file) and cheap to import.  Every
problem is a :class:`~pyrun.errors.ConfigError` naming the JSON path of the
offending field (``process.args[0]``, ``linux.namespaces[2].type``,
``annotations["key"]``) and saying what was expected.

Conventions, chosen to match how runc (Go's encoding/json) reads the file:

* an absent key and ``null`` mean the same thing: "not set";
* an empty string means "not set" for optional strings whose Go zero value
  is meaningful to runc (hostname, namespace path, cgroupsPath, ...);
* unknown keys, at any depth, are ignored (forward compatibility);
* integers must be JSON integers (no ``1.0``, no ``true``) within the range
  of the Go type the spec uses (uint32, int64, ...).

References are to the OCI runtime spec: config.md and config-linux.md.
"""

from __future__ import annotations

import os

from pyrun.defaults import default_spec
from pyrun.errors import ConfigError
from pyrun.jsonio import quote as _quote
from pyrun.record import field, record

__all__ = [
    "CAPABILITIES",
    "RLIMITS",
    "NAMESPACE_TYPES",
    "ROOTFS_PROPAGATIONS",
    "IDMapping",
    "User",
    "Rlimit",
    "Capabilities",
    "Process",
    "Root",
    "Mount",
    "Namespace",
    "Device",
    "Hook",
    "Hooks",
    "Linux",
    "Spec",
    "load",
    "parse",
    "require_process",
    "default_spec",
    "validate_id",
]

# --------------------------------------------------------------------------
# Known names
# --------------------------------------------------------------------------

#: Capability name -> number (linux/capability.h), up to CAP_CHECKPOINT_RESTORE.
CAPABILITIES: dict[str, int] = {
    name: number
    for number, name in enumerate(
        [
            "CAP_CHOWN",
            "CAP_DAC_OVERRIDE",
            "CAP_DAC_READ_SEARCH",
            "CAP_FOWNER",
            "CAP_FSETID",
            "CAP_KILL",
            "CAP_SETGID",
            "CAP_SETUID",
            "CAP_SETPCAP",
            "CAP_LINUX_IMMUTABLE",
            "CAP_NET_BIND_SERVICE",
            "CAP_NET_BROADCAST",
            "CAP_NET_ADMIN",
            "CAP_NET_RAW",
            "CAP_IPC_LOCK",
            "CAP_IPC_OWNER",
            "CAP_SYS_MODULE",
            "CAP_SYS_RAWIO",
            "CAP_SYS_CHROOT",
            "CAP_SYS_PTRACE",
            "CAP_SYS_PACCT",
            "CAP_SYS_ADMIN",
            "CAP_SYS_BOOT",
            "CAP_SYS_NICE",
            "CAP_SYS_RESOURCE",
            "CAP_SYS_TIME",
            "CAP_SYS_TTY_CONFIG",
            "CAP_MKNOD",
            "CAP_LEASE",
            "CAP_AUDIT_WRITE",
            "CAP_AUDIT_CONTROL",
            "CAP_SETFCAP",
            "CAP_MAC_OVERRIDE",
            "CAP_MAC_ADMIN",
            "CAP_SYSLOG",
            "CAP_WAKE_ALARM",
            "CAP_BLOCK_SUSPEND",
            "CAP_AUDIT_READ",
            "CAP_PERFMON",
            "CAP_BPF",
            "CAP_CHECKPOINT_RESTORE",
        ]
    )
}

#: Rlimit name -> resource number (asm-generic/resource.h: x86, arm, arm64,
#: riscv, s390, ppc; alpha/mips/sparc number a few differently).
RLIMITS: dict[str, int] = {
    name: number
    for number, name in enumerate(
        [
            "RLIMIT_CPU",
            "RLIMIT_FSIZE",
            "RLIMIT_DATA",
            "RLIMIT_STACK",
            "RLIMIT_CORE",
            "RLIMIT_RSS",
            "RLIMIT_NPROC",
            "RLIMIT_NOFILE",
            "RLIMIT_MEMLOCK",
            "RLIMIT_AS",
            "RLIMIT_LOCKS",
            "RLIMIT_SIGPENDING",
            "RLIMIT_MSGQUEUE",
            "RLIMIT_NICE",
            "RLIMIT_RTPRIO",
            "RLIMIT_RTTIME",
        ]
    )
}

#: config-linux.md "Namespaces": the types a runtime may be asked for.
NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")

#: config-linux.md "Rootfs Mount Propagation" plus the recursive forms runc accepts.
ROOTFS_PROPAGATIONS = (
    "shared",
    "slave",
    "private",
    "unbindable",
    "rshared",
    "rslave",
    "rprivate",
    "runbindable",
)

DEVICE_TYPES = ("c", "b", "u", "p")

HOOK_KINDS = (
    ("prestart", "prestart"),
    ("createRuntime", "create_runtime"),
    ("createContainer", "create_container"),
    ("startContainer", "start_container"),
    ("poststart", "poststart"),
    ("poststop", "poststop"),
)

UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# Sysctls namespaced by the IPC namespace (runc's validator list).
_IPC_SYSCTLS = frozenset(
    {
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    }
)

# --------------------------------------------------------------------------
# Dataclasses
# --------------------------------------------------------------------------


@record
class IDMapping:
    """One uid/gid map line (config-linux.md "User namespace mappings")."""

    container_id: int
    host_id: int
    size: int


@record
class User:
    """The process's identity (config.md "POSIX process", ``user``)."""

    uid: int = 0
    gid: int = 0
    umask: int | None = None
    additional_gids: list[int] = field(default_factory=list)


@record
class Rlimit:
    """A setrlimit(2) entry (config.md "POSIX process", ``rlimits``)."""

    type: str
    soft: int
    hard: int


@record
class Capabilities:
    """The five capability sets (config.md "Linux process", ``capabilities``)."""

    bounding: list[str] = field(default_factory=list)
    effective: list[str] = field(default_factory=list)
    inheritable: list[str] = field(default_factory=list)
    permitted: list[str] = field(default_factory=list)
    ambient: list[str] = field(default_factory=list)


@record
class Process:
    """The container process (config.md "Process").

    ``console_size`` is ``(height, width)``.
    """

    args: list[str]
    env: list[str] = field(default_factory=list)
    cwd: str = "/"
    user: User = field(default_factory=User)
    terminal: bool = False
    console_size: tuple[int, int] | None = None
    rlimits: list[Rlimit] = field(default_factory=list)
    no_new_privileges: bool = False
    oom_score_adj: int | None = None
    capabilities: Capabilities | None = None
    apparmor_profile: str | None = None
    selinux_label: str | None = None
    # runtime-spec 1.1-1.3 (pyrun.spec13's records)
    scheduler: object = None
    io_priority: object = None
    exec_cpu_affinity: object = None


@record
class Root:
    """The root filesystem (config.md "Root"); ``path`` is absolute."""

    path: str
    readonly: bool = False


@record
class Mount:
    """One entry of ``mounts`` (config.md "Mounts"), in listed order."""

    destination: str
    type: str | None = None
    source: str | None = None
    options: list[str] = field(default_factory=list)
    # an idmapped mount (runtime-spec 1.1, pyrun.mount_attrs)
    uid_mappings: list[IDMapping] = field(default_factory=list)
    gid_mappings: list[IDMapping] = field(default_factory=list)


@record
class Namespace:
    """A namespace to create, or join when ``path`` is set (config-linux.md "Namespaces")."""

    type: str
    path: str | None = None


@record
class Device:
    """A device node to create (config-linux.md "Devices"); type c, b, u or p."""

    type: str
    path: str
    major: int = 0
    minor: int = 0
    file_mode: int | None = None
    uid: int | None = None
    gid: int | None = None


@record
class Hook:
    """One hook command (config.md "POSIX-platform Hooks")."""

    path: str
    args: list[str] = field(default_factory=list)
    env: list[str] | None = None   # None (absent): the environment runc would give (hooks.run)
    timeout: int | None = None


@record
class Hooks:
    """All hook lists (config.md "POSIX-platform Hooks"); prestart is deprecated."""

    prestart: list[Hook] = field(default_factory=list)
    create_runtime: list[Hook] = field(default_factory=list)
    create_container: list[Hook] = field(default_factory=list)
    start_container: list[Hook] = field(default_factory=list)
    poststart: list[Hook] = field(default_factory=list)
    poststop: list[Hook] = field(default_factory=list)


@record
class Linux:
    """The ``linux`` object (config-linux.md).

    ``resources`` and ``seccomp`` are kept as the raw JSON objects: the
    cgroup and seccomp code interpret them.
    """

    namespaces: list[Namespace] = field(default_factory=list)
    uid_mappings: list[IDMapping] = field(default_factory=list)
    gid_mappings: list[IDMapping] = field(default_factory=list)
    devices: list[Device] = field(default_factory=list)
    cgroups_path: str | None = None
    resources: dict | None = None
    rootfs_propagation: str | None = None
    masked_paths: list[str] = field(default_factory=list)
    readonly_paths: list[str] = field(default_factory=list)
    sysctl: dict[str, str] = field(default_factory=dict)
    seccomp: dict | None = None
    mount_label: str | None = None
    # runtime-spec 1.1-1.3 (pyrun.spec13's records)
    time_offsets: dict[str, tuple[int, int]] = field(default_factory=dict)
    personality: object = None
    memory_policy: object = None
    net_devices: dict[str, str] = field(default_factory=dict)
    intel_rdt: dict | None = None


@record
class Spec:
    """A parsed config.json (config.md).

    ``bundle`` is the absolute bundle directory; ``raw`` is the JSON object
    as read, for fields this module does not model.
    """

    oci_version: str
    bundle: str
    root: Root
    process: Process | None = None
    hostname: str | None = None
    domainname: str | None = None
    mounts: list[Mount] = field(default_factory=list)
    linux: Linux = field(default_factory=Linux)
    hooks: Hooks = field(default_factory=Hooks)
    annotations: dict[str, str] = field(default_factory=dict)
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    def namespace(self, type: str) -> Namespace | None:
        """The ``linux.namespaces`` entry of that type, or None."""
        for ns in self.linux.namespaces:
            if ns.type == type:
                return ns
        return None

    def has_namespace(self, type: str) -> bool:
        """True when a namespace of that type is created or joined."""
        return self.namespace(type) is not None


# --------------------------------------------------------------------------
# Type-checking helpers
# --------------------------------------------------------------------------

_EXPECTED = {
    str: "a string",
    int: "an integer",
    bool: "a boolean",
    list: "an array",
    dict: "an object",
}


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _join(base: str, key: str) -> str:
    return f"{base}.{key}" if base else key


def _key(base: str, key: str) -> str:
    """Path of a map entry: ``annotations["a.b"]``."""
    return f"{base}[{_quote(key)}]"


def _q(text: str) -> str:
    """Quote a value for a message, keeping it on one line."""
    return _quote(text)


def _check(value: object, kind: type, path: str) -> None:
    # bool is a subclass of int in Python; JSON true is not a number.
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise ConfigError(path, f"expected {_EXPECTED[kind]}, got {_type_name(value)}")


def _get(obj: dict, key: str, kind: type, path: str, required: bool = False):
    """obj[key] checked against kind; None when absent or null."""
    value = obj.get(key)
    if value is None:
        if required:
            raise ConfigError(_join(path, key), "is required")
        return None
    _check(value, kind, _join(path, key))
    return value


def _int_value(value: object, path: str, lo: int, hi: int) -> int:
    _check(value, int, path)
    if not lo <= value <= hi:  # type: ignore[operator]
        raise ConfigError(path, f"expected an integer between {lo} and {hi}, got {value}")
    return value  # type: ignore[return-value]


def _int(obj: dict, key: str, path: str, lo: int, hi: int, required: bool = False) -> int | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise ConfigError(_join(path, key), "is required")
        return None
    return _int_value(value, _join(path, key), lo, hi)


def _req_int(obj: dict, key: str, path: str, lo: int, hi: int) -> int:
    value = _int(obj, key, path, lo, hi, required=True)
    assert value is not None
    return value


def _bool(obj: dict, key: str, path: str) -> bool:
    value = _get(obj, key, bool, path)
    return bool(value)


def _opt_str(obj: dict, key: str, path: str) -> str | None:
    """An optional string where "" means unset (Go's zero value)."""
    value = _get(obj, key, str, path)
    return value or None


def _no_nul(value: str, path: str) -> None:
    if "\0" in value:
        raise ConfigError(path, "must not contain a nul byte")


def _abs_path(value: str, path: str) -> None:
    _no_nul(value, path)
    if not value.startswith("/"):
        raise ConfigError(path, f"expected an absolute path, got {_q(value)}")


def _list(obj: dict, key: str, path: str) -> list:
    value = _get(obj, key, list, path)
    return value if value is not None else []


def _str_list(obj: dict, key: str, path: str) -> list[str]:
    items = _list(obj, key, path)
    base = _join(path, key)
    for i, item in enumerate(items):
        _check(item, str, f"{base}[{i}]")
    return list(items)


def _objects(obj: dict, key: str, path: str):
    """Yield (item, item_path) for a list of objects."""
    base = _join(path, key)
    for i, item in enumerate(_list(obj, key, path)):
        item_path = f"{base}[{i}]"
        _check(item, dict, item_path)
        yield item, item_path


def _str_map(obj: dict, key: str, path: str) -> dict[str, str]:
    value = _get(obj, key, dict, path)
    if value is None:
        return {}
    base = _join(path, key)
    for k, v in value.items():
        _check(v, str, _key(base, k))
    return dict(value)


# --------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------


def _parse_root(data: dict, bundle: str) -> Root:
    root = _get(data, "root", dict, "", required=True)
    path = _get(root, "path", str, "root", required=True)
    if not path:
        raise ConfigError("root.path", "must not be empty")
    _no_nul(path, "root.path")
    # config.md "Root": a relative path is relative to the bundle.
    return Root(
        path=os.path.normpath(os.path.join(bundle, path)),
        readonly=_bool(root, "readonly", "root"),
    )


def _parse_env(obj: dict, key: str, path: str) -> list[str]:
    env = _str_list(obj, key, path)
    base = _join(path, key)
    for i, entry in enumerate(env):
        name, sep, _ = entry.partition("=")
        if not sep:
            raise ConfigError(f"{base}[{i}]", f"expected KEY=value, got {_q(entry)} (missing '=')")
        if not name:
            raise ConfigError(f"{base}[{i}]", f"expected KEY=value, got {_q(entry)} (empty name)")
        _no_nul(entry, f"{base}[{i}]")
    return env


def _parse_user(proc: dict) -> User:
    user = _get(proc, "user", dict, "process")
    if user is None:
        return User()
    p = "process.user"
    gids = []
    base = _join(p, "additionalGids")
    for i, g in enumerate(_list(user, "additionalGids", p)):
        gids.append(_int_value(g, f"{base}[{i}]", 0, UINT32_MAX))
    return User(
        uid=_int(user, "uid", p, 0, UINT32_MAX) or 0,
        gid=_int(user, "gid", p, 0, UINT32_MAX) or 0,
        umask=_int(user, "umask", p, 0, UINT32_MAX),
        additional_gids=gids,
    )


def _parse_rlimits(proc: dict) -> list[Rlimit]:
    out: list[Rlimit] = []
    seen: dict[str, str] = {}
    for item, p in _objects(proc, "rlimits", "process"):
        rtype = _get(item, "type", str, p, required=True)
        if rtype not in RLIMITS:
            raise ConfigError(
                _join(p, "type"),
                f"unknown rlimit type {_q(rtype)}: expected one of {', '.join(RLIMITS)}",
            )
        if rtype in seen:
            raise ConfigError(
                _join(p, "type"), f"duplicate rlimit type {_q(rtype)} (first at {seen[rtype]})"
            )
        seen[rtype] = p
        soft = _req_int(item, "soft", p, 0, UINT64_MAX)
        hard = _req_int(item, "hard", p, 0, UINT64_MAX)
        if soft > hard:
            raise ConfigError(p, f"soft limit {soft} is greater than hard limit {hard}")
        out.append(Rlimit(type=rtype, soft=soft, hard=hard))
    return out


def _parse_capabilities(proc: dict) -> Capabilities | None:
    caps = _get(proc, "capabilities", dict, "process")
    if caps is None:
        return None
    p = "process.capabilities"
    sets = {}
    for name in ("bounding", "effective", "inheritable", "permitted", "ambient"):
        names = _str_list(caps, name, p)
        for i, cap in enumerate(names):
            if cap not in CAPABILITIES:
                raise ConfigError(
                    f"{p}.{name}[{i}]",
                    f"unknown capability {_q(cap)}: expected a name like CAP_KILL "
                    f"(CAP_CHOWN ... CAP_CHECKPOINT_RESTORE)",
                )
        sets[name] = names
    return Capabilities(**sets)


def _parse_process(data: dict) -> Process | None:
    proc = _get(data, "process", dict, "")
    if proc is None:
        return None
    p = "process"

    args = _str_list(proc, "args", p)
    if "args" not in proc or proc["args"] is None:
        raise ConfigError("process.args", "is required")
    if not args:
        raise ConfigError("process.args", "must contain at least one entry")
    if not args[0]:
        raise ConfigError("process.args[0]", "must not be empty")
    for i, a in enumerate(args):
        _no_nul(a, f"process.args[{i}]")

    cwd = _get(proc, "cwd", str, p, required=True)
    if not cwd:
        raise ConfigError("process.cwd", "must not be empty")
    _abs_path(cwd, "process.cwd")

    console_size = None
    box = _get(proc, "consoleSize", dict, p)
    if box is not None:
        bp = "process.consoleSize"
        console_size = (
            _req_int(box, "height", bp, 0, UINT32_MAX),
            _req_int(box, "width", bp, 0, UINT32_MAX),
        )

    extra = {}
    if _NEW_PROCESS_KEYS.intersection(proc):
        from pyrun import spec13

        extra = dict(scheduler=spec13.parse_scheduler(proc), io_priority=spec13.parse_io_priority(proc),
                     exec_cpu_affinity=spec13.parse_exec_cpu_affinity(proc))
    return Process(
        args=args,
        env=_parse_env(proc, "env", p),
        cwd=cwd,
        user=_parse_user(proc),
        terminal=_bool(proc, "terminal", p),
        console_size=console_size,
        rlimits=_parse_rlimits(proc),
        no_new_privileges=_bool(proc, "noNewPrivileges", p),
        oom_score_adj=_int(proc, "oomScoreAdj", p, -1000, 1000),
        capabilities=_parse_capabilities(proc),
        apparmor_profile=_opt_str(proc, "apparmorProfile", p),
        selinux_label=_opt_str(proc, "selinuxLabel", p),
        **extra,
    )


# Keys added by runtime-spec 1.1-1.3, parsed by pyrun.spec13 (imported only when present).
_NEW_PROCESS_KEYS = frozenset(("scheduler", "ioPriority", "execCPUAffinity"))
_NEW_LINUX_KEYS = frozenset(("timeOffsets", "personality", "memoryPolicy", "netDevices", "intelRdt"))


def _parse_mounts(data: dict) -> list[Mount]:
    out = []
    for item, p in _objects(data, "mounts", ""):
        dest = _get(item, "destination", str, p, required=True)
        # config.md "Mounts": destination MUST be absolute.  (runc still
        # accepts relative ones with a deprecation warning; we do not.)
        _abs_path(dest, _join(p, "destination"))
        mtype = _get(item, "type", str, p)
        source = _get(item, "source", str, p)
        if mtype is not None:
            _no_nul(mtype, _join(p, "type"))
        if source is not None:
            _no_nul(source, _join(p, "source"))
        out.append(
            Mount(
                destination=dest,
                type=mtype,
                source=source,
                options=_str_list(item, "options", p),
            )
        )
        if "uidMappings" in item or "gidMappings" in item:
            from pyrun import spec13

            out[-1].uid_mappings, out[-1].gid_mappings = spec13.parse_mount_mappings(item, p)
    return out


def _parse_hooks(data: dict) -> Hooks:
    hooks = _get(data, "hooks", dict, "")
    result = Hooks()
    if hooks is None:
        return result
    for json_name, attr in HOOK_KINDS:
        lst = getattr(result, attr)
        for item, p in _objects(hooks, json_name, "hooks"):
            path = _get(item, "path", str, p, required=True)
            _abs_path(path, _join(p, "path"))
            timeout = item.get("timeout")
            if timeout is not None:
                _check(timeout, int, _join(p, "timeout"))
                if timeout <= 0:
                    raise ConfigError(
                        _join(p, "timeout"), f"expected a number of seconds > 0, got {timeout}"
                    )
            lst.append(
                Hook(
                    path=path,
                    args=_str_list(item, "args", p),
                    env=_str_list(item, "env", p) if item.get("env") is not None else None,
                    timeout=timeout,
                )
            )
    return result


def _parse_mappings(linux: dict, key: str) -> list[IDMapping]:
    out = []
    for item, p in _objects(linux, key, "linux"):
        container_id = _req_int(item, "containerID", p, 0, UINT32_MAX)
        host_id = _req_int(item, "hostID", p, 0, UINT32_MAX)
        # A zero-length range is refused by the kernel when writing the map.
        size = _req_int(item, "size", p, 1, UINT32_MAX)
        out.append(IDMapping(container_id=container_id, host_id=host_id, size=size))
    return out


def _parse_namespaces(linux: dict) -> tuple[list[Namespace], dict[str, str]]:
    """Namespaces, and type -> JSON path of its entry (for later messages)."""
    out = []
    where: dict[str, str] = {}
    for item, p in _objects(linux, "namespaces", "linux"):
        ntype = _get(item, "type", str, p, required=True)
        if ntype not in NAMESPACE_TYPES:
            raise ConfigError(
                _join(p, "type"),
                f"unknown namespace type {_q(ntype)}: expected one of {', '.join(NAMESPACE_TYPES)}",
            )
        if ntype in where:
            raise ConfigError(
                _join(p, "type"), f"duplicate namespace type {_q(ntype)} (first at {where[ntype]})"
            )
        where[ntype] = p
        path = _opt_str(item, "path", p)
        if path is not None:
            _abs_path(path, _join(p, "path"))
        out.append(Namespace(type=ntype, path=path))
    return out, where


def _parse_devices(linux: dict) -> list[Device]:
    out = []
    for item, p in _objects(linux, "devices", "linux"):
        dtype = _get(item, "type", str, p, required=True)
        if dtype not in DEVICE_TYPES:
            raise ConfigError(
                _join(p, "type"), f"unknown device type {_q(dtype)}: expected one of c, b, u, p"
            )
        path = _get(item, "path", str, p, required=True)
        _abs_path(path, _join(p, "path"))
        needed = dtype != "p"  # major/minor are REQUIRED unless a fifo
        out.append(
            Device(
                type=dtype,
                path=path,
                major=_int(item, "major", p, INT64_MIN, INT64_MAX, required=needed) or 0,
                minor=_int(item, "minor", p, INT64_MIN, INT64_MAX, required=needed) or 0,
                file_mode=_int(item, "fileMode", p, 0, UINT32_MAX),
                uid=_int(item, "uid", p, 0, UINT32_MAX),
                gid=_int(item, "gid", p, 0, UINT32_MAX),
            )
        )
    return out


def _abs_list(linux: dict, key: str) -> list[str]:
    items = _str_list(linux, key, "linux")
    for i, item in enumerate(items):
        _abs_path(item, f"linux.{key}[{i}]")
    return items


def _parse_linux(data: dict) -> tuple[Linux, dict[str, str]]:
    linux = _get(data, "linux", dict, "")
    if linux is None:
        return Linux(), {}
    p = "linux"
    namespaces, where = _parse_namespaces(linux)

    propagation = _opt_str(linux, "rootfsPropagation", p)
    if propagation is not None and propagation not in ROOTFS_PROPAGATIONS:
        raise ConfigError(
            "linux.rootfsPropagation",
            f"unknown propagation {_q(propagation)}: "
            f"expected one of {', '.join(ROOTFS_PROPAGATIONS)}",
        )

    extra = {}
    if _NEW_LINUX_KEYS.intersection(linux):
        from pyrun import spec13

        extra = dict(time_offsets=spec13.parse_time_offsets(linux),
                     personality=spec13.parse_personality(linux),
                     memory_policy=spec13.parse_memory_policy(linux),
                     net_devices=spec13.parse_net_devices(linux), intel_rdt=spec13.parse_intel_rdt(linux))
    return (
        Linux(
            namespaces=namespaces,
            uid_mappings=_parse_mappings(linux, "uidMappings"),
            gid_mappings=_parse_mappings(linux, "gidMappings"),
            devices=_parse_devices(linux),
            cgroups_path=_opt_str(linux, "cgroupsPath", p),
            resources=_get(linux, "resources", dict, p),
            rootfs_propagation=propagation,
            masked_paths=_abs_list(linux, "maskedPaths"),
            readonly_paths=_abs_list(linux, "readonlyPaths"),
            sysctl=_str_map(linux, "sysctl", p),
            seccomp=_get(linux, "seccomp", dict, p),
            mount_label=_opt_str(linux, "mountLabel", p),
            **extra,
        ),
        where,
    )


# --------------------------------------------------------------------------
# Cross-field rules (runc's libcontainer/configs/validate, made pure)
# --------------------------------------------------------------------------


def _mapped(maps: list[IDMapping], ident: int) -> bool:
    return any(m.container_id <= ident < m.container_id + m.size for m in maps)


def _check_userns(linux: Linux) -> None:
    userns = next((ns for ns in linux.namespaces if ns.type == "user"), None)
    if userns is None:
        for key, maps in (("uidMappings", linux.uid_mappings), ("gidMappings", linux.gid_mappings)):
            if maps:
                kind = key[:3]
                raise ConfigError(
                    f"linux.{key}",
                    f"{kind} mappings specified, "
                    "but there is no user namespace in linux.namespaces",
                )
        return
    if userns.path is not None:
        # Joining an existing userns: its mappings are what they are.  runc
        # tolerates mappings here only if they match the namespace's; that
        # needs /proc, so the runtime checks it, not the parser.
        return
    for key, kind, maps in (
        ("uidMappings", "uid", linux.uid_mappings),
        ("gidMappings", "gid", linux.gid_mappings),
    ):
        if not maps:
            raise ConfigError(
                f"linux.{key}", f"user namespaces enabled, but no {kind} mappings found"
            )
        # runc computes the host id of container root (to chown devices and
        # the cgroup) and fails when root is unmapped.
        if not _mapped(maps, 0):
            raise ConfigError(
                f"linux.{key}",
                f"user namespaces enabled, but container {kind} 0 is not mapped",
            )


def _check_uts(spec: Spec) -> None:
    uts = spec.namespace("uts")
    for key, value in (("hostname", spec.hostname), ("domainname", spec.domainname)):
        if value is None:
            continue
        # A uts namespace joined by path is the container's too: runc sets
        # the name there (sethostname(2) needs CAP_SYS_ADMIN over its owner).
        if uts is None:
            raise ConfigError(key, f"unable to set {key} without a private uts namespace")


def _check_restricted_paths(linux: Linux) -> None:
    if any(ns.type == "mount" for ns in linux.namespaces):
        return
    for key, paths in (
        ("maskedPaths", linux.masked_paths),
        ("readonlyPaths", linux.readonly_paths),
    ):
        if paths:
            raise ConfigError(
                f"linux.{key}",
                "unable to restrict paths without a mount namespace in linux.namespaces",
            )


def _sysctl_dots(name: str) -> str:
    """runc's normalisation: "net/ipv4/conf/eth0.100/x" -> "net.ipv4.conf.eth0/100.x"."""
    for ch in name:
        if ch == ".":
            return name
        if ch == "/":
            return name.translate(str.maketrans("./", "/."))
    return name


def _check_sysctl(linux: Linux) -> None:
    """Only namespaced sysctls may be set, and only with their namespace.

    Matches runc's validator, except that a sysctl under ``net.`` is accepted
    when the network namespace is joined by path (runc then checks that the
    path is not the host's own netns; that needs stat, so the runtime does it).
    """
    kinds = {ns.type: ns for ns in linux.namespaces}
    for key in linux.sysctl:
        path = _key("linux.sysctl", key)
        name = _sysctl_dots(key)
        if name in _IPC_SYSCTLS or name.startswith("fs.mqueue."):
            if "ipc" not in kinds:
                raise ConfigError(
                    path,
                    "sysctl is not allowed in the host's ipc namespace: "
                    "add an ipc namespace to linux.namespaces",
                )
            continue
        if name.startswith("net."):
            if "network" not in kinds:
                raise ConfigError(
                    path,
                    "sysctl is not allowed in the host's network namespace: "
                    "add a network namespace to linux.namespaces",
                )
            continue
        if "uts" in kinds:
            if name == "kernel.domainname":
                continue
            if name == "kernel.hostname":
                raise ConfigError(
                    path, 'sysctl conflicts with the "hostname" field: set that instead'
                )
        raise ConfigError(
            path,
            "sysctl is not in a separate kernel namespace: only ipc (kernel.msg*, kernel.sem, "
            "kernel.shm*, fs.mqueue.*), net.* and, with a uts namespace, kernel.domainname "
            "can be set",
        )


# --------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------


def parse(data: dict, bundle: str) -> Spec:
    """Check and convert a decoded config.json; ``bundle`` anchors root.path."""
    if not isinstance(data, dict):
        raise ConfigError("", f"expected a JSON object at the top level, got {_type_name(data)}")
    bundle = os.path.abspath(bundle)

    oci_version = _get(data, "ociVersion", str, "", required=True)
    if not oci_version:
        raise ConfigError("ociVersion", "must not be empty")

    root = _parse_root(data, bundle)
    process = _parse_process(data)
    mounts = _parse_mounts(data)
    linux, where = _parse_linux(data)
    hooks = _parse_hooks(data)

    annotations = _str_map(data, "annotations", "")
    if "" in annotations:
        raise ConfigError('annotations[""]', "keys must not be empty")

    spec = Spec(
        oci_version=oci_version,
        bundle=bundle,
        root=root,
        process=process,
        hostname=_opt_str(data, "hostname", ""),
        domainname=_opt_str(data, "domainname", ""),
        mounts=mounts,
        linux=linux,
        hooks=hooks,
        annotations=annotations,
        raw=data,
    )

    _check_userns(linux)
    _check_uts(spec)
    _check_restricted_paths(linux)
    _check_sysctl(linux)
    if linux.time_offsets or linux.net_devices:
        from pyrun import spec13

        spec13.check_linux(spec)
    if data.get("vm") is not None:
        raise ConfigError("vm", "pyrun runs containers, not virtual machines: use a VM-based runtime "
                          "(Kata Containers) for this config")
    for i, m in enumerate(mounts):
        if m.uid_mappings or "idmap" in m.options or "ridmap" in m.options:
            from pyrun import spec13

            spec13.check_idmapped_mount(m, f"mounts[{i}]", spec)
    return spec


def require_process(spec: Spec) -> Process:
    """The spec's process, for commands that start one (create, run)."""
    if spec.process is None:
        raise ConfigError("process", "is required")
    return spec.process


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def load(bundle: str, path: str | None = None) -> Spec:
    """Read, decode and :func:`parse` ``<bundle>/config.json`` (or ``path``:
    the copy a container keeps in its state directory)."""
    bundle = os.path.abspath(bundle)
    if path is None:
        if not os.path.exists(bundle):
            raise ConfigError("", f"bundle directory {bundle} does not exist")
        if not os.path.isdir(bundle):
            raise ConfigError("", f"bundle {bundle} is not a directory")
        path = os.path.join(bundle, "config.json")
    return parse(_read_json(path), bundle)


def load_process(path: str) -> Process:
    """``exec --process FILE``: one ``process`` object of config.md, alone."""
    try:
        proc = _parse_process({"process": _read_json(path)})
    except ConfigError as e:
        field = e.path.removeprefix("process").removeprefix(".")
        raise ConfigError(field, e.message, file=path) from None
    assert proc is not None
    return proc


def _read_json(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as e:
        reason = _lower_first(e.strerror or str(e))
        raise ConfigError("", f"cannot read {path}: {reason}") from None
    # surrogateescape: stray non-UTF-8 bytes survive as the same bytes when
    # the strings are handed back to the OS (paths, argv, env).
    text = blob.decode("utf-8", "surrogateescape")

    from pyrun import jsonio

    try:
        data = jsonio.loads(text)  # NaN and Infinity refused, as Go's encoding/json
    except ValueError as e:
        if hasattr(e, "lineno"):  # json.JSONDecodeError
            raise ConfigError(
                "", f"invalid JSON at line {e.lineno} column {e.colno}: {_lower_first(e.msg)}"
            ) from None
        raise ConfigError("", f"invalid JSON: {e}") from None
    except RecursionError as e:
        raise ConfigError("", f"invalid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError("", f"expected a JSON object at the top level, got {_type_name(data)}")
    return data


# --------------------------------------------------------------------------
# Container ids
# --------------------------------------------------------------------------

from pyrun.state import validate_id  # noqa: E402,F401 - where ids live; re-exported
