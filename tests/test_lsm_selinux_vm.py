"""SELinux (pyrun.security.lsm), in the VM booted with ``security=selinux`` and
Debian's policy (selinux-policy-default) loaded permissive: ``make
vm-test-selinux``. Permissive: nothing is denied, but every label is
applied as under enforcing, which is what is checked here, beside runc:

- process.selinuxLabel is the program's context (/proc/self/attr/current)
  and its session keyring's (KEYCTL_GET_SECURITY), for ``run`` and ``exec``
  (the config's label, and ``--process-label``);
- linux.mountLabel is the context of the mounts runc labels (tmpfs, devpts,
  an mqueue's root, a masked directory's tmpfs);
- a context the policy does not know fails ``create`` in one line.
"""

from __future__ import annotations

import os
import uuid

import pytest

from pyrun.security import lsm

pytestmark = pytest.mark.selinux

SCRIPT = "tr -d '\\000\\n' </proc/self/attr/current; echo; hello keylabel"


def _valid(context: str) -> bool:
    """The policy knows ``context`` (selinuxfs's context file: EINVAL if not)."""
    try:
        fd = os.open("/sys/fs/selinux/context", os.O_RDWR)
    except OSError:
        return False
    try:
        os.write(fd, context.encode())
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _pick(*candidates: str) -> str:
    for c in candidates:
        if _valid(c):
            return c
    pytest.fail(f"the loaded policy knows none of {candidates}")


@pytest.fixture(scope="module")
def labels():
    if not lsm.selinux_enabled():
        pytest.skip("SELinux is off (make vm-test-selinux boots the VM with it on)")
    # container-selinux's types (Fedora, RHEL); Debian's refpolicy has no
    # container module: its virt module's (contexts/virtual_domain_context
    # and virtual_image_context), with MCS categories as podman gives them
    process = _pick("system_u:system_r:container_t:s0:c1,c2", "system_u:system_r:svirt_t:s0:c1,c2")
    other = process.replace("c1,c2", "c3,c4")
    mount = _pick("system_u:object_r:container_file_t:s0:c1,c2", "system_u:object_r:svirt_image_t:s0:c1,c2")
    return process, other, mount


def _keyctl_allowed(config: dict) -> dict:
    """Without the seccomp profile ``pyrun spec`` writes (Docker's, which
    refuses keyctl(2): EPERM), as ``runc spec``'s config: hello keylabel
    reads the session keyring."""
    config["linux"].pop("seccomp", None)
    return config


def _runc_beside(rt, args, edit):
    """runc's output for the same config, or None where runc is absent."""
    import shutil

    from test_runc_semantics import Bundles

    if not shutil.which("runc"):
        return None, None
    b = Bundles(rt)
    return b, (b, b.make(args, edit), b.cid("runc"))


def test_the_process_label_is_the_programs_and_its_keyrings_as_under_runc(rt, labels):
    process = labels[0]

    def edit(config):
        config["process"]["selinuxLabel"] = process

    cid = f"se-{uuid.uuid4().hex[:8]}"
    config = _keyctl_allowed(rt.config(["sh", "-c", SCRIPT]))
    edit(config)
    p = rt("run", "-b", rt.bundle(config=config), cid)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [process, f"_ses.{cid} {process}"], p.stdout
    b, runc = _runc_beside(rt, ["sh", "-c", SCRIPT], edit)
    if b is not None:
        try:
            _, bundle, rcid = runc
            r = b.runc("run", "-b", bundle, rcid)
            assert (r.returncode, r.stdout.splitlines()) == (0, [process, f"_ses.{rcid} {process}"]), r.stderr
        finally:
            b.cleanup()


def test_exec_takes_the_configs_label_or_process_label(rt, labels):
    process, other, _ = labels
    cid = f"se-{uuid.uuid4().hex[:8]}"
    config = _keyctl_allowed(rt.config(["sleep", "60"]))
    config["process"]["selinuxLabel"] = process
    rt.ok("run", "-d", "-b", rt.bundle(config=config), cid)
    try:
        assert rt.ok("exec", cid, "sh", "-c", SCRIPT).splitlines() == [process, f"_ses.{cid} {process}"]
        out = rt.ok("exec", "--process-label", other, cid, "sh", "-c", SCRIPT)
        assert out.splitlines() == [other, f"_ses.{cid} {other}"]
    finally:
        rt("delete", "--force", cid)


def _mount_labels(pid: int) -> dict:
    """security.selinux of each mount's root the container has, seen from
    here through /proc/PID/root."""
    got = {}
    for path in ("/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/proc/acpi", "/proc/scsi"):
        where = f"/proc/{pid}/root{path}"
        if os.path.isdir(where):  # (a masked path this kernel lacks is skipped)
            got[path] = os.getxattr(where, "security.selinux").rstrip(b"\0").decode()
    return got


def test_the_mount_label_is_on_the_mounts_runc_labels(rt, labels):
    mount = labels[2]

    def edit(config):
        config["linux"]["mountLabel"] = mount
        config["linux"]["maskedPaths"] = ["/proc/acpi", "/proc/scsi"]

    cid = f"se-{uuid.uuid4().hex[:8]}"
    config = rt.config(["sleep", "60"])
    edit(config)
    rt.ok("run", "-d", "-b", rt.bundle(config=config), cid)
    try:
        import json

        got = _mount_labels(json.loads(rt.ok("state", cid))["pid"])
    finally:
        rt("delete", "--force", cid)
    assert "/dev/mqueue" in got and "/proc/acpi" in got
    assert got == {path: mount for path in got}, got
    b, runc = _runc_beside(rt, ["sleep", "60"], edit)
    if b is not None:
        try:
            import json

            _, bundle, rcid = runc
            r = b.runc("run", "-d", "-b", bundle, rcid)
            assert r.returncode == 0, r.stderr
            assert _mount_labels(json.loads(b.runc("state", rcid).stdout)["pid"]) == got
        finally:
            b.runc("delete", "--force", rcid)
            b.cleanup()


def test_a_context_the_policy_does_not_know_fails_create_in_one_line(rt, labels):
    config = rt.config(["true"])
    config["process"]["selinuxLabel"] = "system_u:system_r:pyrun_no_such_t:s0"
    err = rt.create_fails_in_one_line(config)
    assert "process.selinuxLabel: 'system_u:system_r:pyrun_no_such_t:s0': not a valid context" in err


def test_a_mount_label_the_policy_does_not_know_fails_create_in_one_line(rt, labels):
    cid = f"se-{uuid.uuid4().hex[:8]}"
    config = rt.config(["true"])
    config["linux"]["mountLabel"] = "system_u:object_r:pyrun_no_such_t:s0"
    p = rt("create", "-b", rt.bundle(config=config), cid)
    assert p.returncode != 0
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "linux.mountLabel: 'system_u:object_r:pyrun_no_such_t:s0': not a valid context" in p.stderr
