"""Where cgroup v2 cannot serve (this host's hybrid cgroups, or rootless
without delegation): no limits -> no cgroup, silently; limits -> a clear
error, or a warning when the config says to ignore them."""

from __future__ import annotations

import json
import os
import time

import pytest

from pyrun import cgroups

FREEZER = "/sys/fs/cgroup/freezer"


@pytest.fixture
def no_cgroup_v2(rt):
    if cgroups.available() and not rt.rootless:
        pytest.skip("this host has cgroup v2: see the vm tests")
    if cgroups.available() and rt.rootless and cgroups.delegated_root() is not None:
        pytest.skip("a cgroup is delegated here")
    return rt


def test_limits_without_cgroup_v2_fail_clearly_and_leave_nothing(no_cgroup_v2, residue):
    rt = no_cgroup_v2
    config = rt.config(["true"])
    config["linux"]["resources"] = {"memory": {"limit": 32 << 20}}
    p = rt("run", "-b", rt.bundle(config=config), "c1")
    assert p.returncode == 1, p.stderr
    assert "linux.resources.memory.limit: cannot apply cgroup limits" in p.stderr
    assert "--ignore-cgroup-limits" in p.stderr and len(p.stderr.splitlines()) == 1
    residue.check()


def test_ignore_limits_annotation_runs_and_says_so_in_debug(no_cgroup_v2):
    """Asked for, so not a warning: create's stderr is the container's, and
    podman shows it to the user as the container's output."""
    rt = no_cgroup_v2
    config = rt.config(["echo", "ran"])
    config["linux"]["resources"] = {"pids": {"limit": 10}}
    config["annotations"].update({"org.pyrun.cgroups": "ignore-limits"})
    p = rt("run", "-b", rt.bundle(config=config), "c1")
    assert p.returncode == 0 and p.stdout.strip() == "ran" and p.stderr == "", p.stderr
    p = rt("--debug", "--ignore-cgroup-limits", "run", "-b", rt.bundle(config=config), "c2")
    assert p.returncode == 0 and "cgroup limits ignored" in p.stderr


def test_cgroup_commands_explain_why_they_cannot_work(no_cgroup_v2):
    rt = no_cgroup_v2
    rt.ok("run", "-d", "-b", rt.bundle(["sleep", "30"]), "c1")
    commands = [["update", "--memory", "64m", "c1"], ["events", "--stats", "c1"]]
    if rt.rootless or not os.path.isdir(FREEZER):
        commands.append(["pause", "c1"])
    for args in commands:
        p = rt(*args)
        assert p.returncode == 1 and "has no cgroup" in p.stderr, (args, p.stderr)
    assert rt.state("c1")["status"] == "running"


def test_pause_as_root_on_a_v1_host_uses_the_v1_freezer(no_cgroup_v2):
    """No cgroup v2, but root can still pause, as with runc: a cgroup of the
    v1 freezer hierarchy, and nothing left of it after delete."""
    rt = no_cgroup_v2
    if rt.rootless or not os.path.isdir(FREEZER):
        pytest.skip("root on a host with the cgroup v1 freezer")
    rt.ok("run", "-d", "-b", rt.bundle(["sh", "-c", "while :; do :; done"]), "c1")
    path = os.path.join(FREEZER, "pyrun", "c1")
    pids = json.loads(rt.ok("ps", "-f", "json", "c1"))
    rt.ok("pause", "c1")
    assert rt.state("c1")["status"] == "paused"
    ticks = [_cpu_ticks(p) for p in pids]
    time.sleep(0.3)
    assert [_cpu_ticks(p) for p in pids] == ticks  # frozen: no progress
    rt.ok("resume", "c1")
    assert rt.state("c1")["status"] == "running"
    rt.ok("kill", "--all", "c1", "KILL")
    rt.wait_status("c1", "stopped")
    rt.ok("delete", "c1")
    assert not os.path.exists(path)


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_ps_lists_the_containers_host_pids(rt):
    import json

    rt.ok("run", "-d", "-b", rt.bundle(["sleep", "30"]), "c1")
    pids = json.loads(rt.ok("ps", "--format", "json", "c1"))
    init = rt.state("c1")["pid"]
    assert init in pids and len(pids) == 2
    assert "sleep 30" in rt.ok("ps", "c1")
