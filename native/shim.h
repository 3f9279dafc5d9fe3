/* pyrun's native shim: the system calls Python 3.11 does not expose.
 * One function per call; no policy here. Each returns 0 (or a new fd) on
 * success and -errno on failure, so Python can raise with the right errno. */
#ifndef PYRUN_SHIM_H
#define PYRUN_SHIM_H
#include <stddef.h>
#include <sys/resource.h>

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
/* setrlimit(2); resource is an RLIMIT_* number, RLIM_INFINITY is ~0ULL.
 * (Python's resource module would cost a shared library load per start.) */
int pyrun_setrlimit(int resource, unsigned long long soft, unsigned long long hard);
/* close_range(2): with flags 0 closes, with CLOSE_RANGE_CLOEXEC marks. */
int pyrun_close_range(unsigned int first, unsigned int last, unsigned int flags);
/* open_tree(2) and move_mount(2): a bind mount made from a descriptor and
 * attached at a descriptor, with no path (and no /proc) in between. */
int pyrun_open_tree(int dirfd, const char *path, unsigned int flags);
int pyrun_move_mount(int from_dirfd, const char *from_path, int to_dirfd,
		     const char *to_path, unsigned int flags);
/* fstatfs(2)'s f_type: which filesystem a descriptor is on. */
long long pyrun_fstatfs_type(int fd);
/* Overwrites the argv strings the process started with (what
 * /proc/PID/cmdline shows) with name: a process of pyrun's inside a
 * container shows no host path there. Python keeps copies of its argv. */
int pyrun_set_cmdline(const char *name);
/* sched_setattr(2) on pid (0: the caller). */
int pyrun_sched_setattr(int pid, unsigned int policy, unsigned long long flags, int nice,
			unsigned int priority, unsigned long long runtime,
			unsigned long long deadline, unsigned long long period);
int pyrun_ioprio_set(int which, int who, int ioprio);
int pyrun_personality(unsigned long persona);
int pyrun_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode);
int pyrun_mount_setattr(int dirfd, const char *path, unsigned int flags,
			unsigned long long attr_set, unsigned long long attr_clr,
			unsigned long long propagation, unsigned long long userns_fd);
#endif
