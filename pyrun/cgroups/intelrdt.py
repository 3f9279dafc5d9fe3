"""``linux.intelRdt`` (config-linux.md "IntelRdt"): cache and memory
bandwidth allocation through the resctrl filesystem (Documentation/
arch/x86/resctrl.rst), mounted at /sys/fs/resctrl.

pyrun does not program resctrl yet. A config that asks for it is refused
before anything is made, naming the field: running the container without
the allocation would claim an isolation that is not there.
"""

from __future__ import annotations

from pyrun.errors import ConfigError

RESCTRL = "/sys/fs/resctrl"


def resctrl_mounted(mountinfo: str = "/proc/self/mountinfo") -> bool:
    try:
        with open(mountinfo) as f:
            return any(line.split(" - ", 1)[-1].startswith("resctrl ") for line in f)
    except OSError:
        return False


def check(rdt: dict) -> None:
    """Refuse ``linux.intelRdt``: the reason depends on the host."""
    fields = ", ".join(sorted(rdt)) or "{}"
    if not resctrl_mounted():
        raise ConfigError("linux.intelRdt", f"({fields}) needs the resctrl filesystem, and {RESCTRL} "
                          "is not mounted (no Intel RDT / AMD PQoS here, or mount -t resctrl resctrl "
                          f"{RESCTRL})")
    raise ConfigError("linux.intelRdt", f"({fields}) is not supported by pyrun yet (resctrl is mounted, "
                      "but pyrun does not program it)")
