"""The ``tmpcopyup`` mount option (runc's, which podman adds to every
``--tmpfs``): a tmpfs mounted over a directory of the image starts with a
copy of what that directory held, instead of hiding it.

The copy reads the covered directory through an fd opened before the mount
(a lookup from it never crosses into the tmpfs on top), and walks it with
directory fds and O_NOFOLLOW only: a symlink in the image is copied as a
symlink, never followed, so nothing outside the rootfs is read. Owners,
modes and times are kept where the user namespace maps them.
"""

from __future__ import annotations

import errno
import os
import stat

from pyrun.errors import SyscallError

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def copy_up(covered_fd: int, mount_fd: int, *, shown: str) -> None:
    """Copy the directory under the tmpfs (``covered_fd``, O_PATH) into the
    tmpfs (``mount_fd``, O_PATH of its root)."""
    src = os.open(".", _DIR, dir_fd=covered_fd)
    dst = os.open(".", _DIR, dir_fd=mount_fd)
    try:
        _copy_dir(src, dst, shown)
    except OSError as e:
        raise SyscallError(f"tmpcopyup({shown!r})", e.errno or errno.EIO, e.filename or "") from None
    finally:
        os.close(src)
        os.close(dst)


def _copy_dir(src: int, dst: int, shown: str) -> None:
    for entry in os.scandir(src):
        name = entry.name
        st = os.stat(name, dir_fd=src, follow_symlinks=False)
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            os.mkdir(name, 0o700, dir_fd=dst)
            sub_src = os.open(name, _DIR, dir_fd=src)
            sub_dst = os.open(name, _DIR, dir_fd=dst)
            try:
                _copy_dir(sub_src, sub_dst, f"{shown}/{name}")
            finally:
                os.close(sub_src)
                os.close(sub_dst)
        elif stat.S_ISREG(st.st_mode):
            fin = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src)
            try:
                fout = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                               0o600, dir_fd=dst)
                try:
                    while os.sendfile(fout, fin, None, 1 << 20) > 0:
                        pass
                finally:
                    os.close(fout)
            finally:
                os.close(fin)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
        else:  # fifo, socket, device: as mknod(2) allows here
            os.mknod(name, st.st_mode, st.st_rdev, dir_fd=dst)
        try:
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
        except OSError:
            pass  # an owner this user namespace does not map stays ours
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(name, mode, dir_fd=dst)
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst, follow_symlinks=False)
