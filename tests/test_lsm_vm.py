"""AppArmor (pyrun.security.lsm): ``process.apparmorProfile`` is applied by the
sealed pyrun-init through an attr file pyrun opened in the host's procfs,
so the program (not pyrun-init) runs confined; ``exec`` applies the
process's profile (the config's, or ``--apparmor``). Debian's kernel has
AppArmor on: these run in the VM (``make vm-test``) and need
``apparmor_parser`` (Debian package ``apparmor``) to load the test profile."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import pytest

from pyrun.security import lsm

pytestmark = pytest.mark.vm

NAME = "pyrun-test-no-tmp"
# Everything but writes under /tmp (paths are as the container sees them).
POLICY = f"""
profile {NAME} flags=(attach_disconnected,mediate_deleted) {{
  file,
  capability,
  network,
  signal,
  ptrace,
  unix,
  mount,
  umount,
  pivot_root,
  deny /tmp/** w,
}}
"""
SCRIPT = r"tr -d '\000\n' </proc/self/attr/current; echo; touch /tmp/x 2>/dev/null && echo wrote || echo denied"


@pytest.fixture(scope="module")
def profile():
    if not lsm.apparmor_enabled():
        pytest.skip("AppArmor is off on this kernel (make vm-test: Debian's kernel has it on)")
    parser = shutil.which("apparmor_parser") or shutil.which("/sbin/apparmor_parser")
    if parser is None:
        pytest.skip("apparmor_parser is not installed (Debian package apparmor)")
    if os.geteuid() != 0:
        pytest.skip("loading a profile needs root")
    if not os.path.exists(lsm.APPARMOR_PROFILES):
        subprocess.run(["mount", "-t", "securityfs", "securityfs", "/sys/kernel/security"], check=True)
    subprocess.run([parser, "-r"], input=POLICY, text=True, check=True, capture_output=True)
    yield NAME
    subprocess.run([parser, "-R"], input=POLICY, text=True, capture_output=True)


def _confined(config):
    config["process"]["apparmorProfile"] = NAME


def test_a_profile_confines_the_program_as_under_runc(rt, profile):
    from test_runc_semantics import Bundles

    config = rt.config(["sh", "-c", SCRIPT])
    _confined(config)
    p = rt("run", "-b", rt.bundle(config=config), f"lsm-{uuid.uuid4().hex[:8]}")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split("\n")[:2] == [f"{NAME} (enforce)", "denied"], p.stdout
    if shutil.which("runc"):
        b = Bundles(rt)
        try:
            r = b.runc("run", "-b", b.make(["sh", "-c", SCRIPT], _confined), b.cid("runc"))
            assert (r.returncode, r.stdout) == (0, p.stdout), r.stderr
        finally:
            b.cleanup()


def test_the_container_without_a_profile_is_unconfined(rt, profile):
    p = rt("run", "-b", rt.bundle(["sh", "-c", SCRIPT]), f"lsm-{uuid.uuid4().hex[:8]}")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split("\n")[:2] == ["unconfined", "wrote"], p.stdout


@pytest.mark.parametrize("init", ["--init", "--no-init"])
def test_exec_is_confined_by_the_configs_profile_and_by_apparmor_flag(rt, profile, init):
    cid = f"lsm-{uuid.uuid4().hex[:8]}"
    config = rt.config(["sleep", "60"])
    _confined(config)
    rt.ok("run", "-d", init, "-b", rt.bundle(config=config), cid)
    try:
        assert rt.ok("exec", cid, "sh", "-c", SCRIPT).split("\n")[:2] == [f"{NAME} (enforce)", "denied"]
        # the program: PID 1, or under --init pyrun-init's child (pyrun-init
        # itself is not confined: it never executes itself again)
        pid = rt.ok("exec", cid, "cat", "/proc/1/task/1/children").split()[0] if init == "--init" else "1"
        assert rt.ok("exec", cid, "cat", f"/proc/{pid}/attr/current").strip() == f"{NAME} (enforce)"
    finally:
        rt("delete", "--force", cid)
    cid = f"lsm-{uuid.uuid4().hex[:8]}"
    rt.ok("run", "-d", init, "-b", rt.bundle(["sleep", "60"]), cid)
    try:
        out = rt.ok("exec", "--apparmor", NAME, cid, "sh", "-c", SCRIPT)
        assert out.split("\n")[:2] == [f"{NAME} (enforce)", "denied"]
    finally:
        rt("delete", "--force", cid)


def test_a_profile_that_is_not_loaded_fails_create_in_one_line(rt, profile):
    config = rt.config(["true"])
    config["process"]["apparmorProfile"] = "pyrun-test-not-loaded"
    err = rt.create_fails_in_one_line(config)
    assert "process.apparmorProfile: 'pyrun-test-not-loaded': no such profile is loaded" in err


@pytest.mark.parametrize("init", ["--init", "--no-init"])
def test_a_mount_over_proc_self_attr_does_not_redirect_the_write(rt, profile, init):
    """CVE-2025-52881 class: the config binds a host file over the attr
    files of the process that sets the container up (its /proc/self at
    mount time: PID 1). Written by name, "exec PROFILE" would land in the
    host file and the program run unconfined; pyrun-init resolves the name
    with no mount crossed, so the container fails to start, in one line,
    and the host file is untouched."""
    decoy = os.path.join(rt.dir, "decoy")
    with open(decoy, "w") as f:
        f.write("decoy\n")
    rt._chown(decoy)
    config = rt.config(["sh", "-c", SCRIPT])
    _confined(config)
    for name in ("attr/apparmor/exec", "attr/exec"):
        config["mounts"].append({"destination": f"/proc/self/{name}", "type": "bind", "source": decoy,
                                 "options": ["bind"]})
    p = rt("run", init, "-b", rt.bundle(config=config), f"lsm-{uuid.uuid4().hex[:8]}")
    with open(decoy) as f:
        assert f.read() == "decoy\n"
    assert p.returncode != 0 and "wrote" not in p.stdout, p.stdout
    assert 'attr/apparmor/exec "exec pyrun-test-no-tmp": Cross-device link (EXDEV)' in p.stderr, p.stderr
