"""cgroup v1 and hybrid hosts: runc's cgroupfs driver (runc's
libcontainer/cgroups/fs; cgroups(7) "Cgroups version 1"; the kernel's
Documentation/admin-guide/cgroup-v1/).

cgroup v1 has one hierarchy per mounted controller (or group of them:
``cpu,cpuacct``), each a directory tree under ``/sys/fs/cgroup/<name>``; a
hybrid host adds a cgroup2 tree at ``/sys/fs/cgroup/unified`` for the
controllers no v1 hierarchy took. The container gets a directory in every
hierarchy, at the same path (runc's layout): ``linux.cgroupsPath`` absolute
from the hierarchy's root, relative from the caller's own cgroup in that
hierarchy (/proc/self/cgroup), ``/pyrun/<id>`` without one. Each limit goes
to the hierarchy of its controller; device rules are written to
devices.deny and devices.allow before any process of the container exists.
In the cgroup2 tree of a hybrid host the container is a member too, where
that tree can be written: it gives ``cgroup.kill`` (one atomic SIGKILL for
``kill --all`` and ``delete``) and the controllers bound there (such as
hugetlb, on a host whose v1 tree does not mount it).

The record keeps the container's directories, one a line.
"""

from __future__ import annotations

import errno
import os

from pyrun.cgroups.files import _flat, _mkdirs, _read, _rmdir, _write
from pyrun.errors import ConfigError, PyrunError, errno_text

# The conversions (pyrun.cgroups.convert) and the v2 module are imported
# where they are used: ``state``, ``kill`` and ``ps`` only read a file or two.
MOUNT = "/sys/fs/cgroup"
RES = "linux.resources"
UNIFIED = "unified"  # the controllers key of a hybrid host's cgroup2 tree
KNOWN = frozenset({"cpuset", "cpu", "cpuacct", "blkio", "memory", "devices", "freezer", "net_cls",
                   "net_prio", "perf_event", "hugetlb", "pids", "rdma", "misc", "name=systemd"})
# Files runc writes only where the kernel has them (a debug line otherwise):
# TCP kernel memory needs CONFIG_MEMCG_KMEM, cpu.idle and cpu.cfs_burst_us
# are new, the blkio weights exist only with CFQ or BFQ.
OPTIONAL = frozenset({"memory.kmem.tcp.limit_in_bytes", "cpu.idle",
                      "cpu.cfs_burst_us", "blkio.weight", "blkio.leaf_weight", "blkio.weight_device",
                      "blkio.leaf_weight_device"})
_BFQ = {"blkio.weight": "blkio.bfq.weight", "blkio.weight_device": "blkio.bfq.weight_device"}
ENOTSUPP = 524  # the kernel's internal "not supported", which some cgroup v1 writes return


_hierarchies: dict[str, frozenset[str]] | None = None  # hierarchies(), once per process


def hierarchies() -> dict[str, frozenset[str]]:
    """Mount point → the controllers of each cgroup hierarchy mounted
    (/proc/self/mountinfo, proc(5)); a hybrid host's cgroup2 tree has
    {"unified", its cgroup.controllers...}. The first mount of each.

    Read once per process and kept (callers only read it): ``run`` needs
    it for the record, the cgroup, the container's /sys/fs/cgroup view
    and the delete, and the host's cgroup mounts do not change under one
    command. Only the host side calls it, never a stage that has
    unshared its mount namespace."""
    global _hierarchies
    if _hierarchies is None:
        _hierarchies = _read_hierarchies()
    return _hierarchies


def _read_hierarchies() -> dict[str, frozenset[str]]:
    out: dict[str, frozenset[str]] = {}
    seen = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            if len(rfields) < 3 or rfields[0] not in ("cgroup", "cgroup2") or fields[3] != "/":
                continue
            mnt = fields[4].replace("\\040", " ")
            if rfields[0] == "cgroup":
                ctrls = frozenset(o for o in rfields[2].split(",") if o in KNOWN)
            else:
                try:
                    ctrls = frozenset([UNIFIED, *_read(os.path.join(mnt, "cgroup.controllers")).split()])
                except OSError:
                    continue
            if ctrls and ctrls not in seen:
                seen.add(ctrls)
                out[mnt] = ctrls
    return out


def own_cgroups(pid: str = "self") -> dict[frozenset[str], str]:
    """The caller's cgroup in each hierarchy (/proc/PID/cgroup:
    "4:memory:/path", "0::/path" for cgroup2)."""
    out = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            num, ctrls, path = line.rstrip("\n").split(":", 2)
            key = frozenset([UNIFIED]) if num == "0" else frozenset(ctrls.split(","))
            out[key] = path
    return out


def paths_for(cgroups_path: str | None, container_id: str,
              mounts: dict[str, frozenset[str]]) -> dict[str, str]:
    """The container's directory in each hierarchy (runc's fs subsysPath)."""
    if cgroups_path and ":" in cgroups_path and not cgroups_path.startswith("/"):
        raise ConfigError("linux.cgroupsPath", f"{cgroups_path!r}: the systemd form "
                          "(slice:prefix:name) needs --systemd-cgroup")
    own = own_cgroups() if cgroups_path and not cgroups_path.startswith("/") else {}
    out = {}
    for mnt, ctrls in mounts.items():
        if not cgroups_path:
            rel = f"/pyrun/{container_id}"
        elif cgroups_path.startswith("/"):
            rel = cgroups_path
        else:
            mine = own.get(frozenset([UNIFIED]) if UNIFIED in ctrls else ctrls, "/")
            rel = os.path.join(mine, cgroups_path)
        path = os.path.normpath(mnt + "/" + rel)
        if not path.startswith(mnt + "/"):
            raise ConfigError("linux.cgroupsPath", f"{cgroups_path!r} leaves {mnt}")
        out[mnt] = path
    return out


class Cgroup:
    """The container's directories, one per hierarchy."""

    def __init__(self, dirs: dict[str, str], mounts: dict[str, frozenset[str]]):
        self.dirs = dirs
        self.mounts = mounts
        self.path = "\n".join(dirs.values())
        self.by_ctrl: dict[str, str] = {}
        self.unified = None
        self.shared = False  # processes were there before ours (create)
        for mnt, d in dirs.items():
            if UNIFIED in mounts[mnt]:
                self.unified = d
            else:
                for c in mounts[mnt]:
                    self.by_ctrl[c] = d
        for mnt, d in dirs.items():  # hybrid: what no v1 hierarchy has, from the cgroup2 tree
            if UNIFIED in mounts[mnt]:
                for c in mounts[mnt] - {UNIFIED}:
                    self.by_ctrl.setdefault(c, d)

    @classmethod
    def from_record(cls, path: str) -> "Cgroup":
        mounts = hierarchies()
        dirs = {}
        for d in path.split("\n"):
            mnt = max((m for m in mounts if d.startswith(m + "/")), key=len, default=None)
            if mnt is not None:
                dirs[mnt] = d
        return cls(dirs, {m: mounts[m] for m in dirs})

    def _drop(self, mnt: str) -> None:
        d = self.dirs.pop(mnt)
        self.path = "\n".join(self.dirs.values())
        if d == self.unified:
            self.unified = None
        self.by_ctrl = {c: x for c, x in self.by_ctrl.items() if x != d}  # its limits now fail, naming them

    def file(self, controller: str, name: str) -> str | None:
        d = self.by_ctrl.get(controller)
        return os.path.join(d, name) if d else None

    # -- setup
    def create(self) -> None:
        """mkdir(2) every level in every hierarchy; cpuset's cpus and mems
        copied down from the parent into each level that has none (a
        cpuset cgroup without them takes no process: runc's ensureParent).

        As runc 1.1: a cgroup that already has processes (a cgroupsPath
        shared on purpose) is a warning, ``container's cgroup is not
        empty``, and the container runs; a frozen one is refused before
        any process of ours goes in (create would wait there forever)."""
        from pyrun.cgroups import v2
        from pyrun.log import log

        for mnt, d in list(self.dirs.items()):
            if d == self.unified:
                try:
                    v2.Cgroup(d).create(mnt, busy_ok=True)
                except PyrunError as e:
                    log.debug_msg(f"cgroup: the hybrid cgroup2 tree is left out ({e})")
                    self._drop(mnt)
                continue
            self.make(mnt, d)
        busy = self.pids()
        self.shared = bool(busy)
        if busy:
            log.warning(f"container's cgroup is not empty: {len(busy)} process(es) found")
        if self.frozen():
            raise PyrunError("container's cgroup unexpectedly frozen")

    def make(self, mnt: str, d: str) -> None:
        """mkdir(2) each level of ``d`` below the hierarchy's mount ``mnt``."""
        _mkdirs(mnt, d, after=_copy_cpuset if d == self.by_ctrl.get("cpuset") else None)

    def apply(self, items: list, ignore_missing: bool = False) -> None:
        """Write each limit (convert.Write) to its controller's hierarchy; an
        error names the config field and the file."""
        from pyrun.log import log

        items = _memory_order(self, items)
        period_later = None
        for i, w in enumerate(items + [None]):
            if w is None:  # the end: the period kept for after the quota
                if period_later is None:
                    break
                w, period_later = period_later, None
            ctrl = w.file.split(".", 1)[0]
            d, name = self.by_ctrl.get(ctrl), w.file
            if d is not None and d == self.unified:
                name = name.replace(".limit_in_bytes", ".max")  # hugetlb in a hybrid host's cgroup2 tree
            if d is None:
                why = (f"no {ctrl} controller is mounted on this host (cgroup v1: {MOUNT}/{ctrl})")
                if ignore_missing:
                    log.debug_msg(f"cgroup limit ignored: {w.path}: {why}")
                    continue
                raise ConfigError(w.path, f"cannot apply it: {why}")
            path = os.path.join(d, name)
            if name in _BFQ and os.path.exists(os.path.join(d, _BFQ[name])):
                path = os.path.join(d, _BFQ[name])
            try:
                _write(path, w.value)
            except OSError as e:
                if (w.file == "cpu.cfs_period_us" and e.errno == errno.EINVAL and period_later is None
                        and any(x.file == "cpu.cfs_quota_us" for x in items[i:])):
                    # The kernel checks quota/period against the parent's
                    # bandwidth with the quota in force: a shorter period
                    # may fit only once the new quota is written. runc
                    # writes the period again after the quota; so does pyrun.
                    period_later = w
                    continue
                if w.file in OPTIONAL and e.errno in (errno.ENOENT, errno.EOPNOTSUPP, ENOTSUPP):
                    log.debug_msg(f"cgroup: {w.path} skipped: no {w.file} in this kernel (as runc)")
                    continue
                if e.errno == errno.ENOENT:
                    why = f"no {name} in {d}: this kernel's {ctrl} controller does not have it"
                else:
                    why = f"write {w.value!r} to {path}: {errno_text(e)}"
                raise ConfigError(w.path, why) from None

    def apply_devices(self, resources, devices, ignore_missing: bool = False) -> None:
        """devices.deny "a", then each exception to devices.allow (runc's
        devices emulator's transition from the parent's list), then check
        devices.list: the rules are a security boundary, so what the
        kernel did not take is an error, not a warning."""
        from pyrun.cgroups.convert import device_writes_v1
        from pyrun.config.resources import of
        from pyrun.log import log

        items, allowlist, expect = device_writes_v1(resources, devices)
        d = self.by_ctrl.get("devices")
        if d is None or d == self.unified:
            why = f"no devices controller is mounted on this host ({MOUNT}/devices): the rules cannot be enforced"
            if of(resources).devices and not ignore_missing:
                raise ConfigError(f"{RES}.devices", why)
            log.debug_msg(f"cgroup: {why}")
            return
        if allowlist and set(_read(os.path.join(d, "devices.list")).split("\n")) - {""} == expect:
            # already so (the systemd driver: systemd wrote the same list from
            # the unit's DevicePolicy/DeviceAllow): no "deny all" moment
            return
        for w in items:
            try:
                _write(os.path.join(d, w.file), w.value)
            except OSError as e:
                raise ConfigError(w.path, f"write {w.value!r} to {d}/{w.file}: {errno_text(e)}") from None
        shown = set(_read(os.path.join(d, "devices.list")).split("\n")) - {""}
        if (allowlist and shown != expect) or (not allowlist and shown != {"a *:* rwm"}):
            raise PyrunError(f"cgroup: {d}/devices.list shows {sorted(shown)} after writing the device "
                             f"rules, not {sorted(expect)}: refusing to run without them")

    def add(self, pid: int) -> None:
        """Move ``pid`` (and so, later, its children) into every hierarchy."""
        for d in self.dirs.values():
            try:
                _write(os.path.join(d, "cgroup.procs"), str(pid))
            except OSError as e:
                raise PyrunError(f"cgroup: add pid {pid} to {d}/cgroup.procs: {errno_text(e)}") from None

    # -- the first process of create or exec moves itself (move_self)
    def open_tasks(self) -> list[tuple[str, int]]:
        """Each v1 hierarchy's ``tasks`` file, opened for writing by the host
        (O_CLOEXEC), for the child it forks next to move itself into
        (:func:`move_self`): the kernel checks such a write against the
        opener's credentials. Not the hybrid cgroup2 tree's directory,
        which has no such file: :meth:`cgroup2_part`."""
        out: list[tuple[str, int]] = []
        for d in self.dirs.values():
            if d == self.unified:
                continue
            path = os.path.join(d, "tasks")
            try:
                out.append((path, os.open(path, os.O_WRONLY | os.O_CLOEXEC)))
            except OSError as e:
                close_tasks(out)
                raise PyrunError(f"cgroup: open {path}: {errno_text(e)}") from None
        return out

    def cgroup2_part(self):
        """The hybrid host's cgroup2 directory of the container, as a
        :class:`pyrun.cgroups.v2.Cgroup` (clone3 into it, or cgroup.procs),
        or None."""
        if self.unified is None:
            return None
        from pyrun.cgroups import v2

        return v2.Cgroup(self.unified)

    def undo_create(self) -> None:
        for d in self.dirs.values():
            try:
                if not _pids_of(d):
                    os.rmdir(d)
            except OSError:
                pass

    # -- queries
    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.dirs.values())

    def _procs_dir(self) -> str | None:
        return self.by_ctrl.get("freezer") or self.by_ctrl.get("pids") or next(iter(self.dirs.values()), None)

    def pids(self) -> list[int]:
        d = self._procs_dir()
        return _pids_of(d) if d else []

    def frozen(self) -> bool:
        path = self.file("freezer", "freezer.state")
        try:
            return path is not None and _read(path).strip() == "FROZEN"
        except FileNotFoundError:
            return False

    def oom_kills(self) -> int:
        """The oom_kill counter of memory.oom_control (Linux 4.13)."""
        path = self.file("memory", "memory.oom_control")
        try:
            text = _read(path) if path else ""
        except OSError:
            return 0
        return next((int(line.split()[1]) for line in text.splitlines() if line.startswith("oom_kill ")), 0)

    def oom_fd(self) -> int | None:
        """An eventfd(2) the kernel signals each time the cgroup is out of
        memory: registered by writing "<eventfd> <fd of memory.oom_control>"
        to cgroup.event_control (cgroup-v1/memory.rst, "OOM Control"), as
        runc's notifyOnOOM. None without a memory hierarchy."""
        control, ctl = self.file("memory", "memory.oom_control"), self.file("memory", "cgroup.event_control")
        if control is None:
            return None
        efd = os.eventfd(0, os.EFD_CLOEXEC)
        try:
            ofd = os.open(control, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _write(ctl, f"{efd} {ofd}")
            finally:
                os.close(ofd)
        except OSError:
            os.close(efd)
            return None
        return efd

    # -- actions
    def freeze(self, on: bool, timeout: float = 10.0) -> None:
        """freezer.state: FROZEN, then wait while it says FREEZING."""
        import time

        state = self.file("freezer", "freezer.state")
        if state is None:
            raise PyrunError(f"no freezer controller is mounted on this host ({MOUNT}/freezer)")
        want = "FROZEN" if on else "THAWED"
        _write(state, want)
        deadline, delay = time.monotonic() + timeout, 0.0001
        while _read(state).strip() != want:  # FREEZING until every task stops
            if time.monotonic() > deadline:
                raise PyrunError(f"cgroup {os.path.dirname(state)}: not {want} after {timeout:.0f} s")
            _write(state, want)
            time.sleep(delay)  # a sleeping task freezes within microseconds: look again soon, then less often
            delay = min(delay * 2, 0.005)

    def kill(self) -> bool:
        """cgroup.kill of the hybrid host's cgroup2 tree (Linux 5.14): one
        SIGKILL for all. False where there is none: the caller signals
        each process."""
        if self.unified is None:
            return False
        try:
            _write(os.path.join(self.unified, "cgroup.kill"), "1")
            return True
        except FileNotFoundError:
            return False

    def remove(self, timeout: float = 10.0) -> None:
        """rmdir(2) in every hierarchy once the last process is gone."""
        import time

        deadline = time.monotonic() + timeout
        for d in self.dirs.values():
            _rmdir(d, deadline)

    def update(self, resources) -> None:
        """``pyrun update``: the same conversion, written to the live cgroup."""
        from pyrun.cgroups.convert import writes_v1
        from pyrun.config.resources import of

        resources = of(resources)  # every field checked before the cgroup is read
        items = writes_v1(resources)
        mem = resources.memory
        if mem.check_before_update and (mem.limit or 0) > 0:
            usage = _int(self._read("memory", "memory.usage_in_bytes", "0"))
            if mem.limit < usage:
                raise ConfigError(f"{RES}.memory.limit", f"{mem.limit} is below the current usage ({usage})")
        self.apply(items)

    def _read(self, ctrl: str, name: str, default: str = "") -> str:
        path = self.file(ctrl, name)
        try:
            return _read(path) if path else default
        except OSError:
            return default

    def _cpuset_stats(self) -> dict:
        """runc's CPUSet stats: the cpuset.* files of the container's cgroup."""
        if self.by_ctrl.get("cpuset") in (None, self.unified):
            return {}
        out: dict = {key: _cpu_list(self._read("cpuset", f"cpuset.{key}")) for key in ("cpus", "mems")}
        for key in ("cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate", "memory_spread_page",
                    "memory_spread_slab", "memory_pressure", "sched_load_balance", "sched_relax_domain_level"):
            out[key] = _int(self._read("cpuset", f"cpuset.{key}", "0"))
        return out

    def stats(self) -> dict:
        """runc's ``events --stats`` data (types.Stats) from the v1 files, as
        runc's fs manager GetStats reads them."""
        tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
        acct = _flat(self._read("cpuacct", "cpuacct.stat"))
        throttle = _flat(self._read("cpu", "cpu.stat"))
        mem = {}
        for key, prefix in (("usage", "memory."), ("swap", "memory.memsw."), ("kernel", "memory.kmem."),
                            ("kernelTCP", "memory.kmem.tcp.")):
            mem[key] = {"usage": _int(self._read("memory", prefix + "usage_in_bytes", "0")),
                        "max": _int(self._read("memory", prefix + "max_usage_in_bytes", "0")),
                        "failcnt": _int(self._read("memory", prefix + "failcnt", "0")),
                        "limit": _int(self._read("memory", prefix + "limit_in_bytes", "0"))}
        raw = _flat(self._read("memory", "memory.stat"))
        mem["cache"] = raw.get("cache", 0)
        mem["raw"] = raw
        prefix = "blkio.bfq." if os.path.exists(self.file("blkio", "blkio.bfq.io_service_bytes_recursive") or "") \
            else "blkio.throttle."
        blkio = {"ioServiceBytesRecursive": _blkio(self._read("blkio", prefix + "io_service_bytes_recursive")),
                 "ioServicedRecursive": _blkio(self._read("blkio", prefix + "io_serviced_recursive"))}
        pids_max = self._read("pids", "pids.max", "max").strip()
        per_cpu = [line.split() for line in self._read("cpuacct", "cpuacct.usage_all").splitlines()[1:]]
        return {
            "cpu": {
                "usage": {"total": _int(self._read("cpuacct", "cpuacct.usage", "0")),
                          "percpu": [int(x) for x in self._read("cpuacct", "cpuacct.usage_percpu").split()],
                          "percpu_kernel": [int(r[2]) for r in per_cpu if len(r) == 3],
                          "percpu_user": [int(r[1]) for r in per_cpu if len(r) == 3],
                          "kernel": acct.get("system", 0) * tick, "user": acct.get("user", 0) * tick},
                "throttling": {"periods": throttle.get("nr_periods", 0),
                               "throttledPeriods": throttle.get("nr_throttled", 0),
                               "throttledTime": throttle.get("throttled_time", 0)},
            },
            "cpuset": self._cpuset_stats(),
            "memory": mem,
            "pids": {"current": _int(self._read("pids", "pids.current", "0")),
                     "limit": 0 if pids_max == "max" else _int(pids_max)},
            "blkio": blkio,
        }


def move_self(tasks: list[tuple[str, int]]) -> None:
    """write(2) "0" to each ``tasks`` descriptor (:meth:`Cgroup.open_tasks`):
    the calling thread joins that hierarchy's cgroup, and with it the
    whole process, which must have no other thread (a child right after
    fork(2)). Why not cgroup.procs, or the parent writing our pid: those
    take the kernel's global cgroup_threadgroup_rwsem for writing, which
    waits an RCU grace period (5-35 ms here); a thread that moves only
    itself is skipped by that lock (kernel/cgroup/cgroup.c,
    cgroup_procs_write_start: pid 0 and not a thread group). Each
    descriptor is closed; an error names the file and errno."""
    from pyrun.log import log

    try:
        with log.step("write(tasks, 0)"):
            for path, fd in tasks:
                try:
                    os.write(fd, b"0")
                except OSError as e:
                    raise PyrunError(f"cgroup: write 0 to {path} (a process moving itself): {errno_text(e)}") \
                        from None
    finally:
        close_tasks(tasks)


def close_tasks(tasks: list[tuple[str, int]]) -> None:
    for _path, fd in tasks:
        os.close(fd)
    tasks.clear()


def _cpu_list(text: str) -> list[int]:
    """"0-2,5" -> [0, 1, 2, 5] (cpuset(7) "List format")."""
    out: list[int] = []
    for part in text.strip().split(","):
        if part:
            lo, _, hi = part.partition("-")
            out += range(int(lo), int(hi or lo) + 1)
    return out


def _pids_of(d: str) -> list[int]:
    """The processes of ``d`` and of its sub-cgroups (runc's GetAllPids:
    ``ps``, ``kill --all`` and ``delete`` reach those of ``exec --cgroup``)."""
    try:
        pids = [int(x) for x in _read(os.path.join(d, "cgroup.procs")).split()]
        subs = [e.path for e in os.scandir(d) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []
    for sub in subs:
        pids += _pids_of(sub)
    return pids


def _int(text: str) -> int:
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else 0


def _blkio(text: str) -> list[dict]:
    """"8:0 Read 4096" lines (the "Total" line is not an entry)."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and ":" in parts[0]:
            major, minor = parts[0].split(":")
            out.append({"major": int(major), "minor": int(minor), "op": parts[1], "value": int(parts[2])})
    return out


def _copy_cpuset(parent: str, child: str) -> None:
    for name in ("cpuset.cpus", "cpuset.mems"):
        mine = os.path.join(child, name)
        if not _read(mine).strip():
            value = _read(os.path.join(parent, name)).strip()
            try:
                _write(mine, value)
            except OSError as e:
                raise PyrunError(f"cgroup: copy {value!r} from {parent} to {mine}: {errno_text(e)}") from None


def _memory_order(cg: Cgroup, items: list) -> list:
    """memory.limit_in_bytes must stay <= memory.memsw.limit_in_bytes at
    every step: when both change and memory+swap grows past the limit in
    force, memsw first (runc's setMemoryAndSwap)."""
    files = [w.file for w in items]
    if "memory.limit_in_bytes" not in files or "memory.memsw.limit_in_bytes" not in files:
        return items
    i, j = files.index("memory.limit_in_bytes"), files.index("memory.memsw.limit_in_bytes")
    swap = int(items[j].value)
    current = _int(cg._read("memory", "memory.limit_in_bytes", "0"))
    if swap == -1 or current < swap:
        items = list(items)
        items[i], items[j] = items[j], items[i]
    return items


def _keep_realtime_budget(cg: Cgroup, spec, items: list) -> None:
    """With RT group scheduling (cpu.rt_runtime_us exists), a new cpu cgroup
    has no realtime budget, and sched_setattr(2) of SCHED_FIFO/SCHED_RR in it
    fails with EPERM (sched(7), "Real-time throttling"). A process.scheduler
    that asks for one, without linux.resources.cpu.realtimeRuntime, keeps
    the caller's cpu cgroup (and its budget) when no cpu limit is asked;
    with cpu limits it cannot have both: refused naming the field."""
    sched = getattr(getattr(spec, "process", None), "scheduler", None)
    d = cg.by_ctrl.get("cpu")
    if sched is None or sched.policy not in (1, 2) or d is None or d == cg.unified:
        return
    if any(w.file == "cpu.rt_runtime_us" for w in items):
        return
    mnt = next(m for m, x in cg.dirs.items() if x == d)
    if not os.path.exists(os.path.join(mnt, "cpu.rt_runtime_us")):
        return
    limits = [w.path for w in items if w.file.startswith("cpu.")]
    if limits:
        raise ConfigError("process.scheduler", f"a real-time policy in a cpu cgroup of its own needs "
                          f"{RES}.cpu.realtimeRuntime on this kernel (RT group scheduling: a new cgroup has no "
                          f"real-time budget), and {limits[0]} asks for one")
    from pyrun.log import log

    log.debug_msg("cgroup: the container keeps the caller's cpu cgroup: its real-time policy needs "
                  "the real-time budget a new cpu cgroup does not have")
    cg._drop(mnt)


def setup(spec, container_id: str, ignore_limits: bool, rootless: bool = False) -> Cgroup | None:
    """Root on a v1 or hybrid host: the container's directory in every
    hierarchy, device rules and limits written, no process in it yet.

    ``rootless``: an unprivileged caller whose ``linux.cgroupsPath`` names
    a cgroup delegated to it (the directories its own in every hierarchy):
    used as runc uses it, limits written; one it cannot write fails create,
    as runc's does, with or without limits. The device rules need
    CAP_SYS_ADMIN (devices.deny): without any in the config they are left
    to the user namespace, which opens no host device node anyway; with
    some, their write fails, naming them."""
    from pyrun.cgroups.files import without_limits
    from pyrun.cgroups.convert import device_writes_v1, writes_v1
    from pyrun.config.resources import of

    resources = of(spec.linux.resources)
    items = writes_v1(resources)
    device_writes_v1(resources, spec.linux.devices)  # a bad rule is refused before anything is made
    mounts = hierarchies()
    if not mounts:
        if resources.devices and not ignore_limits:
            raise ConfigError(f"{RES}.devices", "no cgroup hierarchy is mounted on this host: "
                              "the device rules cannot be enforced")
        return without_limits(items, "no cgroup hierarchy is mounted on this host", ignore_limits)
    cg = Cgroup(paths_for(spec.linux.cgroups_path, container_id, mounts), mounts)
    if rootless and cg.unified is not None:
        # a move between cgroup2 directories needs write access to their
        # common ancestor's cgroup.procs (cgroup-v2.rst, "Delegation
        # Containment"): the caller's own cgroup and the delegated one meet
        # at the root. runc leaves the hybrid tree out too.
        cg._drop(next(m for m, d in cg.dirs.items() if d == cg.unified))
    _keep_realtime_budget(cg, spec, items)
    try:
        cg.create()
    except PyrunError as e:
        busy = cg.pids()
        cg.undo_create()
        if rootless and not ignore_limits:
            raise ConfigError("linux.cgroupsPath", f"{spec.linux.cgroups_path}: {e} (rootless on cgroup v1, "
                              "the cgroup must be delegated to you: yours in every hierarchy)") from None
        if busy or not ignore_limits:
            raise
        # asked to go on where cgroups cannot serve (a read-only cgroupfs
        # in a nested setup): no cgroup, no limits, no device rules
        from pyrun.log import log

        log.debug_msg(f"cgroup limits and device rules ignored: {e}")
        return None
    try:
        if not rootless or resources.devices:
            cg.apply_devices(resources, spec.linux.devices, ignore_limits)
        cg.apply(items, ignore_limits)
    except BaseException:
        cg.undo_create()
        raise
    return cg
