"""``pyrun checkpoint`` and ``pyrun restore``: a running container frozen to
disk and brought back, by CRIU (criu.org), as runc 1.1 does it.

CRIU does the work: it freezes the container's process tree, reads every
process's memory, descriptors, namespaces and mounts through ptrace(2) and
/proc, and writes them as image files (``criu dump``); ``criu restore``
makes the same tree again from them. pyrun talks to it over CRIU's RPC
protocol (``criu swrk FD``: protobuf messages on a SOCK_SEQPACKET socket;
the messages are Debian's ``pycriu.rpc_pb2``, imported only here and only
for these two commands). pycriu's own ``criu`` class cannot answer CRIU's
*notifications* (the messages CRIU sends mid-restore, "setup-namespaces"
when the restored tree's namespaces exist, "orphan-pts-master" with a
terminal's master), so the few lines of the exchange are :class:`Swrk`.

What CRIU must be told, because it cannot know it (each is a field of
``criu_opts``; runc's ``criu_opts`` and crun's ``criu.c`` tell it the same):

* **the process and where to write**: ``pid`` (the container's PID 1,
  whose tree is dumped), ``images_dir_fd`` (``--image-path``),
  ``work_dir_fd`` with ``log_file`` (``--work-path``; the logs ``dump.log``
  and ``restore.log`` are there, and every error names them), ``root``
  (the container's root: CRIU resolves the paths it saved inside it).
* **namespaces it must not dump**: a namespace the container *joined*
  (``linux.namespaces[].path``) is someone else's; CRIU records it as
  ``external: net[INODE]:extRootNetNS`` and at restore gets a descriptor
  of the namespace to put the restored tree into (``inherit_fd`` with that
  key). pyrun does this for the network namespace, as runc does. Its own
  namespaces (mount, pid, uts, ipc, cgroup, a network of its own) CRIU
  dumps and makes again; ``--empty-ns network`` makes it restore an empty
  network namespace (for an engine that configures it again).
  pyrun's bridge network (pyrun.net.bridge; runc has none) is told as
  external too: its ``eth0`` is one end of a veth whose other end, the
  lease and the NAT rules are the host's. Restore takes the same address
  again (``network.json`` in the images), makes a fresh namespace with
  unshare(2), attaches it to the bridge as create does, ``lo`` up, and
  hands it to CRIU as ``extRootNetNS``: sockets bound to the address, and
  with ``--tcp-established`` connections to it, go on. The container's
  /etc/hosts and /etc/resolv.conf (binds of state-dir files) are external
  mounts, bound at restore from the new state dir's.
* **external mounts**: a bind mount's source is a host path, outside what
  CRIU dumps; ``ext_mnt`` tells it "the mount at DEST is external" at dump
  (key DEST, value DEST) and where its source is at restore (key DEST,
  value SOURCE). A masked file (``linux.maskedPaths``) is a bind of a null
  device: external, and at restore the host's /dev/null, checked to be the
  null device first (a masked directory is an empty tmpfs CRIU dumps). On
  cgroup v1 without a cgroup namespace, the container's cgroup of each
  hierarchy bound under its ``type: cgroup`` mount is external too, bound
  at restore from the restored container's own cgroups. Before the
  restore the mount points are made in the root as create makes them: an
  engine may restore into a fresh copy of the image (podman's
  ``--import``, containerd's new snapshot).
* **terminals** (``process.terminal``): the pty's master went to
  ``--console-socket`` at create, so it is the engine's, outside the tree:
  CRIU finds the container's slave (``/dev/pts/0`` of the container's
  devpts) without its master and refuses ("Found slave peer index 0
  without correspond master peer"). ``orphan_pts_master`` at dump (as
  runc sets it) lets it dump the slave alone; at restore it opens a new
  master in the restored devpts, hands it to the restoring client in an
  "orphan-pts-master" notification, and connects the slave to it. pyrun
  sends that master to the new ``--console-socket`` (runc's protocol, as
  at create), or, in the foreground without one, keeps it and relays the
  caller's terminal to it as ``run`` does (runc: its own console socket,
  the same relay). The relay makes the caller's terminal raw with
  TCSANOW: what was typed while CRIU worked is the container's input
  (TCSAFLUSH, tty.setraw's default, threw it away, and the restored shell
  never saw a line).
  (CRIU's ``external tty[RDEV:DEV]`` key is the other way, for a tty
  whose *slave* is outside, such as the caller's own terminal: not a
  container's.)
* **the cgroup root**: CRIU dumps the cgroup the tree is in relative to the
  root of each hierarchy; at restore pyrun makes the container's cgroup
  from the config first (its limits written, as at create), puts CRIU
  itself in it, and gives it as ``cg_root``: the restored tree lands there
  and, ``--manage-cgroups-mode soft`` (the default), CRIU leaves the limits
  pyrun wrote alone. ``strict`` cannot be, at restore: CRIU then makes
  every cgroup of the image itself and aborts on one that exists ("cg:
  Abort restore of existing cgroups"), and the container's always does.
  runc 1.1 accepts ``restore --manage-cgroups-mode`` but hands CRIU no
  mode at all (its restore.log says "cgroups restore mode 0x4", soft,
  whatever the flag), so its strict restore succeeds, as soft: pyrun
  restores strict as soft too (soft, full and ignore as asked).
* **unix sockets to the outside** (``--ext-unix-sk``): CRIU 3.17 dumps a
  datagram socket whose peer is outside; a *stream* socket whose peer is
  outside (the caller's socketpair as the container's stdout) it refuses
  even then, "Can't dump half of stream unix connection" (it wants such a
  socket named, ``external unix[INODE]``, which pyrun does not do yet;
  nor does runc 1.1.5, which fails both dumps, "criu failed: type NOTIFY
  errno 0", the container running on, as pyrun's).
* **inherited descriptors**: the container's stdio were the caller's at
  create (a pipe of the engine, the caller's /dev/null or log file). CRIU
  dumps a pipe as a pipe; a file on a mount the container does not have it
  cannot even look up ("Can't lookup mount"), so it is declared external,
  ``external: file[MNT_ID:INODE]``. At restore the *new* caller's stdio
  stand in for both (``inherit_fd`` with the pipe's name ``pipe:[INODE]``
  or that key, recorded in ``descriptors.json`` at checkpoint, runc's file).

Not dumped by pyrun: a container whose PID 1 is pyrun's own init
(``--init``): its executable is a sealed memfd (pyrun.stages.pid1), and CRIU
3.17 dumps such a process but cannot restore it ("No entry for reg-file-ID"
for the exe link), so it is refused before CRIU freezes anything. A
container with a slirp network (pasta, slirp4netns), or netDevices, is
refused too: its helper process or devices are outside what CRIU dumps; and
one with an overlay root (``--rootfs-mode overlay``): CRIU saves no file of
the root, and the writable layer goes with the container.

Rootless is refused, as by runc: CRIU needs CAP_SYS_ADMIN (or
CAP_CHECKPOINT_RESTORE with more) in the initial user namespace.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import sys

from pyrun.errors import PyrunError, UsageError, errno_text
from pyrun.log import log

CRIU = "/usr/sbin/criu"
# Where Debian's criu package puts pycriu (and python3-protobuf, protobuf):
# outside the venv, added to sys.path only when these commands run.
DIST_PACKAGES = "/usr/lib/python3/dist-packages"

# criu_cg_mode, by runc's flag values
CGROUP_MODES = {"soft": "SOFT", "full": "FULL", "strict": "STRICT", "ignore": "IGNORE"}
# --empty-ns: the namespaces CRIU may restore empty (runc accepts network)
EMPTY_NS = {"network": 0x40000000}  # CLONE_NEWNET
DESCRIPTORS = "descriptors.json"  # runc's name: the paths of PID 1's fds 0-2 at dump
NETWORK = "network.json"  # pyrun's: the bridge address at dump


class CheckpointError(PyrunError):
    pass


def _rpc():
    """pycriu's protobuf messages, or one line saying what to install."""
    try:
        from pycriu import rpc_pb2
    except ImportError:
        if DIST_PACKAGES not in sys.path:
            sys.path.append(DIST_PACKAGES)  # after the venv's: its packages win
        try:
            from pycriu import rpc_pb2
        except ImportError as e:
            raise CheckpointError(f"CRIU's Python client is missing ({e}): install the criu and "
                                  "python3-protobuf packages (apt-get install criu python3-protobuf)") from None
    if not os.access(CRIU, os.X_OK):
        raise CheckpointError(f"{CRIU} not found: install the criu package (apt-get install criu)")
    return rpc_pb2


def _refuse_rootless(command: str) -> None:
    from pyrun.container.state import in_initial_userns

    if os.geteuid() != 0 or not in_initial_userns():
        raise CheckpointError(f"{command} needs root: CRIU needs CAP_SYS_ADMIN (or CAP_CHECKPOINT_RESTORE) "
                              "in the initial user namespace; a rootless container cannot be "
                              f"{'checkpointed' if command == 'checkpoint' else 'restored'} (as with runc)")


class Swrk:
    """One ``criu swrk`` and its socket: send a request, answer the
    notifications CRIU sends before its final response (``on_notify``:
    script name, pid, descriptors; raise to make CRIU fail the step)."""

    def __init__(self, rpc, pass_fds=(), preexec_fn=None):
        import subprocess

        self.rpc = rpc
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock = ours
        try:
            # stdio: ours (runc's too), which stand in for the container's pipes at restore
            self.proc = subprocess.Popen([CRIU, "swrk", str(theirs.fileno())], close_fds=True,
                                         pass_fds=[theirs.fileno(), *pass_fds], preexec_fn=preexec_fn)
        except (OSError, subprocess.SubprocessError) as e:
            ours.close()
            raise CheckpointError(f"start {CRIU} swrk: {e}") from None
        finally:
            theirs.close()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def call(self, req, on_notify=None):
        self.sock.send(req.SerializeToString())
        while True:
            try:
                data, fds, _flags, _addr = socket.recv_fds(self.sock, 1 << 20, 8)
            except OSError as e:
                raise CheckpointError(f"criu swrk: {errno_text(e)}") from None
            if not data:
                raise CheckpointError("criu swrk exited before it answered (killed?)")
            resp = self.rpc.criu_resp()
            resp.ParseFromString(data)
            if resp.type != self.rpc.NOTIFY:
                for fd in fds:
                    os.close(fd)
                return resp
            ok = True
            try:
                if on_notify is not None:
                    on_notify(resp.notify.script, resp.notify.pid, fds)
            except PyrunError as e:
                log.error(str(e))
                ok = False
            finally:
                for fd in fds:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            answer = self.rpc.criu_req(type=self.rpc.NOTIFY, notify_success=ok)
            self.sock.send(answer.SerializeToString())

    def close(self) -> None:
        self.sock.close()
        try:
            self.proc.wait(timeout=30)
        except Exception:  # noqa: BLE001 - a stuck criu: never left behind
            self.proc.kill()
            self.proc.wait()


def _open_dir(path: str, flag: str, create: bool) -> int:
    try:
        if create:
            os.makedirs(path, 0o700, exist_ok=True)
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise UsageError(f"{flag} {path}: {errno_text(e)}") from None


def _failed(step: str, resp, work: str, logname: str) -> CheckpointError:
    """One line: the CRIU step, its first error from the log (the cause;
    the later ones are its consequences, down to "Dumping FAILED."), where
    the log is."""
    why = resp.cr_errmsg or ""
    try:
        with open(os.path.join(work, logname), errors="replace") as f:
            errors = [line.strip() for line in f if "Error (" in line]
        # the first error that says what failed: the cause ("Restoring
        # FAILED." at the end says only that it did)
        specific = [e for e in errors if not e.endswith("FAILED.")]
        if specific or errors:
            why = (specific or errors)[0].split("): ", 1)[-1]
    except OSError:
        pass
    why = why or "no reason given"
    if resp.cr_errno:
        why += f"; {errno_text(resp.cr_errno)}"
    return CheckpointError(f"criu {step} failed: {why} "
                           f"(see {os.path.join(work, logname)})")


def _mount_points(pid: int) -> dict[str, str]:
    """The mount points of ``pid``'s mount namespace, relative to its root,
    and their filesystem types (proc(5) mountinfo)."""
    from pyrun.filesystem.rootfs import unescape_mountinfo

    out = {}
    with open(f"/proc/{pid}/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            out[unescape_mountinfo(fields[4])] = fstype
    return out


def _bind_mounts(spec) -> list:
    return [m for m in spec.mounts if m.type == "bind" or "bind" in (m.options or []) or "rbind" in (m.options or [])]


def _bind_source(spec, m) -> str:
    return m.source if os.path.isabs(m.source) else os.path.join(spec.bundle, m.source)


# ----------------------------------------------------------------- checkpoint

def checkpoint(root: str, container_id: str, image_path: str, work_path: str | None = None,
               parent_path: str | None = None, leave_running: bool = False, pre_dump: bool = False,
               tcp_established: bool = False, ext_unix_sk: bool = False, shell_job: bool = False,
               file_locks: bool = False, manage_cgroups_mode: str | None = None,
               empty_ns: tuple = (), auto_dedup: bool = False) -> None:
    """Dump the container to ``image_path``; then it is destroyed, as by
    runc, unless ``leave_running`` or ``pre_dump``. A failure leaves it as
    it was: CRIU thaws what it froze."""
    from pyrun.container import lifecycle
    from pyrun.container.state import STATUS_PAUSED, STATUS_RUNNING, state_dir
    from pyrun.errors import InvalidState

    _refuse_rootless("checkpoint")
    rpc = _rpc()
    sd = state_dir(root, container_id)
    with sd.lock():
        rec = sd.read()
        # paused too, as runc: containerd's ``ctr container checkpoint
        # --task`` pauses the task first; CRIU finds the freezer frozen and
        # leaves it so after the dump
        if (status := sd.status(rec)) not in (STATUS_RUNNING, STATUS_PAUSED):
            raise InvalidState(f"container {container_id!r} is {status}, not running: cannot checkpoint it")
        spec = lifecycle.saved_spec(sd, rec)
        _refuse_unsupported(rec, spec)
        image_path = os.path.abspath(image_path)
        work = os.path.abspath(work_path) if work_path else image_path
        opts = rpc.criu_opts(pid=rec.pid, log_level=4, log_file="dump.log" if not pre_dump else "pre-dump.log",
                             root=spec.root.path, manage_cgroups=True, notify_scripts=True,
                             leave_running=leave_running or pre_dump, shell_job=shell_job,
                             tcp_established=tcp_established, ext_unix_sk=ext_unix_sk, file_locks=file_locks,
                             auto_dedup=auto_dedup, orphan_pts_master=spec.process.terminal)
        if manage_cgroups_mode:
            opts.manage_cgroups_mode = getattr(rpc, CGROUP_MODES[manage_cgroups_mode])
        for ns in empty_ns:
            opts.empty_ns |= EMPTY_NS[ns]
        if parent_path:
            opts.parent_img = _parent(image_path, parent_path)
            opts.track_mem = True
        if pre_dump:
            opts.track_mem = True
        if rec.cgroup:
            # the cgroup freezer stops the whole tree at once (CRIU's own
            # way, ptrace-seizing task by task, races a forking container)
            opts.freeze_cgroup = _freezer(rec.cgroup)
        _external_namespaces(rec, spec, opts)
        _external_mounts_at_dump(rec.pid, spec, opts)
        images = _open_dir(image_path, "--image-path", True)
        workfd = _open_dir(work, "--work-path", True) if work != image_path else images
        try:
            opts.images_dir_fd, opts.work_dir_fd = images, workfd
            _write_descriptors(images, rec.pid, opts)
            _write_network(images, rec)
            swrk = Swrk(rpc, pass_fds=sorted({images, workfd}))
            try:
                req = rpc.criu_req(type=rpc.PRE_DUMP if pre_dump else rpc.DUMP, opts=opts)
                with log.step("criu dump"):
                    resp = swrk.call(req)
                if not resp.success:
                    raise _failed("pre-dump" if pre_dump else "dump", resp, work, opts.log_file)
            except BaseException:
                swrk.close()
                if status == STATUS_RUNNING and rec.cgroup:
                    _thaw(rec.cgroup)
                raise
            swrk.close()
        finally:
            os.close(images)
            if workfd != images:
                os.close(workfd)
        if leave_running or pre_dump:
            return
        from pyrun.container.teardown import remove_everything

        remove_everything(sd, rec)  # CRIU killed the processes; runc destroys the container


def _refuse_unsupported(rec, spec) -> None:
    pid = rec.pid
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        exe = ""
    if exe.startswith("/memfd:"):
        raise CheckpointError("the container's PID 1 is pyrun's init (--init, annotation org.pyrun.init): its "
                              "executable is a sealed memfd, which CRIU 3.17 cannot restore; create the "
                              "container with --no-init to checkpoint it")
    if rec.net.get("mode") not in (None, "none", "host", "bridge") and rec.net:
        raise CheckpointError(f"a container with network mode {rec.net.get('mode')} cannot be checkpointed: "
                              "its veth or helper process is outside the namespaces CRIU dumps")
    if rec.layers:
        raise CheckpointError("a container with an overlay root (--rootfs-mode overlay, annotation "
                              "org.pyrun.rootfs) cannot be checkpointed: its writable layer is removed with "
                              "it, and CRIU saves no file of the root")
    if spec.linux.net_devices:
        raise CheckpointError("a container with linux.netDevices cannot be checkpointed: "
                              "the devices are the host's")


def _freezer(record: str) -> str:
    """The container's cgroup with a freezer: on v2 its own directory
    (cgroup.freeze), on v1 the one in the freezer hierarchy."""
    from pyrun.cgroups import directory_of

    paths = directory_of(record).split("\n")
    return next((p for p in paths if "/freezer/" in p), paths[0])


def _thaw(record: str) -> None:
    """A dump that failed leaves a container that was running, running. CRIU
    freezes the cgroup only while it seizes the tasks (ptrace(2)), then
    thaws it, and thaws it when it fails; a CRIU killed inside that window
    would leave the tree frozen, which ``state`` would report as paused
    and nothing would undo."""
    from pyrun.cgroups import open_cgroup

    try:
        open_cgroup(record).freeze(False)
    except (OSError, PyrunError) as e:
        log.debug_msg(f"checkpoint failed, and the freezer could not be thawed: {e}")


def _parent(image_path: str, parent_path: str) -> str:
    """--parent-path: a pre-dump's images, relative to --image-path (CRIU
    opens it from the image dir, and fails with an unclear message if it
    is not there: checked here, as runc and crun do)."""
    if os.path.isabs(parent_path):
        raise UsageError(f"--parent-path {parent_path}: must be relative (to --image-path), as with runc")
    full = os.path.normpath(os.path.join(image_path, parent_path))  # the image dir may not exist yet
    if not os.path.isdir(full):
        raise UsageError(f"invalid --parent-path {parent_path}: no pre-dump images at {full}")
    return parent_path


def _external_namespaces(rec, spec, opts) -> None:
    """A network namespace the container joined is not its to dump; nor is
    the one of the bridge network (its veth's peer is the host's): restore
    makes a fresh one, attached to the bridge at the same address. Its
    /etc/hosts and /etc/resolv.conf are binds of files of the state dir."""
    ns = spec.namespace("network")
    bridged = rec.net.get("mode") == "bridge"
    if ns is not None and ns.path or bridged:
        ino = os.stat(f"/proc/{rec.pid}/ns/net").st_ino
        opts.external.append(f"net[{ino}]:extRootNetNS")
    if bridged:
        for dest in ("/etc/hosts", "/etc/resolv.conf"):
            opts.ext_mnt.add(key=dest, val=dest)


def _write_network(images: int, rec) -> None:
    """network.json (pyrun's): the bridge address, for restore to keep, and
    the published ports (``run --network bridge -p``: flags, not in the
    config restore reads)."""
    if rec.net.get("mode") != "bridge":
        return
    with os.fdopen(_create_in_images(images, NETWORK), "w") as f:
        json.dump({"mode": "bridge", "ip": rec.net.get("ip"), "ports": rec.net.get("ports", [])}, f)


def _create_in_images(images: int, name: str) -> int:
    """open(2) pyrun's own file ``name`` in the image dir for writing, never
    through a symlink (O_NOFOLLOW): the dir may be one another user made
    first, and a planted ``name`` -> /etc/shadow would have root truncate
    it."""
    try:
        return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                       dir_fd=images)
    except OSError as e:
        raise CheckpointError(f"--image-path: {name}: {errno_text(e)}") from None


def _read_network(image_path: str) -> dict:
    try:
        with open(os.path.join(image_path, NETWORK)) as f:
            net = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{image_path}/{NETWORK}: {e}") from None
    return net if isinstance(net, dict) else {}


def _external_mounts_at_dump(pid: int, spec, opts) -> None:
    """Bind mounts, and masked files: external (runc's rule: a masked path
    that is not a directory is a bind of a null device)."""
    for m in _bind_mounts(spec):
        opts.ext_mnt.add(key=m.destination, val=m.destination)
    mounted = _mount_points(pid)  # as the container sees them (proc(5): relative to its root)
    for dest in _cgroup_v1_binds(spec, mounted):
        opts.ext_mnt.add(key=dest, val=dest)
    for path in spec.linux.masked_paths:
        if path not in mounted:
            continue  # not there, so not masked
        try:
            st = os.lstat(f"/proc/{pid}/root{path}")
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode):
            opts.ext_mnt.add(key=path, val="/dev/null")


def _cgroup_v1_binds(spec, mounted: dict[str, str]) -> list[str]:
    """On cgroup v1 without a cgroup namespace, a ``type: cgroup`` mount is
    a tmpfs with the container's cgroup of each hierarchy bound in it
    (pyrun.filesystem.cgroup_mount): host directories, so external, as
    runc tells CRIU (its getCgroupMounts). Left alone, CRIU refuses their
    propagation ("has unreachable sharing"). The destinations, from the
    container's mountinfo."""
    ns = spec.namespace("cgroup")
    if ns is not None and not ns.path:
        return []  # fresh mounts of each hierarchy in its own namespace: CRIU's to dump
    out = []
    for m in spec.mounts:
        if m.type == "cgroup":
            top = m.destination.rstrip("/") + "/"
            out += [p for p, fstype in mounted.items() if fstype == "cgroup" and p.startswith(top)]
    return out


def _write_descriptors(images: int, pid: int, opts) -> None:
    """descriptors.json: what PID 1's fds 0-2 were (runc's file), so that
    restore hands its own stdio in for them. A pipe CRIU dumps as a pipe,
    whose name (``pipe:[INODE]``) is the key; a file on a mount the
    container does not have (the caller's /dev/null, a log file) CRIU
    cannot look up: it is external, ``file[MNT_ID:INODE]`` (hex, CRIU's
    key), and that is what the file records for it."""
    mounts = _mount_ids(pid)
    names = []
    for fd in range(3):
        try:
            name = os.readlink(f"/proc/{pid}/fd/{fd}")
            st = os.stat(f"/proc/{pid}/fd/{fd}")
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                mnt_id = next(int(line.split()[1]) for line in f if line.startswith("mnt_id:"))
        except (OSError, StopIteration, ValueError):
            names.append("/dev/null")
            continue
        if (stat.S_ISREG(st.st_mode) or stat.S_ISCHR(st.st_mode)) and mnt_id not in mounts:
            name = f"file[{mnt_id:x}:{st.st_ino:x}]"
            if name not in opts.external:
                opts.external.append(name)
        names.append(name)
    with os.fdopen(_create_in_images(images, DESCRIPTORS), "w") as f:
        json.dump(names, f)


def _mount_ids(pid: int) -> set[int]:
    with open(f"/proc/{pid}/mountinfo") as f:
        return {int(line.split()[0]) for line in f}


# ----------------------------------------------------------------- restore

def restore(root: str, container_id: str, bundle: str, image_path: str, work_path: str | None = None,
            detach: bool = False, pid_file: str | None = None, console_socket: str | None = None,
            no_subreaper: bool = False, no_pivot: bool = False, tcp_established: bool = False,
            ext_unix_sk: bool = False, shell_job: bool = False, file_locks: bool = False,
            manage_cgroups_mode: str | None = None, empty_ns: tuple = (), auto_dedup: bool = False,
            ignore_cgroup_limits: bool = False, systemd_cgroup: bool = False, lsm_profile: str | None = None,
            lsm_mount_context: str | None = None) -> int:
    """Make the container ``container_id`` from ``bundle``'s config and the
    images: its state record and cgroup as ``create`` makes them, its
    processes by CRIU. Detached, return 0 once it runs; else wait for it
    and return its exit code (then delete it, as ``run``)."""
    from pyrun.config import spec as specmod
    from pyrun.container.create import _first_record, _undo_create, write_pid_file
    from pyrun.container.planning import Options, make_plan
    from pyrun.container.state import StateDir, proc_start_time, validate_id

    _refuse_rootless("restore")
    rpc = _rpc()
    image_path = os.path.abspath(image_path)
    work = os.path.abspath(work_path) if work_path else image_path
    if not os.path.isfile(os.path.join(image_path, "inventory.img")):
        raise UsageError(f"--image-path {image_path}: no checkpoint images there (no inventory.img)")
    validate_id(container_id)
    spec = specmod.load(bundle)
    specmod.require_process(spec)
    if spec.process.terminal and detach and not console_socket:  # runc's rule, and create's
        raise UsageError("--console-socket: a detached container with a terminal (process.terminal) needs "
                         "a console socket to hand the pty to")
    sd = StateDir(root, container_id)
    # a container dumped on the bridge comes back on it, with its published
    # ports, whether the config's annotations or run's flags put it there
    dumped = _read_network(image_path)
    opts = Options(no_pivot=no_pivot)
    if dumped.get("mode") == "bridge" and spec.namespace("network") is not None:
        opts = Options(no_pivot=no_pivot, network="bridge", publish=",".join(dumped.get("ports") or []) or None)
    plan = make_plan(spec, sd.path, opts)
    if plan.rootfs_mode == "overlay":
        raise CheckpointError("an overlay root (--rootfs-mode overlay, annotation org.pyrun.rootfs) cannot be "
                              "restored: pyrun checkpoints only containers on their bundle's root")
    if plan.net is not None and plan.net.mode not in ("none", "host", "bridge"):
        raise CheckpointError(f"network mode {plan.net.mode} cannot be restored (see pyrun checkpoint)")
    if plan.net is not None and plan.net.mode == "bridge" and not dumped.get("ip"):
        raise CheckpointError(f"network mode bridge: the images at {image_path} are of a container "
                              "that was not on the bridge (no network.json)")
    if console_socket and not spec.process.terminal:  # runc's rule at create too
        raise UsageError("--console-socket: the container has no terminal (process.terminal is false)")
    console = _Console(console_socket) if spec.process.terminal else None
    rec = _first_record(sd, spec, plan)
    rec.use_init, rec.hooks = False, bool(spec.hooks.poststop)
    sd.claim(rec, spec.annotations)
    pids: list[int] = []
    undo: list = []
    try:
        with sd.lock():
            flags = {"shell_job": shell_job, "tcp_established": tcp_established, "ext_unix_sk": ext_unix_sk,
                     "file_locks": file_locks, "auto_dedup": auto_dedup, "empty_ns": empty_ns,
                     "manage_cgroups_mode": manage_cgroups_mode, "ignore_cgroup_limits": ignore_cgroup_limits,
                     "systemd_cgroup": systemd_cgroup, "lsm_profile": lsm_profile,
                     "lsm_mount_context": lsm_mount_context}
            _restore_locked(rpc, sd, rec, spec, plan, dumped, image_path, work, pids, undo, flags, console)
    except BaseException:
        if console is not None:
            console.close()
        _undo_create(sd, rec, pids, undo)  # what was made, in reverse: processes, cgroup, state dir
        raise
    started = proc_start_time(rec.pid)
    rec.pid_start = started[0] if started else 0
    sd.write(rec)
    if pid_file:
        write_pid_file(pid_file, rec.pid)
    master = None
    if console is not None:  # its master, for the relay; the socket closed (no pty came: nothing sent)
        master, console.master = console.master, None
        console.close()
    if detach:
        if master is not None:
            os.close(master)
        return 0
    from pyrun.container import lifecycle

    try:
        return lifecycle.wait_forwarding(rec.pid, master=master)
    finally:
        if master is not None:
            os.close(master)
        try:
            lifecycle.delete(root, container_id, force=True)
        except PyrunError as e:
            log.warning(f"delete after restore: {e}")


def _restore_locked(rpc, sd, rec, spec, plan, dumped, image_path, work, pids, undo, flags, console) -> None:
    """The cgroup, then ``criu restore`` into it (the module docstring's list)."""
    from pyrun import cgroups
    from pyrun.container.create import _create_runtime_hooks

    cg = cgroups.setup(spec, sd.id, False, flags["ignore_cgroup_limits"], flags["systemd_cgroup"])
    if cg is not None:
        undo.append(lambda: (cg.kill(), cg.remove()))
        rec.cgroup, rec.cgroup_pending = cgroups.record_of(cg), ""
        sd.write(rec)
    images = _open_dir(image_path, "--image-path", False)
    workfd = _open_dir(work, "--work-path", True) if work != image_path else images
    passed = sorted({images, workfd})
    opts = rpc.criu_opts(images_dir_fd=images, work_dir_fd=workfd, log_level=4, log_file="restore.log",
                         root=os.path.join(sd.path, "criu-root"), manage_cgroups=True, notify_scripts=True,
                         rst_sibling=True, shell_job=flags["shell_job"], tcp_established=flags["tcp_established"],
                         ext_unix_sk=flags["ext_unix_sk"], file_locks=flags["file_locks"],
                         auto_dedup=flags["auto_dedup"], orphan_pts_master=console is not None)
    mode = flags["manage_cgroups_mode"]
    if mode == "strict" and cg is not None:
        # strict: CRIU makes every cgroup of the image and aborts on one that
        # exists; the container's exists, made above from the config (as
        # runc's): restored soft, as runc 1.1 restores (it hands CRIU no mode)
        log.debug_msg("--manage-cgroups-mode strict: the container's cgroup is made from the config "
                      "before CRIU runs; restoring as soft (as runc 1.1)")
        mode = "soft"
    if mode:
        opts.manage_cgroups_mode = getattr(rpc, CGROUP_MODES[mode])
    # --lsm-profile TYPE:NAME, --lsm-mount-context: the restored tree's
    # AppArmor profile or SELinux label and its mounts' context instead of
    # the dumped ones (runc 1.1's flags; podman sends them for a restore
    # into a pod, or --import into another label)
    if flags["lsm_profile"]:
        opts.lsm_profile = flags["lsm_profile"]
    if flags["lsm_mount_context"]:
        opts.lsm_mount_context = flags["lsm_mount_context"]
    for ns in flags["empty_ns"]:
        opts.empty_ns |= EMPTY_NS[ns]
    netns = -1
    ns = spec.namespace("network")
    try:
        if plan.net is not None and plan.net.mode == "bridge":
            netns = _bridged_netns(sd, rec, spec, plan, dumped["ip"], undo)
            opts.inherit_fd.add(key="extRootNetNS", fd=netns)
            passed.append(netns)
        elif ns is not None and ns.path:
            try:
                netns = os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                raise PyrunError(f"linux.namespaces network {ns.path}: {errno_text(e)}") from None
            opts.inherit_fd.add(key="extRootNetNS", fd=netns)
            passed.append(netns)
        _external_mounts_at_restore(spec, opts)
        _cgroup_v1_binds_at_restore(spec, cg, opts)
        _inherit_stdio(images, opts)
        # CRIU restores the root from a mount point: the bundle's root bound
        # at criu-root in the state dir (ours), for the restore only (runc's
        # and crun's way; in a mount namespace of criu's own, CRIU 3.17
        # failed to mount its cgroup yard: EINVAL)
        from pyrun.kernel import syscalls as sc

        _make_mount_points(spec)
        os.mkdir(opts.root, 0o700)
        undo.append(lambda: os.rmdir(opts.root))
        sc.mount(spec.root.path, opts.root, None, sc.MS_BIND | sc.MS_REC)
        undo.append(lambda: sc.umount2(opts.root, sc.MNT_DETACH))
        swrk = Swrk(rpc, pass_fds=passed)
        pids.append(swrk.pid)
        try:
            if cg is not None:
                cg.add(swrk.pid)  # what CRIU forks starts in the container's cgroup
                opts.cg_root.extend(_cgroup_roots(rpc, swrk.pid))

            def on_notify(script: str, pid: int, fds: list[int]) -> None:
                if script == "setup-namespaces":
                    rec.pid = pid
                    pids.insert(0, pid)
                    _create_runtime_hooks(spec, rec)
                elif script == "post-restore":
                    rec.pid = pid
                elif script == "orphan-pts-master" and console is not None and fds:
                    console.take(fds[0])

            with log.step("criu restore"):
                resp = swrk.call(rpc.criu_req(type=rpc.RESTORE, opts=opts), on_notify)
        finally:
            swrk.close()
            pids.remove(swrk.pid)
        if not resp.success:
            raise _failed("restore", resp, work, "restore.log")
        rec.pid = resp.restore.pid or rec.pid
        undo.pop()()  # umount2(criu-root, MNT_DETACH)
        undo.pop()()  # rmdir(criu-root)
    finally:
        os.close(images)
        if workfd != images:
            os.close(workfd)
        if netns >= 0:
            os.close(netns)


def _bridged_netns(sd, rec, spec, plan, ip: str, undo: list) -> int:
    """A fresh network namespace on the bridge at the address the container
    had (its lease, /etc/hosts, /etc/resolv.conf and published ports as
    create makes them), for CRIU to restore the tree into: the dumped one
    was external (:func:`_external_namespaces`), so TCP connections to that
    address go on with ``--tcp-established``. Returns its descriptor."""
    from pyrun.container.create import _prepare_network
    from pyrun.kernel import syscalls as sc
    from pyrun.net import bridge

    rec.net = _prepare_network(sd, spec, plan, undo, ip=ip)  # undo: bridge.detach
    sd.write(rec)  # a delete after a killed restore finds the lease and veth
    # unshare(2) CLONE_NEWNET in this thread, then setns(2) back: this
    # process keeps the namespace it had, and holds the new one's descriptor
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        sc.unshare(sc.CLONE_NEWNET)
        try:
            netns = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            sc.setns(own, sc.CLONE_NEWNET, shown="the host's network namespace")
    finally:
        os.close(own)
    try:
        with log.step("bridge"):
            rec.net["veth"] = bridge.attach_netns(sd.path, ip, netns, plan.net.ports, loopback=True)
    except BaseException:
        os.close(netns)
        raise
    sd.write(rec)
    return netns


class _Console:
    """The restored terminal's new master (CRIU's "orphan-pts-master"
    notification): sent to ``--console-socket``, connected before anything
    is made (as create dials first), or kept for the foreground relay."""

    def __init__(self, path: str | None):
        from pyrun.console.terminal import connect_socket

        self.path = os.path.abspath(path) if path else None
        self.conn = connect_socket(path) if path else None
        self.master: int | None = None

    def take(self, fd: int) -> None:
        if self.conn is not None:
            from pyrun.console.terminal import send_to_socket

            conn, self.conn = self.conn, None
            send_to_socket(conn, self.path, fd)  # CRIU's descriptor: Swrk closes it
        elif self.path is None and self.master is None:
            self.master = os.dup(fd)  # CRIU's is closed by Swrk; the relay's copy

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.master is not None:
            os.close(self.master)
            self.master = None


def _make_mount_points(spec) -> None:
    """The config's mount points, made in the root as create makes them,
    before CRIU mounts on them: a root that is a fresh copy of the image
    (podman's ``restore --import``, containerd's restore into a new
    snapshot) lacks what the dumped container's root had, and CRIU fails
    with "Restoring FAILED." (runc's prepareCriuRestoreMounts). Not under
    a tmpfs (CRIU restores a tmpfs with its contents) nor under a bind
    mount (the host's directory: nothing of pyrun's to make there)."""
    from pyrun.filesystem.mounts import is_bind, make_in_root, source_path

    tmpfs = [m.destination.rstrip("/") + "/" for m in spec.mounts if m.type == "tmpfs"]
    binds = [m.destination.rstrip("/") + "/" for m in spec.mounts if is_bind(m)]
    rootfd = os.open(spec.root.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for m in spec.mounts:
            dest = m.destination.rstrip("/") + "/"
            if any(dest.startswith(top) and dest != top for top in tmpfs + binds):
                continue
            is_dir = not is_bind(m) or os.path.isdir(source_path(m, spec.bundle))
            os.close(make_in_root(rootfd, m.destination, is_dir=is_dir))
    finally:
        os.close(rootfd)


def _cgroup_roots(rpc, pid: int) -> list:
    """Each hierarchy's cgroup of ``pid`` (criu, moved into the container's):
    where CRIU puts the restored tree (proc(7) /proc/PID/cgroup)."""
    roots = []
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controllers.startswith("name="):
                continue
            root = rpc.cgroup_root(path=path)
            if controllers:
                root.ctrl = controllers
            roots.append(root)
    return roots


def _external_mounts_at_restore(spec, opts) -> None:
    for m in _bind_mounts(spec):
        opts.ext_mnt.add(key=m.destination, val=_bind_source(spec, m))
    null = os.stat("/dev/null")
    if not stat.S_ISCHR(null.st_mode) or (os.major(null.st_rdev), os.minor(null.st_rdev)) != (1, 3):
        raise CheckpointError("/dev/null is not the null device (character 1:3): refusing to mask with it")
    # At dump the masked files were saved as the external mount named
    # "/dev/null" (ext_mnt's value names it in the images; at restore the
    # key is that name, and the value the host path to bind)
    if spec.linux.masked_paths:
        opts.ext_mnt.add(key="/dev/null", val="/dev/null")


def _cgroup_v1_binds_at_restore(spec, cg, opts) -> None:
    """The v1 cgroup binds (:func:`_cgroup_v1_binds`): each destination
    bound from the restored container's own cgroup of that hierarchy."""
    from pyrun.filesystem import cgroup_mount

    ns = spec.namespace("cgroup")
    if ns is not None and not ns.path:
        return
    view = cgroup_mount.view(cg)
    if not view.v1:
        return
    for m in spec.mounts:
        if m.type == "cgroup":
            for h in view.hierarchies:
                if h.source:
                    dest = f"{m.destination.rstrip('/')}/{h.name}"
                    opts.ext_mnt.add(key=dest, val=h.source)


def _inherit_stdio(images: int, opts) -> None:
    """The pipes and external files PID 1 had as fds 0-2 at dump
    (:func:`_write_descriptors`): criu's own fds 0-2 (ours) stand in."""
    try:
        fd = os.open(DESCRIPTORS, os.O_RDONLY | os.O_CLOEXEC, dir_fd=images)
        with os.fdopen(fd) as f:
            names = json.load(f)
    except (OSError, ValueError):
        return
    seen = set()
    for i, name in enumerate(names[:3]):
        if isinstance(name, str) and name.startswith(("pipe:", "file[")) and name not in seen:
            seen.add(name)  # one descriptor per key: CRIU gives it to every file of that key
            opts.inherit_fd.add(key=name, fd=i)


