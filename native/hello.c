/*
 * hello: a static multi-call test binary for pyrun's test bundles.
 *
 * The "hello" bundle's rootfs holds this one file and nothing else: no
 * shell, no libc, no coreutils.  So everything a test wants to observe from
 * inside a container (ids, hostname, open fds, zombies, signal delivery...)
 * is a sub-command here, in the spirit of crun's tests/init.c.
 *
 * Usage: hello [COMMAND [ARGS...]]   (no command prints a greeting)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static int fail(const char *what, const char *arg)
{
	fprintf(stderr, "hello: %s %s: %s\n", what, arg, strerror(errno));
	return 1;
}

/* Sleep through signal interruptions, so the duration is what was asked. */
static void sleep_seconds(double seconds)
{
	struct timespec ts;

	ts.tv_sec = (time_t)seconds;
	ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

/* Print the numbers, sorted, on one line: test output must be stable. */
static void print_sorted(long *v, size_t n)
{
	size_t i;

	qsort(v, n, sizeof(*v), cmp_long);
	for (i = 0; i < n; i++)
		printf(i ? " %ld" : "%ld", v[i]);
	putchar('\n');
}

/* Numeric entries of a directory, e.g. pids in /proc or fds in /proc/self/fd. */
static size_t numeric_entries(DIR *d, long *v, size_t max, int skip)
{
	struct dirent *e;
	size_t n = 0;

	while ((e = readdir(d)) != NULL && n < max) {
		char *end;
		long num = strtol(e->d_name, &end, 10);

		if (*e->d_name == '\0' || *end != '\0' || num == skip)
			continue;
		v[n++] = num;
	}
	return n;
}

/*
 * The uid_map line is the quickest way to tell from inside whether we are
 * in a user namespace, so the greeting shows it with whitespace collapsed.
 */
static void print_uid_map(void)
{
	char line[256], *p;
	int space = 0, started = 0;
	FILE *f = fopen("/proc/self/uid_map", "r");

	if (f == NULL)
		return;
	if (fgets(line, sizeof(line), f) != NULL) {
		fputs("uid_map:", stdout);
		for (p = line; *p; p++) {
			if (*p == ' ' || *p == '\t' || *p == '\n') {
				space = 1;
				continue;
			}
			if (space || !started)
				putchar(' ');
			putchar(*p);
			space = 0;
			started = 1;
		}
		putchar('\n');
	}
	fclose(f);
}

static int cmd_greet(int argc, char **argv)
{
	struct utsname u;

	(void)argc;
	(void)argv;
	uname(&u);
	printf("Hello from pyrun! pid=%d uid=%d gid=%d hostname=%s\n",
	       (int)getpid(), (int)getuid(), (int)getgid(), u.nodename);
	print_uid_map();
	return 0;
}

static int cmd_true(int argc, char **argv) { (void)argc; (void)argv; return 0; }
static int cmd_false(int argc, char **argv) { (void)argc; (void)argv; return 1; }

static int cmd_exit(int argc, char **argv)
{
	(void)argc;
	return atoi(argv[1]);
}

static int cmd_echo(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++)
		printf(i > 1 ? " %s" : "%s", argv[i]);
	putchar('\n');
	return 0;
}

static int cmd_cat(int argc, char **argv)
{
	char buf[8192];
	int i;

	fflush(stdout);
	for (i = 1; i < argc; i++) {
		ssize_t n;
		int fd = open(argv[i], O_RDONLY);

		if (fd < 0)
			return fail("cat", argv[i]);
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			if (write(STDOUT_FILENO, buf, (size_t)n) != n)
				return fail("cat", "(stdout)");
		if (n < 0)
			return fail("cat", argv[i]);
		close(fd);
	}
	return 0;
}

static int cmd_write(int argc, char **argv)
{
	size_t len = strlen(argv[2]);
	int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);

	(void)argc;
	if (fd < 0)
		return fail("write", argv[1]);
	if (write(fd, argv[2], len) != (ssize_t)len || close(fd) < 0)
		return fail("write", argv[1]);
	return 0;
}

static int skip_dots(const struct dirent *e)
{
	return strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
}

static int cmd_ls(int argc, char **argv)
{
	struct dirent **names;
	int i, n;

	(void)argc;
	n = scandir(argv[1], &names, skip_dots, alphasort);
	if (n < 0)
		return fail("ls", argv[1]);
	for (i = 0; i < n; i++) {
		puts(names[i]->d_name);
		free(names[i]);
	}
	free(names);
	return 0;
}

static int cmd_pid(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("%d\n", (int)getpid());
	return 0;
}

static int cmd_ppid(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("%d\n", (int)getppid());
	return 0;
}

static int cmd_uid(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("%d %d\n", (int)getuid(), (int)getgid());
	return 0;
}

/* The effective uid: what a setuid binary got (execve(2), no_new_privs). */
static int cmd_euid(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("%d\n", (int)geteuid());
	return 0;
}

static int cmd_hostname(int argc, char **argv)
{
	struct utsname u;

	(void)argc;
	(void)argv;
	uname(&u);
	puts(u.nodename);
	return 0;
}

static int cmd_domainname(int argc, char **argv)
{
	struct utsname u;

	(void)argc;
	(void)argv;
	uname(&u);
	puts(u.domainname);
	return 0;
}

static int cmd_cwd(int argc, char **argv)
{
	char buf[PATH_MAX];

	(void)argc;
	(void)argv;
	if (getcwd(buf, sizeof(buf)) == NULL)
		return fail("cwd", "");
	puts(buf);
	return 0;
}

static int cmd_env(int argc, char **argv)
{
	char **e;

	(void)argc;
	(void)argv;
	for (e = environ; *e != NULL; e++)
		puts(*e);
	return 0;
}

/* umask() can only be read by setting it, so set it straight back. */
static int cmd_umask(int argc, char **argv)
{
	mode_t mask = umask(0);

	(void)argc;
	(void)argv;
	umask(mask);
	printf("%04o\n", (unsigned)mask);
	return 0;
}

static int cmd_groups(int argc, char **argv)
{
	int i, n = getgroups(0, NULL);
	gid_t *groups = calloc((size_t)n + 1, sizeof(*groups));
	long *v = calloc((size_t)n + 1, sizeof(*v));

	(void)argc;
	(void)argv;
	if (n < 0 || groups == NULL || v == NULL || getgroups(n, groups) < 0)
		return fail("groups", "");
	for (i = 0; i < n; i++)
		v[i] = (long)groups[i];
	print_sorted(v, (size_t)n);
	free(groups);
	free(v);
	return 0;
}

static int cmd_sleep(int argc, char **argv)
{
	(void)argc;
	sleep_seconds(strtod(argv[1], NULL));
	return 0;
}

static void on_sigterm(int sig)
{
	static const char msg[] = "got SIGTERM\n";

	(void)sig;
	/* Only async-signal-safe calls in here: write(2), not printf. */
	if (write(STDOUT_FILENO, msg, sizeof(msg) - 1) < 0)
		_exit(1);
	_exit(0);
}

/*
 * Only SIGTERM gets a handler, so a test can tell whether the runtime
 * delivered exactly the signal it asked for: anything else kills us.
 */
static int cmd_pause(int argc, char **argv)
{
	struct sigaction sa;

	(void)argc;
	(void)argv;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigterm;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	fflush(stdout);
	for (;;)
		pause();
	return 0;	/* not reached: the handler exits */
}

static int cmd_isatty(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	puts(isatty(STDIN_FILENO) ? "true" : "false");
	return 0;
}

/* Leaked descriptors are a runtime bug; this is how the tests spot them. */
static int cmd_fds(int argc, char **argv)
{
	long v[1024];
	size_t n;
	DIR *d = opendir("/proc/self/fd");

	(void)argc;
	(void)argv;
	if (d == NULL)
		return fail("fds", "/proc/self/fd");
	n = numeric_entries(d, v, 1024, dirfd(d));
	closedir(d);
	print_sorted(v, n);
	return 0;
}

/*
 * Each intermediate child exits at once and is reaped by us, so its child
 * is re-parented to PID 1 and becomes PID 1's zombie to clean up.
 */
static int cmd_orphans(int argc, char **argv)
{
	int i, count = atoi(argv[1]);

	(void)argc;
	fflush(stdout);
	for (i = 0; i < count; i++) {
		pid_t pid = fork();

		if (pid < 0)
			return fail("orphans", "fork");
		if (pid == 0) {
			if (fork() == 0)
				sleep_seconds(0.2);
			_exit(0);
		}
		waitpid(pid, NULL, 0);
	}
	sleep_seconds(1.0);
	return 0;
}

/* The state is the first field after the ")" closing the command name. */
static int is_zombie(long pid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p != NULL && p[1] == ' ' && p[2] == 'Z';
}

static int cmd_zombies(int argc, char **argv)
{
	long v[4096];
	size_t i, n;
	int zombies = 0;
	DIR *d = opendir("/proc");

	(void)argc;
	(void)argv;
	if (d == NULL)
		return fail("zombies", "/proc");
	n = numeric_entries(d, v, 4096, -1);
	closedir(d);
	for (i = 0; i < n; i++)
		zombies += is_zombie(v[i]);
	printf("%d\n", zombies);
	return 0;
}

static int cmd_ps(int argc, char **argv)
{
	long v[4096];
	size_t n;
	DIR *d = opendir("/proc");

	(void)argc;
	(void)argv;
	if (d == NULL)
		return fail("ps", "/proc");
	n = numeric_entries(d, v, 4096, -1);
	closedir(d);
	print_sorted(v, n);
	return 0;
}

/* clock: CLOCK_MONOTONIC and CLOCK_BOOTTIME seconds, as a time namespace
 * shows them (clock_gettime(2)). */
static int cmd_clock(int argc, char **argv)
{
	struct timespec mono, boot;

	(void)argc; (void)argv;
	clock_gettime(CLOCK_MONOTONIC, &mono);
	clock_gettime(CLOCK_BOOTTIME, &boot);
	printf("%lld %lld\n", (long long)mono.tv_sec, (long long)boot.tv_sec);
	return 0;
}

/* sched: sched_getattr(2) of the caller: policy flags nice priority
 * runtime deadline period. */
static int cmd_sched(int argc, char **argv)
{
	struct { unsigned int size, policy; unsigned long long flags; int nice;
		 unsigned int priority; unsigned long long runtime, deadline, period;
		 unsigned int util_min, util_max; } a;

	(void)argc; (void)argv;
	memset(&a, 0, sizeof(a));
	if (syscall(SYS_sched_getattr, 0, &a, sizeof(a), 0) < 0)
		return fail("sched_getattr", "");
	printf("%u %llu %d %u %llu %llu %llu\n", a.policy, a.flags, a.nice, a.priority,
	       a.runtime, a.deadline, a.period);
	return 0;
}

/* ioprio: ioprio_get(2) of the caller: class priority. */
static int cmd_ioprio(int argc, char **argv)
{
	long v;

	(void)argc; (void)argv;
	v = syscall(SYS_ioprio_get, 1 /* IOPRIO_WHO_PROCESS */, 0);
	if (v < 0)
		return fail("ioprio_get", "");
	printf("%ld %ld\n", v >> 13, v & 0xff);
	return 0;
}

/* personality: the current persona, in hex (personality(2) with 0xffffffff). */
static int cmd_personality(int argc, char **argv)
{
	(void)argc; (void)argv;
	printf("%#lx\n", (unsigned long)syscall(SYS_personality, 0xffffffffUL));
	return 0;
}

/*
 * The session keyring: its description ("type;uid;gid;perm;name") and its
 * security label (keyctl(2) KEYCTL_DESCRIBE, KEYCTL_GET_SECURITY), as
 * runc's key_label test prints them: "NAME LABEL".
 */
static int cmd_keylabel(int argc, char **argv)
{
	char desc[512], label[512];
	const char *name;
	long id, n;

	(void)argc; (void)argv;
	/* KEYCTL_GET_KEYRING_ID 0, KEY_SPEC_SESSION_KEYRING -3 */
	id = syscall(SYS_keyctl, 0, -3L, 0L);
	if (id < 0)
		return fail("keyctl", "GET_KEYRING_ID");
	n = syscall(SYS_keyctl, 6L, id, desc, (long)sizeof(desc) - 1);	/* KEYCTL_DESCRIBE */
	if (n < 0)
		return fail("keyctl", "DESCRIBE");
	desc[n < (long)sizeof(desc) ? n : (long)sizeof(desc) - 1] = '\0';
	name = strrchr(desc, ';') ? strrchr(desc, ';') + 1 : desc;
	n = syscall(SYS_keyctl, 17L, id, label, (long)sizeof(label) - 1);	/* KEYCTL_GET_SECURITY */
	if (n < 0)
		return fail("keyctl", "GET_SECURITY");
	label[n < (long)sizeof(label) ? n : (long)sizeof(label) - 1] = '\0';
	printf("%s %s\n", name, label);
	return 0;
}

struct command {
	const char *name;
	int min_args;		/* arguments needed after the command name */
	const char *usage;
	int (*run)(int argc, char **argv);
};

static const struct command commands[] = {
	{ "true",       0, "",             cmd_true },
	{ "false",      0, "",             cmd_false },
	{ "exit",       1, "N",            cmd_exit },
	{ "echo",       0, "ARGS...",      cmd_echo },
	{ "cat",        1, "FILE...",      cmd_cat },
	{ "write",      2, "FILE TEXT",    cmd_write },
	{ "ls",         1, "DIR",          cmd_ls },
	{ "pid",        0, "",             cmd_pid },
	{ "ppid",       0, "",             cmd_ppid },
	{ "uid",        0, "",             cmd_uid },
	{ "euid",       0, "",             cmd_euid },
	{ "hostname",   0, "",             cmd_hostname },
	{ "domainname", 0, "",             cmd_domainname },
	{ "cwd",        0, "",             cmd_cwd },
	{ "env",        0, "",             cmd_env },
	{ "umask",      0, "",             cmd_umask },
	{ "groups",     0, "",             cmd_groups },
	{ "sleep",      1, "SECONDS",      cmd_sleep },
	{ "pause",      0, "",             cmd_pause },
	{ "isatty",     0, "",             cmd_isatty },
	{ "fds",        0, "",             cmd_fds },
	{ "orphans",    1, "N",            cmd_orphans },
	{ "zombies",    0, "",             cmd_zombies },
	{ "ps",         0, "",             cmd_ps },
	{ "clock",      0, "",             cmd_clock },
	{ "sched",      0, "",             cmd_sched },
	{ "ioprio",     0, "",             cmd_ioprio },
	{ "personality", 0, "",            cmd_personality },
	{ "keylabel",   0, "",             cmd_keylabel },
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static int usage(void)
{
	size_t i;

	fputs("usage: hello [COMMAND [ARGS...]]\ncommands:\n", stderr);
	for (i = 0; i < N_COMMANDS; i++)
		fprintf(stderr, "  %s%s%s\n", commands[i].name,
			*commands[i].usage ? " " : "", commands[i].usage);
	return 2;
}

int main(int argc, char **argv)
{
	size_t i;

	if (argc < 2)
		return cmd_greet(argc, argv);

	for (i = 0; i < N_COMMANDS; i++) {
		if (strcmp(argv[1], commands[i].name) != 0)
			continue;
		if (argc - 2 < commands[i].min_args)
			return usage();
		return commands[i].run(argc - 1, argv + 1);
	}
	return usage();
}
