"""AppArmor and SELinux: the label the container's program is executed with.

Both take a process's next label from a write to its own
``/proc/self/attr`` files: "exec PROFILE" to ``attr/apparmor/exec``
(``attr/exec`` on kernels without the per-LSM directory), the SELinux
context to ``attr/exec``; the kernel applies it at the next execve(2).

The kernel accepts the write only from the process that opened the file,
with the memory it had then (proc_pid_attr_write: the file remembers the
opener's mm), so it cannot be opened here and written after an execve(2).
The sealed pyrun-init (native/init.c ``-l``) opens and writes it, first
thing, before the wait on exec.fifo (as runc's init writes it before its
own wait): pyrun-init itself, executed from a memfd, is never confined,
only what it executes is (the startContainer hooks and the program, as
under runc). It opens it in the container's /proc as the container's
mounts cannot redirect it (CVE-2025-52881 class): /proc checked to be a
procfs with fstatfs(2), then ``self/attr/NAME`` resolved with openat2(2)
beneath it, no mount crossed, no symlink but ``self``.

``check`` asks the kernel first, on the host, in a child of pyrun's that
opens its own attr file through the host's procfs and writes the label:
a profile that is not loaded fails ``create`` in one line.

SELinux has no directory of its own under ``attr/`` (the kernel has one for
AppArmor and Smack only): its files are the shared ``attr/exec`` and
``attr/keycreate``, which no other major LSM can hold beside it (SELinux
and AppArmor exclude each other). Besides the program's label, as runc:

- ``keycreate``: the label of the session keyring pyrun joins for the
  container (keyctl(2) KEYCTL_JOIN_SESSION_KEYRING), written by the process
  that joins it, just before, through a procfs descriptor taken before the
  container's mounts exist (create) or before setns(2) (exec). execve(2)
  clears it (selinux_bprm_creds_for_exec), so nothing else is labelled so.
- ``linux.mountLabel``: the ``context="LABEL"`` option of the filesystems
  pyrun mounts (:func:`mount_data`: tmpfs, devpts and the other mounts
  runc labels; proc, sysfs, cgroup and binds take none), and the
  ``security.selinux`` attribute of an mqueue's root (runc: "older kernels
  do not support labeling of /dev/mqueue").

Where the host has neither LSM on, the fields mean nothing and are ignored
(a line in ``--debug``). runc 1.1 refuses ``selinuxLabel`` there ("selinux
label is specified in config, but selinux is disabled or not supported")
and fails the mounts a ``mountLabel`` labels (EINVAL).
"""

from __future__ import annotations

import errno
import os

from pyrun.log import log
from pyrun.kernel import syscalls as sc
from pyrun.kernel.forked import run_forked
from pyrun.errors import ConfigError, PyrunError, SyscallError, errno_text

APPARMOR_ENABLED = "/sys/module/apparmor/parameters/enabled"
APPARMOR_PROFILES = "/sys/kernel/security/apparmor/profiles"
SELINUX_ENFORCE = "/sys/fs/selinux/enforce"  # selinuxfs is mounted where SELinux is on
SELINUX_CONTEXT = "/sys/fs/selinux/context"  # a write of an unknown context: EINVAL
SELINUX_XATTR = "security.selinux"
# Filesystems runc mounts without a context= option (rootfs_linux.go
# mountToRootfs): "Selinux kernels do not support labeling of /proc or
# /sys"; an mqueue gets the attribute instead; cgroup hierarchies none.
_UNLABELLED = frozenset({"proc", "sysfs", "mqueue", "cgroup", "cgroup2", "bind"})

_RESOLVE = sc.RESOLVE_BENEATH | sc.RESOLVE_NO_MAGICLINKS | sc.RESOLVE_NO_SYMLINKS | sc.RESOLVE_NO_XDEV


def apparmor_enabled() -> bool:
    try:
        with open(APPARMOR_ENABLED, "rb") as f:
            return f.read(1) == b"Y"
    except OSError:
        return False


def selinux_enabled() -> bool:
    return os.path.exists(SELINUX_ENFORCE)


def exec_label(process) -> tuple[str, str] | None:
    """What pyrun-init writes before execve(2): (the attr file under
    /proc/self/attr, the text), or None where nothing applies."""
    if process.apparmor_profile and apparmor_enabled():
        return "apparmor/exec", "exec " + process.apparmor_profile
    if process.selinux_label and selinux_enabled():
        return "exec", process.selinux_label
    return None


def mount_label(linux) -> str | None:
    """``linux.mountLabel`` where SELinux is on, else None (ignored). A
    context the loaded policy does not know fails here, in one line, rather
    than as the first mount's EINVAL: selinuxfs's ``context`` file checks
    it (what libselinux's security_check_context(3) writes to)."""
    if not linux.mount_label:
        return None
    if not selinux_enabled():
        log.debug_msg(f"linux.mountLabel {linux.mount_label!r} ignored: SELinux is not enabled on this host")
        return None
    try:
        fd = os.open(SELINUX_CONTEXT, os.O_RDWR | os.O_CLOEXEC)
        try:
            os.write(fd, linux.mount_label.encode())
        finally:
            os.close(fd)
    except OSError as e:
        why = "not a valid context of the loaded policy" if e.errno == errno.EINVAL else "refused"
        raise ConfigError("linux.mountLabel", f"{linux.mount_label!r}: {why}: {errno_text(e)}") from None
    return linux.mount_label


def mount_data(data: str, fstype: str | None, label: str | None) -> str:
    """mount(2)'s data with the ``context=`` option SELinux labels every
    file of the new mount with (mount(8) "context="; the quotes keep the
    commas of an MCS range such as ``s0:c1,c2`` in one option, and the
    kernel strips them). Unchanged for the types runc leaves unlabelled."""
    if not label or (fstype or "") in _UNLABELLED:
        return data
    option = f'context="{label}"'
    return f"{data},{option}" if data else option


def label_root(path: str, label: str) -> None:
    """The ``security.selinux`` attribute of a mount's root (setxattr(2)),
    for an mqueue, mounted without ``context=`` as runc does."""
    try:
        os.setxattr(path, SELINUX_XATTR, label.encode())
    except OSError as e:
        raise SyscallError(f"setxattr({SELINUX_XATTR})", e.errno or errno.EIO) from None


def keyring_label(process) -> str | None:
    """The label of the container's session keyring: process.selinuxLabel
    where SELinux is on (as runc), else None."""
    return process.selinux_label if process.selinux_label and selinux_enabled() else None


def set_keycreate(proc_fd: int, label: str) -> None:
    """The label of the keys this process creates next (the session
    keyring), written to our own ``attr/keycreate`` beneath ``proc_fd``
    (a procfs checked by :func:`open_proc`)."""
    fd = open_exec_attr(proc_fd, ("keycreate",))
    try:
        os.write(fd, label.encode())
    except OSError as e:
        raise ConfigError("process.selinuxLabel", f"{label!r}: keycreate: {errno_text(e)}") from None
    finally:
        os.close(fd)


def check(process) -> tuple[str, str] | None:
    """Before anything runs: a profile that is not loaded fails here, in
    one line naming it, rather than in pyrun-init once ``create`` has
    returned. The kernel is asked the way pyrun-init will ask it: a child
    writes the label to its own attr file and exits (the list of loaded
    profiles is readable by root only)."""
    for path, value, on in (("process.apparmorProfile", process.apparmor_profile, apparmor_enabled),
                            ("process.selinuxLabel", process.selinux_label, selinux_enabled)):
        if value and not on():
            log.debug_msg(f"{path} {value!r} ignored: not enabled on this host")
    label = exec_label(process)
    if label is not None:
        err = _try_write(*label)
        if err:
            path = "process.apparmorProfile" if label[1].startswith("exec ") else "process.selinuxLabel"
            value = process.apparmor_profile if label[1].startswith("exec ") else process.selinux_label
            if err == errno.ENOENT:
                why = "no such profile is loaded"
            elif err == errno.EINVAL and path == "process.selinuxLabel":
                why = "not a valid context of the loaded policy (EINVAL)"
            else:
                why = f"refused: {errno_text(err)}"
            raise ConfigError(path, f"{value!r}: {why}")
    return label


def _try_write(name: str, text: str) -> int:
    """The errno of writing ``text`` to our attr file, in a child that then
    exits (0: it would work). The child's label is all it changes."""
    def body() -> bytes:
        code = 0
        try:
            proc = open_proc()
            fd = open_exec_attr(proc, (name, "exec") if name == "apparmor/exec" else (name,))
            os.write(fd, text.encode())
        except SyscallError as e:
            code = e.errno
        except OSError as e:
            code = e.errno or errno.EPERM
        except BaseException:  # noqa: BLE001
            code = errno.EPERM
        return code.to_bytes(4, "little")

    _, got = run_forked(body)
    return int.from_bytes(got, "little") if len(got) == 4 else 1


def open_proc() -> int:
    """O_PATH descriptor of the host's /proc, checked to be a procfs: taken
    before the container's mounts exist (or before setns(2), for exec)."""
    fd = os.open("/proc", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    if sc.fs_type(fd) != sc.PROC_SUPER_MAGIC:
        os.close(fd)
        raise PyrunError("/proc is not a procfs: cannot apply an AppArmor or SELinux label safely")
    return fd


def open_exec_attr(proc_fd: int, names: tuple[str, ...]) -> int:
    """Our own attr file, opened for writing through the host's procfs:
    ``self`` (the process calling, as it is in that procfs's pid namespace)
    then ``attr/NAME`` beneath it, no symlink, no mount crossed; fstatfs(2)
    must say procfs. The first of ``names`` the kernel has."""
    self_fd = sc.openat2(proc_fd, "self", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC,
                         sc.RESOLVE_BENEATH | sc.RESOLVE_NO_MAGICLINKS | sc.RESOLVE_NO_XDEV, shown="/proc/self")
    try:
        for i, name in enumerate(names):
            try:
                fd = sc.openat2(self_fd, "attr/" + name, os.O_WRONLY | os.O_CLOEXEC, _RESOLVE,
                                shown="/proc/self/attr/" + name)
            except SyscallError as e:
                if i + 1 < len(names) and e.errno == errno.ENOENT:  # a kernel without the per-LSM directory
                    continue
                raise
            if sc.fs_type(fd) != sc.PROC_SUPER_MAGIC:
                os.close(fd)
                raise PyrunError(f"/proc/self/attr/{name} is not on a procfs")
            return fd
    finally:
        os.close(self_fd)
    raise PyrunError("no /proc/self/attr file to write the label to")  # names is never empty
