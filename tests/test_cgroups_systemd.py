"""``--systemd-cgroup``: the container's cgroup is a transient scope unit.

The tests marked ``systemd`` need systemd as PID 1 and run in the VM that
boots it (``make vm-test-systemd``), rootful (system bus) and rootless (the
test user's own systemd, lingering). The others run anywhere: the naming
rules (pure logic) and, on a host whose PID 1 is not systemd, the one-line
error that names the bus and leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from pyrun.cgroups import convert, systemd
from pyrun.errors import ConfigError


def systemd_is_pid1() -> bool:
    """sd_booted(3): /run/systemd/system exists only when systemd is PID 1."""
    return os.path.isdir("/run/systemd/system")


# ----------------------------------------------------------------- naming (pure logic)

def test_slice_names_expand_into_their_parents_as_runc():
    assert systemd.expand_slice("system.slice") == "/system.slice"
    assert systemd.expand_slice("a-b-c.slice") == "/a.slice/a-b.slice/a-b-c.slice"
    assert systemd.expand_slice("-.slice") == "/"
    for bad in ("a--b.slice", "-a.slice", "a-.slice", "a/b.slice", "a.scope", ".slice"):
        with pytest.raises(ConfigError, match="linux.cgroupsPath"):
            systemd.expand_slice(bad)


def test_cgroups_path_is_slice_prefix_name():
    assert systemd.parse_path("machine.slice:libpod:abc", "c1", False) == ("machine.slice", "libpod-abc.scope")
    assert systemd.parse_path(":libpod:abc", "c1", False) == ("system.slice", "libpod-abc.scope")
    assert systemd.parse_path(":libpod:abc", "c1", True) == ("user.slice", "libpod-abc.scope")
    assert systemd.parse_path(None, "c1", False) == ("system.slice", "pyrun-c1.scope")
    for bad in ("/a/b", "a:b", "x.slice:p:", "x.slice:p:a/b", "x:p:n"):
        with pytest.raises(ConfigError, match="linux.cgroupsPath"):
            systemd.parse_path(bad, "c1", False)


def test_limits_become_the_unit_properties_runc_sets():
    items = convert.writes({"memory": {"limit": 64 << 20, "reservation": 1 << 20, "swap": 96 << 20},
                            "pids": {"limit": 20}, "cpu": {"shares": 1024, "quota": 12345, "period": 100000,
                                                           "cpus": "0-2,9", "mems": "0"}})
    props = dict(systemd.properties(items))
    assert props["MemoryMax"] == ("t", 64 << 20)
    assert props["MemoryLow"] == ("t", 1 << 20)
    assert props["MemorySwapMax"] == ("t", 32 << 20)
    assert props["TasksMax"] == ("t", 20)
    assert props["CPUWeight"] == ("t", 39)
    assert props["CPUQuotaPerSecUSec"] == ("t", 130000)  # 123450 rounded up to 10 ms, as runc
    assert props["CPUQuotaPeriodUSec"] == ("t", 100000)
    assert props["AllowedCPUs"] == ("ay", bytes([0b111, 0b10]))
    assert props["AllowedMemoryNodes"] == ("ay", b"\x01")
    unlimited = dict(systemd.properties(convert.writes({"memory": {"limit": -1}, "pids": {"limit": -1}})))
    assert unlimited == {"MemoryMax": ("t", 2**64 - 1), "TasksMax": ("t", 2**64 - 1)}


# ----------------------------------------------------------------- without systemd

def nothing_left(rt) -> None:
    """No state (the state root is this test's own: the host-wide residue
    check sees other runs' mounts on a shared host)."""
    left = os.listdir(rt.root) if os.path.isdir(rt.root) else []
    assert left == [], f"state left behind: {left}"


def test_without_systemd_create_fails_naming_the_bus(rt):
    if systemd_is_pid1():
        pytest.skip("systemd is PID 1 here: the VM's tests cover it")
    if rt.rootless and not os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        pytest.skip("rootless on cgroup v1: refused before any bus, as runc (test_cgroups_systemd_v1)")
    config = rt.config(["true"])
    config["linux"]["cgroupsPath"] = "machine.slice:pyrun:c1"
    p = rt("--systemd-cgroup", "run", "-b", rt.bundle(config=config), "c1")
    assert p.returncode == 1, p.stdout + p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    bus = "unix:path=/run/dbus/system_bus_socket" if not rt.rootless else f"unix:path=/run/user/{rt.uid}/bus"
    assert f"--systemd-cgroup: cannot reach systemd on the bus {bus}" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
    nothing_left(rt)


def test_a_slice_as_the_container_unit_is_refused_before_anything_is_made(rt):
    """runc reads slice:prefix:NAME.slice as "the container is the slice
    unit NAME.slice", but systemd puts no process into a slice
    (StartTransientUnit refuses PIDs for it: runc 1.1.5 fails there, see
    test_a_slice_as_the_container_unit_fails_with_runc_too); pyrun says so,
    before it reaches the bus, with no residue."""
    config = rt.config(["true"])
    config["linux"]["cgroupsPath"] = "system.slice:pyt:system-c1.slice"
    p = rt("--systemd-cgroup", "run", "-b", rt.bundle(config=config), "c1")
    assert p.returncode == 1, p.stdout + p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "linux.cgroupsPath" in p.stderr and "systemd puts no process into a slice unit" in p.stderr, p.stderr
    assert "bus" not in p.stderr.replace("StartTransientUnit", ""), p.stderr
    nothing_left(rt)


def test_without_the_flag_the_systemd_form_is_refused(rt):
    if rt.rootless and not os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        pytest.skip("rootless on cgroup v1: no cgroup at all, cgroupsPath unused (as runc)")
    config = rt.config(["true"])
    config["linux"]["cgroupsPath"] = "machine.slice:pyrun:c1"
    p = rt("run", "-b", rt.bundle(config=config), "c1")
    assert p.returncode == 1 and "needs --systemd-cgroup" in p.stderr, p.stderr
    nothing_left(rt)


# ----------------------------------------------------------------- in the systemd VM

@pytest.fixture
def sd(rt):
    if not systemd_is_pid1():
        pytest.skip("needs systemd as PID 1 (make vm-test-systemd)")
    return rt


def direct_config(rt, args: list[str]) -> dict:
    """The container's root used directly: the guest's / is an overlay on
    9p, on which the overlay root mode fails (EINVAL) as root."""
    c = rt.config(args)
    c.setdefault("annotations", {})["org.pyrun.rootfs"] = "direct"
    return c


def systemctl(rt, *args) -> subprocess.CompletedProcess:
    """systemctl on the bus pyrun used: --user as the test user."""
    if rt.rootless:
        env = {"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": f"/run/user/{rt.uid}",
               "DBUS_SESSION_BUS_ADDRESS": f"unix:path=/run/user/{rt.uid}/bus"}
        return subprocess.run(["systemctl", "--user", *args], user=rt.uid, group=rt.gid, extra_groups=[],
                              env=env, text=True, capture_output=True, timeout=60)
    return subprocess.run(["systemctl", *args], text=True, capture_output=True, timeout=60)


def unit_state(rt, unit: str) -> str:
    return systemctl(rt, "show", "-P", "ActiveState", unit).stdout.strip()


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


@pytest.mark.systemd
def test_scope_in_its_slice_update_pause_delete(sd):
    config = direct_config(sd, ["sleep", "600"])
    config["linux"]["cgroupsPath"] = "pyrun-test.slice:pyt:c1"
    config["linux"]["resources"] = {"memory": {"limit": 32 << 20}, "pids": {"limit": 20}}
    sd.ok("--systemd-cgroup", "run", "-d", "-b", sd.bundle(config=config), "c1")
    cg = ""
    try:
        status = systemctl(sd, "status", "--no-pager", "pyt-c1.scope")
        assert status.returncode == 0, status.stdout + status.stderr
        assert "pyrun-test.slice" in status.stdout, status.stdout
        pid = sd.state("c1")["pid"]
        cg = "/sys/fs/cgroup" + read(f"/proc/{pid}/cgroup").split("::", 1)[1]
        assert cg.endswith("/pyrun-test.slice/pyt-c1.scope"), cg
        assert read(f"{cg}/memory.max") == str(32 << 20) and read(f"{cg}/pids.max") == "20"
        assert systemctl(sd, "show", "-P", "TasksMax", "pyt-c1.scope").stdout.strip() == "20"
        # update: unit properties (systemctl shows them) and files
        sd.ok("update", "--pids-limit", "50", "--memory", "64M", "c1")
        assert read(f"{cg}/pids.max") == "50" and read(f"{cg}/memory.max") == str(64 << 20)
        assert systemctl(sd, "show", "-P", "TasksMax", "pyt-c1.scope").stdout.strip() == "50"
        # exec: in the scope (the root of the container's cgroup namespace);
        # rootless through AttachProcessesToUnit (cgroup.procs is denied)
        assert sd.ok("exec", "c1", "cat", "/proc/self/cgroup").strip() == "0::/"
        # pause/resume and ps on the scope's cgroup
        sd.ok("pause", "c1")
        assert read(f"{cg}/cgroup.freeze") == "1"
        sd.ok("resume", "c1")
        assert pid in json.loads(sd.ok("ps", "-f", "json", "c1"))
        sd.ok("kill", "--all", "c1", "KILL")
        sd.wait_status("c1", "stopped")
    finally:
        sd("delete", "--force", "c1")
    assert unit_state(sd, "pyt-c1.scope") in ("inactive", ""), systemctl(sd, "status", "pyt-c1.scope").stdout
    assert cg and not os.path.exists(cg)


def limits_bite(rt):
    """A pids limit of 10 and a 32 MiB memory limit, each run in its own
    scope until it bites (the v2 and the v1 driver alike); yields each
    scope's unit once its container has ended."""
    resources = {"memory": {"limit": 32 << 20, "swap": 32 << 20}, "pids": {"limit": 10}}
    for cid, args in (("c3", ["sh", "-c", "for i in $(seq 20); do sleep 30 & done"]),
                      ("c4", ["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"])):
        config = direct_config(rt, args)
        config["linux"]["cgroupsPath"] = f":pyt:{cid}"
        config["linux"]["resources"] = resources
        p = rt("--systemd-cgroup", "run", "-b", rt.bundle(config=config), cid, timeout=120)
        if cid == "c3":  # the 10th process cannot be forked
            assert "can't fork" in p.stderr, p.stdout + p.stderr
        else:  # 100 MiB in a 32 MiB scope: the OOM killer
            assert p.returncode == 137, p.stdout + p.stderr
        yield f"pyt-{cid}.scope"


def killed_creates(rt, gone):
    """create SIGKILLed at 0.3, 1 and 2 s, then delete --force: ``gone()``
    must see the scope inactive within 10 s, and no record is left."""
    config = direct_config(rt, ["sleep", "600"])
    config["linux"]["cgroupsPath"] = ":pyt:c2"
    bundle = rt.bundle(config=config)
    for delay in (0.3, 1.0, 2.0):
        p = rt.popen("--systemd-cgroup", "create", "-b", bundle, "c2",
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        d = rt("delete", "--force", "c2")
        deadline = time.monotonic() + 10
        while not gone() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert gone(), (delay, d.stderr)
        # (killed before its record was written, create leaves a bare state
        # dir that the next create of the id reclaims: not this test's matter)
        assert not os.path.exists(os.path.join(rt.root, "c2", "state.json")), d.stderr


@pytest.mark.systemd
def test_memory_and_pids_limits_of_the_scope_bite(sd):
    for unit in limits_bite(sd):
        assert unit_state(sd, unit) in ("inactive", ""), systemctl(sd, "status", unit).stdout


@pytest.mark.systemd
def test_a_slice_as_the_container_unit_fails_with_runc_too(sd):
    """slice:prefix:NAME.slice: runc asks systemd for the slice unit NAME
    with the container's pid, which systemd refuses; pyrun refuses the same
    path before asking. Neither leaves the slice active."""
    import shutil
    import tempfile

    config = direct_config(sd, ["true"])
    config["linux"]["cgroupsPath"] = "pyrun-test.slice:pyt:pyrun-test-c5.slice"
    bundle = sd.bundle(config=config)
    p = sd("--systemd-cgroup", "run", "-b", bundle, "c5")
    assert p.returncode == 1 and "systemd puts no process into a slice unit" in p.stderr, p.stderr
    assert unit_state(sd, "pyrun-test-c5.slice") in ("inactive", "")
    runc = shutil.which("runc", path="/usr/sbin:/usr/bin:/sbin:/bin")
    if runc is None or sd.rootless:
        return  # (runc, rootful: the reference)
    root = tempfile.mkdtemp(prefix="runc-", dir=sd.dir)
    r = subprocess.run([runc, "--root", root, "--systemd-cgroup", "run", "-b", bundle, "c5"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    subprocess.run([runc, "--root", root, "delete", "--force", "c5"], capture_output=True)
    assert r.returncode != 0 and "Cannot set property PIDs" in r.stderr, (r.returncode, r.stderr)
    assert unit_state(sd, "pyrun-test-c5.slice") in ("inactive", "")


@pytest.mark.systemd
def test_sigkill_of_create_then_delete_force_leaves_no_unit(sd):
    killed_creates(sd, lambda: unit_state(sd, "pyt-c2.scope") in ("inactive", ""))


def test_only_the_flag_imports_the_dbus_client(rt):
    """The create path without --systemd-cgroup loads neither the driver nor
    jeepney (-X importtime lists every import of every process of the run);
    with it, they are loaded (so this test can fail)."""
    def imports(*flags) -> str:
        p = subprocess.run([*rt.prefix[:1], "-X", "importtime", *rt.prefix[1:], "--root", rt.root, *flags, "run",
                            "-b", rt.bundle(["true"]), "c1"], env=rt.env, text=True, capture_output=True,
                           cwd=rt.dir, timeout=60, **rt._user_kw())
        rt("delete", "--force", "c1")
        return p.stderr

    without = imports()
    assert "pyrun.cgroups.v" in without or "pyrun.cgroups" in without, without[-2000:]
    assert "jeepney" not in without and "pyrun.cgroups.systemd" not in without
    v1_rootless = rt.rootless and not os.path.exists("/sys/fs/cgroup/cgroup.controllers")  # refused before any bus
    if not systemd_is_pid1() and not v1_rootless:
        with_flag = imports("--systemd-cgroup")
        assert "jeepney" in with_flag and "pyrun.cgroups.systemd" in with_flag, with_flag[-2000:]


def test_features_claims_the_systemd_driver(rt):
    cgroup = json.loads(rt.ok("features"))["linux"]["cgroup"]
    assert cgroup["systemd"] is True and cgroup["systemdUser"] is True


def start_user_manager(uid: int) -> None:
    """As root: the user's own systemd and its bus (user@UID.service), which
    rootless podman and pyrun ask for the container's scope."""
    subprocess.run(["systemctl", "start", f"user@{uid}.service"], check=True, capture_output=True, timeout=120)
    deadline = time.monotonic() + 30
    while not os.path.exists(f"/run/user/{uid}/bus"):
        assert time.monotonic() < deadline, f"no /run/user/{uid}/bus"
        time.sleep(0.2)


PODMAN_RUNTIMES = ["pyrun", "runc"]


def _apparmor_on() -> bool:
    """The kernel has AppArmor on and its userspace is installed (podman
    sends a profile only then)."""
    import shutil

    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            on = f.read().strip() == "Y"
    except OSError:
        return False
    return on and shutil.which("apparmor_parser", path="/usr/sbin:/sbin:/usr/bin:/bin") is not None


@pytest.mark.systemd
@pytest.mark.parametrize("mode", ["rootful", "rootless"])
@pytest.mark.parametrize("runtime", PODMAN_RUNTIMES)
def test_podman_with_the_systemd_cgroup_manager(runtime, mode):
    """podman's default on a systemd host: conmon calls the runtime with
    --systemd-cgroup and machine.slice:libpod:<id> (rootful) or
    user.slice:libpod:<id> (rootless, the user's own systemd). runc runs
    the same scenario as the reference."""
    if not systemd_is_pid1() or os.geteuid() != 0:
        pytest.skip("needs systemd as PID 1 and root (make vm-test-systemd)")
    import shutil
    import tempfile

    from podman_env import IMAGE, PodmanEnv, ensure_test_user, runtime_for

    runc = shutil.which("runc", path="/usr/sbin:/usr/bin:/sbin:/bin")
    if runtime == "runc" and runc is None:
        pytest.skip("runc is not installed")
    uid = gid = 0
    if mode == "rootless":
        pw = ensure_test_user()
        uid, gid = pw.pw_uid, pw.pw_gid
        start_user_manager(uid)
    d = tempfile.mkdtemp(prefix="pypm-", dir="/tmp")  # podman: runroot paths <= 50 characters
    os.chmod(d, 0o755)
    tar = os.path.join(d, "busybox.tar")
    rootfs = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bundles/busybox/rootfs")
    subprocess.run(["tar", "-C", rootfs, "-cf", tar, "."], check=True)
    os.chmod(tar, 0o644)
    path = runc if runtime == "runc" else runtime_for(uid, gid, d)
    pm = PodmanEnv(runtime, path, [], mode, d, tar, driver="vfs", cgroup_manager="systemd")
    slice_ = "/machine.slice" if mode == "rootful" else f"/user.slice/user-{uid}.slice/user@{uid}.service/user.slice"
    try:
        p = pm("run", "--rm", "--network", "none", "--memory", "64m", "--pids-limit", "50", IMAGE,
               "sh", "-c", "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /proc/self/cgroup",
               timeout=180)
        assert p.returncode == 0, p.stdout + p.stderr
        assert p.stdout.split() == [str(64 << 20), "50", "0::/"], p.stdout + p.stderr
        if mode == "rootful" and _apparmor_on():
            # issue 29: podman sends its containers-default profile where the
            # kernel has AppArmor on; the container runs confined by it, as
            # under runc (rootless podman sends none)
            p = pm("run", "--rm", "--network", "none", IMAGE, "cat", "/proc/self/attr/current", timeout=180)
            assert p.returncode == 0, p.stdout + p.stderr
            label = p.stdout.strip()
            assert label.startswith("containers-default") and label.endswith("(enforce)"), label
        cid = pm.ok("run", "-d", "--network", "none", "--memory", "64m", "--pids-limit", "50", IMAGE,
                    "sleep", "600", timeout=180).strip()
        cg = systemctl(pm, "show", "-P", "ControlGroup", f"libpod-{cid}.scope").stdout.strip()
        assert cg == f"{slice_}/libpod-{cid}.scope", cg
        assert read(f"/sys/fs/cgroup{cg}/memory.max") == str(64 << 20)
        assert pm("exec", cid, "true", timeout=120).returncode == 0
        # podman stats: the container's memory usage / limit and its pids
        out = pm.ok("stats", "--no-stream", "--format", "{{.MemUsage}}|{{.PIDs}}", cid, timeout=120)
        usage, pids = out.strip().split("|")
        assert usage.replace(" ", "").endswith("/67.11MB"), out
        assert int(pids) >= 1, out
        assert pm("stop", "-t", "1", cid, timeout=120).returncode == 0
        assert pm("rm", cid, timeout=120).returncode == 0
        assert unit_state(pm, f"libpod-{cid}.scope") in ("inactive", "")
        assert not os.path.exists(f"/sys/fs/cgroup{cg}")
    finally:
        problems = pm.teardown()
        shutil.rmtree(d, ignore_errors=True)
    assert not problems, problems


@pytest.mark.systemd
def test_containerd_runs_pyrun_with_runc_systemd_cgroup():
    """ctr run --runc-systemd-cgroup: the shim calls pyrun --systemd-cgroup
    with the spec's slice:prefix:name (ctr's --cgroup)."""
    if not systemd_is_pid1() or os.geteuid() != 0:
        pytest.skip("needs systemd as PID 1 and root (make vm-test-systemd)")
    import tempfile

    from test_containerd import PATH, PYRUN, Containerd, Runtime, shut_down

    d = tempfile.mkdtemp(prefix="pyctrd-", dir="/tmp")
    c = Containerd(d)
    rt = Runtime(c, "pyrun", PYRUN)
    try:
        c.ok("run", "-d", "--runc-binary", rt.wrapper, "--runc-root", rt.runc_root, "--runc-systemd-cgroup",
             "--cgroup", "system.slice:ctr:sd1", "--memory-limit", str(64 << 20), "--env", f"PATH={PATH}",
             "--rootfs", rt.rootfs(), "sd1", "sleep", "600", timeout=120)
        cg = subprocess.run(["systemctl", "show", "-P", "ControlGroup", "ctr-sd1.scope"], text=True,
                            capture_output=True).stdout.strip()
        assert cg == "/system.slice/ctr-sd1.scope", (cg, rt.calls())
        assert read(f"/sys/fs/cgroup{cg}/memory.max") == str(64 << 20)
        assert any("--systemd-cgroup" in argv for _rc, argv in rt.calls()), rt.calls()
        c.ok("task", "kill", "-s", "KILL", "sd1")
        deadline = time.monotonic() + 30
        while c.ctr("task", "delete", "sd1").returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        c.ok("container", "delete", "sd1")
        assert subprocess.run(["systemctl", "show", "-P", "ActiveState", "ctr-sd1.scope"], text=True,
                              capture_output=True).stdout.strip() in ("inactive", "")
        assert all(rc == 0 for rc, _argv in rt.calls()), rt.calls()
    finally:
        shut_down(c, d)
