"""linux.resources -> the files of a cgroup, as runc converts them: pure
functions that convert, touching nothing. cgroup v2 (:func:`writes`,
:func:`device_rules` for the BPF device program) and cgroup v1
(:func:`writes_v1`, :func:`device_writes_v1`), so a config written for runc
limits the same way here (runc's libcontainer/cgroups/fs and fs2).

They read :class:`pyrun.config.resources.Resources`, the records the config
model checked at load; a dict is parsed first (a test's, or ``pyrun
update``'s). What is refused here depends on the cgroup version: a field v2
or v1 has no file for, swap without a memory limit on v2, a device rule v1
cannot express.
"""

from __future__ import annotations

from pyrun.errors import ConfigError, PyrunError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from pyrun.config.resources import Resources

RES = "linux.resources"


def of(resources) -> Resources:
    """The records (a dict parsed first), imported when there are limits to
    convert: ``delete`` and ``kill`` import this module and parse nothing."""
    from pyrun.config.resources import of as records

    return records(resources)

# --------------------------------------------------------------- conversions


class Write(tuple):
    """One value for one file of the container's cgroup, and the config
    field it came from (for the error message): ``(file, value, path)``.
    A namedtuple written out: ``collections`` imports keyword, operator
    and reprlib, on every ``pyrun create``."""

    __slots__ = ()

    def __new__(cls, file: str, value: str, path: str):
        return tuple.__new__(cls, (file, value, path))

    file = property(lambda self: self[0])
    value = property(lambda self: self[1])
    path = property(lambda self: self[2])

    def __repr__(self) -> str:
        return f"Write(file={self[0]!r}, value={self[1]!r}, path={self[2]!r})"


def _max(value: int) -> str:
    """-1 means unlimited: "max" in cgroup v2 files."""
    return "max" if value < 0 else str(value)


def shares_to_weight(shares: int) -> int:
    """cpu.shares [2, 262144] onto cpu.weight [1, 10000], runc's formula
    (ConvertCPUSharesToCgroupV2Value): 1024 shares, the v1 default, → 39."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_to_io_weight(weight: int) -> int:
    """blkio.weight [10, 1000] onto io.weight [1, 10000] (runc's
    ConvertBlkIOToIOWeightValue)."""
    if weight == 0:
        return 0
    return 1 + (weight - 10) * 9999 // 990


def swap_max(swap: int, memory: int) -> int | None:
    """OCI ``memory.swap`` is memory+swap (the v1 meaning); cgroup v2's
    memory.swap.max is swap alone: the difference (runc's
    ConvertMemorySwapToCgroupV2Value). None: leave it alone."""
    if memory == -1 and swap == 0:
        return -1
    if swap in (-1, 0):
        return swap if swap == -1 else None
    if memory in (0, -1):
        raise ConfigError(f"{RES}.memory.swap", "cannot limit swap without a memory limit")
    if swap < memory:
        raise ConfigError(f"{RES}.memory.swap", f"memory+swap ({swap}) must be >= memory.limit ({memory})")
    return swap - memory


def _memory(res: Resources) -> list[Write]:
    base = f"{RES}.memory"
    mem = res.memory
    out = []
    limit = mem.limit
    if limit is not None and limit != 0:
        out.append(Write("memory.max", _max(limit), f"{base}.limit"))
    low = mem.reservation
    if low is not None and low != 0:
        out.append(Write("memory.low", _max(low), f"{base}.reservation"))
    swap = mem.swap
    if swap is not None:
        value = swap_max(swap, limit or 0)
        if value is not None:
            out.append(Write("memory.swap.max", _max(value), f"{base}.swap"))
    # kernel, kernelTCP (deprecated) and swappiness have no cgroup v2 file:
    # ignored, as runc ignores them on cgroup v2.
    return out


def _cpu(res: Resources) -> list[Write]:
    base = f"{RES}.cpu"
    cpu = res.cpu
    out = []
    shares = cpu.shares
    if shares:
        out.append(Write("cpu.weight", str(shares_to_weight(shares)), f"{base}.shares"))
    quota, period = cpu.quota, cpu.period
    if quota or period:
        # "$MAX $PERIOD": no quota (or a negative one) is "max"
        text = "max" if not quota or quota < 0 else str(quota)
        out.append(Write("cpu.max", f"{text} {period or 100000}", f"{base}.quota"))
    if cpu.burst is not None:
        out.append(Write("cpu.max.burst", str(cpu.burst), f"{base}.burst"))
    out += _idle_and_cpuset(cpu, base)
    for key, value in (("realtimeRuntime", cpu.realtime_runtime), ("realtimePeriod", cpu.realtime_period)):
        if value:
            raise ConfigError(f"{base}.{key}", "is not supported with cgroup v2")
    return out


def _idle_and_cpuset(cpu, base: str) -> list[Write]:
    """cpu.idle and the cpuset files: the same in v1 and v2."""
    out = []
    if cpu.idle is not None:
        out.append(Write("cpu.idle", str(cpu.idle), f"{base}.idle"))
    for key, file in (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")):
        value = getattr(cpu, key)
        if value:
            out.append(Write(file, value, f"{base}.{key}"))
    return out


def _pids(res: Resources) -> list[Write]:
    limit = res.pids_limit
    if limit is None or limit == 0:
        return []
    return [Write("pids.max", _max(limit), f"{RES}.pids.limit")]


def _devno(dev) -> str:
    if dev.major is None or dev.minor is None:
        raise ConfigError(dev.path, "needs major and minor")
    return f"{dev.major}:{dev.minor}"


# blockIO's throttle arrays (config.resources.THROTTLES) -> their word in io.max, and their v1 file.
_IO_MAX = {"throttleReadBpsDevice": "rbps", "throttleWriteBpsDevice": "wbps", "throttleReadIOPSDevice": "riops",
           "throttleWriteIOPSDevice": "wiops"}


def _io(res: Resources) -> list[Write]:
    base = f"{RES}.blockIO"
    bio = res.block_io
    out = []
    if bio.weight:
        out.append(Write("io.weight", f"default {blkio_to_io_weight(bio.weight)}", f"{base}.weight"))
    for dev in bio.weight_devices:
        if dev.weight:
            out.append(Write("io.weight", f"{_devno(dev)} {blkio_to_io_weight(dev.weight)}", dev.path))
    for key in _IO_MAX:
        for dev in bio.throttles.get(key, []):
            out.append(Write("io.max", f"{_devno(dev)} {_IO_MAX[key]}={dev.rate or 'max'}", dev.path))
    return out


def _hugetlb(res: Resources) -> list[Write]:
    return [Write(f"hugetlb.{h.page_size}.max", str(h.limit or 0), h.path) for h in res.hugepage_limits]


def _unified(res: Resources) -> list[Write]:
    return [Write(key, value, f"{RES}.unified[{key!r}]") for key, value in res.unified.items()]


def writes(resources: Resources | dict | None) -> list[Write]:
    """``linux.resources`` → the files to write, in order. Pure: converts,
    touches nothing. Device rules are not here (see devices)."""
    res = of(resources)
    out = _memory(res) + _cpu(res) + _pids(res) + _io(res)
    out += _hugetlb(res) + _rdma(res) + _unified(res)
    if res.network is not None:
        raise ConfigError(f"{RES}.network", "has no cgroup v2 equivalent")
    return out


def controller_of(file: str) -> str:
    return file.split(".", 1)[0]


# --------------------------------------------------------------- update

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_bytes(text: str, flag: str) -> int:
    """runc's sizes: "-1", "1048576", "512m", "1.5G", "64MiB" (binary units)."""
    import re

    m = re.fullmatch(r"\s*(-1|\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*", text, re.IGNORECASE)
    if not m:
        raise PyrunError(f"{flag} {text!r}: expected a size such as 512m or -1")
    if m.group(1) == "-1":
        return -1
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


# --------------------------------------------------------------- devices

# What runc allows in every container besides the config's rules
# (libcontainer/specconv AllowedDevices): mknod of anything, and the
# standard nodes pyrun creates in /dev.
DEFAULT_ALLOWED = [("c", -1, -1, "m"), ("b", -1, -1, "m"),
                   ("c", 1, 3, "rwm"), ("c", 1, 5, "rwm"), ("c", 1, 7, "rwm"), ("c", 1, 8, "rwm"),
                   ("c", 1, 9, "rwm"), ("c", 5, 0, "rwm"), ("c", 5, 2, "rwm"), ("c", 136, -1, "rwm"),
                   ("c", 10, 200, "rwm")]
_TYPES = {"a": 0, "b": 1, "c": 2}
_ACCESS = {"m": 1, "r": 2, "w": 4}


# The nodes of DEFAULT_ALLOWED: a node of linux.devices at one of these
# paths replaces the default, and its allow rule goes with it (runc's
# createDevices drops the default device and its rule).
_DEFAULT_PATHS = {("c", 1, 3): "/dev/null", ("c", 1, 5): "/dev/zero", ("c", 1, 7): "/dev/full",
                  ("c", 1, 8): "/dev/random", ("c", 1, 9): "/dev/urandom", ("c", 5, 0): "/dev/tty"}


def device_rules(resources: Resources | dict | None, devices) -> list[tuple[int, int, int, int, int]]:
    """``linux.resources.devices`` (in order; the last match wins), then
    runc's defaults, as (type, major, minor, access bits, allow) for the
    BPF program. A node of ``linux.devices`` is made, not allowed: as under
    runc, only resources.devices (or a default) lets the container open it."""
    out = [(_TYPES[r.type], r.major, r.minor, r.access, int(r.allow)) for r in of(resources).devices]
    replaced = {d.path for d in devices}
    for kind, major, minor, access in DEFAULT_ALLOWED:
        if _DEFAULT_PATHS.get((kind, major, minor)) in replaced:
            continue
        out.append((_TYPES[kind], major, minor, sum(_ACCESS[c] for c in access), 1))
    return out


_TYPE_LETTER = {0: "a", 1: "b", 2: "c"}


def _rule_text(kind: int, major: int, minor: int, access: int) -> str:
    """runc's Rule.CgroupString: "c 1:3 rwm", "*" for any number."""
    perms = "".join(c for c, bit in _ACCESS.items() if access & bit)
    num = lambda n: "*" if n < 0 else str(n)  # noqa: E731
    return f"{_TYPE_LETTER[kind]} {num(major)}:{num(minor)} {''.join(sorted(perms, key='rwm'.index))}"


def device_writes_v1(resources: Resources | dict | None, devices) -> tuple[list[Write], bool, set[str]]:
    """The same rules as :func:`device_rules`, for the v1 devices controller,
    as runc's devices emulator folds them (libcontainer/cgroups/devices):
    a rule of type "a" resets to deny-all (allow false) or allow-all; in
    deny-all mode an allow adds an exception and a deny takes one away, and
    the other way round in allow-all mode. Returns the writes for a cgroup
    that starts from its parent's list: the disruptive "a *:* rwm" first
    (devices.deny or devices.allow), then each exception in the order
    the rules first name it; whether the
    result is an allow list; and the lines devices.list must then show."""
    default_allow = False
    rules: dict[tuple[int, int, int], int] = {}
    paths: dict[tuple[int, int, int], str] = {}
    res = of(resources)
    folded = device_rules(res, devices)
    n_config = len(res.devices)
    for i, (kind, major, minor, access, allow) in enumerate(folded):
        path = f"{RES}.devices[{i}]" if i < n_config else f"{RES}.devices (runc's default devices)"
        if kind == 0:
            default_allow, rules = bool(allow), {}
            continue
        meta = (kind, major, minor)
        if bool(allow) != default_allow:  # an exception to the default
            rules[meta] = rules.get(meta, 0) | access
            paths.setdefault(meta, path)
        else:
            # v1 cannot take an exception out of a wildcard one ("c 10:*"
            # allowed, then "c 10:229" denied): refused, as runc's emulator
            # does, rather than leaving the device open
            for wild in {(kind, -1, minor), (kind, major, -1), (kind, -1, -1)} - {meta}:
                if rules.get(wild, 0) & access:
                    raise ConfigError(path, f"{_rule_text(kind, major, minor, access)!r} cannot be taken out of "
                                      f"{_rule_text(*wild, rules[wild])!r} with the cgroup v1 devices controller")
            if meta in rules:
                rules[meta] &= ~access
                if not rules[meta]:
                    del rules[meta]
    first = Write("devices.allow" if default_allow else "devices.deny", "a *:* rwm", f"{RES}.devices")
    exception = "devices.deny" if default_allow else "devices.allow"
    out = [first]
    # In the order they were first written (dicts keep it): the kernel
    # appends each exception to devices.list, which then lists the config's
    # rules in the config's order, then linux.devices, then the defaults,
    # as crun writes them (the OCI suite reads the list back in order).
    for meta in rules:
        out.append(Write(exception, _rule_text(*meta, rules[meta]), paths[meta]))
    expect = {w.value for w in out[1:]} if not default_allow else {"a *:* rwm"}
    return out, not default_allow, expect


# --------------------------------------------------------------- cgroup v1

def _v1_value(value: int) -> str:
    return str(value)  # -1 is "unlimited" in v1's *_in_bytes and cfs files


def _memory_v1(res: Resources) -> list[Write]:
    base = f"{RES}.memory"
    mem = res.memory
    out = []
    limit = mem.limit or 0
    swap = mem.swap or 0
    if limit == -1 and swap == 0:
        swap = -1  # runc: unlimited memory means unlimited memory+swap (where the kernel has memsw)
    if limit:
        out.append(Write("memory.limit_in_bytes", _v1_value(limit), f"{base}.limit"))
    if swap:
        if 0 < swap < limit:
            raise ConfigError(f"{base}.swap", f"memory+swap ({swap}) must be >= memory.limit ({limit})")
        out.append(Write("memory.memsw.limit_in_bytes", _v1_value(swap), f"{base}.swap"))
    # memory.kernel: runc 1.1 ignores it (kernel memory accounting cannot be
    # limited apart since Linux 5.16; the file takes a value and ignores it)
    if mem.kernel:
        from pyrun.log import log

        log.debug_msg(f"{base}.kernel ignored: deprecated, not enforced by Linux >= 5.16 (as runc)")
    for key, file, value in (("reservation", "memory.soft_limit_in_bytes", mem.reservation),
                             ("kernelTCP", "memory.kmem.tcp.limit_in_bytes", mem.kernel_tcp)):
        if value:
            out.append(Write(file, _v1_value(value), f"{base}.{key}"))
    if mem.swappiness is not None:
        out.append(Write("memory.swappiness", str(mem.swappiness), f"{base}.swappiness"))
    if mem.disable_oom_killer:
        out.append(Write("memory.oom_control", "1", f"{base}.disableOOMKiller"))
    return out


def _cpu_v1(res: Resources) -> list[Write]:
    base = f"{RES}.cpu"
    cpu = res.cpu
    out = []
    if cpu.shares:
        out.append(Write("cpu.shares", str(cpu.shares), f"{base}.shares"))
    # the period first: the kernel checks quota against the period in force
    for key, file, value in (("period", "cpu.cfs_period_us", cpu.period), ("quota", "cpu.cfs_quota_us", cpu.quota),
                             ("burst", "cpu.cfs_burst_us", cpu.burst),
                             ("realtimePeriod", "cpu.rt_period_us", cpu.realtime_period),
                             ("realtimeRuntime", "cpu.rt_runtime_us", cpu.realtime_runtime)):
        if value:
            out.append(Write(file, str(value), f"{base}.{key}"))
    return out + _idle_and_cpuset(cpu, base)


_BLKIO_THROTTLE_FILES = {"throttleReadBpsDevice": "blkio.throttle.read_bps_device",
                         "throttleWriteBpsDevice": "blkio.throttle.write_bps_device",
                         "throttleReadIOPSDevice": "blkio.throttle.read_iops_device",
                         "throttleWriteIOPSDevice": "blkio.throttle.write_iops_device"}


def _blkio_v1(res: Resources) -> list[Write]:
    base = f"{RES}.blockIO"
    bio = res.block_io
    out = []
    for key, file, value in (("weight", "blkio.weight", bio.weight), ("leafWeight", "blkio.leaf_weight", bio.leaf_weight)):
        if value:
            out.append(Write(file, str(value), f"{base}.{key}"))
    for dev in bio.weight_devices:
        for file, value in (("blkio.weight_device", dev.weight), ("blkio.leaf_weight_device", dev.leaf_weight)):
            if value:
                out.append(Write(file, f"{_devno(dev)} {value}", dev.path))
    for key in _BLKIO_THROTTLE_FILES:
        for dev in bio.throttles.get(key, []):
            out.append(Write(_BLKIO_THROTTLE_FILES[key], f"{_devno(dev)} {dev.rate or 0}", dev.path))
    return out


def _hugetlb_v1(res: Resources) -> list[Write]:
    return [Write(w.file[:-len(".max")] + ".limit_in_bytes", w.value, w.path) for w in _hugetlb(res)]


def _network_v1(res: Resources) -> list[Write]:
    net = res.network
    if net is None:
        return []
    out = []
    if net.class_id:
        out.append(Write("net_cls.classid", str(net.class_id), f"{RES}.network.classID"))
    out += [Write("net_prio.ifpriomap", f"{name} {prio}", path) for name, prio, path in net.priorities]
    return out


def _rdma(res: Resources) -> list[Write]:
    """rdma.max, the same line in v1 and v2: "mlx4_0 hca_handle=2 hca_object=2000"."""
    out = []
    for dev, limit in res.rdma.items():
        parts = [f"{key}={value}" for key, value in (("hca_handle", limit.hca_handles),
                                                      ("hca_object", limit.hca_objects)) if value is not None]
        if parts:
            out.append(Write("rdma.max", f"{dev} {' '.join(parts)}", limit.path))
    return out


def writes_v1(resources: Resources | dict | None) -> list[Write]:
    """``linux.resources`` → the cgroup v1 files to write, in runc's order
    (libcontainer/cgroups/fs/*.go Set). Device rules: device_writes_v1."""
    res = of(resources)
    if res.unified:
        raise ConfigError(f"{RES}.unified", "cannot be used on cgroup v1 (this host's cgroups are v1 or hybrid)")
    return (_cpu_v1(res) + _memory_v1(res) + _pids(res) + _blkio_v1(res)
            + _hugetlb_v1(res) + _network_v1(res) + _rdma(res))
