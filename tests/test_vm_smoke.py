"""The VM harness itself (``make vm-test``): what the vm tests may rely on.

Inside the VM (tools/vm/guest.sh) the tests run as root with:

* a pure cgroup v2 hierarchy at /sys/fs/cgroup, every controller enabled in
  the root's cgroup.subtree_control;
* ``PYRUN_TEST_DELEGATED``: a cgroup delegated to the test user as systemd
  does (user.slice/user-UID.slice/user@UID.service), holding no process,
  every controller enabled in its subtree_control; the tests themselves run
  in its leaf ``session.scope``;
* setuid newuidmap/newgidmap for rootless containers.

Few processes, no Python subprocess: a process start costs ~0.1 s and a
Python start 2 s in the guest.
"""

from __future__ import annotations

import os
import pwd
import signal
import stat
import subprocess

import pytest

pytestmark = pytest.mark.vm

if not os.environ.get("PYRUN_IN_VM"):
    pytest.skip("runs inside the VM: make vm-test", allow_module_level=True)

CG = "/sys/fs/cgroup"
TEST_USER = "pyrun-test"
DELEGATED = os.environ.get("PYRUN_TEST_DELEGATED", "")


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def as_test_user(script: str, **env) -> subprocess.CompletedProcess:
    """Run a bash script as the test user, with its output."""
    pw = pwd.getpwnam(TEST_USER)
    return subprocess.run(["bash", "-c", script], user=pw.pw_uid, group=pw.pw_gid, extra_groups=[],
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/", **env},
                          cwd="/", capture_output=True, text=True, timeout=120)


def test_cgroup2_is_the_only_hierarchy():
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split(" - ") for line in f]
    at_cg = [fs.split()[0] for head, fs in mounts if head.split()[4] == CG]
    assert at_cg == ["cgroup2"]
    assert not [fs for head, fs in mounts if fs.split()[0] == "cgroup"], "a cgroup v1 hierarchy is mounted"
    controllers = set(read(f"{CG}/cgroup.controllers").split())
    assert {"memory", "pids", "cpu", "io"} <= controllers
    assert set(read(f"{CG}/cgroup.subtree_control").split()) == controllers
    # The tests run in the delegated cgroup's leaf, not in it.
    assert read("/proc/self/cgroup") == "0::" + DELEGATED[len(CG):] + "/session.scope"


def test_root_sets_limits():
    d = f"{CG}/vm-smoke-root"
    os.mkdir(d)
    try:
        write(f"{d}/memory.max", "64M")
        write(f"{d}/pids.max", "10")
        assert read(f"{d}/memory.max") == str(64 << 20)
        assert read(f"{d}/pids.max") == "10"
    finally:
        os.rmdir(d)


def test_delegated_subtree_is_the_test_users():
    pw = pwd.getpwnam(TEST_USER)
    st = os.stat(DELEGATED)
    assert (st.st_uid, st.st_gid) == (pw.pw_uid, pw.pw_gid)
    for name in ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads"):
        assert os.stat(f"{DELEGATED}/{name}").st_uid == pw.pw_uid, name
    assert read(f"{DELEGATED}/cgroup.procs") == "", "the delegated cgroup must hold no process"
    # Enabled as systemd --user would; the user enables controllers below.
    assert read(f"{DELEGATED}/cgroup.subtree_control") == read(f"{CG}/cgroup.subtree_control")


def test_test_user_limits_memory_in_delegated_subtree():
    """As the test user: its own cgroup with controllers it enables, a leaf
    with memory.max=32M, where a 100 MiB toucher (dd's buffer) is OOM-killed."""
    script = r"""
        set -eu
        D=$DELEGATED
        echo "+memory +pids" > "$D/cgroup.subtree_control"
        mkdir "$D/smoke"
        echo "+cpuset +memory +pids" > "$D/smoke/cgroup.subtree_control"
        echo "enabled=$(cat "$D/smoke/cgroup.subtree_control")"
        mkdir "$D/smoke/leaf"
        echo 32M > "$D/smoke/leaf/memory.max"
        echo 100 > "$D/smoke/leaf/pids.max"
        echo "memory.max=$(cat "$D/smoke/leaf/memory.max") pids.max=$(cat "$D/smoke/leaf/pids.max")"
        set +e
        sh -c 'echo $$ > "$1/cgroup.procs" && exec dd if=/dev/zero of=/dev/null bs=100M count=1 2>/dev/null' \
            sh "$D/smoke/leaf"
        echo "toucher=$?"
        set -e
        grep '^oom_kill ' "$D/smoke/leaf/memory.events"
    """
    try:
        p = as_test_user(script, DELEGATED=DELEGATED)
        assert p.returncode == 0, p.stdout + p.stderr
        assert p.stdout.split("\n")[:4] == [
            "enabled=cpuset memory pids",
            f"memory.max={32 << 20} pids.max=100",
            f"toucher={128 + signal.SIGKILL}",
            "oom_kill 1",
        ], p.stdout + p.stderr
    finally:
        for d in (f"{DELEGATED}/smoke/leaf", f"{DELEGATED}/smoke"):
            if os.path.isdir(d):
                os.rmdir(d)


def test_newuidmap_is_setuid_root():
    for path in ("/usr/bin/newuidmap", "/usr/bin/newgidmap"):
        st = os.stat(path)
        assert st.st_uid == 0 and st.st_mode & stat.S_ISUID, path
    # And it works through 9p + overlay: unshare maps the user's subuid range
    # with newuidmap/newgidmap.
    p = as_test_user("unshare --user --map-users=auto --map-groups=auto cat /proc/self/uid_map /proc/self/gid_map")
    assert p.returncode == 0, p.stderr
    assert [line.split() for line in p.stdout.splitlines()] == [["0", "300000", "65536"]] * 2
