"""cffi build script for ``pyrun._native`` (API mode, compiled at install).

Only the system calls Python 3.11's ``os`` module lacks are declared here.
Each C function returns 0 (or an fd) on success and ``-errno`` on failure;
``pyrun.syscalls`` turns that into a :class:`~pyrun.errors.SyscallError`.
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
    int pyrun_prctl(int option, unsigned long arg2, unsigned long arg3,
                    unsigned long arg4, unsigned long arg5);
    int pyrun_execveat(int dirfd, const char *path, char *const argv[],
                       char *const envp[], int flags);
    """
)
ffibuilder.set_source(
    "pyrun._native",
    '#include "shim.h"',
    sources=[os.path.relpath(os.path.join(NATIVE, "shim.c"))],
    include_dirs=[NATIVE],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
