"""cgroup v2: the container's own cgroup, its limits, freezing, killing,
statistics (cgroups(7); the kernel's Documentation/admin-guide/cgroup-v2.rst).

A cgroup v2 hierarchy is one directory tree, mounted at /sys/fs/cgroup.
A container gets a directory of its own; its limits are files in it
(``memory.max``, ``pids.max``, ``cpu.max``...). Three rules of the kernel
shape the code:

* a controller works in a directory only if its parent lists it in
  ``cgroup.subtree_control`` ("+memory" written there), all the way down
  from the root;
* a cgroup other than the root may not both hold processes and hand
  controllers to children ("no internal processes"), so the container's
  cgroup is a leaf and its parents hold no processes;
* moving a process needs write access to ``cgroup.procs`` of the common
  ancestor of its old and new cgroup: that is what *delegation* gives an
  unprivileged user (systemd chowns ``user@UID.service`` and its
  ``cgroup.procs``, ``cgroup.subtree_control``, ``cgroup.threads``).

Where the cgroups live (runc's cgroupfs driver): ``linux.cgroupsPath``
absolute is taken from the root of the hierarchy, relative from the
caller's own cgroup. Without it: ``/pyrun/<id>`` as root, and
``<delegated subtree>/pyrun/<id>`` rootless.

``linux.resources`` is converted as runc converts it (see :func:`writes`),
so a config written for runc limits the same way here.
"""

from __future__ import annotations

import errno
import os

from pyrun.errors import ConfigError, PyrunError

MOUNT = "/sys/fs/cgroup"
RES = "linux.resources"

# --------------------------------------------------------------- conversions


class Write(tuple):
    """One value for one file of the container's cgroup, and the config
    field it came from (for the error message): ``(file, value, path)``.
    A namedtuple written out: ``collections`` (keyword, operator, reprlib)
    costs ~1.5 ms of every ``pyrun create``."""

    __slots__ = ()

    def __new__(cls, file: str, value: str, path: str):
        return tuple.__new__(cls, (file, value, path))

    file = property(lambda self: self[0])
    value = property(lambda self: self[1])
    path = property(lambda self: self[2])

    def __repr__(self) -> str:
        return f"Write(file={self[0]!r}, value={self[1]!r}, path={self[2]!r})"


def _num(obj: dict, key: str, base: str, lo: int | None = None) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{base}.{key}", f"expected an integer, got {value!r}")
    if lo is not None and value < lo:
        raise ConfigError(f"{base}.{key}", f"must be >= {lo}, got {value}")
    return value


def _ranged(obj: dict, key: str, base: str, lo: int, hi: int) -> int:
    """An optional integer where 0 (or absent) means unset and anything else
    must be within [lo, hi]."""
    value = _num(obj, key, base, 0) or 0
    if value and not lo <= value <= hi:
        raise ConfigError(f"{base}.{key}", f"must be within [{lo}, {hi}], got {value}")
    return value


def _obj(obj: dict, key: str, base: str) -> dict:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{base}.{key}", "expected an object")
    return value


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
            if not isinstance(value, str):
                raise ConfigError(f"{base}.{key}", "expected a string such as \"0-1,3\"")
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
    for i, item in enumerate(bio.get("weightDevice") or []):
        path = f"{base}.weightDevice[{i}]"
        w = _num(item, "weight", path, 0)
        if w:
            out.append(Write("io.weight", f"{_devno(item, path)} {blkio_to_io_weight(w)}", path))
    for key, word in (("throttleReadBpsDevice", "rbps"), ("throttleWriteBpsDevice", "wbps"),
                      ("throttleReadIOPSDevice", "riops"), ("throttleWriteIOPSDevice", "wiops")):
        for i, item in enumerate(bio.get(key) or []):
            path = f"{base}.{key}[{i}]"
            rate = _num(item, "rate", path, 0)
            out.append(Write("io.max", f"{_devno(item, path)} {word}={rate or 'max'}", path))
    return out


def _hugetlb(res: dict) -> list[Write]:
    out = []
    for i, item in enumerate(res.get("hugepageLimits") or []):
        path = f"{RES}.hugepageLimits[{i}]"
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
        if not isinstance(value, str):
            raise ConfigError(path, "expected a string value")
        out.append(Write(key, value, path))
    return out


def writes(resources: dict | None) -> list[Write]:
    """``linux.resources`` → the files to write, in order. Pure: checks and
    converts, touches nothing. Device rules are not here (see devices)."""
    if not resources:
        return []
    if not isinstance(resources, dict):
        raise ConfigError(RES, "expected an object")
    out = _memory(resources) + _cpu(resources) + _pids(resources) + _io(resources)
    out += _hugetlb(resources) + _unified(resources)
    if resources.get("network"):
        raise ConfigError(f"{RES}.network", "has no cgroup v2 equivalent")
    return out


def controller_of(file: str) -> str:
    return file.split(".", 1)[0]


# --------------------------------------------------------------- the hierarchy

def available() -> bool:
    """A pure cgroup v2 hierarchy at /sys/fs/cgroup (cgroup.controllers exists
    only at a cgroup2 root). Hybrid hosts have cgroup v1 there."""
    return os.path.exists(os.path.join(MOUNT, "cgroup.controllers"))


def own_cgroup(pid: str = "self") -> str:
    """The "0::/path" line of /proc/PID/cgroup (cgroups(7))."""
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].strip()
    return "/"


def _writable(directory: str) -> bool:
    return all(os.access(os.path.join(directory, name), os.W_OK)
               for name in ("", "cgroup.procs", "cgroup.subtree_control"))


def delegated_root() -> str | None:
    """Rootless: the highest cgroup above (or at) ours that we may manage —
    the subtree systemd (or a test harness) delegated to us. None if none."""
    best = None
    rel = own_cgroup()
    while True:
        d = os.path.normpath(MOUNT + rel)
        if not _writable(d):
            break
        best = d
        if rel in ("/", ""):
            break
        rel = os.path.dirname(rel)
    return best


def path_for(cgroups_path: str | None, container_id: str, rootless: bool) -> str | None:
    """The container's cgroup directory, or None (rootless without delegation)."""
    if cgroups_path:
        if ":" in cgroups_path and not cgroups_path.startswith("/"):
            raise ConfigError("linux.cgroupsPath", f"{cgroups_path!r}: the systemd form "
                              "(slice:prefix:name) needs --systemd-cgroup, which pyrun does not have")
        rel = cgroups_path if cgroups_path.startswith("/") else os.path.join(own_cgroup(), cgroups_path)
        path = os.path.normpath(MOUNT + "/" + rel)
        if not path.startswith(MOUNT + "/"):
            raise ConfigError("linux.cgroupsPath", f"{cgroups_path!r} leaves {MOUNT}")
        return path
    if not rootless:
        return os.path.join(MOUNT, "pyrun", container_id)
    root = delegated_root()
    if root is None:
        return None
    return os.path.join(root, "pyrun", container_id)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _enable_controllers(directory: str) -> None:
    """Hand every controller ``directory`` has on to its children."""
    have = _read(os.path.join(directory, "cgroup.controllers")).split()
    enabled = _read(os.path.join(directory, "cgroup.subtree_control")).split()
    missing = [c for c in have if c not in enabled]
    if not missing:
        return
    try:
        _write(os.path.join(directory, "cgroup.subtree_control"), " ".join("+" + c for c in missing))
    except OSError as e:
        hint = " (it holds processes: cgroup v2 allows no internal processes)" if e.errno == errno.EBUSY else ""
        raise PyrunError(f"cgroup: enable {' '.join(missing)} in {directory}/cgroup.subtree_control: "
                         f"{e.strerror}{hint}") from None


class Cgroup:
    """The container's cgroup directory."""

    def __init__(self, path: str):
        self.path = path

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    # -- setup
    def create(self, top: str) -> None:
        """mkdir(2) every level below ``top`` (the hierarchy's root, or the
        delegated one), enabling controllers on the way down."""
        rel = os.path.relpath(self.path, top)
        d = top
        for part in rel.split("/"):
            _enable_controllers(d)
            d = os.path.join(d, part)
            try:
                os.mkdir(d, 0o755)
            except FileExistsError:
                pass
            except OSError as e:
                raise PyrunError(f"cgroup: mkdir {d}: {e.strerror}") from None
        if self.pids():
            raise PyrunError(f"cgroup {self.path} already has processes: is the id or cgroupsPath in use?")

    def apply(self, items: list[Write]) -> None:
        """Write each limit; an error names the config field and the file."""
        for w in items:
            try:
                _write(self.file(w.file), w.value)
            except OSError as e:
                if e.errno == errno.ENOENT:
                    why = (f"no {w.file} in {self.path}: the {controller_of(w.file)} controller "
                           "is not available or not delegated here")
                else:
                    why = f"write {w.value!r} to {w.file}: {e.strerror}"
                raise ConfigError(w.path, why) from None

    def add(self, pid: int) -> None:
        """Move ``pid`` (and so, later, its children) into the cgroup."""
        try:
            _write(self.file("cgroup.procs"), str(pid))
        except OSError as e:
            raise PyrunError(f"cgroup: add pid {pid} to {self.file('cgroup.procs')}: {e.strerror}") from None

    # -- queries
    def exists(self) -> bool:
        return os.path.isdir(self.path)

    def pids(self) -> list[int]:
        try:
            return [int(x) for x in _read(self.file("cgroup.procs")).split()]
        except FileNotFoundError:
            return []

    def events(self, name: str = "cgroup.events") -> dict[str, int]:
        """A flat keyed file such as cgroup.events or memory.events."""
        try:
            text = _read(self.file(name))
        except FileNotFoundError:
            return {}
        return {k: int(v) for k, v in (line.split() for line in text.splitlines() if line.strip())}

    FREEZE_FILE, FROZEN = "cgroup.freeze", "1"

    def frozen(self) -> bool:
        try:
            return _read(self.file(self.FREEZE_FILE)).strip() == self.FROZEN
        except FileNotFoundError:
            return False

    # -- actions
    def freeze(self, on: bool, timeout: float = 10.0) -> None:
        """cgroup.freeze, then wait until cgroup.events says it is done."""
        import time

        _write(self.file("cgroup.freeze"), "1" if on else "0")
        deadline = time.monotonic() + timeout
        while self.events().get("frozen", 0) != int(on):
            if time.monotonic() > deadline:
                raise PyrunError(f"cgroup {self.path}: not {'frozen' if on else 'thawed'} after {timeout:.0f} s")
            time.sleep(0.005)

    def kill(self) -> bool:
        """SIGKILL every process in the cgroup at once (cgroup.kill, Linux
        5.14). False where the kernel has no cgroup.kill."""
        try:
            _write(self.file("cgroup.kill"), "1")
            return True
        except FileNotFoundError:
            return False

    def remove(self, timeout: float = 10.0) -> None:
        """rmdir(2) once the last process is gone (EBUSY until then)."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError as e:
                if e.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise PyrunError(f"cgroup: rmdir {self.path}: {e.strerror}") from None
                time.sleep(0.01)


class FreezerV1(Cgroup):
    """On a cgroup v1 or hybrid host (like this project's CI), root still
    gets a cgroup of the v1 freezer hierarchy: ``pause``/``resume``
    (freezer.state), ``kill --all`` and ``ps`` then work as with runc. No
    limits: those are cgroup v2's job here (cgroups(7), "Cgroups version 1")."""

    ROOT = "/sys/fs/cgroup/freezer"
    FREEZE_FILE, FROZEN = "freezer.state", "FROZEN"

    def freeze(self, on: bool, timeout: float = 10.0) -> None:
        import time

        want = self.FROZEN if on else "THAWED"
        state = self.file(self.FREEZE_FILE)
        _write(state, want)
        deadline = time.monotonic() + timeout
        while _read(state).strip() != want:  # FREEZING until every task stops
            if time.monotonic() > deadline:
                raise PyrunError(f"cgroup {self.path}: not {want} after {timeout:.0f} s")
            _write(state, want)
            time.sleep(0.005)

    def kill(self) -> bool:
        return False  # no cgroup.kill in v1: the caller signals each process

    def events(self, name: str = "cgroup.events") -> dict[str, int]:
        return {}


def open_cgroup(path: str) -> Cgroup:
    """The cgroup a Record names: v2, or the v1 freezer fallback."""
    return FreezerV1(path) if path.startswith(FreezerV1.ROOT + "/") else Cgroup(path)


def _freezer_v1(container_id: str, cgroups_path: str | None) -> FreezerV1 | None:
    """Root on a host without cgroup v2: a cgroup of the v1 freezer, if
    mounted, at cgroupsPath (as runc's cgroupfs driver puts it in every v1
    hierarchy) or pyrun/<id>."""
    if not os.path.exists(os.path.join(FreezerV1.ROOT, "cgroup.procs")):
        return None
    rel = (cgroups_path or f"pyrun/{container_id}").lstrip("/")
    if ":" in rel:
        return None  # the systemd form: not ours to interpret
    path = os.path.normpath(os.path.join(FreezerV1.ROOT, rel))
    if not path.startswith(FreezerV1.ROOT + "/"):
        raise ConfigError("linux.cgroupsPath", f"{cgroups_path!r} leaves {FreezerV1.ROOT}")
    cg = FreezerV1(path)
    try:
        os.makedirs(cg.path, 0o755)
    except FileExistsError:
        if cg.pids():
            raise PyrunError(f"cgroup {cg.path} already has processes: is the id in use?") from None
    except OSError:
        return None  # not ours to write (a v1 host where even root may not): no cgroup, as before
    return cg


def setup(spec, container_id: str, rootless: bool, ignore_limits: bool) -> Cgroup | None:
    """Decide and build the container's cgroup, limits written, no process
    in it yet. None: the container runs in the caller's cgroup, which is
    what runc does when it cannot have one and no limit was asked for."""
    from pyrun.log import log

    items = writes(spec.linux.resources)
    reason = None
    if not available():
        reason = ("this host has no cgroup v2 hierarchy at /sys/fs/cgroup (it is cgroup v1 or "
                  "hybrid); boot with systemd.unified_cgroup_hierarchy=1 or run in a VM with cgroup v2")
        path = None
    else:
        path = path_for(spec.linux.cgroups_path, container_id, rootless)
        if path is None:
            reason = ("no cgroup is delegated to this user (systemd does it for user@UID.service; "
                      "or chown a cgroup and its cgroup.procs and cgroup.subtree_control)")
    if path is None:
        if items and not ignore_limits:
            raise ConfigError(items[0].path, f"cannot apply cgroup limits: {reason}; or run without "
                              "them: pyrun --ignore-cgroup-limits, or annotation org.pyrun.cgroups=ignore-limits")
        if items:
            # asked for: a debug note, not a warning on the container's
            # stderr (create's stderr is the container's, as in runc)
            log.debug_msg(f"cgroup limits ignored: {reason}")
        if not available() and not rootless:
            return _freezer_v1(container_id, spec.linux.cgroups_path)
        return None
    if rootless:
        top = delegated_root() if not spec.linux.cgroups_path else None
        top = top or _nearest_existing(path)
    else:
        top = MOUNT
    cg = Cgroup(path)
    devices = None if rootless else device_rules(spec.linux.resources, spec.linux.devices)
    try:
        cg.create(top)
        cg.apply(items)
        if devices is not None:
            attach_device_filter(cg, devices)
    except BaseException:
        if cg.exists() and not cg.pids():
            try:
                os.rmdir(path)
            except OSError:
                pass
        raise
    return cg


def _nearest_existing(path: str) -> str:
    while not os.path.isdir(path):
        path = os.path.dirname(path)
    return path


# --------------------------------------------------------------- statistics

def _flat(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def _read_or(cg: Cgroup, name: str, default: str = "") -> str:
    try:
        return _read(cg.file(name))
    except OSError:
        return default


def _value(text: str) -> int:
    """A single-value file: "max" is 2^64-1, as runc reports unlimited."""
    text = text.strip()
    if text == "max":
        return 2**64 - 1
    return int(text) if text.lstrip("-").isdigit() else 0


def stats(cg: Cgroup) -> dict:
    """runc's ``events --stats`` data (types.Stats) from cpu.stat,
    memory.current/max/stat/events, memory.swap.*, pids.*, io.stat."""
    cpu = _flat(_read_or(cg, "cpu.stat"))
    mem_events = cg.events("memory.events")
    io = {"ioServiceBytesRecursive": [], "ioServicedRecursive": []}
    for line in _read_or(cg, "io.stat").splitlines():
        dev, *pairs = line.split()
        major, minor = (int(x) for x in dev.split(":"))
        kv = dict(p.split("=", 1) for p in pairs)
        for key, op, table in (("rbytes", "Read", "ioServiceBytesRecursive"),
                               ("wbytes", "Write", "ioServiceBytesRecursive"),
                               ("rios", "Read", "ioServicedRecursive"),
                               ("wios", "Write", "ioServicedRecursive")):
            if key in kv:
                io[table].append({"major": major, "minor": minor, "op": op, "value": int(kv[key])})
    return {
        "cpu": {
            "usage": {"total": cpu.get("usage_usec", 0) * 1000, "percpu": [],
                      "kernel": cpu.get("system_usec", 0) * 1000, "user": cpu.get("user_usec", 0) * 1000},
            "throttling": {"periods": cpu.get("nr_periods", 0), "throttledPeriods": cpu.get("nr_throttled", 0),
                           "throttledTime": cpu.get("throttled_usec", 0) * 1000},
        },
        "memory": {
            "usage": {"usage": _value(_read_or(cg, "memory.current", "0")),
                      "limit": _value(_read_or(cg, "memory.max", "max")),
                      "max": _value(_read_or(cg, "memory.peak", "0")),
                      "failcnt": mem_events.get("max", 0)},
            "swap": {"usage": _value(_read_or(cg, "memory.swap.current", "0")),
                     "limit": _value(_read_or(cg, "memory.swap.max", "max"))},
            "raw": _flat(_read_or(cg, "memory.stat")),
        },
        "pids": {"current": _value(_read_or(cg, "pids.current", "0")),
                 "limit": _value(_read_or(cg, "pids.max", "max"))},
        "blkio": io,
    }


def oom_kills(cg: Cgroup) -> int:
    """How many processes the OOM killer took in this cgroup (memory.events)."""
    return cg.events("memory.events").get("oom_kill", 0)


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


def update(cg: Cgroup, resources: dict) -> None:
    """Change a live container's limits (``pyrun update``)."""
    mem = resources.get("memory") or {}
    if "swap" in mem and "limit" not in mem:
        # memory+swap is relative to the memory limit in force
        current = _read_or(cg, "memory.max", "max").strip()
        mem = dict(mem, limit=-1 if current == "max" else int(current))
        resources = dict(resources, memory=mem)
    items = writes(resources)
    if mem.get("checkBeforeUpdate") and mem.get("limit", 0) > 0:
        usage = _value(_read_or(cg, "memory.current", "0"))
        if mem["limit"] < usage:
            raise ConfigError(f"{RES}.memory.limit", f"{mem['limit']} is below the current usage ({usage})")
    cg.apply(items)


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


def device_rules(resources: dict | None, devices) -> list[tuple[int, int, int, int, int]]:
    """``linux.resources.devices`` (in order; the last match wins), then the
    nodes of ``linux.devices``, then runc's defaults, as
    (type, major, minor, access bits, allow) for the BPF program."""
    base = f"{RES}.devices"
    out = []
    for i, rule in enumerate((resources or {}).get("devices") or []):
        path = f"{base}[{i}]"
        if not isinstance(rule, dict) or not isinstance(rule.get("allow"), bool):
            raise ConfigError(f"{path}.allow", "is required: true or false")
        kind = rule.get("type") or "a"
        if kind not in _TYPES:
            raise ConfigError(f"{path}.type", f"expected a, b or c, got {kind!r}")
        access = rule.get("access") or "rwm"
        if not isinstance(access, str) or not access or set(access) - set("rwm"):
            raise ConfigError(f"{path}.access", f"expected letters of \"rwm\", got {access!r}")
        major, minor = _num(rule, "major", path), _num(rule, "minor", path)
        out.append((_TYPES[kind], -1 if major is None else major, -1 if minor is None else minor,
                    sum(_ACCESS[c] for c in set(access)), int(rule["allow"])))
    for d in devices:
        if d.type in ("c", "u", "b") and d.major is not None and d.minor is not None:
            out.append((_TYPES[d.type], d.major, d.minor, 7, 1))
    for kind, major, minor, access in DEFAULT_ALLOWED:
        out.append((_TYPES[kind], major, minor, sum(_ACCESS[c] for c in access), 1))
    return out


def attach_device_filter(cg: Cgroup, rules) -> None:
    """bpf(2) BPF_PROG_LOAD a BPF_PROG_TYPE_CGROUP_DEVICE program from
    ``rules`` and BPF_PROG_ATTACH it to the cgroup (native/devices_bpf.c)."""
    from pyrun._native import ffi, lib
    from pyrun.errors import SyscallError

    arr = ffi.new("struct pyrun_dev_rule[]", len(rules))
    for i, (kind, major, minor, access, allow) in enumerate(rules):
        arr[i].type, arr[i].major, arr[i].minor, arr[i].access, arr[i].allow = kind, major, minor, access, allow
    fd = os.open(cg.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        rc = lib.pyrun_devices_bpf_attach(fd, arr, len(rules), 1)
    finally:
        os.close(fd)
    if rc < 0:
        raise SyscallError("bpf(BPF_PROG_LOAD/ATTACH, cgroup device program)", -rc, cg.path)
