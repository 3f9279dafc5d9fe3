"""cgroup v2 limits with a real cgroup v2 hierarchy: these run inside the
VM (``make vm-test``), rootful and rootless (a delegated subtree)."""

from __future__ import annotations

import json
import os
import time

import pytest

from pyrun import cgroups
from pyrun.cgroups import convert

pytestmark = pytest.mark.vm


@pytest.fixture
def v2(rt):
    if not cgroups.available():
        pytest.skip("needs a cgroup v2 hierarchy (make vm-test)")
    return rt


def cgroup_dir(rt, cid: str = "c1") -> str:
    """The container's cgroup, as the kernel reports it for its PID 1."""
    pid = rt.state(cid)["pid"]
    with open(f"/proc/{pid}/cgroup") as f:
        rel = next(line[3:].strip() for line in f if line.startswith("0::"))
    return "/sys/fs/cgroup" + rel


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def detached(rt, args, resources=None, cid="c1", **edit):
    config = rt.config(args)
    if resources:
        config["linux"]["resources"] = resources
    for key, value in edit.items():
        config[key] = value
    rt.ok("run", "-d", "-b", rt.bundle(config=config), cid)
    return cgroup_dir(rt, cid)


def test_container_is_in_its_own_cgroup_from_the_start(v2):
    path = detached(v2, ["sleep", "60"], {"pids": {"limit": 50}})
    assert path.endswith("/pyrun/c1")
    assert read(f"{path}/pids.max") == "50"
    assert sorted(int(p) for p in read(f"{path}/cgroup.procs").split()) == json.loads(v2.ok("ps", "-f", "json", "c1"))
    p = v2("exec", "c1", "cat", "/proc/self/cgroup")
    assert p.stdout.strip() == "0::/", p.stdout  # its own cgroup namespace
    p = v2("exec", "c1", "ls", "/sys/fs/cgroup")
    assert "cgroup.procs" in p.stdout.split() and "pyrun" not in p.stdout.split(), p.stdout  # only its own


def test_memory_max_exceeded_is_an_oom_kill(v2):
    config = v2.config(["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"])
    config["linux"]["resources"] = {"memory": {"limit": 32 << 20, "swap": 32 << 20}}
    p = v2("run", "-b", v2.bundle(config=config), "c1")
    assert p.returncode == 137, p.stdout + p.stderr
    assert "killed by the OOM killer" in p.stderr


def test_events_reports_an_oom(v2):
    # the memory hog starts only once `events` is watching (the VM is slow)
    detached(v2, ["sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.1; done; "
                              "dd if=/dev/zero of=/dev/null bs=100M count=1; sleep 60"],
             {"memory": {"limit": 32 << 20, "swap": 32 << 20}}, root={"path": v2.rootfs["busybox"],
                                                                     "readonly": False})
    events = v2.events_until("c1", "oom", timeout=60, interval="200ms",
                             go=lambda: v2.ok("exec", "c1", "touch", "/tmp/go"))
    seen = [e["type"] for e in events]
    assert "oom" in seen, seen
    assert seen[0] == "stats"


def test_pids_max_makes_fork_fail_with_eagain(v2):
    config = v2.config(["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 5 & done; wait; echo end"])
    config["linux"]["resources"] = {"pids": {"limit": 5}}
    p = v2("run", "-b", v2.bundle(config=config), "c1")
    assert "Resource temporarily unavailable" in p.stdout + p.stderr, p.stdout + p.stderr


def test_cpu_max_throttles(v2):
    detached(v2, ["sh", "-c", "while :; do :; done"], {"cpu": {"quota": 10000, "period": 100000}})
    time.sleep(1.5)
    data = json.loads(v2.ok("events", "--stats", "c1"))["data"]
    assert data["cpu"]["throttling"]["throttledPeriods"] > 0, data["cpu"]


def test_weights_are_written_as_runc_writes_them(v2):
    path = detached(v2, ["sleep", "60"], {"cpu": {"shares": 1024}, "blockIO": {"weight": 500}})
    assert read(f"{path}/cpu.weight") == "39"
    if os.path.exists(f"{path}/io.weight"):
        assert read(f"{path}/io.weight").split("\n")[0] == "default 4950"


def test_unknown_unified_file_names_the_field(v2, residue):
    config = v2.config(["true"])
    config["linux"]["resources"] = {"unified": {"no.such": "1"}}
    p = v2("run", "-b", v2.bundle(config=config), "c1")
    assert p.returncode == 1 and "linux.resources.unified['no.such']" in p.stderr, p.stderr
    residue.check()


def test_update_changes_limits_of_a_running_container(v2):
    path = detached(v2, ["sleep", "60"], {"pids": {"limit": 100}})
    v2.ok("update", "--memory", "64m", "--pids-limit", "3", "--cpu-quota", "20000", "--cpu-period", "100000",
          "--cpu-share", "2048", "c1")
    assert read(f"{path}/memory.max") == str(64 << 20)
    assert read(f"{path}/pids.max") == "3"
    assert read(f"{path}/cpu.max") == "20000 100000"
    assert read(f"{path}/cpu.weight") == str(convert.shares_to_weight(2048))
    p = v2("exec", "c1", "sh", "-c", "sleep 1 & sleep 1 & sleep 1 & wait")
    assert "Resource temporarily unavailable" in p.stdout + p.stderr, p.stdout + p.stderr
    res = os.path.join(v2.dir, "res.json")
    with open(res, "w") as f:
        json.dump({"pids": {"limit": 42}}, f)
    os.chmod(res, 0o644)
    v2.ok("update", "-r", res, "c1")
    assert read(f"{path}/pids.max") == "42"


def test_pause_freezes_every_process_and_resume_continues(v2):
    detached(v2, ["sh", "-c", "while :; do :; done"])

    def usage():
        return json.loads(v2.ok("events", "--stats", "c1"))["data"]["cpu"]["usage"]["total"]

    pid = v2.state("c1")["pid"]
    v2.ok("pause", "c1")
    assert v2.state("c1")["status"] == "paused"
    assert v2.state("c1")["pid"] == pid > 0  # runc: the init's pid unless stopped
    a = usage()
    time.sleep(0.5)
    assert usage() == a  # no progress while frozen
    p = v2("exec", "c1", "true")
    assert p.returncode == 255 and "paused" in p.stderr
    v2.ok("resume", "c1")
    assert v2.state("c1")["status"] == "running"
    time.sleep(0.5)
    assert usage() > a


def test_kill_all_kills_a_tree_that_ignores_its_parent(v2):
    # no pid namespace: killing PID 1 would not take the others with it
    config = v2.config(["sh", "-c", "(trap '' TERM HUP; sleep 1000 &) ; sleep 1000"])
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != "pid"]
    # a user namespace without a pid namespace of its own cannot mount a new proc
    config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/proc"]
    config["linux"]["maskedPaths"] = config["linux"]["readonlyPaths"] = []
    v2.ok("run", "-d", "-b", v2.bundle(config=config), "c1")
    path = cgroup_dir(v2)
    time.sleep(0.3)
    assert len(read(f"{path}/cgroup.procs").split()) >= 3
    v2.ok("kill", "--all", "c1", "KILL")
    deadline = time.monotonic() + 10
    while read(f"{path}/cgroup.procs") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert read(f"{path}/cgroup.procs") == ""


def test_delete_leaves_no_cgroup_behind(v2):
    path = detached(v2, ["sleep", "60"], {"pids": {"limit": 20}})
    v2.ok("exec", "-d", "c1", "sleep", "60")
    v2.ok("delete", "--force", "c1")
    assert not os.path.exists(path)


def test_device_rules_are_enforced_by_a_bpf_program(v2):
    if v2.rootless:
        pytest.skip("rootful only: an unprivileged user cannot attach a device program (nor needs one)")
    config = v2.config(["sh", "-c", "mknod /tmp/sda b 8 0 && head -c1 /tmp/sda 2>&1; "
                                    "head -c1 /dev/zero | wc -c"])
    config["root"]["readonly"] = False
    for kind in ("bounding", "effective", "permitted"):
        config["process"]["capabilities"][kind].append("CAP_MKNOD")
    config["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
    p = v2("run", "-b", v2.bundle(config=config), "c1")
    assert "Operation not permitted" in p.stdout, p.stdout + p.stderr  # b 8:0 is not allowed
    assert p.stdout.split()[-1] == "1"  # /dev/zero is, by runc's defaults
