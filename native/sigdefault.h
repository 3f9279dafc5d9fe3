/* Every signal disposition back to SIG_DFL, before the container's process
 * is executed: an ignored signal stays ignored across execve(2) (signal(7)),
 * and whatever started pyrun may have ignored some. Raw rt_sigaction(2):
 * glibc's sigaction() refuses the two real-time signals it reserves (32 and
 * 33), and those too can arrive ignored from the caller. For native/init.c,
 * which makes every container's last execve(2), and the hooks it starts. */
#ifndef PYRUN_SIGDEFAULT_H
#define PYRUN_SIGDEFAULT_H
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct pyrun_kernel_sigaction {
	void (*handler)(int);
	unsigned long flags;
	void (*restorer)(void);
	unsigned long mask; /* the kernel's sigset_t: 64 bits */
};

static inline void pyrun_signals_default(void)
{
	struct pyrun_kernel_sigaction dfl;

	memset(&dfl, 0, sizeof(dfl));
	dfl.handler = SIG_DFL;
	for (int sig = 1; sig <= 64; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		(void)syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof(dfl.mask));
	}
}
#endif
