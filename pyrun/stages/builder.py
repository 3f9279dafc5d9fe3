"""Building a container, step by step, inside the processes that become it.

``pyrun create`` (the *host side*, in ``create.py``) forks once. What
happens then, in order — each step named after the system call it makes:

stage 1, the first child (the host meanwhile makes exec.fifo and the
    overlay's dirs, and copies the init into a sealed memfd):
    on cgroup v1, write(tasks, "0"): it moves itself into the container's
    cgroup (on v2 it was cloned in) → import what stage 2 will need
    → unshare(CLONE_NEWUSER) → host writes uid_map/gid_map → setns(path)
    for joined namespaces → unshare(the other new ones) → open(state dir,
    O_PATH) → setresuid(0) → "cgroup-done" → fork: the child is PID 1 of
    the new PID namespace, in the container's cgroup.
stage 2, that child (the container's PID 1 until it execs):
    setsid → "prepared" from the host (with the init's sealed memfd and
    the inodes of the overlay's upper and work) → mount(/, rslave)
    → openat2(root.path, upper, work; RESOLVE_NO_SYMLINKS), each the inode
    the host checked → mount(overlay or bind root, from those descriptors)
    → mount(each mount)
    → mknod or bind(devices) → pivot_root → write(sysctl)
    → mount(readonlyPaths, maskedPaths) → remount(/, ro)
    → sethostname → ioctl(lo up) → setrlimit → open+fchdir(cwd)
    → seccomp(load, without no_new_privs) → prctl(PR_CAPBSET_DROP)
    → setuid(user) → capset + PR_CAP_AMBIENT → look up args[0]
    → "ready" → prctl(no_new_privs) → execveat(the sealed pyrun-init),
    which opens exec.fifo (blocks until ``pyrun start``), loads the seccomp
    filter, runs startContainer hooks and execve(2)s the process, which
    closes exec.fifo: ``pyrun start`` returns then (pyrun.stages.pid1).

Stage 1 stays alive until the host has recorded the container: if the host
side dies half way, PR_SET_PDEATHSIG kills stage 1 and, through it,
stage 2, so nothing is left running.
"""

from __future__ import annotations

import _signal as signal  # signal.py's C core: signal.py builds IntEnums at import (enum)
import os
import sys

from pyrun.kernel import namespaces, syscalls as sc
from pyrun.stages.channel import Channel, Msg
from pyrun.errors import PyrunError, errno_text
from pyrun.log import log

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from pyrun.container.planning import Plan  # made by the host (the container layer), read here


def _report(ch: Channel, exc: BaseException) -> None:
    if isinstance(exc, PyrunError):
        msg = str(exc)
    elif isinstance(exc, OSError):
        msg = f"{exc.filename}: {errno_text(exc)}" if exc.filename else errno_text(exc)
    else:
        msg = f"internal error: {type(exc).__name__}: {exc}"
        if log.debug:
            import traceback

            msg += "\n" + traceback.format_exc()
    try:
        ch.send(Msg.ERROR, message=msg)
    except OSError:
        os.write(2, f"pyrun: {msg}\n".encode())


def stage1(plan: Plan, to_host: Channel, init_ch: Channel, host_pid: int) -> None:
    """The first child: namespaces, then fork PID 1. Never returns."""
    import _prctl  # python-prctl's C core: prctl.py generates its wrappers at import

    code = 1
    try:
        _prctl.prctl(_prctl.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != host_pid:  # the host died before pdeathsig was armed
            os._exit(1)
        if plan.cgroup_tasks:  # cgroup v1: into the container's cgroup, while single-threaded
            from pyrun.cgroups.v1 import move_self

            move_self(plan.cgroup_tasks)
        # Here, not in stage 2: the host is busy with the state dir (and the
        # cgroup) on the other CPU meanwhile, and stage 2 inherits them.
        _import_before_pivot_root(plan)
        _enter_namespaces(plan, to_host)
        if plan.cgroup_sync and "cgroup" not in plan.new_ns:
            to_host.expect(Msg.CGROUP_DONE)
        pid = _fork_pid1(plan)
        if pid == 0:
            to_host.close()
            stage2(plan, init_ch)  # never returns
        init_ch.close()
        to_host.send(Msg.PID, pid=pid)
        # Stay alive (and so keep stage 2's pdeathsig meaningful) until the
        # host has recorded the container and tells us to go.
        to_host.recv()
        code = 0
    except BaseException as e:  # noqa: BLE001 - everything is reported to the host
        _report(to_host, e)
    os._exit(code)


def _fork_pid1(plan: Plan) -> int:
    """fork(2) of PID 1. Stage 1 is in the container's cgroup already, so
    during create the pids controller counts two processes: a
    linux.resources.pids.limit of 1 fails here (runc writes its limits after
    its init is alone) and the error says so."""
    try:
        return os.fork()
    except BlockingIOError as e:
        resources = plan.spec.linux.resources
        limit = resources.pids_limit if resources is not None else None
        hint = f" (linux.resources.pids.limit is {limit}: create needs 2)" if limit is not None else ""
        raise PyrunError(f"fork(PID 1): {errno_text(e)}{hint}") from None


def _enter_namespaces(plan: Plan, to_host: Channel) -> None:
    if plan.user_ns == "new":
        with log.step("unshare(CLONE_NEWUSER)"):
            namespaces.unshare_user()
        # Only the parent namespace can write our maps; ask the host side.
        to_host.send(Msg.IDMAP)
        to_host.expect(Msg.IDMAP_DONE)
    elif plan.user_ns:
        with log.step("setns(user)"):
            namespaces.setns_path("user", plan.user_ns)
    for ns_type, path in plan.join_ns:
        with log.step(f"setns({ns_type})"):
            namespaces.setns_path(ns_type, path)
    if plan.cgroup_sync and "cgroup" in plan.new_ns:
        to_host.expect(Msg.CGROUP_DONE)
    with log.step(f"unshare({','.join(plan.new_ns) or '-'})"):
        namespaces.unshare_rest(plan.new_ns)
    # The state dir, in the container's mount namespace (where PID 1 mounts
    # the root on its "merged"), opened while we are still the caller's uid:
    # the state root is 0700 (every other local user is an attacker, and
    # exec.fifo is theirs to hang or feed if they reach it), so the
    # container's root, another host uid with a user namespace, reaches
    # its directory only through this descriptor.
    plan.state_fd = os.open(plan.state_path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    if plan.user_ns:
        # Become root of the new namespace, so files we create have a mapped
        # owner; fails harmlessly when the config does not map uid 0.
        try:
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        except OSError:
            pass
    if plan.spec.linux.time_offsets:
        _write_time_offsets(plan)


def _write_time_offsets(plan: Plan) -> None:
    """After unshare(CLONE_NEWTIME), before fork(2): the only moment the
    new time namespace's offsets can be written (pyrun.kernel.timens)."""
    from pyrun.kernel import timens

    with log.step("write(timens_offsets)"):
        timens.write_offsets(plan.spec.linux.time_offsets)


def stage2(plan: Plan, ch: Channel) -> None:
    """PID 1 of the container until it execs. Never returns."""
    import _prctl  # python-prctl's C core: prctl.py generates its wrappers at import

    try:
        _prctl.prctl(_prctl.PR_SET_PDEATHSIG, signal.SIGKILL)
        if plan.spec.process.oom_score_adj is not None:
            # Before set_dumpable(False): that makes /proc/self root's.
            from pyrun.security.process import set_oom_score_adj

            set_oom_score_adj(plan.spec.process.oom_score_adj)
        # Non-dumpable: no process of the container may ptrace us or open
        # our /proc/PID/exe (the host's python) while we still run.
        _prctl.prctl(_prctl.PR_SET_DUMPABLE, 0)
        sc.set_cmdline("pyrun")  # the container's processes read /proc/1/cmdline: no host path there
        os.setsid()
        from pyrun.security import capabilities, process

        plan.setgroups_ok = process.setgroups_allowed()
        plan.last_cap = capabilities.last_cap()
        state_fd = plan.state_fd  # stage 1 opened it (the state root is 0700)
        if plan.new_keyring:
            # (the host's /proc still: none of the container's mounts exists yet)
            _join_session_keyring(os.path.basename(plan.state_path), plan.key_label)
        # The host made exec.fifo and the overlay's dirs (their inodes come
        # with the message), and the sealed memfd we will execveat(2)
        # (pid1.sealed_init_memfd).
        prepared = ch.expect(Msg.PREPARED)
        plan.sealed_fd = prepared["fd"]
        plan.layer_idents = prepared.get("layers") or {}
        _build_rootfs(plan, ch)  # mounts the root on the state dir's "merged", through state_fd
        plan.handover = _handover(plan, state_fd)
        _check_fifo(plan.handover)
        _configure(plan, ch)
        _remount_dev_readonly(plan)
        path = _prepare_process(plan, ch)
        if plan.seccomp is not None and plan.seccomp.notify and not plan.seccomp_loaded:
            # The listener must have its fd before ``create`` returns, so a
            # filter with SCMP_ACT_NOTIFY is loaded now, not after the
            # exec.fifo wait (runc does the same); no_new_privs goes first.
            _prctl.prctl(_prctl.PR_SET_NO_NEW_PRIVS, 1)
            _load_seccomp(plan, ch)
        ch.send(Msg.READY)
        plan.host_pid = ch.expect(Msg.ACK, plain=True).get("pid", 0)
        _prctl.prctl(_prctl.PR_SET_PDEATHSIG, 0)  # from here the container outlives pyrun
        ch.send(Msg.DETACHED)
        ch.close()
    except BaseException as e:  # noqa: BLE001
        _report(ch, e)
        os._exit(1)
    _finish(plan, path)


def _handover(plan: Plan, state_fd: int):
    """What the sealed pyrun-init gets (pid1.Handover): exec.fifo, opened
    O_PATH now, while the state dir is reachable, which is then closed:
    from here PID 1 holds no host directory (its /proc/1/fd could reach
    the host's tree). It reopens the fifo as /proc/self/fd/N, as runc's
    init does; a container without a /proc keeps the directory instead.
    And a memfd for the startContainer hooks, made before any filter."""
    from pyrun.stages.pid1 import Handover

    h = Handover()
    mounted = not plan.chroot_only  # without a mount namespace no mount is made (_chroot_root)
    if mounted and any(m.destination.rstrip("/") == "/proc" and m.type == "proc" for m in plan.spec.mounts):
        h.fifo = os.open("exec.fifo", os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=state_fd)
        os.close(state_fd)
    else:
        h.state_dir = state_fd
    if plan.spec.hooks.start_container:
        h.hooks = os.memfd_create("pyrun-hooks", os.MFD_CLOEXEC)
    return h


def _check_fifo(h) -> None:
    """After pivot_root: /proc/self/fd/N must be exec.fifo, since that is
    the name the sealed init opens it by."""
    if h.fifo < 0:
        return
    try:
        same = os.path.samestat(os.stat(f"/proc/self/fd/{h.fifo}"), os.fstat(h.fifo))
    except OSError:
        same = False
    if not same:
        raise PyrunError("exec.fifo: the container's /proc/self/fd does not reach it (is /proc a procfs?)")


def _join_session_keyring(container_id: str, label: str | None = None, proc_fd: int = -1) -> None:
    """A new session keyring, so the container cannot read the caller's keys.
    Kernels or seccomp policies that refuse keyctl are tolerated, as in runc.
    ``label``: SELinux's, for the keyring (pyrun.security.lsm.set_keycreate), written
    through ``proc_fd`` (a procfs of the host's; -1: /proc, checked, when
    none of the container's mounts exists yet)."""
    import errno

    from pyrun.errors import SyscallError

    if label:
        from pyrun.security import lsm

        with log.step("write(/proc/self/attr/keycreate)"):
            own = proc_fd < 0
            if own:
                proc_fd = lsm.open_proc()
            try:
                lsm.set_keycreate(proc_fd, label)
            finally:
                if own:
                    os.close(proc_fd)
    with log.step("keyctl(JOIN_SESSION_KEYRING)"):
        try:
            sc.join_session_keyring(f"_ses.{container_id}")
        except SyscallError as e:
            if e.errno not in (errno.ENOSYS, errno.EACCES, errno.EPERM):
                raise
            log.debug_msg(f"no new session keyring: {e}")


def _import_before_pivot_root(plan: Plan) -> None:
    """After pivot_root the host's filesystem, and with it pyrun's own
    modules, is gone: everything used after that point is imported now,
    and only what this container will use (each import costs a start)."""
    import _socket  # noqa: F401

    from pyrun.security import capabilities, process
    from pyrun.filesystem import devices, mounts, rootfs
    from pyrun.stages import pid1  # noqa: F401
    from pyrun.errors import ContainerFailed  # noqa: F401

    spec = plan.spec
    if spec.process.terminal:
        from pyrun.console import terminal  # noqa: F401
    if spec.hooks.start_container:
        from pyrun.stages import hooks  # noqa: F401
    if spec.linux.sysctl:
        from pyrun.kernel import sysctl  # noqa: F401
    if spec.linux.masked_paths or spec.linux.readonly_paths:
        from pyrun.filesystem import masking  # noqa: F401
    if any("tmpcopyup" in m.options for m in spec.mounts):
        from pyrun.filesystem import tmpcopyup  # noqa: F401
    if "network" in plan.new_ns:
        from pyrun.net import network  # noqa: F401
    if plan.mount_label or plan.key_label:
        from pyrun.security import lsm  # noqa: F401
    if (spec.process.scheduler or spec.process.io_priority or spec.process.exec_cpu_affinity
            or spec.linux.personality or spec.linux.memory_policy):
        from pyrun.security import procattrs  # noqa: F401


def hook_state(plan: Plan, status: str) -> bytes:
    from pyrun import OCI_VERSION
    from pyrun.stages import hooks

    spec = plan.spec
    return hooks.state_json(OCI_VERSION, os.path.basename(plan.state_path), status, plan.host_pid,
                            spec.bundle, spec.annotations)


def _create_hooks(plan: Plan, ch: Channel, root: str) -> None:
    """prestart and createRuntime run on the host side (asked for over the
    channel), then createContainer here, in the container's namespaces,
    with the host's filesystem still visible: all before pivot_root.
    createContainer's working directory is the container's ``root``, as
    runc's (its init has chdir'ed there to pivot). Their state's status is
    "created" (runtime-spec's lifecycle, steps 3 to 5; as crun)."""
    h = plan.spec.hooks
    if not (h.prestart or h.create_runtime or h.create_container):
        return
    from pyrun.stages import hooks

    ch.send(Msg.HOOKS)
    plan.host_pid = ch.expect(Msg.HOOKS_DONE)["pid"]
    if h.create_container:
        os.chdir(root)
    with log.step("hooks.createContainer"):
        hooks.run_all(h.create_container, hook_state(plan, "created"), "createContainer",
                      plan.spec.process.env)  # runc runs it in its init, whose env is the process's


def _chroot_root(plan: Plan, ch: Channel) -> None:
    """A config without a mount namespace shares the host's mount table,
    which is not the container's to change: as crun, the root is entered
    with chroot(2) and nothing is mounted; what needs a mount is named in
    a warning, not applied."""
    spec = plan.spec
    linux = spec.linux
    # (maskedPaths and readonlyPaths were refused: spec_rules, as runc)
    unapplied = [name for name, value in (
        ("mounts", spec.mounts), ("linux.devices", linux.devices), ("root.readonly", spec.root.readonly)) if value]
    if unapplied:
        log.warning(f"linux.namespaces: no mount namespace: {', '.join(unapplied)} not applied "
                    "(the host's mounts are not the container's to change)")
    plan.dev_is_bind = True  # its /dev is whatever the root holds: create nothing there
    _create_hooks(plan, ch, plan.root_real)
    with log.step("chroot(root)"):
        from pyrun.filesystem import hostpath

        # the inode the host side checked, opened without following a symlink
        fd = hostpath.open_same(plan.root_real, plan.root_ident, "root.path")
        try:
            os.fchdir(fd)
            os.chroot(".")
        finally:
            os.close(fd)


def _build_rootfs(plan: Plan, ch: Channel) -> None:
    from pyrun.filesystem import devices, mounts, rootfs
    from pyrun.errors import ConfigError

    if plan.chroot_only:
        return _chroot_root(plan, ch)
    spec = plan.spec
    prop = None
    if spec.linux.rootfs_propagation:
        prop = mounts.PROPAGATION[spec.linux.rootfs_propagation]
    # The host's procfs, opened before any mount of the container's exists:
    # sysctls are written through it after pivot_root, where the container's
    # own mounts could otherwise redirect a path under /proc (CVE-2025-52881).
    proc_fd = _open_host_proc() if spec.linux.sysctl else -1
    with log.step("mount(/, rslave)"):
        # As runc: rootfsPropagation on "/" before the root is mounted (rshared
        # keeps a bidirectional bind a peer of the host's), but unbindable
        # only after pivot_root: the root is bound from "/", which it forbids.
        rootfs.make_mounts_private(prop if prop and not prop & sc.MS_UNBINDABLE else None)
    if prop:
        with log.step("mount(parent of root, private)"):
            rootfs.parent_mount_private(plan.state_path)
    # Through stage 1's descriptor of the state dir: the state root is 0700.
    merged = f"/proc/self/fd/{plan.state_fd}/merged"
    with log.step(f"mount(root, {plan.rootfs_mode})"):
        rootfs.mount_root(plan.rootfs_mode, plan.root_real, plan.root_ident, merged, plan.in_userns,
                          spec.bundle, plan.layers, plan.layer_idents)
    if prop:
        # A bind of a shared mount is its peer: private until pivot_root(2),
        # which refuses a shared new root; rootfsPropagation comes after it.
        rootfs.set_root_propagation(merged, sc.MS_PRIVATE)
    rootfd = os.open(merged, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        host_dirs = set()  # mount ids of the config's bind mounts
        for i, m in enumerate(spec.mounts):
            with log.step(f"mount({m.destination})"):
                host_dirs.add(mounts.mount_one(rootfd, i, m, spec.bundle, plan.cgroup_view,
                                               plan.mount_trees.pop(i, None), "cgroup" in plan.new_ns,
                                               plan.mount_label))
        host_dirs.discard(-1)
        if spec.process and spec.process.cwd not in ("", "/"):
            # runc creates a missing cwd, inside the root (a dangling symlink
            # on the way is followed inside it, a magic link refused).
            try:
                os.close(mounts.make_in_root(rootfd, spec.process.cwd, is_dir=True, host_dirs=host_dirs))
            except PyrunError as e:
                raise ConfigError("process.cwd", str(e)) from None
        devfd = mounts.make_in_root(rootfd, "/dev", is_dir=True)
        plan.dev_is_bind = mounts.mount_id(devfd) in host_dirs
        os.close(devfd)
        with log.step("devices"):
            devices.create_devices(rootfd, spec.linux.devices, plan.use_mknod, host_dirs)
            devices.create_symlinks(rootfd, host_dirs)
    finally:
        os.close(rootfd)
        for fd in plan.mount_trees.values():
            os.close(fd)
        plan.mount_trees.clear()
    _create_hooks(plan, ch, merged)
    with log.step("pivot_root" if not plan.no_pivot else "mount(MS_MOVE)+chroot"):
        if plan.no_pivot:
            rootfs.move_root(merged)
        else:
            rootfs.pivot_root(merged)
    if prop:
        # On "/" once it is the container's root, as runc does: before, a
        # shared or unbindable root makes pivot_root or bind mounts fail.
        with log.step("mount(/, rootfsPropagation)"):
            rootfs.set_root_propagation("/", prop)
    linux = spec.linux
    if linux.sysctl:
        from pyrun.kernel import sysctl  # imported before pivot_root, when needed

        with log.step("sysctl"):
            try:
                sysctl.write_sysctls(linux.sysctl, proc_fd)
            finally:
                os.close(proc_fd)
    if linux.readonly_paths or linux.masked_paths:
        from pyrun.filesystem import masking  # imported before pivot_root, when needed
    if linux.readonly_paths:
        with log.step("readonlyPaths"):
            masking.readonly_paths(linux.readonly_paths)
    if linux.masked_paths:
        with log.step("maskedPaths"):
            masking.mask_paths(linux.masked_paths, plan.mount_label)
    if spec.root.readonly:
        with log.step("remount(/, ro)"):
            rootfs.make_root_readonly()


def _remount_dev_readonly(plan: Plan) -> None:
    """A read-only /dev mount was made writable (mounts.mount_one) so that
    its nodes, links, mount points and /dev/console could be made: now it
    becomes read-only, with its other flags kept (runc's finalizeRootfs)."""
    from pyrun.filesystem import mounts

    flags = mounts.dev_readonly(plan.spec.mounts)
    if not flags:
        return
    with log.step("remount(/dev, ro)"):
        fd = sc.open_in_own_root("/dev", sc.O_PATH | os.O_DIRECTORY)
        try:
            sc.remount(sc.fd_path(fd), flags & ~sc.MS_REC, shown="/dev")
        finally:
            os.close(fd)


def _open_host_proc() -> int:
    """O_PATH descriptor of /proc, checked to be procfs (statfs(2) PROC_SUPER_MAGIC)."""
    fd = os.open("/proc", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    if sc.fs_type(fd) != sc.PROC_SUPER_MAGIC:
        os.close(fd)
        raise PyrunError("/proc is not a procfs: cannot write linux.sysctl safely")
    return fd


def _configure(plan: Plan, ch: Channel) -> None:
    import _socket

    spec = plan.spec
    if spec.process.terminal:
        with log.step("openpt(/dev/ptmx)"):
            open_terminal(spec.process, ch, console=not plan.dev_is_bind)
    if spec.hostname is not None:
        with log.step("sethostname"):
            _socket.sethostname(spec.hostname)
    if spec.domainname is not None:
        with log.step("setdomainname"):
            sc.setdomainname(spec.domainname)
    if "network" in plan.new_ns:
        from pyrun.net.network import loopback_up

        with log.step("ioctl(lo, IFF_UP)"):
            loopback_up()


def open_terminal(proc, ch: Channel, console: bool = False) -> None:
    """A pty from the container's devpts; the master goes to the host side,
    the slave becomes our controlling terminal and stdio (and, for the
    container's first process, /dev/console)."""
    from pyrun.console import terminal

    master, slave = terminal.open_pty(proc.console_size)
    if console:
        terminal.bind_console(slave)
    ch.send_fd(Msg.CONSOLE, master)
    os.close(master)
    terminal.become_controlling(slave)


def _load_seccomp(plan: Plan, ch: Channel) -> None:
    """seccomp(2) through libseccomp; with SCMP_ACT_NOTIFY, the listener fd
    goes to the host side at once (it forwards it to ``listenerPath``):
    a notified syscall made by what follows would wait for the listener."""
    with log.step("seccomp(load)"):
        fd = plan.seccomp.load()
    plan.seccomp_loaded = True
    if fd is not None:
        ch.send_fd(Msg.SECCOMP_LISTENER, fd)
        os.close(fd)


# What stage 2 (and exec's process) may still call once the seccomp filter
# is in force: a profile written for runc must be enough. With
# noNewPrivileges false the filter is loaded early, as runc loads it (it
# needs CAP_SYS_ADMIN, which the capset drops); runc then makes these
# (runc 1.1, strace): capget capset prctl setgroups setgid setuid chdir
# getcwd openat getdents64 fstatfs fcntl newfstatat faccessat2 read write
# close getppid getpid execve, and its Go runtime's futex, mmap...
# pyrun's, Python's and then the sealed pyrun-init's (nothing else: the
# cwd is resolved and checked before):
SYSCALLS_AFTER_FILTER = (
    "prctl",                # PR_CAPBSET_DROP, PR_SET_KEEPCAPS, PR_CAP_AMBIENT, PR_SET_PDEATHSIG, no_new_privs
    "setgroups", "setgid", "setuid",  # process.user
    "capget", "capset",     # libcap's cap_set_proc(3); pyrun-init restores the sets
    "fchdir",               # process.cwd, only if root could not enter it (runc: chdir)
    "newfstatat",           # the lookup of args[0] (stat(2), as runc's exec.LookPath)
    "read", "write",        # the channel ("ready", "ack") and exec.fifo
    "openat",               # exec.fifo; /proc/self/fd, to close what is not passed on (runc: the same)
    "getdents64", "close", "fcntl",
    "mmap", "munmap", "brk",  # the interpreter's allocator (runc's: Go's runtime)
    "exit_group",           # an error, reported on the channel
    "execveat",             # the sealed pyrun-init (runc: execve of itself, earlier)
    "arch_prctl", "set_tid_address",  # its static libc's start (Go's runtime: the same, earlier)
    "rt_sigaction",         # it restores every disposition Python changed (Go's runtime leaves them)
    "execve",               # the process
)
# With startContainer hooks (which run after it, in runc too) also what
# running a program takes (clone, wait4...).


def _prepare_process(plan: Plan, ch: Channel) -> str:
    from pyrun.security import capabilities, process

    proc = plan.spec.process
    process.prepare_fds(plan.preserve_fds)  # before any seccomp filter can refuse close_range(2)
    for fd in plan.handover.fds():  # for the sealed pyrun-init, which closes them on its execve(2)
        os.set_inheritable(fd, True)
    homes = [e for e in proc.env if e.startswith("HOME=")]
    if not homes or homes[-1] == "HOME=":
        # As root, in the container's root (after pivot_root or chroot), before
        # any seccomp filter: runc's setupUser, for create and exec alike (an
        # empty HOME counts as none, as os.Getenv("HOME") == "" does there).
        proc.env = [e for e in proc.env if not e.startswith("HOME=")] + [
            "HOME=" + process.home_of(proc.user.uid)]
    with log.step("setrlimit"):
        process.set_rlimits(proc.rlimits)
    if proc.user.umask is not None:
        os.umask(proc.user.umask)
    if proc.terminal:
        process.own_terminal(proc.user.uid)
    _set_process_attributes(plan)  # while we hold CAP_SYS_NICE, before any filter
    # process.cwd: resolved and checked now, entered by descriptor; as root
    # first (the user may lack search rights above it), as runc does.
    cwd_fd = process.open_cwd(proc.cwd)
    in_cwd = process.enter_cwd(cwd_fd, proc.cwd, last_try=False)
    if in_cwd:
        process.check_cwd(proc.cwd)
    if plan.seccomp is not None and not proc.no_new_privileges:
        # Without no_new_privs, loading a filter needs CAP_SYS_ADMIN, which
        # is about to go: load it now, as runc does; what follows runs under
        # it and makes only the SYSCALLS_AFTER_FILTER.
        _load_seccomp(plan, ch)
    sets = capabilities.CapSets(proc.capabilities, plan.last_cap)
    with log.step("prctl(PR_CAPBSET_DROP)"):
        capabilities.drop_bounding(sets)
    capabilities.keep_across_setuid()
    with log.step("setuid(user)"):
        process.switch_user(proc.user, plan.setgroups_ok)
    with log.step("capset"):
        capabilities.apply(sets)
    plan.caps = sets
    if not in_cwd:
        process.enter_cwd(cwd_fd, proc.cwd, last_try=True)
        if not plan.seccomp_loaded:  # getcwd(3) is not runc's to make after the filter
            process.check_cwd(proc.cwd)
    os.close(cwd_fd)
    with log.step("lookup(args[0])"):
        return process.lookup(proc.args[0], proc.env)


def _set_process_attributes(plan: Plan) -> None:
    """sched_setattr, ioprio_set, personality, set_mempolicy (pyrun.security.procattrs):
    while we still hold CAP_SYS_NICE; the entrypoint inherits them."""
    spec = plan.spec
    if spec.process.scheduler or spec.process.io_priority or spec.linux.personality or spec.linux.memory_policy:
        from pyrun.security import procattrs  # imported before pivot_root, when needed

        with log.step("sched_setattr+ioprio_set+personality+set_mempolicy"):
            procattrs.apply(spec.process, spec.linux)


def _finish(plan: Plan, path: str) -> None:
    """Hand over to the sealed pyrun-init: it waits for ``pyrun start`` on
    exec.fifo, runs the startContainer hooks (their state now has our host
    pid) and executes the process. Errors here can only go to stderr."""
    try:
        h = plan.handover
        if h.hooks >= 0:
            from pyrun.stages import pid1

            blob = pid1.hooks_blob(plan.spec.hooks.start_container, hook_state(plan, "created"),
                                   plan.spec.process.env)  # runc runs them in its init, with its env
            view = memoryview(blob)
            while view:
                view = view[os.write(h.hooks, view):]
        log.close()
        exec_last(plan, path, keep={plan.sealed_fd, *h.fds()})
    except BaseException as e:  # noqa: BLE001
        os.write(2, f"pyrun: {e}\n".encode())
    os._exit(127)


def exec_last(plan: Plan, path: str, keep: set[int], ch: Channel | None = None) -> None:
    """The last steps in Python, for ``create`` and ``exec`` alike: close
    every fd not passed on, no_new_privs, then execveat(2) of the sealed
    pyrun-init (pyrun.stages.pid1), which loads the seccomp filter (exported as
    BPF, if not loaded earlier) and execve(2)s the process: no process
    whose exe is the host's interpreter ever executes the container's
    program. A filter with SCMP_ACT_NOTIFY is loaded here: its listener
    goes to the host on ``ch`` (exec); create loaded it before "ready"."""
    import _prctl  # python-prctl's C core: prctl.py generates its wrappers at import

    from pyrun.security import capabilities, process
    from pyrun.stages import pid1

    if log.fd is not None:
        # --log stays open until execve(2) closes it (close-on-exec, made
        # sure of here): the steps below still log (the seccomp filter's
        # load with --debug was a write to a closed fd: EBADF)
        os.set_inheritable(log.fd, False)
        keep = keep | {log.fd}
    process.close_fds(keep, plan.preserve_fds, filtered=plan.seccomp_loaded)
    proc = plan.spec.process
    if proc.no_new_privileges:
        _prctl.prctl(_prctl.PR_SET_NO_NEW_PRIVS, 1)
    bpf, flags = -1, 0
    if plan.seccomp is not None and not plan.seccomp_loaded:
        if not plan.seccomp.notify:
            bpf = os.memfd_create("pyrun-seccomp", os.MFD_CLOEXEC)
            os.write(bpf, plan.seccomp.program())  # at most 32 KiB (BPF_MAXINSNS): one write
            flags = plan.seccomp.kernel_flags()
        elif ch is not None:
            _load_seccomp(plan, ch)
        else:
            plan.seccomp.load()
            plan.seccomp_loaded = True
    caps = capabilities.hand_over(plan.caps)
    sys.stdout.flush()
    pid1.exec_process(plan.sealed_fd, path, proc.args, proc.env, init=plan.use_init, handover=plan.handover,
                      caps=caps, bpf=bpf, bpf_flags=flags, filtered=plan.seccomp_loaded, label=plan.lsm_label)
