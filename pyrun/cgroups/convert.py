"""linux.resources -> the files of a cgroup, as runc converts them: pure
functions that check and convert, touching nothing. cgroup v2 (:func:`writes`,
:func:`device_rules` for the BPF device program) and cgroup v1
(:func:`writes_v1`, :func:`device_writes_v1`), so a config written for runc
limits the same way here (runc's libcontainer/cgroups/fs and fs2)."""

from __future__ import annotations

from pyrun.errors import ConfigError, PyrunError
from pyrun.config.jsontypes import check, get, int_value, objects

RES = "linux.resources"

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


def _num(obj: dict, key: str, base: str, lo: int | None = None) -> int | None:
    """An optional integer, >= lo when lo is given (pyrun.config.jsontypes' wording)."""
    value = obj.get(key)
    if value is None:
        return None
    return int_value(value, f"{base}.{key}", lo)


def _ranged(obj: dict, key: str, base: str, lo: int, hi: int) -> int:
    """An optional integer where 0 (or absent) means unset and anything else
    must be within [lo, hi]."""
    value = _num(obj, key, base, 0) or 0
    if value:
        int_value(value, f"{base}.{key}", lo, hi)
    return value


def _obj(obj: dict, key: str, base: str) -> dict:
    return get(obj, key, dict, base) or {}


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


def _memory(res: dict) -> list[Write]:
    base = f"{RES}.memory"
    mem = _obj(res, "memory", RES)
    out = []
    limit = _num(mem, "limit", base)
    if limit is not None and limit != 0:
        out.append(Write("memory.max", _max(limit), f"{base}.limit"))
    low = _num(mem, "reservation", base)
    if low is not None and low != 0:
        out.append(Write("memory.low", _max(low), f"{base}.reservation"))
    swap = _num(mem, "swap", base)
    if swap is not None:
        value = swap_max(swap, limit or 0)
        if value is not None:
            out.append(Write("memory.swap.max", _max(value), f"{base}.swap"))
    # kernel, kernelTCP (deprecated) and swappiness have no cgroup v2 file:
    # ignored, as runc ignores them on cgroup v2.
    return out


def _cpu(res: dict) -> list[Write]:
    base = f"{RES}.cpu"
    cpu = _obj(res, "cpu", RES)
    out = []
    shares = _ranged(cpu, "shares", base, 2, 262144)
    if shares:
        out.append(Write("cpu.weight", str(shares_to_weight(shares)), f"{base}.shares"))
    quota, period = _num(cpu, "quota", base), _num(cpu, "period", base, 0)
    if quota or period:
        # "$MAX $PERIOD": no quota (or a negative one) is "max"
        text = "max" if not quota or quota < 0 else str(quota)
        out.append(Write("cpu.max", f"{text} {period or 100000}", f"{base}.quota"))
    burst = _num(cpu, "burst", base, 0)
    if burst is not None:
        out.append(Write("cpu.max.burst", str(burst), f"{base}.burst"))
    idle = _num(cpu, "idle", base, 0)
    if idle is not None:
        out.append(Write("cpu.idle", str(idle), f"{base}.idle"))
    for key, file in (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")):
        value = cpu.get(key)
        if value:
            check(value, str, f"{base}.{key}")
            out.append(Write(file, value, f"{base}.{key}"))
    for key in ("realtimeRuntime", "realtimePeriod"):
        if cpu.get(key):
            raise ConfigError(f"{base}.{key}", "is not supported with cgroup v2")
    return out


def _pids(res: dict) -> list[Write]:
    pids = _obj(res, "pids", RES)
    limit = _num(pids, "limit", f"{RES}.pids")
    if limit is None or limit == 0:
        return []
    return [Write("pids.max", _max(limit), f"{RES}.pids.limit")]


def _devno(item: dict, path: str) -> str:
    major, minor = _num(item, "major", path, 0), _num(item, "minor", path, 0)
    if major is None or minor is None:
        raise ConfigError(path, "needs major and minor")
    return f"{major}:{minor}"


def _io(res: dict) -> list[Write]:
    base = f"{RES}.blockIO"
    bio = _obj(res, "blockIO", RES)
    out = []
    weight = _ranged(bio, "weight", base, 10, 1000)
    if weight:
        out.append(Write("io.weight", f"default {blkio_to_io_weight(weight)}", f"{base}.weight"))
    for item, path in objects(bio, "weightDevice", base):
        w = _num(item, "weight", path, 0)
        if w:
            out.append(Write("io.weight", f"{_devno(item, path)} {blkio_to_io_weight(w)}", path))
    for key, word in (("throttleReadBpsDevice", "rbps"), ("throttleWriteBpsDevice", "wbps"),
                      ("throttleReadIOPSDevice", "riops"), ("throttleWriteIOPSDevice", "wiops")):
        for item, path in objects(bio, key, base):
            rate = _num(item, "rate", path, 0)
            out.append(Write("io.max", f"{_devno(item, path)} {word}={rate or 'max'}", path))
    return out


def _hugetlb(res: dict) -> list[Write]:
    out = []
    for item, path in objects(res, "hugepageLimits", RES):
        size, limit = item.get("pageSize"), _num(item, "limit", path, 0)
        if not isinstance(size, str) or not size or "/" in size:
            raise ConfigError(f"{path}.pageSize", "expected a size such as \"2MB\"")
        out.append(Write(f"hugetlb.{size}.max", str(limit or 0), path))
    return out


def _unified(res: dict) -> list[Write]:
    out = []
    for key, value in _obj(res, "unified", RES).items():
        path = f"{RES}.unified[{key!r}]"
        if "/" in key or key.startswith(".") or "." not in key:
            raise ConfigError(path, "expected a cgroup file name such as \"memory.high\"")
        check(value, str, path)
        out.append(Write(key, value, path))
    return out


def writes(resources: dict | None) -> list[Write]:
    """``linux.resources`` → the files to write, in order. Pure: checks and
    converts, touches nothing. Device rules are not here (see devices)."""
    if not resources:
        return []
    check(resources, dict, RES)
    out = _memory(resources) + _cpu(resources) + _pids(resources) + _io(resources)
    out += _hugetlb(resources) + _rdma(resources) + _unified(resources)
    if resources.get("network"):
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
_TYPES = {"a": 0, "b": 1, "c": 2, "u": 2}
_ACCESS = {"m": 1, "r": 2, "w": 4}


# The nodes of DEFAULT_ALLOWED: a node of linux.devices at one of these
# paths replaces the default, and its allow rule goes with it (runc's
# createDevices drops the default device and its rule).
_DEFAULT_PATHS = {("c", 1, 3): "/dev/null", ("c", 1, 5): "/dev/zero", ("c", 1, 7): "/dev/full",
                  ("c", 1, 8): "/dev/random", ("c", 1, 9): "/dev/urandom", ("c", 5, 0): "/dev/tty"}


def _access_bits(access, path: str) -> int:
    """runc's reading of an access string: its r, w and m; other letters
    ("a" in "rwa") are ignored. None of the three is refused (runc fails
    later: "resulting devices cgroup doesn't precisely match target")."""
    if not isinstance(access, str) or not set(access) & set(_ACCESS):
        raise ConfigError(f"{path}.access", f"expected letters of \"rwm\", got {access!r}")
    return sum(_ACCESS[c] for c in set(access) & set(_ACCESS))


def device_rules(resources: dict | None, devices) -> list[tuple[int, int, int, int, int]]:
    """``linux.resources.devices`` (in order; the last match wins), then
    runc's defaults, as (type, major, minor, access bits, allow) for the
    BPF program. A node of ``linux.devices`` is made, not allowed: as under
    runc, only resources.devices (or a default) lets the container open it."""
    out = []
    for rule, path in objects(resources or {}, "devices", RES):
        if not isinstance(rule.get("allow"), bool):
            raise ConfigError(f"{path}.allow", "is required: true or false")
        kind = rule.get("type") or "a"
        if not isinstance(kind, str) or kind not in _TYPES:
            raise ConfigError(f"{path}.type", f"expected a, b or c, got {kind!r}")
        access = _access_bits(rule.get("access") or "rwm", path)
        major, minor = _num(rule, "major", path), _num(rule, "minor", path)
        out.append((_TYPES[kind], -1 if major is None else major, -1 if minor is None else minor,
                    access, int(rule["allow"])))
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


def device_writes_v1(resources: dict | None, devices) -> tuple[list[Write], bool, set[str]]:
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
    folded = device_rules(resources, devices)
    n_config = len((resources or {}).get("devices") or [])
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


def _memory_v1(res: dict) -> list[Write]:
    base = f"{RES}.memory"
    mem = _obj(res, "memory", RES)
    out = []
    limit = _num(mem, "limit", base) or 0
    swap = _num(mem, "swap", base) or 0
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
    if _num(mem, "kernel", base):
        from pyrun.log import log

        log.debug_msg(f"{base}.kernel ignored: deprecated, not enforced by Linux >= 5.16 (as runc)")
    for key, file in (("reservation", "memory.soft_limit_in_bytes"),
                      ("kernelTCP", "memory.kmem.tcp.limit_in_bytes")):
        value = _num(mem, key, base)
        if value:
            out.append(Write(file, _v1_value(value), f"{base}.{key}"))
    swappiness = mem.get("swappiness")
    if swappiness is not None:
        int_value(swappiness, f"{base}.swappiness", 0, 100)
        out.append(Write("memory.swappiness", str(swappiness), f"{base}.swappiness"))
    if mem.get("disableOOMKiller"):
        out.append(Write("memory.oom_control", "1", f"{base}.disableOOMKiller"))
    return out


def _cpu_v1(res: dict) -> list[Write]:
    base = f"{RES}.cpu"
    cpu = _obj(res, "cpu", RES)
    out = []
    shares = _ranged(cpu, "shares", base, 2, 262144)
    if shares:
        out.append(Write("cpu.shares", str(shares), f"{base}.shares"))
    # the period first: the kernel checks quota against the period in force
    for key, file in (("period", "cpu.cfs_period_us"), ("quota", "cpu.cfs_quota_us"),
                      ("burst", "cpu.cfs_burst_us"), ("realtimePeriod", "cpu.rt_period_us"),
                      ("realtimeRuntime", "cpu.rt_runtime_us")):
        value = _num(cpu, key, base, None if key in ("quota", "realtimeRuntime") else 0)
        if value:
            out.append(Write(file, str(value), f"{base}.{key}"))
    idle = _num(cpu, "idle", base, 0)
    if idle is not None:
        out.append(Write("cpu.idle", str(idle), f"{base}.idle"))
    for key, file in (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")):
        value = cpu.get(key)
        if value:
            check(value, str, f"{base}.{key}")
            out.append(Write(file, value, f"{base}.{key}"))
    return out


def _blkio_v1(res: dict) -> list[Write]:
    base = f"{RES}.blockIO"
    bio = _obj(res, "blockIO", RES)
    out = []
    for key, file in (("weight", "blkio.weight"), ("leafWeight", "blkio.leaf_weight")):
        value = _ranged(bio, key, base, 10, 1000)
        if value:
            out.append(Write(file, str(value), f"{base}.{key}"))
    for item, path in objects(bio, "weightDevice", base):
        for key, file in (("weight", "blkio.weight_device"), ("leafWeight", "blkio.leaf_weight_device")):
            value = _num(item, key, path, 0)
            if value:
                out.append(Write(file, f"{_devno(item, path)} {value}", path))
    for key, file in (("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
                      ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
                      ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
                      ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device")):
        for item, path in objects(bio, key, base):
            out.append(Write(file, f"{_devno(item, path)} {_num(item, 'rate', path, 0) or 0}", path))
    return out


def _hugetlb_v1(res: dict) -> list[Write]:
    return [Write(w.file[:-len(".max")] + ".limit_in_bytes", w.value, w.path) for w in _hugetlb(res)]


def _network_v1(res: dict) -> list[Write]:
    base = f"{RES}.network"
    net = _obj(res, "network", RES)
    out = []
    class_id = _num(net, "classID", base, 0)
    if class_id:
        out.append(Write("net_cls.classid", str(class_id), f"{base}.classID"))
    for item, path in objects(net, "priorities", base):
        name, prio = item.get("name"), _num(item, "priority", path, 0)
        if not isinstance(name, str) or not name or prio is None:
            raise ConfigError(path, "needs name and priority")
        out.append(Write("net_prio.ifpriomap", f"{name} {prio}", path))
    return out


def _rdma(res: dict) -> list[Write]:
    """rdma.max, the same line in v1 and v2: "mlx4_0 hca_handle=2 hca_object=2000"."""
    out = []
    for dev, limit in _obj(res, "rdma", RES).items():
        path = f"{RES}.rdma[{dev!r}]"
        if not isinstance(limit, dict) or not dev or set(dev) & set(" \n/"):
            raise ConfigError(path, "expected a device name with {\"hcaHandles\": N, \"hcaObjects\": N}")
        parts = [f"{key}={_num(limit, field, path, 0)}" for key, field in
                 (("hca_handle", "hcaHandles"), ("hca_object", "hcaObjects")) if limit.get(field) is not None]
        if parts:
            out.append(Write("rdma.max", f"{dev} {' '.join(parts)}", path))
    return out


def writes_v1(resources: dict | None) -> list[Write]:
    """``linux.resources`` → the cgroup v1 files to write, in runc's order
    (libcontainer/cgroups/fs/*.go Set). Device rules: device_writes_v1."""
    if not resources:
        return []
    check(resources, dict, RES)
    if resources.get("unified"):
        raise ConfigError(f"{RES}.unified", "cannot be used on cgroup v1 (this host's cgroups are v1 or hybrid)")
    return (_cpu_v1(resources) + _memory_v1(resources) + _pids(resources) + _blkio_v1(resources)
            + _hugetlb_v1(resources) + _network_v1(resources) + _rdma(resources))
