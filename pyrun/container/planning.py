"""Planning: what the host can do with this config, decided before any syscall.

runc validates the whole config before it acts (libcontainer/configs/validate);
so does pyrun. :func:`make_plan` turns the parsed config and the command
line's :class:`Options` into a :class:`Plan` -- the namespaces to make or
join, the rootfs mode, the compiled seccomp filter, the network -- and
refuses here, naming the JSON path of the field, what this host cannot do:
an LSM label it cannot apply, an idmapped bind mount rootless, a bind source
that is not there. Nothing exists yet, so a refusal leaves nothing to undo.
``pyrun.container.create`` then acts on the plan; ``pyrun.stages.builder`` carries it into
the container's processes.
"""

from __future__ import annotations

import os

from pyrun.errors import ConfigError
from pyrun.log import log
from pyrun.record import field, record

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
    stage1_exiting: int = 0               # set by a foreground create: stage 1, told to exit, for run to reap
    ignore_cgroup_limits: bool = False    # --ignore-cgroup-limits (or the org.pyrun.cgroups annotation)
    systemd_cgroup: bool = False          # --systemd-cgroup: a transient scope unit (cgroups.systemd)
    network: str | None = None            # --network: sets annotation org.pyrun.network
    publish: str | None = None            # -p, comma-joined: sets annotation org.pyrun.ports
    pidfd_socket: str | None = None       # --pidfd-socket: where a pidfd of PID 1 goes
    keep: bool = False                    # run --keep: a stopped container stays for `state`
    pidfd_conn: object = None             # the --pidfd-socket connection, made before anything
    console_conn: object = None           # the --console-socket connection, likewise
    layers_root: str | None = None        # --layers-root: where overlay upper layers go


@record
class Plan:
    """Everything the container's processes need, decided on the host side
    (pyrun.stages.builder carries it through fork(2) into stage 1 and stage 2)."""

    spec: object  # pyrun.config.spec.Spec
    state_path: str
    rootfs_mode: str
    use_init: bool
    no_pivot: bool = False
    new_keyring: bool = True
    preserve_fds: int = 0
    user_ns: str | None = None        # "new", a path, or None
    new_ns: list[str] = field(default_factory=list)   # created with unshare (not user)
    join_ns: list[tuple[str, str]] = field(default_factory=list)  # (type, path), not user
    in_userns: bool = False           # the mounts happen inside a user namespace
    use_mknod: bool = True
    seccomp: object = None            # pyrun.security.seccomp.Filter, compiled on the host side
    seccomp_loaded: bool = False      # set in the container once it is in force
    # How stage 1 gets into the container's cgroup (create.fork_stage1):
    # cgroup v2: cloned in (clone3(2) CLONE_INTO_CGROUP). cgroup v1: it
    # moves itself, first thing, through these open ``tasks`` files
    # (cgroups.v1.move_self); a hybrid host's cgroup2 directory is cloned
    # into as on v2.
    cgroup_tasks: list = field(default_factory=list)
    # Otherwise (the systemd driver; clone3 refused) the host moves stage 1
    # (cgroup.procs) right after fork(2). That move takes the kernel's
    # global cgroup_threadgroup_rwsem for writing, which can wait an RCU
    # grace period, so stage 1 does its imports and unshares meanwhile and
    # waits for "cgroup-done" as late as it can: before
    # unshare(CLONE_NEWCGROUP) (a cgroup namespace is rooted where its
    # maker is), else before it forks PID 1, which so starts inside, with
    # all it will ever fork. False: nothing to wait for.
    cgroup_sync: bool = False
    cgroup_view: object = None        # what a `cgroup` mount shows (pyrun.filesystem.cgroup_mount.View)
    host_pid: int = 0                 # PID 1's pid on the host side, for hooks' state
    net: object = None                # pyrun.net.network.NetPlan
    layers: str = ""                  # the overlay's upper and work live here (Record.layers)
    # root.path as checked on the host side (pyrun.filesystem.hostpath): its real path
    # and inode, which stage 2 opens again and must find the same; and the
    # same for the overlay's upper and work (sent with "prepared").
    root_real: str = ""
    root_ident: tuple = ()
    layer_idents: dict = field(default_factory=dict)
    state_fd: int = -1                # the state dir, opened by stage 1 in the container's mount namespace
    # Read from /proc before pivot_root: the container may not mount one.
    setgroups_ok: bool = True
    last_cap: int = 40
    # mounts[i] -> a detached copy of its bind source (open_tree(2)), made
    # on the host side by root for a container with a user namespace.
    mount_trees: dict = field(default_factory=dict)
    clone_sources: bool = False       # make mount_trees (root on the host, a user namespace)
    # /dev is one of the config's bind mounts (the host's): pyrun creates
    # nothing in it (no device nodes, links or /dev/console), as runc.
    dev_is_bind: bool = False
    # The sealed pyrun-init (pid1.sealed_init_memfd) that makes the last
    # execve(2), and the descriptors handed to it (pid1.Handover).
    sealed_fd: int = -1
    handover: object = None
    caps: object = None               # pyrun.security.capabilities.CapSets, for the hand-over
    # AppArmor/SELinux (pyrun.security.lsm): (attr file, text) pyrun-init writes
    lsm_label: tuple | None = None
    # SELinux, where it is on: linux.mountLabel (pyrun.security.lsm.mount_label), and
    # process.selinuxLabel for the session keyring (pyrun.security.lsm.keyring_label)
    mount_label: str | None = None
    key_label: str | None = None
    lsm_proc_fd: int = -1              # exec: the host's procfs, for key_label

    @property
    def chroot_only(self) -> bool:
        """No mount namespace of its own or joined: the host's mount table
        is not the container's to change (builder._chroot_root)."""
        return self.spec.namespace("mount") is None


# ----------------------------------------------------------------- the plan

def make_plan(spec, state_path: str, opts: Options):
    """Check what the host can do with this config, before any syscall."""
    from pyrun.filesystem import rootfs
    from pyrun.container import state

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
    if spec.namespace("mount") is None and mode == rootfs.OVERLAY:
        raise ConfigError("linux.namespaces", "the overlay root needs a mount namespace (or --rootfs-mode direct)")
    use_init = opts.init if opts.init is not None else _bool_annotation(spec, ANNOTATION_INIT, False)
    root_real, root_ident = rootfs.check_root(spec.root.path, spec.bundle)
    _check_mount_sources(spec)
    lsm_label = mount_label = key_label = None
    if spec.process.apparmor_profile or spec.process.selinux_label or spec.linux.mount_label:
        from pyrun.security import lsm  # only for a config that names a label (runc spec names none)

        lsm_label = check_lsm(spec.process)
        mount_label, key_label = lsm.mount_label(spec.linux), lsm.keyring_label(spec.process)
    _check_host_fields(spec, privileged)
    plan = Plan(
        spec=spec, state_path=state_path, rootfs_mode=mode, use_init=use_init,
        no_pivot=opts.no_pivot, new_keyring=not opts.no_new_keyring, preserve_fds=opts.preserve_fds,
        user_ns=(userns.path or "new") if userns else None,
        new_ns=[n.type for n in spec.linux.namespaces if n.path is None and n.type != "user"],
        join_ns=[(n.type, n.path) for n in spec.linux.namespaces if n.path and n.type != "user"],
        root_real=root_real, root_ident=root_ident,
        lsm_label=lsm_label, mount_label=mount_label, key_label=key_label,
    )
    if spec.linux.seccomp is not None:
        plan.seccomp = compile_seccomp(spec.linux.seccomp)
    plan.in_userns = plan.user_ns is not None or not initial_userns
    plan.use_mknod = privileged and plan.user_ns is None
    plan.clone_sources = privileged and plan.user_ns is not None
    _plan_network(plan, spec, opts, privileged)
    return plan


def _bool_annotation(spec, key: str, default: bool) -> bool:
    value = spec.annotations.get(key)
    if value is None:
        return default
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise ConfigError(f"annotations[{key!r}]", f"expected true or false, got {value!r}")


def _check_mount_sources(spec) -> None:
    """Every bind source opened once on the host side, before anything
    runs: a bad or dangerous one fails ``create`` with its JSON path."""
    from pyrun.filesystem import mounts

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
        from pyrun.cgroups import intelrdt

        intelrdt.check(spec.linux.intel_rdt)
    if spec.linux.net_devices:
        from pyrun.net import netdevices

        netdevices.check(spec, privileged)
    if not privileged:
        for i in mounts_idmapped(spec):
            raise ConfigError(f"mounts[{i}]", "an idmapped bind mount needs root: the kernel idmaps a "
                              "host filesystem only for CAP_SYS_ADMIN in the initial user namespace "
                              "(mount_setattr(2) MOUNT_ATTR_IDMAP: EPERM); a tmpfs can be idmapped rootless")


def mounts_idmapped(spec):
    """Indexes of the idmapped bind mounts (mounts[].uidMappings, idmap, ridmap)."""
    for i, m in enumerate(spec.mounts):
        if (m.uid_mappings or "idmap" in m.options or "ridmap" in m.options) and (
                m.type == "bind" or "bind" in m.options or "rbind" in m.options):
            yield i


def check_lsm(process):
    """AppArmor and SELinux (pyrun.security.lsm): a profile that is not loaded, or a
    context the policy does not know, fails here; where the host has
    neither LSM on, the fields are ignored. Returns what pyrun-init writes
    before execve(2), or None."""
    from pyrun.security import lsm

    return lsm.check(process)


def compile_seccomp(profile):
    """Compile ``linux.seccomp``'s records before anything runs, so what this
    host cannot do fails ``create`` with its JSON path; the compiled filter
    survives fork(2)."""
    from pyrun.security import seccomp

    return seccomp.build(profile)


def _plan_network(plan, spec, opts: Options, privileged: bool) -> None:
    from pyrun.net import network

    net = network.plan(spec, opts.network, opts.publish, privileged)
    if net.mode == network.HOST:
        plan.new_ns = [t for t in plan.new_ns if t != "network"]
    elif net.mode != network.PATH and "network" not in plan.new_ns:
        plan.new_ns.append("network")
    plan.net = net


def pass_listen_fds(spec, plan) -> None:
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


def layers_root(spec, opts: Options) -> str:
    """--layers-root, else annotation org.pyrun.layers, else the default
    (state.default_layers_root: disk-backed, never the state root)."""
    from pyrun.container.state import default_layers_root

    chosen = opts.layers_root or spec.annotations.get(ANNOTATION_LAYERS)
    if chosen is not None and not chosen:
        raise ConfigError(f"annotations[{ANNOTATION_LAYERS!r}]", "must not be empty")
    return os.path.abspath(chosen) if chosen else default_layers_root()


def layer_dir(root: str, container_id: str) -> str:
    """<layers root>/<id>.<8 hex>: distinct for one id under two --root."""
    return os.path.join(root, f"{container_id}.{os.urandom(4).hex()}")
