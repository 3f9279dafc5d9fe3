/* See clone3.h. Man pages: clone3(2) (CLONE_INTO_CGROUP, Linux 5.7),
 * cgroups(7); CPython's os.fork() (Modules/posixmodule.c), whose steps this
 * repeats around the raw system call. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "clone3.h"

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

/* struct clone_args of <linux/sched.h> up to its cgroup field
 * (CLONE_ARGS_SIZE_VER2, 88 bytes): declared here so that the build does
 * not depend on the installed kernel headers' version. A kernel older than
 * 5.7 does not know the size or the flag: E2BIG or EINVAL, the caller's
 * cue to fork and write cgroup.procs instead. */
struct pyrun_clone_args {
	uint64_t flags;
	uint64_t pidfd;
	uint64_t child_tid;
	uint64_t parent_tid;
	uint64_t exit_signal;
	uint64_t stack;
	uint64_t stack_size;
	uint64_t tls;
	uint64_t set_tid;
	uint64_t set_tid_size;
	uint64_t cgroup;
};

/* cffi releases the GIL around every C call it makes; forking a Python
 * process needs it held (PyOS_AfterFork_Child takes over the thread state),
 * so it is taken back here for the duration.
 *
 * What glibc's fork() wrapper adds around the system call (its atfork handlers,
 * malloc's arena locks, the child's cached tid) is skipped: pyrun calls
 * this from a process with no other thread at work (pyrun.cgroups.v2
 * checks), as Go's runtime clones into a cgroup for runc's exec. */
int pyrun_clone3_into_cgroup(int cgroup_fd)
{
	struct pyrun_clone_args args = {
		.flags = CLONE_INTO_CGROUP,
		.exit_signal = SIGCHLD,   /* a child as fork(2) makes: waitpid(2) reaps it */
		.cgroup = (uint64_t)cgroup_fd,
	};
	PyGILState_STATE gil = PyGILState_Ensure();
	long pid;
	int err;

	PyOS_BeforeFork();
	pid = syscall(SYS_clone3, &args, sizeof(args));
	err = errno;
	if (pid == 0)
		PyOS_AfterFork_Child();
	else
		PyOS_AfterFork_Parent();
	PyGILState_Release(gil);
	return pid < 0 ? -err : (int)pid;
}
