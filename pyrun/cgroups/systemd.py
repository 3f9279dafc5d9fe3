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
* The scope's cgroup is a cgroup v2 directory: every limit is also written
  to its files by the v2 backend (runc's fsMgr.Set after the properties),
  device rules are pyrun's BPF program, and freeze, kill, pids, stats are
  the v2 ones. ``remove`` stops the unit (StopUnit), ``update`` sets
  properties (SetUnitProperties) and files.

The record names the bus and the unit before the unit is started, so a
``delete`` after a create killed half way stops it. The D-Bus client is
jeepney (pure Python, imported only here, only under --systemd-cgroup).
"""

from __future__ import annotations

import errno
import os

from pyrun.cgroups import v2
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


def properties(items: list[Write]) -> list[tuple[str, tuple[str, object]]]:
    """The unit properties for the limits systemd knows (runc's
    genV2ResourcesProperties); the others are only written to files."""
    props: list[tuple[str, tuple[str, object]]] = []
    for w in items:
        if w.file == "memory.max":
            props.append(("MemoryMax", ("t", _uint(w.value))))
        elif w.file == "memory.low":
            props.append(("MemoryLow", ("t", _uint(w.value))))
        elif w.file == "memory.high":
            props.append(("MemoryHigh", ("t", _uint(w.value))))
        elif w.file == "memory.swap.max":
            props.append(("MemorySwapMax", ("t", _uint(w.value))))
        elif w.file == "pids.max":
            props.append(("TasksMax", ("t", _uint(w.value))))
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


# --------------------------------------------------------------- the cgroup

class Cgroup(v2.Cgroup):
    """The scope's cgroup: a v2 directory, plus the unit and bus that own it.

    ``record`` is what the container's record keeps:
    ``systemd<TAB>bus address<TAB>unit<TAB>cgroup directory``."""

    def __init__(self, bus: str, unit: str, path: str, slice_: str = "",
                 items: list[Write] | None = None, devices=None):
        super().__init__(path)
        self.bus, self.unit, self.slice = bus, unit, slice_
        self.items, self.devices = items or [], devices
        self.to_start = False  # set by setup(): add() starts the unit

    @property
    def record(self) -> str:
        return "\t".join((TAG, self.bus, self.unit, self.path))

    @classmethod
    def from_record(cls, text: str) -> "Cgroup":
        _tag, bus, unit, path = text.split("\t")
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
        props = [
            ("Description", ("s", f"pyrun container {self.unit}")),
            ("PIDs", ("au", [pid])),
            ("Delegate", ("b", True)),
            ("DefaultDependencies", ("b", False)),
            ("MemoryAccounting", ("b", True)),
            ("CPUAccounting", ("b", True)),
            ("IOAccounting", ("b", True)),
            ("TasksAccounting", ("b", True)),
        ]
        if self.slice:
            props.insert(1, ("Slice", ("s", self.slice)))
        props += properties(self.items)
        with Bus(self.bus) as bus:
            bus.job("StartTransientUnit", "ssa(sv)a(sa(sv))", (self.unit, "replace", props, []),
                    "start", self.unit)
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
        """StopUnit and wait for it (its cgroup goes with it); a unit that
        is gone already (systemd collects an empty scope) is fine."""
        with Bus(self.bus) as bus:
            try:
                bus.job("StopUnit", "ss", (self.unit, "replace"), "stop", self.unit)
            except BusError as e:
                if e.name != "org.freedesktop.systemd1.NoSuchUnit":
                    raise
            try:
                bus.call("ResetFailedUnit", "s", (self.unit,), "reset", self.unit)
            except BusError:
                pass
        super().remove(timeout)


def manager_cgroup(bus: Bus, unit: str) -> str:
    """The user manager's own cgroup (its ControlGroup property), under
    which its slices live."""
    (value,) = bus.call("Get", "ss", (MANAGER, "ControlGroup"), "ask systemd's ControlGroup for", unit,
                        interface="org.freedesktop.DBus.Properties")
    return value[1]


def setup(spec, container_id: str, rootless: bool, ignore_limits: bool) -> Cgroup:
    """The unit to be, its limits converted; nothing is started until
    ``add(pid)``. The bus is reached here, so that a host without systemd
    fails before anything is made."""
    slice_, unit = parse_path(spec.linux.cgroups_path, container_id, rootless)
    items = writes(spec.linux.resources)
    address = user_bus() if rootless else os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or SYSTEM_BUS
    with Bus(address) as bus:
        base = manager_cgroup(bus, unit) if rootless else ""
        if not rootless:  # reach systemd now: no systemd, no container
            bus.call("Get", "ss", (MANAGER, "Version"), "ask systemd's version for", unit,
                     interface="org.freedesktop.DBus.Properties")
    if not v2.available():
        raise PyrunError("--systemd-cgroup: pyrun's systemd driver needs a unified cgroup v2 hierarchy "
                         f"at {MOUNT} (this host's cgroups are v1 or hybrid)")
    base = "" if base == "/" else base
    path = MOUNT + base + expand_slice(slice_).rstrip("/") + "/" + unit
    devices = None if rootless else device_rules(spec.linux.resources, spec.linux.devices)
    cg = Cgroup(address, unit, os.path.normpath(path), slice_, items, devices)
    cg.to_start = True
    return cg
