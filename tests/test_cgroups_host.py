"""Where no cgroup can serve (rootless on this host's hybrid cgroups, as
with runc; rootless on cgroup v2 without delegation): no limits -> no
cgroup, silently; limits -> a clear error, or a debug note when the config
says to ignore them. Root on a v1 or hybrid host: test_cgroups_v1.py."""

from __future__ import annotations

import pytest

from pyrun import cgroups
from pyrun.cgroups import v2


@pytest.fixture
def no_cgroup_v2(rt):
    if not rt.rootless:
        pytest.skip("root has cgroups here: see the vm tests (v2) and test_cgroups_v1.py")
    if cgroups.available() and rt.rootless and v2.delegated_root() is not None:
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
    commands = [["update", "--memory", "64m", "c1"], ["events", "--stats", "c1"], ["pause", "c1"]]
    for args in commands:
        p = rt(*args)
        assert p.returncode == 1 and "has no cgroup" in p.stderr, (args, p.stderr)
    assert rt.state("c1")["status"] == "running"


def test_ps_lists_the_containers_host_pids(rt):
    import json

    rt.ok("run", "-d", "-b", rt.bundle(["sleep", "30"]), "c1")
    pids = json.loads(rt.ok("ps", "--format", "json", "c1"))
    init = rt.state("c1")["pid"]
    assert init in pids and len(pids) == 2
    assert "sleep 30" in rt.ok("ps", "c1")
