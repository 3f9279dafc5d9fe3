"""The container's process: rlimits, user, cwd, environment, file descriptors.

The order follows runc's init: rlimits while still privileged (raising a
hard limit needs CAP_SYS_RESOURCE), then setgroups → setresgid → setresuid
(the gid first: once the uid is not 0 we could no longer change it), then
the lookup of ``args[0]`` on the container's PATH *before* telling the host
we are ready, so a missing program fails ``create`` and not ``start``.
"""

from __future__ import annotations

import os

from pyrun.errors import ConfigError, PyrunError

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
            raise PyrunError(f"setrlimit({rl.type}, soft={rl.soft}, hard={rl.hard}): {os.strerror(-rc)} "
                             f"(process.rlimits[{i}])")


def set_oom_score_adj(value: int) -> None:
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))
    except OSError as e:
        raise PyrunError(f"write /proc/self/oom_score_adj {value}: {e.strerror} "
                         "(process.oomScoreAdj; lowering it needs CAP_SYS_RESOURCE)") from None


def setgroups_allowed() -> bool:
    try:
        with open("/proc/self/setgroups") as f:
            return f.read().strip() == "allow"
    except OSError:
        return True


def switch_user(user, setgroups_ok: bool) -> None:
    """setgroups(2), setresgid(2), setresuid(2) to ``process.user``.
    ``setgroups_ok``: /proc/self/setgroups said "allow" (read before pivot_root)."""
    if setgroups_ok:
        try:
            os.setgroups(user.additional_gids)
        except OSError as e:
            raise PyrunError(f"setgroups({user.additional_gids}): {e.strerror} "
                             "(process.user.additionalGids: is every gid mapped?)") from None
    elif user.additional_gids:
        raise ConfigError("process.user.additionalGids",
                          "cannot be set with a single-id gid mapping (setgroups is denied); "
                          "map a range with newgidmap (/etc/subgid)")
    try:
        os.setresgid(user.gid, user.gid, user.gid)
    except OSError as e:
        raise ConfigError("process.user.gid",
                          f"setresgid({user.gid}): {e.strerror} (is gid {user.gid} mapped?)") from None
    try:
        os.setresuid(user.uid, user.uid, user.uid)
    except OSError as e:
        raise ConfigError("process.user.uid",
                          f"setresuid({user.uid}): {e.strerror} (is uid {user.uid} mapped?)") from None
    if user.umask is not None:
        os.umask(user.umask)


def env_path(env: list[str]) -> str:
    for entry in env:
        if entry.startswith("PATH="):
            return entry[5:]
    return DEFAULT_PATH


def lookup(arg0: str, env: list[str]) -> str:
    """execvp(3)'s search, done by hand so the error is ours and early."""
    if "/" in arg0:
        candidates = [arg0]
    else:
        candidates = [os.path.join(d or ".", arg0) for d in env_path(env).split(":")]
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    if "/" in arg0:
        why = "no such file" if not os.path.exists(arg0) else "not an executable file"
        raise ConfigError("process.args[0]", f"{arg0}: {why} in the container")
    raise ConfigError("process.args[0]", f"{arg0!r}: executable file not found in $PATH "
                      f"({env_path(env)})")


def chdir(cwd: str) -> None:
    try:
        os.chdir(cwd)
    except OSError as e:
        raise ConfigError("process.cwd", f"chdir {cwd}: {e.strerror}") from None


def close_fds(keep: set[int], preserve: int) -> None:
    """Close every fd but 0-2, the ``--preserve-fds`` ones and ``keep``, so no
    descriptor of the runtime reaches the container (runc CVE-2024-21626 was
    a leaked fd of the host's cgroupfs)."""
    last = 2 + preserve
    for fd in range(3, last + 1):
        try:
            os.set_inheritable(fd, True)
        except OSError:
            pass
    # close_range(2) under os.closerange: needs no /proc, which the
    # container may not have mounted.
    start = last + 1
    for fd in sorted(k for k in keep if k >= start):
        os.closerange(start, fd)
        start = fd + 1
    os.closerange(start, 2**31 - 1)
