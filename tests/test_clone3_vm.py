"""Starting processes in their cgroup v2 with clone3(2) CLONE_INTO_CGROUP
(pyrun.cgroups.v2.fork_into): create's stage 1 and exec's helper start
inside the container's cgroup, with no write to cgroup.procs; where the
kernel or a seccomp profile refuses clone3, or the test switch says so,
fork(2) + cgroup.procs as before. cgroup v2 only: these run in the VM
(``make vm-test``), rootful and rootless (a delegated subtree); exec into a
systemd scope in the VM that boots systemd (``make vm-test-systemd``)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from pyrun import cgroups

CLONE3 = "step clone3(CLONE_INTO_CGROUP)"
MOVE = "step write cgroup.procs"

# pyrun under a seccomp filter that answers clone3(2) with ENOSYS, as
# container engines' default profiles do (glibc's own clone3 users fall back
# to clone(2) on it): a kernel without clone3, made on demand.
NO_CLONE3 = """
import os, sys
import _prctl
from pyrun.security import seccomp
if os.geteuid() != 0:
    _prctl.prctl(_prctl.PR_SET_NO_NEW_PRIVS, 1)
seccomp.build({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
    {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]}).load()
os.execv(sys.argv[1], sys.argv[1:])
"""


@pytest.fixture
def v2(rt):
    if not cgroups.available():
        pytest.skip("needs a cgroup v2 hierarchy (make vm-test)")
    return rt


def cgroup_of(pid: int) -> str:
    with open(f"/proc/{pid}/cgroup") as f:
        return "/sys/fs/cgroup" + next(line[3:].strip() for line in f if line.startswith("0::"))


def read_pid(path: str) -> int:
    with open(path) as f:
        return int(f.read())


def how(rt, way: str):
    """Make ``rt`` start processes ``way``: clone3 (the default), the test
    switch's fallback, or clone3 refused with ENOSYS by seccomp."""
    if way == "fallback":
        rt.env.update(PYRUN_TEST_HOOKS="1", PYRUN_NO_CLONE_INTO_CGROUP="1")
    elif way == "enosys":
        python, *rest = rt.prefix  # [python, -m, pyrun]
        rt.prefix = [python, "-c", NO_CLONE3, python, *rest]


def expect(way: str, debug: str) -> None:
    """--debug's steps: cloned in, or moved by a write to cgroup.procs."""
    if way == "clone3":
        assert CLONE3 in debug and MOVE not in debug, debug
    elif way == "fallback":
        assert MOVE in debug and CLONE3 not in debug, debug
    else:  # tried, refused, and said so
        assert CLONE3 in debug and MOVE in debug, debug
        assert "clone3(CLONE_INTO_CGROUP): Function not implemented (ENOSYS)" in debug, debug


@pytest.mark.vm
@pytest.mark.parametrize("way", ["clone3", "fallback", "enosys"])
def test_create_and_exec_start_in_the_container_cgroup(v2, way):
    how(v2, way)
    config = v2.config(["sleep", "600"])
    config["linux"]["resources"] = {"pids": {"limit": 20}}
    p = v2("--debug", "run", "-d", "-b", v2.bundle(config=config), "c1")
    assert p.returncode == 0, p.stderr
    pid1 = v2.state("c1")["pid"]
    path = cgroup_of(pid1)
    assert path.endswith("/pyrun/c1"), path
    assert pid1 in [int(x) for x in open(f"{path}/cgroup.procs").read().split()]
    expect(way, p.stderr)

    # exec: into the container's cgroup, and with --cgroup into a sub-cgroup
    sub = os.path.join(path, "sub")
    os.mkdir(sub)
    if v2.rootless:
        for name in ("", "cgroup.procs"):
            os.chown(os.path.join(sub, name), v2.uid, v2.gid)
    for extra, where in (((), path), (("--cgroup", "sub"), sub)):
        pid_file = os.path.join(v2.dir, f"exec{len(extra)}.pid")
        p = v2("--debug", "exec", "-d", *extra, "--pid-file", pid_file, "c1", "sleep", "600")
        assert p.returncode == 0, p.stderr
        pid = read_pid(pid_file)
        try:
            assert cgroup_of(pid) == where
        finally:
            os.kill(pid, signal.SIGKILL)
        expect(way, p.stderr)
    deadline = time.monotonic() + 10
    while open(f"{sub}/cgroup.procs").read() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.rmdir(sub)  # the container's rmdir needs it gone
    v2.ok("delete", "--force", "c1")
    assert not os.path.exists(path)


@pytest.mark.vm
def test_exec_into_a_full_cgroup_names_clone3_and_errno(v2, residue):
    # pids.max reached: the kernel refuses the new process in the cgroup
    # itself (EAGAIN), which no fallback would change
    v2.ok("run", "-d", "-b", v2.bundle(["sleep", "600"]), "c1")
    procs = cgroup_of(v2.state("c1")["pid"]) + "/cgroup.procs"
    running = len(open(procs).read().split())  # sleep, and pyrun's init if any
    v2.ok("update", "--pids-limit", str(running), "c1")
    p = v2("exec", "c1", "true")
    assert p.returncode == 255, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "clone3(CLONE_INTO_CGROUP): Resource temporarily unavailable (EAGAIN)" in lines[0], \
        p.stderr
    assert "Traceback" not in p.stderr
    assert len(open(procs).read().split()) == running
    v2.ok("delete", "--force", "c1")
    residue.check()


@pytest.mark.vm
def test_the_test_switch_needs_the_test_hooks(v2):
    """PYRUN_NO_CLONE_INTO_CGROUP alone changes nothing (a test switch, not
    a setting)."""
    v2.env["PYRUN_NO_CLONE_INTO_CGROUP"] = "1"
    p = v2("--debug", "run", "-d", "-b", v2.bundle(["sleep", "600"]), "c1")
    assert p.returncode == 0 and CLONE3 in p.stderr, p.stderr
    v2.ok("delete", "--force", "c1")


@pytest.mark.systemd
def test_exec_into_a_systemd_scope_clones_into_it_or_falls_back(rt):
    """The scope's directory, where the caller may write it (root); else
    (rootless: the scope is the user manager's, under a root-owned
    ancestor) clone3 is refused and systemd's AttachProcessesToUnit moves
    the helper. create keeps fork(2): the scope is made with stage 1 in it."""
    from test_cgroups_systemd import direct_config, systemd_is_pid1

    if not systemd_is_pid1():
        pytest.skip("needs systemd as PID 1 (make vm-test-systemd)")
    config = direct_config(rt, ["sleep", "600"])
    config["linux"]["cgroupsPath"] = ":pyt:c5"
    try:
        p = rt("--debug", "--systemd-cgroup", "run", "-d", "-b", rt.bundle(config=config), "c5")
        assert p.returncode == 0, p.stderr
        assert CLONE3 not in p.stderr and MOVE in p.stderr, p.stderr
        scope = cgroup_of(rt.state("c5")["pid"])
        assert scope.endswith("/pyt-c5.scope"), scope
        pid_file = os.path.join(rt.dir, "exec.pid")
        p = rt("--debug", "exec", "-d", "--pid-file", pid_file, "c5", "sleep", "600")
        assert p.returncode == 0, p.stderr
        assert cgroup_of(read_pid(pid_file)) == scope
        if rt.rootless:
            assert "clone3(CLONE_INTO_CGROUP): Permission denied (EACCES)" in p.stderr, p.stderr
            assert MOVE in p.stderr, p.stderr
        else:
            assert CLONE3 in p.stderr and MOVE not in p.stderr, p.stderr
    finally:
        rt("delete", "--force", "c5")
