"""Process attributes the kernel keeps across fork(2) and execve(2), as
config.json sets them, parsed into records: ``process.scheduler``
(sched_setattr(2)), ``process.ioPriority`` (ioprio_set(2)),
``process.execCPUAffinity`` (sched_setaffinity(2)) in config.md, and
``linux.personality`` (personality(2)) and ``linux.memoryPolicy``
(set_mempolicy(2)) in config-linux.md.

Pure logic, like :mod:`pyrun.config.spec` (which imports this module only
when a config carries one of them): names become the kernel's numbers here,
so what applies them (:mod:`pyrun.security.procattrs`) makes system calls
and nothing else. Every error names the JSON path of the field.
"""

from __future__ import annotations

from pyrun.errors import ConfigError
from pyrun.record import field, record
from pyrun.config.jsontypes import UINT64_MAX, get, integer, join, optional_object, quote, str_list

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

#: sched(7) policies (<linux/sched.h>). SCHED_ISO is listed by the spec but
#: was never merged into Linux: refused by name.
SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3,
                  "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
#: sched_setattr(2) flags (<linux/sched.h>).
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02,
               "SCHED_FLAG_DL_OVERRUN": 0x04, "SCHED_FLAG_KEEP_POLICY": 0x08,
               "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
#: ioprio_set(2) classes (<linux/ioprio.h>).
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
#: personality(2) execution domains (<linux/personality.h>). config-linux.md:
#: "Currently no flag values are supported" (several, ADDR_NO_RANDOMIZE,
#: READ_IMPLIES_EXEC, weaken the process): any flag is refused.
PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}
#: set_mempolicy(2) modes and mode flags (<linux/mempolicy.h>).
MPOL_MODES = {"MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3,
              "MPOL_LOCAL": 4, "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6}
MPOL_FLAGS = {"MPOL_F_NUMA_BALANCING": 1 << 13, "MPOL_F_RELATIVE_NODES": 1 << 14,
              "MPOL_F_STATIC_NODES": 1 << 15}


@record
class Scheduler:
    """``process.scheduler``, as sched_setattr(2) takes it."""

    policy: int
    nice: int = 0
    priority: int = 0
    flags: int = 0
    runtime: int = 0
    deadline: int = 0
    period: int = 0


@record
class IOPriority:
    """``process.ioPriority``: the ioprio_set(2) value is class << 13 | priority."""

    klass: int
    priority: int = 0


@record
class CPUAffinity:
    """``process.execCPUAffinity``: CPU numbers, or None when not given."""

    initial: list[int] | None = None
    final: list[int] | None = None


@record
class Personality:
    domain: int


@record
class MemoryPolicy:
    mode: int
    nodes: list[int] = field(default_factory=list)
    flags: int = 0


def _choice(obj: dict, key: str, path: str, names: dict[str, int], required: bool = False) -> int | None:
    value = get(obj, key, str, path, required=required)
    if value is None:
        return None
    if value not in names:
        raise ConfigError(join(path, key), f"unknown value {quote(value)}: expected one of {', '.join(names)}")
    return names[value]


def _flags(obj: dict, key: str, path: str, names: dict[str, int]) -> int:
    out = 0
    for i, name in enumerate(str_list(obj, key, path)):
        if name not in names:
            raise ConfigError(f"{join(path, key)}[{i}]",
                              f"unknown flag {quote(name)}: expected one of {', '.join(names)}")
        out |= names[name]
    return out


def parse_list(text: str, path: str, what: str = "CPU") -> list[int]:
    """A kernel list ("0-3,7", cpuset(7)'s list format) -> sorted numbers."""
    out: set[int] = set()
    for part in text.split(","):
        lo, dash, hi = part.strip().partition("-")
        try:
            a = int(lo)
            b = int(hi) if dash else a
        except ValueError:
            raise ConfigError(path, f"invalid {what} list {quote(text)}: expected numbers and ranges "
                              "like \"0-3,7\"") from None
        if a < 0 or b < a or b > 65535:
            raise ConfigError(path, f"invalid {what} range {quote(part)} in {quote(text)}")
        out.update(range(a, b + 1))
    return sorted(out)


# ------------------------------------------------------------- process.*

@optional_object("process", "scheduler")
def parse_scheduler(obj: dict, p: str) -> Scheduler:
    if obj.get("policy") == "SCHED_ISO":
        raise ConfigError(join(p, "policy"), "SCHED_ISO is not implemented by Linux")
    policy = _choice(obj, "policy", p, SCHED_POLICIES, required=True)
    nice = integer(obj, "nice", p, -20, 19) or 0
    priority = integer(obj, "priority", p, 0, 99) or 0
    # runc's validation: a real-time policy needs a priority, the others none.
    if policy in (1, 2) and priority == 0:
        raise ConfigError(join(p, "priority"), "SCHED_FIFO and SCHED_RR need a priority of 1 to 99")
    if policy not in (1, 2) and priority:
        raise ConfigError(join(p, "priority"), "must be 0 unless the policy is SCHED_FIFO or SCHED_RR")
    s = Scheduler(policy=policy, nice=nice, priority=priority, flags=_flags(obj, "flags", p, SCHED_FLAGS),
                  runtime=integer(obj, "runtime", p, 0, UINT64_MAX) or 0,
                  deadline=integer(obj, "deadline", p, 0, UINT64_MAX) or 0,
                  period=integer(obj, "period", p, 0, UINT64_MAX) or 0)
    if policy == 6 and not (s.runtime and s.deadline):
        raise ConfigError(p, "SCHED_DEADLINE needs runtime and deadline (and period, or it is the deadline)")
    if policy != 6 and (s.runtime or s.deadline or s.period):
        raise ConfigError(p, "runtime, deadline and period apply to SCHED_DEADLINE only")
    return s


@optional_object("process", "ioPriority")
def parse_io_priority(obj: dict, p: str) -> IOPriority:
    return IOPriority(klass=_choice(obj, "class", p, IOPRIO_CLASSES, required=True),
                      priority=integer(obj, "priority", p, 0, 7) or 0)


@optional_object("process", "execCPUAffinity")
def parse_exec_cpu_affinity(obj: dict, p: str) -> CPUAffinity:
    out = CPUAffinity()
    for key in ("initial", "final"):
        text = get(obj, key, str, p)
        if text:
            setattr(out, key, parse_list(text, join(p, key)))
    return out


# --------------------------------------------------------------- linux.*


@optional_object("linux", "personality")
def parse_personality(obj: dict, p: str) -> Personality:
    flags = str_list(obj, "flags", p)
    if flags:
        raise ConfigError(f"{p}.flags[0]", f"{quote(flags[0])}: runtime-spec 1.3 defines no personality flags")
    return Personality(domain=_choice(obj, "domain", p, PERSONALITY_DOMAINS, required=True))


@optional_object("linux", "memoryPolicy")
def parse_memory_policy(obj: dict, p: str) -> MemoryPolicy:
    mode = _choice(obj, "mode", p, MPOL_MODES, required=True)
    text = get(obj, "nodes", str, p)
    nodes = parse_list(text, join(p, "nodes"), "node") if text else []
    # set_mempolicy(2): MPOL_DEFAULT and MPOL_LOCAL take no nodes, the others need some.
    if mode in (0, 4) and nodes:
        raise ConfigError(join(p, "nodes"), "must be empty for MPOL_DEFAULT and MPOL_LOCAL")
    if mode not in (0, 4) and not nodes:
        raise ConfigError(join(p, "nodes"), "is required for this mode")
    return MemoryPolicy(mode=mode, nodes=nodes, flags=_flags(obj, "flags", p, MPOL_FLAGS))
