/*
 * pyrun-init: a minimal init for pyrun containers.
 *
 * This is PID 1 in the container.  The kernel gives PID 1 two jobs that an
 * ordinary program never expects to have: every orphaned process in the PID
 * namespace is re-parented to it, and signals it has no handler for are
 * simply dropped.  A shell script or a server started as PID 1 ignores both,
 * so zombies pile up and "docker stop" style SIGTERMs vanish.  Someone has to
 * reap zombies and forward signals, and this is that someone.
 *
 * The design follows catatonit: block every signal, read them from a
 * signalfd, run the real program as our only child, and exit with its
 * status.  pyrun copies this binary into a sealed memfd and runs it with
 * execveat(), so it is linked statically and touches nothing in the
 * container's filesystem.
 *
 * Usage: pyrun-init PATH ARGV0 [ARGS...]
 *   PATH has already been resolved by the runtime; ARGV0 is what the
 *   program sees as argv[0].
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sigdefault.h"

/*
 * stdio would drag buffering and locale code into a process that stays
 * resident for the container's whole life; a few write(2) calls are enough.
 * Arguments are strings, terminated by NULL.
 */
static void say(const char *first, ...)
{
	va_list ap;
	const char *s;

	va_start(ap, first);
	for (s = first; s != NULL; s = va_arg(ap, const char *)) {
		size_t len = strlen(s);

		while (len > 0) {
			ssize_t n = write(STDERR_FILENO, s, len);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			s += n;
			len -= (size_t)n;
		}
	}
	va_end(ap);
}

/*
 * A signal whose disposition is SIG_IGN is discarded when it is raised, so
 * it would never reach the signalfd.  Our parent (a Python runtime, which
 * ignores SIGPIPE, for instance) may have left some ignored; reset them all
 * so that every signal is seen by us and so the child starts from a clean
 * slate, as it would after a normal login.
 */
static void reset_dispositions(void)
{
	pyrun_signals_default();
}

/*
 * Blocking happens before fork() so that a signal arriving while the child
 * is being created waits in the queue instead of being lost.  Blocked
 * signals are also exempt from the kernel's "PID 1 ignores default-action
 * signals" rule, which is what lets us see them at all.
 */
static int open_signalfd(void)
{
	sigset_t all;

	sigfillset(&all);
	if (sigprocmask(SIG_SETMASK, &all, NULL) < 0)
		return -1;
	reset_dispositions();
	/* CLOEXEC: the child must not inherit a descriptor it knows nothing of. */
	return signalfd(-1, &all, SFD_CLOEXEC);
}

/*
 * The child inherits our fully blocked mask, which would make the real
 * program deaf to signals.  Dispositions were reset before fork(), so the
 * mask is the only thing left to undo.  The child stays in our session
 * and process group, so if we own a controlling terminal it is the
 * child's foreground terminal too and needs no setsid()/tcsetpgrp() dance.
 */
static pid_t spawn(const char *path, char **argv)
{
	extern char **environ;
	sigset_t none;
	pid_t pid;
	int err;

	pid = fork();
	if (pid != 0)
		return pid;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve(path, argv, environ);

	err = errno;
	say("pyrun-init: exec ", path, ": ", strerror(err), "\n", NULL);
	/* The shell convention: 127 for "not found", 126 for "found but unusable". */
	_exit(err == ENOENT ? 127 : 126);
}

/*
 * The container's stdio belongs to the entrypoint.  Were we to keep our
 * copies, whoever reads a pipe the container writes to (`pyrun run -d ID |
 * cat`, an engine's log reader) would see end-of-file only when PID 1
 * exits, not when the entrypoint closes it.  Once the child has its own
 * copies, ours point at /dev/null (closed, if there is none).  A
 * controlling terminal belongs to the session, not to a descriptor
 * (credentials(7), "Sessions"): we stay its session leader, the child
 * stays in its foreground process group, and the pty hangs up when the
 * child's last descriptor of it goes, as with runc.  Our own messages go
 * nowhere from here; the child's exit status is what the host reads.
 */
static void release_stdio(void)
{
	int fd = open("/dev/null", O_RDWR | O_NOCTTY | O_CLOEXEC);
	int i;

	for (i = 0; i <= 2; i++) {
		if (fd < 0)
			close(i);
		else if (fd != i)
			dup2(fd, i);
	}
	if (fd > 2)
		close(fd);
}

/* Report how the child ended the way a shell would: 128 + signal if killed. */
static int exit_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 1;
}

/*
 * SIGCHLD is not queued per child: one delivery may stand for many exits,
 * so keep collecting until nothing is left.  Orphans are reaped alongside
 * the main child; only the main child's status matters.
 * Returns 1 once the main child has been reaped.
 */
static int reap(pid_t child, int *child_status)
{
	int done = 0;

	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);

		if (pid < 0 && errno == EINTR)
			continue;
		if (pid <= 0)
			break;
		if (pid == child) {
			*child_status = status;
			done = 1;
		}
	}
	return done;
}

/*
 * Only the child itself is signalled, not its process group: the program
 * decides for itself whether to pass signals on to its own children.
 * Job-control signals are forwarded too, since stopping PID 1 would leave
 * nobody to reap.  ESRCH (child already gone) is harmless: its SIGCHLD is
 * on the way.
 */
static void forward(pid_t child, int sig)
{
	(void)kill(child, sig);
}

/*
 * Nothing waits for the remaining orphans: when PID 1 exits the kernel
 * kills everything else in the namespace, which is the behaviour the
 * container's owner expects when the main program ends.
 */
static int supervise(int sfd, pid_t child)
{
	struct signalfd_siginfo si;
	int status;

	for (;;) {
		ssize_t n = read(sfd, &si, sizeof(si));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			say("pyrun-init: read signalfd: ", strerror(errno), "\n", NULL);
			return 1;
		}
		if (n != sizeof(si))
			continue;

		if (si.ssi_signo == SIGCHLD) {
			if (reap(child, &status))
				return exit_code(status);
		} else {
			forward(child, (int)si.ssi_signo);
		}
	}
}

int main(int argc, char **argv)
{
	pid_t child;
	int sfd;

	if (argc < 3) {
		say("usage: pyrun-init PATH ARGV0 [ARGS...]\n", NULL);
		return 2;
	}

	sfd = open_signalfd();
	if (sfd < 0) {
		say("pyrun-init: signalfd: ", strerror(errno), "\n", NULL);
		return 1;
	}

	child = spawn(argv[1], &argv[2]);
	if (child < 0) {
		say("pyrun-init: fork: ", strerror(errno), "\n", NULL);
		return 1;
	}
	release_stdio();

	return supervise(sfd, child);
}
