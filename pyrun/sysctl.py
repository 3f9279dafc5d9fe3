"""``linux.sysctl``: kernel parameters of the container's own namespaces.

Only namespaced keys are accepted (net.*, kernel.shm*, kernel.msg*,
kernel.sem, fs.mqueue.*, kernel.hostname/domainname): ``spec.py`` refuses
the rest before anything runs, as runc does, since writing a global key
would change the host. Written after pivot_root through the container's own
/proc, before /proc/sys is made read-only.
"""

from __future__ import annotations

from pyrun.errors import PyrunError


def write_sysctls(sysctl: dict[str, str]) -> None:
    for key, value in sysctl.items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError as e:
            raise PyrunError(f"linux.sysctl[{key!r}]: write {path}: {e.strerror}") from None
