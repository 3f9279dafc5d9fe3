/* The device cgroup of cgroup v2: a BPF_PROG_TYPE_CGROUP_DEVICE program
 * built from linux.resources.devices and attached to the container's
 * cgroup (bpf(2); the kernel's Documentation/admin-guide/cgroup-v2.rst,
 * "Device controller"). */
#ifndef PYRUN_DEVICES_BPF_H
#define PYRUN_DEVICES_BPF_H

struct pyrun_dev_rule {
	int type;    /* 0: any ('a'), 1: block ('b'), 2: char ('c') */
	int major;   /* -1: any */
	int minor;   /* -1: any */
	int access;  /* bits: 1 mknod, 2 read, 4 write (BPF_DEVCG_ACC_*) */
	int allow;   /* 1 allow, 0 deny */
};

/* Rules are in config order; the last one that matches decides, and
 * default_allow decides when none does. Returns 0 or -errno. */
int pyrun_devices_bpf_attach(int cgroup_fd, const struct pyrun_dev_rule *rules,
			     int nrules, int default_allow);
#endif
