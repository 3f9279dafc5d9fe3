"""AppArmor and SELinux (pyrun.security.lsm) on the host, whose kernel has neither:
what can be checked without them. The labels themselves are checked where
the kernel has the LSM on: tests/test_lsm_vm.py (AppArmor, make vm-test).

- the ``context=`` option built for linux.mountLabel, and the mounts runc
  leaves without one;
- the label's write, by the sealed pyrun-init, reaches only the process's
  own attr file in a real procfs: a mount over ``/proc/PID/attr/exec``
  (or the whole ``attr``, or ``/proc``) fails it (EXDEV, "not a procfs")
  and the file mounted there is untouched (CVE-2025-52881 class). The
  name is resolved with openat2(2) and the write goes to that descriptor:
  a mount made after the open cannot move it, one made before is crossed
  and refused, so a race has no third outcome to test;
- where SELinux and AppArmor are off the fields are ignored (runc 1.1
  refuses them instead: see pyrun.security.lsm).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from pyrun.security import lsm

LABEL = "system_u:object_r:container_file_t:s0:c1,c2"
PROCESS_LABEL = "system_u:system_r:container_t:s0:c1,c2"


# ------------------------------------------------------------ mount options

@pytest.mark.parametrize("fstype,data,want", [
    ("tmpfs", "mode=755,size=65536k", f'mode=755,size=65536k,context="{LABEL}"'),
    ("tmpfs", "", f'context="{LABEL}"'),
    ("devpts", "newinstance,ptmxmode=0666", f'newinstance,ptmxmode=0666,context="{LABEL}"'),
    ("overlay", "lowerdir=/a", f'lowerdir=/a,context="{LABEL}"'),
    # runc: "Selinux kernels do not support labeling of /proc or /sys"; an
    # mqueue gets the security.selinux attribute instead; cgroups, binds none
    ("proc", "", ""),
    ("sysfs", "", ""),
    ("mqueue", "", ""),
    ("cgroup", "", ""),
    ("cgroup2", "nsdelegate", "nsdelegate"),
    ("bind", "", ""),
])
def test_mount_label_is_the_context_option_of_the_mounts_runc_labels(fstype, data, want):
    assert lsm.mount_data(data, fstype, LABEL) == want


def test_no_mount_label_leaves_the_options_as_they_are():
    assert lsm.mount_data("mode=755", "tmpfs", None) == "mode=755"
    assert lsm.mount_data("mode=755", "tmpfs", "") == "mode=755"


# ------------------------------------------------ the write of the exec label

def _pyrun_init() -> str:
    from pyrun.stages.pid1 import INIT_PATH

    return INIT_PATH


# What the private mount namespace (unshare -m) puts over the attr file of
# the shell that then becomes pyrun-init (exec keeps its pid: $$ is its
# /proc/self), and the error pyrun-init must stop with. The first is
# CVE-2025-52881's shape: another procfs file (here kernel.domainname, of a
# UTS namespace of the test's own) passes an fstatfs(2) check, and a write
# by name lands in it (seen with pyrun-init's open changed to open(2) of
# /proc/self/attr/exec: domainname "pwned").
COVERS = {
    "a bind of a sysctl over attr/exec": ("mount --bind /proc/sys/kernel/domainname /proc/$$/attr/exec",
                                          "Cross-device link (EXDEV)"),
    "a bind over attr/exec": ('mount --bind "$DECOY" /proc/$$/attr/exec', "Cross-device link (EXDEV)"),
    "a tmpfs over attr": ('mount -t tmpfs none /proc/$$/attr && cp "$DECOY" /proc/$$/attr/exec '
                          '&& mkdir /proc/$$/attr/apparmor && cp "$DECOY" /proc/$$/attr/apparmor/exec',
                          "Cross-device link (EXDEV)"),
    "a tmpfs over /proc": ('mkdir -p "$TMP/fake/attr/apparmor" && cp "$DECOY" "$TMP/fake/attr/exec" '
                           '&& cp "$DECOY" "$TMP/fake/attr/apparmor/exec" && mount -t tmpfs none /proc '
                           '&& ln -s "$TMP/fake" /proc/self',
                           "/proc is not a procfs"),
}
# SELinux's context goes to attr/exec; AppArmor's "exec PROFILE" to
# attr/apparmor/exec (attr/exec on kernels without the per-LSM directory)
LABELS = {"selinux": f"exec:{PROCESS_LABEL}", "apparmor": "apparmor/exec:exec pyrun-test-profile"}


@pytest.mark.parametrize("lsm_name", sorted(LABELS))
@pytest.mark.parametrize("cover", sorted(COVERS))
def test_a_mount_over_proc_self_attr_cannot_redirect_the_label(tmp_path, lsm_name, cover):
    if os.geteuid() != 0:
        pytest.skip("mounts over /proc need root (in a private mount namespace)")
    decoy = tmp_path / "decoy"
    decoy.write_text("decoy\n")
    setup, error = COVERS[cover]
    inner = f'{setup} && exec "$INIT" -l "$LABEL" -- /bin/true true'
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DECOY": str(decoy), "TMP": str(tmp_path),
           "INIT": _pyrun_init(), "LABEL": LABELS[lsm_name], "INNER": inner}
    # (domainname through a descriptor opened first: /proc may be covered after)
    outer = 'exec 3</proc/sys/kernel/domainname; sh -c "$INNER" 3<&-; echo "status $?"; echo "domainname $(cat <&3)"'
    p = subprocess.run(["unshare", "-m", "-u", "--propagation", "private", "sh", "-c", outer], env=env,
                       capture_output=True, text=True, timeout=30)
    assert p.stdout.splitlines() == ["status 1", "domainname (none)"], (p.stdout, p.stderr)
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("pyrun: ") and error in p.stderr, p.stderr
    for f in [decoy] + sorted(tmp_path.glob("fake/**/exec")):
        assert f.read_text() == "decoy\n", f


# --------------------------------------------------- where SELinux is off

def _lsms_off():
    if lsm.apparmor_enabled() or lsm.selinux_enabled():
        pytest.skip("this host has AppArmor or SELinux on")


def test_selinux_labels_are_ignored_where_selinux_is_off(rt):
    """Engines send them only where SELinux is on (podman, CRI-O); a config
    that carries them elsewhere runs as without them, no context= on any
    mount. (runc 1.1 refuses process.selinuxLabel here, and fails its
    first mount with the mountLabel's context=: EINVAL.)"""
    _lsms_off()
    config = rt.config(["sh", "-c", "cat /proc/self/mountinfo"])
    config["process"]["selinuxLabel"] = PROCESS_LABEL
    config["linux"]["mountLabel"] = LABEL
    config["linux"]["maskedPaths"] = ["/proc/acpi", "/proc/kcore"]
    p = rt("--debug", "run", "-b", rt.bundle(config=config), f"lsm-{uuid.uuid4().hex[:8]}")
    assert p.returncode == 0, p.stderr
    assert "context=" not in p.stdout
    assert " tmpfs " in p.stdout and " devpts " in p.stdout and " mqueue " in p.stdout, p.stdout
    assert f"process.selinuxLabel {PROCESS_LABEL!r} ignored" in p.stderr
    assert f"linux.mountLabel {LABEL!r} ignored" in p.stderr


def test_exec_process_label_is_ignored_where_selinux_is_off(rt):
    _lsms_off()
    cid = f"lsm-{uuid.uuid4().hex[:8]}"
    rt.ok("run", "-d", "-b", rt.bundle(["sleep", "60"]), cid)
    try:
        assert rt.ok("exec", "--process-label", PROCESS_LABEL, cid, "echo", "ran").strip() == "ran"
    finally:
        rt("delete", "--force", cid)


def test_features_claims_apparmor_and_selinux(rt):
    """features-linux.md: "irrelevant to the availability of AppArmor /
    SELinux on the host": whether pyrun applies them (as runc says)."""
    linux = json.loads(rt.ok("features"))["linux"]
    assert linux["apparmor"] == {"enabled": True} and linux["selinux"] == {"enabled": True}
