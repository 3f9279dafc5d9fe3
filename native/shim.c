/* pyrun's native shim — see shim.h. Man pages: mount(2), umount2(2),
 * pivot_root(2), unshare(2), setns(2), setdomainname(2), openat2(2),
 * execveat(2). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <linux/keyctl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

static int result(long rc)
{
	return rc < 0 ? -errno : (int)rc;
}

int pyrun_mount(const char *source, const char *target, const char *fstype,
		unsigned long flags, const char *data)
{
	return result(mount(source, target, fstype, flags, data));
}

int pyrun_umount2(const char *target, int flags)
{
	return result(umount2(target, flags));
}

/* glibc has no wrapper for pivot_root(2). */
int pyrun_pivot_root(const char *new_root, const char *put_old)
{
	return result(syscall(SYS_pivot_root, new_root, put_old));
}

int pyrun_unshare(int flags)
{
	return result(unshare(flags));
}

int pyrun_setns(int fd, int nstype)
{
	return result(setns(fd, nstype));
}

int pyrun_setdomainname(const char *name, size_t len)
{
	return result(setdomainname(name, len));
}

int pyrun_setrlimit(int resource, unsigned long long soft, unsigned long long hard)
{
	struct rlimit rl = { .rlim_cur = (rlim_t)soft, .rlim_max = (rlim_t)hard };

	return result(setrlimit(resource, &rl));
}

/* openat2(2) with RESOLVE_IN_ROOT is how a path inside the container's rootfs
 * is resolved without letting a symlink lead out of it. No glibc wrapper. */
int pyrun_openat2(int dirfd, const char *path, unsigned long long flags,
		  unsigned long long mode, unsigned long long resolve)
{
	struct open_how how = { .flags = flags, .mode = mode, .resolve = resolve };
	return result(syscall(SYS_openat2, dirfd, path, &how, sizeof(how)));
}

/* close_range(2) without glibc's wrapper (2.34+), so the build does not
 * depend on it; a seccomp profile may refuse it (the caller falls back). */
int pyrun_close_range(unsigned int first, unsigned int last, unsigned int flags)
{
	return result(syscall(SYS_close_range, first, last, flags));
}

int pyrun_open_tree(int dirfd, const char *path, unsigned int flags)
{
	return result(syscall(SYS_open_tree, dirfd, path, flags));
}

int pyrun_move_mount(int from_dirfd, const char *from_path, int to_dirfd,
		     const char *to_path, unsigned int flags)
{
	return result(syscall(SYS_move_mount, from_dirfd, from_path, to_dirfd, to_path, flags));
}

long long pyrun_fstatfs_type(int fd)
{
	struct statfs st;

	if (fstatfs(fd, &st) < 0)
		return -errno;
	return (long long)(unsigned long)st.f_type;
}

/* execveat(2) with AT_EMPTY_PATH runs the init from a sealed memfd, so no
 * host file is ever the container's /proc/1/exe (CVE-2019-5736). */
int pyrun_execveat(int dirfd, const char *path, char *const argv[],
		   char *const envp[], int flags)
{
	return result(syscall(SYS_execveat, dirfd, path, argv, envp, flags));
}

/* keyctl(KEYCTL_JOIN_SESSION_KEYRING, name): a fresh session keyring, so the
 * container cannot read the caller's keys (runc's default). No glibc wrapper. */
int pyrun_join_session_keyring(const char *name)
{
	return result(syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name));
}

/* prctl(2) for the options python-prctl lacks (PR_CAP_AMBIENT). */
int pyrun_prctl(int option, unsigned long arg2, unsigned long arg3,
		unsigned long arg4, unsigned long arg5)
{
	return result(prctl(option, arg2, arg3, arg4, arg5));
}

/* sched_setattr(2): glibc has no wrapper; struct sched_attr as in
 * <linux/sched/types.h> (SCHED_ATTR_SIZE_VER1, without the util clamps'
 * values, which the runtime-spec does not carry). */
struct pyrun_sched_attr {
	unsigned int size;
	unsigned int sched_policy;
	unsigned long long sched_flags;
	int sched_nice;
	unsigned int sched_priority;
	unsigned long long sched_runtime;
	unsigned long long sched_deadline;
	unsigned long long sched_period;
	unsigned int sched_util_min;
	unsigned int sched_util_max;
};

int pyrun_sched_setattr(int pid, unsigned int policy, unsigned long long flags, int nice,
			unsigned int priority, unsigned long long runtime,
			unsigned long long deadline, unsigned long long period)
{
	struct pyrun_sched_attr attr = {
		.size = sizeof(attr), .sched_policy = policy, .sched_flags = flags,
		.sched_nice = nice, .sched_priority = priority, .sched_runtime = runtime,
		.sched_deadline = deadline, .sched_period = period,
	};
	return result(syscall(SYS_sched_setattr, pid, &attr, 0));
}

/* ioprio_set(2): no glibc wrapper. */
int pyrun_ioprio_set(int which, int who, int ioprio)
{
	return result(syscall(SYS_ioprio_set, which, who, ioprio));
}

/* personality(2) returns the previous persona; -errno on failure. */
int pyrun_personality(unsigned long persona)
{
	return result(syscall(SYS_personality, persona));
}

/* set_mempolicy(2): libnuma has the wrapper, glibc does not. */
int pyrun_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode)
{
	return result(syscall(SYS_set_mempolicy, mode, nodemask, maxnode));
}

/* mount_setattr(2) (glibc 2.36 has a wrapper, bookworm's is older). */
struct pyrun_mount_attr {
	unsigned long long attr_set;
	unsigned long long attr_clr;
	unsigned long long propagation;
	unsigned long long userns_fd;
};

int pyrun_mount_setattr(int dirfd, const char *path, unsigned int flags,
			unsigned long long attr_set, unsigned long long attr_clr,
			unsigned long long propagation, unsigned long long userns_fd)
{
	struct pyrun_mount_attr attr = {
		.attr_set = attr_set, .attr_clr = attr_clr,
		.propagation = propagation, .userns_fd = userns_fd,
	};
	return result(syscall(SYS_mount_setattr, dirfd, path, flags, &attr, sizeof(attr)));
}

int pyrun_set_cmdline(const char *name)
{
	unsigned long start = 0, end = 0;
	char buf[1024], *p;
	int fd, field = 2;
	ssize_t n;

	fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	/* fields 48 and 49 (proc(5)), counted after the command's ")" */
	for (p = strrchr(buf, ')'); p && *p && field < 49; p++) {
		if (*p != ' ')
			continue;
		if (++field == 48)
			start = strtoul(p + 1, NULL, 10);
		else if (field == 49)
			end = strtoul(p + 1, NULL, 10);
	}
	if (start == 0 || end <= start)
		return -EINVAL;
	memset((void *)start, 0, end - start);
	strncpy((char *)start, name, end - start - 1);
	return 0;
}
