"""The config.json that ``pyrun spec`` writes: runc's example spec.

Mirrors runc's ``libcontainer/specconv/example.go`` (``Example`` and
``ToRootless``), as of runc 1.2+, with three deliberate choices:

* ``hostname`` is ``"pyrun"`` instead of ``"runc"``;
* ``ociVersion`` is the spec version pyrun implements (``pyrun.OCI_VERSION``);
* no ``ambient`` capability set.  runc 1.1 wrote ambient caps without the
  matching inheritable ones; the kernel refuses to raise those (an ambient cap
  must also be inheritable), runc only "applied" them because its capability
  library swallowed the error, and runc >= 1.2 dropped them (runc PR #4367).

Everything here is plain data: no syscalls except reading the effective
uid/gid (rootless mappings) and whether /sys/fs/cgroup is cgroup v2.
"""

from __future__ import annotations

import os

from pyrun import OCI_VERSION

DEFAULT_HOSTNAME = "pyrun"

# runc's example: the process keeps only these three capabilities.
DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]

DEFAULT_ENV = [
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "TERM=xterm",
]

DEFAULT_MASKED_PATHS = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
    "/sys/devices/virtual/tpm",
]

DEFAULT_READONLY_PATHS = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
]


def _example() -> dict:
    """A fresh copy of runc's ``Example()`` (key order = runc's output order)."""
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": list(DEFAULT_ENV),
            "cwd": "/",
            "capabilities": {
                "bounding": list(DEFAULT_CAPS),
                "effective": list(DEFAULT_CAPS),
                "permitted": list(DEFAULT_CAPS),
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": DEFAULT_HOSTNAME,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": [
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620",
                    "gid=5",
                ],
            },
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            },
            {
                "destination": "/dev/mqueue",
                "type": "mqueue",
                "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"],
            },
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            },
            {
                "destination": "/sys/fs/cgroup",
                "type": "cgroup",
                "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
            },
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"},
                {"type": "network"},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "mount"},
            ],
            "maskedPaths": list(DEFAULT_MASKED_PATHS),
            "readonlyPaths": list(DEFAULT_READONLY_PATHS),
        },
    }


def is_cgroup2_unified() -> bool:
    """True when /sys/fs/cgroup is a cgroup v2 (unified) mount.

    runc asks statfs for CGROUP2_SUPER_MAGIC; the root cgroup.controllers
    file exists exactly in unified mode (hybrid mode has it one level down).
    """
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def _to_rootless(spec: dict, uid: int, gid: int) -> None:
    """runc's ``specconv.ToRootless``, in place.

    * drop the network namespace (and any user namespace), then append a
      fresh user namespace mapping container root to ``uid``/``gid`` (size 1);
    * replace the /sys mount by a read-only rbind of the host's /sys (an
      unprivileged user cannot mount sysfs without a private netns);
    * strip ``uid=``/``gid=`` options from every mount (devpts's gid=5 names
      a group that is not mapped);
    * drop ``linux.resources`` (no cgroup writes for an unprivileged user).

    The cgroup mount and everything else stay as they are.
    """
    old = spec["linux"]
    namespaces = [ns for ns in old.get("namespaces", []) if ns["type"] not in ("network", "user")]
    namespaces.append({"type": "user"})

    mounts = []
    for m in spec.get("mounts", []):
        if os.path.normpath(m["destination"]) == "/sys":
            mounts.append(
                {
                    "destination": "/sys",
                    "type": "none",
                    "source": "/sys",
                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
                }
            )
            continue
        m = dict(m)
        options = [o for o in m.pop("options", None) or [] if not o.startswith(("uid=", "gid="))]
        if options:  # runc leaves the field out when nothing remains
            m["options"] = options
        mounts.append(m)
    spec["mounts"] = mounts

    # Rebuild linux in runc's field order: mappings come first.
    linux = {
        "uidMappings": [{"containerID": 0, "hostID": uid, "size": 1}],
        "gidMappings": [{"containerID": 0, "hostID": gid, "size": 1}],
    }
    for key, value in old.items():
        if key in ("uidMappings", "gidMappings", "resources"):
            continue
        linux[key] = namespaces if key == "namespaces" else value
    if "namespaces" not in linux:
        linux["namespaces"] = namespaces
    spec["linux"] = linux


# What ``pyrun spec`` opts into: a per-container overlay over root.path (the
# bundle is never written) and pyrun's init as PID 1 (planning.make_plan).
PYRUN_EXTRAS = {"org.pyrun.rootfs": "overlay", "org.pyrun.init": "true"}


def default_spec(
    rootless: bool = False,
    uid: int | None = None,
    gid: int | None = None,
    *,
    cgroupns: bool | None = None,
) -> dict:
    """The config.json ``pyrun spec [--rootless]`` writes, as a fresh dict.

    ``uid``/``gid`` are the host ids container root maps to when
    ``rootless``; like runc they default to the *effective* ids.
    ``cgroupns`` adds a cgroup namespace; ``None`` means "when the host is
    on cgroup v2", which is what runc does.
    """
    from pyrun.config.seccomp_profile import default_profile

    spec = _example()
    # runc's example has no profile; pyrun's, like podman's, denies the
    # syscalls a container has no business making (seccomp_profile.py).
    spec["linux"]["seccomp"] = default_profile()
    if cgroupns is None:
        cgroupns = is_cgroup2_unified()
    if cgroupns:
        spec["linux"]["namespaces"].append({"type": "cgroup"})
    if rootless:
        _to_rootless(
            spec,
            os.geteuid() if uid is None else uid,
            os.getegid() if gid is None else gid,
        )
    # pyrun's extras, asked for here and only here: a config pyrun did not
    # write runs as runc runs it (README, "The rule").
    spec["annotations"] = dict(PYRUN_EXTRAS)
    return spec
