"""Host paths pyrun is handed: checked by descriptor, used by descriptor.

Every other local user is an attacker (README, "Security model"), and so is
the owner of a bundle who is not the caller: between pyrun's check of a
path and its use, either can rename a directory away and put a symlink, or
a directory of its own, in its place. So a host path (``root.path``, the
layers root, the overlay's upper and work, the pid file's directory) is
opened once, without following a symlink (openat2(2)
``RESOLVE_NO_SYMLINKS``), the descriptor is checked (fstat(2)), and what
follows uses the descriptor. Where the use must happen in another mount
namespace (stage 2 mounts the root in the container's), the path is opened
there again the same way and must be the same inode (st_dev, st_ino) as the
one checked: a swap between the two is an error, never a mount elsewhere.
"""

from __future__ import annotations

import errno
import os
import stat

from pyrun.kernel import syscalls as sc
from pyrun.errors import PyrunError, SyscallError, errno_text

Ident = tuple[int, int]  # (st_dev, st_ino)


def open_nofollow(path: str, shown: str, flags: int = os.O_PATH | os.O_DIRECTORY) -> int:
    """openat2(AT_FDCWD, path, RESOLVE_NO_SYMLINKS): ``path`` is absolute
    and real (os.path.realpath of what the caller named, computed once);
    a symlink anywhere on it now means someone swapped one in: ELOOP."""
    try:
        return sc.openat2(sc.AT_FDCWD, path, flags, sc.RESOLVE_NO_SYMLINKS | sc.RESOLVE_NO_MAGICLINKS,
                          shown=path)
    except SyscallError as e:
        raise PyrunError(f"{shown} {path}: {e}") from None


def ident(fd: int) -> Ident:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def open_same(path: str, expected: Ident | list, shown: str) -> int:
    """:func:`open_nofollow`, then the inode must be the one checked."""
    fd = open_nofollow(path, shown)
    if ident(fd) != tuple(expected):
        os.close(fd)
        raise PyrunError(f"{shown} {path} was replaced between pyrun's check and its use: refused")
    return fd


def own_dir(path: str, mode: int, shown: str) -> int:
    """The directory ``path`` (made, with its parents, if missing), refused
    unless it is ours: not a symlink, owned by our uid, writable by nobody
    else (then set to ``mode``). As the state root (state.ensure_root): a
    directory another user made before us is never trusted. Returns an
    O_RDONLY descriptor of it, from which everything inside is made."""
    try:
        os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
        try:
            os.mkdir(path, mode)
        except FileExistsError:
            pass
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(path):
            raise PyrunError(f"{shown} {path} is a symlink: refused") from None
        raise PyrunError(f"{shown} {path}: {errno_text(e)}") from None
    st = os.fstat(fd)
    if st.st_uid != os.geteuid():
        os.close(fd)
        raise PyrunError(f"{shown} {path} is owned by uid {st.st_uid}, not by you ({os.geteuid()}): refused")
    if stat.S_IMODE(st.st_mode) != mode:
        os.fchmod(fd, mode)
    return fd


def write_file_atomically(path: str, data: bytes, shown: str) -> None:
    """Replace ``path`` with ``data`` without ever writing through a
    symlink: a unique temporary name made O_CREAT|O_EXCL|O_NOFOLLOW in the
    directory (opened once, as a descriptor), then renameat(2) over the
    name, which replaces a symlink there rather than following it."""
    path = os.path.abspath(path)
    parent, base = os.path.split(path)
    try:
        dfd = os.open(parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise PyrunError(f"{shown} {path}: {errno_text(e)}") from None
    tmp = f".{base}.{os.urandom(6).hex()}.tmp"
    made = False
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                     dir_fd=dfd)
        made = True
        try:
            while data:
                data = data[os.write(fd, data):]
        finally:
            os.close(fd)
        os.rename(tmp, base, src_dir_fd=dfd, dst_dir_fd=dfd)
    except OSError as e:
        if made:  # ours, never a name someone else made first
            try:
                os.unlink(tmp, dir_fd=dfd)
            except OSError:
                pass
        raise PyrunError(f"{shown} {path}: {errno_text(e)}") from None
    finally:
        os.close(dfd)
