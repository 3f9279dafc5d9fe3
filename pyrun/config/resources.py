"""``linux.resources`` (config-linux.md "Control groups") parsed into records,
once, when config.json is loaded (and when ``pyrun update`` reads its
``--resources`` and flags).

Every check that needs nothing but the JSON is made here, each error a
:class:`~pyrun.errors.ConfigError` naming the field
(``linux.resources.cpu.shares: expected an integer between 2 and 262144,
got 1``): the types, the ranges runc checks, the shapes of the arrays and
maps. What depends on the host's cgroups -- a field cgroup v2 or v1 has no
file for, swap without a memory limit on v2, a device rule v1 cannot
express -- is :mod:`pyrun.cgroups.convert`'s, which turns these records
into the files of a cgroup.

As runc's specconv turns the spec's ``LinuxResources`` into a
``configs.Resources``: nothing below the config model reads the JSON.
"""

from __future__ import annotations

from pyrun.config.jsontypes import check, get, int_value, objects
from pyrun.errors import ConfigError
from pyrun.record import field, record

RES = "linux.resources"

#: blockIO's throttle arrays, in runc's order.
THROTTLES = ("throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice", "throttleWriteIOPSDevice")

_DEVICE_TYPES = ("a", "b", "c", "u")
_ACCESS = {"m": 1, "r": 2, "w": 4}


@record
class Memory:
    limit: int | None = None
    reservation: int | None = None
    swap: int | None = None  # memory+swap, the v1 meaning
    kernel: int | None = None
    kernel_tcp: int | None = None
    swappiness: int | None = None
    disable_oom_killer: bool = False
    check_before_update: bool = False


@record
class CPU:
    shares: int = 0  # 0: unset
    quota: int | None = None
    period: int | None = None
    burst: int | None = None
    idle: int | None = None
    realtime_runtime: int | None = None
    realtime_period: int | None = None
    cpus: str = ""
    mems: str = ""


@record
class WeightDevice:
    major: int | None
    minor: int | None
    weight: int | None
    leaf_weight: int | None
    path: str


@record
class ThrottleDevice:
    major: int | None
    minor: int | None
    rate: int | None
    path: str


@record
class BlockIO:
    weight: int = 0  # 0: unset
    leaf_weight: int = 0
    weight_devices: list[WeightDevice] = field(default_factory=list)
    throttles: dict[str, list[ThrottleDevice]] = field(default_factory=dict)  # THROTTLES key -> devices


@record
class HugepageLimit:
    page_size: str
    limit: int | None
    path: str


@record
class Rdma:
    hca_handles: int | None
    hca_objects: int | None
    path: str


@record
class Network:
    class_id: int | None = None
    priorities: list[tuple[str, int, str]] = field(default_factory=list)  # (interface, priority, path)


@record(frozen=True)
class DeviceRule:
    """One ``linux.resources.devices`` entry: ``access`` as bits (m 1, r 2,
    w 4), -1 for any major or minor."""

    allow: bool
    type: str  # a, b, c (u is c)
    major: int
    minor: int
    access: int
    path: str


@record
class Resources:
    """``linux.resources``, checked."""

    memory: Memory = field(default_factory=Memory)
    cpu: CPU = field(default_factory=CPU)
    pids_limit: int | None = None
    block_io: BlockIO = field(default_factory=BlockIO)
    hugepage_limits: list[HugepageLimit] = field(default_factory=list)
    rdma: dict[str, Rdma] = field(default_factory=dict)
    unified: dict[str, str] = field(default_factory=dict)
    network: Network | None = None  # given and not empty
    devices: list[DeviceRule] = field(default_factory=list)


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


def _memory(res: dict) -> Memory:
    base = f"{RES}.memory"
    mem = _obj(res, "memory", RES)
    swappiness = mem.get("swappiness")
    if swappiness is not None:
        int_value(swappiness, f"{base}.swappiness", 0, 100)
    return Memory(limit=_num(mem, "limit", base), reservation=_num(mem, "reservation", base),
                  swap=_num(mem, "swap", base), kernel=_num(mem, "kernel", base),
                  kernel_tcp=_num(mem, "kernelTCP", base), swappiness=swappiness,
                  disable_oom_killer=bool(mem.get("disableOOMKiller")),
                  check_before_update=bool(mem.get("checkBeforeUpdate")))


def _cpu(res: dict) -> CPU:
    base = f"{RES}.cpu"
    cpu = _obj(res, "cpu", RES)
    out = CPU(shares=_ranged(cpu, "shares", base, 2, 262144), quota=_num(cpu, "quota", base),
              period=_num(cpu, "period", base, 0), burst=_num(cpu, "burst", base, 0),
              idle=_num(cpu, "idle", base, 0), realtime_runtime=_num(cpu, "realtimeRuntime", base),
              realtime_period=_num(cpu, "realtimePeriod", base, 0))
    for key in ("cpus", "mems"):
        value = cpu.get(key)
        if value:
            setattr(out, key, check(value, str, f"{base}.{key}"))
    return out


def _block_io(res: dict) -> BlockIO:
    base = f"{RES}.blockIO"
    bio = _obj(res, "blockIO", RES)
    out = BlockIO(weight=_ranged(bio, "weight", base, 10, 1000),
                  leaf_weight=_ranged(bio, "leafWeight", base, 10, 1000))
    for item, path in objects(bio, "weightDevice", base):
        out.weight_devices.append(WeightDevice(_num(item, "major", path, 0), _num(item, "minor", path, 0),
                                               _num(item, "weight", path, 0), _num(item, "leafWeight", path, 0),
                                               path))
    for key in THROTTLES:
        out.throttles[key] = [ThrottleDevice(_num(item, "major", path, 0), _num(item, "minor", path, 0),
                                             _num(item, "rate", path, 0), path)
                              for item, path in objects(bio, key, base)]
    return out


def _hugepage_limits(res: dict) -> list[HugepageLimit]:
    out = []
    for item, path in objects(res, "hugepageLimits", RES):
        size, limit = item.get("pageSize"), _num(item, "limit", path, 0)
        if not isinstance(size, str) or not size or "/" in size:
            raise ConfigError(f"{path}.pageSize", "expected a size such as \"2MB\"")
        out.append(HugepageLimit(size, limit, path))
    return out


def _rdma(res: dict) -> dict[str, Rdma]:
    out = {}
    for dev, limit in _obj(res, "rdma", RES).items():
        path = f"{RES}.rdma[{dev!r}]"
        if not isinstance(limit, dict) or not dev or set(dev) & set(" \n/"):
            raise ConfigError(path, "expected a device name with {\"hcaHandles\": N, \"hcaObjects\": N}")
        out[dev] = Rdma(_num(limit, "hcaHandles", path, 0), _num(limit, "hcaObjects", path, 0), path)
    return out


def _unified(res: dict) -> dict[str, str]:
    out = {}
    for key, value in _obj(res, "unified", RES).items():
        path = f"{RES}.unified[{key!r}]"
        if "/" in key or key.startswith(".") or "." not in key:
            raise ConfigError(path, "expected a cgroup file name such as \"memory.high\"")
        out[key] = check(value, str, path)
    return out


def _network(res: dict) -> Network | None:
    base = f"{RES}.network"
    net = _obj(res, "network", RES)
    if not net:
        return None
    out = Network(class_id=_num(net, "classID", base, 0))
    for item, path in objects(net, "priorities", base):
        name, prio = item.get("name"), _num(item, "priority", path, 0)
        if not isinstance(name, str) or not name or prio is None:
            raise ConfigError(path, "needs name and priority")
        out.priorities.append((name, prio, path))
    return out


def _access_bits(access, path: str) -> int:
    """runc's reading of an access string: its r, w and m; other letters
    ("a" in "rwa") are ignored. None of the three is refused (runc fails
    later: "resulting devices cgroup doesn't precisely match target")."""
    if not isinstance(access, str) or not set(access) & set(_ACCESS):
        raise ConfigError(f"{path}.access", f"expected letters of \"rwm\", got {access!r}")
    return sum(_ACCESS[c] for c in set(access) & set(_ACCESS))


def _devices(res: dict) -> list[DeviceRule]:
    out = []
    for rule, path in objects(res, "devices", RES):
        if not isinstance(rule.get("allow"), bool):
            raise ConfigError(f"{path}.allow", "is required: true or false")
        kind = rule.get("type") or "a"
        if not isinstance(kind, str) or kind not in _DEVICE_TYPES:
            raise ConfigError(f"{path}.type", f"expected a, b or c, got {kind!r}")
        access = _access_bits(rule.get("access") or "rwm", path)
        major, minor = _num(rule, "major", path), _num(rule, "minor", path)
        out.append(DeviceRule(rule["allow"], "c" if kind == "u" else kind, -1 if major is None else major,
                              -1 if minor is None else minor, access, path))
    return out


def parse(resources) -> Resources:
    """``linux.resources`` (None: none) -> :class:`Resources`. Raises :class:`ConfigError`."""
    if not resources:
        return Resources()
    res = check(resources, dict, RES)
    return Resources(memory=_memory(res), cpu=_cpu(res), pids_limit=_num(_obj(res, "pids", RES), "limit",
                                                                          f"{RES}.pids"),
                     block_io=_block_io(res), hugepage_limits=_hugepage_limits(res), rdma=_rdma(res),
                     unified=_unified(res), network=_network(res), devices=_devices(res))


def of(resources) -> Resources:
    """A :class:`Resources` as it is; a dict (a test's, ``pyrun update``'s) parsed; None: none."""
    return resources if isinstance(resources, Resources) else parse(resources)
