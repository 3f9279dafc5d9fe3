/*
 * pyrun-init: the sealed binary that makes a container's last execve(2).
 *
 * The container's first instruction must never run in a process whose exe
 * is a host file.  An entrypoint that is a script starting "#!/proc/self/exe"
 * makes the kernel resolve /proc/self/exe in the process calling execve(2);
 * with the image's own ELF interpreter the image's code then runs with that
 * file as its exe, keeps a handle on it and, once nothing executes it any
 * more, writes to it (CVE-2019-5736).  pyrun is a Python program: its exe
 * is the host's interpreter.  So pyrun copies this binary into a sealed
 * memfd and execveat(2)s it once every setup step is done, and this binary
 * makes the steps that come after, then executes the container's program:
 *
 *   - wait on exec.fifo for "pyrun start" (PID 1 of a created container is
 *     then this binary: no host file as its exe, no host descriptor but the
 *     fifo, the container's environment only, and dumpable as any process
 *     of the container's user, so a rootless "pyrun exec" may join it);
 *   - load the seccomp filter, as late as it can be;
 *   - run the startContainer hooks, under that filter (as runc does);
 *   - execve(2) the program or, as the container's init, run it as our
 *     child, reap zombies and pass signals on (see below).
 *
 * It is linked statically and opens nothing in the container but
 * /proc/self/fd/N (and, without a /proc, exec.fifo in the state directory).
 *
 * Usage: pyrun-init [-i] [-c E:P:I:A] [-f FD | -d FD] [-s FD:FLAGS] [-k FD]
 *                   [-e FD] [-l NAME:TEXT] -- PATH ARGV0 [ARGS...]
 *   -i           stay PID 1: run PATH as our only child (the init)
 *   -c E:P:I:A   the capability sets (hex masks: effective, permitted,
 *                inheritable, ambient) pyrun carried across its execveat
 *                to us as ambient ones: set them again exactly
 *   -f FD        exec.fifo, opened O_PATH: wait there for "pyrun start"
 *   -d FD        the state directory, for a container without a /proc
 *   -s FD:FLAGS  a seccomp BPF program (struct sock_filter[]) and the
 *                seccomp(2) flags to load it with
 *   -k FD        the startContainer hooks and their state (read_hooks)
 *   -e FD        pyrun's channel, where a failed execve(2) is reported
 *   -l NAME:TEXT the label for our next execve(2): TEXT (AppArmor: "exec
 *                PROFILE"; SELinux: the context) written to /proc/self/attr/
 *                NAME before the wait on exec.fifo, so that what we execute
 *                (hooks, program) runs confined, and we never are; see
 *                write_label()
 * PATH has been resolved by pyrun; ARGV0 is what the program sees as
 * argv[0].  The descriptors are pyrun's: each is closed on execve(2).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sigdefault.h"

extern char **environ;

struct opts {
	int init;
	const char *caps;
	int fifo;		/* exec.fifo, O_PATH */
	int state_dir;		/* or the directory it is in */
	int bpf;
	unsigned int bpf_flags;
	int hooks;
	int chan;
	const char *label;	/* NAME:TEXT (-l) */
};

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

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The errno's name, as pyrun words every errno: "No such file (ENOENT)". */
static const struct {
	int err;
	const char *name;
} errnames[] = {
	{ ENOENT, "ENOENT" }, { EACCES, "EACCES" }, { EPERM, "EPERM" },
	{ ENOEXEC, "ENOEXEC" }, { ENOTDIR, "ENOTDIR" }, { ELOOP, "ELOOP" },
	{ E2BIG, "E2BIG" }, { ENOMEM, "ENOMEM" }, { EINVAL, "EINVAL" },
	{ ENOSYS, "ENOSYS" }, { ETXTBSY, "ETXTBSY" }, { EISDIR, "EISDIR" }, { EXDEV, "EXDEV" },
};

static const char *errname(int err)
{
	size_t i;

	for (i = 0; i < sizeof(errnames) / sizeof(errnames[0]); i++)
		if (errnames[i].err == err)
			return errnames[i].name;
	return "?";
}

/*
 * Messages are built with these two rather than snprintf(3), whose
 * machinery would double this binary's size (and PID 1's resident set).
 * cat() appends NULL-terminated strings to buf, truncating at len - 1.
 */
static void cat(char *buf, size_t len, ...)
{
	size_t n = strlen(buf);
	const char *s;
	va_list ap;

	va_start(ap, len);
	while ((s = va_arg(ap, const char *)) != NULL)
		while (*s && n + 1 < len)
			buf[n++] = *s++;
	va_end(ap);
	buf[n] = '\0';
}

/* The decimal digits of v (v >= 0), in tmp (12 bytes). */
static const char *dec(int v, char *tmp)
{
	char *p = tmp + 11;

	*p = '\0';
	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0 && p > tmp);
	return p;
}

static void errno_text(char *buf, size_t len, const char *what, int err)
{
	buf[0] = '\0';
	cat(buf, len, what, ": ", strerror(err), " (", errname(err), ")", NULL);
}

/*
 * What stopped us, where pyrun reads it: "pyrun exec" waits on its channel
 * (SOCK_SEQPACKET, one JSON object a message) for an error or for the
 * end-of-file our execve(2) makes; "pyrun create" gave us the container's
 * stderr.
 */
static void report(int chan, const char *msg)
{
	static const char hex[] = "0123456789abcdef";
	char json[8192];
	size_t n = 0;
	const char *s;

	if (chan >= 0) {
		json[0] = '\0';
		cat(json, sizeof(json), "{\"kind\":\"error\",\"message\":\"", NULL);
		n = strlen(json);
		for (s = msg; *s && n < sizeof(json) - 16; s++) {
			unsigned char c = (unsigned char)*s;

			if (c == '"' || c == '\\') {
				json[n++] = '\\';
				json[n++] = (char)c;
			} else if (c < 0x20) {
				memcpy(json + n, "\\u00", 4);
				json[n + 4] = hex[c >> 4];
				json[n + 5] = hex[c & 15];
				n += 6;
			} else {
				json[n++] = (char)c;
			}
		}
		memcpy(json + n, "\"}", 2);
		if (send(chan, json, n + 2, MSG_NOSIGNAL) >= 0)
			return;
	}
	say("pyrun: ", msg, "\n", NULL);
}

/*
 * An unsigned number in base 10 or 16 at *s, which is moved past it: 0, or
 * -1 for no digit or one too many (strtoul(3) would bring in stdio).
 */
static int digits(const char **s, unsigned int base, unsigned long long max,
		  unsigned long long *out)
{
	const char *p = *s;
	unsigned long long v = 0;

	for (;; p++) {
		unsigned int d;

		if (*p >= '0' && *p <= '9')
			d = (unsigned int)(*p - '0');
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			d = (unsigned int)(*p - 'a' + 10);
		else
			break;
		if (v > (max - d) / base)
			return -1;
		v = v * base + d;
	}
	if (p == *s)
		return -1;
	*s = p;
	*out = v;
	return 0;
}

/* A descriptor or count: 0 when s is all digits, 1 when a ':' follows them. */
static int number(const char *s, int *out)
{
	unsigned long long v;

	if (digits(&s, 10, 1 << 30, &v) < 0)
		return -1;
	*out = (int)v;
	return *s == ':' ? 1 : (*s ? -1 : 0);
}

/* Returns the index of PATH in argv, or -1 for a usage error. */
static int parse(int argc, char **argv, struct opts *o)
{
	int i, flags, rc = 0;

	for (i = 1; i < argc && argv[i][0] == '-' && rc >= 0; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : "";

		if (!strcmp(argv[i], "--"))
			return i + 1 < argc - 1 ? i + 1 : -1;
		if (!strcmp(argv[i], "-i")) {
			o->init = 1;
			continue;
		}
		i++;
		if (!strcmp(argv[i - 1], "-c")) {
			o->caps = v;
		} else if (!strcmp(argv[i - 1], "-f")) {
			rc = number(v, &o->fifo);
		} else if (!strcmp(argv[i - 1], "-d")) {
			rc = number(v, &o->state_dir);
		} else if (!strcmp(argv[i - 1], "-k")) {
			rc = number(v, &o->hooks);
		} else if (!strcmp(argv[i - 1], "-e")) {
			rc = number(v, &o->chan);
		} else if (!strcmp(argv[i - 1], "-l")) {
			if (!strchr(v, ':'))
				return -1;
			o->label = v;
		} else if (!strcmp(argv[i - 1], "-s")) {
			if (number(v, &o->bpf) != 1 || number(strchr(v, ':') + 1, &flags) != 0)
				return -1;
			o->bpf_flags = (unsigned int)flags;
		} else {
			return -1;
		}
		if (rc > 0)
			return -1;
	}
	return -1;
}

/*
 * "pyrun start" opens exec.fifo for reading; our open(2) for writing blocks
 * until it does.  The fifo was opened O_PATH before pivot_root, and such a
 * descriptor is reopened through /proc/self/fd (runc's init does the same).
 * The descriptor we get is close-on-exec: start reads to end-of-file, which
 * our execve(2) makes, and so returns once the program runs.
 */
static int open_fifo(struct opts *o)
{
	char path[64] = "/proc/self/fd/", tmp[12];
	int fd;

	cat(path, sizeof(path), dec(o->fifo, tmp), NULL);
	do {
		if (o->fifo >= 0)
			fd = openat(AT_FDCWD, path, O_WRONLY | O_CLOEXEC);  /* openat: what runc makes */
		else
			fd = openat(o->state_dir, "exec.fifo", O_WRONLY | O_CLOEXEC);
	} while (fd < 0 && errno == EINTR);
	close(o->fifo >= 0 ? o->fifo : o->state_dir);
	return fd;
}

/* struct sock_filter and struct sock_fprog (linux/filter.h, which musl lacks). */
struct bpf_insn {
	uint16_t code;
	uint8_t jt;
	uint8_t jf;
	uint32_t k;
};

struct bpf_prog {
	unsigned short len;
	struct bpf_insn *filter;
};

#define BPF_MAXINSNS 4096
#define SECCOMP_SET_MODE_FILTER 1

/*
 * The filter pyrun compiled with libseccomp and exported as BPF
 * (seccomp_export_bpf(3)), read (and its memfd closed) before the wait on
 * exec.fifo, so that PID 1 holds nothing but the fifo there.
 */
static int read_filter(int fd, struct bpf_prog *prog)
{
	static struct bpf_insn insns[BPF_MAXINSNS];
	size_t got = 0;
	struct stat st;
	ssize_t n = 0;

	if (fstat(fd, &st) < 0)
		return -1;
	if (st.st_size <= 0 || (size_t)st.st_size > sizeof(insns) ||
	    st.st_size % sizeof(insns[0])) {
		errno = EINVAL;
		return -1;
	}
	while (got < (size_t)st.st_size &&
	       (n = pread(fd, (char *)insns + got, (size_t)st.st_size - got, (off_t)got)) > 0)
		got += (size_t)n;
	close(fd);
	if (n < 0)
		return -1;
	prog->len = (unsigned short)(got / sizeof(insns[0]));
	prog->filter = insns;
	return 0;
}

/*
 * The hooks come as one buffer of NUL-terminated strings:
 *   STATE COUNT { PATH TIMEOUT ARGC ARG... ENVC ENV... } * COUNT
 * STATE is the state JSON every hook reads on its stdin; TIMEOUT is in
 * seconds, empty for none.  pyrun wrote it into a memfd.
 */
struct cursor {
	char *at;
	char *end;
};

static char *next(struct cursor *c)
{
	char *s = c->at;
	char *nul;

	if (s >= c->end || !(nul = memchr(s, '\0', (size_t)(c->end - s))))
		return NULL;
	c->at = nul + 1;
	return s;
}

/* A NULL-terminated array of the next COUNT strings. */
/* Zeroed memory that is never given back (we execve soon): no malloc(3). */
static void *grab(size_t size)
{
	void *p = mmap(NULL, size ? size : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static char **strings(struct cursor *c)
{
	char *count = next(c);
	char **list;
	int n, i;

	if (!count || number(count, &n) != 0 || n > 65536 || !(list = grab(((size_t)n + 1) * sizeof(*list))))
		return NULL;
	for (i = 0; i < n; i++)
		if (!(list[i] = next(c)))
			return NULL;
	return list;
}

static char *read_all(int fd, size_t *len)
{
	struct stat st;
	size_t got = 0;
	ssize_t n = 0;
	char *buf;

	if (fstat(fd, &st) < 0 || st.st_size < 0 || st.st_size > 64 << 20 ||
	    !(buf = grab((size_t)st.st_size + 1)))
		return NULL;
	while (got < (size_t)st.st_size &&
	       (n = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got)) > 0)
		got += (size_t)n;
	close(fd);
	*len = got;
	return n < 0 ? NULL : buf;
}

/*
 * One hook, to completion: fork, the state on its stdin, execve(2); a
 * close-on-exec pipe tells us execve's errno.  The timeout is waited for
 * on a pidfd.  0, or -1 with why it failed in *why.
 */
static int run_hook(char *path, char **argv, char **envp, int timeout, const char *state,
		    size_t state_len, char *why, size_t why_len)
{
	int in[2], ex[2], err = 0, status;
	struct pollfd p;
	char tmp[12];
	pid_t pid;

	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(ex, O_CLOEXEC) < 0) {
		errno_text(why, why_len, "pipe2", errno);
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		errno_text(why, why_len, "fork", errno);
		return -1;
	}
	if (pid == 0) {
		dup2(in[0], STDIN_FILENO);
		pyrun_signals_default();
		execve(path, argv, envp);
		err = errno;
		write_all(ex[1], (char *)&err, sizeof(err));
		_exit(127);
	}
	close(in[0]);
	close(ex[1]);
	if (read(ex[0], &err, sizeof(err)) == sizeof(err)) {
		waitpid(pid, NULL, 0);
		why[0] = '\0';
		cat(why, why_len, strerror(err), " (", errname(err), ")", NULL);
		return -1;
	}
	close(ex[0]);
	write_all(in[1], state, state_len);	/* a hook need not read it: EPIPE is fine */
	close(in[1]);
	p.fd = (int)syscall(SYS_pidfd_open, pid, 0);
	p.events = POLLIN;
	if (timeout > 0 && p.fd >= 0 && poll(&p, 1, timeout * 1000) == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(p.fd);
		why[0] = '\0';
		cat(why, why_len, "timed out after ", dec(timeout, tmp), " s", NULL);
		return -1;
	}
	if (p.fd >= 0)
		close(p.fd);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	why[0] = '\0';
	if (WIFSIGNALED(status))
		cat(why, why_len, "killed by signal ", dec(WTERMSIG(status), tmp), NULL);
	else
		cat(why, why_len, "exit status ", dec(WEXITSTATUS(status), tmp), NULL);
	return -1;
}

/*
 * startContainer, in the container (its root, its credentials, its
 * filter), each in order.  0, or -1 with "hooks.startContainer[I] PATH:
 * why" in msg, as pyrun words a failed hook.
 */
static int run_hooks(struct cursor c, char *msg, size_t msg_len)
{
	char *state, *count, *path, *timeout;
	char **argv, **envp;
	char why[1024], tmp[12];
	int i, n, secs;

	state = next(&c);
	count = next(&c);
	if (!state || !count || number(count, &n) != 0)
		goto bad;
	for (i = 0; i < n; i++) {
		path = next(&c);
		timeout = next(&c);
		secs = 0;
		if (!path || !timeout || (*timeout && number(timeout, &secs) != 0))
			goto bad;
		argv = strings(&c);
		envp = argv ? strings(&c) : NULL;
		if (!envp)
			goto bad;
		if (run_hook(path, argv, envp, secs, state, strlen(state), why, sizeof(why)) < 0) {
			msg[0] = '\0';
			cat(msg, msg_len, "hooks.startContainer[", dec(i, tmp), "] ", path, ": ", why, NULL);
			return -1;
		}
	}
	return 0;
bad:
	msg[0] = '\0';
	cat(msg, msg_len, "hooks.startContainer: malformed hook list from pyrun", NULL);
	return -1;
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

/* struct __user_cap_header_struct and _data_struct (linux/capability.h) */
struct cap_header {
	uint32_t version;
	int pid;
};

struct cap_data {
	uint32_t effective;
	uint32_t permitted;
	uint32_t inheritable;
};

#define CAP_VERSION_3 0x20080522

/*
 * For a user other than root, execve(2) keeps only the ambient set: pyrun
 * made every permitted capability ambient for its execveat to us.  The
 * sets the process is to start with are set again here, exactly as pyrun
 * had them (capabilities(7)): capset(2), then the ambient set anew.
 */
static int set_caps(const char *spec)
{
	struct cap_header h = { CAP_VERSION_3, 0 };
	struct cap_data d[2];
	unsigned long long m[4];
	const char *s = spec;
	int i;

	for (i = 0; i < 4; i++) {
		if (digits(&s, 16, ~0ULL, &m[i]) < 0 || *s++ != (i < 3 ? ':' : '\0')) {
			errno = EINVAL;
			return -1;
		}
	}
	for (i = 0; i < 2; i++) {
		d[i].effective = (uint32_t)(m[0] >> (32 * i));
		d[i].permitted = (uint32_t)(m[1] >> (32 * i));
		d[i].inheritable = (uint32_t)(m[2] >> (32 * i));
	}
	if (syscall(SYS_capset, &h, d) < 0)
		return -1;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		return -1;
	for (i = 0; i < 64; i++)
		if ((m[3] >> i & 1) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, i, 0, 0) < 0)
			return -1;
	return 0;
}

/* struct open_how and openat2(2)'s flags (linux/openat2.h, which musl lacks) */
struct open_how {
	uint64_t flags;
	uint64_t mode;
	uint64_t resolve;
};

#define RESOLVE_NO_XDEV 0x01
#define RESOLVE_NO_MAGICLINKS 0x02
#define RESOLVE_NO_SYMLINKS 0x04
#define RESOLVE_BENEATH 0x08
#define PROC_SUPER_MAGIC 0x9fa0

static int openat2_(int dir, const char *path, uint64_t flags, uint64_t resolve)
{
	struct open_how how = { flags | O_CLOEXEC, 0, resolve };

	return (int)syscall(SYS_openat2, dir, path, &how, sizeof(how));
}

/*
 * The kernel takes a label from a write to /proc/self/attr only from the
 * process that opened the file, before any execve(2) of its (the file
 * remembers its opener's mm): so we open it, in the container's /proc, as
 * its mounts could never redirect it (CVE-2025-52881): /proc must be a
 * procfs (fstatfs(2)), and self/attr/NAME is resolved beneath it with no
 * mount crossed and no symlink but "self" (a plain one, within procfs).
 * AppArmor's own directory, attr/apparmor, is new in 5.8: attr/exec else.
 * 0, or -1 with why in msg.
 */
static int write_label(const char *spec, char *msg, size_t len)
{
	const uint64_t strict = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV;
	const char *text = strchr(spec, ':') + 1;
	char name[64] = "attr/";
	const char *what = "open(/proc)";
	int proc, self = -1, fd = -1, err;
	struct statfs sfs;

	if ((size_t)(text - spec) > sizeof(name) - 6)
		goto bad;
	memcpy(name + 5, spec, (size_t)(text - spec - 1));
	name[5 + (text - spec - 1)] = '\0';
	proc = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (proc >= 0 && (fstatfs(proc, &sfs) < 0 || sfs.f_type != PROC_SUPER_MAGIC)) {
		close(proc);
		msg[0] = '\0';
		cat(msg, len, "/proc is not a procfs: cannot write /proc/self/", name, NULL);
		return -1;
	}
	if (proc >= 0) {
		what = "openat2(/proc/self)";
		self = openat2_(proc, "self", O_PATH | O_DIRECTORY, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV);
		close(proc);
	}
	if (self >= 0) {
		what = name;
		fd = openat2_(self, name, O_WRONLY, strict);
		if (fd < 0 && errno == ENOENT && !strcmp(name, "attr/apparmor/exec"))
			fd = openat2_(self, "attr/exec", O_WRONLY, strict);
		close(self);
	}
	if (fd < 0)
		goto fail;
	what = "write(/proc/self/attr)";
	if (fstatfs(fd, &sfs) < 0 || sfs.f_type != PROC_SUPER_MAGIC) {
		errno = EXDEV;
		goto fail;
	}
	if (write(fd, text, strlen(text)) < 0)
		goto fail;
	close(fd);
	return 0;
fail:
	err = errno;
	if (fd >= 0)
		close(fd);
	msg[0] = '\0';
	cat(msg, len, what, " \"", text, "\": ", strerror(err), " (", errname(err), ")", NULL);
	return -1;
bad:
	msg[0] = '\0';
	cat(msg, len, "-l: bad label name", NULL);
	return -1;
}

/*
 * Before start: a failure is for "pyrun start" to report, through the fifo
 * it reads ("!" and why), and the container stops.
 */
static void fail_start(int fifo, const char *msg)
{
	char buf[4096];

	/* one write(2): start reads what one read(2) gives */
	buf[0] = '\0';
	cat(buf, sizeof(buf), "!", msg, NULL);
	if (fifo < 0 || write_all(fifo, buf, strlen(buf)) < 0)
		say("pyrun: ", msg, "\n", NULL);
	_exit(1);
}

int main(int argc, char **argv)
{
	struct opts o = { 0, NULL, -1, -1, -1, 0, -1, -1, NULL };
	struct bpf_prog prog = { 0, NULL };
	int fds[5], fifo = -1, i, err, start;
	struct cursor hooks = { NULL, NULL };
	char msg[4096];
	size_t len;
	pid_t child;
	int sfd;

	start = parse(argc, argv, &o);
	if (start < 0) {
		say("usage: pyrun-init [-i] [-c E:P:I:A] [-f FD|-d FD] [-s FD:FLAGS] [-k FD] [-e FD] [-l NAME:TEXT]",
		    " -- PATH ARGV0 [ARGS...]\n", NULL);
		return 2;
	}
	/* pyrun's descriptors, handed to us: none reaches the program. */
	fds[0] = o.fifo, fds[1] = o.state_dir, fds[2] = o.bpf, fds[3] = o.hooks, fds[4] = o.chan;
	for (i = 0; i < 5; i++)
		if (fds[i] >= 0)
			fcntl(fds[i], F_SETFD, FD_CLOEXEC);
	/* a hook that closes its stdin early must not kill us with SIGPIPE */
	signal(SIGPIPE, SIG_IGN);
	if (o.caps && set_caps(o.caps) < 0) {
		errno_text(msg, sizeof(msg), "capset", errno);
		report(o.chan, msg);
		return 1;
	}

	if (o.bpf >= 0 && read_filter(o.bpf, &prog) < 0) {
		errno_text(msg, sizeof(msg), "read(seccomp filter)", errno);
		report(o.chan, msg);
		return 1;
	}
	if (o.hooks >= 0) {
		hooks.at = read_all(o.hooks, &len);
		if (!hooks.at) {
			errno_text(msg, sizeof(msg), "read(hooks.startContainer)", errno);
			report(o.chan, msg);
			return 1;
		}
		hooks.end = hooks.at + len;
	}
	if (o.label && write_label(o.label, msg, sizeof(msg)) < 0) {
		report(o.chan, msg);
		return 1;
	}
	if (o.fifo >= 0 || o.state_dir >= 0) {
		fifo = open_fifo(&o);
		if (fifo < 0) {
			errno_text(msg, sizeof(msg), "open(exec.fifo)", errno);
			fail_start(-1, msg);
		}
	}
	/*
	 * As seccomp_load(3) would; from here on only what runc makes after
	 * its filter is in force: the hooks, write(2) and close(2) of the
	 * fifo, execve(2).
	 */
	if (prog.filter && syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, o.bpf_flags, &prog) < 0) {
		errno_text(msg, sizeof(msg), "seccomp(SECCOMP_SET_MODE_FILTER)", errno);
		if (fifo >= 0)
			fail_start(fifo, msg);
		report(o.chan, msg);
		return 1;
	}
	if (hooks.at && run_hooks(hooks, msg, sizeof(msg)) < 0)
		fail_start(fifo, msg);
	if (fifo >= 0 && write_all(fifo, "0", 1) < 0) {
		errno_text(msg, sizeof(msg), "write(exec.fifo)", errno);
		fail_start(-1, msg);
	}

	if (!o.init) {
		pyrun_signals_default();
		execve(argv[start], &argv[start + 1], environ);
		err = errno;
		msg[0] = '\0';
		cat(msg, sizeof(msg), "exec ", argv[start], ": ", strerror(err), " (", errname(err), ")", NULL);
		report(o.chan, msg);
		return err == ENOENT ? 127 : 126;
	}

	sfd = open_signalfd();
	if (sfd < 0) {
		say("pyrun-init: signalfd: ", strerror(errno), "\n", NULL);
		return 1;
	}
	child = spawn(argv[start], &argv[start + 1]);
	if (child < 0) {
		say("pyrun-init: fork: ", strerror(errno), "\n", NULL);
		return 1;
	}
	/* the child's execve(2) closes its copy: "pyrun start" returns then */
	if (fifo >= 0)
		close(fifo);
	release_stdio();

	return supervise(sfd, child);
}
