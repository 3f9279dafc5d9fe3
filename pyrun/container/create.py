"""``pyrun create``, the host's half: build the container and return when
its process waits for ``pyrun start``.

pyrun is a library first; with :mod:`pyrun.container.lifecycle` for the rest::

    from pyrun.container import lifecycle
    from pyrun.container.create import create
    create("/run/pyrun", "c1", "bundles/hello")
    lifecycle.start("/run/pyrun", "c1")

The host forks once: stage 1, which forks the container's PID 1 (stage 2;
``pyrun.stages.builder`` lists their steps). What the host does meanwhile, in
order -- each step named after the system call it makes, ``--debug`` prints
them with their timings, and the channel's messages are in quotes
(``pyrun.stages.channel.Msg`` names them, in this order):

    read(config.json) → planning.make_plan: every check, nothing made yet
    → connect(--pidfd-socket), connect(--console-socket)
    → mkdir(state dir) + write(state.json): the record names each thing
      before it is made, so ``delete --force`` finds it whenever we die
    → flock(state dir)
    → mkdir(cgroup) + write(its limits) → the network's address (bridge
      lease) and its /etc/hosts, /etc/resolv.conf
    → write(state.json, cgroup, network)
    → prctl(PR_SET_CHILD_SUBREAPER), for ``run`` in the foreground
    → open_tree(bind sources) → open_tree+mount_setattr(MOUNT_ATTR_IDMAP)
    → socketpair(AF_UNIX, SOCK_SEQPACKET) twice → fork: stage 1; on
      cgroup v2, clone3(CLONE_INTO_CGROUP): stage 1 starts in the
      container's cgroup; on v1, open(tasks) of each hierarchy before:
      stage 1 moves itself in, first thing. Then neither the next step
      nor "cgroup-done" is needed (:func:`fork_stage1`)
    → write cgroup.procs (the systemd driver, or clone3 refused): stage 1
      into the container's cgroup, while it imports and unshares on the
      other CPU
    → "idmap" from stage 1, in a new user namespace → write
      uid_map/gid_map (newuidmap for ranges) → "idmap-done"
    → "cgroup-done" → mkfifo(exec.fifo) + mkdir(merged, overlay upper, work)
      → memfd_create(init) → "prepared", to PID 1 (without a cgroup of
      its own, these come at once after fork)
    → "pid": PID 1's pid, from stage 1
    → bridge (a veth into the container's netns) or slirp4netns/pasta,
      and linux.netDevices, through stage 1
    → "hooks" from PID 1 → prestart + createRuntime → "hooks-done"
    → "console" from PID 1 → sendmsg(--console-socket, the pty master)
    → "seccomp-listener" from PID 1 → sendmsg(listenerPath, the fd)
    → "ready" from PID 1 → write(state.json, pid) → rename(--pid-file)
      → pidfd_open + sendmsg(--pidfd-socket)
    → "ack" → "detached": PID 1 drops its pdeathsig, the container now
      outlives pyrun
    → "exit" → waitpid(stage 1) (``run`` in the foreground: after start).

A failure at any step, or SIGTERM/SIGHUP, kills what was forked and
undoes the rest in reverse (:func:`_undo_create`): no mount, cgroup, state
dir, link or process is left.
"""

from __future__ import annotations

import _signal as signal  # signal.py's C core: signal.py builds IntEnums at import (enum)
import os
import stat

from pyrun import OCI_VERSION
from pyrun.stages.channel import Channel, Msg
from pyrun.errors import ConfigError, ContainerExists, ContainerNotFound, PyrunError, errno_text
from pyrun.log import log
from pyrun.container.planning import (ANNOTATION_CGROUPS, ANNOTATION_LAYERS, Options, layer_dir, layers_root, make_plan,
                            mounts_idmapped, pass_listen_fds)
from pyrun.container.state import (STATUS_CREATED, STATUS_CREATING, STATUS_STOPPED, Record, StateDir, hook_state,
                                   now_rfc3339, proc_start_time, validate_id)


def create(root: str, container_id: str, bundle: str, opts: Options | None = None,
           *, foreground: bool = False) -> Record:
    """Build the container; return when its process waits for ``start``.

    The record is written with the directory (StateDir.claim), before
    anything else exists, and names each thing before it is made (the layer
    dir, the cgroup about to be made, the network mode): whatever moment a
    SIGKILL hits, ``delete --force`` finds and removes all of it."""
    from pyrun.config import spec as specmod

    opts = opts or Options()
    validate_id(container_id)
    spec = specmod.load(bundle)
    specmod.require_process(spec)
    if spec.process.terminal and not opts.console_socket and not foreground:
        raise ConfigError("process.terminal", "a detached container (create, run -d) with a terminal "
                          "needs --console-socket to hand the pty to")
    sd = StateDir(root, container_id)
    plan = make_plan(spec, sd.path, opts)
    if opts.pidfd_socket:
        from pyrun.console.pidfd_socket import connect

        opts.pidfd_conn = connect(opts.pidfd_socket)
    if spec.process.terminal and opts.console_socket:
        from pyrun.console.terminal import connect_socket

        opts.console_conn = connect_socket(opts.console_socket)
    pass_listen_fds(spec, plan)
    if plan.rootfs_mode == "overlay":
        # Its real path, once: PID 1 opens it again without following a symlink.
        plan.layers = layer_dir(os.path.realpath(layers_root(spec, opts)), container_id)
        os.close(_own_layers_root(os.path.dirname(plan.layers)))  # refused before anything is made
    rec = _first_record(sd, spec, plan)
    try:
        sd.claim(rec, spec.annotations)
    except ContainerExists:
        _reclaim_stale(sd)
        sd.claim(rec, spec.annotations)
    old_handlers = {s: signal.signal(s, _raise_interrupted) for s in _INTERRUPTING}
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
            raise PyrunError(f"create interrupted by {_INTERRUPTING[e.args[0]]}; cleaned up") from None
        if isinstance(e, OSError):  # a full disk, say: one line naming the file
            from pyrun.container.state import os_error

            raise os_error(e) from None
        raise
    finally:
        for s, h in old_handlers.items():
            signal.signal(s, h)


# The signals that stop a create half way, and their names for the error.
_INTERRUPTING = {signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}


class _Interrupted(BaseException):
    pass


def _raise_interrupted(signum, frame):
    raise _Interrupted(signum)


def _first_record(sd: StateDir, spec, plan) -> Record:
    """The record as it is written with the directory: pid 0 (being
    created, by us), and where everything create will make is going to be."""
    from pyrun.net import network

    me = proc_start_time(os.getpid())
    net_mode = plan.net.mode if plan.net is not None else None
    return Record(
        id=sd.id, bundle=spec.bundle, rootfs=spec.root.path, created=now_rfc3339(), owner=_owner(),
        creator_pid=os.getpid(), creator_start=me[0] if me else 0,
        use_init=plan.use_init, new_keyring=plan.new_keyring, rootless=os.geteuid() != 0,
        uid_mappings=[[m.container_id, m.host_id, m.size] for m in spec.linux.uid_mappings],
        gid_mappings=[[m.container_id, m.host_id, m.size] for m in spec.linux.gid_mappings],
        hooks=bool(spec.hooks.poststart or spec.hooks.poststop),
        net={"mode": net_mode} if net_mode in (network.BRIDGE, *network.USER_MODE) else {},
        layers=plan.layers, cgroup_pending=_pending_cgroup(spec, sd.id),
        own_pid_ns=(ns := spec.namespace("pid")) is not None and not ns.path,
        config_sha256=spec.sha256,  # of the bytes parsed: no second read to race
    )


def _owner() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def _pending_cgroup(spec, container_id: str) -> str:
    """Where cgroups.setup will make the container's cgroup (every v1
    hierarchy's, or the v2 path), so a create killed inside it leaves
    nothing unrecorded. Only ever removed if empty (teardown.remove_cgroup)."""
    from pyrun import cgroups
    from pyrun.container import state

    rootless = os.geteuid() != 0 or not state.in_initial_userns()
    try:
        return cgroups.planned_path(spec, container_id, rootless)
    except PyrunError:
        return ""  # a bad cgroupsPath: setup says so, before it makes anything


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
                from pyrun.container.teardown import remove_everything

                log.debug_msg(f"removing stale half-created container {sd.id}")
                remove_everything(sd, rec)
    except ContainerNotFound:
        pass


# ----------------------------------------------------------------- the steps, in order

def _create_locked(sd: StateDir, rec: Record, spec, plan, opts: Options, pids: list[int], foreground: bool,
                   undo: list) -> Record:
    """The module docstring's steps, from the cgroup to waitpid(stage 1),
    under the state dir's lock."""
    from pyrun.stages import builder
    from pyrun.stages import pid1  # noqa: F401 - before fork(2): the host's memfd and stage 1's PID 1 share one import
    from pyrun.kernel import syscalls as sc

    # What the container's processes inherit is decided before fork(2): the
    # cgroup (plan.cgroup_sync, plan.cgroup_view), the network's extra
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
        rec.cgroup_shared = bool(getattr(cg, "shared", False))
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
        from pyrun.filesystem.mounts import clone_sources

        with log.step("open_tree(bind sources)"):
            plan.mount_trees = clone_sources(spec.mounts, spec.bundle)
    idmapped = list(mounts_idmapped(spec))
    if idmapped:
        from pyrun.filesystem.mounts import idmap_sources

        with log.step("open_tree+mount_setattr(MOUNT_ATTR_IDMAP)"):
            idmap_sources(spec, idmapped, plan.mount_trees)
    to_stage1, stage1_end = Channel.pair()
    to_init, init_end = Channel.pair()
    host_pid = os.getpid()
    try:
        pid, rest = fork_stage1(cg, plan)
    finally:
        if os.getpid() == host_pid:  # stage 1 inherited them
            for fd in plan.mount_trees.values():
                os.close(fd)
            plan.mount_trees = {}
            if plan.cgroup_tasks:
                from pyrun.cgroups.v1 import close_tasks

                close_tasks(plan.cgroup_tasks)
    if pid == 0:
        os.close(sd.lock_fd)
        to_stage1.close()
        to_init.close()
        close_sockets(opts)
        builder.stage1(plan, stage1_end, init_end, host_pid)
    pids.append(pid)
    stage1_end.close()
    init_end.close()
    try:
        # While stage 1 imports and unshares on the other CPU: the cgroup
        # first (stage 1 waits for it before it forks PID 1), else at once
        # what PID 1 waits for before it mounts.
        if plan.cgroup_sync:
            move_child(rest, to_stage1, pid)  # what stage 1 forks from now on starts inside
            rec.cgroup = getattr(cg, "record", cg.path)  # systemd: where the unit's cgroup turned out to be
        else:
            _prepare_for_init(sd, spec, plan, to_init)
        msg = None
        if plan.user_ns == "new":
            msg = to_stage1.recv()
            if msg and msg["kind"] == Msg.IDMAP:
                from pyrun.kernel import idmap  # only for a new user namespace

                with log.step("write uid_map/gid_map"):
                    idmap.write_id_maps(pid, rec.uid_mappings, rec.gid_mappings)
                to_stage1.send(Msg.IDMAP_DONE)
                msg = None
        if plan.cgroup_sync and msg is None:
            to_stage1.send_if_open(Msg.CGROUP_DONE)
            _prepare_for_init(sd, spec, plan, to_init)
        if msg is None:
            msg = to_stage1.recv()
        if msg is None or msg["kind"] != Msg.PID:
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
        while msg and msg["kind"] in (Msg.SECCOMP_LISTENER, Msg.CONSOLE, Msg.HOOKS):
            if msg["kind"] == Msg.SECCOMP_LISTENER:
                send_to_listener(plan.seccomp, msg["fd"], rec, spec.annotations)
            elif msg["kind"] == Msg.HOOKS:
                _create_runtime_hooks(spec, rec)
                to_init.send(Msg.HOOKS_DONE, pid=init_pid)
            else:
                take_console(msg["fd"], opts)
            msg = to_init.recv()
        if msg is None or msg["kind"] != Msg.READY:
            fail_from(msg, "container setup failed before it was ready")
        with log.step("write(state.json, pid)"):
            sd.write(rec)
        if opts.pid_file:
            write_pid_file(opts.pid_file, init_pid)
        if opts.pidfd_conn is not None:
            from pyrun.console.pidfd_socket import send_pidfd

            send_pidfd(opts.pidfd_conn, init_pid, "standard")
        with log.step("ack"):  # from here the container outlives us (PR_SET_PDEATHSIG 0)
            to_init.send(Msg.ACK, pid=init_pid)
            to_init.expect(Msg.DETACHED)
        to_stage1.send(Msg.EXIT)
        pids.remove(pid)
        if foreground:
            # ``run`` reaps it once it has started the container: the exit
            # of a forked Python (its address space freed) overlaps start
            opts.stage1_exiting = pid
        else:
            with log.step("waitpid(stage 1)"):
                os.waitpid(pid, 0)
        return rec
    except BaseException:
        # Before the channels close: a stage that finds its channel closed
        # would say so on stderr too, under the host's own one-line error.
        _kill_all(pids)
        raise
    finally:
        to_stage1.close()
        to_init.close()


def _setup_cgroup(spec, container_id: str, plan, undo: list, ignore: bool, systemd: bool = False):
    from pyrun import cgroups
    from pyrun.container import state

    rootless = os.geteuid() != 0 or not state.in_initial_userns()
    ignore = ignore or spec.annotations.get(ANNOTATION_CGROUPS) == "ignore-limits"
    with log.step("cgroup"):
        cg = cgroups.setup(spec, container_id, rootless, ignore, systemd)
    if cg is not None:
        # a cgroup that had processes before ours (runc warns and runs there)
        # is someone else's too: what is in it is not ours to kill
        undo.append(lambda: None if getattr(cg, "shared", False) else (cg.kill(), cg.remove()))
        plan.cgroup_sync = True
    if any(m.type in ("cgroup", "cgroup2") for m in spec.mounts):
        from pyrun.filesystem import cgroup_mount

        plan.cgroup_view = cgroup_mount.view(cg)  # the container's own cgroups, never the host's tree
    return cg


def _prepare_network(sd: StateDir, spec, plan, undo: list, ip: str | None = None) -> dict:
    """Before the container's processes exist: the address (bridge lease;
    ``ip``: that one, for restore), /etc/hosts and /etc/resolv.conf as bind
    mounts from the state dir."""
    from pyrun.net import network
    from pyrun.config.spec import Mount

    net = plan.net
    if net.mode not in (network.BRIDGE, *network.USER_MODE):
        return {}
    network.check_ports_free(net.ports)
    # by container id, and by hostname where it differs
    name = sd.id if spec.hostname in (None, sd.id) else f"{sd.id} {spec.hostname}"
    if net.mode == network.BRIDGE:
        from pyrun.net import bridge

        ip = bridge.allocate(sd.path, name, sd.file("hosts"), net.ports, want=ip)
        undo.append(lambda: bridge.detach(sd.path))
        nameservers = None
    else:
        from pyrun.net import slirp

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


def fork_stage1(cg, plan) -> tuple[int, object]:
    """fork(2) stage 1 so that the host need not wait for its cgroup move.
    Returns its pid and the part of ``cg`` the host still has to move it
    into (:func:`move_child`; ``plan.cgroup_sync`` then true), else None.

    * cgroup v2, the cgroupfs driver: clone3(2) CLONE_INTO_CGROUP, it
      starts inside (pyrun.cgroups.v2.fork_into).
    * cgroup v1: stage 1 moves itself into every hierarchy, first thing,
      through ``tasks`` files opened here (``plan.cgroup_tasks``,
      pyrun.cgroups.v1.move_self); a hybrid host's cgroup2 directory is
      cloned into as on v2.
    * Where clone3 is refused: fork(2) and the host writes cgroup.procs,
      while stage 1 works on (a grace period of the host's time, not
      stage 1's). The systemd driver too: its scope is made with stage 1
      in it (StartTransientUnit PIDs=)."""
    if not plan.cgroup_sync:
        return os.fork(), None
    rest = cg
    open_tasks = getattr(cg, "open_tasks", None)
    if open_tasks is not None:
        plan.cgroup_tasks = open_tasks()
        rest = cg.cgroup2_part()
    plan.cgroup_sync = False  # what the child sees
    fork_into = getattr(rest, "fork_into", None)
    pid = fork_into() if fork_into is not None else None
    if pid is not None:
        return pid, None
    plan.cgroup_sync = rest is not None
    return os.fork(), rest


def move_child(cg, ch, pid: int) -> None:
    """Write ``pid`` to the cgroup's cgroup.procs while that child works
    on (the write can wait an RCU grace period: planning.Plan.cgroup_sync).
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
    if msg and msg.get("kind") == Msg.ERROR:
        fail_from(msg, "")
    raise error


def _prepare_for_init(sd: StateDir, spec, plan, to_init) -> None:
    """What PID 1 needs before it mounts, made while stage 1 works: then
    "prepared", with the sealed pyrun-init attached (queued until PID 1
    exists and reads it): with or without ``--init``, it makes the last
    execve(2) (pyrun.stages.pid1)."""
    from pyrun.stages import pid1

    with log.step("state dir (exec.fifo, overlay dirs)"):
        layers = _prepare_state(sd, spec, plan)
    with log.step("memfd_create(init)"):
        fd = pid1.sealed_init_memfd()
    try:
        # stage 1 may have failed before it forked PID 1
        to_init.send_if_open(Msg.PREPARED, fd, layers=layers)
    finally:
        os.close(fd)


def _prepare_state(sd: StateDir, spec, plan) -> dict:
    """exec.fifo, the mount point, and the overlay's upper and work in the
    layer dir the record names, owned by the container's root. Returns
    the inodes of upper and work, which PID 1 checks before it mounts them
    (pyrun.filesystem.hostpath)."""
    uid, gid = _root_ids(spec)
    fifo = sd.file("exec.fifo")
    made = [fifo, sd.file("merged")]
    try:
        # 0622: the container's user (any uid) opens it to write; nobody
        # else reaches it, the state root being 0700 (state.ensure_root).
        os.mkfifo(fifo, 0o622)
        os.chmod(fifo, 0o622)  # mkfifo obeys the umask
        os.mkdir(sd.file("merged"), 0o755)
    except OSError as e:
        raise PyrunError(f"state dir {sd.path}: {errno_text(e)}") from None
    chown = (uid, gid) != (os.geteuid(), os.getegid())
    if chown:
        for path in made:
            try:
                os.chown(path, uid, gid)
            except OSError as e:
                _chown_failed(uid, gid, path, e)
    if plan.rootfs_mode != "overlay":
        return {}
    root_mode = stat.S_IMODE(os.stat(plan.root_real).st_mode)
    return _make_layers(plan.layers, root_mode, (uid, gid) if chown else None)


def _chown_failed(uid: int, gid: int, path: str, e: OSError) -> None:
    raise ConfigError("linux.uidMappings", f"the container's root is host uid {uid} gid {gid}, "
                      f"and chown(2) of {path} to it failed: {errno_text(e)}") from None


def _root_ids(spec) -> tuple[int, int]:
    """Host uid/gid of the container's root: owner of the overlay's upper dir."""
    if spec.namespace("user") is None or not spec.linux.uid_mappings:
        return os.geteuid(), os.getegid()
    from pyrun.kernel.idmap import host_id  # only for a user namespace's maps

    uids = [[m.container_id, m.host_id, m.size] for m in spec.linux.uid_mappings]
    gids = [[m.container_id, m.host_id, m.size] for m in spec.linux.gid_mappings]
    uid, gid = host_id(uids, 0), host_id(gids, 0)
    return (os.geteuid() if uid is None else uid), (os.getegid() if gid is None else gid)


def _own_layers_root(path: str) -> int:
    """The layers root, made if missing, refused if another user's
    (hostpath.own_dir); 0711, see :func:`_make_layers`."""
    from pyrun.filesystem import hostpath

    try:
        return hostpath.own_dir(path, 0o711, "layers root")
    except PyrunError as e:
        raise PyrunError(f"{e} (choose another with --layers-root or annotation "
                         f"{ANNOTATION_LAYERS})") from None


def _make_layers(path: str, root_mode: int, owner: tuple[int, int] | None) -> dict:
    """The layers root, the layer dir in it, and the overlay's upper and
    work in that, each made from the descriptor of its parent.

    The layers root must be ours (hostpath.own_dir: another user's is
    refused, as the state root), 0711: a container whose root is another
    host uid passes through it to its own layer dir, which is 0700 and
    that root's, so no other user reads what the container writes. The
    layer dir is made with mkdirat(2), which fails if the name exists:
    never a directory someone else made. A full or unwritable filesystem
    is one line naming the directory."""
    from pyrun.filesystem import hostpath

    parent, name = os.path.split(path)
    hint = f" (choose another with --layers-root or annotation {ANNOTATION_LAYERS})"
    rootfd = _own_layers_root(parent)
    try:
        os.mkdir(name, 0o700, dir_fd=rootfd)
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=rootfd)
    except OSError as e:
        os.close(rootfd)
        raise PyrunError(f"layers root {parent}: {errno_text(e)}{hint}") from None
    idents = {}
    try:
        for sub in ("upper", "work"):
            os.mkdir(sub, 0o755, dir_fd=fd)
            subfd = os.open(sub, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            try:
                if sub == "upper":  # the overlay's root directory takes its mode and owner from upper
                    os.fchmod(subfd, root_mode)
                if owner is not None:
                    try:
                        os.fchown(subfd, *owner)
                    except OSError as e:
                        _chown_failed(*owner, os.path.join(path, sub), e)
                idents[sub] = list(hostpath.ident(subfd))
            finally:
                os.close(subfd)
        if owner is not None:
            try:
                os.fchown(fd, *owner)
            except OSError as e:
                _chown_failed(*owner, path, e)
    except OSError as e:
        raise PyrunError(f"layers root {parent}: {errno_text(e)}{hint}") from None
    finally:
        os.close(fd)
        os.close(rootfd)
    return idents


def _attach_network(sd: StateDir, rec: Record, plan, pid: int, undo: list) -> None:
    """Once the network namespace exists; ``pid`` is a process in it (stage 1)."""
    from pyrun.net import network

    if plan.net.mode == network.BRIDGE:
        from pyrun.net import bridge

        with log.step("bridge"):
            rec.net["veth"] = bridge.attach(sd.path, rec.net["ip"], pid, plan.net.ports)
    else:
        from pyrun.net import slirp

        start = slirp.start if plan.net.mode == network.SLIRP4NETNS else slirp.start_pasta
        with log.step(plan.net.mode):
            child = start(pid, sd.path, plan.net.ports, plan.net.allow_host_loopback)
        undo.append(lambda: slirp.stop(child))
        started = proc_start_time(child)
        rec.net.update(helper_pid=child, helper_start=started[0] if started else 0)
    sd.write(rec)


def _attach_net_devices(sd: StateDir, spec, pid: int, undo: list) -> None:
    """linux.netDevices, through stage 1 as above (pyrun.net.netdevices)."""
    from pyrun.net import netdevices

    undo.append(lambda: netdevices.detach(sd.path))
    netdevices.attach(sd.path, spec.linux.net_devices, pid)


def _create_runtime_hooks(spec, rec: Record) -> None:
    """prestart (deprecated) then createRuntime, in pyrun's namespaces.
    Their state reads "created": runtime-spec 1.1's lifecycle runs them
    (steps 3 and 4) after the environment is made (step 2, "creating"),
    as crun does; runc 1.1 still sends "creating"."""
    from pyrun.stages import hooks

    with log.step("hooks.prestart+createRuntime"):
        state = hook_state(rec, STATUS_CREATED, spec.annotations)
        hooks.run_all(spec.hooks.prestart, state, "prestart")
        hooks.run_all(spec.hooks.create_runtime, state, "createRuntime")


def close_sockets(opts) -> None:
    """In a forked child: the host's --console-socket and --pidfd-socket
    connections are the host side's to use; the container's processes
    never hold them (close-on-exec alone would leave them in PID 1 until
    its execve)."""
    for name in ("console_conn", "pidfd_conn"):
        conn = getattr(opts, name)
        if conn is not None:
            conn.close()
            setattr(opts, name, None)


def take_console(master: int, opts, wait_taken: float = 0.0) -> None:
    """The pty master from the container: to --console-socket, or kept
    for the foreground relay."""
    if opts.console_conn is not None:
        from pyrun.console.terminal import send_to_socket

        conn, opts.console_conn = opts.console_conn, None
        try:
            send_to_socket(conn, opts.console_socket, master, wait_taken)
        finally:
            os.close(master)
    else:
        opts.console_master = master
        from pyrun.console.terminal import copy_size

        copy_size(master)  # the caller's size before the process runs (the relay follows SIGWINCH)


def send_to_listener(filt, fd: int, rec: Record, annotations: dict, pid: int | None = None,
                     status: str = STATUS_CREATING) -> None:
    """Hand the seccomp notify fd to ``linux.seccomp.listenerPath``: one
    message, the container process state as JSON with the fd attached
    (unix(7) SCM_RIGHTS), as config-linux.md's "Seccomp" describes."""
    import socket

    from pyrun import jsonio

    # runc's specs.ContainerProcessState, as Go marshals it (omitempty fields left out when empty)
    state = {"ociVersion": OCI_VERSION, "id": rec.id, "status": status, "pid": rec.pid, "bundle": rec.bundle}
    if annotations:
        state["annotations"] = annotations
    msg = {"ociVersion": OCI_VERSION, "fds": ["seccompFd"],
           "pid": pid or rec.pid}  # the process the filter is on: PID 1, or an exec'd one
    if filt.listener_metadata:
        msg["metadata"] = filt.listener_metadata
    msg["state"] = state
    where = f"linux.seccomp.listenerPath {filt.listener_path}"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(filt.listener_path)
            socket.send_fds(s, [jsonio.go(msg).encode()], [fd])
    except OSError as e:
        raise PyrunError(f"{where}: {errno_text(e)}") from None
    finally:
        os.close(fd)


def write_pid_file(path: str, pid: int) -> None:
    """--pid-file: never through a symlink, even one planted at its
    temporary name by a container that has the directory as a volume
    (hostpath.write_file_atomically)."""
    from pyrun.filesystem.hostpath import write_file_atomically

    write_file_atomically(path, str(pid).encode(), "--pid-file")


# ----------------------------------------------------------------- when a step fails

def fail_from(msg: dict | None, default: str) -> None:
    from pyrun.errors import ContainerFailed

    if msg and msg.get("kind") == Msg.ERROR:
        raise ContainerFailed(msg["message"])
    raise ContainerFailed(default)


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
    from pyrun.container.teardown import remove_cgroup, remove_state

    if rec.cgroup_pending:  # cgroups.setup failed half way: what it made, if empty
        remove_cgroup(rec)
    remove_state(sd, rec)
