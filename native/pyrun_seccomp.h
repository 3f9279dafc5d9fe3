/* pyrun's seccomp layer: a thin wrapper over libseccomp (seccomp_init(3),
 * seccomp_rule_add(3), seccomp_attr_set(3), seccomp_load(3)...).
 * One function per operation and no policy: pyrun/security/seccomp.py decides what
 * goes into a filter. Functions returning int give 0 (or a number, or an fd)
 * on success and -errno on failure. A filter context is an opaque pointer. */
#ifndef PYRUN_SECCOMP_H
#define PYRUN_SECCOMP_H
/* Not named seccomp.h: with native/ on the include path that name would
 * hide libseccomp's own <seccomp.h>. */
#include <stdint.h>
#include <seccomp.h>

/* Actions that take a 16-bit value, with that value 0: Python ORs in the
 * errno (SCMP_ACT_ERRNO(n)) or the ptrace message (SCMP_ACT_TRACE(n)). */
#define PYRUN_SCMP_ACT_ERRNO_BASE SCMP_ACT_ERRNO(0)
#define PYRUN_SCMP_ACT_TRACE_BASE SCMP_ACT_TRACE(0)

/* One argument comparison, as in struct scmp_arg_cmp. */
struct pyrun_arg_cmp {
	unsigned int arg;   /* argument index, 0..5 */
	int op;             /* SCMP_CMP_* */
	uint64_t datum_a;   /* value (the mask for SCMP_CMP_MASKED_EQ) */
	uint64_t datum_b;   /* the value to compare the masked argument with */
};

/* A new filter whose default action is def_action, or NULL (bad action,
 * no memory). */
void *pyrun_seccomp_init(uint32_t def_action);
void pyrun_seccomp_release(void *ctx);
/* Adds an architecture by libseccomp's name for it ("x86_64", "aarch64"...;
 * seccomp_arch_resolve_name(3)). -EINVAL for an unknown name; 0 when the
 * architecture is already in the filter. */
int pyrun_seccomp_arch_add(void *ctx, const char *arch_name);
/* 0 when libseccomp knows the architecture name, -EINVAL otherwise. */
int pyrun_seccomp_arch_known(const char *arch_name);
/* Sets *nr to the system call number for name on the native architecture:
 * a negative libseccomp pseudo-number when the call exists only on other
 * architectures. -ENOENT when libseccomp does not know the name. */
int pyrun_seccomp_syscall_resolve(const char *name, int *nr);
/* seccomp_rule_add_array(3): count comparisons, ANDed. */
int pyrun_seccomp_rule_add(void *ctx, uint32_t action, int nr, unsigned int count,
			   const struct pyrun_arg_cmp *cmps);
/* seccomp_attr_set(3): attr is an SCMP_FLTATR_* value. */
int pyrun_seccomp_attr_set(void *ctx, int attr, uint32_t value);
/* seccomp_load(3): installs the filter in the calling thread. */
int pyrun_seccomp_load(void *ctx);
/* seccomp_export_bpf(3): writes the filter's BPF program (struct
 * sock_filter[]) to fd, for a loader that has no libseccomp. */
int pyrun_seccomp_export_bpf(void *ctx, int fd);
/* seccomp(2) SECCOMP_SET_MODE_FILTER with a program of count instructions
 * (struct sock_filter[]): what seccomp_load(3) does, for a program pyrun
 * patched. The listener fd with SECCOMP_FILTER_FLAG_NEW_LISTENER, else 0. */
int pyrun_seccomp_set_filter(unsigned int flags, const void *insns, unsigned int count);
/* seccomp_notify_fd(3): the listener fd of a loaded filter that has an
 * SCMP_ACT_NOTIFY rule. */
int pyrun_seccomp_notify_fd(void *ctx);
/* seccomp_api_get(3): the API level libseccomp and the kernel support. */
unsigned int pyrun_seccomp_api_get(void);
/* seccomp_version(3): "major.minor.micro" into buf. */
int pyrun_seccomp_version(char *buf, unsigned int len);
#endif
