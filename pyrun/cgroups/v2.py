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

``linux.resources`` is converted as runc converts it (convert.writes), so
a config written for runc limits the same way here. Used where
/sys/fs/cgroup is a cgroup2 root; v1 and hybrid hosts: pyrun.cgroups.v1.
"""

from __future__ import annotations

import errno
import os

from pyrun.cgroups.files import _flat, _mkdirs, _read, _rmdir, _write
from pyrun.cgroups.convert import RES, Write, controller_of, device_rules, of, writes
from pyrun.errors import ConfigError, PyrunError, errno_text

MOUNT = "/sys/fs/cgroup"

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
                              "(slice:prefix:name) needs --systemd-cgroup")
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
                         f"{errno_text(e)}{hint}") from None


class Cgroup:
    """The container's cgroup directory."""

    def __init__(self, path: str):
        self.path = path

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    # -- setup
    def create(self, top: str, busy_ok: bool = False) -> None:
        """mkdir(2) every level below ``top`` (the hierarchy's root, or the
        delegated one), enabling controllers on the way down. ``busy_ok``:
        processes already there are the caller's to judge (a hybrid host's
        tree, beside the v1 hierarchies)."""
        _mkdirs(top, self.path, before=_enable_controllers)
        if not busy_ok and self.pids():
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
                    why = f"write {w.value!r} to {w.file}: {errno_text(e)}"
                raise ConfigError(w.path, why) from None

    def fork_into(self) -> int | None:
        """fork(2) with the child starting in this cgroup: :func:`fork_into`.
        None: not here; the caller forks and calls :meth:`add`."""
        return fork_into(self.path)

    def add(self, pid: int) -> None:
        """Move ``pid`` (and so, later, its children) into the cgroup."""
        try:
            _write(self.file("cgroup.procs"), str(pid))
        except OSError as e:
            raise PyrunError(f"cgroup: add pid {pid} to {self.file('cgroup.procs')}: {errno_text(e)}") from None

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
        deadline, delay = time.monotonic() + timeout, 0.0001
        while self.events().get("frozen", 0) != int(on):
            if time.monotonic() > deadline:
                raise PyrunError(f"cgroup {self.path}: not {'frozen' if on else 'thawed'} after {timeout:.0f} s")
            time.sleep(delay)  # soon, then less often (pyrun.cgroups.v1.Cgroup.freeze)
            delay = min(delay * 2, 0.005)

    def kill(self) -> bool:
        """SIGKILL every process in the cgroup at once (cgroup.kill, Linux
        5.14). False where the kernel has no cgroup.kill."""
        try:
            _write(self.file("cgroup.kill"), "1")
            return True
        except FileNotFoundError:
            return False

    def stats(self) -> dict:
        return stats(self)

    def update(self, resources: dict) -> None:
        update(self, resources)

    def oom_kills(self) -> int:
        return oom_kills(self)

    def oom_fd(self) -> None:
        return None  # cgroup v2: memory.events' oom_kill, polled

    def remove(self, timeout: float = 10.0) -> None:
        """rmdir(2) once the last process is gone (EBUSY until then)."""
        import time

        deadline = time.monotonic() + timeout
        _rmdir(self.path, deadline)


# ------------------------------------------------ starting a process inside

# clone3(2) errors after which fork(2) and a write to cgroup.procs are the
# way in: no clone3 (ENOSYS: Linux < 5.3, or a seccomp profile that refuses
# it, as engines' default profiles do) or no CLONE_INTO_CGROUP (E2BIG or
# EINVAL: Linux < 5.7, which knows neither the size nor the flag), or not
# allowed to the caller (EPERM, EACCES: a rootless exec into a systemd
# scope, where systemd's AttachProcessesToUnit does the move instead).
# Anything else (EBUSY, EAGAIN at pids.max...) would fail the move as well.
CLONE3_FALLBACK = frozenset((errno.ENOSYS, errno.E2BIG, errno.EINVAL, errno.EPERM, errno.EACCES))
CLONE3_STEP = "clone3(CLONE_INTO_CGROUP)"


def fork_into(path: str) -> int | None:
    """fork(2), the child starting in the cgroup directory ``path``:
    clone3(2) with CLONE_INTO_CGROUP (Linux 5.7) and an O_PATH descriptor
    of the directory, as crun does for create and exec and runc for exec.
    A move by a write to cgroup.procs instead takes the kernel's global
    cgroup_threadgroup_rwsem for writing, which can wait an RCU grace
    period; a process cloned in starts inside, and the kernel checks the
    caller's right to put it there as for that write (cgroup.procs of the
    common ancestor writable, with the caller's credentials).

    Returns the child's pid in the parent and 0 in the child, as os.fork().
    None, with no child made, where this cannot be done: an error of
    :data:`CLONE3_FALLBACK`, another thread of ours running (the raw system
    call skips what glibc's fork() does for threads: a malloc lock held by
    one would stay locked in the child), or the test switch
    PYRUN_NO_CLONE_INTO_CGROUP=1 (with PYRUN_TEST_HOOKS=1). The caller then
    forks and writes the child's pid to cgroup.procs, as before. Other
    errors are raised, naming the call and errno."""
    import _thread

    from pyrun.errors import SyscallError
    from pyrun.log import _KILL_AT, log

    environ = os.environ
    if environ.get("PYRUN_TEST_HOOKS") == "1" and environ.get("PYRUN_NO_CLONE_INTO_CGROUP") == "1":
        log.debug_msg(f"{CLONE3_STEP}: off (PYRUN_NO_CLONE_INTO_CGROUP=1): fork(2) + cgroup.procs")
        return None
    # (the test hook's kill thread, if armed, only ever waits in read(2))
    if _thread._count() > (_KILL_AT is not None):
        log.debug_msg(f"{CLONE3_STEP}: other threads run: fork(2) + cgroup.procs")
        return None
    from pyrun._native import lib

    try:
        fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise SyscallError("open(O_PATH)", e.errno, path) from None
    try:
        timer = log.step(CLONE3_STEP)
        timer.__enter__()
        pid = lib.pyrun_clone3_into_cgroup(fd)
        if pid != 0:  # the child does not report the step as its own
            timer.__exit__(None, None, None)
    finally:
        os.close(fd)
    if pid >= 0:
        return pid
    if -pid in CLONE3_FALLBACK:
        log.debug_msg(f"{SyscallError(CLONE3_STEP, -pid, path)}: fork(2) + cgroup.procs instead")
        return None
    raise SyscallError(CLONE3_STEP, -pid, path)


def setup(spec, container_id: str, rootless: bool, ignore_limits: bool) -> Cgroup | None:
    """Decide and build the container's cgroup, limits written, no process
    in it yet. None: the container runs in the caller's cgroup, which is
    what runc does when it cannot have one and no limit was asked for."""
    items = writes(spec.linux.resources)
    path = path_for(spec.linux.cgroups_path, container_id, rootless)
    if path is None:
        from pyrun.cgroups.files import without_limits

        return without_limits(items, "no cgroup is delegated to this user (systemd does it for user@UID.service; "
                              "or chown a cgroup and its cgroup.procs and cgroup.subtree_control)", ignore_limits)
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


def update(cg: Cgroup, resources) -> None:
    """Change a live container's limits (``pyrun update``)."""
    resources = of(resources)  # every field checked before the cgroup is read
    mem = resources.memory
    if mem.swap is not None and mem.limit is None:
        # memory+swap is relative to the memory limit in force
        from pyrun.record import replace

        current = _read_or(cg, "memory.max", "max").strip()
        mem = replace(mem, limit=-1 if current == "max" else int(current))
        resources = replace(resources, memory=mem)
    items = writes(resources)
    if mem.check_before_update and (mem.limit or 0) > 0:
        usage = _value(_read_or(cg, "memory.current", "0"))
        if mem.limit < usage:
            raise ConfigError(f"{RES}.memory.limit", f"{mem.limit} is below the current usage ({usage})")
    cg.apply(items)


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
