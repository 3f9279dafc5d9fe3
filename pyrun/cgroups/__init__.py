"""The container's cgroup: one interface, the backend the host calls for
(cgroups(7)).

* ``/sys/fs/cgroup`` is a cgroup2 root (a "unified" host): :mod:`.v2`,
  limits in one tree, device rules as a BPF program.
* cgroup v1, or hybrid (v1 controllers under ``/sys/fs/cgroup/<name>``, a
  cgroup2 tree at ``/sys/fs/cgroup/unified``): :mod:`.v1`, runc's cgroupfs
  driver: a directory in every mounted hierarchy, each controller where the
  host mounts it, device rules through devices.deny/devices.allow.
* rootless on v1: no cgroup at all, as runc (v1 has no safe delegation);
  a limit is then refused with the reason unless ignored.

Every backend's cgroup has the same methods: ``add(pid)``, ``pids()``,
``freeze(on)``, ``frozen()``, ``kill()``, ``remove()``, ``exists()``,
``stats()``, ``update(resources)``, ``oom_kills()`` and ``path``, the string
the container's record keeps and :func:`open_cgroup` reads back (the
systemd driver's record is :attr:`.systemd.Cgroup.record`, see
:func:`record_of`). ``--systemd-cgroup``: :mod:`.systemd`, a transient
scope unit started over D-Bus, whose cgroup is then a v2 one. The spec ->
file conversions are in :mod:`.convert`.
"""

from __future__ import annotations

import os

MOUNT = "/sys/fs/cgroup"


def available() -> bool:
    """A pure cgroup v2 hierarchy at /sys/fs/cgroup (cgroup.controllers exists
    only at a cgroup2 root). Hybrid hosts have cgroup v1 there."""
    return os.path.exists(os.path.join(MOUNT, "cgroup.controllers"))


def setup(spec, container_id: str, rootless: bool, ignore_limits: bool, systemd: bool = False):
    """Decide and build the container's cgroup, limits and device rules
    written, no process in it yet. None: the container runs in the caller's
    cgroup (runc's choice where it cannot have one and no limit was asked).
    ``systemd`` (--systemd-cgroup): a unit to be, started by ``add(pid)``."""
    if systemd:
        from pyrun.cgroups import systemd as sd

        return sd.setup(spec, container_id, rootless, ignore_limits)
    if available():
        from pyrun.cgroups import v2

        return v2.setup(spec, container_id, rootless, ignore_limits)
    if rootless and not spec.linux.cgroups_path:
        if spec.linux.resources is None:  # runc spec --rootless: no limit to refuse, nothing to convert
            return None
        from pyrun.cgroups import convert
        from pyrun.cgroups.files import without_limits

        items = convert.writes_v1(spec.linux.resources)
        return without_limits(items, "this host's cgroups are v1 (or hybrid), where an unprivileged user "
                              "gets no cgroup of its own (as with runc); boot with "
                              "systemd.unified_cgroup_hierarchy=1, run as root, or name a cgroup delegated "
                              "to you in linux.cgroupsPath", ignore_limits)
    from pyrun.cgroups import v1

    return v1.setup(spec, container_id, ignore_limits, rootless)


def planned_path(spec, container_id: str, rootless: bool) -> str:
    """The ``path`` :func:`setup` will give this container's cgroup ("" for
    none), computed before anything is made: what a record can name so that
    a create killed half way leaves nothing unrecorded (only ever removed
    if empty). Raises what setup raises for a bad linux.cgroupsPath."""
    if available():
        from pyrun.cgroups import v2

        return v2.path_for(spec.linux.cgroups_path, container_id, rootless) or ""
    if rootless and not spec.linux.cgroups_path:
        return ""
    from pyrun.cgroups import v1

    return "\n".join(v1.paths_for(spec.linux.cgroups_path, container_id, v1.hierarchies()).values())


def record_of(cg) -> str:
    """What the container's record keeps for ``cg`` (open_cgroup's input)."""
    return getattr(cg, "record", cg.path)


def directory_of(record: str) -> str:
    """The cgroup directory of a record's string (the systemd driver's
    names its bus and unit too); v1's is every hierarchy's, "\n"-joined."""
    if record.startswith("systemd\t"):
        return record.rsplit("\t", 1)[1]
    return record


def open_cgroup(path: str):
    """The cgroup a record names (its ``path``)."""
    if path.startswith("systemd\t"):
        from pyrun.cgroups.systemd import Cgroup as Unit

        return Unit.from_record(path)
    if available():
        from pyrun.cgroups.v2 import Cgroup

        return Cgroup(path)
    from pyrun.cgroups.v1 import Cgroup as V1

    return V1.from_record(path)


def frozen(record: str) -> bool:
    """Whether the cgroup a record names is frozen (``state``'s "paused"),
    read without a backend: ``state``, ``kill`` and ``list`` ask it of
    every live container, and cgroup v1's backend parses
    /proc/self/mountinfo to find the freezer hierarchy first. Here: v2's
    cgroup.freeze, or on v1 the first of the record's directories that has
    a freezer.state (only the freezer hierarchy's does). A cgroup that is
    gone (systemd removes a stopped scope's: ENODEV) is not frozen."""
    dirs = directory_of(record).split("\n")
    names = ("cgroup.freeze", "1") if available() else ("freezer.state", "FROZEN")
    for d in dirs:
        try:
            with open(os.path.join(d, names[0])) as f:  # not files._read: `pyrun state` imports no more
                return f.read().strip() == names[1]
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as e:
            import errno

            if e.errno == errno.ENODEV:
                return False
            raise
    return False


def stats(cg) -> dict:
    """runc's ``events --stats`` data (types.Stats), laid out as runc's Go
    encoder writes it (:func:`runc_layout`)."""
    return runc_layout(cg.stats())


def _present(d: dict, keys: tuple, always: tuple = ()) -> dict:
    """``keys`` in that order; those not in ``always`` left out when zero or
    empty (Go's ``omitempty``), those in it written as 0 when missing."""
    out = {}
    for k in keys:
        v = d.get(k)
        if k in always:
            out[k] = v or 0
        elif v:
            out[k] = v
    return out


_MEMORY_ENTRY = ("limit", "usage", "max", "failcnt")
_CPUSET = ("cpus", "cpu_exclusive", "mems", "mem_hardwall", "mem_exclusive", "memory_migrate",
           "memory_spread_page", "memory_spread_slab", "memory_pressure", "sched_load_balance",
           "sched_relax_domain_level")
_BLKIO = ("ioServiceBytesRecursive", "ioServicedRecursive", "ioQueueRecursive", "ioServiceTimeRecursive",
          "ioWaitTimeRecursive", "ioMergedRecursive", "ioTimeRecursive", "sectorsRecursive")


def runc_layout(data: dict) -> dict:
    """The stats dict as runc's types.Stats marshals it: its fields in
    struct order, those tagged ``omitempty`` left out when zero, maps
    (``memory.raw``, ``hugetlb``) with sorted keys, and the sections pyrun
    does not read (``intel_rdt``, ``network_interfaces``) as runc writes
    them empty: the same bytes for the same values."""
    cpu = data.get("cpu") or {}
    usage = _present(cpu.get("usage") or {}, ("total", "percpu", "percpu_kernel", "percpu_user", "kernel",
                                               "user"), always=("kernel", "user"))
    throttling = _present(cpu.get("throttling") or {}, ("periods", "throttledPeriods", "throttledTime"))
    cpuset = _present(data.get("cpuset") or {}, _CPUSET, always=_CPUSET[1:2] + _CPUSET[3:])
    mem = data.get("memory") or {}
    memory = _present(mem, ("cache",))
    for key in ("usage", "swap", "kernel", "kernelTCP"):
        memory[key] = _present(mem.get(key) or {}, _MEMORY_ENTRY, always=("limit", "failcnt"))
    if mem.get("raw"):
        memory["raw"] = dict(sorted(mem["raw"].items()))
    blkio = {k: [_present(e, ("major", "minor", "op", "value")) for e in (data.get("blkio") or {}).get(k) or []]
             for k in _BLKIO if (data.get("blkio") or {}).get(k)}
    hugetlb = {size: _present(h, ("usage", "max", "failcnt"), always=("failcnt",))
               for size, h in sorted((data.get("hugetlb") or {}).items())}
    return {"cpu": {"usage": usage, "throttling": throttling}, "cpuset": cpuset, "memory": memory,
            "pids": _present(data.get("pids") or {}, ("current", "limit")), "blkio": blkio, "hugetlb": hugetlb,
            "intel_rdt": {}, "network_interfaces": None}


def oom_kills(cg) -> int:
    """How many processes the OOM killer took in the container's cgroup."""
    return cg.oom_kills()


def update(cg, resources: dict) -> None:
    """Change a live container's limits (``pyrun update``)."""
    cg.update(resources)


def parse_bytes(text: str, flag: str) -> int:
    from pyrun.cgroups.convert import parse_bytes as parse

    return parse(text, flag)


# `pyrun update`'s flags: (flag, section of linux.resources, key); the
# memory ones are sizes ("64m"), the rest are taken as given.
UPDATE_FLAGS = (
    ("--memory", "memory", "limit"), ("--memory-swap", "memory", "swap"),
    ("--memory-reservation", "memory", "reservation"), ("--kernel-memory", "memory", "kernel"),
    ("--kernel-memory-tcp", "memory", "kernelTCP"),
    ("--cpu-quota", "cpu", "quota"), ("--cpu-period", "cpu", "period"), ("--cpu-share", "cpu", "shares"),
    ("--cpu-rt-period", "cpu", "realtimePeriod"), ("--cpu-rt-runtime", "cpu", "realtimeRuntime"),
    ("--cpuset-cpus", "cpu", "cpus"), ("--cpuset-mems", "cpu", "mems"),
    ("--pids-limit", "pids", "limit"), ("--blkio-weight", "blockIO", "weight"),
)


def update_resources(resources_file: str | None, values: dict) -> dict:
    """The ``linux.resources`` object ``pyrun update`` applies: the JSON of
    ``--resources`` (a file, or "-" for stdin) if given, then each flag in
    ``values`` (flag -> value, None when not given) over it, as runc does."""
    import sys

    from pyrun.errors import PyrunError

    if resources_file:
        import json  # json's own messages for a bad file

        try:
            text = sys.stdin.read() if resources_file == "-" else open(resources_file).read()
            resources = json.loads(text)
        except (OSError, ValueError) as e:
            raise PyrunError(f"--resources {resources_file}: {e}") from None
        if not isinstance(resources, dict):
            raise PyrunError(f"--resources {resources_file}: expected a JSON object")
    else:
        resources = {}
    resources.setdefault("memory", {})
    resources.setdefault("cpu", {})
    for flag, section, key in UPDATE_FLAGS:
        value = values.get(flag)
        if value is None:
            continue
        if section == "memory":
            value = parse_bytes(value, flag)
        if section == "pids":
            resources["pids"] = {key: value}
        else:
            resources.setdefault(section, {})[key] = value
    return resources
