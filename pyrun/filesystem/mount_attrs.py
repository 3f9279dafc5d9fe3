"""Mount attributes through the new mount API: recursive options
(``rro``, ``rnosuid``, ... with mount_setattr(2) ``AT_RECURSIVE``) and
idmapped mounts (a mount's ``uidMappings``/``gidMappings``, or the
``idmap``/``ridmap`` options, with ``MOUNT_ATTR_IDMAP``).

mount(2)'s MS_REMOUNT changes one mount only: ``ro`` on an ``rbind`` leaves
every submount writable. mount_setattr(2) with AT_RECURSIVE changes the
whole tree in one call, which is what the ``r*`` options of runc (and
mount(8)'s ``X-mount.*``) ask for.

An idmapped mount shows the files of a filesystem with their owners
translated through a user namespace (mount_setattr(2) "ID-mapped mounts"):
the source is cloned into a detached tree (open_tree(2) OPEN_TREE_CLONE),
the tree gets MOUNT_ATTR_IDMAP with a user namespace fd holding the
mount's mappings, and move_mount(2) attaches it at the destination. The
kernel allows it only to a caller with CAP_SYS_ADMIN in the user
namespace that owns the filesystem *and* in the idmap's namespace: for a
bind of the host's disks that is root on the host side (as runc, whose
parent makes the tree and hands it to the container's init); a tmpfs the
container mounted is its own (Linux 6.3+), idmapped with the container's
user namespace, rootless too. A rootless bind of the host's ext4 is
refused by the kernel (EPERM), and so by pyrun, naming the mount.
"""

from __future__ import annotations

import errno
import os

from pyrun.kernel import syscalls as sc
from pyrun.errors import ConfigError, SyscallError

# <linux/mount.h>
MOUNT_ATTR_RDONLY = 0x00000001
MOUNT_ATTR_NOSUID = 0x00000002
MOUNT_ATTR_NODEV = 0x00000004
MOUNT_ATTR_NOEXEC = 0x00000008
MOUNT_ATTR__ATIME = 0x00000070
MOUNT_ATTR_RELATIME = 0x00000000
MOUNT_ATTR_NOATIME = 0x00000010
MOUNT_ATTR_STRICTATIME = 0x00000020
MOUNT_ATTR_NODIRATIME = 0x00000080
MOUNT_ATTR_IDMAP = 0x00100000
MOUNT_ATTR_NOSYMFOLLOW = 0x00200000

# option -> (attribute, clears): as mounts._FLAGS, for the whole tree.
_FLAG_OPTIONS = {
    "rro": (MOUNT_ATTR_RDONLY, False), "rrw": (MOUNT_ATTR_RDONLY, True),
    "rnosuid": (MOUNT_ATTR_NOSUID, False), "rsuid": (MOUNT_ATTR_NOSUID, True),
    "rnodev": (MOUNT_ATTR_NODEV, False), "rdev": (MOUNT_ATTR_NODEV, True),
    "rnoexec": (MOUNT_ATTR_NOEXEC, False), "rexec": (MOUNT_ATTR_NOEXEC, True),
    "rnodiratime": (MOUNT_ATTR_NODIRATIME, False), "rdiratime": (MOUNT_ATTR_NODIRATIME, True),
    "rnosymfollow": (MOUNT_ATTR_NOSYMFOLLOW, False), "rsymfollow": (MOUNT_ATTR_NOSYMFOLLOW, True),
}
# The atime mode is one value of a 3-bit field: setting it clears the field.
# "ratime", "rnorelatime" and "rnostrictatime" undo their opposite: the
# kernel's default, relatime, except "rnorelatime", which asks for strict.
_ATIME_OPTIONS = {
    "rnoatime": MOUNT_ATTR_NOATIME, "ratime": MOUNT_ATTR_RELATIME,
    "rrelatime": MOUNT_ATTR_RELATIME, "rnorelatime": MOUNT_ATTR_STRICTATIME,
    "rstrictatime": MOUNT_ATTR_STRICTATIME, "rnostrictatime": MOUNT_ATTR_RELATIME,
}
RECURSIVE = frozenset(_FLAG_OPTIONS) | frozenset(_ATIME_OPTIONS)
#: use the container's own mappings (runc 1.2's options); "ridmap": recursively
IDMAP_OPTIONS = frozenset(("idmap", "ridmap"))


def recursive_attrs(options: list[str]) -> tuple[int, int] | None:
    """(attr_set, attr_clr) of the ``r*`` options, later ones winning; None if none."""
    attr_set = attr_clr = 0
    seen = False
    for opt in options:
        if opt in _FLAG_OPTIONS:
            attr, clears = _FLAG_OPTIONS[opt]
            if clears:
                attr_set, attr_clr = attr_set & ~attr, attr_clr | attr
            else:
                attr_set, attr_clr = attr_set | attr, attr_clr & ~attr
            seen = True
        elif opt in _ATIME_OPTIONS:
            attr_set = (attr_set & ~MOUNT_ATTR__ATIME) | _ATIME_OPTIONS[opt]
            attr_clr |= MOUNT_ATTR__ATIME
            seen = True
    return (attr_set, attr_clr) if seen else None


def set_recursive(mount_fd: int, attrs: tuple[int, int], *, shown: str) -> None:
    """mount_setattr(2) AT_RECURSIVE on the mount ``mount_fd`` is the root of."""
    sc.mount_setattr(mount_fd, "", sc.AT_EMPTY_PATH | sc.AT_RECURSIVE, attrs[0], attrs[1], shown=shown)


def wants_idmap(m) -> bool:
    return bool(m.uid_mappings or m.gid_mappings) or any(o in IDMAP_OPTIONS for o in m.options)


def idmap_in_place(mount_fd: int, dest_fd: int, m, *, shown: str, where: str) -> None:
    """A tmpfs just mounted by PID 1 (``mount_fd``: its root): a mount that
    is attached cannot be idmapped, so clone it detached (the clone shares
    the superblock: same content), unmount the original, idmap the clone
    and attach it at ``dest_fd`` instead. The kernel refuses the tmpfs's
    own user namespace as the idmap (EINVAL: "the filesystem wide
    idmapping"), so the idmap is a new one nested in ours (:func:`nested_userns`)."""
    userns = nested_userns(m, where)
    try:
        tree = sc.clone_mount(mount_fd, False, shown)
        try:
            sc.umount2(f"/proc/self/fd/{mount_fd}", sc.MNT_DETACH)
            idmap_tree(tree, userns, False, shown, where)
            sc.attach_mount(tree, dest_fd, shown)
        finally:
            os.close(tree)
    finally:
        os.close(userns)


def _own_map(kind: str) -> list[tuple[int, int, int]]:
    with open(f"/proc/self/{kind}_map") as f:
        return [tuple(map(int, line.split())) for line in f if line.strip()]  # type: ignore[misc]


def _to_ours(host_id: int, own: list[tuple[int, int, int]]) -> int | None:
    for inside, outside, count in own:
        if outside <= host_id < outside + count:
            return inside + host_id - outside
    return None


def nested_userns(m, where: str) -> int:
    """A user namespace, child of ours, whose maps are the mount's (host ids,
    as runc reads them) written in our namespace's ids: only a child's
    maps can we write, and only with ids mapped here. Made by PID 1 before
    pivot_root: /proc is still the host's, so the child tells its pid
    there (readlink /proc/self) rather than ours."""
    maps = []
    for kind, given in (("uid", m.uid_mappings), ("gid", m.gid_mappings)):
        own = _own_map(kind)
        if not given:  # the idmap option: the container's own mappings
            maps.append("".join(f"{i} {i} {c}\n" for i, _o, c in own))
            continue
        lines = []
        for j, x in enumerate(given):
            first, last = _to_ours(x.host_id, own), _to_ours(x.host_id + x.size - 1, own)
            if first is None or last is None or last - first != x.size - 1:
                raise ConfigError(f"{where}.{kind}Mappings[{j}]", f"host ids {x.host_id}-{x.host_id + x.size - 1} "
                                  "are not mapped in the container's user namespace (an idmapped tmpfs can "
                                  "only use ids the container has)")
            lines.append(f"{x.container_id} {first} {x.size}\n")
        maps.append("".join(lines))
    r, w = os.pipe()
    r2, w2 = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.close(w2)
            sc.unshare(sc.CLONE_NEWUSER)
            # PID 1 is not dumpable, so neither are we, and our /proc/PID
            # would be the host root's: PID 1 could not write our maps. We
            # become dumpable holding nothing but our two pipes: a process
            # of our uid that could ptrace us would find no descriptor of PID 1.
            lo, hi = sorted((w, r2))
            os.closerange(3, lo)
            os.closerange(lo + 1, hi)
            os.closerange(hi + 1, 2**31 - 1)
            sc.prctl(4, 1, shown="prctl(PR_SET_DUMPABLE)")
            os.write(w, os.readlink("/proc/self").encode())
            os.read(r2, 1)
        finally:
            os._exit(0)
    os.close(w)
    os.close(r2)
    try:
        host_pid = os.read(r, 32).decode()
        if not host_pid.isdigit():
            raise SyscallError("unshare(CLONE_NEWUSER) for an idmapped tmpfs", errno.EPERM)
        for kind, text in zip(("uid", "gid"), maps):
            try:
                with open(f"/proc/{host_pid}/{kind}_map", "w") as f:
                    f.write(text)
            except OSError as e:
                raise SyscallError(f"write /proc/{host_pid}/{kind}_map", e.errno, where) from None
        return os.open(f"/proc/{host_pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(r)
        os.close(w2)
        os.waitpid(pid, 0)


def idmap_tree(tree: int, userns_fd: int, recursive: bool, shown: str, where: str) -> None:
    flags = sc.AT_EMPTY_PATH | (sc.AT_RECURSIVE if recursive else 0)
    try:
        sc.mount_setattr(tree, "", flags, MOUNT_ATTR_IDMAP, 0, 0, userns_fd, shown=shown)
    except SyscallError as e:
        if e.errno == errno.EPERM:
            raise ConfigError(where, f"{e}: the kernel idmaps a filesystem only for CAP_SYS_ADMIN in the "
                              "user namespace that owns it (a rootless container cannot idmap a bind of a "
                              "host filesystem)") from None
        if e.errno == errno.EINVAL:
            raise ConfigError(where, f"{e}: this filesystem (or kernel) does not support idmapped "
                              "mounts") from None
        raise


def userns_with_maps(uid_maps: list[list[int]], gid_maps: list[list[int]]) -> int:
    """An fd of a new user namespace holding these maps, made on the host
    side (its /proc and newuidmap/newgidmap are the right ones): a child
    unshare(2)s, we write its maps (pyrun.kernel.idmap), open its ns/user, and it
    exits. The namespace lives as long as the fd."""
    from pyrun.kernel import idmap, namespaces

    r, w = os.pipe()
    r2, w2 = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            os.close(w2)
            namespaces.unshare_user()
            os.write(w, b"u")
            os.read(r2, 1)  # until the maps are written and our namespace opened
            code = 0
        except BaseException:  # noqa: BLE001 - the parent sees the pipe close
            pass
        os._exit(code)
    os.close(w)
    os.close(r2)
    try:
        if os.read(r, 1) != b"u":
            raise SyscallError("unshare(CLONE_NEWUSER) for an idmapped mount", errno.EPERM)
        idmap.write_id_maps(pid, uid_maps, gid_maps)
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(r)
        os.close(w2)
        os.waitpid(pid, 0)
