"""The container's process: rlimits, user, cwd, environment, file descriptors.

The order follows runc's init: rlimits while still privileged (raising a
hard limit needs CAP_SYS_RESOURCE), then setgroups → setresgid → setresuid
(the gid first: once the uid is not 0 we could no longer change it), then
the lookup of ``args[0]`` on the container's PATH *before* telling the host
we are ready, so a missing program fails ``create`` and not ``start``.
"""

from __future__ import annotations

import os
import stat

from pyrun.errors import ConfigError, PyrunError, errno_text, errno_text_runc

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def set_rlimits(rlimits) -> None:
    """setrlimit(2) for each ``process.rlimits`` entry. Configs write
    "unlimited" as 2**64-1, which is RLIM_INFINITY as the kernel reads it."""
    from pyrun._native import lib

    for i, rl in enumerate(rlimits):
        which = getattr(lib, rl.type, None) if rl.type.startswith("RLIMIT_") else None
        if which is None:
            raise ConfigError(f"process.rlimits[{i}].type", f"{rl.type} is not supported here")
        rc = lib.pyrun_setrlimit(which, rl.soft, rl.hard)
        if rc < 0:
            raise PyrunError(f"setrlimit({rl.type}, soft={rl.soft}, hard={rl.hard}): {errno_text(-rc)} "
                             f"(process.rlimits[{i}])")


def set_oom_score_adj(value: int) -> None:
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))
    except OSError as e:
        raise PyrunError(f"write /proc/self/oom_score_adj {value}: {errno_text(e)} "
                         "(process.oomScoreAdj; lowering it needs CAP_SYS_RESOURCE)") from None


def setgroups_allowed() -> bool:
    try:
        with open("/proc/self/setgroups") as f:
            return f.read().strip() == "allow"
    except OSError:
        return True


def switch_user(user, setgroups_ok: bool) -> None:
    """setgroups(2), setgid(2), setuid(2) to ``process.user`` (as root,
    setgid and setuid set the real, effective and saved ids, as runc's
    calls do: a seccomp profile written for runc lists these).
    ``setgroups_ok``: /proc/self/setgroups said "allow" (read before pivot_root)."""
    if setgroups_ok:
        try:
            os.setgroups(user.additional_gids)
        except OSError as e:
            raise PyrunError(f"setgroups({user.additional_gids}): {errno_text(e)} "
                             "(process.user.additionalGids: is every gid mapped?)") from None
    elif user.additional_gids:
        raise ConfigError("process.user.additionalGids",
                          "cannot be set with a single-id gid mapping (setgroups is denied); "
                          "map a range with newgidmap (/etc/subgid)")
    try:
        os.setgid(user.gid)
    except OSError as e:
        raise ConfigError("process.user.gid",
                          f"setgid({user.gid}): {errno_text(e)} (is gid {user.gid} mapped?)") from None
    try:
        os.setuid(user.uid)
    except OSError as e:
        raise ConfigError("process.user.uid",
                          f"setuid({user.uid}): {errno_text(e)} (is uid {user.uid} mapped?)") from None


def own_terminal(uid: int) -> None:
    """fchown(2) the pty (our stdin, a slave of the container's devpts) to
    ``process.user.uid``, as runc does: a non-root process can then use its
    own console. The group stays the devpts mount's (gid=5 in runc spec's
    config). Only the pty pyrun made: a stdio the caller passed (a host file,
    a pipe) is never chowned. A refusal (an unmapped owner, EPERM or EINVAL;
    a read-only /dev, EROFS) leaves it as it is, as in runc."""
    import errno

    from pyrun.kernel import syscalls as sc

    if sc.fs_type(0) != sc.DEVPTS_SUPER_MAGIC or os.fstat(0).st_uid == uid:
        return
    try:
        os.fchown(0, uid, -1)
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.EINVAL, errno.EROFS):
            raise PyrunError(f"fchown(pty, {uid}): {errno_text(e)}") from None


PASSWD_MAX = 1 << 20  # bytes of the image's /etc/passwd read at most


def home_of(uid: int) -> str:
    """HOME for ``uid``: its entry in the container's /etc/passwd (passwd(5)),
    "/" when it has none, as runc's user.GetExecUser.

    Called after pivot_root(2) or chroot(2): "/" is the container's root,
    so the path and every symlink in it resolve inside it. The file is the
    image's: only a regular file is read (O_NONBLOCK: a fifo does not block
    open(2); fstat(2) then refuses it), and only its first PASSWD_MAX bytes."""
    from pyrun.kernel import syscalls as sc

    try:  # a magic link (/etc/passwd -> /proc/self/fd/N) would read one of pyrun's own files
        fd = sc.open_in_own_root("/etc/passwd", os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except PyrunError:
        return "/"
    chunks = []
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "/"
        left = PASSWD_MAX
        while left > 0 and (chunk := os.read(fd, left)):
            chunks.append(chunk)
            left -= len(chunk)
    except OSError:
        return "/"
    finally:
        os.close(fd)
    for line in b"".join(chunks).split(b"\n"):
        fields = line.split(b":")
        if len(fields) >= 6 and fields[2].strip().isdigit() and int(fields[2]) == uid:
            return fields[5].decode(errors="surrogateescape")
    return "/"


def env_path(env: list[str]) -> str:
    for entry in env:
        if entry.startswith("PATH="):
            return entry[5:]
    return DEFAULT_PATH


class ExecNotFound(PyrunError):
    """args[0] cannot be run, worded as runc words it (Go's exec.LookPath):
    engines read the words. podman turns "executable file not found" and
    "no such file or directory" into 127, "permission denied" into 126."""

    def __init__(self, arg0: str, why: str):
        super().__init__(f'process.args[0]: exec: "{arg0}": {why}')


def _executable(path: str) -> str | None:
    """None if execve(2) may run ``path``, else why not (an errno's words).

    Only what the file says, as Go's exec.LookPath in runc: a regular file
    with an execute bit. Whether *this* process may execute it (its
    effective ids, CAP_DAC_OVERRIDE, a noexec mount) is execve's decision,
    which reports it; access(2) would answer for the real uid without the
    capabilities (access(2), NOTES) and refuse what execve allows."""
    try:
        st = os.stat(path)
    except OSError as e:
        return f"stat {path}: {errno_text_runc(e)}" if e.errno else str(e)
    if stat.S_ISDIR(st.st_mode) or not st.st_mode & 0o111:
        return "permission denied"
    return None


def lookup(arg0: str, env: list[str]) -> str:
    """execvp(3)'s search, done before ``create`` returns so that a missing
    program fails ``create`` and not ``start`` (runc does the same)."""
    if "/" in arg0:
        why = _executable(arg0)
        if why is None:
            return arg0
        raise ExecNotFound(arg0, why)
    for d in env_path(env).split(":"):
        path = os.path.join(d or ".", arg0)
        if _executable(path) is None:
            return path
    raise ExecNotFound(arg0, "executable file not found in $PATH")


def open_cwd(cwd: str) -> int:
    """An O_PATH descriptor of ``process.cwd``, resolved inside the
    container's root, made before any seccomp filter is loaded (a profile
    written for runc need not list openat2(2)).

    ``cwd`` comes from the image (engines copy WORKDIR into it): a magic
    link such as ``/proc/self/fd/N`` would name a descriptor of pyrun's and
    put the process's working directory on the host (runc CVE-2024-21626).
    openat2(2) with ``RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`` refuses it;
    fchdir(2) later moves to exactly what was resolved here."""
    from pyrun.kernel import syscalls as sc
    from pyrun.errors import SyscallError

    try:
        return sc.open_in_own_root(cwd, sc.O_PATH | os.O_DIRECTORY)
    except SyscallError as e:
        raise ConfigError("process.cwd", str(e)) from None


def enter_cwd(fd: int, cwd: str, last_try: bool) -> bool:
    """fchdir(2) to the descriptor of :func:`open_cwd`. runc's order: once
    before the switch to ``process.user`` (root may enter what the user
    may not), and, only if that was refused (EACCES: a directory the
    user owns that root in a user namespace may not enter), once more
    after it; only the ``last_try`` fails. True once in it."""
    try:
        os.fchdir(fd)
    except PermissionError as e:
        if not last_try:
            return False
        raise ConfigError("process.cwd", f"chdir {cwd}: {errno_text(e)}") from None
    except OSError as e:
        raise ConfigError("process.cwd", f"chdir {cwd}: {errno_text(e)}") from None
    return True


def check_cwd(cwd: str) -> None:
    """The working directory must be inside the root: getcwd(3) says so
    ("(unreachable)" or ENOENT when a directory lies outside it)."""
    try:
        where = os.getcwd()
    except OSError:
        where = "(unreachable)"
    if not where.startswith("/"):
        raise ConfigError("process.cwd", f"{cwd}: the working directory is outside the container's root")


def prepare_fds(preserve: int) -> None:
    """Before any seccomp filter is loaded: the ``--preserve-fds`` ones are
    made inheritable, every other descriptor from 3 up close-on-exec
    (close_range(2) ``CLOSE_RANGE_CLOEXEC``, one call). Whatever a filter
    later refuses, nothing of the runtime's survives execve(2)."""
    from pyrun.kernel import syscalls as sc

    last = 2 + preserve
    for fd in range(3, last + 1):
        try:
            os.set_inheritable(fd, True)
        except OSError:
            pass
    try:
        sc.close_range(last + 1, 0xFFFFFFFF, sc.CLOSE_RANGE_CLOEXEC)
    except PyrunError:  # a kernel before 5.11: mark the open ones
        fds = _open_fds()
        if fds is None:
            import resource

            fds = range(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        for fd in fds:
            if fd > last:
                try:
                    os.set_inheritable(fd, False)
                except OSError:
                    pass


def _open_fds() -> list[int] | None:
    try:
        return [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return None


def close_fds(keep: set[int], preserve: int, filtered: bool = False) -> None:
    """Close every fd but 0-2, the ``--preserve-fds`` ones and ``keep``, so no
    descriptor of the runtime reaches the container (runc CVE-2024-21626 was
    a leaked fd of the host's cgroupfs).

    close_range(2) needs no /proc, which the container may not have mounted.
    Under a seccomp filter (``filtered``) it is not called: a profile
    written for runc need not list it, and Python's os.closerange would
    fall back to 2**31 close(2) calls. The open descriptors are then
    listed in /proc/self/fd and closed one by one, as runc closes them
    (and :func:`prepare_fds` made every one close-on-exec before the filter)."""
    from pyrun.kernel import syscalls as sc

    last = 2 + preserve
    if not filtered:
        ranges = []
        start = last + 1
        for fd in sorted(k for k in keep if k >= start):
            if fd > start:
                ranges.append((start, fd - 1))
            start = fd + 1
        ranges.append((start, 0xFFFFFFFF))
        try:
            for first, end in ranges:
                sc.close_range(first, end)
            return
        except PyrunError:
            pass
    for fd in _open_fds() or ():  # without /proc: close-on-exec already
        if fd > last and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
