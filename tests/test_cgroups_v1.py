"""cgroup v1 (and hybrid) hosts, rootful, the real kernel: every limit is
enforced through the v1 controllers as runc's cgroupfs driver does it, and
device rules through the devices controller (a security boundary).

Each scenario that runc can run too is run with runc in the same test and
must give the same result. Ids are unique per test run: the default cgroup
``/pyrun/<id>`` is shared by every pyrun on the host."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest
from conftest import _state_letter

from pyrun import cgroups

CG = "/sys/fs/cgroup"
RUNC = shutil.which("runc", path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin")
HIERARCHIES = ("memory", "pids", "cpu", "cpuacct", "cpuset", "blkio", "devices", "freezer")


def _v1_mounted(controller: str) -> bool:
    return os.path.exists(os.path.join(CG, controller, "cgroup.procs")) and not cgroups.available()


@pytest.fixture
def v1(rt):
    if rt.rootless:
        pytest.skip("rootless on cgroup v1 has no cgroup (as runc)")
    if cgroups.available() or not _v1_mounted("devices"):
        pytest.skip("needs a cgroup v1 or hybrid host")
    return rt


def uid(name: str) -> str:
    return f"cgv1-{name}-{os.getpid()}"


def leftovers(cid: str) -> list[str]:
    return [os.path.join(CG, h, "pyrun", cid) for h in os.listdir(CG)
            if os.path.isdir(os.path.join(CG, h, "pyrun", cid))]


@contextlib.contextmanager
def _running(v1, bundle: str, cid: str):
    """``run -d`` the container for the block; after it, ``delete --force``
    it and, if the block passed, check that none of its cgroups is left."""
    v1.ok("run", "-d", "-b", bundle, cid)
    try:
        yield
    finally:
        v1.ok("delete", "--force", cid)
    assert leftovers(cid) == []


def _kill_and_delete(v1, p, cid: str, timeout: float) -> list[str]:
    """SIGKILL the ``create`` ``p``, ``delete --force`` its container and
    wait up to ``timeout`` seconds for its cgroups to go: those left."""
    p.kill()
    p.wait()
    v1("delete", "--force", cid)
    deadline = time.monotonic() + timeout
    while leftovers(cid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return leftovers(cid)


@pytest.fixture
def runc(workspace):
    """runc as root with its own state root and a private copy of the rootfs
    (runc may write into a read-write root)."""
    if not RUNC or os.geteuid() != 0:
        pytest.skip("runc as root")
    d = tempfile.mkdtemp(prefix="runc-", dir=workspace)
    root = os.path.join(d, "rootfs")
    subprocess.run(["cp", "-a", os.path.join(os.path.dirname(__file__), "..", "bundles", "busybox", "rootfs"), root],
                   check=True)

    def run(config: dict, cid: str, timeout: float = 60, wrap: list[str] = ()) -> subprocess.CompletedProcess:
        bundle = tempfile.mkdtemp(dir=d)
        config = dict(config, root={"path": root, "readonly": False})
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(config, f)
        return subprocess.run([*wrap, RUNC, "--root", os.path.join(d, "state"), "run", "-b", bundle, cid],
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    yield run
    subprocess.run(["rm", "-rf", d])


def _with_caps(config: dict, *caps: str) -> dict:
    for key in ("bounding", "effective", "permitted"):
        config["process"]["capabilities"][key] = sorted(set(config["process"]["capabilities"][key]) | set(caps))
    return config


# A loop device and /dev/fuse made with mknod(2) inside the container: the
# default rules allow mknod of anything ("c *:* m", "b *:* m") but open only
# of the standard nodes, so open(2) must fail with EPERM.
DEVICE_ATTACK = (
    "mknod /dev/evil-fuse c 10 229 && mknod /dev/evil-loop b 7 0 || exit 3; "
    "(exec 3</dev/evil-fuse) 2>&1 && echo FUSE-OPENED; "
    "(exec 3</dev/evil-loop) 2>&1 && echo LOOP-OPENED; "
    "echo x > /dev/null && echo null-ok"
)


def test_deny_all_device_rule_stops_mknod_and_open_of_host_devices(v1, runc):
    """issue 12 item 9: the default deny-all rule holds on cgroup v1."""
    config = _with_caps(v1.config(["sh", "-c", DEVICE_ATTACK]), "CAP_MKNOD")
    assert config["linux"]["resources"]["devices"] == [{"allow": False, "access": "rwm"}]
    cid = uid("dev")
    outputs = {}
    p = v1("run", "-b", v1.bundle(config=config), cid)
    outputs["pyrun"] = (p.returncode, p.stdout)
    r = runc(config, cid + "-runc")
    outputs["runc"] = (r.returncode, r.stdout)
    for who, (code, out) in outputs.items():
        assert code == 0, (who, out, p.stderr, r.stderr)
        assert "OPENED" not in out, (who, out)
        assert out.count("Operation not permitted") == 2, (who, out)
        assert "null-ok" in out, (who, out)
    assert leftovers(cid) == []


def _cg(cid: str, hierarchy: str, name: str) -> str:
    with open(os.path.join(CG, hierarchy, "pyrun", cid, name)) as f:
        return f.read().strip()


def _go(fifo: str, timeout: float = 10) -> None:
    """Write a line to the container's fifo, waiting at most ``timeout`` for
    it to open the other end (open(2) O_NONBLOCK: ENXIO until a reader)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as e:
            if e.errno != errno.ENXIO or time.monotonic() > deadline:
                raise AssertionError(f"the container did not open {fifo}: {e}") from None
            time.sleep(0.02)
    try:
        os.write(fd, b"go\n")
    finally:
        os.close(fd)


def _limits(v1, args: list[str], **resources) -> dict:
    config = v1.config(args)
    config["linux"]["resources"].update(resources)
    return config


def test_pids_limit_10_the_11th_fork_fails(v1, runc):
    """pids.max: ten tasks (the shell and nine sleeps), then fork(2) fails
    with EAGAIN ("Resource temporarily unavailable")."""
    script = ("i=0; while [ $i -lt 20 ]; do sleep 5 & i=$((i+1)); done 2>&1; "
              "echo started $(cat /proc/self/status >/dev/null; jobs -p | wc -l)")
    config = _limits(v1, ["sh", "-c", script], pids={"limit": 10})
    p = v1("run", "-b", v1.bundle(config=config), uid("pids"))
    r = runc(config, uid("pids-runc"))
    for who, res in (("pyrun", p), ("runc", r)):
        assert "Resource temporarily unavailable" in res.stdout, (who, res.stdout, res.stderr)
        # the shell and 9 children: 10; the "$(...)" subshell itself needs a
        # fork too, so it may fail as well: at most 9 background jobs
        assert "started" not in res.stdout or int(res.stdout.split("started")[1].split()[0] or 0) <= 9, who
    assert leftovers(uid("pids")) == []


def test_pids_limit_is_written_and_visible(v1):
    cid = uid("pidsw")
    v1.ok("run", "-d", "-b", v1.bundle(config=_limits(v1, ["sleep", "30"], pids={"limit": 10})), cid)
    assert _cg(cid, "pids", "pids.max") == "10"
    v1.ok("delete", "--force", cid)
    assert leftovers(cid) == []


ALLOC_64M = "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived ${#x}"


def test_memory_limit_32m_oom_kills_a_64m_allocation(v1, runc):
    config = _limits(v1, ["sh", "-c", ALLOC_64M], memory={"limit": 32 << 20})
    cid = uid("oom")
    p = v1("run", "-b", v1.bundle(config=config), cid)
    r = runc(config, uid("oom-runc"))
    assert r.returncode == 137 and "survived" not in r.stdout, r
    assert p.returncode == 137 and "survived" not in p.stdout, p
    assert "OOM killer" in p.stderr
    assert leftovers(cid) == []


def test_events_reports_the_oom_and_stats_numbers_move(v1):
    cid = uid("ev")
    fifo = os.path.join(v1.dir, "go")
    os.mkfifo(fifo)
    # the subshell that allocates is the one killed: the container lives on
    config = _limits(v1, ["sh", "-c", "read x < /go; (echo 1000 > /proc/self/oom_score_adj; " + ALLOC_64M + "); sleep 30"], memory={"limit": 32 << 20})
    config["mounts"].append({"destination": "/go", "type": "bind", "source": fifo, "options": ["bind"]})
    v1.ok("run", "-d", "-b", v1.bundle(config=config), cid)
    before = json.loads(v1.ok("events", "--stats", cid))["data"]
    assert before["memory"]["usage"]["limit"] == 32 << 20
    assert before["pids"]["current"] >= 1 and before["cpu"]["usage"]["total"] > 0
    seen = v1.events_until(cid, "oom", go=lambda: _go(fifo))
    assert any(e["type"] == "oom" for e in seen), seen[-1:]
    after = json.loads(v1.ok("events", "--stats", cid))["data"]
    assert after["memory"]["usage"]["max"] > before["memory"]["usage"]["max"]
    assert after["memory"]["usage"]["failcnt"] > before["memory"]["usage"]["failcnt"]
    assert after["cpu"]["usage"]["total"] > before["cpu"]["usage"]["total"]
    v1.ok("delete", "--force", cid)
    assert leftovers(cid) == []


def test_cpu_quota_throttles_and_shares_are_written(v1):
    cid = uid("cpu")
    config = _limits(v1, ["sh", "-c", "while :; do :; done"],
                     cpu={"shares": 512, "quota": 10000, "period": 100000})
    with _running(v1, v1.bundle(config=config), cid):
        assert _cg(cid, "cpu", "cpu.shares") == "512"
        assert _cg(cid, "cpu", "cpu.cfs_quota_us") == "10000"
        time.sleep(0.5)
        stat = dict(line.split() for line in _cg(cid, "cpu", "cpu.stat").splitlines())
        assert int(stat["nr_throttled"]) > 0, stat
        data = json.loads(v1.ok("events", "--stats", cid))["data"]
        assert data["cpu"]["throttling"]["throttledPeriods"] > 0


def test_cpuset_pins_to_cpu_0(v1, runc):
    config = _limits(v1, ["sh", "-c", "grep Cpus_allowed_list /proc/self/status"], cpu={"cpus": "0"})
    p = v1("run", "-b", v1.bundle(config=config), uid("cpuset"))
    r = runc(config, uid("cpuset-runc"))
    for who, res in (("pyrun", p), ("runc", r)):
        assert res.returncode == 0 and res.stdout.split() == ["Cpus_allowed_list:", "0"], (who, res)


def test_blkio_throttle_and_weight_where_the_kernel_has_them(v1):
    dev = os.stat("/").st_dev
    major, minor = os.major(dev), os.minor(dev)
    blk = f"/sys/dev/block/{major}:{minor}"
    if not os.path.exists(blk):
        pytest.skip("/ is not on a block device")
    cid = uid("blkio")
    config = _limits(v1, ["sleep", "30"], blockIO={
        "weight": 500, "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1 << 20}]})
    p = v1("--debug", "run", "-d", "-b", v1.bundle(config=config), cid)
    assert p.returncode == 0, p.stderr
    try:
        assert _cg(cid, "blkio", "blkio.throttle.read_bps_device") == f"{major}:{minor} {1 << 20}"
        weight = [f for f in ("blkio.weight", "blkio.bfq.weight")
                  if os.path.exists(os.path.join(CG, "blkio", "pyrun", cid, f))]
        if weight:
            assert _cg(cid, "blkio", weight[0]).split()[-1] == "500"
        else:
            assert "blockIO.weight skipped" in p.stderr
    finally:
        v1.ok("delete", "--force", cid)


def test_update_changes_pids_and_memory_and_they_bite(v1):
    cid = uid("upd")
    fifo = os.path.join(v1.dir, "go")
    os.mkfifo(fifo)
    # the subshell that forks the sleeps exists before the limit (or has
    # room under it): only the sleeps can fail, and the shell goes on
    config = v1.config(["sh", "-c", "(read x < /go; sleep 5 & sleep 5 & sleep 5 & wait) 2>&1; "
                        "read x < /go; " + ALLOC_64M + "; sleep 30"])
    config["mounts"].append({"destination": "/go", "type": "bind", "source": fifo, "options": ["bind"]})
    out = os.path.join(v1.dir, "out")
    with open(out, "w") as f:
        p = v1.popen("run", "-b", v1.bundle(config=config), cid, stdout=f, stderr=subprocess.STDOUT)
    try:
        v1.wait_status(cid, "running")
        limit = str(int(_cg(cid, "pids", "pids.current")) + 1)
        v1.ok("update", "--pids-limit", limit, cid)
        assert _cg(cid, "pids", "pids.max") == limit
        _go(fifo)
        v1.ok("update", "--memory", "32m", "--pids-limit", "100", cid)
        time.sleep(0.5)
        assert _cg(cid, "memory", "memory.limit_in_bytes") == str(32 << 20)
        assert _cg(cid, "pids", "pids.max") == "100"
        _go(fifo)
        assert p.wait(timeout=30) == 137
    finally:
        v1("delete", "--force", cid)
        p.wait(timeout=10)
    with open(out) as f:
        text = f.read()
    assert "Resource temporarily unavailable" in text and "survived" not in text, text
    assert leftovers(cid) == []


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_pause_resume_kill_all_ps_and_delete_leaves_no_cgroup(v1):
    cid = uid("pause")
    v1.ok("run", "-d", "-b", v1.bundle(["sh", "-c", "while :; do :; done & while :; do :; done"]), cid)
    pids = json.loads(v1.ok("ps", "-f", "json", cid))
    assert len(pids) >= 2  # the shell and its child (and the init, if any)
    present = leftovers(cid)
    assert {os.path.basename(os.path.dirname(os.path.dirname(p))) for p in present} >= set(HIERARCHIES)
    pid = v1.state(cid)["pid"]
    v1.ok("pause", cid)
    state = v1.state(cid)
    assert state["status"] == "paused"
    assert state["pid"] == pid > 0  # runc: the init's pid unless stopped
    ticks = [_cpu_ticks(p) for p in pids]
    time.sleep(0.3)
    assert [_cpu_ticks(p) for p in pids] == ticks  # frozen: no progress
    v1.ok("resume", cid)
    assert v1.state(cid)["status"] == "running"
    v1.ok("kill", "--all", cid, "KILL")
    v1.wait_status(cid, "stopped")
    v1.ok("delete", cid)
    assert leftovers(cid) == []


def test_sigkill_of_create_then_delete_leaves_no_cgroup(v1):
    """create killed while the container waits in its cgroup: delete
    (and a new create with the same id) removes it from every hierarchy."""
    cid = uid("sigkill")
    config = _limits(v1, ["true"], pids={"limit": 50})
    config["hooks"] = {"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"]}]}
    p = v1.popen("create", "-b", v1.bundle(config=config), cid)
    deadline = time.monotonic() + 10
    while not leftovers(cid) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert leftovers(cid)
    assert _kill_and_delete(v1, p, cid, 5) == []


def test_features_reports_v1(rt):
    assert json.loads(rt.ok("features"))["linux"]["cgroup"]["v1"] is True


def test_relative_cgroups_path_is_below_the_callers_cgroup_in_each_hierarchy(v1):
    """runc's cgroupfs layout: a relative linux.cgroupsPath starts at the
    caller's own cgroup of each hierarchy (/proc/self/cgroup)."""
    cid = uid("rel")
    config = _limits(v1, ["sleep", "30"], pids={"limit": 20})
    config["linux"]["cgroupsPath"] = f"pyrun-rel/{cid}"
    v1.ok("run", "-d", "-b", v1.bundle(config=config), cid)
    own = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in ctrls.split(","):
                own[c] = path
    dirs = {h: os.path.normpath(f"{CG}/{h}/{own[h]}/pyrun-rel/{cid}") for h in ("memory", "pids", "devices")}
    try:
        pid = v1.state(cid)["pid"]
        for h, d in dirs.items():
            with open(os.path.join(d, "cgroup.procs")) as f:
                assert str(pid) in f.read().split(), h
        with open(os.path.join(dirs["pids"], "pids.max")) as f:
            assert f.read().strip() == "20"
    finally:
        v1.ok("delete", "--force", cid)
    assert not any(os.path.exists(d) for d in dirs.values())
    for h in os.listdir(CG):  # the parent the test asked for, in every hierarchy
        try:
            os.rmdir(os.path.normpath(f"{CG}/{h}/{own.get(h, '/')}/pyrun-rel"))
        except OSError:
            pass


def test_a_limit_on_a_controller_the_host_lacks_is_refused_naming_the_field(v1):
    if os.path.exists(os.path.join(CG, "net_cls")):
        pytest.skip("this host mounts net_cls")
    cid = uid("netcls")
    config = _limits(v1, ["true"], network={"classID": 0x100001})
    p = v1("run", "-b", v1.bundle(config=config), cid)
    assert p.returncode == 1 and len(p.stderr.splitlines()) == 1, p.stderr
    assert p.stderr.startswith("pyrun: linux.resources.network.classID: ") or \
        "linux.resources.network.classID" in p.stderr, p.stderr
    assert "net_cls" in p.stderr
    assert os.listdir(v1.root) == []
    assert leftovers(cid) == []


def test_memory_details_as_runc_writes_them(v1):
    """reservation -> soft limit, swap -> memsw, swappiness, OOM killer
    off; kernel memory where the kernel still takes it (skipped with a
    debug line otherwise, as runc)."""
    cid = uid("memd")
    config = _limits(v1, ["sleep", "30"], memory={
        "limit": 64 << 20, "reservation": 32 << 20, "swap": 128 << 20, "swappiness": 10,
        "kernel": 256 << 20, "kernelTCP": 16 << 20, "disableOOMKiller": True})
    p = v1("--debug", "run", "-d", "-b", v1.bundle(config=config), cid)
    assert p.returncode == 0, p.stderr
    try:
        assert _cg(cid, "memory", "memory.limit_in_bytes") == str(64 << 20)
        assert _cg(cid, "memory", "memory.soft_limit_in_bytes") == str(32 << 20)
        assert _cg(cid, "memory", "memory.memsw.limit_in_bytes") == str(128 << 20)
        assert _cg(cid, "memory", "memory.swappiness") == "10"
        assert "oom_kill_disable 1" in _cg(cid, "memory", "memory.oom_control")
        assert _cg(cid, "memory", "memory.kmem.tcp.limit_in_bytes") == str(16 << 20)
        assert "memory.kernel ignored" in p.stderr
    finally:
        v1.ok("delete", "--force", cid)
    assert leftovers(cid) == []


def test_hugetlb_goes_where_the_host_binds_it(v1):
    """Hybrid: hugetlb is bound to the cgroup2 tree (/sys/fs/cgroup/unified)
    here, so its limit is hugetlb.2MB.max there; on pure v1, the v1 file."""
    if not os.path.isdir("/sys/kernel/mm/hugepages/hugepages-2048kB"):
        pytest.skip("no 2 MB huge pages")
    cid = uid("huge")
    config = _limits(v1, ["sleep", "30"], hugepageLimits=[{"pageSize": "2MB", "limit": 4 << 20}])
    with _running(v1, v1.bundle(config=config), cid):
        v1_file = os.path.join(CG, "hugetlb", "pyrun", cid, "hugetlb.2MB.limit_in_bytes")
        v2_file = os.path.join(CG, "unified", "pyrun", cid, "hugetlb.2MB.max")
        path = v1_file if os.path.exists(v1_file) else v2_file
        with open(path) as f:
            assert f.read().strip() == str(4 << 20)


def test_exec_joins_the_container_cgroup_in_every_hierarchy(v1):
    """An exec'd process is limited and denied devices like PID 1."""
    cid = uid("exec")
    config = _with_caps(_limits(v1, ["sleep", "30"], pids={"limit": 20}), "CAP_MKNOD")
    with _running(v1, v1.bundle(config=config), cid):
        out = v1.ok("exec", cid, "sh", "-c", "cat /proc/self/cgroup; " + DEVICE_ATTACK)
        assert "OPENED" not in out and out.count("Operation not permitted") == 2, out
        before = {h: len(_cg(cid, h, "cgroup.procs").split()) for h in HIERARCHIES}
        p = v1.popen("exec", cid, "sleep", "5")
        try:
            deadline = time.monotonic() + 10
            while True:
                tasks = {h: len(_cg(cid, h, "cgroup.procs").split()) - before[h] for h in HIERARCHIES}
                if min(tasks.values()) >= 1 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert min(tasks.values()) >= 1, tasks  # the exec'd sleep, in every hierarchy
        finally:
            p.kill()
            p.wait()


def test_update_flags_and_resources_file_reach_the_v1_files(v1):
    cid = uid("updf")
    with _running(v1, v1.bundle(["sleep", "30"]), cid):
        v1.ok("update", "--cpu-quota", "20000", "--cpu-period", "100000", "--cpu-share", "256",
              "--cpuset-cpus", "0", "--memory", "64m", "--memory-swap", "128m",
              "--memory-reservation", "32m", "--pids-limit", "42", cid)
        assert _cg(cid, "cpu", "cpu.cfs_quota_us") == "20000" and _cg(cid, "cpu", "cpu.shares") == "256"
        assert _cg(cid, "cpuset", "cpuset.cpus") == "0"
        assert _cg(cid, "memory", "memory.limit_in_bytes") == str(64 << 20)
        assert _cg(cid, "memory", "memory.memsw.limit_in_bytes") == str(128 << 20)
        assert _cg(cid, "memory", "memory.soft_limit_in_bytes") == str(32 << 20)
        # memory and memory+swap both up past the limit in force: memsw first (runc's order)
        res = os.path.join(v1.dir, "res.json")
        with open(res, "w") as f:
            json.dump({"memory": {"limit": 256 << 20, "swap": 512 << 20}, "pids": {"limit": -1}}, f)
        v1.ok("update", "-r", res, cid)
        assert _cg(cid, "memory", "memory.limit_in_bytes") == str(256 << 20)
        assert _cg(cid, "memory", "memory.memsw.limit_in_bytes") == str(512 << 20)
        assert _cg(cid, "pids", "pids.max") == "max"
        p = v1("update", "--memory", "1g", cid)  # above memory+swap in force: the kernel says no
        assert p.returncode == 1 and "linux.resources.memory.limit" in p.stderr, p.stderr
        assert len(p.stderr.splitlines()) == 1


def test_events_reports_oom_through_the_eventfd_even_with_the_oom_killer_off(v1):
    """disableOOMKiller: nothing is killed, the oom_kill counter stays 0,
    and the memory.oom_control eventfd (what runc listens on) still says
    "oom"."""
    cid = uid("oomfd")
    config = _limits(v1, ["sh", "-c", "sleep 0.5; " + ALLOC_64M], memory={"limit": 32 << 20, "disableOOMKiller": True})
    with _running(v1, v1.bundle(config=config), cid):
        seen = v1.events_until(cid, "oom")
        assert seen and seen[-1]["type"] == "oom", seen[-3:]
        assert "oom_kill 0" in _cg(cid, "memory", "memory.oom_control")


def test_events_of_a_container_that_ends_without_oom_says_no_oom(v1):
    cid = uid("nooom")
    v1.ok("run", "-d", "-b", v1.bundle(["sleep", "1"]), cid)
    events = v1.popen("events", "--interval", "100ms", cid, stdout=subprocess.PIPE)
    try:
        v1.wait_status(cid, "stopped")
        v1.ok("delete", cid)
        out, _ = events.communicate(timeout=10)
    finally:
        events.kill()
        events.wait()
    types = {json.loads(line)["type"] for line in out.splitlines()}
    assert types == {"stats"}, out[-500:]
    assert leftovers(cid) == []


def test_planned_path_is_what_setup_records(v1):
    """cgroups.planned_path: what a record can name before create makes the
    cgroup, so that a create killed in the middle leaves nothing unnamed."""
    from pyrun.config.spec import load

    cid = uid("plan")
    bundle = v1.bundle(["sleep", "30"])
    v1.ok("run", "-d", "-b", bundle, cid)
    try:
        with open(os.path.join(v1.root, cid, "state.json")) as f:
            recorded = json.load(f)["cgroup"]
        assert cgroups.planned_path(load(bundle), cid, rootless=False) == recorded
        assert sorted(recorded.split("\n")) == sorted(leftovers(cid))
    finally:
        v1.ok("delete", "--force", cid)


def test_a_read_only_hybrid_cgroup2_tree_is_left_out_not_fatal(v1):
    """The hybrid cgroup2 tree is a convenience (cgroup.kill): where it
    cannot be written (a read-only mount, as in some nested setups), the
    container runs with its v1 limits; a limit that lives only there
    (hugetlb here) is then refused naming the field."""
    if not os.path.isdir(os.path.join(CG, "unified")):
        pytest.skip("not a hybrid host")
    cid = uid("ro2")
    config = _limits(v1, ["sh", "-c", "echo ran"], pids={"limit": 50})
    pyrun = v1.cmd("run", "-b", v1.bundle(config=config), cid)
    script = ("mount -o remount,bind,ro /sys/fs/cgroup/unified && exec \"$@\"")
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *pyrun],
                       capture_output=True, text=True, timeout=60, cwd=v1.dir, env=v1.env)
    assert p.returncode == 0 and p.stdout.strip() == "ran", p.stderr
    assert leftovers(cid) == []
    if os.path.exists(os.path.join(CG, "hugetlb")) or not os.path.isdir("/sys/kernel/mm/hugepages/hugepages-2048kB"):
        return
    config = _limits(v1, ["true"], hugepageLimits=[{"pageSize": "2MB", "limit": 4 << 20}])
    pyrun = v1.cmd("run", "-b", v1.bundle(config=config), cid)
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *pyrun],
                       capture_output=True, text=True, timeout=60, cwd=v1.dir, env=v1.env)
    assert p.returncode == 1 and "linux.resources.hugepageLimits[0]" in p.stderr, p.stderr
    assert len(p.stderr.splitlines()) == 1
    assert leftovers(cid) == []


# podman makes plain directories under /sys/fs/cgroup for controllers this
# host does not mount (net_cls, perf_event...): in a private mount
# namespace, /sys/fs/cgroup is rebuilt as such a host has it (a tmpfs, each
# hierarchy bound at its name, and a plain directory), so the scenario is
# the same whether or not podman ever ran here.
PODMAN_LIKE = ("t=$(mktemp -d) && mount --rbind /sys/fs/cgroup \"$t\" && "
               "mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup && "
               "for m in \"$t\"/*/; do n=$(basename \"$m\"); mkdir /sys/fs/cgroup/$n; "
               "if mountpoint -q \"$m\"; then mount --bind \"$m\" /sys/fs/cgroup/$n; fi; done && "
               "umount -R \"$t\" && mkdir -p /sys/fs/cgroup/podman-plain-dir || exit 8; ")
READ_ONLY = ("for m in /sys/fs/cgroup/*/; do mountpoint -q \"$m\" || continue; "
             "mount -o remount,bind,ro \"$m\" || exit 9; done; ")


def test_read_only_cgroupfs_fails_in_one_line_unless_ignored(v1, runc):
    """Every hierarchy read-only (as in some nested setups), next to a plain
    directory podman made: runc fails; so does pyrun, in one line, and
    nothing is left. --ignore-cgroup-limits runs without a cgroup (no
    limits, no device rules), as asked."""
    cid = uid("rofs")
    config = _limits(v1, ["sh", "-c", "echo ran"], pids={"limit": 50})
    script = PODMAN_LIKE + READ_ONLY + "exec \"$@\""
    bundle = v1.bundle(config=config)
    for flags, code in (([], 1), (["--ignore-cgroup-limits"], 0)):
        pyrun = v1.cmd(*flags, "run", "-b", bundle, cid)
        p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *pyrun],
                           capture_output=True, text=True, timeout=60, cwd=v1.dir, env=v1.env)
        assert p.returncode == code, (flags, p.stderr)
        if code:
            assert "Read-only file system" in p.stderr and len(p.stderr.splitlines()) == 1, p.stderr
        else:
            assert p.stdout.strip() == "ran", p.stderr
        assert leftovers(cid) == [] and os.listdir(v1.root) == []
    r = runc(config, uid("rofs-runc"), wrap=["unshare", "-m", "--propagation", "private", "sh", "-c",
                                             script, "sh"])
    assert r.returncode != 0 and "read-only file system" in r.stderr.lower(), r.stderr


def test_sigkill_of_create_at_any_moment_then_delete_leaves_no_cgroup(v1):
    """Kill create at 80 moments spread over its first 40 ms (the cgroup
    step is among them), then ``delete --force``: no directory of any
    hierarchy and no state may remain."""
    bundle = v1.bundle(config=_limits(v1, ["sleep", "5"], pids={"limit": 50}))
    left = []
    for i in range(80):
        cid = uid(f"k{i}")
        p = v1.popen("create", "-b", bundle, cid, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.0005 * i)
        here = _kill_and_delete(v1, p, cid, 2)
        if here:
            left.append((i, here))
            for d in here:  # not to leave them on the host
                try:
                    os.rmdir(d)
                except OSError:
                    pass
    assert left == [], left[:3]


def test_realtime_policy_keeps_the_callers_cpu_cgroup_or_is_refused_with_cpu_limits(v1):
    """RT group scheduling: a new cpu cgroup has no real-time budget, so
    SCHED_FIFO there is EPERM. Without cpu limits the container keeps the
    caller's cpu cgroup (and runs SCHED_FIFO); with them, a one-line refusal."""
    if not os.path.exists(os.path.join(CG, "cpu", "cpu.rt_runtime_us")):
        pytest.skip("no RT group scheduling here")
    cid = uid("fifo")
    config = _limits(v1, ["sh", "-c", "grep -E '^(policy|prio)' /proc/self/sched"], pids={"limit": 20})
    config["process"]["scheduler"] = {"policy": "SCHED_FIFO", "priority": 5}
    p = v1("run", "-b", v1.bundle(config=config), cid)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[:3] == ["policy", ":", "1"], p.stdout
    config["linux"]["resources"]["cpu"] = {"shares": 512}
    p = v1("run", "-b", v1.bundle(config=config), cid)
    assert p.returncode == 1 and "process.scheduler: a real-time policy" in p.stderr, p.stderr
    assert "realtimeRuntime" in p.stderr and len(p.stderr.splitlines()) == 1
    assert leftovers(cid) == [] and os.listdir(v1.root) == []


def test_a_pids_limit_below_what_create_needs_is_one_line(v1, runc):
    """pids.limit 1: runc writes its limits once its init is alone and runs
    `true`; pyrun's stage 1 and PID 1 are both in the cgroup during create,
    so it fails, saying why in one line (was a bare EAGAIN), and leaves no
    cgroup behind."""
    cid = uid("pids1")
    config = _limits(v1, ["true"], pids={"limit": 1})
    p = v1("run", "-b", v1.bundle(config=config), cid)
    assert p.returncode == 1
    assert p.stderr.strip().endswith("fork(PID 1): Resource temporarily unavailable (EAGAIN)"
                                     " (linux.resources.pids.limit is 1: create needs 2)"), p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and leftovers(cid) == []
    assert runc(config, cid).returncode == 0  # the known difference, kept visible


SELF_MOVE = "step write(tasks, 0): "     # a process moving itself, in --debug
HOST_MOVE = "step write cgroup.procs: "  # the host moving a child


def _steps(stderr: str, step: str) -> list[str]:
    return [line for line in stderr.splitlines() if step in line]


def test_stage1_moves_itself_into_every_hierarchy_before_its_namespaces(v1, runc):
    """The kernel takes cgroup_threadgroup_rwsem (an RCU grace period) for a
    write of another pid; a single-threaded process writing 0 to a v1
    ``tasks`` file skips it. So stage 1 moves itself, before it unshares:
    its cgroup namespace is then rooted at the container's cgroup (``/`` in
    every v1 line of /proc/self/cgroup, as under runc), and PID 1 and all
    it forks are in the container's directory of every hierarchy. The
    host writes no v1 cgroup.procs (only, on a hybrid host where clone3 is
    refused, the cgroup2 tree's)."""
    cid = uid("self")
    config = v1.config(["sh", "-c", "cat /proc/self/cgroup; sleep 30"])
    p = v1("--debug", "run", "-d", "-b", v1.bundle(config=config), cid)
    assert p.returncode == 0, p.stderr
    try:
        moves = _steps(p.stderr, SELF_MOVE)
        assert len(moves) == 1 and _steps(p.stderr, HOST_MOVE) == [], p.stderr
        pid = json.loads(v1.ok("state", cid))["pid"]
        for h in HIERARCHIES:
            assert str(pid) in _cg(cid, h, "cgroup.procs").split(), h
    finally:
        v1.ok("delete", "--force", cid)
    assert leftovers(cid) == []
    config = v1.config(["cat", "/proc/self/cgroup"])
    config["linux"]["namespaces"].append({"type": "cgroup"})
    out = v1.ok("run", "-b", v1.bundle(config=config), cid)
    r = runc(config, cid + "-runc")
    assert r.returncode == 0, r.stderr
    for who, text in (("pyrun", out), ("runc", r.stdout)):
        lines = [line.split(":", 2) for line in text.splitlines() if line and not line.startswith("0::")]
        assert lines and all(path == "/" for _n, ctrls, path in lines if ctrls.split(",")[0] in HIERARCHIES), \
            (who, text)
    assert leftovers(cid) == []


def test_exec_helper_moves_itself_into_every_hierarchy(v1):
    """exec's helper, single-threaded after fork, moves itself as stage 1
    does: no cgroup.procs write by the host."""
    cid = uid("xself")
    with _running(v1, v1.bundle(config=v1.config(["sleep", "30"])), cid):
        p = v1("--debug", "exec", cid, "sh", "-c", "cat /proc/self/cgroup")
        assert p.returncode == 0, p.stderr
        assert len(_steps(p.stderr, SELF_MOVE)) == 1 and _steps(p.stderr, HOST_MOVE) == [], p.stderr
        lines = [line.split(":", 2) for line in p.stdout.splitlines() if not line.startswith("0::")]
        assert all(path == f"/pyrun/{cid}" for _n, ctrls, path in lines if ctrls.split(",")[0] in HIERARCHIES), \
            p.stdout


def _realtime():
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))


def test_a_refused_self_move_is_one_line_naming_the_file(v1, runc):
    """A real-time caller (SCHED_FIFO, inherited by stage 1) cannot join a
    new cpu cgroup, which has no real-time budget: the kernel refuses the
    move with EINVAL. Stage 1's own write says so in one line, naming the
    tasks file; nothing is left. runc fails the same way (its init's
    cgroup.procs)."""
    if not os.path.exists(os.path.join(CG, "cpu", "cpu.rt_runtime_us")):
        pytest.skip("needs RT group scheduling (cpu.rt_runtime_us)")
    cid = uid("rtmove")
    config = v1.config(["true"])
    p = v1("run", "-b", v1.bundle(config=config), cid, preexec_fn=_realtime)
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert p.stderr.strip().endswith(f"cgroup: write 0 to {CG}/cpu/pyrun/{cid}/tasks (a process moving "
                                     "itself): Invalid argument (EINVAL)"), p.stderr
    assert leftovers(cid) == []
    bundle = v1.bundle(config=config)
    r = subprocess.run(["chrt", "-f", "1", RUNC, "--root", os.path.join(v1.dir, "runc-rt"), "run", "-b", bundle,
                        cid + "-runc"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and "cgroup.procs: invalid argument" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(CG, "cpu", cid + "-runc"))


def test_a_cgroup_mount_never_shows_the_hosts_cgroup2_tree(v1):
    """Without a cgroup namespace a cgroup2 mount (or a bind of the host's)
    would show the host's whole hierarchy, every other container's cgroup
    in it (issue 23.2): on this v1/hybrid host pyrun mounts, as runc does,
    a tmpfs with the container's own v1 cgroups and no cgroup2 tree at all,
    so no new cgroup2 mount resets the hierarchy's options for the whole
    host either (the concern of 3003e9d). With a cgroup namespace, each
    hierarchy is rooted at the container's own cgroup."""
    unified = next((m for m, c in _hierarchies().items() if "unified" in c), None)
    if unified is None:
        pytest.skip("no cgroup2 hierarchy mounted beside v1 (hybrid)")
    host_options = _super_options(unified)
    cid = uid("cg2bind")
    script = "ls /sys/fs/cgroup /sys/fs/cgroup/memory; grep ' /sys/fs/cgroup' /proc/self/mountinfo"
    p = v1("run", "-b", v1.bundle(config=v1.config(["sh", "-c", script])), cid)
    assert p.returncode == 0, p.stderr
    names = p.stdout.split()
    assert "unified" not in names and "cgroup.controllers" not in names, p.stdout
    assert "pyrun" not in names and "memory.limit_in_bytes" in names, p.stdout  # its own memory cgroup
    assert not [ln for ln in p.stdout.splitlines() if " - cgroup2 " in ln and " /sys/fs/cgroup " in ln]
    assert _super_options(unified) == host_options
    config = v1.config(["sh", "-c", script])
    config["linux"]["namespaces"].append({"type": "cgroup"})
    p = v1("run", "-b", v1.bundle(config=config), cid)
    assert p.returncode == 0, p.stderr
    assert "pyrun" not in p.stdout.split() and "memory.limit_in_bytes" in p.stdout.split()
    assert _super_options(unified) == host_options
    assert leftovers(cid) == []


def _hierarchies() -> dict:
    from pyrun.cgroups import v1 as backend

    return backend.hierarchies()


def _super_options(mountpoint: str) -> str:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == mountpoint:
                return fields[-1]
    return ""


def test_a_failed_delete_leaves_no_layer_dir_and_a_second_one_finishes(v1, runc, workspace):
    """A cgroup that cannot be removed (a mount on a sub-cgroup: rmdir(2)
    is EBUSY) fails delete (runc says so, and forgets the container and
    its cgroup); pyrun still removes the
    container's writable layer under /var/lib/pyrun (it was left there)
    and keeps the record, so that the next delete, once the obstacle is
    gone, finishes: no cgroup, no state, no layer dir. Sub-cgroups with
    nothing in the way are removed with the container's, as runc does."""
    cid = uid("busy")
    config = _limits(v1, ["sleep", "300"], pids={"limit": 50})
    v1.ok("run", "-d", "-b", v1.bundle(config=config), cid)
    assert [n for n in os.listdir(v1.layers) if n.startswith(cid + ".")]
    os.mkdir(os.path.join(CG, "memory", "pyrun", cid, "plain-sub"))  # removed with it
    busy = os.path.join(CG, "pids", "pyrun", cid, "busy")
    os.mkdir(busy)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", busy], check=True)
    try:
        p = v1("delete", "--force", cid)
        assert p.returncode == 1 and f"rmdir {busy}: Device or resource busy" in p.stderr, p.stderr
        assert len(p.stderr.splitlines()) == 1, p.stderr
        assert [n for n in os.listdir(v1.layers) if n.startswith(cid + ".")] == []
        assert v1.state(cid)["status"] == "stopped"
    finally:
        subprocess.run(["umount", busy], check=True)
    v1.ok("delete", cid)
    assert leftovers(cid) == [] and os.listdir(v1.root) == []

    # runc, the same obstacle
    rcid = uid("busy-runc")
    state = runc_detached(workspace, config, rcid, f"/pyrun/{rcid}")
    busy = os.path.join(CG, "pids", "pyrun", rcid, "busy")
    os.mkdir(busy)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", busy], check=True)
    try:
        r = subprocess.run([RUNC, "--root", state, "delete", "--force", rcid], capture_output=True, text=True,
                           timeout=60)
        # runc 1.1 logs the failure, forgets the container and exits 0,
        # leaving the cgroup: pyrun keeps the record instead, to undo it later
        assert "Failed to remove cgroup" in r.stderr and "device or resource busy" in r.stderr, r.stderr
        assert subprocess.run([RUNC, "--root", state, "state", rcid], capture_output=True).returncode == 1
        assert leftovers(rcid) != []
    finally:
        subprocess.run(["umount", busy], check=True)
        subprocess.run([RUNC, "--root", state, "delete", "--force", rcid], capture_output=True)
        for left in leftovers(rcid):  # runc forgets the container, and leaves these
            for sub in (os.path.join(left, "busy"), left):
                if os.path.isdir(sub):
                    os.rmdir(sub)


def runc_detached(workspace: str, config: dict, cid: str, cgroups_path: str) -> str:
    """``runc run -d`` of ``config`` (read-only busybox root, the given
    cgroupsPath); returns runc's state root."""
    d = tempfile.mkdtemp(dir=workspace)
    bundle, state = os.path.join(d, "bundle"), os.path.join(d, "state")
    os.mkdir(bundle)
    rconfig = dict(config, root={"path": os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bundles",
                                                      "busybox", "rootfs"), "readonly": True})
    rconfig["linux"] = dict(config["linux"], cgroupsPath=cgroups_path)
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(rconfig, f)
    with tempfile.TemporaryFile("w+") as err:  # run -d hands its stdio to the container: not a pipe
        r = subprocess.run([RUNC, "--root", state, "run", "-d", "-b", bundle, cid], stdout=subprocess.DEVNULL,
                           stderr=err, stdin=subprocess.DEVNULL, timeout=60)
        err.seek(0)
        assert r.returncode == 0, err.read()
    return state


def test_update_of_a_shorter_cpu_period_with_its_quota_as_runc(v1, runc, workspace):
    """In a parent with a CPU bandwidth limit (0.5 CPU), a container at 0.4
    (40000/100000) goes to 0.3 (3000/10000): the period written first is
    EINVAL against the quota in force (4 CPUs); runc writes it again after
    the quota, and so does pyrun."""
    parent = f"cgv1-bwparent-{os.getpid()}"
    ppath = os.path.join(CG, "cpu", parent)
    os.mkdir(ppath)
    state = None
    try:
        with open(os.path.join(ppath, "cpu.cfs_quota_us"), "w") as f:
            f.write("50000")
        config = _limits(v1, ["sleep", "300"], cpu={"quota": 40000, "period": 100000})
        cid, rcid = uid("bw"), uid("bw-runc")
        config["linux"]["cgroupsPath"] = f"/{parent}/{cid}"
        v1.ok("run", "-d", "-b", v1.bundle(config=config), cid)
        state = runc_detached(workspace, config, rcid, f"/{parent}/{rcid}")
        flags = ["update", "--cpu-period", "10000", "--cpu-quota", "3000"]
        r = subprocess.run([RUNC, "--root", state, *flags, rcid], capture_output=True, text=True, timeout=60)
        p = v1(*flags, cid)
        for who, res, c in (("runc", r, rcid), ("pyrun", p, cid)):
            assert res.returncode == 0, (who, res.stderr)
            assert [_cg_at(parent, c, f) for f in ("cpu.cfs_period_us", "cpu.cfs_quota_us")] == ["10000", "3000"]
    finally:
        if state:
            subprocess.run([RUNC, "--root", state, "delete", "--force", uid("bw-runc")], capture_output=True)
        v1("delete", "--force", uid("bw"))
        for h in os.listdir(CG):
            for sub in (os.path.join(CG, h, parent, uid("bw-runc")), os.path.join(CG, h, parent, uid("bw")),
                        os.path.join(CG, h, parent)):
                if os.path.isdir(sub):
                    try:
                        os.rmdir(sub)
                    except OSError:
                        pass


def _cg_at(parent: str, cid: str, name: str) -> str:
    with open(os.path.join(CG, name.split(".")[0], parent, cid, name)) as f:
        return f.read().strip()


def _premade(path: str) -> list[str]:
    """The cgroup ``path`` made in every v1 hierarchy (and the hybrid tree),
    as an engine or a user makes one before the runtime: its directories."""
    from pyrun.cgroups import v1 as v1cg

    dirs = []
    for mnt, ctrls in v1cg.hierarchies().items():
        d = mnt + path
        os.makedirs(d, exist_ok=True)
        if "cpuset" in ctrls:
            for name in ("cpuset.cpus", "cpuset.mems"):
                with open(os.path.join(mnt, name)) as f, open(os.path.join(d, name), "w") as g:
                    g.write(f.read().strip())
        dirs.append(d)
    return dirs


def _rm_premade(dirs: list[str]) -> None:
    for d in dirs:
        for sub in [e.path for e in os.scandir(d) if e.is_dir()] if os.path.isdir(d) else []:
            os.rmdir(sub)
        if os.path.isdir(d):
            deadline = time.monotonic() + 5
            while True:
                try:
                    os.rmdir(d)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)


def test_a_non_empty_cgroup_warns_and_runs_and_its_processes_are_left_as_runc(v1, runc):
    """cgroupsPath names a cgroup that already has a process (not the
    container's): runc 1.1 warns "container's cgroup is not empty" and runs;
    so does pyrun, and its delete does not kill that process."""
    for who in ("pyrun", "runc"):
        path = f"/cgv1-shared-{who}-{os.getpid()}"
        dirs = _premade(path)
        sleeper = subprocess.Popen(["sleep", "60"])
        try:
            for d in dirs:
                with open(os.path.join(d, "cgroup.procs"), "w") as f:
                    f.write(str(sleeper.pid))
            config = _limits(v1, ["echo", "ran"])
            config["linux"]["cgroupsPath"] = path
            cid = uid(f"shared-{who}")
            res = v1("run", "-b", v1.bundle(config=config), cid) if who == "pyrun" else runc(config, cid)
            assert res.returncode == 0, (who, res.stderr)
            assert res.stdout == "ran\n", (who, res.stdout)
            assert "container's cgroup is not empty: 1 process(es) found" in res.stderr, (who, res.stderr)
            assert sleeper.poll() is None, who  # still running, in its cgroup
        finally:
            sleeper.kill()
            sleeper.wait()
            _rm_premade(dirs)


def test_run_into_a_frozen_cgroup_is_refused_not_hung_as_runc(v1, runc):
    """A pre-made cgroup whose freezer is FROZEN: runc refuses ("container's
    cgroup unexpectedly frozen"); pyrun did the same only after hanging
    forever in it (its own processes froze there)."""
    for who in ("pyrun", "runc"):
        path = f"/cgv1-frozen-{who}-{os.getpid()}"
        dirs = _premade(path)
        try:
            with open(os.path.join(CG, "freezer") + path + "/freezer.state", "w") as f:
                f.write("FROZEN")
            config = _limits(v1, ["echo", "ran"])
            config["linux"]["cgroupsPath"] = path
            cid = uid(f"frozen-{who}")
            if who == "pyrun":
                res = v1("run", "-d", "-b", v1.bundle(config=config), cid, timeout=30)
                assert os.listdir(v1.root) == []
            else:
                res = runc(config, cid, timeout=30)
            assert res.returncode == 1, (who, res.stderr)
            assert "container's cgroup unexpectedly frozen" in res.stderr, (who, res.stderr)
        finally:
            freezer = os.path.join(CG, "freezer") + path + "/freezer.state"
            if os.path.exists(freezer):
                with open(freezer, "w") as f:
                    f.write("THAWED")
            _rm_premade([d for d in dirs if os.path.isdir(d)])


def _cgroup_lines(pid: int) -> dict[str, str]:
    """/proc/PID/cgroup: controllers -> path, as the host sees it."""
    with open(f"/proc/{pid}/cgroup") as f:
        return {ctrls: path for _, ctrls, path in (line.rstrip("\n").split(":", 2) for line in f)}


def _runc_at(state: str):
    """runc with its state root; output to files (exec -d hands its stdio on)."""
    def call(*args) -> subprocess.CompletedProcess:
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            p = subprocess.run([RUNC, "--root", state, *args], stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                               text=True, timeout=60)
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(p.args, p.returncode, out.read(), err.read().replace('\\"', '"'))
    return call


def test_exec_cgroup_takes_runcs_v1_forms(v1, runc, workspace):
    """runc's --cgroup on cgroup v1, pyrun and runc side by side:
    controller:path pairs (repeatable, several controllers before one
    path), a single path for every hierarchy, "/" for the container's own;
    ".." refused in runc's words, a missing sub-cgroup and an unknown
    controller refused too; delete removes the sub-cgroups."""
    config = _limits(v1, ["sleep", "300"])
    cid, rcid = uid("execcg"), uid("execcg-runc")
    v1.ok("run", "-d", "-b", v1.bundle(config=config), cid)
    state = runc_detached(workspace, config, rcid, f"/pyrun/{rcid}")
    try:
        for who, call, c in (("pyrun", v1, cid), ("runc", _runc_at(state), rcid)):
            _exec_cgroup_forms(who, call, c, v1.dir)
    finally:
        subprocess.run([RUNC, "--root", state, "delete", "--force", rcid], capture_output=True)
        for left in leftovers(rcid):  # runc 1.1 leaves the sub-cgroups
            for sub in [e.path for e in os.scandir(left) if e.is_dir()] + [left]:
                os.rmdir(sub)
    v1.ok("delete", "--force", cid)  # the sub-cgroups and what runs in them go too
    assert leftovers(cid) == []


def _exec_cgroup_forms(who: str, call, cid: str, scratch: str) -> None:
    base = f"/pyrun/{cid}"
    for h in ("memory", "cpu", "cpuacct"):
        os.makedirs(os.path.join(CG, h, "pyrun", cid, "sub1"), exist_ok=True)
    for h in os.listdir(CG):
        if os.path.isdir(os.path.join(CG, h, "pyrun", cid)):
            d = os.path.join(CG, h, "pyrun", cid, "everywhere")
            os.makedirs(d, exist_ok=True)
            for name in ("cpuset.cpus", "cpuset.mems"):  # a cpuset cgroup without them takes no process
                if os.path.exists(os.path.join(d, name)):
                    with open(os.path.join(os.path.dirname(d), name)) as f, open(os.path.join(d, name), "w") as g:
                        g.write(f.read().strip())

    def where(*flags) -> dict[str, str]:
        pid_file = os.path.join(scratch, f"exec-{who}-{time.monotonic_ns()}.pid")
        p = call("exec", "-d", "--pid-file", pid_file, *flags, cid, "sleep", "30")
        assert p.returncode == 0, (who, flags, p.stderr)
        with open(pid_file) as f:
            return _cgroup_lines(int(f.read()))

    own = where()
    assert all(p == base for c, p in own.items() if c), (who, own)
    assert where("--cgroup", "/") == own, who
    two = where("--cgroup", "memory:sub1", "--cgroup", "cpu,cpuacct:sub1")
    for ctrls, path in two.items():
        named = {"memory", "cpu", "cpuacct"} & set(ctrls.split(","))
        assert path == (base + "/sub1" if named else base), (who, ctrls, path)
    every = where("--cgroup", "everywhere")
    assert all(p == base + "/everywhere" for c, p in every.items() if c), (who, every)
    for flags, words in ((["--cgroup", ".."], ".. is not a sub cgroup path"),
                         (["--cgroup", "memory:../.."], "../.. is not a sub cgroup path"),
                         (["--cgroup", "nonexistent"], "o such file or directory"),
                         (["--cgroup", "cpu:nonexistent"], "o such file or directory"),
                         (["--cgroup", "whaaat:/"], "unknown controller whaaat"),
                         (["--cgroup", "a", "--cgroup", "b"], "(missing <controller>: prefix)")):
        p = call("exec", *flags, cid, "true")
        assert p.returncode == 255 and words in p.stderr, (who, flags, p.stderr)
        assert len(p.stderr.splitlines()) == 1, (who, p.stderr)


# ------------------------------------------ rootless, a cgroup delegated to the user

@pytest.fixture
def delegated(rt):
    """Rootless on this v1 host, as root made it: /cgv1-deleg-PID in every
    hierarchy owned by the test user (a delegated cgroup), and
    /cgv1-noperm-PID that stays root's."""
    if not rt.rootless or os.geteuid() != 0:
        pytest.skip("rootless, with root to delegate a cgroup to the test user")
    if cgroups.available() or not _v1_mounted("pids"):
        pytest.skip("needs a cgroup v1 or hybrid host")
    made = {}
    for name, owner in (("deleg", rt.uid), ("noperm", 0)):
        path = f"/cgv1-{name}-{os.getpid()}"
        made[name] = (path, _premade(path))
        for d in made[name][1]:
            for root, dirs, files in os.walk(d):
                for n in [root, *(os.path.join(root, f) for f in files)]:
                    os.chown(n, owner, owner)
    yield {k: v[0] for k, v in made.items()}
    for _, dirs in made.values():
        _rm_premade(dirs)


def test_rootless_uses_a_delegated_v1_cgroup_and_fails_on_one_it_cannot_write_as_runc(rt, delegated):
    from test_runc_semantics import Bundles

    rb = Bundles(rt)
    try:
        for who in ("pyrun", "runc"):
            def edit(config, path=None, limit=True):
                if path:
                    config["linux"]["cgroupsPath"] = path
                if limit:
                    config["linux"]["resources"] = {"pids": {"limit": 20}}
            cid = rb.cid(who)
            run = (lambda *a: rt(*a)) if who == "pyrun" else rb.runc
            # delegated: used, the limit written, removed at delete
            path = f"{delegated['deleg']}/{cid}"
            b = rb.make(["sleep", "300"], lambda c: edit(c, path))
            p = run("run", "-d", "-b", b, cid)
            assert p.returncode == 0, (who, p.stderr)
            pid = json.loads(run("state", cid).stdout)["pid"]
            assert _cgroup_lines(pid)["pids"] == path, who
            with open(os.path.join(CG, "pids") + path + "/pids.max") as f:
                assert f.read().strip() == "20", who
            assert run("delete", "--force", cid).returncode == 0
            assert not os.path.exists(os.path.join(CG, "pids") + path), who
            # not writable: refused, with or without limits
            for limit in (True, False):
                cid = rb.cid(who)
                b = rb.make(["true"], lambda c: edit(c, f"{delegated['noperm']}/{cid}", limit))
                p = run("run", "-b", b, cid)
                assert p.returncode == 1, (who, limit, p.stderr)
                assert "ermission denied" in p.stderr, (who, p.stderr)
                if who == "pyrun":
                    assert "linux.cgroupsPath" in p.stderr and len(p.stderr.splitlines()) == 1, p.stderr
            # no cgroupsPath: no cgroup, so a limit is refused (and none is fine)
            for limit, code in ((True, 1), (False, 0)):
                cid = rb.cid(who)
                p = run("run", "-b", rb.make(["true"], lambda c: edit(c, None, limit)), cid)
                assert p.returncode == code, (who, limit, p.stderr)
    finally:
        rb.cleanup()


def test_two_containers_in_one_cgroup_delete_kills_only_its_own_as_runc(v1, runc, workspace):
    """Two containers given the same cgroupsPath (the second is warned, as
    runc warns): deleting the first must not kill the second, whose PID 1
    is in that cgroup too (pyrun killed whatever it found there)."""
    config = _limits(v1, ["sleep", "300"])
    for who in ("pyrun", "runc"):
        path = f"/pyrun/cgv1-two-{who}-{os.getpid()}"
        first, second = uid(f"two-a-{who}"), uid(f"two-b-{who}")
        if who == "pyrun":
            conf = dict(config, linux=dict(config["linux"], cgroupsPath=path))
            call = v1
            v1.ok("run", "-d", "-b", v1.bundle(config=conf), first)
            p = v1("run", "-d", "-b", v1.bundle(config=conf), second)
        else:
            state = runc_detached(workspace, config, first, path)
            call = _runc_at(state)
            rconf = dict(config, root={"path": os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                                            "bundles", "busybox", "rootfs"), "readonly": True},
                         linux=dict(config["linux"], cgroupsPath=path))
            bundle = tempfile.mkdtemp(dir=workspace)
            with open(os.path.join(bundle, "config.json"), "w") as f:
                json.dump(rconf, f)
            p = call("run", "-d", "-b", bundle, second)
        try:
            assert p.returncode == 0, (who, p.stderr)
            assert "container's cgroup is not empty: " in p.stderr, (who, p.stderr)  # pyrun's init too: 2
            pid2 = json.loads(call("state", second).stdout)["pid"]
            assert call("delete", "--force", first).returncode == 0, who
            time.sleep(0.2)
            assert json.loads(call("state", second).stdout)["status"] == "running", who
            assert _state_letter(pid2) not in (None, "Z"), who
        finally:
            call("delete", "--force", second)
            call("delete", "--force", first)
            for left in [os.path.join(CG, h) + path for h in os.listdir(CG)]:
                if os.path.isdir(left):
                    os.rmdir(left)
