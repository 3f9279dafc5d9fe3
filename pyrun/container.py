"""The container lifecycle, host side: create, start, state, kill, delete, run.

This is pyrun's library API; ``pyrun.cli`` is a thin layer over it and tests
or other programs can call it directly::

    from pyrun import container
    container.create("/run/pyrun", "c1", "bundles/hello")
    container.start("/run/pyrun", "c1")

``create`` returns with the container's process waiting on ``exec.fifo``;
``start`` opens the fifo for reading, which releases it (runc's handshake).
Every step of ``create`` is undone if a later one fails.
"""

from __future__ import annotations

import _signal as signal  # signal.py's C core; signal.py adds IntEnums (enum: ~2.5 ms a start)
import os
import select
import stat

from pyrun import OCI_VERSION
from pyrun.errors import ConfigError, ContainerExists, ContainerNotFound, InvalidState, PyrunError, UsageError
from pyrun.log import log
from pyrun.record import record
from pyrun.state import (STATUS_CREATED, STATUS_CREATING, STATUS_PAUSED, STATUS_RUNNING,  # noqa: F401
                         STATUS_STOPPED, Record, StateDir, is_alive, load, now_rfc3339, oci_state,
                         proc_start_time, read_state, state_dir)

ANNOTATION_INIT = "org.pyrun.init"
ANNOTATION_ROOTFS = "org.pyrun.rootfs"
ANNOTATION_CGROUPS = "org.pyrun.cgroups"  # "ignore-limits": run without limits where cgroups cannot serve
ANNOTATION_LAYERS = "org.pyrun.layers"    # where the overlay's writable layer goes (as --layers-root)


@record
class Options:
    """Command-line choices for create/run (runc's flags plus pyrun's own)."""

    pid_file: str | None = None
    no_pivot: bool = False
    no_new_keyring: bool = False
    preserve_fds: int = 0
    rootfs_mode: str | None = None        # "overlay" | "direct"; None: the annotation, else direct
    init: bool | None = None              # None: the annotation, else no init (as runc)
    console_socket: str | None = None     # where the pty master goes (process.terminal)
    console_master: int | None = None     # set by a foreground create with a terminal: relay it
    ignore_cgroup_limits: bool = False    # --ignore-cgroup-limits (or the org.pyrun.cgroups annotation)
    systemd_cgroup: bool = False          # --systemd-cgroup: a transient scope unit (cgroups.systemd)
    network: str | None = None            # --network: sets annotation org.pyrun.network
    publish: str | None = None            # -p, comma-joined: sets annotation org.pyrun.ports
    pidfd_socket: str | None = None       # --pidfd-socket: where a pidfd of PID 1 goes
    keep: bool = False                    # run --keep: a stopped container stays for `state`
    pidfd_conn: object = None             # the --pidfd-socket connection, made before anything
    layers_root: str | None = None        # --layers-root: where overlay upper layers go


# ----------------------------------------------------------------- planning

def _owner() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def _bool_annotation(spec, key: str, default: bool) -> bool:
    value = spec.annotations.get(key)
    if value is None:
        return default
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise ConfigError(f"annotations[{key!r}]", f"expected true or false, got {value!r}")


def make_plan(spec, state_path: str, opts: Options):
    """Check what the host can do with this config, before any syscall."""
    from pyrun import rootfs, state
    from pyrun.builder import Plan

    if spec.namespace("mount") is None:
        raise ConfigError("linux.namespaces", "a mount namespace is required")
    userns = spec.namespace("user")
    initial_userns = state.in_initial_userns()
    privileged = os.geteuid() == 0 and initial_userns
    # uid 0 of a user namespace someone else set up (rootless podman runs
    # its runtime so) needs no namespace of its own: it has one already.
    if os.geteuid() != 0 and userns is None:
        raise ConfigError("linux.namespaces", "rootless container requires a user namespace "
                          "(pyrun spec --rootless writes one)")
    # The rule (README "runc's semantics unless asked"): a config pyrun did
    # not write runs as runc runs it, rootfs used directly and the entrypoint
    # as PID 1. pyrun's overlay and init only where the config's annotations
    # (``pyrun spec`` writes them) or the command line ask for them.
    mode = opts.rootfs_mode or spec.annotations.get(ANNOTATION_ROOTFS) or rootfs.DIRECT
    if mode not in (rootfs.OVERLAY, rootfs.DIRECT):
        raise ConfigError(f"annotations[{ANNOTATION_ROOTFS!r}]", f"expected overlay or direct, got {mode!r}")
    use_init = opts.init if opts.init is not None else _bool_annotation(spec, ANNOTATION_INIT, False)
    rootfs.check_root(spec.root.path, spec.bundle)
    _check_mount_sources(spec)
    check_lsm(spec.process)
    _check_host_fields(spec, privileged)
    plan = Plan(
        spec=spec, state_path=state_path, rootfs_mode=mode, use_init=use_init,
        no_pivot=opts.no_pivot, new_keyring=not opts.no_new_keyring, preserve_fds=opts.preserve_fds,
        user_ns=(userns.path or "new") if userns else None,
        new_ns=[n.type for n in spec.linux.namespaces if n.path is None and n.type != "user"],
        join_ns=[(n.type, n.path) for n in spec.linux.namespaces if n.path and n.type != "user"],
    )
    if spec.linux.seccomp is not None:
        plan.seccomp = compile_seccomp(spec.linux.seccomp)
    plan.in_userns = plan.user_ns is not None or not initial_userns
    plan.use_mknod = privileged and plan.user_ns is None
    plan.clone_sources = privileged and plan.user_ns is not None
    _plan_network(plan, spec, opts, privileged)
    return plan


def _check_mount_sources(spec) -> None:
    """Every bind source opened once on the host side, before anything
    runs: a bad or dangerous one fails ``create`` with its JSON path."""
    from pyrun import mounts

    for i, m in enumerate(spec.mounts):
        if mounts.is_bind(m) and m.source:
            try:
                os.close(mounts.open_source(mounts.source_path(m, spec.bundle), f"mounts[{i}]"))
            except ConfigError as e:
                if "Permission denied" not in e.message:  # the container's root may reach it where we do not
                    raise


def _check_host_fields(spec, privileged: bool) -> None:
    """runtime-spec 1.3 fields whose support depends on the host and on root."""
    if spec.linux.intel_rdt is not None:
        from pyrun import intelrdt

        intelrdt.check(spec.linux.intel_rdt)
    if spec.linux.net_devices:
        from pyrun import netdevices

        netdevices.check(spec, privileged)
    if spec.linux.mount_label and os.path.exists("/sys/fs/selinux/enforce"):
        # as check_lsm: meaningless where SELinux is off (runc ignores it), a lie where it is on
        raise ConfigError("linux.mountLabel", f"{spec.linux.mount_label!r}: this host enforces SELinux, "
                          "and pyrun cannot label mounts yet")
    if not privileged:
        for i in mounts_idmapped(spec):
            raise ConfigError(f"mounts[{i}]", "an idmapped bind mount needs root: the kernel idmaps a "
                              "host filesystem only for CAP_SYS_ADMIN in the initial user namespace "
                              "(mount_setattr(2) MOUNT_ATTR_IDMAP: EPERM); a tmpfs can be idmapped rootless")


def _plan_network(plan, spec, opts: Options, privileged: bool) -> None:
    from pyrun import network

    net = network.plan(spec, opts.network, opts.publish, privileged)
    if net.mode == network.HOST:
        plan.new_ns = [t for t in plan.new_ns if t != "network"]
    elif net.mode != network.PATH and "network" not in plan.new_ns:
        plan.new_ns.append("network")
    plan.net = net


def compile_seccomp(profile: dict):
    """Compile ``linux.seccomp`` before anything runs, so a bad profile fails
    ``create`` with its JSON path; the compiled filter survives fork(2)."""
    from pyrun import seccomp

    return seccomp.build(profile)


def send_to_listener(filt, fd: int, rec: Record, pid: int | None = None,
                     status: str = STATUS_CREATING) -> None:
    """Hand the seccomp notify fd to ``linux.seccomp.listenerPath``: one
    message, the container process state as JSON with the fd attached
    (unix(7) SCM_RIGHTS), as config-linux.md's "Seccomp" describes."""
    import json
    import socket

    msg = {
        "ociVersion": OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": pid or rec.pid,  # the process the filter is on: PID 1, or an exec'd one
        "metadata": filt.listener_metadata,
        "state": {"ociVersion": OCI_VERSION, "id": rec.id, "status": status,
                  "pid": rec.pid, "bundle": rec.bundle, "annotations": rec.annotations},
    }
    where = f"linux.seccomp.listenerPath {filt.listener_path}"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(filt.listener_path)
            socket.send_fds(s, [json.dumps(msg).encode()], [fd])
    except OSError as e:
        raise PyrunError(f"{where}: {e.strerror or e}") from None
    finally:
        os.close(fd)


def check_lsm(process) -> None:
    """AppArmor and SELinux labels: pyrun cannot apply them. Where the host has
    neither enabled they mean nothing and are ignored, as runc does; where it
    has one, refusing is honest: silently skipping would claim a confinement
    that is not there."""
    for field, value, enabled in (
        ("process.apparmorProfile", process.apparmor_profile, "/sys/kernel/security/apparmor"),
        ("process.selinuxLabel", process.selinux_label, "/sys/fs/selinux/enforce"),
    ):
        if not value:
            continue
        if os.path.exists(enabled):
            raise ConfigError(field, f"{value!r}: this host enforces it, and pyrun cannot apply it yet")
        log.debug_msg(f"{field} {value!r} ignored: not enabled on this host")


def _root_ids(spec) -> tuple[int, int]:
    """Host uid/gid of the container's root: owner of the overlay's upper dir."""
    from pyrun.idmap import host_id

    if spec.namespace("user") is None or not spec.linux.uid_mappings:
        return os.geteuid(), os.getegid()
    uids = [[m.container_id, m.host_id, m.size] for m in spec.linux.uid_mappings]
    gids = [[m.container_id, m.host_id, m.size] for m in spec.linux.gid_mappings]
    uid, gid = host_id(uids, 0), host_id(gids, 0)
    return (os.geteuid() if uid is None else uid), (os.getegid() if gid is None else gid)


def layers_root(spec, opts: Options) -> str:
    """--layers-root, else annotation org.pyrun.layers, else the default
    (state.default_layers_root: disk-backed, never the state root)."""
    from pyrun.state import default_layers_root

    chosen = opts.layers_root or spec.annotations.get(ANNOTATION_LAYERS)
    if chosen is not None and not chosen:
        raise ConfigError(f"annotations[{ANNOTATION_LAYERS!r}]", "must not be empty")
    return os.path.abspath(chosen) if chosen else default_layers_root()


def _layer_dir(root: str, container_id: str) -> str:
    """<layers root>/<id>.<8 hex>: distinct for one id under two --root."""
    return os.path.join(root, f"{container_id}.{os.urandom(4).hex()}")


def _make_layers(path: str) -> None:
    """The layer dir's parent (0711, as the state root: a container whose
    root is another host uid must reach its upper by path) and the dir.
    A full or unwritable filesystem is one line naming the directory."""
    parent = os.path.dirname(path)
    try:
        os.makedirs(parent, 0o711, exist_ok=True)
        os.mkdir(path, 0o711)
    except OSError as e:
        raise PyrunError(f"layers root {parent}: {e.strerror} (choose another with --layers-root "
                         f"or annotation {ANNOTATION_LAYERS})") from None


def _prepare_state(sd: StateDir, spec, rootfs_mode: str, layers: str) -> None:
    """exec.fifo, the mount point, and the overlay's upper and work in the
    layer dir the record names, owned by the container's root."""
    uid, gid = _root_ids(spec)
    fifo = sd.file("exec.fifo")
    made = [fifo, sd.file("merged")]
    try:
        os.mkfifo(fifo, 0o622)
        os.chmod(fifo, 0o622)  # mkfifo obeys the umask
        os.mkdir(sd.file("merged"), 0o755)
    except OSError as e:
        raise PyrunError(f"state dir {sd.path}: {e.strerror}") from None
    if rootfs_mode == "overlay":
        _make_layers(layers)
        upper, work = os.path.join(layers, "upper"), os.path.join(layers, "work")
        try:
            os.mkdir(upper, 0o755)
            os.mkdir(work, 0o755)
            # The overlay's root directory takes its mode and owner from upper.
            os.chmod(upper, stat.S_IMODE(os.stat(spec.root.path).st_mode))
        except OSError as e:
            raise PyrunError(f"layers root {os.path.dirname(layers)}: {e.strerror}") from None
        made += [upper, work]
    if (uid, gid) != (os.geteuid(), os.getegid()):
        for path in made:
            try:
                os.chown(path, uid, gid)
            except OSError as e:
                raise ConfigError("linux.uidMappings", f"the container's root is host uid {uid} gid {gid}, "
                                  f"and chown(2) of {path} to it failed: {e.strerror}") from None


# ----------------------------------------------------------------- create

class _Interrupted(BaseException):
    pass


def _raise_interrupted(signum, frame):
    raise _Interrupted(signal_name(signum))


def _reclaim_stale(sd: StateDir) -> None:
    """An id whose creator died half way (SIGKILL) is garbage: remove it
    (a directory without a record, or a record whose creator is dead and
    whose container never ran). A live create or container is left alone."""
    try:
        with sd.lock():
            try:
                rec = sd.read()
            except ContainerNotFound:
                sd.remove_orphan()
                return
            if rec.pid == 0 and sd.status(rec) == STATUS_STOPPED:
                log.debug_msg(f"removing stale half-created container {sd.id}")
                _remove_everything(sd, rec)
    except ContainerNotFound:
        pass


def create(root: str, container_id: str, bundle: str, opts: Options | None = None,
           *, foreground: bool = False) -> Record:
    """Build the container; return when its process waits for ``start``.

    The record is written with the directory (StateDir.claim), before
    anything else exists, and names each thing before it is made (the layer
    dir, the cgroup about to be made, the network mode): whatever moment a
    SIGKILL hits, ``delete --force`` finds and removes all of it."""
    from pyrun import spec as specmod

    opts = opts or Options()
    specmod.validate_id(container_id)
    spec = specmod.load(bundle)
    specmod.require_process(spec)
    if spec.process.terminal and not opts.console_socket and not foreground:
        raise ConfigError("process.terminal", "a detached container (create, run -d) with a terminal "
                          "needs --console-socket to hand the pty to")
    sd = StateDir(root, container_id)
    plan = make_plan(spec, sd.path, opts)
    if opts.pidfd_socket:
        from pyrun.pidfd_socket import connect

        opts.pidfd_conn = connect(opts.pidfd_socket)
    _pass_listen_fds(spec, plan)
    if plan.rootfs_mode == "overlay":
        plan.layers = _layer_dir(layers_root(spec, opts), container_id)
    rec = _first_record(sd, spec, plan)
    try:
        sd.claim(rec)
    except ContainerExists:
        _reclaim_stale(sd)
        sd.claim(rec)
    old_handlers = {s: signal.signal(s, _raise_interrupted) for s in (signal.SIGTERM, signal.SIGHUP)}
    pids: list[int] = []
    undo: list = []  # what to undo once the processes are gone, in reverse
    try:
        with sd.lock():
            return _create_locked(sd, rec, spec, plan, opts, pids, foreground, undo)
    except BaseException as e:
        for s in old_handlers:
            signal.signal(s, signal.SIG_IGN)  # a second SIGTERM must not stop the cleanup
        _undo_create(sd, rec, pids, undo)
        if isinstance(e, _Interrupted):
            raise PyrunError(f"create interrupted by {e}; cleaned up") from None
        if isinstance(e, OSError):  # a full disk, say: one line naming the file
            from pyrun.state import os_error

            raise os_error(e) from None
        raise
    finally:
        for s, h in old_handlers.items():
            signal.signal(s, h)


def _first_record(sd: StateDir, spec, plan) -> Record:
    """The record as it is written with the directory: pid 0 (being
    created, by us), and where everything create will make is going to be."""
    from pyrun import network

    me = proc_start_time(os.getpid())
    net_mode = plan.net.mode if plan.net is not None else None
    return Record(
        id=sd.id, bundle=spec.bundle, rootfs=spec.root.path, created=now_rfc3339(), owner=_owner(),
        annotations=dict(spec.annotations), creator_pid=os.getpid(), creator_start=me[0] if me else 0,
        use_init=plan.use_init, new_keyring=plan.new_keyring, rootless=os.geteuid() != 0,
        uid_mappings=[[m.container_id, m.host_id, m.size] for m in spec.linux.uid_mappings],
        gid_mappings=[[m.container_id, m.host_id, m.size] for m in spec.linux.gid_mappings],
        hooks=bool(spec.hooks.poststart or spec.hooks.poststop),
        net={"mode": net_mode} if net_mode in (network.BRIDGE, *network.USER_MODE) else {},
        layers=plan.layers, cgroup_pending=_pending_cgroup(spec, sd.id),
        config_sha256=_config_sha256(spec.bundle),
    )


def _pending_cgroup(spec, container_id: str) -> str:
    """Where cgroups.setup will make the container's cgroup (every v1
    hierarchy's, or the v2 path), so a create killed inside it leaves
    nothing unrecorded. Only ever removed if empty (:func:`_remove_cgroup`)."""
    from pyrun import cgroups, state

    rootless = os.geteuid() != 0 or not state.in_initial_userns()
    try:
        return cgroups.planned_path(spec, container_id, rootless)
    except PyrunError:
        return ""  # a bad cgroupsPath: setup says so, before it makes anything


def _pass_listen_fds(spec, plan) -> None:
    """systemd socket activation (sd_listen_fds(3)): when pyrun itself was
    handed sockets (LISTEN_FDS, LISTEN_PID = our pid), they go on to the
    container's process as fds 3.., before the --preserve-fds ones, and its
    env says so — what runc does."""
    try:
        count = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return
    if count <= 0 or os.environ.get("LISTEN_PID") != str(os.getpid()):
        return
    plan.preserve_fds += count
    pid = 2 if plan.use_init else 1  # behind pyrun's init, the process is PID 2
    spec.process.env = [e for e in spec.process.env if not e.startswith(("LISTEN_FDS=", "LISTEN_PID="))]
    spec.process.env += [f"LISTEN_FDS={count}", f"LISTEN_PID={pid}"]


def _prepare_network(sd: StateDir, spec, plan, undo: list) -> dict:
    """Before the container's processes exist: the address (bridge lease),
    /etc/hosts and /etc/resolv.conf as bind mounts from the state dir."""
    from pyrun import network
    from pyrun.spec import Mount

    net = plan.net
    if net.mode not in (network.BRIDGE, *network.USER_MODE):
        return {}
    network.check_ports_free(net.ports)
    # by container id, and by hostname where it differs
    name = sd.id if spec.hostname in (None, sd.id) else f"{sd.id} {spec.hostname}"
    if net.mode == network.BRIDGE:
        from pyrun import bridge

        ip = bridge.allocate(sd.path, name, sd.file("hosts"), net.ports)
        undo.append(lambda: bridge.detach(sd.path))
        nameservers = None
    else:
        from pyrun import slirp

        # slirp4netns gives the container a fixed address and DNS; pasta the
        # host's own address and the host's resolvers
        ip = slirp.GUEST_IP if net.mode == network.SLIRP4NETNS else "127.0.1.1"
        with open(sd.file("hosts"), "w") as f:
            f.write(network.hosts_text([(ip, name)]))
        nameservers = [slirp.DNS] if net.mode == network.SLIRP4NETNS else None
    with open(sd.file("resolv.conf"), "w") as f:
        f.write(network.resolv_text(nameservers))
    for name in ("hosts", "resolv.conf"):
        spec.mounts.append(Mount(destination=f"/etc/{name}", type="bind", source=sd.file(name),
                                 options=["bind", "ro"]))
    return {"mode": net.mode, "ip": ip, "ports": [str(p) for p in net.ports]}


def _attach_network(sd: StateDir, rec: Record, plan, pid: int, undo: list) -> None:
    """Once the network namespace exists; ``pid`` is a process in it (stage 1)."""
    from pyrun import network

    if plan.net.mode == network.BRIDGE:
        from pyrun import bridge

        with log.step("bridge"):
            rec.net["veth"] = bridge.attach(sd.path, rec.net["ip"], pid, plan.net.ports)
    else:
        from pyrun import slirp

        start = slirp.start if plan.net.mode == network.SLIRP4NETNS else slirp.start_pasta
        with log.step(plan.net.mode):
            child = start(pid, sd.path, plan.net.ports, plan.net.allow_host_loopback)
        undo.append(lambda: slirp.stop(child))
        started = proc_start_time(child)
        rec.net.update(helper_pid=child, helper_start=started[0] if started else 0)
    sd.write(rec)


def _attach_net_devices(sd: StateDir, spec, pid: int, undo: list) -> None:
    """linux.netDevices, through stage 1 as above (pyrun.netdevices)."""
    from pyrun import netdevices

    undo.append(lambda: netdevices.detach(sd.path))
    netdevices.attach(sd.path, spec.linux.net_devices, pid)


def _remove_network(sd: StateDir, rec: Record) -> None:
    """Undo what _prepare_network and _attach_network did; idempotent, so a
    delete after a killed pyrun finishes the job."""
    if not rec.net:
        return
    if rec.net.get("helper_pid") and is_alive(rec.net["helper_pid"], rec.net.get("helper_start", 0)):
        from pyrun.slirp import stop

        stop(rec.net["helper_pid"])
    elif rec.net.get("mode") in ("slirp4netns", "pasta"):
        # create was killed between starting the helper and recording it:
        # find it by the state dir its command line names (its API socket,
        # its pid file). It outlives the namespace: nothing else stops it.
        from pyrun.slirp import stop

        for pid in _helpers_of(sd.path):
            stop(pid)
    if rec.net.get("mode") == "bridge":
        from pyrun import bridge

        bridge.detach(sd.path)


def _helpers_of(state_path: str) -> list[int]:
    """Our processes whose command line names a file of ``state_path``."""
    needle = (state_path + "/").encode()
    me = os.geteuid()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid != me:
                continue
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if needle in f.read():
                    found.append(int(name))
        except OSError:
            continue
    return [pid for pid in found if pid != os.getpid()]


def _setup_cgroup(spec, container_id: str, plan, undo: list, ignore: bool, systemd: bool = False):
    from pyrun import cgroups, state

    rootless = os.geteuid() != 0 or not state.in_initial_userns()
    ignore = ignore or spec.annotations.get(ANNOTATION_CGROUPS) == "ignore-limits"
    with log.step("cgroup"):
        cg = cgroups.setup(spec, container_id, rootless, ignore, systemd)
    if cg is not None:
        undo.append(lambda: (cg.kill(), cg.remove()))
        plan.cgroup_sync = True
        if cgroups.available():
            plan.cgroup_path = cg.path  # what a cgroup2 mount may bind
    return cg


def _prepare_for_init(sd: StateDir, spec, plan, to_init) -> None:
    """What PID 1 needs before it mounts, made while stage 1 works: then
    "prepared", with the init's sealed memfd attached (queued until PID 1
    exists and reads it)."""
    with log.step("state dir (exec.fifo, overlay dirs)"):
        _prepare_state(sd, spec, plan.rootfs_mode, plan.layers)
    fd = None
    if plan.use_init:
        from pyrun import pid1

        with log.step("memfd_create(init)"):
            fd = pid1.sealed_init_memfd()
    try:
        to_init.send_if_open("prepared", fd)  # stage 1 may have failed before it forked PID 1
    finally:
        if fd is not None:
            os.close(fd)


def mounts_idmapped(spec):
    """Indexes of the idmapped bind mounts (mounts[].uidMappings, idmap, ridmap)."""
    for i, m in enumerate(spec.mounts):
        if (m.uid_mappings or "idmap" in m.options or "ridmap" in m.options) and (
                m.type == "bind" or "bind" in m.options or "rbind" in m.options):
            yield i


def _create_locked(sd: StateDir, rec: Record, spec, plan, opts: Options, pids: list[int], foreground: bool,
                   undo: list) -> Record:
    from pyrun import builder, idmap
    from pyrun import syscalls as sc
    from pyrun.channel import Channel

    # What the container's processes inherit is decided before fork(2): the
    # cgroup (plan.cgroup_sync, plan.cgroup_path), the network's extra
    # mounts, and the record a later `delete` cleans up by if we die. The
    # rest (exec.fifo, overlay dirs, config copy, the init's memfd) is made
    # after it, while stage 1 imports and unshares on the other CPU; PID 1
    # waits for "prepared" before it mounts.
    cg = _setup_cgroup(spec, sd.id, plan, undo, opts.ignore_cgroup_limits, opts.systemd_cgroup)
    net = _prepare_network(sd, spec, plan, undo)
    # Killed before this write, the record's cgroup_pending (empty until
    # stage 1 is moved in, after fork) and network mode find what was made.
    if cg is not None or rec.cgroup_pending or net:
        # (systemd: the record names the unit, before add() starts it)
        rec.cgroup, rec.cgroup_pending = (getattr(cg, "record", cg.path) if cg else ""), ""
        rec.net = net or rec.net
        with log.step("write(state.json, cgroup, network)"):
            sd.write(rec)
    if foreground:
        # So that the container's PID 1 becomes our child when stage 1 exits,
        # and ``run`` can wait for it (prctl(2) PR_SET_CHILD_SUBREAPER; the
        # shim's prctl: this process does not otherwise load _prctl and
        # libcap, stage 1 does, while this process prepares the state dir).
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1, shown="prctl(PR_SET_CHILD_SUBREAPER)")
    if plan.clone_sources:
        from pyrun.mounts import clone_sources

        with log.step("open_tree(bind sources)"):
            plan.mount_trees = clone_sources(spec.mounts, spec.bundle)
    idmapped = list(mounts_idmapped(spec))
    if idmapped:
        from pyrun.mount_attrs import idmap_sources

        with log.step("open_tree+mount_setattr(MOUNT_ATTR_IDMAP)"):
            idmap_sources(spec, idmapped, plan.mount_trees)
    to_stage1, stage1_end = Channel.pair()
    to_init, init_end = Channel.pair()
    host_pid = os.getpid()
    try:
        pid = os.fork()
    finally:
        if plan.mount_trees and os.getpid() == host_pid:  # stage 1 inherited them
            for fd in plan.mount_trees.values():
                os.close(fd)
            plan.mount_trees = {}
    if pid == 0:
        os.close(sd.lock_fd)
        to_stage1.close()
        to_init.close()
        builder.stage1(plan, stage1_end, init_end, host_pid)
    pids.append(pid)
    stage1_end.close()
    init_end.close()
    try:
        # While stage 1 imports and unshares on the other CPU: the cgroup
        # first (stage 1 waits for it before it forks PID 1), else at once
        # what PID 1 waits for before it mounts.
        if plan.cgroup_sync:
            move_child(cg, to_stage1, pid)  # what stage 1 forks from now on starts inside
            rec.cgroup = getattr(cg, "record", cg.path)  # systemd: where the unit's cgroup turned out to be
        else:
            _prepare_for_init(sd, spec, plan, to_init)
        msg = None
        if plan.user_ns == "new":
            msg = to_stage1.recv()
            if msg and msg["kind"] == "idmap":
                with log.step("write uid_map/gid_map"):
                    idmap.write_id_maps(pid, rec.uid_mappings, rec.gid_mappings)
                to_stage1.send("idmap-done")
                msg = None
        if plan.cgroup_sync and msg is None:
            to_stage1.send_if_open("cgroup-done")
            _prepare_for_init(sd, spec, plan, to_init)
        if msg is None:
            msg = to_stage1.recv()
        if msg is None or msg["kind"] != "pid":
            fail_from(msg, "container setup failed before PID 1 was started")
        init_pid = msg["pid"]
        pids.insert(0, init_pid)
        started = proc_start_time(init_pid)
        rec.pid, rec.pid_start = init_pid, started[0] if started else 0
        if net:
            # through stage 1, which shares the namespaces and, unlike PID 1,
            # is not made non-dumpable: its /proc/PID/ns is ours to open
            _attach_network(sd, rec, plan, pid, undo)
        if spec.linux.net_devices:
            _attach_net_devices(sd, spec, pid, undo)
        msg = to_init.recv()
        while msg and msg["kind"] in ("seccomp-listener", "console", "hooks"):
            if msg["kind"] == "seccomp-listener":
                send_to_listener(plan.seccomp, msg["fd"], rec)
            elif msg["kind"] == "hooks":
                _create_runtime_hooks(spec, rec)
                to_init.send("hooks-done", pid=init_pid)
            else:
                take_console(msg["fd"], opts)
            msg = to_init.recv()
        if msg is None or msg["kind"] != "ready":
            fail_from(msg, "container setup failed before it was ready")
        with log.step("write(state.json, pid)"):
            sd.write(rec)
        if opts.pid_file:
            write_pid_file(opts.pid_file, init_pid)
        if opts.pidfd_conn is not None:
            from pyrun.pidfd_socket import send_pidfd

            send_pidfd(opts.pidfd_conn, init_pid, "standard")
        with log.step("ack"):  # from here the container outlives us (PR_SET_PDEATHSIG 0)
            to_init.send("ack", pid=init_pid)
            to_init.expect("detached")
        with log.step("waitpid(stage 1)"):
            to_stage1.send("exit")
            os.waitpid(pid, 0)
        pids.remove(pid)
        return rec
    except BaseException:
        # Before the channels close: a stage that finds its channel closed
        # would say so on stderr too, under the host's own one-line error.
        _kill_all(pids)
        raise
    finally:
        to_stage1.close()
        to_init.close()


def _hook_state(rec: Record, status: str) -> bytes:
    from pyrun.hooks import state_json

    return state_json(OCI_VERSION, rec.id, status, rec.pid if status != STATUS_STOPPED else 0,
                      rec.bundle, rec.annotations)


def _create_runtime_hooks(spec, rec: Record) -> None:
    """prestart (deprecated) then createRuntime, in pyrun's namespaces."""
    from pyrun import hooks

    with log.step("hooks.prestart+createRuntime"):
        state = _hook_state(rec, STATUS_CREATING)
        hooks.run_all(spec.hooks.prestart, state, "prestart")
        hooks.run_all(spec.hooks.create_runtime, state, "createRuntime")


def take_console(master: int, opts, wait_taken: float = 0.0) -> None:
    """The pty master from the container: to --console-socket, or kept
    for the foreground relay."""
    if opts.console_socket:
        from pyrun.terminal import send_to_socket

        try:
            send_to_socket(opts.console_socket, master, wait_taken)
        finally:
            os.close(master)
    else:
        opts.console_master = master
        from pyrun.terminal import copy_size

        copy_size(master)  # the caller's size before the process runs (the relay follows SIGWINCH)


def _config_sha256(bundle: str) -> str:
    """sha256 of the bundle's config.json as create read it. Not a copy: a
    50 MB config would be stored twice (record and copy), in /run's RAM."""
    try:
        from _sha256 import sha256  # the C core: hashlib's import costs ~2 ms
    except ImportError:  # pragma: no cover - a Python built without it
        from hashlib import sha256
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            return sha256(f.read()).hexdigest()
    except OSError as e:
        raise ConfigError("", f"cannot read {path}: {e.strerror}") from None


def saved_spec(sd: StateDir, rec: Record):
    """The container's config as it was created: the bundle's config.json,
    re-read and checked against the sha256 create recorded (``exec`` and
    ``update`` must not follow a config edited since)."""
    from pyrun.spec import load

    if not rec.config_sha256:  # a record written before pyrun kept the hash
        return load(rec.bundle, sd.file("config.json"))
    path = os.path.join(rec.bundle, "config.json")
    if _config_sha256(rec.bundle) != rec.config_sha256:
        raise PyrunError(f"{path} changed since container {rec.id!r} was created: "
                         "pyrun uses the config as created, and cannot")
    return load(rec.bundle, path)


def move_child(cg, ch, pid: int) -> None:
    """Write ``pid`` to the cgroup's cgroup.procs while that child works
    on (the write can wait an RCU grace period: builder.Plan.cgroup_sync).
    If the move fails, :func:`child_error_first`."""
    try:
        with log.step("write cgroup.procs"):
            cg.add(pid)
    except PyrunError as e:
        child_error_first(ch, pid, e)


def child_error_first(ch, pid: int, error: PyrunError) -> None:
    """The host failed (``error``) while a child it forked was at work: if
    the child had failed first (a stage 1 or an exec helper that is gone
    makes the move into the cgroup fail with ESRCH), its own message is the
    one that says what went wrong. Kills the child; the caller reaps it."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    msg = ch.recv()  # what it sent before it died, or end-of-file
    if msg and msg.get("kind") == "error":
        fail_from(msg, "")
    raise error


def fail_from(msg: dict | None, default: str) -> None:
    from pyrun.errors import ContainerFailed

    if msg and msg.get("kind") == "error":
        raise ContainerFailed(msg["message"])
    raise ContainerFailed(default)


def write_pid_file(path: str, pid: int) -> None:
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(str(pid))
        os.rename(tmp, path)
    except OSError as e:
        raise PyrunError(f"--pid-file {path}: {e.strerror}") from None


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _undo_create(sd: StateDir, rec: Record, pids: list[int], undo: list) -> None:
    """Kill whatever was started, reap what is ours, undo the rest (cgroup,
    network), remove the state dir."""
    _kill_all(pids)
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    for step in reversed(undo):
        try:
            step()
        except PyrunError as e:
            log.warning(f"cleanup: {e}")
    if rec.cgroup_pending:  # cgroups.setup failed half way: what it made, if empty
        _remove_cgroup(rec)
    _remove_state(sd, rec)


def _remove_everything(sd: StateDir, rec: Record) -> None:
    """What a dead creator or a stopped container left: network, cgroup(s),
    layer dir, state dir (in that order: the record goes last)."""
    from pyrun.state import lexists

    if lexists(sd.file("netns")):  # linux.netDevices: back to the host
        from pyrun import netdevices

        netdevices.detach(sd.path)
    _remove_network(sd, rec)
    _remove_cgroup(rec)
    _remove_state(sd, rec)


def _remove_state(sd: StateDir, rec: Record) -> None:
    """Remove the layer dir, then the state dir. Rootless with id ranges,
    the container may have made files owned by subordinate ids, which we
    cannot remove as ourselves: then remove them as root of a user
    namespace with the same maps."""
    from pyrun.state import remove_tree

    layers = [rec.layers] if rec.layers else []
    if rec.layers and not os.path.basename(rec.layers).startswith(sd.id + "."):
        # _layer_dir's name, always: a record that says otherwise was not
        # written by create, and what it names is not removed.
        log.warning(f"layer dir {rec.layers} in the record of {sd.id!r} is not one pyrun made: left alone")
        layers = []
    for path in layers + [sd.path]:
        try:
            remove_tree(path)
        except PyrunError:
            if os.geteuid() == 0 or len(rec.uid_mappings) + len(rec.gid_mappings) <= 2:
                raise
            from pyrun.idmap import run_as_mapped_root

            run_as_mapped_root(rec.uid_mappings, rec.gid_mappings, remove_tree, path)


# ----------------------------------------------------------------- queries

# load, oci_state and the state command itself live in pyrun.state, so that
# `pyrun state` (which engines call all the time) does not import this module.
state = read_state


def list_states(root: str) -> list[dict]:
    from pyrun.state import list_ids

    out = []
    for cid in list_ids(root):
        try:
            out.append(state(root, cid))
        except ContainerNotFound:
            continue  # deleted while we listed
    return out


# ----------------------------------------------------------------- start

def start(root: str, container_id: str) -> None:
    """Release the container's process: read one byte from exec.fifo."""
    sd = state_dir(root, container_id)
    with sd.lock():
        rec = sd.read()
        status = sd.status(rec)
        if status != STATUS_CREATED:
            raise InvalidState(f"cannot start a container that is {status}")
        fd = os.open(sd.file("exec.fifo"), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            _await_fifo(fd, sd, rec)
        finally:
            os.close(fd)
        os.unlink(sd.file("exec.fifo"))
        if rec.hooks:
            _poststart(sd, rec)


def _poststart(sd: StateDir, rec: Record) -> None:
    """poststart hooks, once the user process runs: wait until PID 1 is no
    longer this interpreter (it has called execve(2))."""
    import time

    from pyrun import hooks

    spec = saved_spec(sd, rec)
    if not spec.hooks.poststart:
        return
    me = os.readlink("/proc/self/exe")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if os.readlink(f"/proc/{rec.pid}/exe") != me:
                break
        except OSError:
            break
        time.sleep(0.001)
    hooks.run_all_warn(spec.hooks.poststart, _hook_state(rec, STATUS_RUNNING), "poststart")


def _await_fifo(fd: int, sd: StateDir, rec: Record) -> None:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while True:
        if poller.poll(100):
            data = os.read(fd, 4096)
            if data.startswith(b"!"):  # a startContainer hook failed; the process exited
                raise PyrunError(data[1:].decode(errors="replace"))
            if data:
                return
            raise PyrunError("container process exited before start")
        if not is_alive(rec.pid, rec.pid_start):
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
    """runc accepts 9, KILL and SIGKILL (any case)."""
    if value.isdigit():
        num = int(value)
        if 0 < num < signal.NSIG:
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
    sd, rec = load(root, container_id)
    status = sd.status(rec)
    if status not in (STATUS_CREATED, STATUS_RUNNING, STATUS_PAUSED):
        raise InvalidState(f"container {container_id!r} is not running ({status})")
    fd = pidfd(rec)
    if fd is None:
        raise InvalidState(f"container {container_id!r} is not running (stopped)")
    try:
        if all_processes and rec.cgroup:
            _signal_cgroup(rec.cgroup, sig)
        elif all_processes:
            for pid in _namespace_pids(rec):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        try:
            signal.pidfd_send_signal(fd, sig)
        except ProcessLookupError:
            if not all_processes:  # with --all it may be gone already, by our hand
                raise InvalidState(f"container {container_id!r} is not running (stopped)") from None
    finally:
        os.close(fd)


def _signal_cgroup(path: str, sig: int) -> None:
    """Every process of the cgroup: cgroup.kill(2) for SIGKILL (atomic, no
    fork race); otherwise frozen, signalled one by one, thawed (as runc)."""
    from pyrun.cgroups import open_cgroup

    cg = open_cgroup(path)
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
        rec = sd.read()
        status = sd.status(rec)
        want = STATUS_RUNNING if on else STATUS_PAUSED
        if status != want:
            raise InvalidState(f"container {container_id!r} is {status}, not {want}")
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


def _wait_exit(fd: int, timeout: float) -> bool:
    """A pidfd polls readable once the process has exited."""
    return bool(select.select([fd], [], [], timeout)[0])


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
    from pyrun.state import CorruptState

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
                    if not _wait_exit(fd, 10.0):
                        raise PyrunError(f"container {container_id!r}: pid {rec.pid} did not die after SIGKILL")
                finally:
                    os.close(fd)
        poststop = []
        if rec.hooks:
            try:
                poststop = saved_spec(sd, rec).hooks.poststop
            except PyrunError as e:
                log.warning(f"poststop hooks not run: {e}")
        _remove_everything(sd, rec)
    if poststop:
        from pyrun import hooks

        hooks.run_all_warn(poststop, _hook_state(rec, STATUS_STOPPED), "poststop")


def _remove_cgroup(rec: Record) -> None:
    """What is left in the container's cgroup (exec'd processes of a
    container without a pid namespace) is killed; then rmdir(2). A cgroup
    only pending (create died before it said it had made it) is removed if
    it exists and is empty: it may be someone else's."""
    from pyrun.cgroups import open_cgroup

    if rec.cgroup_pending:
        pending = open_cgroup(rec.cgroup_pending)
        if pending.exists() and not pending.pids():
            pending.remove()
    if not rec.cgroup:
        return

    cg = open_cgroup(rec.cgroup)
    if cg.pids():
        if not cg.kill():
            for pid in cg.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    cg.remove()


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
        code = wait_forwarding(rec.pid, then=lambda: start(root, container_id), master=opts.console_master)
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
                from pyrun.terminal import relay

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
