/* clone3(2) with CLONE_INTO_CGROUP, as Python's os.fork() forks: the child
 * starts in the cgroup the directory fd names instead of being moved there
 * with a write to cgroup.procs afterwards (which waits an RCU grace period).
 * Needs the Python C API (the GIL, PyOS_BeforeFork...), so it lives apart
 * from shim.c. */
#ifndef PYRUN_CLONE3_H
#define PYRUN_CLONE3_H

/* The child's pid in the parent, 0 in the child, -errno on failure (no
 * child then). cgroup_fd: a cgroup v2 directory (O_RDONLY or O_PATH). */
int pyrun_clone3_into_cgroup(int cgroup_fd);
#endif
