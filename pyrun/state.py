"""The state directory: where a container's record lives between commands.

Layout, one directory per container under the state root::

    <root>/<id>/state.json   the record (written atomically: tmp + rename)
    <root>/<id>/exec.fifo    exists from create until start (runc's handshake)
    <root>/<id>/upper, work  the overlay's writable layer (never the bundle)
    <root>/<id>/merged       where the overlay is mounted, in the container's
                             own mount namespace only

Status is *derived*, never trusted from the file: a pid is alive only if
``/proc/PID/stat`` shows the same start time that was recorded, so a
recycled pid cannot make a stopped container look alive.
"""

from __future__ import annotations

import fcntl
import os
import time

from pyrun import jsonio
from pyrun.errors import ContainerExists, ContainerNotFound, PyrunError
from pyrun.record import field, record, to_dict

STATUS_CREATING = "creating"
STATUS_CREATED = "created"
STATUS_RUNNING = "running"
STATUS_STOPPED = "stopped"
STATUS_PAUSED = "paused"  # runc's, beyond the OCI four: the cgroup is frozen


def in_initial_userns() -> bool:
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() == ["0", "0", "4294967295"]
    except OSError:
        return True


def default_root() -> str:
    """runc's rule: /run/pyrun for real root; otherwise $XDG_RUNTIME_DIR/pyrun,
    falling back to a private directory under /tmp."""
    if os.geteuid() == 0 and in_initial_userns():
        return "/run/pyrun"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg) and os.access(xdg, os.W_OK):
        return os.path.join(xdg, "pyrun")
    return f"/tmp/pyrun-{os.geteuid()}"


def ensure_root(root: str) -> None:
    """Create the state root (0711) and refuse one owned by someone else:
    a directory under /tmp could have been planted by another user.

    0711, not 0700: a container whose root is mapped to another host uid
    must still reach its own directory (overlay layers, exec.fifo) by
    path; nobody can list the root, and state.json is 0600."""
    try:
        os.makedirs(root, mode=0o711, exist_ok=True)
    except OSError as e:
        raise PyrunError(f"cannot create state root {root}: {e.strerror}") from None
    st = os.lstat(root)
    if st.st_uid != os.geteuid():
        raise PyrunError(f"state root {root} is owned by uid {st.st_uid}, not by you ({os.geteuid()})")
    if st.st_mode & 0o777 != 0o711:
        os.chmod(root, 0o711)


def proc_start_time(pid: int) -> tuple[int, str] | None:
    """(start time in clock ticks, state letter) from /proc/PID/stat, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # comm may contain spaces and parentheses: split after the last ')'.
    rest = data[data.rindex(b")") + 2:].split()
    return int(rest[19]), rest[0].decode()


def is_alive(pid: int, start: int) -> bool:
    """The process recorded as (pid, start time) still runs: same start time
    (not a recycled pid) and not a zombie."""
    seen = proc_start_time(pid)
    return seen is not None and seen[0] == start and seen[1] not in "ZX"


def now_rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


@record
class Record:
    """What pyrun remembers about one container (``state.json``)."""

    id: str
    bundle: str
    rootfs: str
    created: str
    owner: str
    annotations: dict = field(default_factory=dict)
    pid: int = 0
    pid_start: int = 0
    creator_pid: int = 0
    creator_start: int = 0
    # What later commands need to know without re-reading config.json.
    use_init: bool = True
    new_keyring: bool = True
    cgroup: str = ""           # the container's cgroup directory, if it has one
    hooks: bool = False        # poststart or poststop hooks to run (from the saved config)
    net: dict = field(default_factory=dict)   # network mode, address, veth / helper pid
    rootless: bool = False
    uid_mappings: list = field(default_factory=list)
    gid_mappings: list = field(default_factory=list)


# runc's idRegex is `^[\w+-\.]+$` (Go RE2, ASCII \w). Inside the class
# "+-\." is a *range* from '+' to '.', so runc also accepts ','. We match
# runc, not the regex's apparent intent.
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+,-.")


def validate_id(container_id: str) -> None:
    """Reject ids runc rejects: empty, '.', '..', '/', or outside [A-Za-z0-9_+,.-]."""
    from pyrun.errors import UsageError

    shown = jsonio.quote(container_id)
    if not container_id:
        raise UsageError("invalid container id \"\": must not be empty")
    if container_id in (".", ".."):
        raise UsageError(f"invalid container id {shown}: must not be '.' or '..'")
    if not set(container_id) <= _ID_CHARS:
        raise UsageError(f"invalid container id {shown}: must match [A-Za-z0-9_+,.-]+")


class StateDir:
    def __init__(self, root: str, container_id: str):
        self.root = root
        self.id = container_id
        self.path = os.path.join(root, container_id)
        self.lock_fd: int | None = None  # held while locked; children must close it

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def exists(self) -> bool:
        return os.path.isdir(self.path)

    def make(self) -> None:
        """mkdir is atomic: of two concurrent creates of one id, exactly one wins."""
        ensure_root(self.root)
        try:
            os.mkdir(self.path, 0o711)
        except FileExistsError:
            raise ContainerExists(self.id) from None

    def write(self, rec: Record) -> None:
        tmp = self.file(".state.json.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with open(fd, "w") as f:
            f.write(jsonio.dumps(to_dict(rec)))
        os.rename(tmp, self.file("state.json"))

    def read(self) -> Record:
        try:
            with open(self.file("state.json")) as f:
                return Record(**jsonio.loads(f.read()))
        except FileNotFoundError:
            raise ContainerNotFound(self.id) from None
        except (ValueError, TypeError) as e:
            raise PyrunError(f"container {self.id!r}: corrupt state file: {e}") from None

    def lock(self) -> _Lock:
        """``with sd.lock():`` serializes commands that change one container
        (flock on its dir).

        flock(2) locks belong to the open file description, which fork(2)
        shares: a child must close ``lock_fd`` or it keeps the lock."""
        return _Lock(self)

    def remove(self) -> None:
        remove_tree(self.path)

    def status(self, rec: Record) -> str:
        if rec.pid == 0:
            # Still being created, or its creator died half way (garbage).
            return STATUS_CREATING if is_alive(rec.creator_pid, rec.creator_start) else STATUS_STOPPED
        if not is_alive(rec.pid, rec.pid_start):
            return STATUS_STOPPED
        if os.path.exists(self.file("exec.fifo")):
            return STATUS_CREATED
        if rec.cgroup:
            from pyrun.cgroups import open_cgroup

            if open_cgroup(rec.cgroup).frozen():
                return STATUS_PAUSED
        return STATUS_RUNNING


class _Lock:
    """The context manager of :meth:`StateDir.lock` (a class: contextlib's
    import costs ~2 ms of every command)."""

    __slots__ = ("sd",)

    def __init__(self, sd: StateDir):
        self.sd = sd

    def __enter__(self) -> None:
        sd = self.sd
        try:
            fd = os.open(sd.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ContainerNotFound(sd.id) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if not os.path.isdir(sd.path):  # deleted while we waited
                raise ContainerNotFound(sd.id)
        except BaseException:
            os.close(fd)
            raise
        sd.lock_fd = fd

    def __exit__(self, *exc) -> None:
        fd, self.sd.lock_fd = self.sd.lock_fd, None
        if fd is not None:
            os.close(fd)


def remove_tree(path: str) -> None:
    """rm -rf. overlayfs leaves ``work/work`` with mode 000, and a container
    may leave read-only directories in its upper layer: make every directory
    writable and searchable (never following a symlink), then remove."""
    if not os.path.lexists(path):
        return
    try:
        # The common case, made so at once: without root's DAC override the
        # walk cannot open work/work, and would take the slow road below.
        os.chmod(os.path.join(path, "work", "work"), 0o700)
    except OSError:
        pass
    try:
        _rmtree(path)
        return
    except PermissionError:
        pass
    try:
        os.chmod(path, 0o700)
        for dirpath, dirnames, _ in os.walk(path):
            for d in dirnames:
                p = os.path.join(dirpath, d)
                if not os.path.islink(p):
                    os.chmod(p, 0o700)
        _rmtree(path)
    except OSError as e:
        raise PyrunError(f"remove {e.filename or path}: {e.strerror}") from None


def _raise(e: OSError) -> None:
    raise e


def _rmtree(path: str) -> None:
    """shutil.rmtree without shutil (its import pulls in re, bz2 and lzma:
    about 6 ms of every ``pyrun delete``): bottom-up through directory fds
    (os.fwalk), so a symlink is removed, never followed."""
    for _, dirs, files, dir_fd in os.fwalk(path, topdown=False, onerror=_raise):
        for name in files:
            os.unlink(name, dir_fd=dir_fd)
        for name in dirs:
            try:
                os.rmdir(name, dir_fd=dir_fd)
            except NotADirectoryError:  # a symlink to a directory
                os.unlink(name, dir_fd=dir_fd)
    os.rmdir(path)


def state_dir(root: str, container_id: str) -> StateDir:
    """The state dir of a (valid) id, unread: for commands that take the lock
    and then read the record under it (lock and read raise ContainerNotFound)."""
    validate_id(container_id)
    return StateDir(root, container_id)


def load(root: str, container_id: str) -> tuple[StateDir, Record]:
    """The state dir of a container and its record (ContainerNotFound if none)."""
    sd = state_dir(root, container_id)
    return sd, sd.read()


def oci_state(sd: StateDir, rec: Record) -> dict:
    """The state of runtime.md ("State"), with runc's extra fields."""
    from pyrun import OCI_VERSION

    status = sd.status(rec)
    out = {
        "ociVersion": OCI_VERSION,
        "id": rec.id,
        "pid": rec.pid if status in (STATUS_CREATED, STATUS_RUNNING) else 0,
        "status": status,
        "bundle": rec.bundle,
        "rootfs": rec.rootfs,
        "created": rec.created,
        "owner": rec.owner,
    }
    if rec.annotations:
        out["annotations"] = rec.annotations
    return out


def read_state(root: str, container_id: str) -> dict:
    """``pyrun state``: the OCI state of one container."""
    sd, rec = load(root, container_id)
    return oci_state(sd, rec)


def list_ids(root: str) -> list[str]:
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if os.path.isfile(os.path.join(root, n, "state.json")))
