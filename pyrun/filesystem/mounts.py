"""The ``mounts`` of config.json, mounted inside the container's rootfs.

Every destination is resolved with openat2(2) ``RESOLVE_IN_ROOT``: a symlink
in the rootfs is followed as if the rootfs were ``/``, so ``/etc -> /host``
lands on ``<rootfs>/host``, never on the host (runc CVE-2021-30465,
CVE-2024-21626). The mount itself targets ``/proc/self/fd/N`` of the fd
that resolution returned, so nothing can swap the path in between.
"""

from __future__ import annotations

import errno
import os
import stat

from pyrun.filesystem import mount_attrs
from pyrun.kernel import syscalls as sc
from pyrun.kernel.syscalls import fd_path, remount
from pyrun.errors import ConfigError, SyscallError, errno_text
from pyrun.log import log

# name -> (flag, clears): "clears" options remove the flag instead of setting it.
_FLAGS = {
    "async": (sc.MS_SYNCHRONOUS, True), "atime": (sc.MS_NOATIME, True),
    "bind": (sc.MS_BIND, False), "defaults": (0, False), "dev": (sc.MS_NODEV, True),
    "diratime": (sc.MS_NODIRATIME, True), "dirsync": (sc.MS_DIRSYNC, False),
    "exec": (sc.MS_NOEXEC, True), "mand": (sc.MS_MANDLOCK, False),
    "noatime": (sc.MS_NOATIME, False), "nodev": (sc.MS_NODEV, False),
    "nodiratime": (sc.MS_NODIRATIME, False), "noexec": (sc.MS_NOEXEC, False),
    "nomand": (sc.MS_MANDLOCK, True), "norelatime": (sc.MS_RELATIME, True),
    "nostrictatime": (sc.MS_STRICTATIME, True), "nosuid": (sc.MS_NOSUID, False),
    "nosymfollow": (sc.MS_NOSYMFOLLOW, False), "rbind": (sc.MS_BIND | sc.MS_REC, False),
    "relatime": (sc.MS_RELATIME, False), "remount": (sc.MS_REMOUNT, False),
    "ro": (sc.MS_RDONLY, False), "rw": (sc.MS_RDONLY, True),
    "strictatime": (sc.MS_STRICTATIME, False), "suid": (sc.MS_NOSUID, True),
    "sync": (sc.MS_SYNCHRONOUS, False),
}
PROPAGATION = {
    "private": sc.MS_PRIVATE, "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "shared": sc.MS_SHARED, "rshared": sc.MS_SHARED | sc.MS_REC,
    "slave": sc.MS_SLAVE, "rslave": sc.MS_SLAVE | sc.MS_REC,
    "unbindable": sc.MS_UNBINDABLE, "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}
# Options that runc understands itself and never passes to the kernel
# (tmpcopyup: pyrun.filesystem.tmpcopyup, after the mount).
_IGNORED = {"tmpcopyup"}


def parse_options(options: list[str]) -> tuple[int, int, str]:
    """Split mount options into (flags, propagation flags, data string), as
    mount(8) does: known names become MS_* flags, the rest is fs data."""
    flags = 0
    propagation = 0
    data = []
    for opt in options:
        if opt in _FLAGS:
            flag, clears = _FLAGS[opt]
            flags = flags & ~flag if clears else flags | flag
        elif opt in PROPAGATION:
            propagation |= PROPAGATION[opt]
        elif opt in _IGNORED:
            pass  # not for the kernel: done after the mount (_after_mount)
        elif opt in mount_attrs.RECURSIVE or opt in mount_attrs.IDMAP_OPTIONS:
            pass  # mount_setattr(2) after the mount (mount_one)
        else:
            data.append(opt)
    return flags, propagation, ",".join(data)


def open_in_root(rootfd: int, path: str, *, shown: str) -> int:
    """O_PATH fd of ``path`` resolved inside the rootfs (symlinks stay inside)."""
    return sc.openat2(rootfd, path.lstrip("/") or ".", sc.O_PATH,
                      sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS, shown=shown)


class InHostDir(SyscallError):
    """What :func:`make_in_root` would create lies in a host directory."""


def make_in_root(rootfd: int, path: str, *, is_dir: bool, mode: int = 0o755, _depth: int = 0,
                 host_dirs: set[int] = frozenset()) -> int:
    """Resolve ``path`` inside the rootfs, creating what is missing (parents
    as directories, the last component as a directory or an empty file).
    Returns an O_PATH fd of the result.

    Each missing name is created in the already-resolved parent with
    mkdirat(2) or openat(2) ``O_CREAT|O_EXCL``, neither of which follows a
    symlink. A dangling symlink on the way is followed *inside* the rootfs
    (its target re-rooted, ``..`` clamped at the root), as runc does: a link
    to ``/host/dir`` creates ``<rootfs>/host/dir``, never the host's.

    ``host_dirs``: mount ids of the config's bind mounts, in which nothing is
    created (ENOENT instead): the host's directories are not pyrun's to fill."""
    if _depth > 40:
        raise SyscallError(f"create {path!r} in the rootfs", errno.ELOOP)
    parts = [p for p in path.split("/") if p and p != "."]
    parent = os.dup(rootfd)
    try:
        for i, name in enumerate(parts):
            sub = "/".join(parts[: i + 1])
            last = i == len(parts) - 1
            try:
                fd = open_in_root(rootfd, sub, shown=path)
            except SyscallError as e:
                if e.errno != errno.ENOENT:
                    raise
                if host_dirs and mount_id(parent) in host_dirs:
                    raise InHostDir(f"create {path!r} in the rootfs", errno.ENOENT,
                                    "its directory is a bind mount of the host's; pyrun creates nothing there")
                try:
                    if last and not is_dir:
                        os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC,
                                         0o644, dir_fd=parent))
                    else:
                        os.mkdir(name, mode, dir_fd=parent)
                except FileExistsError:
                    # A dangling symlink: create its target inside the rootfs.
                    target = os.readlink(name, dir_fd=parent)
                    base = "" if target.startswith("/") else "/".join(parts[:i])
                    rest = "/".join(parts[i + 1:])
                    os.close(parent)
                    parent = -1
                    return make_in_root(rootfd, "/".join(x for x in (base, target, rest) if x),
                                        is_dir=is_dir, mode=mode, _depth=_depth + 1, host_dirs=host_dirs)
                except OSError as err:
                    raise SyscallError(f"create {path!r} in the rootfs", err.errno) from None
                fd = open_in_root(rootfd, sub, shown=path)
            os.close(parent)
            parent = fd
        return parent
    except BaseException:
        if parent >= 0:
            os.close(parent)
        raise


def is_bind(m) -> bool:
    return m.type == "bind" or "bind" in m.options or "rbind" in m.options


def mount_id(fd: int) -> int:
    """The id of the mount a descriptor is on (``mnt_id`` in
    /proc/self/fdinfo/N, proc(5)); -1 when it cannot be read."""
    try:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            for line in f:
                if line.startswith("mnt_id:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


# Paths that name the resolving process's own descriptors: as a mount
# source they would bind pyrun's state dir, its root or its sockets.
_SELF_PREFIXES = ("/proc/self/", "/proc/thread-self/", "/dev/fd/", "/dev/stdin", "/dev/stdout",
                  "/dev/stderr")
_NS_NAMES = {"cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time", "time_for_children",
             "user", "uts"}


def source_path(m, bundle: str) -> str:
    """A bind source as the host sees it: relative ones are in the bundle."""
    return os.path.normpath(os.path.join(bundle, m.source))


def open_source(source: str, where: str) -> int:
    """O_PATH descriptor of a bind source, for the mount to be made from.

    The caller chooses sources, and is trusted to ask, not to be right: a
    source that resolves through a /proc magic link (``/proc/self/fd/N``,
    a host symlink to one) would name a descriptor of whichever process
    resolves it — pyrun's state dir, sockets, the container's root — so
    openat2(2) refuses magic links. The one exception is a namespace file
    (``/proc/PID/ns/net``, as ``ip netns`` binds), checked on the result."""
    if (source + "/").startswith(_SELF_PREFIXES) or source.startswith(_SELF_PREFIXES):
        raise ConfigError(f"{where}.source", f"{source}: names a descriptor of the runtime itself; refused")
    try:
        return sc.openat2(-100, source, sc.O_PATH, sc.RESOLVE_NO_MAGICLINKS, shown=source)  # AT_FDCWD
    except SyscallError as e:
        if e.errno != errno.ELOOP:
            raise ConfigError(f"{where}.source", f"{source}: {errno_text(e.errno)}") from None
    try:
        fd = os.open(source, os.O_PATH | os.O_CLOEXEC)
    except OSError as e:
        raise ConfigError(f"{where}.source", f"{source}: {errno_text(e)}") from None
    try:
        target = os.readlink(fd_path(fd))
    except OSError:
        target = ""
    if target.split(":[", 1)[0] in _NS_NAMES and target.endswith("]"):
        return fd
    os.close(fd)
    raise ConfigError(f"{where}.source", f"{source}: resolves through a /proc magic link to "
                      "something that is not a namespace; refused")


def mount_one(rootfd: int, index: int, m, bundle: str, cgroup_view=None, tree: int | None = None,
              cgroupns: bool = False, label: str | None = None) -> int:
    """Mount ``mounts[index]`` at its destination inside the rootfs.

    A bind's source is opened first (:func:`open_source`) and the mount made
    from that descriptor; ``tree`` is a detached copy the host side already
    made with open_tree(2) (root making a user-namespaced container: the
    container's root may not be able to reach the source), attached with
    move_mount(2). ``cgroup_view``: what a ``cgroup`` mount shows
    (pyrun.filesystem.cgroup_mount; ``cgroupns``: the container has its own cgroup
    namespace). ``label``: SELinux's linux.mountLabel (pyrun.security.lsm.mount_data).
    Returns the new mount's id for a bind, else -1."""
    where = f"mounts[{index}]"
    flags, propagation, data = parse_options(m.options)
    bind = is_bind(m)
    if label and not bind:
        from pyrun.security import lsm

        data = lsm.mount_data(data, m.type, label)
    src_fd = -1
    if bind:
        if not m.source:
            raise ConfigError(f"{where}.source", "a bind mount needs a source")
        src_fd = tree if tree is not None else open_source(source_path(m, bundle), where)
        src_is_dir = stat.S_ISDIR(os.fstat(src_fd).st_mode)
    else:
        src_is_dir = True
    fstype = m.type
    if not bind and fstype in ("proc", "sysfs"):
        _check_ordinary_dir(rootfd, m.destination, fstype, where)
    if os.path.normpath(m.destination) == "/dev":
        # read-only only once its nodes, links and mount points are made:
        # builder.remount_dev_readonly, at the end, as runc's finalizeRootfs
        flags &= ~sc.MS_RDONLY
    try:
        dest_fd = make_in_root(rootfd, m.destination, is_dir=src_is_dir)
    except BaseException as e:
        if src_fd >= 0 and tree is None:
            os.close(src_fd)
        if isinstance(e, SyscallError):
            raise ConfigError(f"{where}.destination", str(e)) from None
        raise
    new_id = -1
    try:
        target = fd_path(dest_fd)
        shown = m.destination
        if bind:
            if tree is not None:
                sc.attach_mount(tree, dest_fd, shown)
            else:
                sc.mount(fd_path(src_fd), target, None, sc.MS_BIND | (flags & sc.MS_REC), None, shown=shown)
            # Flags other than bind/rec need a second, remounting call.
            extra = flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT)
            # The fd still names the covered directory; reopen the mount.
            fd2 = open_in_root(rootfd, m.destination, shown=shown)
            try:
                new_id = mount_id(fd2)
                if extra:
                    remount(fd_path(fd2), extra, shown=shown)
            finally:
                os.close(fd2)
        elif fstype in ("cgroup", "cgroup2"):
            from pyrun.filesystem import cgroup_mount

            cgroup_mount.mount(dest_fd, lambda: open_in_root(rootfd, m.destination, shown=shown), flags,
                               cgroupns, cgroup_view or cgroup_mount.View(), shown, label)
        else:
            _mount_fs(m.source or fstype or "none", target, fstype, flags, data, shown, rootfd)
            if label and fstype == "mqueue":
                _label_mount_root(rootfd, m.destination, label)
        if propagation:
            fd2 = open_in_root(rootfd, m.destination, shown=shown)
            try:
                sc.mount(None, fd_path(fd2), None, propagation, None, shown=shown)
            finally:
                os.close(fd2)
        _after_mount(rootfd, m, dest_fd, bind, where)
    finally:
        os.close(dest_fd)
        if src_fd >= 0 and tree is None:
            os.close(src_fd)
    return new_id


def _label_mount_root(rootfd: int, destination: str, label: str) -> None:
    """An mqueue is mounted without ``context=`` and labelled after (runc:
    "older kernels do not support labeling of /dev/mqueue"): the root of
    the mount now at ``destination``, through its descriptor."""
    from pyrun.security import lsm

    fd = open_in_root(rootfd, destination, shown=destination)
    try:
        lsm.label_root(fd_path(fd), label)
    finally:
        os.close(fd)


def _check_ordinary_dir(rootfd: int, destination: str, fstype: str, where: str) -> None:
    """procfs and sysfs go on a directory, never through the image's
    symlink (the mount would land where the link points): runc's check,
    and its words. A missing destination is made by make_in_root."""
    try:
        fd = sc.openat2(rootfd, destination.lstrip("/") or ".", sc.O_PATH | os.O_NOFOLLOW,
                        sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS, shown=destination)
    except SyscallError as e:
        if e.errno == errno.ENOENT:
            return
        raise ConfigError(f"{where}.destination", str(e)) from None
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            raise ConfigError(f"{where}.destination",
                              f'{destination}: filesystem "{fstype}" must be mounted on ordinary directory')
    finally:
        os.close(fd)


def dev_readonly(mounts_list) -> int:
    """The flags of a read-only ``/dev`` mount (0 if none is read-only):
    runc mounts it writable, and remounts it read-only last."""
    for m in mounts_list:
        if os.path.normpath(m.destination) == "/dev":
            flags = parse_options(m.options)[0]
            return flags if flags & sc.MS_RDONLY else 0
    return 0


def clone_sources(mounts_list, bundle: str) -> dict[int, int]:
    """Host side, as root, for a container with its own user namespace:
    each bind source as a detached mount (open_tree(2) ``OPEN_TREE_CLONE``),
    made while pyrun still has the host's credentials. The container's root
    (a subordinate uid) may be unable to reach a source root can (runc does
    the same). Index -> descriptor; the caller closes them."""
    trees: dict[int, int] = {}
    try:
        for i, m in enumerate(mounts_list):
            if not is_bind(m) or not m.source:
                continue
            fd = open_source(source_path(m, bundle), f"mounts[{i}]")
            try:
                recursive = bool(parse_options(m.options)[0] & sc.MS_REC)
                trees[i] = sc.clone_mount(fd, recursive, m.destination)
            finally:
                os.close(fd)
    except BaseException:
        for fd in trees.values():
            os.close(fd)
        raise
    return trees


def idmap_sources(spec, indexes: list[int], trees: dict[int, int]) -> None:
    """Host side, as root, before fork(2): the detached tree of each
    idmapped bind (``trees[i]``: made by :func:`clone_sources` for a
    container with a user namespace, else here with open_tree(2)
    OPEN_TREE_CLONE) gets MOUNT_ATTR_IDMAP with a user namespace holding
    the mount's mappings (the container's own for idmap/ridmap). Here, as
    runc's parent does: the kernel idmaps the host's filesystems only for
    CAP_SYS_ADMIN in the initial user namespace, which PID 1 never has.
    PID 1 attaches each tree as it does any (:func:`mount_one`)."""
    try:
        for i in indexes:
            m, where = spec.mounts[i], f"mounts[{i}]"
            if i not in trees:
                fd = open_source(source_path(m, spec.bundle), where)
                try:
                    recursive = bool(parse_options(m.options)[0] & sc.MS_REC)
                    trees[i] = sc.clone_mount(fd, recursive, m.destination)
                finally:
                    os.close(fd)
            maps = [m.uid_mappings or spec.linux.uid_mappings, m.gid_mappings or spec.linux.gid_mappings]
            uid, gid = ([[x.container_id, x.host_id, x.size] for x in ms] for ms in maps)
            userns = mount_attrs.userns_with_maps(uid, gid)
            try:
                mount_attrs.idmap_tree(trees[i], userns, "ridmap" in m.options, m.destination, where)
            finally:
                os.close(userns)
    except BaseException:
        for fd in trees.values():
            os.close(fd)
        trees.clear()
        raise


def _after_mount(rootfd: int, m, dest_fd: int, bind: bool, where: str) -> None:
    """What follows the mount: tmpcopyup (pyrun.filesystem.tmpcopyup), and
    mount_setattr(2) steps (pyrun.filesystem.mount_attrs): the idmap of a tmpfs, the
    recursive ``r*`` options."""
    rattrs = mount_attrs.recursive_attrs(m.options)
    idmap = not bind and mount_attrs.wants_idmap(m)
    copyup = not bind and "tmpcopyup" in m.options
    if rattrs is None and not idmap and not copyup:
        return
    fd2 = open_in_root(rootfd, m.destination, shown=m.destination)
    try:
        if copyup:
            from pyrun.filesystem import tmpcopyup

            tmpcopyup.copy_up(dest_fd, fd2, shown=m.destination)
        if idmap:
            mount_attrs.idmap_in_place(fd2, dest_fd, m, shown=m.destination, where=where)
            os.close(fd2)
            fd2 = -1
            fd2 = open_in_root(rootfd, m.destination, shown=m.destination)  # the idmapped copy
        if rattrs is not None:
            mount_attrs.set_recursive(fd2, rattrs, shown=m.destination)
    finally:
        if fd2 >= 0:
            os.close(fd2)


def _mount_fs(source: str, target: str, fstype: str | None, flags: int, data: str,
              shown: str, rootfd: int) -> None:
    try:
        sc.mount(source, target, fstype, flags, data or None, shown=shown)
        return
    except SyscallError as e:
        # In a user namespace the kernel refuses sysfs without a network
        # namespace of our own: do what runc does and bind the host's tree
        # instead, read-only. (cgroup mounts: pyrun.filesystem.cgroup_mount.)
        fallback = {"sysfs": "/sys"}.get(fstype or "")
        if e.errno not in (errno.EPERM, errno.EBUSY) or fallback is None:
            raise
        log.debug_msg(f"mount {fstype} at {shown}: {e}; binding {fallback} instead")
    sc.mount(fallback, target, None, sc.MS_BIND | sc.MS_REC, None, shown=shown)
    fd2 = open_in_root(rootfd, shown, shown=shown)
    try:
        remount(fd_path(fd2), flags | sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC,
                shown=shown)
    finally:
        os.close(fd2)
