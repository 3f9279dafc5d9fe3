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
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": sorted(list(_FLAGS) + list(PROPAGATION)),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": [name for name, number in CAPABILITIES.items() if number <= last],
            # cgroup v2 through cgroupfs, with device rules as a BPF program
            # (rootful); "v2" says what the code does, not what this host has.
            "cgroup": {"v1": False, "v2": True, "systemd": False, "systemdUser": False, "rdma": True},
            "seccomp": _seccomp(),
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
        },
        "annotations": {
            "org.pyrun.init": "true|false: run pyrun's native init as PID 1 (default true)",
            "org.pyrun.rootfs": "overlay|direct: per-container writable layer or the bundle itself",
            "org.pyrun.cgroups": "ignore-limits: where no cgroup v2 can serve linux.resources, warn and run",
            "org.pyrun.network": "none|host|bridge|slirp4netns: the network mode (default from the namespaces)",
            "org.pyrun.ports": "[HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp],...: published ports",
            "org.pyrun.network.allow-host-loopback": "true: slirp4netns's 10.0.2.2 reaches the host's 127.0.0.1",
        },
    }


def _seccomp() -> dict:
    from pyrun import seccomp

    return seccomp.supported()
