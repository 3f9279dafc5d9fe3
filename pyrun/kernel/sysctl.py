"""``linux.sysctl``: kernel parameters of the container's own namespaces.

Only namespaced keys are accepted (net.*, kernel.shm*, kernel.msg*,
kernel.sem, fs.mqueue.*, kernel.hostname/domainname): ``spec.py`` refuses
the rest before anything runs, as runc does, since writing a global key
would change the host.

Written after pivot_root, but not through the container's /proc: its mounts
(the config's binds, an image's symlinks) could redirect a path such as
/proc/sys/net/ipv4/ip_forward into a host file (runc CVE-2025-52881). The
writes go through a descriptor of the host's procfs opened before any of
the container's mounts existed, resolved with openat2(2) beneath it, with
no symlink and no mount crossed. A sysctl file answers for the namespaces of
the process that opens it (proc_sys(5)), so these are the container's.
"""

from __future__ import annotations

import os

from pyrun.kernel import syscalls as sc
from pyrun.errors import PyrunError, SyscallError, errno_text

_RESOLVE = sc.RESOLVE_BENEATH | sc.RESOLVE_NO_MAGICLINKS | sc.RESOLVE_NO_SYMLINKS | sc.RESOLVE_NO_XDEV


def write_sysctls(sysctl: dict[str, str], proc_fd: int) -> None:
    for key, value in sysctl.items():
        rel = "sys/" + key.replace(".", "/")
        try:
            fd = sc.openat2(proc_fd, rel, os.O_WRONLY | os.O_TRUNC, _RESOLVE, shown="/proc/" + rel)
        except SyscallError as e:
            raise PyrunError(f"linux.sysctl[{key!r}]: {e}") from None
        try:
            os.write(fd, value.encode())
        except OSError as e:
            raise PyrunError(f"linux.sysctl[{key!r}]: write /proc/{rel}: {errno_text(e)}") from None
        finally:
            os.close(fd)
