"""``--systemd-cgroup`` on a cgroup v1 (hybrid) host: runc's v1 systemd driver.

The tests marked ``systemd_v1`` run in the VM that boots systemd with the
v1 controllers (``tools/vm/vm-test --systemd --cgroup-v1``, kernel command
line ``systemd.unified_cgroup_hierarchy=0``), rootful only: rootless on v1
has no cgroup, with the flag too (as runc). systemd makes the scope in the
hierarchies it manages (memory, pids, cpu, blkio, devices, name=systemd,
the hybrid cgroup2 tree), pyrun in the others; the same scenario runs with
``runc --systemd-cgroup`` where runc is installed, and must land in the same
cgroups. The unmarked tests are pure logic or run on any host.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from pyrun.cgroups import convert, systemd

CG = "/sys/fs/cgroup"
RUNC = shutil.which("runc", path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin")
SLICE_DIR = "/pyrun.slice/pyrun-test.slice"  # pyrun-test.slice: its dash nests it in pyrun.slice


def is_v1() -> bool:
    return not os.path.exists(f"{CG}/cgroup.controllers") and os.path.isdir(f"{CG}/memory")


# ----------------------------------------------------------------- properties (pure logic)

def test_v1_limits_become_the_legacy_unit_properties_runc_sets():
    items = convert.writes_v1({"memory": {"limit": 64 << 20, "reservation": 1 << 20, "swap": 96 << 20},
                               "pids": {"limit": 20}, "blockIO": {"weight": 300},
                               "cpu": {"shares": 512, "quota": 12345, "period": 100000, "cpus": "0"}})
    props = dict(systemd.legacy_properties(items))
    assert props == {"MemoryLimit": ("t", 64 << 20), "CPUShares": ("t", 512),
                     "CPUQuotaPeriodUSec": ("t", 100000),
                     "CPUQuotaPerSecUSec": ("t", 130000),  # 123450 rounded up to 10 ms, as runc
                     "BlockIOWeight": ("t", 300), "TasksMax": ("t", 20)}
    unlimited = dict(systemd.legacy_properties(convert.writes_v1({"memory": {"limit": -1}, "pids": {"limit": -1},
                                                                  "cpu": {"quota": -1}})))
    assert unlimited == {"MemoryLimit": ("t", 2**64 - 1), "TasksMax": ("t", 2**64 - 1),
                         "CPUQuotaPerSecUSec": ("t", 2**64 - 1)}
    assert systemd.legacy_properties(convert.writes_v1({"cpu": {"quota": 50000}})) == \
        [("CPUQuotaPerSecUSec", ("t", 500000))]  # the default period, 100 ms


def test_device_rules_become_devicepolicy_strict_and_deviceallow():
    props = dict(systemd.device_properties(None, []))
    assert props["DevicePolicy"] == ("s", "strict")
    kind, allowed = props["DeviceAllow"]
    assert kind == "a(ss)"
    assert ("/dev/char/1:3", "rwm") in allowed and ("char-136", "rwm") in allowed
    assert ("char-*", "m") in allowed and ("block-*", "m") in allowed
    assert not any(path.startswith("/dev/char/1:1") for path, _ in allowed)  # /dev/mem stays out
    extra = {"devices": [{"allow": False, "access": "rwm"},
                         {"allow": True, "type": "b", "major": 7, "minor": 0, "access": "rw"},
                         {"allow": True, "type": "c", "minor": 5, "access": "r"}]}
    allowed = dict(systemd.device_properties(extra, []))["DeviceAllow"][1]
    assert ("/dev/block/7:0", "rw") in allowed
    assert not any(":5" in path and "*" in path for path, _ in allowed)  # "c *:5": systemd cannot say it
    # allow-all: systemd's default policy; allow-all with a hole: narrower (deny all) there
    everything = {"devices": [{"allow": True, "access": "rwm"}]}
    assert systemd.device_properties(everything, []) == [("DevicePolicy", ("s", "auto")), ("DeviceAllow", ("a(ss)", []))]
    holed = {"devices": [{"allow": True, "access": "rwm"},
                         {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"}]}
    assert systemd.device_properties(holed, []) == [("DevicePolicy", ("s", "strict")), ("DeviceAllow", ("a(ss)", []))]


def test_rootless_on_cgroup_v1_the_flag_is_refused_as_runc(rt):
    """runc 1.1: "cannot use rootless systemd cgroups manager on cgroup v1"
    (seen in the v1 VM); pyrun says so in one line, before it asks any bus
    or makes anything. Without the flag the container runs without a cgroup."""
    if not rt.rootless or not is_v1():
        pytest.skip("rootless on a cgroup v1 host")
    config = rt.config(["true"])
    config["linux"]["cgroupsPath"] = "machine.slice:pyrun:c1"
    p = rt("--systemd-cgroup", "run", "-b", rt.bundle(config=config), "c1")
    assert p.returncode == 1, p.stdout + p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr, p.stderr
    assert "cannot use rootless systemd cgroups manager on cgroup v1" in p.stderr, p.stderr
    assert "bus" not in p.stderr, p.stderr
    left = os.listdir(rt.root) if os.path.isdir(rt.root) else []
    assert left == [], left
    del config["linux"]["cgroupsPath"]
    assert rt("run", "-b", rt.bundle(config=config), "c1").returncode == 0


# ----------------------------------------------------------------- in the systemd VM (v1)

@pytest.fixture
def sd1(rt):
    if rt.rootless:
        pytest.skip("rootless on cgroup v1 has no cgroup (as runc)")
    if not os.path.isdir("/run/systemd/system") or not is_v1():
        pytest.skip("needs systemd as PID 1 on cgroup v1 (tools/vm/vm-test --systemd --cgroup-v1)")
    return rt


def direct_config(rt, args: list[str]) -> dict:
    c = rt.config(args)
    c.setdefault("annotations", {})["org.pyrun.rootfs"] = "direct"  # the guest's / is an overlay on 9p
    return c


def systemctl(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["systemctl", *args], text=True, capture_output=True, timeout=60)


def show(unit: str, prop: str) -> str:
    return systemctl("show", "-P", prop, unit).stdout.strip()


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def cgroups_of(pid: int) -> dict[str, str]:
    """/proc/PID/cgroup: controllers -> path ("" for the cgroup2 tree)."""
    out = {}
    for line in read(f"/proc/{pid}/cgroup").splitlines():
        _n, ctrls, path = line.split(":", 2)
        out[ctrls] = path
    return out


def scope_dirs(unit: str) -> list[str]:
    """The unit's directory in every hierarchy where one exists."""
    return sorted(os.path.join(root, unit) for root, dirs, _files in os.walk(CG) if unit in dirs)


class Runc:
    """runc --systemd-cgroup as root, with its own state root and a copy of the rootfs."""

    def __init__(self, workspace: str):
        self.dir = tempfile.mkdtemp(prefix="runc-", dir=workspace)
        self.rootfs = os.path.join(self.dir, "rootfs")
        subprocess.run(["cp", "-a", os.path.join(os.path.dirname(__file__), "..", "bundles", "busybox", "rootfs"),
                        self.rootfs], check=True)

    def __call__(self, *args, timeout: float = 60) -> subprocess.CompletedProcess:
        # files, not pipes: a detached container keeps runc's stdio open
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            p = subprocess.run([RUNC, "--systemd-cgroup", "--root", os.path.join(self.dir, "state"), *args],
                               stdout=out, stderr=err, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(p.args, p.returncode, out.read(), err.read())

    def ok(self, *args, **kw) -> str:
        p = self(*args, **kw)
        assert p.returncode == 0, f"runc {' '.join(args)} -> {p.returncode}\n{p.stderr}"
        return p.stdout

    def bundle(self, config: dict) -> str:
        bundle = tempfile.mkdtemp(dir=self.dir)
        config = dict(config, root={"path": self.rootfs, "readonly": False})
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(config, f)
        return bundle

    def state(self, cid: str) -> dict:
        return json.loads(self.ok("state", cid))


# /dev/mem (c 1:1) is not among the allowed devices: mknod works ("c *:* m"),
# open(2) must fail; /dev/null must work.
DEVICE_CHECK = ("mknod /tmp/mem c 1 1 2>/dev/null; (exec 3</tmp/mem) 2>/dev/null && echo MEM-OPENED; "
                "rm -f /tmp/mem; echo x > /dev/null && echo null-ok")


@pytest.mark.systemd_v1
def test_v1_scope_in_its_slice_limits_update_pause_delete_as_runc(sd1, workspace):
    """pyrun, then runc with the same config and id: the scope pyt-c1.scope
    in pyrun-test.slice, the same cgroup in the memory, pids, cpu, blkio,
    freezer, cpuset hierarchies, limits as properties and files, update,
    pause/resume, delete leaves no unit and no directory."""
    config = direct_config(sd1, ["sleep", "600"])
    config["linux"]["cgroupsPath"] = "pyrun-test.slice:pyt:c1"
    config["linux"]["resources"] = {"memory": {"limit": 32 << 20}, "pids": {"limit": 20}}
    unit = "pyt-c1.scope"
    runtimes = {"pyrun": sd1}
    if RUNC:
        runtimes["runc"] = Runc(workspace)
    seen: dict[str, dict[str, str]] = {}
    for who, rt in runtimes.items():
        if who == "pyrun":
            sd1.ok("--systemd-cgroup", "run", "-d", "-b", sd1.bundle(config=config), "c1")
        else:
            rt.ok("run", "-d", "-b", rt.bundle(config), "c1")
        try:
            status = systemctl("status", "--no-pager", unit)
            assert status.returncode == 0 and "pyrun-test.slice" in status.stdout, (who, status.stdout)
            pid = rt.state("c1")["pid"]
            seen[who] = cgroups_of(pid)
            for ctrl in ("memory", "pids"):
                assert seen[who][ctrl] == f"{SLICE_DIR}/{unit}", (who, seen[who])
            mem, pids = f"{CG}/memory{SLICE_DIR}/{unit}", f"{CG}/pids{SLICE_DIR}/{unit}"
            assert read(f"{mem}/memory.limit_in_bytes") == str(32 << 20) and read(f"{pids}/pids.max") == "20"
            assert show(unit, "MemoryLimit") == str(32 << 20) and show(unit, "TasksMax") == "20", who
            # update: the unit's properties (systemctl shows them) and the files
            rt.ok("update", "--pids-limit", "50", "--memory", "64M", "c1")
            assert read(f"{pids}/pids.max") == "50" and read(f"{mem}/memory.limit_in_bytes") == str(64 << 20), who
            assert show(unit, "TasksMax") == "50" and show(unit, "MemoryLimit") == str(64 << 20), who
            # pause/resume: the freezer hierarchy, which systemd does not manage
            rt.ok("pause", "c1")
            assert read(f"{CG}/freezer{SLICE_DIR}/{unit}/freezer.state") == "FROZEN", who
            rt.ok("resume", "c1")
            assert read(f"{CG}/freezer{SLICE_DIR}/{unit}/freezer.state") == "THAWED", who
            if who == "pyrun":
                # the device rules, in the scope's devices cgroup, also after
                # systemd re-applied its own list (a daemon-reexec, a
                # set-property of the unit's devices): the unit's
                # DevicePolicy/DeviceAllow must say what pyrun's files say
                assert seen[who]["devices"] == f"{SLICE_DIR}/{unit}", seen[who]
                assert "c 1:3 rwm" in read(f"{CG}/devices{SLICE_DIR}/{unit}/devices.list")
                for moment, then in (("start", ["daemon-reexec"]),
                                     ("daemon-reexec", ["set-property", "--runtime", unit, "DeviceAllow=/dev/char/1:7 rwm"]),
                                     ("set-property", [])):
                    # (systemd moves a process whose unit has no devices
                    # controller of its own to the slice's devices cgroup,
                    # which allows everything: seen with runc 1.1)
                    assert cgroups_of(pid)["devices"] == f"{SLICE_DIR}/{unit}", moment
                    out = sd1.ok("exec", "c1", "sh", "-c", DEVICE_CHECK)
                    assert "MEM-OPENED" not in out and "null-ok" in out, (moment, out,
                                                                          read(f"{CG}/devices{SLICE_DIR}/{unit}/devices.list"))
                    if then:
                        assert systemctl(*then).returncode == 0, then
                # exec: in the scope in every hierarchy; ps; events --stats
                out = sd1.ok("exec", "c1", "cat", "/proc/self/cgroup")
                assert f"memory:{SLICE_DIR}/{unit}" in out and f"freezer:{SLICE_DIR}/{unit}" in out, out
                assert pid in json.loads(sd1.ok("ps", "-f", "json", "c1"))
                stats = json.loads(sd1.ok("events", "--stats", "c1"))["data"]
                assert stats["pids"]["limit"] == 50 and stats["memory"]["usage"]["limit"] == 64 << 20, stats
            rt.ok("kill", "--all" if who == "pyrun" else "-a", "c1", "KILL")
            deadline = time.monotonic() + 10
            while rt.state("c1")["status"] != "stopped" and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            rt("delete", "--force", "c1")
        assert show(unit, "ActiveState") in ("inactive", ""), (who, systemctl("status", unit).stdout)
        assert scope_dirs(unit) == [], (who, scope_dirs(unit))
    if "runc" in seen:
        # the same cgroups; but runc 1.1's process stays in the slice's
        # devices cgroup (systemd attaches it there and runc's later write
        # does not keep it in the scope's), and runc 1.1 does not know misc
        other = {"devices", "misc"}
        differ = {k: (seen["pyrun"][k], seen["runc"].get(k)) for k in seen["pyrun"]
                  if k not in other and seen["pyrun"][k] != seen["runc"].get(k)}
        assert not differ, seen


@pytest.mark.systemd_v1
def test_v1_memory_and_pids_limits_of_the_scope_bite(sd1):
    from test_cgroups_systemd import limits_bite

    for unit in limits_bite(sd1):
        assert show(unit, "ActiveState") in ("inactive", "")
        assert scope_dirs(unit) == []


@pytest.mark.systemd_v1
def test_v1_sigkill_of_create_then_delete_force_leaves_no_unit(sd1):
    from test_cgroups_systemd import killed_creates

    killed_creates(sd1, lambda: show("pyt-c2.scope", "ActiveState") in ("inactive", "")
                   and scope_dirs("pyt-c2.scope") == [])


@pytest.mark.systemd_v1
def test_v1_podman_rootful_with_the_systemd_cgroup_manager():
    """podman's default where systemd is PID 1, on a v1 host (RHEL 8,
    Ubuntu 20.04): conmon calls pyrun with --systemd-cgroup and
    machine.slice:libpod:<id>; the limits land in the scope's v1 files."""
    if not os.path.isdir("/run/systemd/system") or not is_v1() or os.geteuid() != 0:
        pytest.skip("needs systemd as PID 1 on cgroup v1, and root (tools/vm/vm-test --systemd --cgroup-v1)")
    from podman_env import IMAGE, PodmanEnv, runtime_for

    d = tempfile.mkdtemp(prefix="pypm-", dir="/tmp")  # podman: runroot paths <= 50 characters
    os.chmod(d, 0o755)
    tar = os.path.join(d, "busybox.tar")
    rootfs = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bundles/busybox/rootfs")
    subprocess.run(["tar", "-C", rootfs, "-cf", tar, "."], check=True)
    pm = PodmanEnv("pyrun", runtime_for(0, 0, d), [], "rootful", d, tar, driver="vfs", cgroup_manager="systemd")
    try:
        p = pm("run", "--rm", "--network", "none", "--pids-limit", "50", IMAGE,
               "sh", "-c", "for i in $(seq 60); do sleep 5 & done", timeout=180)
        assert "can't fork" in p.stderr, p.stdout + p.stderr  # the pids limit bites
        cid = pm.ok("run", "-d", "--network", "none", "--memory", "64m", "--pids-limit", "50", IMAGE,
                    "sleep", "600", timeout=180).strip()
        unit = f"libpod-{cid}.scope"
        assert show(unit, "ControlGroup") == f"/machine.slice/{unit}", systemctl("status", unit).stdout
        assert read(f"{CG}/memory/machine.slice/{unit}/memory.limit_in_bytes") == str(64 << 20)
        assert read(f"{CG}/pids/machine.slice/{unit}/pids.max") == "50"
        assert os.path.isdir(f"{CG}/freezer/machine.slice/{unit}")
        assert pm("exec", cid, "true", timeout=120).returncode == 0
        assert pm("stop", "-t", "1", cid, timeout=120).returncode == 0
        assert pm("rm", cid, timeout=120).returncode == 0
        assert show(unit, "ActiveState") in ("inactive", "")
        assert scope_dirs(unit) == []
    finally:
        problems = pm.teardown()
        shutil.rmtree(d, ignore_errors=True)
    assert not problems, problems
