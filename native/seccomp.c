/* pyrun's seccomp layer — see pyrun_seccomp.h. Man pages: seccomp(2),
 * seccomp_init(3), seccomp_arch_add(3), seccomp_syscall_resolve_name(3),
 * seccomp_rule_add(3), seccomp_attr_set(3), seccomp_load(3),
 * seccomp_export_bpf(3), seccomp_notify_fd(3), seccomp_api_get(3), seccomp_version(3).
 * libseccomp functions already return -errno, which is passed through. */
#include <errno.h>
#include <stdio.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pyrun_seccomp.h"

void *pyrun_seccomp_init(uint32_t def_action)
{
	scmp_filter_ctx ctx = seccomp_init(def_action);

	/* Report the kernel's errno from seccomp_load() and friends rather than
	 * libseccomp's catch-all -ECANCELED (libseccomp >= 2.5). */
	if (ctx != NULL)
		seccomp_attr_set(ctx, SCMP_FLTATR_API_SYSRAWRC, 1);
	return ctx;
}

void pyrun_seccomp_release(void *ctx)
{
	seccomp_release(ctx);
}

int pyrun_seccomp_arch_known(const char *arch_name)
{
	return seccomp_arch_resolve_name(arch_name) == 0 ? -EINVAL : 0;
}

int pyrun_seccomp_arch_add(void *ctx, const char *arch_name)
{
	uint32_t arch = seccomp_arch_resolve_name(arch_name);
	int rc;

	if (arch == 0)
		return -EINVAL;
	rc = seccomp_arch_add(ctx, arch);
	return rc == -EEXIST ? 0 : rc;
}

int pyrun_seccomp_syscall_resolve(const char *name, int *nr)
{
	int rc = seccomp_syscall_resolve_name(name);

	if (rc == __NR_SCMP_ERROR)
		return -ENOENT;
	*nr = rc;
	return 0;
}

int pyrun_seccomp_rule_add(void *ctx, uint32_t action, int nr, unsigned int count,
			   const struct pyrun_arg_cmp *cmps)
{
	struct scmp_arg_cmp args[6];
	unsigned int i;

	if (count > 6)
		return -EINVAL;
	for (i = 0; i < count; i++) {
		args[i].arg = cmps[i].arg;
		args[i].op = (enum scmp_compare)cmps[i].op;
		args[i].datum_a = cmps[i].datum_a;
		args[i].datum_b = cmps[i].datum_b;
	}
	return seccomp_rule_add_array(ctx, action, nr, count, args);
}

int pyrun_seccomp_attr_set(void *ctx, int attr, uint32_t value)
{
	return seccomp_attr_set(ctx, (enum scmp_filter_attr)attr, value);
}

int pyrun_seccomp_load(void *ctx)
{
	return seccomp_load(ctx);
}

int pyrun_seccomp_export_bpf(void *ctx, int fd)
{
	return seccomp_export_bpf(ctx, fd);
}

int pyrun_seccomp_set_filter(unsigned int flags, const void *insns, unsigned int count)
{
	struct sock_fprog prog = { (unsigned short)count, (struct sock_filter *)insns };
	long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);

	return rc < 0 ? -errno : (int)rc;
}

int pyrun_seccomp_notify_fd(void *ctx)
{
	return seccomp_notify_fd(ctx);
}

unsigned int pyrun_seccomp_api_get(void)
{
	return seccomp_api_get();
}

int pyrun_seccomp_version(char *buf, unsigned int len)
{
	const struct scmp_version *v = seccomp_version();

	if (v == NULL)
		return -ENOSYS;
	snprintf(buf, len, "%u.%u.%u", v->major, v->minor, v->micro);
	return 0;
}
