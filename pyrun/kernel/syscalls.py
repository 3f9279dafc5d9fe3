"""Thin, checked wrappers over ``pyrun._native`` (the cffi shim).

Every wrapper raises :class:`SyscallError` naming the call and its main
argument, e.g. ``mount("/run/pyrun/c1/merged/proc"): Permission denied
(EACCES)``. Constants come from <linux/mount.h>, <sched.h>, <linux/openat2.h>.
"""

from __future__ import annotations

import errno
import os

from pyrun._native import ffi, lib
from pyrun.errors import SyscallError

# mount(2) flags
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25
MNT_DETACH = 2

# unshare(2) / setns(2) flags
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

# openat2(2) resolve flags
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
O_PATH = os.O_PATH


def _check(rc: int, call: str, detail: str = "") -> int:
    if rc < 0:
        raise SyscallError(call, -rc, detail)
    return rc


def _s(value: str | None):
    return ffi.NULL if value is None else value.encode()


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None, *, shown: str | None = None) -> None:
    """mount(2). ``shown`` is the path to name in errors (the container path
    rather than ``/proc/self/fd/N``)."""
    rc = lib.pyrun_mount(_s(source), target.encode(), _s(fstype), flags, _s(data))
    _check(rc, f"mount({shown or target!r}, type={fstype or 'bind'})")


# Mount flags that, once set on a mount, the kernel locks in a user namespace:
# a remount must repeat them or fail with EPERM.
_ST_LOCKED = ((os.ST_RDONLY, MS_RDONLY), (os.ST_NOSUID, MS_NOSUID),
              (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
              (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME),
              (os.ST_RELATIME, MS_RELATIME))


def _locked_flags(target: str) -> int:
    st = os.statvfs(target)
    flags = 0
    for st_flag, ms_flag in _ST_LOCKED:
        if st.f_flag & st_flag:
            flags |= ms_flag
    return flags


def remount(target: str, flags: int, *, shown: str, bind: bool = True) -> None:
    """Apply flags to an existing (bind) mount, keeping the ones the kernel
    locked when the mount came from a more privileged namespace."""
    want = MS_REMOUNT | (MS_BIND if bind else 0) | flags
    try:
        mount(None, target, None, want, None, shown=shown)
    except SyscallError as e:
        if e.errno != errno.EPERM:  # retry with the locked flags kept
            raise
        mount(None, target, None, want | _locked_flags(target), None, shown=shown)


def fd_path(fd: int) -> str:
    """The path that names what a descriptor names: mounts are made on and
    from descriptors (a path string could be swapped for a symlink)."""
    return f"/proc/self/fd/{fd}"


def umount2(target: str, flags: int = 0) -> None:
    _check(lib.pyrun_umount2(target.encode(), flags), f"umount2({target!r})")


def pivot_root(new_root: str, put_old: str) -> None:
    _check(lib.pyrun_pivot_root(new_root.encode(), put_old.encode()),
           f"pivot_root({new_root!r}, {put_old!r})")


def unshare(flags: int) -> None:
    _check(lib.pyrun_unshare(flags), f"unshare({flags:#x})")


def setns(fd: int, nstype: int, shown: str = "") -> None:
    _check(lib.pyrun_setns(fd, nstype), f"setns({shown or fd})")


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(lib.pyrun_setdomainname(raw, len(raw)), f"setdomainname({name!r})")


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0,
            shown: str | None = None) -> int:
    """openat2(2): returns a new fd (always O_CLOEXEC)."""
    rc = lib.pyrun_openat2(dirfd, path.encode(), flags | os.O_CLOEXEC, mode, resolve)
    return _check(rc, f"openat2({shown or path!r})")


def open_in_own_root(path: str, flags: int, shown: str | None = None) -> int:
    """openat2(2) of ``path`` inside this process's root directory (after
    pivot_root(2) or chroot(2): the container's) with ``RESOLVE_IN_ROOT |
    RESOLVE_NO_MAGICLINKS``: a symlink resolves inside it, and a magic link
    such as /proc/self/fd/N (a descriptor of pyrun's) is refused."""
    root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return openat2(root, path.lstrip("/") or ".", flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
                       shown=shown or path)
    finally:
        os.close(root)


def execveat(fd: int, argv: list[str], envp: list[str], shown: str) -> None:
    """execveat(fd, "", argv, envp, AT_EMPTY_PATH): only returns by raising."""
    keep = [ffi.new("char[]", a.encode()) for a in argv]
    keep_env = [ffi.new("char[]", e.encode()) for e in envp]
    c_argv = ffi.new("char *[]", keep + [ffi.NULL])
    c_envp = ffi.new("char *[]", keep_env + [ffi.NULL])
    rc = lib.pyrun_execveat(fd, b"", c_argv, c_envp, AT_EMPTY_PATH)
    _check(rc, f"execveat({shown})")


def set_cmdline(name: str) -> None:
    """What /proc/self/cmdline shows from now on (native/shim.c): a process
    of pyrun's inside a container shows no host path (``--root``, the bundle)."""
    _check(lib.pyrun_set_cmdline(name.encode()), "set_cmdline(/proc/self/stat)")


def join_session_keyring(name: str) -> None:
    _check(lib.pyrun_join_session_keyring(name.encode()), f"keyctl(JOIN_SESSION_KEYRING, {name!r})")


PR_SET_CHILD_SUBREAPER = 36
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0, *,
          shown: str = "prctl") -> int:
    return _check(lib.pyrun_prctl(option, arg2, arg3, arg4, arg5), shown)


# Process attributes (runtime-spec 1.3 process.scheduler, process.ioPriority,
# linux.personality, linux.memoryPolicy): the calls Python 3.11 lacks.

def sched_setattr(pid: int, policy: int, flags: int, nice: int, priority: int, runtime: int,
                  deadline: int, period: int, *, shown: str = "") -> None:
    """sched_setattr(2); ``shown`` names the config field in errors."""
    rc = lib.pyrun_sched_setattr(pid, policy, flags, nice, priority, runtime, deadline, period)
    _check(rc, "sched_setattr", shown)


def ioprio_set(which: int, who: int, ioprio: int, *, shown: str = "") -> None:
    _check(lib.pyrun_ioprio_set(which, who, ioprio), "ioprio_set", shown)


def personality(persona: int, *, shown: str = "") -> int:
    """personality(2): returns the previous persona."""
    return _check(lib.pyrun_personality(persona), f"personality({persona:#x})", shown)


def set_mempolicy(mode: int, nodes: list[int], *, shown: str = "") -> None:
    """set_mempolicy(2) with ``nodes`` as a bitmask of unsigned longs."""
    words = (max(nodes) // 64 + 1) if nodes else 1
    mask = ffi.new("unsigned long[]", words)
    for n in nodes:
        mask[n // 64] |= 1 << (n % 64)
    maxnode = words * 64 if nodes else 0
    _check(lib.pyrun_set_mempolicy(mode, mask if nodes else ffi.NULL, maxnode), "set_mempolicy", shown)


# open_tree(2) / move_mount(2) flags (<linux/mount.h>)
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
AT_RECURSIVE = 0x8000
AT_SYMLINK_NOFOLLOW = 0x100
MOVE_MOUNT_F_EMPTY_PATH = 0x04
MOVE_MOUNT_T_EMPTY_PATH = 0x40
CLOSE_RANGE_CLOEXEC = 1 << 2


def close_range(first: int, last: int, flags: int = 0) -> None:
    """close_range(2) from ``first`` to ``last`` (inclusive)."""
    _check(lib.pyrun_close_range(first, min(last, 0xFFFFFFFF), flags), "close_range")


def clone_mount(fd: int, recursive: bool, shown: str) -> int:
    """open_tree(fd, "", OPEN_TREE_CLONE): a detached bind mount of what the
    descriptor names. Made from a descriptor, not a path: nothing can be
    swapped in between the check of that descriptor and the mount."""
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
    return _check(lib.pyrun_open_tree(fd, b"", flags), f"open_tree({shown!r})")


def attach_mount(tree_fd: int, target_fd: int, shown: str) -> None:
    """move_mount(2) a detached mount onto what ``target_fd`` (O_PATH) names."""
    _check(lib.pyrun_move_mount(tree_fd, b"", target_fd, b"",
                                MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH),
           f"move_mount({shown!r})")


def bind_fd(src_fd: int, target_fd: int, shown: str, recursive: bool = False) -> None:
    """Bind what ``src_fd`` names onto what ``target_fd`` names: both are
    descriptors, so neither a symlink nor a /proc over-mount can redirect it."""
    tree = clone_mount(src_fd, recursive, shown)
    try:
        attach_mount(tree, target_fd, shown)
    finally:
        os.close(tree)


PROC_SUPER_MAGIC = 0x9FA0
DEVPTS_SUPER_MAGIC = 0x1CD1


def fs_type(fd: int) -> int:
    """fstatfs(2)'s ``f_type`` of what ``fd`` names (statfs(2) lists the magics)."""
    return _check(lib.pyrun_fstatfs_type(fd), "fstatfs")


def mount_setattr(dirfd: int, path: str, flags: int, attr_set: int, attr_clr: int = 0,
                  propagation: int = 0, userns_fd: int = 0, *, shown: str = "") -> None:
    """mount_setattr(2) (pyrun.filesystem.mount_attrs: recursive options, idmapped mounts)."""
    rc = lib.pyrun_mount_setattr(dirfd, path.encode(), flags, attr_set, attr_clr, propagation, userns_fd)
    _check(rc, f"mount_setattr({shown or path!r})")
