"""``pyrun features``: what this build really supports, in runc's JSON shape
(runtime-spec features.md). Only what is implemented is claimed."""

from __future__ import annotations

from pyrun import OCI_VERSION


def features() -> dict:
    from pyrun.capabilities import last_cap
    from pyrun.mounts import _FLAGS, PROPAGATION
    from pyrun.spec import CAPABILITIES

    last = last_cap()

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": [],
        "mountOptions": sorted(list(_FLAGS) + list(PROPAGATION)),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": [name for name, number in CAPABILITIES.items() if number <= last],
            "cgroup": {"v1": False, "v2": False, "systemd": False, "systemdUser": False, "rdma": False},
            "seccomp": _seccomp(),
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
        },
        "annotations": {
            "org.pyrun.init": "true|false: run pyrun's native init as PID 1 (default true)",
            "org.pyrun.rootfs": "overlay|direct: per-container writable layer or the bundle itself",
        },
    }


def _seccomp() -> dict:
    from pyrun import seccomp

    return seccomp.supported()
