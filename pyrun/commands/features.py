"""``pyrun features``: what this build really supports, in runtime-spec
1.3's shape (features.md, features-linux.md), as runc prints it. Only what
is implemented is claimed: every list is read from the tables the code
itself uses (tests/test_spec13.py checks each entry against the parser)."""

from __future__ import annotations

from pyrun import OCI_VERSION


def features() -> dict:
    from pyrun.security.capabilities import last_cap
    from pyrun.filesystem.mount_attrs import IDMAP_OPTIONS, RECURSIVE
    from pyrun.filesystem.mounts import _FLAGS, PROPAGATION
    from pyrun.kernel.namespaces import FLAGS as NAMESPACES
    from pyrun.config.spec_names import CAPABILITIES
    from pyrun.config.process_attrs import MPOL_FLAGS, MPOL_MODES

    last = last_cap()

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": sorted([*_FLAGS, *PROPAGATION, *RECURSIVE, *IDMAP_OPTIONS]),
        "linux": {
            "namespaces": sorted(NAMESPACES),
            "capabilities": [name for name, number in CAPABILITIES.items() if number <= last],
            # cgroupfs, v2 (device rules as a BPF program) and v1/hybrid
            # (runc's layout, devices.deny/allow), rootful; rootless on v1
            # has none, as with runc. What the code does, not what this host
            # has. rdma: rdma.max, v1 and v2.
            "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": True, "rdma": True},
            "seccomp": _seccomp(),
            # pyrun.security.lsm applies process.apparmorProfile, process.selinuxLabel
            # and linux.mountLabel ("irrelevant to the availability of
            # AppArmor/SELinux on the host", features-linux.md)
            "apparmor": {"enabled": True},
            "selinux": {"enabled": True},
            # refused with its path (pyrun.cgroups.intelrdt): resctrl is not programmed
            "intelRdt": {"enabled": False},
            "memoryPolicy": {"modes": sorted(MPOL_MODES), "flags": sorted(MPOL_FLAGS)},
            # binds (rootful, on the host side) and tmpfs (also rootless)
            "mountExtensions": {"idmap": {"enabled": True}},
            "netDevices": {"enabled": True},
        },
        "annotations": {
            "org.pyrun.init": "true|false: run pyrun's native init as PID 1 (default false, as runc; "
                              "pyrun spec writes true)",
            "org.pyrun.rootfs": "overlay|direct: per-container writable layer or the bundle itself "
                                "(default direct, as runc; pyrun spec writes overlay)",
            "org.pyrun.cgroups": "ignore-limits: where no cgroup can serve linux.resources, run without them",
            "org.pyrun.network": "none|host|bridge|pasta|slirp4netns|slirp: the network mode "
                                 "(default from the namespaces)",
            "org.pyrun.ports": "[HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp],...: published ports",
            "org.pyrun.network.allow-host-loopback": "true: slirp4netns's 10.0.2.2 reaches the host's 127.0.0.1",
            "org.pyrun.checkpoint": "pyrun checkpoint / pyrun restore through CRIU (root; not with --init)",
        },
    }


def _seccomp() -> dict:
    from pyrun.security import seccomp

    return seccomp.supported()
