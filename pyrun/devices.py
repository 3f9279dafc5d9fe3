"""Device nodes in the container's /dev.

runc's default set: null, zero, full, random, urandom, tty (and the symlinks
fd, stdin, stdout, stderr, ptmx), plus ``linux.devices``. In the host's
initial user namespace pyrun creates the nodes with mknod(2); in any other
user namespace the kernel forbids mknod, so it bind-mounts the host's node
over an empty file instead, as rootless runc does.
"""

from __future__ import annotations

import os
import stat

from pyrun import syscalls as sc
from pyrun.errors import SyscallError
from pyrun.mounts import fd_path, make_in_root, open_in_root

# (path, type, major, minor, mode)
DEFAULT_DEVICES = [
    ("/dev/null", "c", 1, 3, 0o666),
    ("/dev/zero", "c", 1, 5, 0o666),
    ("/dev/full", "c", 1, 7, 0o666),
    ("/dev/random", "c", 1, 8, 0o666),
    ("/dev/urandom", "c", 1, 9, 0o666),
    ("/dev/tty", "c", 5, 0, 0o666),
]

SYMLINKS = [
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
    ("pts/ptmx", "/dev/ptmx"),
]

_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def _mknod(rootfd: int, path: str, dtype: str, major: int, minor: int, mode: int,
           uid: int, gid: int) -> None:
    parent, name = os.path.split(path)
    pfd = make_in_root(rootfd, parent, is_dir=True)
    try:
        try:
            os.unlink(name, dir_fd=pfd)
        except FileNotFoundError:
            pass
        try:
            os.mknod(name, _TYPES[dtype] | (mode & 0o7777), os.makedev(major, minor), dir_fd=pfd)
            os.chown(name, uid, gid, dir_fd=pfd, follow_symlinks=False)
        except OSError as e:
            raise SyscallError(f"mknod({path!r})", e.errno) from None
    finally:
        os.close(pfd)


def _bind_host_node(rootfd: int, path: str) -> None:
    fd = make_in_root(rootfd, path, is_dir=False)
    try:
        sc.mount(path, fd_path(fd), None, sc.MS_BIND, None, shown=path)
    finally:
        os.close(fd)


def create_devices(rootfd: int, devices, use_mknod: bool) -> None:
    """The default devices, then ``linux.devices`` (which may override them)."""
    wanted = {p: (t, ma, mi, mode, 0, 0) for p, t, ma, mi, mode in DEFAULT_DEVICES}
    for d in devices:
        wanted[d.path] = (d.type, d.major, d.minor, d.file_mode if d.file_mode is not None else 0o666,
                          d.uid or 0, d.gid or 0)
    for path, (dtype, major, minor, mode, uid, gid) in wanted.items():
        if use_mknod:
            _mknod(rootfd, path, dtype, major, minor, mode, uid, gid)
        else:
            _bind_host_node(rootfd, path)


def create_symlinks(rootfd: int) -> None:
    devfd = open_in_root(rootfd, "/dev", shown="/dev")
    try:
        for target, link in SYMLINKS:
            try:
                os.symlink(target, os.path.basename(link), dir_fd=devfd)
            except FileExistsError:
                pass
            except OSError as e:
                raise SyscallError(f"symlink({link!r})", e.errno) from None
    finally:
        os.close(devfd)
