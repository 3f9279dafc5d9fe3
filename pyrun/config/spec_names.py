"""The names config.json may use, and the kernel's numbers for them.

Tables only, no logic: capabilities, rlimits, namespace types, rootfs
propagations, device types, hook kinds and the sysctls the IPC namespace
owns. :mod:`pyrun.config.spec` checks names against them; :mod:`pyrun.security.capabilities`,
:mod:`pyrun.container.enter` and :mod:`pyrun.commands.features` read the numbers. (Mount options
live with the code that applies them: :mod:`pyrun.filesystem.mounts`,
:mod:`pyrun.filesystem.mount_attrs`.)
"""

from __future__ import annotations

__all__ = ["CAPABILITIES", "RLIMITS", "NAMESPACE_TYPES", "ROOTFS_PROPAGATIONS", "DEVICE_TYPES",
           "HOOK_KINDS", "IPC_SYSCTLS"]


def _numbered(names: str) -> dict[str, int]:
    """Names in the kernel's order -> their numbers (0, 1, 2, ...)."""
    return {name: number for number, name in enumerate(names.split())}


#: Capability name -> number (linux/capability.h), up to CAP_CHECKPOINT_RESTORE.
CAPABILITIES: dict[str, int] = _numbered("""
    CAP_CHOWN CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER CAP_FSETID CAP_KILL CAP_SETGID
    CAP_SETUID CAP_SETPCAP CAP_LINUX_IMMUTABLE CAP_NET_BIND_SERVICE CAP_NET_BROADCAST CAP_NET_ADMIN
    CAP_NET_RAW CAP_IPC_LOCK CAP_IPC_OWNER CAP_SYS_MODULE CAP_SYS_RAWIO CAP_SYS_CHROOT
    CAP_SYS_PTRACE CAP_SYS_PACCT CAP_SYS_ADMIN CAP_SYS_BOOT CAP_SYS_NICE CAP_SYS_RESOURCE
    CAP_SYS_TIME CAP_SYS_TTY_CONFIG CAP_MKNOD CAP_LEASE CAP_AUDIT_WRITE CAP_AUDIT_CONTROL
    CAP_SETFCAP CAP_MAC_OVERRIDE CAP_MAC_ADMIN CAP_SYSLOG CAP_WAKE_ALARM CAP_BLOCK_SUSPEND
    CAP_AUDIT_READ CAP_PERFMON CAP_BPF CAP_CHECKPOINT_RESTORE
""")

#: Rlimit name -> resource number (asm-generic/resource.h: x86, arm, arm64,
#: riscv, s390, ppc; alpha/mips/sparc number a few differently).
RLIMITS: dict[str, int] = _numbered("""
    RLIMIT_CPU RLIMIT_FSIZE RLIMIT_DATA RLIMIT_STACK RLIMIT_CORE RLIMIT_RSS RLIMIT_NPROC
    RLIMIT_NOFILE RLIMIT_MEMLOCK RLIMIT_AS RLIMIT_LOCKS RLIMIT_SIGPENDING RLIMIT_MSGQUEUE
    RLIMIT_NICE RLIMIT_RTPRIO RLIMIT_RTTIME
""")

#: config-linux.md "Namespaces": the types a runtime may be asked for.
NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")

#: config-linux.md "Rootfs Mount Propagation" plus the recursive forms runc accepts.
ROOTFS_PROPAGATIONS = (
    "shared",
    "slave",
    "private",
    "unbindable",
    "rshared",
    "rslave",
    "rprivate",
    "runbindable",
)

DEVICE_TYPES = ("c", "b", "u", "p")

HOOK_KINDS = (
    ("prestart", "prestart"),
    ("createRuntime", "create_runtime"),
    ("createContainer", "create_container"),
    ("startContainer", "start_container"),
    ("poststart", "poststart"),
    ("poststop", "poststop"),
)

#: Sysctls namespaced by the IPC namespace (runc's validator list).
IPC_SYSCTLS = frozenset(
    {
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    }
)
