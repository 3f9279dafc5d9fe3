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

from pyrun.kernel import syscalls as sc
from pyrun.errors import PyrunError, SyscallError
from pyrun.filesystem.mounts import InHostDir, make_in_root, open_in_root

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


def _is_wanted(st: os.stat_result, dtype: str, major: int, minor: int) -> bool:
    if stat.S_IFMT(st.st_mode) != _TYPES[dtype]:
        return False
    return dtype == "p" or (os.major(st.st_rdev), os.minor(st.st_rdev)) == (major, minor)


def _existing(pfd: int, name: str, path: str, dtype: str, major: int, minor: int) -> bool:
    """What the rootfs already has at ``path``: the same device is kept (as
    runc keeps it); a symlink or any other file is refused. The image
    controls the rootfs, and pyrun unlinks nothing it did not create."""
    try:
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if _is_wanted(st, dtype, major, minor):
        return True
    what = "a symlink" if stat.S_ISLNK(st.st_mode) else "not that device"
    raise PyrunError(f"device {path}: the rootfs has {what} there ({dtype} {major}:{minor} wanted); "
                     "pyrun neither follows nor replaces it")


def _mknod(pfd: int, path: str, dtype: str, major: int, minor: int, mode: int,
           uid: int, gid: int) -> None:
    """mknodat(2) with the umask cleared, so the mode is exactly the spec's
    (0666 for the defaults, ``fileMode`` when given); fchownat(2) without
    following a link. mknodat never follows a symlink: EEXIST instead."""
    name = os.path.basename(path)
    if _existing(pfd, name, path, dtype, major, minor):
        return
    old = os.umask(0)
    try:
        os.mknod(name, _TYPES[dtype] | (mode & 0o7777), os.makedev(major, minor), dir_fd=pfd)
        os.chown(name, uid, gid, dir_fd=pfd, follow_symlinks=False)
    except OSError as e:
        raise SyscallError(f"mknod({path!r})", e.errno) from None
    finally:
        os.umask(old)


def _bind_host_node(pfd: int, path: str, dtype: str, major: int, minor: int) -> None:
    """In a user namespace mknod is refused: bind the host's node over an
    empty file, as rootless runc does. The host's node is opened without
    following a link and checked to be the device it claims; the target is
    created with O_EXCL|O_NOFOLLOW, and both ends of the bind are
    descriptors (open_tree(2) + move_mount(2))."""
    name = os.path.basename(path)
    try:
        src = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise SyscallError(f"open(host {path!r})", e.errno) from None
    try:
        if not _is_wanted(os.fstat(src), dtype, major, minor):
            raise PyrunError(f"the host's {path} is not the device {dtype} {major}:{minor}: not binding it")
        if not _existing_target(pfd, name, path):
            try:
                os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                 0o644, dir_fd=pfd))
            except OSError as e:
                raise SyscallError(f"create({path!r})", e.errno) from None
        target = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        try:
            sc.bind_fd(src, target, path)
        finally:
            os.close(target)
    finally:
        os.close(src)


def _existing_target(pfd: int, name: str, path: str) -> bool:
    try:
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode) or stat.S_ISDIR(st.st_mode):
        what = "a symlink" if stat.S_ISLNK(st.st_mode) else "a directory"
        raise PyrunError(f"device {path}: the rootfs has {what} there; pyrun neither follows nor replaces it")
    return True


def create_devices(rootfd: int, devices, use_mknod: bool, host_dirs: set[int] = frozenset()) -> None:
    """The default devices, then ``linux.devices`` (which may override them).

    ``host_dirs``: mount ids of the config's bind mounts. A device whose
    directory is one of them (a bind-mounted /dev, or a symlink in the image
    that leads into a bind) is the host's directory: nothing is created
    there, as runc creates no devices in a bind-mounted /dev."""
    from pyrun.filesystem.mounts import mount_id

    wanted = {p: (t, ma, mi, mode, 0, 0) for p, t, ma, mi, mode in DEFAULT_DEVICES}
    for d in devices:
        if os.path.normpath(d.path) == "/dev/ptmx":
            continue  # runc makes it the link to pts/ptmx whatever the config says (create_symlinks)
        wanted[d.path] = (d.type, d.major, d.minor, d.file_mode if d.file_mode is not None else 0o666,
                          d.uid or 0, d.gid or 0)
    for path, (dtype, major, minor, mode, uid, gid) in wanted.items():
        try:
            pfd = make_in_root(rootfd, os.path.dirname(path), is_dir=True, host_dirs=host_dirs)
        except InHostDir:  # its directory would be made in the host's: not ours, as runc
            continue
        try:
            if mount_id(pfd) in host_dirs:
                continue
            if use_mknod:
                _mknod(pfd, path, dtype, major, minor, mode, uid, gid)
            else:
                _bind_host_node(pfd, path, dtype, major, minor)
        finally:
            os.close(pfd)


def create_symlinks(rootfd: int, host_dirs: set[int] = frozenset()) -> None:
    from pyrun.filesystem.mounts import mount_id

    devfd = open_in_root(rootfd, "/dev", shown="/dev")
    try:
        if mount_id(devfd) in host_dirs:
            return
        for target, link in SYMLINKS:
            try:
                os.symlink(target, os.path.basename(link), dir_fd=devfd)
            except FileExistsError:
                pass
            except OSError as e:
                raise SyscallError(f"symlink({link!r})", e.errno) from None
    finally:
        os.close(devfd)
