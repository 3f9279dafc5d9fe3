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
import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

from pyrun.errors import ContainerExists, ContainerNotFound, PyrunError

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
    """Create the state root (0700) and refuse one owned by someone else:
    a directory under /tmp could have been planted by another user."""
    try:
        os.makedirs(root, mode=0o700, exist_ok=True)
    except OSError as e:
        raise PyrunError(f"cannot create state root {root}: {e.strerror}") from None
    st = os.lstat(root)
    if st.st_uid != os.geteuid():
        raise PyrunError(f"state root {root} is owned by uid {st.st_uid}, not by you ({os.geteuid()})")


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


@dataclass
class Record:
    """What pyrun remembers about one container (``state.json``)."""

    id: str
    bundle: str
    rootfs: str
    created: str
    owner: str
    annotations: dict[str, str] = field(default_factory=dict)
    pid: int = 0
    pid_start: int = 0
    creator_pid: int = 0
    creator_start: int = 0
    # What later commands need to know without re-reading config.json.
    use_init: bool = True
    new_keyring: bool = True
    cgroup: str = ""  # the container's cgroup v2 directory, if it has one
    hooks: bool = False  # poststart or poststop hooks to run (from the saved config)
    net: dict = field(default_factory=dict)  # network mode, address, veth / helper pid
    rootless: bool = False
    uid_mappings: list[list[int]] = field(default_factory=list)
    gid_mappings: list[list[int]] = field(default_factory=list)


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
        with open(tmp, "w") as f:
            json.dump(asdict(rec), f)
        os.rename(tmp, self.file("state.json"))

    def read(self) -> Record:
        try:
            with open(self.file("state.json")) as f:
                return Record(**json.load(f))
        except FileNotFoundError:
            raise ContainerNotFound(self.id) from None
        except (ValueError, TypeError) as e:
            raise PyrunError(f"container {self.id!r}: corrupt state file: {e}") from None

    @contextmanager
    def lock(self):
        """Serialize commands that change one container (flock on its dir).

        flock(2) locks belong to the open file description, which fork(2)
        shares: a child must close ``lock_fd`` or it keeps the lock."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ContainerNotFound(self.id) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if not os.path.isdir(self.path):  # deleted while we waited
                raise ContainerNotFound(self.id)
            self.lock_fd = fd
            yield
        finally:
            self.lock_fd = None
            os.close(fd)

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
        if rec.cgroup and _frozen(rec.cgroup):
            return STATUS_PAUSED
        return STATUS_RUNNING


def _frozen(cgroup: str) -> bool:
    try:
        with open(os.path.join(cgroup, "cgroup.freeze")) as f:
            return f.read().strip() == "1"
    except OSError:
        return False


def remove_tree(path: str) -> None:
    """rm -rf. overlayfs leaves ``work/work`` with mode 000, and a container
    may leave read-only directories in its upper layer: make every directory
    writable and searchable (never following a symlink), then remove."""
    if not os.path.lexists(path):
        return
    try:
        shutil.rmtree(path)
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
        shutil.rmtree(path)
    except OSError as e:
        raise PyrunError(f"remove {e.filename or path}: {e.strerror}") from None


def list_ids(root: str) -> list[str]:
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if os.path.isfile(os.path.join(root, n, "state.json")))
