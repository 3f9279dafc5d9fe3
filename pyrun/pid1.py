"""PID 1 of the container: pyrun's native init, run from a sealed memfd.

Why an init: in a PID namespace, PID 1 must reap orphaned zombies and must
pass on signals (the kernel drops signals PID 1 has no handler for). Most
entrypoints do neither. ``native/init.c`` does both, then exits with the
entrypoint's status.

Why a memfd: a container process can open ``/proc/1/exe``. If that were a
host file, root in the container could overwrite the host's binary
(CVE-2019-5736). The init's bytes are copied into a memfd, sealed against
writes, and executed from there; ``/proc/1/exe`` is then an anonymous,
immutable file.
"""

from __future__ import annotations

import fcntl
import os

from pyrun import syscalls as sc
from pyrun.errors import PyrunError, errno_text

INIT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bin", "pyrun-init")

_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


def sealed_init_memfd() -> int:
    """memfd_create(2) + sendfile(2) + F_ADD_SEALS: an executable nobody can
    modify. sendfile copies inside the kernel, page cache to memfd: the
    bytes never pass through Python."""
    try:
        src = os.open(INIT_PATH, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise PyrunError(f"native init {INIT_PATH}: {errno_text(e)} (reinstall pyrun: pip install .)") from None
    fd = -1
    try:
        size = os.fstat(src).st_size
        fd = os.memfd_create("pyrun-init", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        offset = 0
        while offset < size:
            sent = os.sendfile(fd, src, offset, size - offset)
            if sent == 0:
                raise PyrunError(f"native init {INIT_PATH}: shorter than its size (reinstall pyrun)")
            offset += sent
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
    except BaseException:
        if fd >= 0:
            os.close(fd)  # this runs in the host now, which lives on (library use, `run`)
        raise
    finally:
        os.close(src)
    return fd


def _default_signals() -> None:
    """Python ignores SIGPIPE and SIGXFSZ, and an ignored signal stays
    ignored across execve(2) (signal(7)): the container's process must
    start with every disposition at its default, as under runc."""
    from pyrun._native import lib

    lib.pyrun_default_signals()  # raw rt_sigaction(2): glibc's refuses signals 32 and 33


def exec_process(path: str, args: list[str], env: list[str], init_fd: int | None) -> None:
    """execve(2) the entrypoint, or execveat(2) the init that will run it."""
    _default_signals()
    if init_fd is None:
        environ = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
        try:
            os.execve(path, args, environ)
        except OSError as e:
            raise PyrunError(f"exec {path}: {errno_text(e)}") from None
    sc.execveat(init_fd, ["pyrun-init", path] + args, env, shown="pyrun-init memfd")
