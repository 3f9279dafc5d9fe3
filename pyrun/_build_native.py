"""cffi build script for ``pyrun._native`` (API mode, compiled at install).

Declared here: the system calls Python 3.11's ``os`` module lacks
(``native/shim.c``) and a thin layer over libseccomp (``native/seccomp.c``,
used by ``pyrun.seccomp``). Each C function returns 0 (or an fd) on success
and ``-errno`` on failure; ``pyrun.syscalls`` and ``pyrun.seccomp`` turn that
into a :class:`~pyrun.errors.SyscallError`.
"""

import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
NATIVE = os.path.join(os.path.dirname(HERE), "native")

ffibuilder = FFI()
ffibuilder.cdef(
    """
    int pyrun_mount(const char *source, const char *target, const char *fstype,
                    unsigned long flags, const char *data);
    int pyrun_umount2(const char *target, int flags);
    int pyrun_pivot_root(const char *new_root, const char *put_old);
    int pyrun_unshare(int flags);
    int pyrun_setns(int fd, int nstype);
    int pyrun_setdomainname(const char *name, size_t len);
    int pyrun_openat2(int dirfd, const char *path, unsigned long long flags,
                      unsigned long long mode, unsigned long long resolve);
    int pyrun_join_session_keyring(const char *name);
    void pyrun_default_signals(void);
    int pyrun_prctl(int option, unsigned long arg2, unsigned long arg3,
                    unsigned long arg4, unsigned long arg5);
    int pyrun_execveat(int dirfd, const char *path, char *const argv[],
                       char *const envp[], int flags);

    /* native/pyrun_seccomp.h; constants are libseccomp's own (seccomp.h). */
    #define SCMP_ACT_KILL_PROCESS ...
    #define SCMP_ACT_KILL_THREAD ...
    #define SCMP_ACT_TRAP ...
    #define SCMP_ACT_NOTIFY ...
    #define SCMP_ACT_LOG ...
    #define SCMP_ACT_ALLOW ...
    #define PYRUN_SCMP_ACT_ERRNO_BASE ...
    #define PYRUN_SCMP_ACT_TRACE_BASE ...
    #define SCMP_CMP_NE ...
    #define SCMP_CMP_LT ...
    #define SCMP_CMP_LE ...
    #define SCMP_CMP_EQ ...
    #define SCMP_CMP_GE ...
    #define SCMP_CMP_GT ...
    #define SCMP_CMP_MASKED_EQ ...
    #define SCMP_FLTATR_CTL_NNP ...
    #define SCMP_FLTATR_CTL_TSYNC ...
    #define SCMP_FLTATR_CTL_LOG ...
    #define SCMP_FLTATR_CTL_SSB ...
    #define SCMP_FLTATR_CTL_OPTIMIZE ...
    struct pyrun_arg_cmp {
        unsigned int arg;
        int op;
        uint64_t datum_a;
        uint64_t datum_b;
    };
    void *pyrun_seccomp_init(uint32_t def_action);
    void pyrun_seccomp_release(void *ctx);
    int pyrun_seccomp_arch_add(void *ctx, const char *arch_name);
    int pyrun_seccomp_arch_known(const char *arch_name);
    int pyrun_seccomp_syscall_resolve(const char *name, int *nr);
    int pyrun_seccomp_rule_add(void *ctx, uint32_t action, int nr, unsigned int count,
                               const struct pyrun_arg_cmp *cmps);
    int pyrun_seccomp_attr_set(void *ctx, int attr, uint32_t value);
    int pyrun_seccomp_load(void *ctx);
    int pyrun_seccomp_export_bpf(void *ctx, int fd);
    int pyrun_seccomp_notify_fd(void *ctx);
    unsigned int pyrun_seccomp_api_get(void);

    struct pyrun_dev_rule { int type; int major; int minor; int access; int allow; };
    int pyrun_devices_bpf_attach(int cgroup_fd, const struct pyrun_dev_rule *rules,
                                 int nrules, int default_allow);
    int pyrun_seccomp_version(char *buf, unsigned int len);
    """
)
ffibuilder.set_source(
    "pyrun._native",
    '#include "shim.h"\n#include "pyrun_seccomp.h"\n#include "devices_bpf.h"',
    sources=[os.path.relpath(os.path.join(NATIVE, name)) for name in ("shim.c", "seccomp.c", "devices_bpf.c")],
    include_dirs=[NATIVE],
    libraries=["seccomp"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
