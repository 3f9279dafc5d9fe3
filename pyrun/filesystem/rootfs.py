"""The container's root filesystem: the bundle's or an overlay, then pivot_root.

``overlay`` mode (annotation ``org.pyrun.rootfs=overlay``, which ``pyrun
spec`` writes, or ``--rootfs-mode overlay``): the bundle's ``root.path`` is the overlay's read-only *lower* layer; each
container writes into its own *upper* directory, in its layer directory on
disk-backed storage (``/var/lib/pyrun`` as root, ``~/.local/share/pyrun``
rootless, or ``--layers-root``), never in the state root: /run is a RAM
tmpfs the host's services share.
So the bundle is never modified and the next container starts clean. All of
this is mounted inside the container's own mount namespace: nothing appears
in the host's mount table, and the kernel unmounts it when the last process
of the container exits.

``direct`` mode, the default for a config pyrun did not write (or annotation
``org.pyrun.rootfs=direct``, flag ``--rootfs-mode direct``), bind-mounts
``root.path`` itself, as runc does: writes land in the bundle.
"""

from __future__ import annotations

import errno
import os

from pyrun.kernel import syscalls as sc
from pyrun.errors import SyscallError, errno_text
from pyrun.log import log

OVERLAY = "overlay"
DIRECT = "direct"


def make_mounts_private(propagation: int | None) -> None:
    """mount("", "/", MS_SLAVE|MS_REC): from here on our mounts do not
    propagate back to the host (runc's default; rootfsPropagation overrides)."""
    sc.mount(None, "/", None, propagation or (sc.MS_SLAVE | sc.MS_REC), None)


def mount_overlay(lower: int, upper: int, work: int, merged: str, in_userns: bool) -> None:
    """mount -t overlay: lower = the bundle's rootfs, upper/work = ours,
    each given as /proc/self/fd/N of a descriptor checked to be the inode
    the host checked (pyrun.filesystem.hostpath): overlayfs resolves the magic link to
    that very directory, so no rename of a path can redirect the mount.

    Inside a user namespace the kernel stores overlay metadata in
    ``user.overlay.*`` xattrs (option ``userxattr``), since an unprivileged
    mounter may not write ``trusted.*`` ones."""
    data = f"lowerdir=/proc/self/fd/{lower},upperdir=/proc/self/fd/{upper},workdir=/proc/self/fd/{work}"
    if in_userns:
        data += ",userxattr"
    sc.mount("overlay", merged, "overlay", 0, data, shown=merged)


def bind_rootfs(rootfs: int, merged: str) -> None:
    """Bind the checked descriptor of root.path, never its path again."""
    sc.mount(f"/proc/self/fd/{rootfs}", merged, None, sc.MS_BIND | sc.MS_REC, None, shown=merged)


def mount_root(mode: str, root_real: str, root_ident, merged: str, in_userns: bool, bundle: str = "",
               layers: str = "", layer_idents: dict | None = None) -> str:
    """Mount the root at ``merged``, the overlay's upper and work in
    ``layers``; returns the mode really used. Every host directory is
    opened here, in the container's mount namespace, without following a
    symlink, and must be the inode the host side checked (pyrun.filesystem.hostpath).

    If the overlay cannot be mounted, the bundle's rootfs is used directly,
    with a warning, but only when it is a directory inside the bundle: the
    container's writes never land anywhere the user did not name as a root
    they own (``check_root`` already refused symlinks). A full layer
    filesystem is an error naming it: never a reason to write somewhere else."""
    from pyrun.filesystem import hostpath

    lower = hostpath.open_same(root_real, root_ident, "root.path")
    try:
        if mode == OVERLAY:
            upper = hostpath.open_same(os.path.join(layers, "upper"), layer_idents["upper"], "overlay upper")
            try:
                work = hostpath.open_same(os.path.join(layers, "work"), layer_idents["work"], "overlay work")
                try:
                    mount_overlay(lower, upper, work, merged, in_userns)
                    return OVERLAY
                except SyscallError as e:
                    _overlay_failed(e, upper, layers, root_real, bundle)
                finally:
                    os.close(work)
            finally:
                os.close(upper)
        bind_rootfs(lower, merged)
        return DIRECT
    finally:
        os.close(lower)


def _overlay_failed(e: SyscallError, upper: int, layers: str, rootfs: str, bundle: str) -> None:
    """Raise the overlay's error, or warn and return (use the root directly)."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        raise SyscallError("mount(overlay)", e.errno, f"layer directory {layers}") from None
    if _on_overlayfs(upper):
        raise SyscallError("mount(overlay)", e.errno,
                           f"the layers root {os.path.dirname(layers)} is on an overlayfs, which overlayfs "
                           "refuses as its upper layer: choose another with --layers-root") from None
    if not bundle or not rootfs.startswith(os.path.realpath(bundle).rstrip("/") + "/"):
        raise SyscallError(f"mount overlay root on {rootfs}", e.errno,
                           "root.path is outside the bundle, so pyrun will not use it directly "
                           "instead (--rootfs-mode direct says to)") from None
    log.warning(f"overlay root not available ({e}); using the bundle's rootfs directly, "
                "writes will reach the bundle")


OVERLAYFS_SUPER_MAGIC = 0x794C7630


def _on_overlayfs(fd: int) -> bool:
    try:
        return sc.fs_type(fd) == OVERLAYFS_SUPER_MAGIC
    except SyscallError:
        return False


def check_root(path: str, bundle: str) -> tuple[str, tuple[int, int]]:
    """root.path must be the directory it names: a symlink there, or on the
    way to it, is refused, as runc refuses it ("not an absolute path, or a
    symlink"). A relative root.path is taken in the bundle's real
    directory (runc chdir(2)s into the bundle first).

    The check is of a descriptor (pyrun.filesystem.hostpath): the real path opened
    with RESOLVE_NO_SYMLINKS. Returns that path and the inode, which stage
    2 opens again in the container's mount namespace and must find the
    same: the bundle's owner swapping ``rootfs`` for a symlink meanwhile
    gets an error, never a root elsewhere."""
    from pyrun.filesystem import hostpath
    from pyrun.errors import ConfigError

    try:
        real = os.path.realpath(path)
    except OSError as e:  # readlink(2) of a link swapped away meanwhile: EINVAL
        raise ConfigError("root.path", f"{path} changed while pyrun resolved it: {errno_text(e)}") from None
    if real != path and real != os.path.normpath(os.path.join(os.path.realpath(bundle),
                                                          os.path.relpath(path, bundle))):
        raise ConfigError("root.path", f"{path} is a symlink or goes through one (to {real}): "
                          "refused; name the real directory")
    try:
        fd = sc.openat2(sc.AT_FDCWD, real, os.O_PATH | os.O_DIRECTORY,
                        sc.RESOLVE_NO_SYMLINKS | sc.RESOLVE_NO_MAGICLINKS, shown=real)
    except SyscallError as e:
        if e.errno == errno.ELOOP:
            raise ConfigError("root.path", f"{path} is a symlink or goes through one: refused; "
                              "name the real directory") from None
        raise ConfigError("root.path", f"{path}: no such directory") from None
    try:
        return real, hostpath.ident(fd)
    finally:
        os.close(fd)


def parent_mount_private(path: str) -> None:
    """runc's rootfsParentMountPrivate: the mount ``path`` is on becomes
    private if it is shared (proc(5), /proc/self/mountinfo's optional
    fields). pivot_root(2) refuses a new root whose parent mount is shared,
    and the root mounted there must not propagate to the host's namespace.
    Only needed with linux.rootfsPropagation: runc's default, rslave on
    every mount, leaves nothing shared."""
    path = os.path.realpath(path)
    point, shared = "/", False
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mp = unescape_mountinfo(fields[4])
            inside = path == mp or path.startswith(mp.rstrip("/") + "/")
            if inside and len(mp) >= len(point):  # the last of those stacked on one point is on top
                point = mp
                shared = any(o.startswith("shared:") for o in fields[6:fields.index("-")])
    if shared:
        sc.mount(None, point, None, sc.MS_PRIVATE, None)


def set_root_propagation(target: str, propagation: int) -> None:
    sc.mount(None, target, None, propagation, None)


def pivot_root(new_root: str) -> None:
    """pivot_root(".", "."), then detach the old root stacked under "/".

    While the documentation may suggest otherwise, pivot_root(".", ".") is
    valid: the new root becomes "/" and the old one is mounted on top of it,
    where umount2(MNT_DETACH) removes it without needing a directory for it.
    The OLD root, reached by fchdir(2) to a descriptor opened before, is made
    MS_SLAVE|MS_REC first, so that its unmount cannot propagate to the host's
    mount namespace; "." after pivot_root is still the new root, whose mounts
    keep the propagation they were given (an ``rshared`` bind stays the host
    mount's peer, as runc keeps it)."""
    old_root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.chdir(new_root)
        sc.pivot_root(".", ".")
        os.fchdir(old_root)
    finally:
        os.close(old_root)
    sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC, None)
    sc.umount2(".", sc.MNT_DETACH)
    os.chdir("/")


def move_root(new_root: str) -> None:
    """--no-pivot: MS_MOVE the rootfs over "/" and chroot(2) into it.

    Weaker than pivot_root (the old root stays reachable to a process that
    escapes the chroot); only for filesystems where pivot_root is refused,
    such as an initramfs. The old root's mounts stay in the namespace, so
    its procfs and sysfs go first (:func:`hide_full_proc_and_sys`)."""
    # new_root may be a /proc/self/fd path: opened before procfs goes, then
    # used only through the descriptor (fchdir) and as "."
    fd = os.open(new_root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        hide_full_proc_and_sys(new_root)
        os.fchdir(fd)
    finally:
        os.close(fd)
    sc.mount(".", "/", None, sc.MS_MOVE, None)
    os.chroot(".")
    os.chdir("/")


def hide_full_proc_and_sys(new_root: str) -> None:
    """The kernel lets a new user namespace mount procfs or sysfs only where
    one is fully visible in its mount namespace (mount_too_revealing). Under
    the old root the host's /proc and /sys are: each whole procfs or sysfs
    mount outside ``new_root`` is made a slave (its unmount must not reach
    the host) and detached (umount2 MNT_DETACH); where that is refused (the
    mounts of a more privileged namespace are locked), a tmpfs covers it.
    runc's msMoveRoot does the same."""
    inside = os.path.realpath(new_root).rstrip("/") + "/"
    points = []
    with open("/proc/self/mountinfo") as f:  # proc(5): root is field 4, the mount point 5
        for line in f:
            fields = line.split()
            root, point, fstype = fields[3], unescape_mountinfo(fields[4]), fields[fields.index("-") + 1]
            if root == "/" and fstype in ("proc", "sysfs") and not (point + "/").startswith(inside):
                points.append(point)
    for point in points:
        try:
            sc.mount(None, point, None, sc.MS_SLAVE | sc.MS_REC, None)
        except SyscallError as e:
            if e.errno in (errno.ENOENT, errno.EINVAL):  # under one detached already
                continue
            raise
        try:
            sc.umount2(point, sc.MNT_DETACH)
        except SyscallError as e:
            if e.errno not in (errno.EINVAL, errno.EPERM):
                raise
            sc.mount("tmpfs", point, "tmpfs", 0, None)


def unescape_mountinfo(field: str) -> str:
    """mountinfo's octal escapes (\\040 for a space)."""
    return field.encode().decode("unicode_escape") if "\\" in field else field


def make_root_readonly() -> None:
    """root.readonly: remount "/" read-only once every mount is in place."""
    from pyrun.kernel.syscalls import remount

    remount("/", sc.MS_RDONLY, shown="/")
