"""The systemd cgroup driver (``pyrun --systemd-cgroup``): the container's
cgroup is a transient scope unit that systemd makes and owns, as runc's
libcontainer/cgroups/systemd does.

On a host where systemd is PID 1 it owns the cgroup tree: a runtime that
made its own directories there would be fighting it (systemd.resource-
control(5), "Delegation" in systemd's docs). So the container's first
process is handed to systemd, which makes the unit and its cgroup:

* ``linux.cgroupsPath`` is ``slice:prefix:name``; the unit is
  ``prefix-name.scope`` in ``slice`` (a ``name`` ending in ``.slice``,
  which runc makes a slice unit and systemd then refuses the container's
  pid for, is refused before anything is made). An empty slice is runc's default,
  ``system.slice`` as root, ``user.slice`` of the user's own systemd
  rootless; no cgroupsPath is ``:pyrun:<id>``. A slice name's dashes are
  its parents (systemd.slice(5)): ``a-b.slice`` is ``a.slice/a-b.slice``.
* ``org.freedesktop.systemd1.Manager.StartTransientUnit`` over D-Bus: the
  system bus as root, the user's bus rootless ($DBUS_SESSION_BUS_ADDRESS,
  else $XDG_RUNTIME_DIR/bus), with ``PIDs`` = the process, ``Delegate=yes``
  and the limits systemd knows as properties (MemoryMax, TasksMax,
  CPUQuotaPerSecUSec...); then the job's ``JobRemoved`` signal is awaited.
* On a unified host the scope's cgroup is a cgroup v2 directory: every
  limit is also written to its files by the v2 backend (runc's fsMgr.Set
  after the properties), device rules are pyrun's BPF program, and freeze,
  kill, pids, stats are the v2 ones. ``remove`` stops the unit (StopUnit),
  ``update`` sets properties (SetUnitProperties) and files.
* On a cgroup v1 or hybrid host (:class:`LegacyCgroup`, runc's v1 systemd
  driver, libcontainer/cgroups/systemd/v1.go) the properties are v1's
  (MemoryLimit, CPUShares, BlockIOWeight, DevicePolicy/DeviceAllow...), and
  systemd makes the scope's directory only in the hierarchies it manages
  (cpu,cpuacct, blkio, memory, devices, pids, name=systemd and the hybrid
  cgroup2 tree): pyrun makes it at the same place in every other one
  (cpuset, freezer, net_cls, hugetlb...), moves the process there, and the
  v1 backend writes every limit and device rule to the files. Rootless on
  v1 the flag is refused, as runc refuses it (without it: no cgroup).

The record names the bus and the unit before the unit is started, so a
``delete`` after a create killed half way stops it. The D-Bus client is
jeepney (pure Python, imported only here, only under --systemd-cgroup).
"""

from __future__ import annotations

import errno
import os

from pyrun.cgroups import v1, v2
from pyrun.cgroups.files import _write
from pyrun.cgroups.convert import Write, device_rules, writes
from pyrun.errors import ConfigError, PyrunError, errno_text

MOUNT = "/sys/fs/cgroup"
TAG = "systemd"        # first field of the record string
SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"
JOB_TIMEOUT = 30.0     # runc waits 30 s for a unit's job
INFINITY = 2**64 - 1   # systemd's "infinity" for a uint64 limit
DEST = "org.freedesktop.systemd1"
OBJ = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"


# --------------------------------------------------------------- names

def expand_slice(name: str) -> str:
    """``a-b-c.slice`` -> ``/a.slice/a-b.slice/a-b-c.slice`` (systemd.slice(5),
    runc's ExpandSlice); ``-.slice`` is the root."""
    where = "linux.cgroupsPath"
    if not name.endswith(".slice") or "/" in name:
        raise ConfigError(where, f"{name!r} is not a slice name (NAME.slice, no '/')")
    stem = name[:-len(".slice")]
    if stem == "-":
        return "/"
    if not stem or stem.startswith("-") or stem.endswith("-") or "--" in stem:
        raise ConfigError(where, f"{name!r} is not a valid slice name (systemd.slice(5))")
    out, prefix = "", ""
    for part in stem.split("-"):
        prefix = f"{prefix}-{part}" if prefix else part
        out += f"/{prefix}.slice"
    return out


def parse_path(cgroups_path: str | None, container_id: str, rootless: bool) -> tuple[str, str]:
    """(slice, unit) for ``slice:prefix:name`` as runc's specconv reads it."""
    text = cgroups_path or f":pyrun:{container_id}"
    parts = text.split(":")
    if len(parts) != 3:
        raise ConfigError("linux.cgroupsPath", f"{text!r}: with --systemd-cgroup it must be slice:prefix:name")
    slice_, prefix, name = parts
    if not name or "/" in name or "/" in prefix:
        raise ConfigError("linux.cgroupsPath", f"{text!r}: slice:prefix:name needs a name, and no '/'")
    slice_ = slice_ or ("user.slice" if rootless else "system.slice")
    expand_slice(slice_)
    if name.endswith(".slice"):
        # runc reads this as "the container is the slice unit NAME" (Wants=
        # the slice instead of Slice=, no Delegate), a form made for pod
        # slices that hold no process (kubelet, through libcontainer, with
        # no pid). With the container's pid systemd refuses it: PIDs is a
        # scope's property, not a slice's (systemd.slice(5): a slice holds
        # units, not processes); runc 1.1.5 fails at StartTransientUnit
        # with "Cannot set property PIDs, or unknown property". Said here,
        # before anything is made.
        raise ConfigError("linux.cgroupsPath", f"{text!r}: {name} would be the container's own unit, but "
                          "systemd puts no process into a slice unit (StartTransientUnit refuses PIDs for "
                          "it, and runc fails there): name a scope, slice:prefix:name")
    unit = f"{prefix}-{name}.scope" if prefix else f"{name}.scope"
    return slice_, unit


def user_bus() -> str:
    """The user's bus address, as runc's DetectUserDbusSessionBusAddress."""
    addr = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
    if addr:
        return addr
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    return f"unix:path={runtime}/bus"


def _host_uid() -> int:
    """Our uid as the bus (SO_PEERCRED) sees it: in a user namespace (an
    engine's rootless namespace) the host id euid maps to (user_namespaces(7))."""
    uid = os.geteuid()
    try:
        with open("/proc/self/uid_map") as f:
            for line in f:
                inside, outside, count = (int(x) for x in line.split())
                if inside <= uid < inside + count:
                    return outside + uid - inside
    except (OSError, ValueError):
        pass
    return uid


# --------------------------------------------------------------- D-Bus

class Bus:
    """A connection to systemd on one bus (jeepney, blocking)."""

    def __init__(self, address: str):
        self.address = address
        self.conn = None

    def __enter__(self) -> "Bus":
        return self

    def __exit__(self, *exc) -> None:
        if self.conn is not None:
            self.conn.close()

    def _connect(self):
        """connect(2) to the bus socket, SASL EXTERNAL with the uid the bus
        sees (jeepney's Authenticator would send our namespace's euid)."""
        import socket

        from jeepney.bus import get_connectable_addresses
        from jeepney.io.blocking import DBusConnection

        try:
            target = next(get_connectable_addresses(self.address))
        except (RuntimeError, StopIteration, ValueError) as e:
            raise PyrunError(f"--systemd-cgroup: bus {self.address}: {e}") from None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(5.0)
        try:
            sock.connect(target)
            sock.sendall(b"\0AUTH EXTERNAL " + str(_host_uid()).encode().hex().encode() + b"\r\n")
            reply = sock.recv(512)
            if not reply.startswith(b"OK "):
                raise PyrunError(f"--systemd-cgroup: bus {self.address} refused authentication: "
                                 f"{reply.decode(errors='replace').strip()}")
            sock.sendall(b"BEGIN\r\n")
        except OSError as e:
            sock.close()
            raise PyrunError(f"--systemd-cgroup: cannot reach systemd on the bus {self.address}: connect: "
                             f"{errno_text(e)}") from None
        except BaseException:
            sock.close()
            raise
        sock.settimeout(None)
        self.conn = DBusConnection(sock)  # sends Hello

    def call(self, method: str, signature: str, body: tuple, what: str, unit: str, *,
             path: str = OBJ, interface: str = MANAGER):
        """One method call; its D-Bus error as one line naming bus and unit."""
        from jeepney import DBusAddress, new_method_call
        from jeepney.wrappers import DBusErrorResponse, unwrap_msg

        if self.conn is None:
            self._connect()
        addr = DBusAddress(path, bus_name=DEST, interface=interface)
        try:
            return unwrap_msg(self.conn.send_and_get_reply(new_method_call(addr, method, signature, body),
                                                           timeout=JOB_TIMEOUT))
        except DBusErrorResponse as e:
            detail = e.data[0] if e.data and isinstance(e.data[0], str) else ""
            raise BusError(e.name or "", f"--systemd-cgroup: {what} {unit} on the bus {self.address}: "
                           f"{e.name}{': ' + detail if detail else ''}") from None
        except (OSError, TimeoutError, ConnectionError) as e:
            raise PyrunError(f"--systemd-cgroup: {what} {unit} on the bus {self.address}: "
                             f"{type(e).__name__}: {e}") from None

    def job(self, method: str, signature: str, body: tuple, what: str, unit: str) -> None:
        """A method that queues a job (StartTransientUnit, StopUnit): wait for
        its JobRemoved signal (subscribed before the call, so it is not
        missed) and fail unless its result is "done"."""
        from jeepney import MatchRule
        from jeepney.bus_messages import message_bus

        if self.conn is None:
            self._connect()
        rule = MatchRule(type="signal", sender=DEST, interface=MANAGER, member="JobRemoved", path=OBJ)
        self.conn.send_and_get_reply(message_bus.AddMatch(rule), timeout=JOB_TIMEOUT)
        self.call("Subscribe", "", (), what, unit)  # systemd emits signals only to subscribers
        from collections import deque

        # Matched here without the sender: a signal carries systemd's unique
        # name (":1.N"), which only the bus daemon maps to the well-known one.
        local = MatchRule(type="signal", interface=MANAGER, member="JobRemoved", path=OBJ)
        queue: deque = deque()
        with self.conn.filter(local, queue=queue):
            (job,) = self.call(method, signature, body, what, unit)
            import time

            deadline = time.monotonic() + JOB_TIMEOUT
            while True:
                try:
                    signal = self.conn.recv_until_filtered(queue, timeout=max(0.0, deadline - time.monotonic()))
                except TimeoutError:
                    raise PyrunError(f"--systemd-cgroup: {what} {unit} on the bus {self.address}: "
                                     f"job {job} not finished after {JOB_TIMEOUT:.0f} s") from None
                _id, path, _unit, result = signal.body
                if path == job:
                    break
        if result != "done":
            raise PyrunError(f"--systemd-cgroup: {what} {unit} on the bus {self.address}: job {result}")


class BusError(PyrunError):
    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name


def start_unit(address: str, unit: str, slice_: str, pid: int, props: list) -> None:
    """StartTransientUnit of the scope with ``pid`` in it, Delegate=yes and
    ``props`` (accounting, limits); waits for the job."""
    props = [
        ("Description", ("s", f"pyrun container {unit}")),
        *([("Slice", ("s", slice_))] if slice_ else []),
        ("PIDs", ("au", [pid])),
        ("Delegate", ("b", True)),
        ("DefaultDependencies", ("b", False)),
        *props,
    ]
    with Bus(address) as bus:
        bus.job("StartTransientUnit", "ssa(sv)a(sa(sv))", (unit, "replace", props, []), "start", unit)


def stop_unit(address: str, unit: str) -> None:
    """StopUnit and wait for it (systemd removes the cgroups it made); a unit
    that is gone already (systemd collects an empty scope) is fine."""
    with Bus(address) as bus:
        try:
            bus.job("StopUnit", "ss", (unit, "replace"), "stop", unit)
        except BusError as e:
            if e.name != "org.freedesktop.systemd1.NoSuchUnit":
                raise
        try:
            bus.call("ResetFailedUnit", "s", (unit,), "reset", unit)
        except BusError:
            pass


# --------------------------------------------------------------- properties

def _cpu_quota_per_sec(cpu_max: str) -> int:
    """cpu.max "QUOTA PERIOD" -> CPUQuotaPerSecUSec, rounded up to 10 ms
    as runc does (systemd keeps a whole percent)."""
    quota, _, period = cpu_max.partition(" ")
    if quota == "max":
        return INFINITY
    value = int(quota) * 1_000_000 // int(period or 100000)
    return -(-value // 10000) * 10000


def _cpu_mask(text: str) -> bytes:
    """A cpuset list ("0-2,4") as systemd's AllowedCPUs byte array (bit i
    of byte i//8: CPU i)."""
    bits: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        bits.update(range(int(lo), int(hi or lo) + 1))
    out = bytearray(max(bits) // 8 + 1 if bits else 0)
    for b in bits:
        out[b // 8] |= 1 << (b % 8)
    return bytes(out)


def _uint(value: str) -> int:
    return INFINITY if value == "max" else int(value)


#: v2 files whose value ("max" or a number) is a unit property of its own.
_UINT_PROPERTIES = {"memory.max": "MemoryMax", "memory.low": "MemoryLow", "memory.high": "MemoryHigh",
                    "memory.swap.max": "MemorySwapMax", "pids.max": "TasksMax"}


def properties(items: list[Write]) -> list[tuple[str, tuple[str, object]]]:
    """The unit properties for the limits systemd knows (runc's
    genV2ResourcesProperties); the others are only written to files."""
    props: list[tuple[str, tuple[str, object]]] = []
    for w in items:
        if w.file in _UINT_PROPERTIES:
            props.append((_UINT_PROPERTIES[w.file], ("t", _uint(w.value))))
        elif w.file == "cpu.weight":
            props.append(("CPUWeight", ("t", int(w.value))))
        elif w.file == "cpu.max":
            props.append(("CPUQuotaPerSecUSec", ("t", _cpu_quota_per_sec(w.value))))
            period = w.value.partition(" ")[2]
            if period:
                props.append(("CPUQuotaPeriodUSec", ("t", int(period))))
        elif w.file == "cpuset.cpus":
            props.append(("AllowedCPUs", ("ay", _cpu_mask(w.value))))
        elif w.file == "cpuset.mems":
            props.append(("AllowedMemoryNodes", ("ay", _cpu_mask(w.value))))
        elif w.file == "io.weight" and w.value.startswith("default "):
            props.append(("IOWeight", ("t", int(w.value.split()[1]))))
    return props


def legacy_properties(items: list[Write]) -> list[tuple[str, tuple[str, object]]]:
    """The unit properties systemd applies on cgroup v1 (runc's
    genV1ResourcesProperties; systemd.resource-control(5), the "legacy"
    settings): MemoryLimit, CPUShares, CPUQuotaPerSecUSec (+ its period),
    BlockIOWeight, TasksMax. systemd does not manage cpuset, swap, the soft
    limit... on v1: those are only written to files."""
    value = {w.file: w.value for w in items}
    props: list[tuple[str, tuple[str, object]]] = []
    if "memory.limit_in_bytes" in value:
        limit = int(value["memory.limit_in_bytes"])
        props.append(("MemoryLimit", ("t", INFINITY if limit < 0 else limit)))
    if "cpu.shares" in value:
        props.append(("CPUShares", ("t", int(value["cpu.shares"]))))
    quota, period = int(value.get("cpu.cfs_quota_us", 0)), int(value.get("cpu.cfs_period_us", 0))
    if period:
        props.append(("CPUQuotaPeriodUSec", ("t", period)))
    if quota or period:
        per_sec = _cpu_quota_per_sec(f"{quota} {period or 100000}") if quota > 0 else INFINITY
        props.append(("CPUQuotaPerSecUSec", ("t", per_sec)))
    if "blkio.weight" in value:
        props.append(("BlockIOWeight", ("t", int(value["blkio.weight"]))))
    if "pids.max" in value:
        props.append(("TasksMax", ("t", _uint(value["pids.max"]))))
    return props


def device_properties(resources: dict | None, devices) -> list[tuple[str, tuple[str, object]]]:
    """The device rules as DevicePolicy/DeviceAllow (runc's
    systemdProperties): systemd applies its own list to the unit's devices
    cgroup whenever it re-realizes the unit (daemon-reload, a property
    change), so it must say what pyrun's files say, or at least no more.
    systemd has allow lists only: an allow-all config with exceptions (and a
    "c *:N" rule, which it cannot express) become narrower there, never wider."""
    from pyrun.cgroups.convert import device_writes_v1
    from pyrun.log import log

    items, allowlist, _expect = device_writes_v1(resources, devices)
    if not allowlist:
        if len(items) == 1:  # allow all, no exception: systemd's default
            return [("DevicePolicy", ("s", "auto")), ("DeviceAllow", ("a(ss)", []))]
        log.debug_msg("--systemd-cgroup: systemd has no deny list: the unit's own device rules deny every "
                      "device; pyrun's rules in devices.deny are the container's")
        return [("DevicePolicy", ("s", "strict")), ("DeviceAllow", ("a(ss)", []))]
    entries = []
    for w in items[1:]:
        kind, number, perms = w.value.split()
        major, minor = number.split(":")
        group = "char-" if kind == "c" else "block-"
        if major == "*" and minor != "*":
            log.debug_msg(f"--systemd-cgroup: {w.value!r} left out of the unit's DeviceAllow (systemd has no "
                          "'*:N' rule); pyrun's devices.allow has it")
            continue
        if major == "*":
            path = group + "*"
        elif minor == "*":
            path = group + major  # "char-136": systemd 240+ takes a major number
        else:
            path = f"/dev/{'char' if kind == 'c' else 'block'}/{major}:{minor}"
        entries.append((path, perms))
    return [("DevicePolicy", ("s", "strict")), ("DeviceAllow", ("a(ss)", entries))]


# --------------------------------------------------------------- the cgroup

class _Unit:
    """What both kinds of scope add to their cgroup: the bus and the unit
    that own it, named in the container's record."""

    bus: str
    unit: str
    path: str

    @property
    def record(self) -> str:
        return "\t".join((TAG, self.bus, self.unit, self.path))


class Cgroup(_Unit, v2.Cgroup):
    """The scope's cgroup: a v2 directory, plus the unit and bus that own it.

    ``record`` is what the container's record keeps:
    ``systemd<TAB>bus address<TAB>unit<TAB>cgroup directory``."""

    def __init__(self, bus: str, unit: str, path: str, slice_: str = "",
                 items: list[Write] | None = None, devices=None):
        super().__init__(path)
        self.bus, self.unit, self.slice = bus, unit, slice_
        self.items, self.devices = items or [], devices
        self.to_start = False  # set by setup(): add() starts the unit

    @classmethod
    def from_record(cls, text: str) -> "Cgroup | LegacyCgroup":
        _tag, bus, unit, path = text.split("\t", 3)
        if not v2.available():
            return LegacyCgroup.from_record(text)
        return cls(bus, unit, path)

    def create(self, top: str) -> None:  # systemd makes it when add() starts the unit
        pass

    def fork_into(self) -> int | None:
        """``exec``: clone3(2) into the scope's directory (v2.fork_into),
        where the caller may write there; else None, and :meth:`add` moves
        the process (cgroup.procs, or AttachProcessesToUnit). ``create``
        keeps fork(2) then :meth:`start`: StartTransientUnit with
        PIDs=[stage 1] is what makes the scope and its directory, so there
        is nothing to clone into before."""
        if self.to_start:
            return None
        return super().fork_into()

    def add(self, pid: int) -> None:
        """The container's first process: :meth:`start`. Later ones
        (``exec``): cgroup.procs, or, where that is denied (rootless: the
        caller's cgroup and the scope meet only at a root-owned ancestor),
        systemd's AttachProcessesToUnit, as runc 1.2 does."""
        if self.to_start:
            self.start(pid)
            return
        try:
            super().add(pid)
        except PyrunError as denied:
            try:
                with Bus(self.bus) as bus:
                    bus.call("AttachProcessesToUnit", "ssau", (self.unit, "", [pid]), "attach pid to", self.unit)
            except PyrunError:
                raise denied from None

    def start(self, pid: int) -> None:
        """StartTransientUnit with PIDs=[pid], wait for the job, then write
        every limit to the scope's files and attach the device program."""
        self.to_start = False
        props = [("MemoryAccounting", ("b", True)), ("CPUAccounting", ("b", True)),
                 ("IOAccounting", ("b", True)), ("TasksAccounting", ("b", True))]
        start_unit(self.bus, self.unit, self.slice, pid, props + properties(self.items))
        actual = MOUNT + v2.own_cgroup(str(pid))
        if actual != self.path:
            # systemd put it elsewhere (a slice of another manager): follow it
            self.path = actual
        self.apply(self.items)
        if self.devices is not None:
            v2.attach_device_filter(self, self.devices)

    # systemd removes a scope's cgroup as soon as the scope stops (its last
    # process gone; with systemd 252 also when the kernel OOM-killed one of
    # them): a file opened meanwhile fails with ENODEV. Gone is gone.
    def pids(self) -> list[int]:
        try:
            return super().pids()
        except OSError as e:
            if e.errno != errno.ENODEV:
                raise
            return []

    def events(self, name: str = "cgroup.events") -> dict[str, int]:
        try:
            return super().events(name)
        except OSError as e:
            if e.errno != errno.ENODEV:
                raise
            return {}

    def kill(self) -> bool:
        try:
            return super().kill()
        except OSError as e:
            if e.errno != errno.ENODEV:
                raise
            return True

    def update(self, resources: dict) -> None:
        """SetUnitProperties (runtime=true) for what systemd knows, so that
        a daemon-reload keeps it, then the files (runc's Set)."""
        props = properties(writes(resources))
        if props:
            with Bus(self.bus) as bus:
                bus.call("SetUnitProperties", "sba(sv)", (self.unit, True, props), "set properties of", self.unit)
        v2.update(self, resources)

    def remove(self, timeout: float = 10.0) -> None:
        """StopUnit and wait for it (its cgroup goes with it), then rmdir
        what is left."""
        stop_unit(self.bus, self.unit)
        super().remove(timeout)


class LegacyCgroup(_Unit, v1.Cgroup):
    """The scope on a cgroup v1 or hybrid host: its directory in every
    hierarchy (a :class:`pyrun.cgroups.v1.Cgroup`), plus the unit and bus.

    ``record``: ``systemd<TAB>bus<TAB>unit<TAB>`` and the directories, one a
    line (v1's record)."""

    def __init__(self, bus: str, unit: str, dirs: dict[str, str], mounts: dict[str, frozenset[str]],
                 slice_: str = "", items: list[Write] | None = None, resources: dict | None = None,
                 devices=None, ignore_limits: bool = False):
        super().__init__(dirs, mounts)
        self.bus, self.unit, self.slice, self.mounts = bus, unit, slice_, mounts
        self.items, self.resources, self.devices = items or [], resources, devices
        self.ignore_limits = ignore_limits
        self.to_start = False  # set by setup(): add() starts the unit

    @classmethod
    def from_record(cls, text: str) -> "LegacyCgroup":
        _tag, bus, unit, path = text.split("\t", 3)
        mounts = v1.hierarchies()
        dirs = {}
        for d in path.split("\n"):
            mnt = max((m for m in mounts if d.startswith(m + "/")), key=len, default=None)
            if mnt is not None:
                dirs[mnt] = d
        return cls(bus, unit, dirs, {m: mounts[m] for m in dirs})

    # The unit is started with stage 1's pid (StartTransientUnit PIDs=),
    # and exec writes cgroup.procs as runc's v1 systemd driver: no self-move.
    open_tasks = None

    def add(self, pid: int) -> None:
        """The container's first process: :meth:`start`; later ones
        (``exec``, root only): cgroup.procs of every hierarchy."""
        if self.to_start:
            self.start(pid)
        else:
            super().add(pid)

    def start(self, pid: int) -> None:
        """StartTransientUnit (systemd makes the directories of the
        controllers it manages and puts ``pid`` there), then, as runc's
        joinCgroups, the same directory in every other hierarchy with
        ``pid`` in it, then the device rules and every limit to the files
        (runc's Set after Apply)."""
        self.to_start = False
        props = [("MemoryAccounting", ("b", True)), ("CPUAccounting", ("b", True)),
                 ("BlockIOAccounting", ("b", True)), ("TasksAccounting", ("b", True))]
        props += legacy_properties(self.items) + device_properties(self.resources, self.devices)
        start_unit(self.bus, self.unit, self.slice, pid, props)
        for mnt, d in list(self.dirs.items()):
            ctrls = self.mounts[mnt]
            if "name=systemd" in ctrls or v1.UNIFIED in ctrls:
                # systemd's own: it tracks the unit there (and made it)
                if not os.path.isdir(d):
                    self._drop(mnt)
                continue
            self.make(mnt, d)
            try:
                _write(os.path.join(d, "cgroup.procs"), str(pid))
            except OSError as e:
                raise PyrunError(f"cgroup: add pid {pid} to {d}/cgroup.procs: {errno_text(e)}") from None
        self.apply_devices(self.resources, self.devices, self.ignore_limits)
        self.apply(self.items, self.ignore_limits)

    def update(self, resources: dict) -> None:
        """SetUnitProperties (runtime) for what systemd manages on v1, then
        the files (runc's legacyManager.Set; no device rules: ``update``
        has none, so systemd's stay as they are)."""
        from pyrun.cgroups.convert import writes_v1

        props = legacy_properties(writes_v1(resources))
        if props:
            with Bus(self.bus) as bus:
                bus.call("SetUnitProperties", "sba(sv)", (self.unit, True, props), "set properties of", self.unit)
        super().update(resources)

    def remove(self, timeout: float = 10.0) -> None:
        """StopUnit (systemd removes its directories), then rmdir the
        container's directory in every hierarchy (runc's Destroy)."""
        stop_unit(self.bus, self.unit)
        super().remove(timeout)


def legacy_paths(slice_: str, unit: str, mounts: dict[str, frozenset[str]]) -> dict[str, str]:
    """The scope's directory in each hierarchy, where systemd puts a unit:
    below PID 1's own cgroup there without its init.scope (a systemd in a
    container), the slice's nesting, the unit (runc's getSubsystemPath)."""
    init = v1.own_cgroups("1")
    rel = expand_slice(slice_).rstrip("/") + "/" + unit
    out = {}
    for mnt, ctrls in mounts.items():
        base = init.get(frozenset([v1.UNIFIED]) if v1.UNIFIED in ctrls else ctrls, "/")
        if base.endswith("/init.scope") or base == "init.scope":
            base = base[:-len("init.scope")]
        out[mnt] = os.path.normpath(f"{mnt}/{base}/{rel}")
    return out


def _legacy_setup(spec, slice_: str, unit: str, address: str, ignore_limits: bool) -> LegacyCgroup:
    """Root on a v1/hybrid host: the scope's directories computed, the
    limits and device rules converted (a bad one refused now)."""
    from pyrun.cgroups.convert import device_writes_v1, writes_v1

    resources = spec.linux.resources
    items = writes_v1(resources)
    device_writes_v1(resources, spec.linux.devices)
    mounts = v1.hierarchies()
    cg = LegacyCgroup(address, unit, legacy_paths(slice_, unit, mounts), mounts, slice_, items, resources,
                      spec.linux.devices, ignore_limits)
    cg.to_start = True
    return cg


def manager_cgroup(bus: Bus, unit: str) -> str:
    """The user manager's own cgroup (its ControlGroup property), under
    which its slices live."""
    (value,) = bus.call("Get", "ss", (MANAGER, "ControlGroup"), "ask systemd's ControlGroup for", unit,
                        interface="org.freedesktop.DBus.Properties")
    return value[1]


def setup(spec, container_id: str, rootless: bool, ignore_limits: bool) -> "Cgroup | LegacyCgroup":
    """The unit to be, its limits converted; nothing is started until
    ``add(pid)``. The bus is reached here, so that a host without systemd
    fails before anything is made."""
    slice_, unit = parse_path(spec.linux.cgroups_path, container_id, rootless)
    unified = v2.available()
    if rootless and not unified:
        # v1 has no safe delegation, and systemd delegates nothing there:
        # refused as runc 1.1 refuses it (without the flag: no cgroup)
        raise PyrunError("--systemd-cgroup: cannot use rootless systemd cgroups manager on cgroup v1 (this "
                         "host's cgroups are v1 or hybrid); run without --systemd-cgroup (no cgroup, as "
                         "runc), as root, or boot with systemd.unified_cgroup_hierarchy=1")
    address = user_bus() if rootless else os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or SYSTEM_BUS
    with Bus(address) as bus:
        base = manager_cgroup(bus, unit) if rootless else ""
        if not rootless:  # reach systemd now: no systemd, no container
            bus.call("Get", "ss", (MANAGER, "Version"), "ask systemd's version for", unit,
                     interface="org.freedesktop.DBus.Properties")
    if not unified:
        return _legacy_setup(spec, slice_, unit, address, ignore_limits)
    items = writes(spec.linux.resources)
    base = "" if base == "/" else base
    path = MOUNT + base + expand_slice(slice_).rstrip("/") + "/" + unit
    devices = None if rootless else device_rules(spec.linux.resources, spec.linux.devices)
    cg = Cgroup(address, unit, os.path.normpath(path), slice_, items, devices)
    cg.to_start = True
    return cg
