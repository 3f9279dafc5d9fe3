"""A ``type: cgroup`` mount: the container's own cgroups, never the host's tree.

A fresh cgroup2 mount without a cgroup namespace, or a bind of a
hierarchy's root, shows every cgroup on the host (other containers',
docker's, k8s.io's) and their limits. What the container gets instead,
as under runc (libcontainer/rootfs_linux.go, mountCgroupV1/V2):

* cgroup v1 and hybrid hosts: a tmpfs (nosuid, nodev, noexec, mode 755)
  at the destination, and in it one directory per v1 hierarchy, named as
  the host names its mount point (``memory``, ``cpu,cpuacct``,
  ``systemd``), with the container's own cgroup of that hierarchy bound
  there, read-only unless the config says rw. Co-mounted controllers get
  a symlink each (``cpu`` → ``cpu,cpuacct``). With a cgroup namespace of
  its own, each is a fresh mount of the hierarchy instead (its root is
  then the namespace's). A hybrid host's cgroup2 tree is left out, as runc
  leaves it out.
* cgroup v2: with a cgroup namespace, a fresh cgroup2 mount (the
  namespace's root); without one, the container's own cgroup bound there.

Where the container has no cgroup (rootless on a v1 host), the caller's own
cgroup is shown, unless that is a hierarchy's root: then the directory
stays empty.

The host side (:func:`view`) decides what to bind, before the fork; PID 1
(:func:`mount`) opens each source, checks it is a cgroup filesystem
(fstatfs(2)) and binds it from that descriptor.
"""

from __future__ import annotations

import errno
import os

from pyrun.kernel import syscalls as sc
from pyrun.errors import PyrunError, SyscallError
from pyrun.record import field, record

MOUNT = "/sys/fs/cgroup"
CGROUP_SUPER_MAGIC = 0x27E0EB
CGROUP2_SUPER_MAGIC = 0x63677270
_TMPFS_FLAGS = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC  # runc's defaultMountFlags


@record
class Hierarchy:
    """One cgroup v1 hierarchy as the container sees it."""

    name: str      # the host's mount point's name: "memory", "cpu,cpuacct", "systemd"
    source: str    # the container's cgroup directory in it on the host; "" for none
    options: str   # for a fresh mount in a cgroup namespace: "memory", "none,name=systemd"


@record
class View:
    """What a ``type: cgroup`` mount shows: :func:`view` decides it."""

    v1: bool = False
    hierarchies: list = field(default_factory=list)  # v1: [Hierarchy]
    v2_dir: str = ""                                   # v2: the directory to bind; "" for none


def view(cg) -> View:
    """Host side: the container's cgroup ``cg`` (None: it has none) in each
    hierarchy, for :func:`mount`."""
    from pyrun import cgroups

    if cgroups.available():
        if cg is not None:
            return View(v2_dir=cgroups.directory_of(cgroups.record_of(cg)))
        return View(v2_dir=_own_v2())
    from pyrun.cgroups import v1

    dirs = getattr(cg, "dirs", None) or {}
    own = v1.own_cgroups()
    out = []
    for mnt, ctrls in v1.hierarchies().items():
        if v1.UNIFIED in ctrls:
            continue  # a hybrid host's cgroup2 tree: runc mounts none of it
        source = dirs.get(mnt)
        if source is None:
            rel = own.get(ctrls, "/")
            source = "" if rel == "/" else os.path.normpath(f"{mnt}/{rel}")
        named = sorted(c for c in ctrls if c.startswith("name="))
        options = ",".join((sorted(ctrls - set(named)) or ["none"]) + named)
        out.append(Hierarchy(os.path.basename(mnt), source, options))
    return View(v1=True, hierarchies=out)


def _own_v2() -> str:
    """The caller's cgroup2 directory, or "" when that is the root."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                rel = line[3:].strip()
                return "" if rel == "/" else os.path.normpath(MOUNT + rel)
    return ""


def mount(target_fd: int, reopen, flags: int, cgroupns: bool, v: View, shown: str,
          label: str | None = None) -> None:
    """PID 1: the cgroup mount at ``target_fd`` (O_PATH of its destination);
    ``reopen()`` gives an O_PATH of whatever is mounted there now.
    ``flags``: the config's (ro, nosuid, ...). ``label``: SELinux's
    linux.mountLabel, for the tmpfs pyrun mounts (as runc's: the cgroup
    hierarchies themselves take none)."""
    if v.v1:
        _mount_v1(target_fd, reopen, flags, cgroupns, v, shown, label)
    else:
        _mount_v2(target_fd, reopen, flags, cgroupns, v, shown, label)


def _tmpfs_data(data: str, label: str | None) -> str:
    if not label:
        return data
    from pyrun.security import lsm

    return lsm.mount_data(data, "tmpfs", label)


def _fresh(source: str, target: str, fstype: str, flags: int, data: str | None, shown: str) -> bool:
    """A new mount of a cgroup hierarchy; False where the kernel refuses it
    (a user namespace that does not own the cgroup namespace)."""
    try:
        sc.mount(source, target, fstype, flags, data, shown=shown)
        return True
    except SyscallError as e:
        if e.errno not in (errno.EPERM, errno.EBUSY, errno.EINVAL):
            raise
        return False


def _bind_cgroup(source: str, target_fd: int, reopen, flags: int, magic: int, shown: str) -> None:
    """Bind the host's cgroup directory ``source``, checked by descriptor to
    be on a cgroup filesystem, then apply the config's flags to the bind."""
    from pyrun.kernel.syscalls import fd_path, remount

    try:
        src = os.open(source, sc.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise SyscallError(f"open({source!r})", e.errno) from None
    try:
        if sc.fs_type(src) != magic:
            raise PyrunError(f"{shown}: {source} is not a cgroup filesystem: not binding it")
        sc.bind_fd(src, target_fd, shown, recursive=True)
    finally:
        os.close(src)
    fd = reopen()
    try:
        remount(fd_path(fd), flags & ~(sc.MS_REC | sc.MS_BIND), shown=shown)
    finally:
        os.close(fd)


def _mount_v2(target_fd: int, reopen, flags: int, cgroupns: bool, v: View, shown: str,
              label: str | None = None) -> None:
    from pyrun.kernel.syscalls import fd_path

    target = fd_path(target_fd)
    if cgroupns and _fresh("cgroup2", target, "cgroup2", flags, None, shown):
        return
    if v.v2_dir:
        _bind_cgroup(v.v2_dir, target_fd, reopen, flags, CGROUP2_SUPER_MAGIC, shown)
    else:  # the caller's cgroup is the root: an empty directory, nothing of the host
        sc.mount("tmpfs", target, "tmpfs", _TMPFS_FLAGS | sc.MS_RDONLY, _tmpfs_data("mode=555", label),
                 shown=shown)


def _mount_v1(target_fd: int, reopen, flags: int, cgroupns: bool, v: View, shown: str,
              label: str | None = None) -> None:
    from pyrun.kernel.syscalls import fd_path

    sc.mount("tmpfs", fd_path(target_fd), "tmpfs", _TMPFS_FLAGS, _tmpfs_data("mode=755", label), shown=shown)
    top = reopen()  # the new tmpfs: ours, empty, so nothing in it can be a link of the image's
    try:
        for h in v.hierarchies:
            where = f"{shown}/{h.name}"
            os.mkdir(h.name, 0o755, dir_fd=top)
            sub = os.open(h.name, sc.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=top)
            try:
                source = "systemd" if h.name == "systemd" else "cgroup"  # the device column runc shows
                if cgroupns and _fresh(source, fd_path(sub), "cgroup", flags & ~sc.MS_REC, h.options, where):
                    continue
                if h.source:
                    def again(name=h.name):
                        return os.open(name, sc.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=top)

                    _bind_cgroup(h.source, sub, again, flags, CGROUP_SUPER_MAGIC, where)
            finally:
                os.close(sub)
        for h in v.hierarchies:
            if "," in h.name:  # co-mounted controllers: a link for each name
                for ctrl in h.name.split(","):
                    try:
                        os.symlink(h.name, ctrl, dir_fd=top)
                    except FileExistsError:
                        pass
    finally:
        os.close(top)
