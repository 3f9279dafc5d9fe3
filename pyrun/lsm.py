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

Where the host has neither LSM on, the fields mean nothing and are ignored,
as runc does.
"""

from __future__ import annotations

import errno
import os

from pyrun.log import log
from pyrun import syscalls as sc
from pyrun.errors import ConfigError, PyrunError, SyscallError, errno_text

APPARMOR_ENABLED = "/sys/module/apparmor/parameters/enabled"
APPARMOR_PROFILES = "/sys/kernel/security/apparmor/profiles"
SELINUX_ENFORCE = "/sys/fs/selinux/enforce"  # selinuxfs is mounted where SELinux is on

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
            why = "no such profile is loaded" if err == errno.ENOENT else f"refused: {errno_text(err)}"
            raise ConfigError(path, f"{value!r}: {why}")
    return label


def _try_write(name: str, text: str) -> int:
    """The errno of writing ``text`` to our attr file, in a child that then
    exits (0: it would work). The child's label is all it changes."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            proc = open_proc()
            fd = open_exec_attr(proc, (name, "exec") if name == "apparmor/exec" else (name,))
            os.write(fd, text.encode())
        except SyscallError as e:
            code = e.errno
        except OSError as e:
            code = e.errno or errno.EPERM
        except BaseException:  # noqa: BLE001
            code = errno.EPERM
        os.write(w, code.to_bytes(4, "little"))
        os._exit(0)
    os.close(w)
    try:
        got = os.read(r, 4)
    finally:
        os.close(r)
        os.waitpid(pid, 0)
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
