/* See devices_bpf.h. The program reads struct bpf_cgroup_dev_ctx
 * { u32 access_type (access << 16 | type); u32 major; u32 minor; } and
 * returns 1 (allow) or 0 (deny). One block per rule, the last rule first,
 * so that the first block that matches is the rule that wins:
 *
 *   r2 = type, r3 = access, r4 = major, r5 = minor
 *   rule N:  if r2 != TYPE goto next; if (r3 & ~ACCESS) goto next;
 *            if r4 != MAJOR goto next; if r5 != MINOR goto next;
 *            r0 = ALLOW; exit
 *   ...
 *   r0 = DEFAULT; exit
 */
#include "devices_bpf.h"

#include <errno.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define INSN(c, d, s, o, i) ((struct bpf_insn){ .code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i) })
#define LDX_W(d, s, o)   INSN(BPF_LDX | BPF_MEM | BPF_W, d, s, o, 0)
#define AND_K(d, i)      INSN(BPF_ALU | BPF_AND | BPF_K, d, 0, 0, i)
#define RSH_K(d, i)      INSN(BPF_ALU | BPF_RSH | BPF_K, d, 0, 0, i)
#define MOV64_K(d, i)    INSN(BPF_ALU64 | BPF_MOV | BPF_K, d, 0, 0, i)
#define JNE_K(d, i, o)   INSN(BPF_JMP | BPF_JNE | BPF_K, d, 0, o, i)
#define JSET_K(d, i, o)  INSN(BPF_JMP | BPF_JSET | BPF_K, d, 0, o, i)
#define EXIT()           INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

/* Instructions in one rule's block. */
static int block_len(const struct pyrun_dev_rule *r)
{
	return (r->type != 0) + ((r->access & 7) != 7) + (r->major >= 0) + (r->minor >= 0) + 2;
}

static int emit_rule(struct bpf_insn *p, const struct pyrun_dev_rule *r)
{
	int n = 0, last = block_len(r) - 1; /* a jump from n lands at last + 1 */

	if (r->type != 0) {
		p[n] = JNE_K(2, r->type, last - n);
		n++;
	}
	if ((r->access & 7) != 7) {
		/* any requested bit outside the rule's access: no match */
		p[n] = JSET_K(3, ~r->access & 7, last - n);
		n++;
	}
	if (r->major >= 0) {
		p[n] = JNE_K(4, r->major, last - n);
		n++;
	}
	if (r->minor >= 0) {
		p[n] = JNE_K(5, r->minor, last - n);
		n++;
	}
	p[n++] = MOV64_K(0, r->allow ? 1 : 0);
	p[n++] = EXIT();
	return n;
}

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

int pyrun_devices_bpf_attach(int cgroup_fd, const struct pyrun_dev_rule *rules,
			     int nrules, int default_allow)
{
	int total = 6 + 2, n = 0, prog, rc;
	struct bpf_insn *insns;
	union bpf_attr attr;

	for (int i = 0; i < nrules; i++)
		total += block_len(&rules[i]);
	insns = calloc(total, sizeof(*insns));
	if (insns == NULL)
		return -ENOMEM;
	insns[n++] = LDX_W(2, 1, 0);   /* access_type */
	insns[n++] = AND_K(2, 0xFFFF); /* type */
	insns[n++] = LDX_W(3, 1, 0);
	insns[n++] = RSH_K(3, 16);     /* access */
	insns[n++] = LDX_W(4, 1, 4);   /* major */
	insns[n++] = LDX_W(5, 1, 8);   /* minor */
	for (int i = nrules - 1; i >= 0; i--) {
		n += emit_rule(&insns[n], &rules[i]);
		/* A rule that matches everything ("a *:* rwm", the usual first
		 * entry) ends the program: what would follow is unreachable,
		 * and the verifier refuses unreachable instructions (EINVAL). */
		if (block_len(&rules[i]) == 2)
			goto done;
	}
	insns[n++] = MOV64_K(0, default_allow ? 1 : 0);
	insns[n++] = EXIT();
done:

	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
	attr.insns = (uint64_t)(uintptr_t)insns;
	attr.insn_cnt = n;
	attr.license = (uint64_t)(uintptr_t)"Apache-2.0";
	prog = sys_bpf(BPF_PROG_LOAD, &attr);
	rc = prog < 0 ? -errno : 0;
	free(insns);
	if (prog < 0)
		return rc;

	memset(&attr, 0, sizeof(attr));
	attr.target_fd = cgroup_fd;
	attr.attach_bpf_fd = prog;
	attr.attach_type = BPF_CGROUP_DEVICE;
	attr.attach_flags = BPF_F_ALLOW_MULTI;
	rc = sys_bpf(BPF_PROG_ATTACH, &attr) < 0 ? -errno : 0;
	close(prog); /* the attachment holds the program */
	return rc;
}
