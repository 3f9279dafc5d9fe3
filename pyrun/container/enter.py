"""``pyrun exec``: start one more process inside a running container.

The new process must end up exactly where the container's own process is:
in every one of its namespaces, under its root directory, with the
identity, capabilities, no_new_privs and seccomp filter its ``process``
object asks for. The order, top-down:

1. host side: pidfd_open(2) the container's PID 1 (the pidfd pins it: no
   pid reuse race), open its root directory (``/proc/PID/root``);
2. fork a helper (on cgroup v2, clone3(2) CLONE_INTO_CGROUP: it starts in
   the container's cgroup; on v1 it writes "0" to each hierarchy's
   ``tasks``, first thing: it moves itself; else the host moves it there
   meanwhile); it makes itself non-dumpable (prctl(2) PR_SET_DUMPABLE, so nothing in the
   container can ptrace it or open its ``/proc/PID/exe``, the host's
   python: CVE-2019-5736), then one
   setns(2) on the pidfd with the flags of every namespace PID 1 is in
   that differs from ours (compared through ``/proc/PID/ns/*``, not read
   from config.json: ``--network`` adds a namespace the config does not
   list) — the kernel joins the user namespace first;
3. the helper forks again: only a child enters the pid (and time)
   namespace; it reports that child's pid, lets the child go on (a pipe:
   the child must not send on the shared channel before) and exits;
4. the child: fchdir(2) + chroot(2) to the container's root (right even
   for a container built with ``--no-pivot``), setsid(2) (never the
   caller's controlling terminal), a new session keyring, rlimits,
   capabilities and user as in ``create``, closes every fd it must not
   pass on, no_new_privs, then execveat(2) of the sealed pyrun-init
   (made by the host side, pyrun.stages.pid1), which loads the seccomp filter
   and execve(2)s the process: its exe is never the host's python.

The host side waits on the channel: an error message, or end-of-file when
execve(2) closed the child's end (close-on-exec) — success. In the
foreground pyrun is the child's subreaper (prctl(2)
PR_SET_CHILD_SUBREAPER), forwards signals and exits with its status.
"""

from __future__ import annotations

import _signal as signal  # signal.py's C core: signal.py builds IntEnums at import (enum)
import os

from pyrun.stages.channel import Channel, Msg
from pyrun.errors import ConfigError, InvalidState, PyrunError, errno_text
from pyrun.log import log
from pyrun.record import record, replace


# How long exec waits at most for the --console-socket receiver to take the
# master and set its size before a process without a consoleSize runs
# (terminal._wait_taken); a receiver that reads the master and keeps the
# connection open without a size (runc's recvtty) costs this much.
CONSOLE_TAKEN_WAIT = 0.25


@record
class ExecOptions:
    """runc exec's flags (those that change ``process`` are applied by
    :func:`process_from_flags`)."""

    detach: bool = False
    pid_file: str | None = None
    preserve_fds: int = 0
    console_socket: str | None = None
    console_master: int | None = None  # the pty master, for the foreground relay
    pidfd_socket: str | None = None    # --pidfd-socket: where a pidfd of the process goes
    cgroup: list[str] | None = None    # --cgroup: sub-cgroups of the container's (pyrun.cgroups.exec_cgroup)
    ignore_paused: bool = False        # --ignore-paused: exec into a paused container (starts frozen)
    pidfd_conn: object = None          # --pidfd-socket's connection, made before the fork
    console_conn: object = None        # --console-socket's connection, likewise


def parse_user(value: str):
    """runc's ``--user uid[:gid]``: numbers only."""
    from pyrun.errors import UsageError

    uid, _, gid = value.partition(":")
    try:
        return int(uid), (int(gid) if gid else None)
    except ValueError:
        raise UsageError(f"--user {value!r}: expected uid[:gid] as numbers") from None


def process_from_flags(base, args: list[str], env: list[str], cwd: str | None, user: str | None,
                       additional_gids: list[int], caps: list[str], tty: bool, no_new_privs: bool):
    """The container's ``process`` with runc exec's overrides: new args,
    env appended, cwd, user, additional gids, capabilities added, tty."""
    from pyrun.config.spec import Capabilities, User
    from pyrun.config.spec_names import CAPABILITIES

    proc = replace(base, args=list(args), env=base.env + list(env), terminal=tty)
    if not args:
        raise ConfigError("process.args", "exec needs a command (or --process)")
    if cwd:
        proc.cwd = cwd
    if user:
        uid, gid = parse_user(user)
        proc.user = User(uid=uid, gid=proc.user.gid if gid is None else gid,
                         umask=proc.user.umask, additional_gids=list(proc.user.additional_gids))
    if additional_gids:
        proc.user = replace(proc.user, additional_gids=list(additional_gids))
    if caps:
        c = proc.capabilities or Capabilities()
        c = replace(c, bounding=list(c.bounding), effective=list(c.effective),
                    permitted=list(c.permitted), ambient=list(c.ambient))
        for name in caps:
            name = name.upper() if name.upper().startswith("CAP_") else "CAP_" + name.upper()
            if name not in CAPABILITIES:  # as in config.json (pyrun.config.spec): warned, dropped
                from pyrun.log import log

                log.warning(f"--cap {name}: unknown capability: ignored")
                continue
            c.bounding.append(name)
            c.effective.append(name)
            c.permitted.append(name)
            if c.inheritable:
                c.ambient.append(name)  # ambient needs inheritable, as in runc
        proc.capabilities = c
    if no_new_privs:
        proc.no_new_privileges = True
    return proc


# ------------------------------------------------------------------ host side

def _read_ns_link(pid: int, name: str, wait: float = 2.0) -> str:
    """readlink(2) of /proc/PID/ns/NAME. While PID 1 is still pyrun's
    non-dumpable interpreter (building, before it executes the sealed
    pyrun-init that waits for ``start``), its mm belongs to the host's
    user namespace: a rootless caller (no CAP_SYS_PTRACE there, ptrace(2)'s
    access mode check) gets EACCES, so an ``exec`` then waits a bounded time."""
    deadline = None
    while True:
        try:
            return os.readlink(f"/proc/{pid}/ns/{name}")
        except PermissionError as e:
            import time

            if deadline is None:
                deadline = time.monotonic() + wait
            if time.monotonic() > deadline:
                raise PyrunError(f"exec: cannot read /proc/{pid}/ns/{name}: {errno_text(e)}") from None
            time.sleep(0.002)
        except OSError as e:
            raise PyrunError(f"exec: cannot read /proc/{pid}/ns/{name}: {errno_text(e)}") from None


def _namespace_flags(pid: int) -> int:
    """The CLONE_NEW* flags of every namespace the container's PID 1 is in
    that is not ours: exactly where it runs, whatever made each one — a
    ``linux.namespaces`` entry, ``--network``/``org.pyrun.network`` adding
    a network namespace the config does not have, a ``path`` — and never
    what config.json says (namespaces(7): /proc/PID/ns/* name the
    namespaces; two links are equal when the namespaces are the same)."""
    from pyrun.kernel.namespaces import FLAGS, PROC_NAMES

    flags = 0
    for ns_type, name in PROC_NAMES.items():
        try:
            ours = os.readlink(f"/proc/self/ns/{name}")
        except FileNotFoundError:
            continue  # a kernel without this namespace type (time: Linux < 5.6)
        theirs = _read_ns_link(pid, name)
        if theirs != ours:
            flags |= FLAGS[ns_type]
    return flags


def exec_from_flags(root: str, container_id: str, command: list[str], process_file: str | None,
                    env: list[str], cwd: str | None, user: str | None, additional_gids: list[int],
                    caps: list[str], tty: bool, detach: bool, pid_file: str | None,
                    console_socket: str | None, preserve_fds: int, no_new_privs: bool,
                    process_label: str | None, apparmor: str | None, pidfd_socket: str | None = None,
                    cgroup: list[str] | None = None, ignore_paused: bool = False) -> int:
    """``runc exec``'s command line, for :mod:`pyrun.commands.cli` and :mod:`pyrun.commands.fastpath`:
    the process from ``--process`` or from the container's own with the
    flags applied, then :func:`exec_process`. Returns the process's status,
    or 255 with "exec failed: ..." logged when it could not be started
    (runc's convention: a caller tells a failed exec from a process that
    exited 1)."""
    from pyrun.container.lifecycle import saved_spec
    from pyrun.config.spec import load_process
    from pyrun.container.state import load

    try:
        if preserve_fds < 0:
            raise PyrunError("--preserve-fds must not be negative")
        if process_file:
            if command:
                raise PyrunError("give either --process or a command, not both")
            proc = load_process(process_file)
        else:
            sd, rec = load(root, container_id)
            base = saved_spec(sd, rec).process
            proc = process_from_flags(base, command, env, cwd, user, additional_gids, caps, tty, no_new_privs)
        if process_label or apparmor:
            proc = replace(proc, selinux_label=process_label or proc.selinux_label,
                           apparmor_profile=apparmor or proc.apparmor_profile)
        opts = ExecOptions(detach=detach, pid_file=pid_file, preserve_fds=preserve_fds,
                           console_socket=os.path.abspath(console_socket) if console_socket else None,
                           pidfd_socket=os.path.abspath(pidfd_socket) if pidfd_socket else None,
                           cgroup=list(cgroup) if cgroup else None, ignore_paused=ignore_paused)
        return exec_process(root, container_id, proc, opts)
    except PyrunError as e:
        log.error(f"exec failed: {e}")
        return 255


def exec_process(root: str, container_id: str, proc, opts: ExecOptions | None = None) -> int:
    """Run ``proc`` (a :class:`pyrun.config.spec.Process`) in the container.
    Returns its exit status (128 + N if killed by signal N), or 0 once it
    has been executed with ``detach``."""
    import _prctl  # python-prctl's C core: prctl.py generates its wrappers at import

    from pyrun.container.lifecycle import pidfd as open_pidfd, saved_spec
    from pyrun.container.planning import Plan, check_lsm, compile_seccomp
    from pyrun.container.state import STATUS_CREATED, STATUS_PAUSED, STATUS_RUNNING, load

    opts = opts or ExecOptions()
    sd, rec = load(root, container_id)
    status = sd.status(rec)
    if status == STATUS_PAUSED and not opts.ignore_paused:
        raise InvalidState("cannot exec in a paused container (use --ignore-paused to override)")
    if status not in (STATUS_CREATED, STATUS_RUNNING, STATUS_PAUSED):
        # paused with --ignore-paused: as runc, the process joins the frozen
        # cgroup and runs once the container is resumed (exec waits till then)
        raise InvalidState(f"cannot exec in a {status} container")
    spec = saved_spec(sd, rec)
    if proc.terminal and opts.detach and not opts.console_socket:
        raise PyrunError("--tty with --detach needs --console-socket to hand the pty to")
    lsm_label = check_lsm(proc)
    cgroup = rec.cgroup
    if opts.cgroup:
        from pyrun.cgroups.exec_cgroup import sub_cgroup

        cgroup = sub_cgroup(rec.cgroup, opts.cgroup)
    plan = Plan(spec=replace(spec, process=proc), state_path=sd.path, rootfs_mode="", use_init=False,
                preserve_fds=opts.preserve_fds, new_keyring=rec.new_keyring, lsm_label=lsm_label)
    if rec.new_keyring:
        from pyrun.security import lsm

        plan.key_label = lsm.keyring_label(proc)
    if spec.linux.seccomp is not None:
        plan.seccomp = compile_seccomp(spec.linux.seccomp)
    if opts.pidfd_socket:
        from pyrun.console.pidfd_socket import connect

        opts.pidfd_conn = connect(opts.pidfd_socket)
    if proc.terminal and opts.console_socket:
        from pyrun.console.terminal import connect_socket

        opts.console_conn = connect_socket(opts.console_socket)
    pidfd = open_pidfd(rec)
    if pidfd is None:
        raise InvalidState("cannot exec in a stopped container")
    try:
        flags = _namespace_flags(rec.pid)
        with open(f"/proc/{rec.pid}/setgroups") as f:
            plan.setgroups_ok = f.read().strip() == "allow"
        from pyrun.security.capabilities import last_cap

        plan.last_cap = last_cap()
        rootfd = os.open(f"/proc/{rec.pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except BaseException:
        os.close(pidfd)
        raise
    if not opts.detach:
        _prctl.prctl(_prctl.PR_SET_CHILD_SUBREAPER, 1)  # the process becomes our child when the helper exits
    from pyrun.stages import pid1

    host, child = Channel.pair()
    tasks: list[tuple[str, int]] = []  # cgroup v1: the helper moves itself in through them
    try:
        plan.sealed_fd = pid1.sealed_init_memfd()  # it makes the last execve(2): pyrun.stages.pid1
        helper, join = _fork_helper(cgroup, tasks)
        if helper == 0:
            from pyrun.container.create import close_sockets

            host.close()
            close_sockets(opts)
            _helper(plan, child, pidfd, flags, rootfd, join is not None, tasks)  # never returns
    finally:
        os.close(pidfd)
        os.close(rootfd)
        if plan.sealed_fd >= 0:
            os.close(plan.sealed_fd)
        child.close()
        if tasks:
            from pyrun.cgroups.v1 import close_tasks

            close_tasks(tasks)
    try:
        if _initial_affinity(proc, helper) and join is None:
            host.send_if_open(Msg.CGROUP_DONE)  # the helper waits for it before "final"
        if join is not None:
            _join_cgroup(host, helper, join)
        return _supervise(host, helper, plan, rec, opts)
    finally:
        host.close()


def _fork_helper(cgroup: str, tasks: list) -> tuple[int, object]:
    """fork(2) the helper so that it starts in, or moves itself into, the
    container's cgroup (or --cgroup's sub-cgroup), as create's stage 1
    (pyrun.container.create.fork_stage1): on cgroup v2 clone3(2) CLONE_INTO_CGROUP
    where the kernel has it and lets us (runc's exec does the same; a
    systemd scope's directory too); on v1 the ``tasks`` files of every
    hierarchy are opened into ``tasks`` for the helper to write "0" to.
    Returns its pid (0 in the helper) and the cgroup the host still has to
    move it into with :func:`_join_cgroup` (None when nothing is left)."""
    if not cgroup:
        return os.fork(), None
    from pyrun.cgroups import open_cgroup

    cg = open_cgroup(cgroup)
    open_tasks = getattr(cg, "open_tasks", None)
    if open_tasks is not None:
        tasks.extend(open_tasks())
        cg = cg.cgroup2_part()  # a hybrid host's cgroup2 directory, or None
    fork_into = getattr(cg, "fork_into", None)
    pid = fork_into() if fork_into is not None else None
    if pid is not None:
        return pid, None
    return os.fork(), cg


def _initial_affinity(proc, helper: int) -> bool:
    """``process.execCPUAffinity.initial``: the helper's CPUs before it
    joins the container's cgroup (runc sets it on its init from the
    parent, for the same reason: joining a cpuset resets the mask).
    True when set: the helper must not apply "final" before."""
    aff = proc.exec_cpu_affinity
    if aff is None or aff.initial is None:
        return False
    from pyrun.security.procattrs import set_affinity

    try:
        set_affinity(helper, aff.initial, "initial")
    except PyrunError:
        os.kill(helper, signal.SIGKILL)
        os.waitpid(helper, 0)
        raise
    return True


def _join_cgroup(ch, helper: int, cg) -> None:
    """Move the helper into the cgroup ``cg`` (cgroup.procs) while it
    imports and setns(2)s; it waits for "cgroup-done" before it forks the
    process, which so starts inside."""
    from pyrun.container.create import move_child

    try:
        move_child(cg, ch, helper)
    except PyrunError:
        os.waitpid(helper, 0)
        raise
    ch.send_if_open(Msg.CGROUP_DONE)  # the helper may have failed meanwhile: _supervise reads its error


def _supervise(ch, helper: int, plan, rec, opts: ExecOptions) -> int:
    from pyrun.container.create import fail_from, send_to_listener, take_console, write_pid_file
    from pyrun.errors import ContainerFailed
    from pyrun.container.lifecycle import wait_forwarding

    pid = 0
    conn = opts.pidfd_conn
    try:
        msg = ch.recv()
        _, status = os.waitpid(helper, 0)
        if msg is None:
            code = os.waitstatus_to_exitcode(status)
            how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
            raise ContainerFailed(f"exec: the helper process died ({how})")
        if msg["kind"] != Msg.PID:
            fail_from(msg, f"exec: sync: expected {Msg.PID!r}, got {msg['kind']!r}")
        pid = msg["pid"]
        while (msg := ch.recv()) is not None:   # end-of-file: execve(2) happened
            if msg["kind"] == Msg.CONSOLE:
                # a consoleSize is set on the pty already: nothing to wait for
                wait = 0.0 if plan.spec.process.console_size else CONSOLE_TAKEN_WAIT
                take_console(msg["fd"], opts, wait_taken=wait)
                ch.send(Msg.CONSOLE_DONE)
            elif msg["kind"] == Msg.SECCOMP_LISTENER:
                send_to_listener(plan.seccomp, msg["fd"], rec, plan.spec.annotations, pid=pid, status="running")
            elif msg["kind"] == Msg.ERROR:
                raise ContainerFailed(msg["message"])
        if conn is not None:
            from pyrun.console.pidfd_socket import send_pidfd

            send_pidfd(conn, pid, "setns")
    except BaseException:
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        raise
    if opts.pid_file:
        write_pid_file(opts.pid_file, pid)
    if opts.detach:
        return 0
    return wait_forwarding(pid, master=opts.console_master)


# ------------------------------------------------------------ container side

def _helper(plan, ch, pidfd: int, flags: int, rootfd: int, joined: bool, tasks: list) -> None:
    """Move ourselves into the container's cgroup (cgroup v1: ``tasks``),
    setns(2) into its namespaces, wait until the host has put us in the
    rest of it (``joined``: cgroup.procs, the systemd driver or clone3
    refused), fork the process. Never returns."""
    import _prctl  # python-prctl's C core: prctl.py generates its wrappers at import

    from pyrun.stages import builder
    from pyrun.kernel import syscalls as sc

    code = 1
    try:
        _prctl.prctl(_prctl.PR_SET_PDEATHSIG, signal.SIGKILL)
        aff = plan.spec.process.exec_cpu_affinity
        initial = aff is not None and aff.initial is not None
        if tasks and not initial:  # single-threaded, before setns(2): as stage 1
            from pyrun.cgroups.v1 import move_self

            move_self(tasks)
        if plan.spec.process.oom_score_adj is not None:
            # process.oomScoreAdj of --process, as runc's exec: before
            # set_dumpable(False), which makes /proc/self root's
            from pyrun.security.process import set_oom_score_adj

            set_oom_score_adj(plan.spec.process.oom_score_adj)
        _prctl.prctl(_prctl.PR_SET_DUMPABLE, 0)
        sc.set_cmdline("pyrun")  # seen by the container's processes: no host path (--root, bundle)
        builder._import_before_pivot_root(plan)  # the host's files are gone after setns
        if plan.key_label:
            from pyrun.security import lsm

            # our procfs, checked: the container's /proc is the container's to mount over
            plan.lsm_proc_fd = lsm.open_proc()
        with log.step("setns(pidfd)"):
            sc.setns(pidfd, flags, shown="the container's namespaces")
        os.close(pidfd)
        if joined or initial:
            # the host moved us meanwhile (_join_cgroup), after "initial"
            ch.expect(Msg.CGROUP_DONE)
        if tasks:  # after "initial", which joining a cpuset resets
            from pyrun.cgroups.v1 import move_self

            move_self(tasks)
        if aff is not None:
            from pyrun.security.procattrs import set_affinity

            # Now that we are in the cgroup (whose cpuset no longer resets
            # it): the process we fork inherits it, through execve(2).
            # Without "final", the container's default: every CPU, which
            # the kernel narrows to the cgroup's cpuset (config.md).
            set_affinity(0, aff.final if aff.final is not None else list(range(os.cpu_count() or 1)), "final")
        # The child shares our channel: it must not speak (its pty master,
        # its seccomp listener) before the host has its pid from us.
        go_r, go_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(go_w)
            if os.read(go_r, 1) != b"g":  # EOF: we failed to report it
                os._exit(1)
            os.close(go_r)
            _child(plan, ch, rootfd)  # never returns
        os.close(go_r)
        ch.send(Msg.PID, pid=pid)
        os.write(go_w, b"g")
        code = 0
    except BaseException as e:  # noqa: BLE001 - reported to the host side
        builder._report(ch, e)
    os._exit(code)


def _child(plan, ch, rootfd: int) -> None:
    from pyrun.stages import builder
    from pyrun.stages.pid1 import Handover

    try:
        # No pdeathsig here: our parent, the helper, exits at once.
        os.fchdir(rootfd)
        os.chroot(".")
        os.close(rootfd)
        # A session of its own, with or without a terminal: else the process
        # keeps the caller's controlling terminal, and ioctl(TIOCSTI) on it
        # types into the caller's shell (runc's init calls setsid(2) too).
        os.setsid()
        if plan.spec.process.terminal:
            builder.open_terminal(plan.spec.process, ch)
            # Wait until the master is at --console-socket (and, without a
            # consoleSize, taken by a receiver that reads it now: conmon
            # sets the window size once it has it; the process would
            # otherwise run, and read a 0x0 size, before).
            ch.expect(Msg.CONSOLE_DONE)
        if plan.new_keyring:
            builder._join_session_keyring(os.path.basename(plan.state_path), plan.key_label, plan.lsm_proc_fd)
        if plan.lsm_proc_fd >= 0:
            os.close(plan.lsm_proc_fd)
            plan.lsm_proc_fd = -1
        # The channel stays open until the process's execve(2) closes it:
        # that is the signal; the sealed pyrun-init reports a failed one there.
        plan.handover = Handover(chan=ch.fileno())
        path = builder._prepare_process(plan, ch)
        builder.exec_last(plan, path, keep={ch.fileno(), plan.sealed_fd}, ch=ch)
    except BaseException as e:  # noqa: BLE001
        builder._report(ch, e)
    os._exit(127)
