"""``linux.maskedPaths`` and ``linux.readonlyPaths`` (config-linux.md).

Done after pivot_root, when the paths are the container's own (its /proc
and /sys). A masked file gets /dev/null bound over it and a masked directory
an empty read-only tmpfs, so reading /proc/kcore or /proc/keys yields
nothing. A read-only path is bound onto itself and remounted read-only, so
/proc/sys and /proc/sysrq-trigger cannot be written even by root inside.
Paths that do not exist are skipped, as runc does.

The /dev/null that masks is the container's, which the image or a bind
mount may have made anything: it is opened without following a link,
checked to be the null device (character 1:3) and bound from that
descriptor onto a descriptor of the target (open_tree(2), move_mount(2)),
never by path (runc CVE-2025-31133: an image's /dev/null symlink turned
"masking" into binding a writable file over /proc). Every path is resolved
with openat2(2) ``RESOLVE_NO_MAGICLINKS``: /proc/self/fd/N would name one
of pyrun's descriptors.
"""

from __future__ import annotations

import errno
import os
import stat

from pyrun.kernel import syscalls as sc
from pyrun.errors import PyrunError, SyscallError
from pyrun.kernel.syscalls import remount


def _open(path: str) -> int | None:
    """O_PATH fd of ``path`` inside the root (symlinks followed inside it,
    magic links refused); None when it does not exist."""
    try:
        return sc.open_in_own_root(path, sc.O_PATH)
    except SyscallError as e:
        if e.errno == errno.ENOENT:
            return None
        raise PyrunError(f"linux.maskedPaths/readonlyPaths {path}: {e}") from None


def null_device() -> int:
    """The container's /dev/null, proven to be the null device."""
    try:
        fd = sc.open_in_own_root("/dev/null", sc.O_PATH | os.O_NOFOLLOW)
    except SyscallError as e:
        raise PyrunError(f"linux.maskedPaths: {e}: nothing safe to mask with") from None
    st = os.fstat(fd)
    if not stat.S_ISCHR(st.st_mode) or (os.major(st.st_rdev), os.minor(st.st_rdev)) != (1, 3):
        os.close(fd)
        raise PyrunError("linux.maskedPaths: /dev/null in the container is not the null device "
                         "(character 1:3): refusing to mask with it")
    return fd


def mask_paths(paths: list[str], label: str | None = None) -> None:
    """A masked directory gets an empty read-only tmpfs (with SELinux's
    ``label``, linux.mountLabel, as runc's maskPath), a file /dev/null."""
    null = -1
    try:
        for path in paths:
            fd = _open(path)
            if fd is None:
                continue
            try:
                if stat.S_ISDIR(os.fstat(fd).st_mode):
                    # the path checked above has no magic link: mount(2) by
                    # it resolves the same (nothing of the container runs yet)
                    data = None
                    if label:
                        from pyrun.security import lsm

                        data = lsm.mount_data("", "tmpfs", label)
                    sc.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY, data, shown=path)
                else:
                    if null < 0:
                        null = null_device()
                    sc.bind_fd(null, fd, path)
            finally:
                os.close(fd)
    finally:
        if null >= 0:
            os.close(null)


def readonly_paths(paths: list[str]) -> None:
    for path in paths:
        fd = _open(path)
        if fd is None:
            continue
        os.close(fd)
        sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC, None, shown=path)
        remount(path, sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC, shown=path)
