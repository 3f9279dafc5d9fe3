"""pyrun's default seccomp profile, as a ``linux.seccomp`` object.

Pure data (no imports, no libseccomp) so that ``pyrun spec`` can write it
into a config.json cheaply. A deny list rather than docker's allow list:
everything is allowed except the calls docker's and podman's profiles keep
from containers without extra capabilities — kernel modules and keyrings,
clocks, mounts and namespaces, tracing other processes, NUMA placement,
BPF and perf events, swap and reboot — which fail with EPERM (errnoRet 1).

The three x86 ABIs are listed so that a process cannot get around the list
through the i386 (int 0x80) or x32 system call numbers. Names that exist
only on some of them (``vm86`` on i386) apply where they exist.
"""

DENIED = [
    "_sysctl",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "get_kernel_syms",
    "get_mempolicy",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "mount",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setns",
    "settimeofday",
    "stime",
    "swapoff",
    "swapon",
    "sysfs",
    "umount",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
    "vm86old",
]


def default_profile() -> dict:
    """A new copy of the default ``linux.seccomp`` object."""
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": list(DENIED), "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        ],
    }
