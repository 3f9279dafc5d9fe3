"""The container's life after ``create``: state, start, kill, pause,
update, delete, and run (create + start + wait + delete).

Each command takes the state root and the container's id, reads the record
``pyrun.container.create`` wrote (``pyrun.container.state``), checks the status the command
needs (runc's rules and messages), and acts on PID 1 through a pidfd
(pidfd_open(2): a recycled pid is never signalled) or on the container's
cgroup. ``delete`` removes, in reverse, everything ``create`` made; so
does ``create`` itself when it fails (:mod:`pyrun.container.teardown`).
"""

from __future__ import annotations

import _signal as signal  # signal.py's C core: signal.py builds IntEnums at import (enum)
import os
import select
import sys

from pyrun.errors import ContainerNotFound, InvalidState, PyrunError, UsageError
from pyrun.log import log
from pyrun.container.state import (STATUS_CREATED, STATUS_CREATING, STATUS_PAUSED, STATUS_RUNNING, STATUS_STOPPED,
                         Record, StateDir, is_alive, load, proc_start_time, read_state, state_dir)

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (or planning) on every start
if TYPE_CHECKING:
    from pyrun.container.planning import Options


# ----------------------------------------------------------------- queries

# load, oci_state and the state command itself live in pyrun.container.state, so that
# `pyrun state` (which engines call all the time) does not import this module.
state = read_state


def list_states(root: str, warn=None) -> list[dict]:
    """The state of every container under ``root``. One whose record cannot
    be read is left out with a warning, ``load container ID: why``, on
    stderr (or to ``warn``), as runc's list does: one torn record must not
    hide the others."""
    from pyrun.container.state import list_ids

    out = []
    for cid in list_ids(root):
        try:
            out.append(state(root, cid, owner=True))
        except ContainerNotFound:
            continue  # deleted while we listed
        except PyrunError as e:
            if warn is None:
                sys.stderr.write(f"load container {cid}: {e}\n")
            else:
                warn(cid, e)
    return out


def table(states: list[dict]) -> list[str]:
    """``list``'s table as runc's text/tabwriter lays it out (minimum cell
    width 12, padding 3; the last column, OWNER, is not padded)."""
    rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
    rows += [(s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"]) for s in states]
    widths = [max(12, max(len(r[i]) for r in rows) + 3) for i in range(5)]
    return ["".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + r[5] for r in rows]


def saved_spec(sd: StateDir, rec: Record):
    """The container's config as it was created: the bundle's config.json,
    re-read and checked against the sha256 create recorded (``exec`` and
    ``update`` must not follow a config edited since)."""
    from pyrun.config.spec import from_bytes, load, read_bounded, sha256_hex

    if not rec.config_sha256:  # a record written before pyrun kept the hash
        return load(rec.bundle, sd.file("config.json"))
    path = os.path.join(rec.bundle, "config.json")
    blob = read_bounded(path)  # read once: the bytes checked are the bytes parsed
    if sha256_hex(blob) != rec.config_sha256:
        raise PyrunError(f"{path} changed since container {rec.id!r} was created: "
                         "pyrun uses the config as created, and cannot")
    return from_bytes(blob, rec.bundle)


# ----------------------------------------------------------------- start

def start(root: str, container_id: str) -> None:
    """Release the container's process: read one byte from exec.fifo."""
    sd = state_dir(root, container_id)
    with sd.lock():
        rec = sd.read_when(STATUS_CREATED, lambda status: f"cannot start a container that is {status}")
        fd = os.open(sd.file("exec.fifo"), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            _await_fifo(fd, sd, rec)
        finally:
            os.close(fd)
        os.unlink(sd.file("exec.fifo"))
        if rec.hooks:
            _poststart(sd, rec)


def _poststart(sd: StateDir, rec: Record) -> None:
    """poststart hooks, once the user process runs: :func:`_await_fifo`
    returned when PID 1's execve(2) closed exec.fifo."""
    from pyrun.stages import hooks
    from pyrun.container.state import hook_state

    spec = saved_spec(sd, rec)
    if not spec.hooks.poststart:
        return
    hooks.run_all_warn(spec.hooks.poststart, hook_state(rec, STATUS_RUNNING, spec.annotations), "poststart")


def _await_fifo(fd: int, sd: StateDir, rec: Record) -> None:
    """Read exec.fifo to EOF: PID 1 writes "0" (or "!" and why a
    startContainer hook failed) and keeps its end open until execve(2)
    closes it, so this returns once the container's process runs, as
    runc's start reads until its init closes the fifo."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    started = False
    while True:
        if poller.poll(100):
            data = os.read(fd, 4096)
            if data.startswith(b"!"):  # a startContainer hook failed; the process exited
                raise PyrunError(data[1:].decode(errors="replace"))
            if not data:
                if started:
                    return  # closed by execve(2), or PID 1 ended after "0"
                raise PyrunError("container process exited before start")
            started = True
        elif not is_alive(rec.pid, rec.pid_start):
            if started:
                return
            raise PyrunError("container process exited before start")


# ----------------------------------------------------------------- kill

# Every signal by name (SIGKILL: 9); aliases included (SIGIOT, SIGCLD, SIGPOLL).
SIGNALS = {name: getattr(signal, name) for name in dir(signal)
           if name.startswith("SIG") and not name.startswith("SIG_")}


def signal_name(num: int) -> str:
    """The canonical name (the alphabetically first of aliases): ``SIGTERM``."""
    for name, value in sorted(SIGNALS.items()):
        if value == num:
            return name
    return f"signal {num}"


def parse_signal(value: str) -> int:
    """runc accepts 9, KILL and SIGKILL (any case), and 0: kill(2)'s "is it
    there?", which signals nothing and fails only if the process is gone."""
    if value.isdigit():
        num = int(value)
        if 0 <= num < signal.NSIG:
            return num
        raise UsageError(f"invalid signal {value!r}")
    name = value.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return SIGNALS[name]
    except KeyError:
        raise UsageError(f"unknown signal {value!r}") from None


def pidfd(rec: Record) -> int | None:
    """pidfd_open(2) of the container's PID 1, if it is still the same process."""
    try:
        fd = os.pidfd_open(rec.pid)
    except ProcessLookupError:
        return None
    alive = proc_start_time(rec.pid)  # checked after opening: the fd pins the process
    if not alive or alive[0] != rec.pid_start:
        os.close(fd)
        return None
    return fd


def _same_ns_pids(pid: int, ns: str) -> list[int]:
    try:
        target = os.readlink(f"/proc/{pid}/ns/{ns}")
    except OSError:
        return []
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.readlink(f"/proc/{name}/ns/{ns}") == target:
                    out.append(int(name))
            except OSError:
                continue
    return out


def kill(root: str, container_id: str, sig: int = signal.SIGTERM, all_processes: bool = False) -> None:
    """Signal 0 only checks that PID 1 is alive. A stopped container answers
    in runc's words, ``container not running``, the words containerd's shim
    takes as harmless; ``--all`` of a stopped container signals what is left
    in its cgroup and succeeds, as runc's does: containerd sends it to every
    task it deletes, and an error there hides the exit from CRI."""
    sd, rec = load(root, container_id)
    status = sd.status(rec)
    fd = pidfd(rec) if status in (STATUS_CREATED, STATUS_RUNNING, STATUS_PAUSED) else None
    if fd is None:
        if not all_processes:
            raise InvalidState("container not running")
        if rec.cgroup and sig:
            _signal_cgroup(rec.cgroup, sig, gone_ok=True)
        return
    try:
        if all_processes and rec.cgroup and sig:
            _signal_cgroup(rec.cgroup, sig)
        elif all_processes and sig:
            for pid in _namespace_pids(rec):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        try:
            signal.pidfd_send_signal(fd, sig)
        except ProcessLookupError:
            if not all_processes:  # with --all it may be gone already, by our hand
                raise InvalidState("container not running") from None
    finally:
        os.close(fd)


def _signal_cgroup(path: str, sig: int, gone_ok: bool = False) -> None:
    """Every process of the cgroup: cgroup.kill(2) for SIGKILL (atomic, no
    fork race); otherwise frozen, signalled one by one, thawed (as runc).
    ``gone_ok``: a stopped container's cgroup may be gone already (systemd
    removes an empty scope's), and then there is nothing to signal."""
    from pyrun.cgroups import open_cgroup

    cg = open_cgroup(path)
    if gone_ok and not cg.exists():
        return
    if sig == signal.SIGKILL and cg.kill():
        return
    was_frozen = cg.frozen()
    cg.freeze(True)
    try:
        for pid in cg.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
    finally:
        if not was_frozen:
            cg.freeze(False)


# ----------------------------------------------------------------- pause

def pause(root: str, container_id: str, on: bool = True) -> None:
    """cgroup.freeze: every process of the container stops (or goes on)."""
    from pyrun.cgroups import open_cgroup

    sd = state_dir(root, container_id)
    with sd.lock():
        want = STATUS_RUNNING if on else STATUS_PAUSED
        rec = sd.read_when(want, lambda status: f"container {container_id!r} is {status}, not {want}")
        if not rec.cgroup:
            raise InvalidState(f"container {container_id!r} has no cgroup of its own "
                               "(rootless on a cgroup v1 host, or no cgroup v2 delegated): it cannot be "
                               f"{'paused' if on else 'resumed'}")
        open_cgroup(rec.cgroup).freeze(on)


# ----------------------------------------------------------------- update, events, ps

def live_cgroup(root: str, container_id: str, what: str):
    """The cgroup of a container that is not stopped, for ``what``."""
    from pyrun.cgroups import open_cgroup

    sd, rec = load(root, container_id)
    status = sd.status(rec)
    if status in (STATUS_STOPPED, STATUS_CREATING):
        raise InvalidState(f"container {container_id!r} is {status}")
    if not rec.cgroup:
        raise InvalidState(f"container {container_id!r} has no cgroup of its own (rootless on a cgroup v1 "
                           f"host, or no cgroup v2 delegated): {what} needs one")
    return open_cgroup(rec.cgroup)


def update(root: str, container_id: str, resources: dict) -> None:
    from pyrun import cgroups

    cgroups.update(live_cgroup(root, container_id, "update"), resources)


def processes(root: str, container_id: str) -> list[int]:
    """Host pids of the container's processes (``pyrun ps``)."""
    sd, rec = load(root, container_id)
    if sd.status(rec) in (STATUS_STOPPED, STATUS_CREATING):
        return []
    if rec.cgroup:
        from pyrun.cgroups import open_cgroup

        return open_cgroup(rec.cgroup).pids()
    return _namespace_pids(rec)


def _namespace_pids(rec: Record) -> list[int]:
    """Without a cgroup of its own: the processes in PID 1's pid namespace,
    or in its mount namespace when it shares the host's pids."""
    host_pidns = os.readlink("/proc/self/ns/pid")
    ns = "pid" if os.readlink(f"/proc/{rec.pid}/ns/pid") != host_pidns else "mnt"
    return _same_ns_pids(rec.pid, ns)


# ----------------------------------------------------------------- delete

def delete(root: str, container_id: str, force: bool = False) -> None:
    """runc: ``delete --force`` of what is not there is not an error; so
    neither is one that another ``delete --force`` finished first. Only
    ENOENT means "not there"."""
    sd = state_dir(root, container_id)
    try:
        _delete(sd, force)
    except ContainerNotFound:
        if not force:
            raise


def _delete(sd: StateDir, force: bool) -> None:
    from pyrun.container.state import CorruptState

    container_id = sd.id
    with sd.lock():
        try:
            rec = sd.read()
        except ContainerNotFound:
            if force and sd.remove_orphan():  # a create killed before its first write
                return
            raise
        except CorruptState as e:
            if not force:
                raise
            log.warning(f"{e}; removing what can be found")
            rec = sd.salvage()
        status = sd.status(rec)
        if status == STATUS_CREATING:
            raise InvalidState(f"container {container_id!r} is being created")
        if status in (STATUS_RUNNING, STATUS_PAUSED) and not force:
            raise InvalidState(f"cannot delete container {container_id!r} that is {status}: "
                               "stop it first or use --force")
        if status in (STATUS_CREATED, STATUS_RUNNING, STATUS_PAUSED):
            fd = pidfd(rec)
            if fd is not None:
                try:
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
                    if status == STATUS_PAUSED:
                        _thaw(rec)
                    if not _wait_exit(fd, 10.0):
                        raise PyrunError(f"container {container_id!r}: pid {rec.pid} did not die after SIGKILL")
                finally:
                    os.close(fd)
        poststop, annotations = [], {}
        if rec.hooks:
            try:
                saved = saved_spec(sd, rec)
                poststop, annotations = saved.hooks.poststop, saved.annotations
            except PyrunError as e:
                log.warning(f"poststop hooks not run: {e}")
        from pyrun.container.teardown import remove_everything

        remove_everything(sd, rec)
    if poststop:
        from pyrun.stages import hooks
        from pyrun.container.state import hook_state

        hooks.run_all_warn(poststop, hook_state(rec, STATUS_STOPPED, annotations), "poststop")


def _thaw(rec: Record) -> None:
    """A frozen process does not die of SIGKILL until it is thawed: the
    signal is sent first (nothing runs in between), then the freezer lets
    go, as runc's destroy of a paused container; nothing stays frozen."""
    from pyrun.cgroups import open_cgroup

    if rec.cgroup:
        open_cgroup(rec.cgroup).freeze(False)


def _wait_exit(fd: int, timeout: float) -> bool:
    """A pidfd polls readable once the process has exited."""
    return bool(select.select([fd], [], [], timeout)[0])


# ----------------------------------------------------------------- run

# Not SIGPIPE: pyrun gets it from its own writes (to a hook's stdin, say),
# and it is not the container's business.
_FORWARDED = [s for s in sorted(set(SIGNALS.values())) if s not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD,
                                                     signal.SIGPIPE, signal.SIGSEGV, signal.SIGBUS, signal.SIGILL,
                                                     signal.SIGFPE, signal.SIGABRT, signal.SIGTRAP,
                                                     signal.SIGSYS)]


def run(root: str, container_id: str, bundle: str, opts: Options | None = None,
        detach: bool = False) -> int:
    """create + start; in the foreground, wait and return the exit code
    (128 + N when killed by signal N), then delete the container, as runc
    does (not with ``--keep``: it stays, stopped, for ``state``)."""
    from pyrun.container.create import create
    from pyrun.container.planning import Options

    opts = opts or Options()
    if detach:
        create(root, container_id, bundle, opts)
        try:
            start(root, container_id)
        except BaseException:
            if not opts.keep:
                delete(root, container_id, force=True)
            raise
        return 0
    rec = create(root, container_id, bundle, opts, foreground=True)
    try:
        code = wait_forwarding(rec.pid, then=lambda: _start_and_reap(root, container_id, opts.stage1_exiting),
                               master=opts.console_master)
        if rec.cgroup and code == 128 + signal.SIGKILL:
            from pyrun.cgroups import oom_kills, open_cgroup

            if oom_kills(open_cgroup(rec.cgroup)):
                log.warning(f"container {container_id!r} was killed by the OOM killer (memory limit)")
        return code
    finally:
        try:
            if not opts.keep:
                delete(root, container_id, force=True)
        except ContainerNotFound:
            pass  # somebody deleted it already
        except PyrunError as e:
            log.warning(f"delete after run: {e}")


def _start_and_reap(root: str, container_id: str, stage1: int) -> None:
    """start, then waitpid(2) of stage 1, which create told to exit: it
    frees its address space on the other CPU while start runs."""
    try:
        start(root, container_id)
    finally:
        if stage1 > 0:  # (waitpid(0) would wait for any child of our process group)
            with log.step("waitpid(stage 1)"):
                os.waitpid(stage1, 0)


def wait_forwarding(pid: int, then=None, master: int | None = None) -> int:
    """Wait for our child ``pid``, passing on every signal we get; run
    ``then`` once the handlers are in place. Returns its exit code, 128 + N
    when killed by signal N (the shell's convention, and runc's)."""

    def forward(signum, frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    previous = {s: signal.signal(s, forward) for s in _FORWARDED}
    try:
        if then is not None:
            then()
        try:
            if master is not None:
                from pyrun.console.terminal import relay

                status = relay(master, pid)
            else:
                _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            return 255
        code = os.waitstatus_to_exitcode(status)
        return 128 - code if code < 0 else code
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
