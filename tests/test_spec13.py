"""runtime-spec 1.3's fields, each with a real container, rootful and
rootless: what a config asks for is done, or refused with one line naming
its JSON path and nothing left behind (issue 17)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest


_N = [0]


def new_id() -> str:
    """Ids unique on the host: rootful containers share the v1 freezer
    hierarchy (/sys/fs/cgroup/freezer/pyrun/ID) with other test runs."""
    _N[0] += 1
    return f"s13-{os.getpid()}-{_N[0]}"


def run(rt, config, cid=None, extra=()):
    bundle = rt.bundle(config=config)
    return rt("run", *extra, "-b", bundle, cid or new_id())


RUNC = shutil.which("runc")


def runc_run(rt, config) -> subprocess.CompletedProcess:
    """The same config with runc (the reference; rootful only here), in
    its own state root; the container is removed after."""
    bundle = rt.bundle(config=config)
    root = os.path.join(rt.dir, "runc-root")
    cid = new_id()
    try:
        return subprocess.run([RUNC, "--root", root, "run", "-b", bundle, cid], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=60)
    finally:
        subprocess.run([RUNC, "--root", root, "delete", "-f", cid], capture_output=True)


def with_time_ns(config):
    config["linux"]["namespaces"].append({"type": "time"})
    return config


# ------------------------------------------------------------ linux.timeOffsets

def test_time_offsets_move_the_clocks_inside_only(rt):
    """CLOCK_MONOTONIC and CLOCK_BOOTTIME inside are the host's plus the
    offsets; /proc/uptime (boottime) too; the host's clocks do not move."""
    config = with_time_ns(rt.config(["sh", "-c", "hello clock; cat /proc/uptime"]))
    config["linux"]["timeOffsets"] = {"monotonic": {"secs": 1_000_000, "nanosecs": 0},
                                      "boottime": {"secs": 3_000_000}}
    before = time.clock_gettime(time.CLOCK_MONOTONIC), time.clock_gettime(time.CLOCK_BOOTTIME)
    p = run(rt, config)
    after = time.clock_gettime(time.CLOCK_MONOTONIC), time.clock_gettime(time.CLOCK_BOOTTIME)
    assert p.returncode == 0, p.stderr
    clock, uptime = p.stdout.splitlines()[:2]
    mono, boot = map(int, clock.split())
    assert int(before[0]) + 1_000_000 <= mono <= int(after[0]) + 1_000_000
    assert int(before[1]) + 3_000_000 <= boot <= int(after[1]) + 3_000_000
    assert int(before[1]) + 3_000_000 <= float(uptime.split()[0]) <= after[1] + 3_000_001
    # the host's own clocks did not move
    assert time.clock_gettime(time.CLOCK_MONOTONIC) < before[0] + 60


def test_time_offsets_apply_to_exec_too(rt):
    config = with_time_ns(rt.config(["hello", "sleep", "30"]))
    config["linux"]["timeOffsets"] = {"monotonic": {"secs": 500_000}}
    cid = new_id()
    rt.ok("run", "-d", "-b", rt.bundle(config=config), cid)
    try:
        out = rt.ok("exec", cid, "hello", "clock")
        assert int(out.split()[0]) >= 500_000 + int(time.clock_gettime(time.CLOCK_MONOTONIC)) - 5
    finally:
        rt("delete", "-f", cid)


def test_time_offsets_without_a_new_time_namespace_are_refused(rt, residue):
    config = rt.config(["true"])
    config["linux"]["timeOffsets"] = {"monotonic": {"secs": 5}}
    p = run(rt, config)
    assert p.returncode == 1
    assert "linux.timeOffsets" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    residue.check()


# -------------------------------------- process.scheduler, ioPriority, ...

def test_scheduler_batch_and_nice(rt):
    """sched_getattr(2) inside: policy SCHED_BATCH (3), nice 7, flag RESET_ON_FORK
    is not inherited by the entrypoint (the init forks it), so none asked."""
    config = rt.config(["hello", "sched"])
    config["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": 7}
    p = run(rt, config)
    assert p.returncode == 0, p.stderr
    policy, flags, nice, prio = p.stdout.split()[:4]
    assert (policy, nice, prio) == ("3", "7", "0")


def test_scheduler_fifo_rootful_and_refused_rootless(rt):
    config = rt.config(["hello", "sched"])
    config["process"]["scheduler"] = {"policy": "SCHED_FIFO", "priority": 5}
    p = run(rt, config)
    if rt.rootless:
        # CAP_SYS_NICE counts only in the initial user namespace
        assert p.returncode == 1
        assert "sched_setattr: Operation not permitted (EPERM): process.scheduler" in p.stderr
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    else:
        assert p.returncode == 0, p.stderr
        assert p.stdout.split()[0] == "1" and p.stdout.split()[3] == "5"


def test_scheduler_is_checked_with_its_path(rt):
    config = rt.config(["true"])
    config["process"]["scheduler"] = {"policy": "SCHED_FIFO"}
    p = run(rt, config)
    assert p.returncode == 1 and "process.scheduler.priority" in p.stderr, p.stderr
    config["process"]["scheduler"] = {"policy": "SCHED_NOPE"}
    p = run(rt, config)
    assert p.returncode == 1 and "process.scheduler.policy" in p.stderr, p.stderr


def test_io_priority(rt):
    config = rt.config(["sh", "-c", "hello ioprio; ionice -p $$ 2>/dev/null || true"])
    config["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 6}
    p = run(rt, config)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0] == "2 6"


def test_io_priority_idle(rt):
    config = rt.config(["hello", "ioprio"])
    config["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_IDLE"}
    p = run(rt, config)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[0] == "3"


def test_personality_linux32(rt):
    config = rt.config(["sh", "-c", "uname -m; hello personality"])
    config["linux"]["personality"] = {"domain": "LINUX32"}
    p = run(rt, config)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["i686", "0x8"]


def test_personality_flags_are_refused(rt, residue):
    """config-linux.md: "Currently no flag values are supported"."""
    config = rt.config(["true"])
    config["linux"]["personality"] = {"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]}
    p = run(rt, config)
    assert p.returncode == 1 and "linux.personality.flags[0]" in p.stderr, p.stderr
    residue.check()


def test_memory_policy(rt):
    """/proc/self/numa_maps shows each mapping's policy (get_mempolicy(2)
    is not in the default seccomp profile)."""
    config = rt.config(["head", "-1", "/proc/self/numa_maps"])
    config["linux"]["memoryPolicy"] = {"mode": "MPOL_BIND", "nodes": "0"}
    p = run(rt, config)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[1] == "bind:0"
    config["linux"]["memoryPolicy"] = {"mode": "MPOL_INTERLEAVE", "nodes": "0",
                                       "flags": ["MPOL_F_STATIC_NODES"]}
    p = run(rt, config)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[1] == "interleave=static:0"


def test_memory_policy_on_a_missing_node_is_an_error(rt, residue):
    config = rt.config(["true"])
    config["linux"]["memoryPolicy"] = {"mode": "MPOL_BIND", "nodes": "63"}
    p = run(rt, config)
    assert p.returncode == 1
    assert "set_mempolicy: Invalid argument (EINVAL): linux.memoryPolicy" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    residue.check()


def test_exec_cpu_affinity(rt):
    """execCPUAffinity.final is the exec'd process's mask; without final,
    the container's default (every CPU of its cpuset), not initial's."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs")
    cpus = sorted(os.sched_getaffinity(0))
    cid = new_id()
    rt.ok("run", "-d", "-b", rt.bundle(["hello", "sleep", "30"]), cid)
    try:
        for aff, want in (({"initial": str(cpus[0]), "final": str(cpus[1])}, str(cpus[1])),
                          ({"initial": str(cpus[1])}, f"{cpus[0]}-{cpus[1]}"),
                          ({"final": f"{cpus[0]}-{cpus[1]}"}, f"{cpus[0]}-{cpus[1]}")):
            proc = rt.config(["grep", "Cpus_allowed_list", "/proc/self/status"])["process"]
            proc["execCPUAffinity"] = aff
            path = os.path.join(rt.dir, f"process-{len(aff)}-{want}.json")
            with open(path, "w") as f:
                json.dump(proc, f)
            out = rt.ok("exec", "--process", path, cid)
            assert out.split() == ["Cpus_allowed_list:", want], aff
    finally:
        rt("delete", "-f", cid)


# ------------------------------------------------------------ linux.intelRdt

def test_intel_rdt_is_refused_with_its_path_and_no_residue(rt, residue):
    if os.path.isdir("/sys/fs/resctrl/info"):
        pytest.skip("this host has resctrl")
    config = rt.config(["true"])
    config["linux"]["intelRdt"] = {"closID": "guaranteed_group", "l3CacheSchema": "L3:0=7f0"}
    p = run(rt, config)
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "config.json: linux.intelRdt: " in lines[0], p.stderr
    assert "/sys/fs/resctrl is not mounted" in lines[0]
    residue.check()
    if RUNC and not rt.rootless:  # runc refuses it too on this host
        assert runc_run(rt, config).returncode != 0


# ---------------------------------------------------------- linux.netDevices

@pytest.fixture
def veth():
    """A veth pair on the host, made for the test, removed after it."""
    a, b = f"s13a{os.getpid() % 10000}", f"s13b{os.getpid() % 10000}"
    subprocess.run(["ip", "link", "add", a, "type", "veth", "peer", "name", b], check=True)
    subprocess.run(["ip", "addr", "add", "10.231.7.1/24", "dev", a], check=True)
    subprocess.run(["ip", "link", "set", a, "up"], check=True)
    yield a
    subprocess.run(["ip", "link", "del", a], capture_output=True)


def host_link(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def test_net_devices_move_in_renamed_and_back_on_delete(rt, veth):
    if rt.rootless:
        pytest.skip("root only: see test_net_devices_rootless_is_refused")
    config = rt.config(["hello", "sleep", "30"])
    config["linux"]["netDevices"] = {veth: {"name": "ctr0"}}
    cid = new_id()
    rt.ok("run", "-d", "-b", rt.bundle(config=config), cid)
    try:
        assert not host_link(veth)
        out = rt.ok("exec", cid, "ip", "-o", "addr", "show", "dev", "ctr0")
        assert "inet 10.231.7.1/24" in out, out
        assert "UP" in rt.ok("exec", cid, "ip", "link", "show", "ctr0")
        # killed before delete: the pinned namespace still gives it back
        rt.ok("kill", cid, "KILL")
        rt.wait_status(cid, "stopped")
    finally:
        rt("delete", "-f", cid)
    assert host_link(veth)
    out = subprocess.run(["ip", "-o", "addr", "show", "dev", veth], capture_output=True, text=True).stdout
    assert "10.231.7.1/24" in out


def test_net_devices_missing_interface_is_an_error(rt, residue):
    if rt.rootless:
        pytest.skip("root only")
    config = rt.config(["true"])
    config["linux"]["netDevices"] = {"s13-nosuch": {}}
    p = run(rt, config)
    assert p.returncode == 1
    assert 'linux.netDevices["s13-nosuch"]: no such interface' in p.stderr, p.stderr
    residue.check()


def test_net_devices_rootless_is_refused(rt, residue):
    if not rt.rootless:
        pytest.skip("rootless only")
    config = rt.config(["true"])
    config["linux"]["namespaces"].append({"type": "network"})
    config["linux"]["netDevices"] = {"lo": {"name": "x0"}}
    p = run(rt, config)
    assert p.returncode == 1
    assert "config.json: linux.netDevices: moving host interfaces needs root" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    residue.check()


# ------------------------------------------------------ runc 1.5's command line

# the hidden global --rootless (runc's) is not the fast path's: click parses it
CLICK = ("--rootless", "auto")


@pytest.mark.parametrize("path", ["fast", "click"])
def test_run_keep_leaves_a_stopped_container(rt, path):
    cid = new_id()
    pre = CLICK if path == "click" else ()
    p = rt(*pre, "run", "--keep", "-b", rt.bundle(["sh", "-c", "exit 3"]), cid)
    assert p.returncode == 3, p.stderr
    try:
        s = rt.state(cid)
        assert s["status"] == "stopped" and s["pid"] == 0
    finally:
        rt.ok("delete", cid)
    assert rt("state", cid).returncode == 1
    # without --keep, run deletes it (as before)
    p = rt("run", "-b", rt.bundle(["true"]), cid)
    assert p.returncode == 0 and rt("state", cid).returncode == 1


class PidfdReceiver:
    """An AF_UNIX listener that takes one fd, as a shim would."""

    def __init__(self, path: str):
        import socket
        import threading

        self.path, self.fds = path, []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        os.chmod(path, 0o777)  # the rootless half runs pyrun as another user
        self.sock.listen(1)
        self.sock.settimeout(20)

        def take():
            try:
                conn, _ = self.sock.accept()
                with conn:
                    msg, fds, _flags, _addr = socket.recv_fds(conn, 64, 4)
                    self.name, self.fds = msg, fds
            except OSError:
                pass

        self.thread = threading.Thread(target=take, daemon=True)
        self.thread.start()

    def pid(self) -> int:
        """The pid the received pidfd refers to (/proc/self/fdinfo: "Pid:")."""
        self.thread.join(20)
        assert len(self.fds) == 1, "no fd received"
        with open(f"/proc/self/fdinfo/{self.fds[0]}") as f:
            return int(next(line.split()[1] for line in f if line.startswith("Pid:")))

    def close(self):
        self.sock.close()
        for fd in self.fds:
            os.close(fd)


@pytest.mark.parametrize("path", ["fast", "click"])
def test_pidfd_socket_create_and_exec(rt, path):
    pre = CLICK if path == "click" else ()
    cid = new_id()
    recv = PidfdReceiver(os.path.join(rt.dir, f"pidfd-{path}.sock"))
    try:
        rt.ok(*pre, "create", "--pidfd-socket", recv.path, "-b", rt.bundle(["hello", "sleep", "30"]), cid)
        assert recv.pid() == rt.state(cid)["pid"]
        assert recv.name == b"standard"  # runc's init type
    finally:
        recv.close()
    rt.ok("start", cid)  # rootless, PID 1 is not dumpable until it execs: exec needs it started
    recv = PidfdReceiver(os.path.join(rt.dir, f"pidfd-exec-{path}.sock"))
    try:
        pidfile = os.path.join(rt.dir, f"exec-{path}.pid")
        rt.ok(*pre, "exec", "-d", "--pid-file", pidfile, "--pidfd-socket", recv.path, cid, "hello", "sleep", "30")
        with open(pidfile) as f:
            assert recv.pid() == int(f.read())
        assert recv.name == b"setns"
    finally:
        recv.close()
        rt("delete", "-f", cid)


def test_pidfd_socket_that_nobody_listens_on_fails_create_cleanly(rt, residue):
    cid = new_id()
    p = rt("create", "--pidfd-socket", os.path.join(rt.dir, "nobody.sock"), "-b", rt.bundle(["true"]), cid)
    assert p.returncode == 1
    assert "--pidfd-socket" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    residue.check()


def test_delete_of_a_created_container_needs_no_force(rt):
    cid = new_id()
    rt.ok("create", "-b", rt.bundle(["hello", "sleep", "30"]), cid)
    pid = rt.state(cid)["pid"]
    rt.ok("delete", cid)
    assert rt("state", cid).returncode == 1
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.parametrize("path", ["fast", "click"])
def test_exec_cgroup_needs_a_cgroup_and_the_sub_cgroup(rt, path):
    """--cgroup names an existing sub-cgroup: rootless on this host there
    is no cgroup at all, rootful there is no "sub": refused with the reason,
    status 255 (runc's for a failed exec)."""
    pre = CLICK if path == "click" else ()
    cid = new_id()
    rt.ok("run", "-d", "-b", rt.bundle(["hello", "sleep", "30"]), cid)
    try:
        p = rt(*pre, "exec", "--cgroup", "sub", cid, "true")
        assert p.returncode == 255
        line = p.stderr.strip()
        assert "exec failed: --cgroup sub: " in line and len(line.splitlines()) == 1, p.stderr
        assert "no cgroup" in line or "no such file or directory" in line
    finally:
        rt("delete", "-f", cid)


# -------------------------------------- idmapped mounts, recursive options

IDMAP_BASE = 200000


def with_userns(rt, config):
    """A user namespace: rootful 0 -> IDMAP_BASE (65536 ids); rootless the
    test user's ranges (rt.with_id_ranges)."""
    if rt.rootless:
        return rt.with_id_ranges(config)
    config["linux"]["namespaces"].append({"type": "user"})
    for key in ("uidMappings", "gidMappings"):
        config["linux"][key] = [{"containerID": 0, "hostID": IDMAP_BASE, "size": 65536}]
    return config


@pytest.fixture
def host_dir(rt):
    """A host directory made by the test: f owned 0:0, g owned 1000:1000."""
    d = os.path.join(rt.dir, f"idmap-src-{new_id()}")
    os.mkdir(d)
    for name, owner in (("f", 0), ("g", 1000)):
        with open(os.path.join(d, name), "w") as f:
            f.write(name)
        os.chown(os.path.join(d, name), owner, owner)
    os.chmod(d, 0o777)
    return d


def owners(d: str) -> dict[str, tuple[int, int]]:
    return {n: (os.stat(os.path.join(d, n)).st_uid, os.stat(os.path.join(d, n)).st_gid)
            for n in sorted(os.listdir(d))}


@pytest.mark.parametrize("form", ["mappings", "idmap-option"])
def test_idmapped_bind_mount_rootful(rt, host_dir, form):
    """Host uid 0 shows as 0 inside a container whose root is host 200000;
    what the container writes lands as host 0; the host's files keep their
    owners."""
    if rt.rootless:
        pytest.skip("see test_idmapped_bind_mount_of_a_host_fs_is_refused_rootless")
    config = with_userns(rt, rt.config(["sh", "-c", "stat -c '%n %u:%g' /data/f /data/g; touch /data/new"]))
    mount = {"destination": "/data", "type": "bind", "source": host_dir, "options": ["bind"]}
    if form == "mappings":
        mount["uidMappings"] = mount["gidMappings"] = [{"containerID": 0, "hostID": IDMAP_BASE, "size": 65536}]
    else:
        mount["options"].append("idmap")
    config["mounts"].append(mount)
    before = owners(host_dir)
    p = run(rt, config)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split("\n")[:2] == ["/data/f 0:0", "/data/g 1000:1000"]
    after = owners(host_dir)
    assert after.pop("new") == (0, 0)
    assert after == before


def test_without_idmap_the_same_bind_shows_nobody(rt, host_dir):
    """The control: the test above fails without the idmap."""
    if rt.rootless:
        pytest.skip("rootful")
    config = with_userns(rt, rt.config(["stat", "-c", "%u:%g", "/data/f"]))
    config["mounts"].append({"destination": "/data", "type": "bind", "source": host_dir, "options": ["bind"]})
    p = run(rt, config)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "65534:65534"


def test_idmapped_bind_mount_of_a_host_fs_is_refused_rootless(rt, host_dir, residue):
    if not rt.rootless:
        pytest.skip("rootless")
    config = with_userns(rt, rt.config(["true"]))
    config["mounts"].append({"destination": "/data", "type": "bind", "source": host_dir, "options": ["bind"],
                             "uidMappings": [{"containerID": 0, "hostID": rt.uid, "size": 1}],
                             "gidMappings": [{"containerID": 0, "hostID": rt.gid, "size": 1}]})
    n = len(config["mounts"]) - 1
    p = run(rt, config)
    assert p.returncode == 1
    line = p.stderr.strip()
    assert len(line.splitlines()) == 1, p.stderr
    assert f"config.json: mounts[{n}]: an idmapped bind mount needs root" in line and "EPERM" in line, line
    residue.check()


@pytest.mark.parametrize("form", ["mappings", "idmap-option"])
def test_idmapped_tmpfs(rt, form):
    """tmpfs can be idmapped (Linux 6.3+), rootless too, with the
    container's own mappings: its root's files show as root."""
    config = with_userns(rt, rt.config(["sh", "-c", "touch /t/x && stat -c %u:%g /t/x && grep ' /t ' "
                                                    "/proc/self/mountinfo"]))
    mount = {"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["mode=1777"]}
    if form == "mappings":
        mount["uidMappings"] = config["linux"]["uidMappings"]
        mount["gidMappings"] = config["linux"]["gidMappings"]
    else:
        mount["options"].append("idmap")
    config["mounts"].append(mount)
    p = run(rt, config)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "0:0"
    assert "idmapped" in lines[1].split()[5], lines[1]  # the mount's flags in mountinfo


def test_mount_mappings_are_checked(rt):
    config = rt.config(["true"])
    config["mounts"].append({"destination": "/data", "type": "bind", "source": "/tmp", "options": ["bind"],
                             "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]})
    n = len(config["mounts"]) - 1
    p = run(rt, config)
    assert p.returncode == 1 and f"mounts[{n}].gidMappings" in p.stderr, p.stderr
    config["mounts"][-1] = {"destination": "/p", "type": "proc", "source": "proc",
                            "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}],
                            "gidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}
    p = run(rt, config)
    assert p.returncode == 1 and f"mounts[{n}]: idmapped mounts are supported for bind" in p.stderr, p.stderr


@pytest.mark.parametrize("opt, sub", [("ro", "rw"), ("rro", "ro")])
def test_recursive_read_only_bind(rt, opt, sub):
    """rro makes every submount of an rbind read-only (mount_setattr(2)
    AT_RECURSIVE); ro (MS_REMOUNT) only the top one. The host's /sys has
    submounts (/sys/fs/cgroup)."""
    config = rt.config(["grep", "-E", " /r(/fs/cgroup)? ", "/proc/self/mountinfo"])
    config["mounts"].append({"destination": "/r", "type": "bind", "source": "/sys", "options": ["rbind", opt]})
    p = run(rt, config)
    assert p.returncode == 0, p.stderr
    flags = {line.split()[4]: line.split()[5].split(",")[0] for line in p.stdout.splitlines()}
    assert flags == {"/r": "ro", "/r/fs/cgroup": sub}, p.stdout
    if RUNC and not rt.rootless:  # runc 1.1 knows the r* options: the same answer
        r = runc_run(rt, config)
        assert r.returncode == 0, r.stderr
        assert {line.split()[4]: line.split()[5].split(",")[0] for line in r.stdout.splitlines()} == flags


def test_recursive_options_parse():
    from pyrun.filesystem import mount_attrs as ma

    assert ma.recursive_attrs(["rro", "rnosuid"]) == (ma.MOUNT_ATTR_RDONLY | ma.MOUNT_ATTR_NOSUID, 0)
    assert ma.recursive_attrs(["rro", "rrw"]) == (0, ma.MOUNT_ATTR_RDONLY)
    assert ma.recursive_attrs(["rnoatime", "rstrictatime"]) == (ma.MOUNT_ATTR_STRICTATIME, ma.MOUNT_ATTR__ATIME)
    assert ma.recursive_attrs(["ro", "nosuid"]) is None


# ------------------------------------------------------------ pyrun features

def test_features_claim_only_what_the_code_accepts(rt):
    """runtime-spec 1.3's features, each entry checked against the table or
    parser that implements it."""
    from pyrun.filesystem import mounts
    from pyrun.security import seccomp
    from pyrun.config import process_attrs as spec13  # runtime-spec 1.3's memoryPolicy, parsed there
    from pyrun.kernel.namespaces import FLAGS
    from pyrun.config.spec import CAPABILITIES, NAMESPACE_TYPES

    f = json.loads(rt.ok("features"))
    assert f["ociVersionMax"] == "1.3.0"
    linux = f["linux"]
    for opt in f["mountOptions"]:  # each is understood, not passed to the kernel as fs data
        assert mounts.parse_options([opt])[2] == "", opt
    for opt in ("rro", "rnosuid", "rnoatime", "rnosymfollow", "idmap", "ridmap", "rbind", "rslave"):
        assert opt in f["mountOptions"]
    assert set(linux["namespaces"]) == set(FLAGS) == set(NAMESPACE_TYPES)
    assert set(linux["capabilities"]) <= set(CAPABILITIES)
    for mode in linux["memoryPolicy"]["modes"]:
        nodes = "" if mode in ("MPOL_DEFAULT", "MPOL_LOCAL") else "0"
        spec13.parse_memory_policy({"memoryPolicy": {"mode": mode, "nodes": nodes,
                                                     "flags": linux["memoryPolicy"]["flags"][:1]}})
    assert linux["intelRdt"] == {"enabled": False}  # refused: see test_intel_rdt_is_refused...
    from pyrun import cgroups

    files = [cgroups.__file__]
    if cgroups.__file__.endswith("__init__.py"):  # a package
        d = os.path.dirname(cgroups.__file__)
        files = [os.path.join(d, n) for n in os.listdir(d) if n.endswith(".py")]
    writes_rdma = any("rdma.max" in open(f).read() for f in files)
    assert linux["cgroup"]["rdma"] == writes_rdma  # claimed only if the cgroup code writes rdma.max
    assert linux["mountExtensions"]["idmap"]["enabled"] and linux["netDevices"]["enabled"]
    sc = linux["seccomp"]
    for action in sc["actions"]:
        rule = {"names": ["getcwd"], "action": action}
        if action == "SCMP_ACT_NOTIFY":
            continue  # needs a listenerPath; exercised by the seccomp tests
        seccomp.build({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]})
    for op in sc["operators"]:
        seccomp.build({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 8, "valueTwo": 8, "op": op}]}]})
    from pyrun.errors import SyscallError

    for arch in sc["archs"]:
        # "recognized" (features-linux.md): libseccomp takes each one, but
        # refuses one of the other endianness than the native arch in a
        # filter (EDOM): the error names it, it is not "unknown"
        try:
            seccomp.build({"defaultAction": "SCMP_ACT_ALLOW", "architectures": [arch]})
        except SyscallError as e:
            assert e.errno == 33 and arch in str(e), e  # EDOM
            assert arch.startswith(("SCMP_ARCH_MIPS", "SCMP_ARCH_PPC", "SCMP_ARCH_S390", "SCMP_ARCH_PARISC")), arch
    seccomp.build({"defaultAction": "SCMP_ACT_ALLOW", "flags": sc["supportedFlags"]})


def test_state_and_version_report_spec_1_3(rt):
    assert "spec: 1.3.0" in rt.ok("--version")
    cid = new_id()
    rt.ok("create", "-b", rt.bundle(["true"]), cid)
    try:
        s = rt.state(cid)
        assert s["ociVersion"] == "1.3.0"
        # the fields runc prints
        assert set(s) >= {"ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"}
    finally:
        rt("delete", "-f", cid)


def test_exec_process_attributes(rt):
    """exec --process applies the process's ioPriority, scheduler and
    oomScoreAdj too (runc's exec does)."""
    cid = new_id()
    rt.ok("run", "-d", "-b", rt.bundle(["hello", "sleep", "30"]), cid)
    try:
        proc = rt.config(["sh", "-c", "hello ioprio; hello sched; cat /proc/self/oom_score_adj"])["process"]
        proc["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 3}
        proc["scheduler"] = {"policy": "SCHED_IDLE"}
        proc["oomScoreAdj"] = 321
        path = os.path.join(rt.dir, "exec-attrs.json")
        with open(path, "w") as f:
            json.dump(proc, f)
        out = rt.ok("exec", "--process", path, cid).splitlines()
        assert out[0] == "2 3"
        assert out[1].split()[0] == "5"  # SCHED_IDLE
        assert out[2] == "321"
    finally:
        rt("delete", "-f", cid)


def test_vm_is_refused(rt, residue):
    config = rt.config(["true"])
    config["vm"] = {"hypervisor": {"path": "/usr/bin/qemu"}, "kernel": {"path": "/vmlinuz"}}
    p = run(rt, config)
    assert p.returncode == 1 and "config.json: vm: " in p.stderr, p.stderr
    residue.check()


@pytest.mark.parametrize("copyup", [False, True])
def test_tmpcopyup_keeps_the_images_files(rt, copyup):
    """runc's tmpcopyup (podman sets it on --tmpfs): the tmpfs over /etc
    starts with /etc's files, owners and modes; without it /etc is empty."""
    config = rt.config(["sh", "-c", "ls /etc; stat -c '%a %u' /etc/passwd 2>/dev/null; "
                                    "grep ' /etc ' /proc/self/mountinfo | cut -d' ' -f9"])
    opts = ["nosuid", "mode=755"] + (["tmpcopyup"] if copyup else [])
    config["mounts"].append({"destination": "/etc", "type": "tmpfs", "source": "tmpfs", "options": opts})
    p = run(rt, config)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.split()
    assert lines[-1] == "tmpfs"
    if copyup:
        assert lines[:4] == ["group", "passwd", "644", "0"], p.stdout
    else:
        assert "passwd" not in lines


def test_exec_cgroup_path_rules(tmp_path):
    """--cgroup's path logic on cgroup v2 (the move itself is the
    container's own cgroup code): inside the container's cgroup ("/" is
    it), existing, no v1 prefix; runc's words for the rest."""
    from pyrun.errors import UsageError
    from pyrun.cgroups.exec_cgroup import sub_cgroup

    cg = tmp_path / "ctr"
    (cg / "sub" / "deeper").mkdir(parents=True)
    for d in (cg, cg / "sub", cg / "sub" / "deeper"):
        (d / "cgroup.procs").write_text("")
    (cg / "cgroup.controllers").write_text("")
    assert sub_cgroup(str(cg), ["sub"]) == str(cg / "sub")
    assert sub_cgroup(str(cg), ["sub/deeper"]) == str(cg / "sub" / "deeper")
    assert sub_cgroup(str(cg), ["/sub/"]) == str(cg / "sub")
    assert sub_cgroup(str(cg), ["/"]) == sub_cgroup(str(cg), [""]) == str(cg)
    for bad, why in ((["../x"], r"\.\./x is not a sub cgroup path"), (["nope"], "no such file or directory"),
                     (["cpu:sub"], "controller prefix"), ([":sub"], "empty <controller> prefix"),
                     (["a", "b"], "missing <controller>: prefix"),
                     (["cpu:a", "cpu,memory:b"], "controller cpu specified multiple times")):
        with pytest.raises(UsageError, match=why):
            sub_cgroup(str(cg), bad)
    with pytest.raises(UsageError, match="no cgroup of its own"):
        sub_cgroup("", ["sub"])


@pytest.mark.parametrize("argv", [
    ["run", "--keep", "-b", "/b", "c1"],
    ["create", "--pidfd-socket", "/s", "c1"],
    ["run", "-d", "--pidfd-socket=/s", "c1"],
    ["exec", "--cgroup", "sub", "--pidfd-socket", "/s", "c1", "true"],
])
def test_fast_path_takes_the_new_flags(argv, monkeypatch):
    from pyrun.commands import fastpath

    seen = []
    monkeypatch.setattr(fastpath, "_dispatch", lambda *a: seen.append(a) or 0)
    monkeypatch.setattr("pyrun.log.log.configure", lambda *a: None)
    assert fastpath.main(argv) == 0 and seen


@pytest.mark.vm
def test_exec_cgroup_moves_the_process_into_the_sub_cgroup(rt):
    """On a cgroup v2 host (make vm-test): the exec'd process starts in the
    existing sub-cgroup."""
    if not os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        pytest.skip("needs a cgroup v2 hierarchy (make vm-test)")
    cid = new_id()
    rt.ok("run", "-d", "-b", rt.bundle(["hello", "sleep", "60"]), cid)
    sub = None
    try:
        pid = rt.state(cid)["pid"]
        with open(f"/proc/{pid}/cgroup") as f:
            rel = next(line[3:].strip() for line in f if line.startswith("0::"))
        sub = f"/sys/fs/cgroup{rel}/sub"
        os.mkdir(sub)
        if rt.rootless and os.geteuid() == 0:
            for name in ("", "cgroup.procs"):
                os.chown(os.path.join(sub, name), rt.uid, rt.gid)
        out = rt.ok("exec", "--cgroup", "sub", cid, "cat", "/proc/self/cgroup")
        assert out.strip().startswith("0::") and out.strip().endswith("/sub"), out
    finally:
        if sub and os.path.isdir(sub):
            os.rmdir(sub)  # empty again: cat has exited; the container's rmdir needs it gone
        rt("delete", "-f", cid)
