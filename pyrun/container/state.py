"""The state directory: where a container's record lives between commands.

Layout, one directory per container under the state root (small files
only: the default root, /run/pyrun, is a RAM tmpfs the host's services share)::

    <root>/<id>/state.json   the record (written atomically: tmp, rename)
    <root>/<id>/exec.fifo    exists from create until start (runc's handshake)
    <root>/<id>/merged       where the root is mounted, in the container's
                             own mount namespace only

and the overlay's writable layer on disk-backed storage, where the record
says (``Record.layers``: ``<layers root>/<id>.<random>/upper, work``).

The record exists from the first moment: ``create`` makes the directory and
writes the record while it holds a shared flock(2) on the state root, and
everything else (layer dir, cgroup, lease, processes) is made after the
record names it. A directory without a record is therefore either a create
between its mkdir(2) and its first write (holding the shared lock) or the
remains of one that was killed there: whoever holds the root's lock
exclusively may remove it (:meth:`StateDir.remove_orphan`).

Status is *derived*, never trusted from the file: a pid is alive only if
``/proc/PID/stat`` shows the same start time that was recorded, so a
recycled pid cannot make a stopped container look alive.
"""

from __future__ import annotations

import fcntl
import os
import stat
import time

from pyrun import jsonio
from pyrun.errors import ContainerExists, ContainerNotFound, InvalidState, PyrunError, errno_text
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


def default_layers_root() -> str:
    """Where overlay upper layers go unless --layers-root or the annotation
    org.pyrun.layers say otherwise: disk-backed storage, not the state root.
    /var/lib/pyrun for real root; else $XDG_DATA_HOME/pyrun, or
    ~/.local/share/pyrun (the XDG base directory specification's default)."""
    if os.geteuid() == 0 and in_initial_userns():
        return "/var/lib/pyrun"
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg and os.path.isabs(xdg):
        return os.path.join(xdg, "pyrun")
    home = os.environ.get("HOME")
    if not home:
        import pwd

        home = pwd.getpwuid(os.geteuid()).pw_dir
    return os.path.join(home, ".local", "share", "pyrun")


def os_error(e: OSError, path: str | None = None) -> PyrunError:
    """One line for a failed file operation: the path, then the cause
    (``/run/pyrun/c1/state.json: No space left on device (ENOSPC)``)."""
    return PyrunError(f"{e.filename or path}: {errno_text(e)}")


def check_root(root: str) -> None:
    """Every command, before it uses ``--root``: a directory, or not there
    yet (create makes it). Anything else is one line, exit 1."""
    try:
        st = os.stat(root)
    except FileNotFoundError:
        return
    except NotADirectoryError:
        st = None
    except OSError as e:
        raise PyrunError(f"--root {root}: {errno_text(e)}") from None
    if st is None or not stat.S_ISDIR(st.st_mode):
        from pyrun.errors import UsageError

        raise UsageError(f"--root {root}: not a directory")


def lexists(path: str) -> bool:
    """os.path.lexists, except that only ENOENT (and ENOTDIR) means absent:
    EACCES and the like are errors naming the path, never "not there"."""
    try:
        os.lstat(path)
        return True
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as e:
        raise os_error(e, path) from None


def ensure_root(root: str) -> None:
    """Create the state root (0700, as runc's) and refuse one owned by
    someone else: a directory under /tmp could have been planted by another
    user. Every other local user is an attacker: through the root it could
    hold exec.fifo open (``start`` hangs) or write into it (``start`` fails
    with its words). A container whose root is another host uid reaches
    its own directory through a descriptor stage 1 opens before it
    becomes that uid (builder._enter_namespaces)."""
    check_root(root)
    try:
        os.makedirs(root, mode=0o700, exist_ok=True)
    except OSError as e:
        raise PyrunError(f"cannot create state root {root}: {errno_text(e)}") from None
    try:
        st = os.lstat(root)
    except OSError as e:
        raise os_error(e, root) from None
    if st.st_uid != os.geteuid():
        raise PyrunError(f"state root {root} is owned by uid {st.st_uid}, not by you ({os.geteuid()})")
    if not stat.S_ISDIR(st.st_mode):
        raise PyrunError(f"state root {root} is not a directory (a symlink?): refused")
    if st.st_mode & 0o777 != 0o700:
        os.chmod(root, 0o700)


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
    """Now, as Go's time.RFC3339Nano writes it (runc's "created"): the
    nanoseconds without trailing zeros, no fraction at all when they are 0."""
    ns = time.time_ns()
    fraction = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + (
        f".{fraction}Z" if fraction else "Z")


@record
class Record:
    """What pyrun remembers about one container (``state.json``)."""

    id: str
    bundle: str
    rootfs: str
    created: str
    owner: str
    # First what `delete --force` needs to find everything (salvage reads
    # what comes before the damage of a torn record).
    pid: int = 0
    pid_start: int = 0
    layers: str = ""           # the overlay's writable layer dir (upper, work), if any
    cgroup: str = ""           # the container's cgroup directory, if it has one
    # The cgroup create is about to make, recorded before mkdir(2): a create
    # killed before it recorded ``cgroup`` leaves at most this, and empty.
    cgroup_pending: str = ""
    # The cgroup had processes before the container (runc 1.1 warns and runs
    # there): delete does not kill what it finds left in it.
    cgroup_shared: bool = False
    # PID 1 has a pid namespace of its own (made, not joined): every process
    # of the container dies with it, and what delete finds left in its
    # cgroup is someone else's (runc kills leftovers only without one).
    own_pid_ns: bool = False
    uid_mappings: list = field(default_factory=list)
    gid_mappings: list = field(default_factory=list)
    net: dict = field(default_factory=dict)   # network mode, address, veth / helper pid
    creator_pid: int = 0
    creator_start: int = 0
    # What later commands need to know without re-reading config.json.
    use_init: bool = True
    new_keyring: bool = True
    hooks: bool = False        # poststart or poststop hooks to run (from the saved config)
    rootless: bool = False
    # config.json is not copied (a 50 MB config would be stored twice): its
    # sha256, and exec/update re-read the bundle's file and check it.
    config_sha256: str = ""
    # Not the annotations: they can be tens of MB, and every command reads
    # this record. They are annotations.json beside it (StateDir.annotations).


# runc's idRegex is `^[\w+-\.]+$` (Go RE2, ASCII \w). Inside the class
# "+-\." is a *range* from '+' to '.', so runc also accepts ','. We match
# runc, not the regex's apparent intent.
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+,-.")
# The id names a directory (and a cgroup, and the layer dir with a 9
# character suffix): NAME_MAX is 255 on every Linux filesystem, and this
# leaves room for pyrun's own suffixes.
MAX_ID_LEN = 200


ANNOTATIONS = "annotations.json"


def validate_id(container_id: str) -> None:
    r"""Every command checks the id here, once, before any file is touched:
    runc's rule (``^[\w+-\.]+$``, not '.' or '..') and at most
    :data:`MAX_ID_LEN` characters. One message for every command."""
    from pyrun.errors import UsageError

    if (container_id and len(container_id) <= MAX_ID_LEN and container_id not in (".", "..")
            and set(container_id) <= _ID_CHARS):
        return
    shown = jsonio.quote(container_id if len(container_id) <= 40 else container_id[:40] + "...")
    raise UsageError(f"invalid container id {shown} ({len(container_id)} characters): an id is 1 to "
                     f"{MAX_ID_LEN} characters of [A-Za-z0-9_+,.-], not '.' or '..'")


class CorruptState(PyrunError):
    """state.json is there but cannot be parsed (torn, or edited by hand)."""


class StateDir:
    def __init__(self, root: str, container_id: str):
        self.root = root
        self.id = container_id
        self.path = os.path.join(root, container_id)
        self.lock_fd: int | None = None  # held while locked; children must close it

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def exists(self) -> bool:
        return lexists(self.path)

    def claim(self, rec: Record, annotations: dict | None = None) -> None:
        """mkdir(2) the container's directory and write its first record
        (and the config's ``annotations``, once: they never change),
        under a shared flock(2) of the state root (see the module's doc).
        mkdir is atomic: of concurrent creates of one id, exactly one wins;
        the others get ContainerExists and have made nothing."""
        from pyrun.log import log

        ensure_root(self.root)
        rootfd = _open_dir(self.root)
        try:
            fcntl.flock(rootfd, fcntl.LOCK_SH)
            try:
                os.mkdir(self.path, 0o711)
            except FileExistsError:
                raise ContainerExists(self.id) from None
            except OSError as e:
                raise os_error(e, self.path) from None
            try:
                with log.step("write(state.json)"):
                    self.write(rec, sync=bool(rec.layers))  # see write: only a layer dir outlives a reboot
                if annotations:
                    self._write_annotations(annotations)
            except BaseException:
                try:
                    remove_tree(self.path)
                except PyrunError:
                    pass
                raise
        finally:
            os.close(rootfd)

    def remove_orphan(self) -> bool:
        """Remove the directory if it has no record (a create killed between
        its mkdir and its first write), with the state root locked
        exclusively, so that no live create is in that window."""
        rootfd = _open_dir(self.root)
        try:
            fcntl.flock(rootfd, fcntl.LOCK_EX)
            if lexists(self.file("state.json")) or not lexists(self.path):
                return False
            remove_tree(self.path)
            return True
        finally:
            os.close(rootfd)

    def write(self, rec: Record, sync: bool = False) -> None:
        """Atomically: rename(2) of a complete file, so a kill at any moment
        leaves the old record or the new one, never a torn one. ``sync``:
        fsync(2) first, so that a power loss cannot leave a torn or empty
        one either. Only a first record that names a layer dir needs it
        (that dir survives a reboot on disk, and only the record finds
        it); the later ones, and a first one without a layer dir, name
        processes, cgroups and links, which do not survive it (``delete
        --force`` salvages a torn record and removes the state dir), and
        an fsync waits for the disk where /run is disk-backed."""
        tmp = self.file(".state.json.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                data = jsonio.dumps(to_dict(rec)).encode()
                while data:
                    data = data[os.write(fd, data):]
                if sync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, self.file("state.json"))
        except OSError as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise PyrunError(f"cannot write {self.file('state.json')}: {errno_text(e)}") from None

    def _write_annotations(self, annotations: dict) -> None:
        """annotations.json: the text ``state`` prints after ``"annotations": ``
        (two-space indent, one level deep), so ``state`` copies it and
        never parses it; :meth:`annotations` parses it for hooks."""
        fd = os.open(self.file(ANNOTATIONS), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            data = jsonio.go_nested(annotations, "  ", depth=1).encode()  # runc's bytes
            while data:
                data = data[os.write(fd, data):]
        finally:
            os.close(fd)

    def annotations_text(self) -> str:
        """annotations.json as written, or "" for none."""
        try:
            with open(self.file(ANNOTATIONS), "rb") as f:
                return f.read().decode()
        except FileNotFoundError:
            return ""
        except (OSError, ValueError) as e:
            raise CorruptState(f"cannot read {self.file(ANNOTATIONS)}: {e}") from None

    def annotations(self) -> dict:
        text = self.annotations_text()
        try:
            return jsonio.loads(text) if text else {}
        except (ValueError, SystemError) as e:
            raise CorruptState(f"corrupt {self.file(ANNOTATIONS)}: {e}") from None

    def read(self) -> Record:
        path = self.file("state.json")
        try:
            with open(path, "rb") as f:
                text = f.read().decode()
        except FileNotFoundError:
            raise ContainerNotFound(self.id) from None
        except OSError as e:
            raise os_error(e, path) from None
        except ValueError as e:
            raise CorruptState(f"corrupt state file {path}: {e}") from None
        try:
            data = jsonio.loads(text)
        except (ValueError, SystemError) as e:  # SystemError: _json's scanner, torn input
            raise CorruptState(f"corrupt state file {path}: {e}") from None
        try:
            data.pop("annotations", None)  # a record of a pyrun before annotations.json
            return Record(**data)
        except (TypeError, AttributeError):
            # Well-formed JSON of another shape: dockerd 20.10 gives every
            # runtime the same --root, so runc's state.json can sit beside ours.
            raise CorruptState(f"{path} is not a pyrun state record (another runtime's?)") from None

    def salvage(self) -> Record:
        """What can be read of a corrupt record: the fields that come before
        the damage (pid, pid_start, cgroup, layers), for ``delete --force``."""
        try:
            with open(self.file("state.json"), "rb") as f:
                text = f.read().decode(errors="replace")
        except OSError:
            text = ""
        rec = Record(id=self.id, bundle="", rootfs="", created="", owner="")
        for key in ("pid", "pid_start", "layers", "cgroup", "cgroup_pending", "uid_mappings", "gid_mappings", "net"):
            at = text.find(f'"{key}":')
            if at < 0:
                continue
            rest = text[at + len(key) + 3:].lstrip()
            if key.startswith("pid"):
                digits = rest.split(",", 1)[0].split("}", 1)[0].strip()
                if digits.isdigit():
                    setattr(rec, key, int(digits))
            elif key.endswith("mappings") or key == "net":  # no nesting deeper than these ends
                end = rest.find("}") + 1 if key == "net" else rest.find("]]") + 2
                try:
                    if end > 1:
                        setattr(rec, key, jsonio.loads(rest[:end]))
                except (ValueError, SystemError):
                    pass
            elif rest.startswith('"'):  # a JSON string: to its first unescaped quote
                end = 1
                while end < len(rest) and rest[end] != '"':
                    end += 2 if rest[end] == "\\" else 1
                try:
                    if end < len(rest):
                        setattr(rec, key, jsonio.loads(rest[:end + 1]))  # v1 cgroups: "\n"-joined
                except (ValueError, SystemError):
                    pass
        # Damage could name someone else's: a cgroup whose processes delete
        # would kill only if it names the container (pyrun/<id>, an engine's
        # libpod-<id>.scope), else it is removed only if empty.
        if rec.cgroup and self.id not in rec.cgroup:
            rec.cgroup, rec.cgroup_pending = "", rec.cgroup
        if not rec.cgroup and not rec.cgroup_pending:
            # Lost with the damage: where a container without
            # linux.cgroupsPath has it (removed only if empty, as pending).
            from types import SimpleNamespace

            from pyrun import cgroups
            from pyrun.errors import PyrunError

            rootless = os.geteuid() != 0 or not in_initial_userns()
            try:
                rec.cgroup_pending = cgroups.planned_path(
                    SimpleNamespace(linux=SimpleNamespace(cgroups_path=None)), self.id, rootless)
            except PyrunError:
                pass
        return rec

    def lock(self) -> _Lock:
        """``with sd.lock():`` serializes commands that change one container
        (flock on its dir).

        flock(2) locks belong to the open file description, which fork(2)
        shares: a child must close ``lock_fd`` or it keeps the lock."""
        return _Lock(self)

    def remove(self) -> None:
        remove_tree(self.path)

    def read_when(self, wanted: str, refusal) -> Record:
        """The record, if the container's status is ``wanted``; if not,
        InvalidState(``refusal(status)``). Under :meth:`lock`: the status
        may change as soon as the lock is released."""
        rec = self.read()
        status = self.status(rec)
        if status != wanted:
            raise InvalidState(refusal(status))
        return rec

    def status(self, rec: Record) -> str:
        if rec.pid == 0:
            # Still being created, or its creator died half way (garbage).
            return STATUS_CREATING if is_alive(rec.creator_pid, rec.creator_start) else STATUS_STOPPED
        if not is_alive(rec.pid, rec.pid_start):
            return STATUS_STOPPED
        if os.path.exists(self.file("exec.fifo")):
            return STATUS_CREATED
        if rec.cgroup:
            from pyrun.cgroups import frozen

            if frozen(rec.cgroup):
                return STATUS_PAUSED
        return STATUS_RUNNING


class _Lock:
    """The context manager of :meth:`StateDir.lock` (a class: contextlib
    imports collections and functools, on every command)."""

    __slots__ = ("sd",)

    def __init__(self, sd: StateDir):
        self.sd = sd

    def __enter__(self) -> None:
        sd = self.sd
        try:
            fd = os.open(sd.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            raise ContainerNotFound(sd.id) from None
        except OSError as e:
            raise os_error(e, sd.path) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_nlink == 0:  # deleted while we waited
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
    if not lexists(path):
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
        raise PyrunError(f"remove {e.filename or path}: {errno_text(e)}") from None


def _open_dir(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise os_error(e, path) from None


def _raise(e: OSError) -> None:
    raise e


def _rmtree(path: str) -> None:
    """shutil.rmtree without shutil (its import pulls in re, bz2 and lzma,
    on every ``pyrun delete``): bottom-up through directory fds
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


def oci_state(sd: StateDir, rec: Record, annotations: bool = True) -> dict:
    """The state of runtime.md ("State"), with runc's extra fields
    (``annotations``: parsed from annotations.json)."""
    from pyrun import OCI_VERSION

    status = sd.status(rec)
    out = {
        "ociVersion": OCI_VERSION,
        "id": rec.id,
        "pid": 0 if status == STATUS_STOPPED else rec.pid,  # runc: paused too
        "status": status,
        "bundle": rec.bundle,
        "rootfs": rec.rootfs,
        "created": rec.created,
        "owner": rec.owner,
    }
    if annotations:
        found = sd.annotations()
        if found:
            out["annotations"] = found
    return out


def hook_state(rec: Record, status: str, annotations: dict) -> bytes:
    """The state a hook reads on stdin; ``annotations``: the config's."""
    from pyrun import OCI_VERSION
    from pyrun.stages.hooks import state_json

    return state_json(OCI_VERSION, rec.id, status, rec.pid if status != STATUS_STOPPED else 0,
                      rec.bundle, annotations)


def read_state(root: str, container_id: str, annotations: bool = True, owner: bool = True) -> dict:
    """The OCI state of one container, as a dict (``owner``: as ``list``
    shows it; runc's ``state`` leaves it empty)."""
    sd, rec = load(root, container_id)
    out = oci_state(sd, rec, annotations)
    if not owner:
        out["owner"] = ""
    return out


def write_state(root: str, container_id: str, out) -> None:
    """``pyrun state``: the OCI state in the bytes runc prints (Go's
    MarshalIndent, two spaces, no newline at the end; "owner" empty, as
    runc's state leaves it), to the binary stream ``out``. annotations.json
    is copied in as it is, in chunks: a config with megabytes of
    annotations costs a copy, not a parse, on every call."""
    sd, rec = load(root, container_id)
    state = oci_state(sd, rec, annotations=False)
    state["owner"] = ""
    text = jsonio.go(state, indent="  ")
    try:
        f = open(sd.file(ANNOTATIONS), "rb")
    except FileNotFoundError:
        out.write(text.encode())
        return
    except OSError as e:
        raise os_error(e, sd.file(ANNOTATIONS)) from None
    with f:
        out.write(text[:-2].encode() + b',\n  "annotations": ')
        while chunk := f.read(1 << 20):
            out.write(chunk)
    out.write(b"\n}")


def list_ids(root: str) -> list[str]:
    """The ids with a record (a directory without one is a create in its
    first microseconds, or the remains of one killed there)."""
    check_root(root)
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    except OSError as e:
        raise os_error(e, root) from None
    return sorted(n for n in names if lexists(os.path.join(root, n, "state.json")))
