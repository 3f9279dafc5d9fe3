"""``pyrun checkpoint`` / ``restore`` of a container on pyrun's bridge
network (pyrun.net.bridge): restored at the address it had, its TCP
connections and published ports with it, and nothing of its network left
behind, by delete or by a restore that fails half way.

runc has no bridge network (an engine gives it a namespace to join, which
test_checkpoint_vm.py's runs cover): these are pyrun's alone. The dumps
need the VM's kernel (``make vm-test``, marker ``vm``); the failing
restore runs on the host too, where CRIU fails for its own reasons.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest
from test_checkpoint_vm import _why

LEASES = "/run/pyrun/network/leases.json"
# an httpd for new connections (port 80), and one connection at a time on
# port 5000 whose bytes go to /data/got
SERVE = ("mkdir -p /tmp/www && echo hello > /tmp/www/index.html && (httpd -f -p 80 -h /tmp/www &) && "
         "while :; do nc -l -p 5000 >>/data/got; done")


def _key(rt, cid: str) -> str:
    return os.path.join(rt.root, cid)  # the state dir: the bridge's key


def _veth(rt, cid: str) -> str:
    from pyrun.net.bridge import veth_name

    return veth_name(_key(rt, cid))


def _lease(rt, cid: str) -> dict | None:
    try:
        with open(LEASES) as f:
            return json.load(f).get(_key(rt, cid))
    except FileNotFoundError:
        return None


def _nft_rules(rt, cid: str) -> list[str]:
    from pyrun.net.bridge import _comment

    p = subprocess.run(["nft", "list", "table", "ip", "pyrun"], capture_output=True, text=True)
    return [line for line in p.stdout.splitlines() if _comment(_key(rt, cid)) in line]


def _left(rt, cid: str) -> tuple:
    """What of the container's network is still there (all empty: none)."""
    return (os.path.exists(f"/sys/class/net/{_veth(rt, cid)}"), _lease(rt, cid), _nft_rules(rt, cid))


def _host_rules() -> str:
    p = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True)
    return p.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def bridged(rootful):
    if shutil.which("nft") is None:
        pytest.skip("nft is not installed")
    yield rootful
    for cid in os.listdir(rootful.root):
        rootful("delete", "--force", cid)


def _own_root(config: dict, tmp_path) -> dict:
    """The config on a copy of its rootfs: create and restore make the
    bridge's /etc/hosts and /etc/resolv.conf mount points in the root, and
    the runner's template is shared by every test (test_spec13's tmpcopyup
    lists the image's /etc)."""
    root = tmp_path / "rootfs"
    shutil.copytree(config["root"]["path"], root, symlinks=True)
    config["root"]["path"] = str(root)
    return config


def test_a_failed_restore_leaves_no_network_behind(bridged, tmp_path):
    """CRIU fails (here: images it cannot read) after pyrun attached the
    fresh namespace to the bridge: one line naming restore.log, and no
    veth, lease, DNAT rule or state of the container remains."""
    images = tmp_path / "img"
    images.mkdir()
    (images / "inventory.img").write_bytes(b"not an image")
    port = _free_port()
    (images / "network.json").write_text(json.dumps({"mode": "bridge", "ip": "10.89.250.250",
                                                     "ports": [f"127.0.0.1:{port}:80/tcp"]}))
    config = bridged.config(["sleep", "60"])
    config["annotations"] = {}
    p = bridged("--debug", "restore", "-d", "--image-path", images, "-b",
                bridged.bundle(config=_own_root(config, tmp_path)), "r1")
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr
    said = [line for line in p.stderr.strip().splitlines() if not line.startswith("pyrun: debug:")]
    assert len(said) == 1 and "criu restore failed" in said[0] and "restore.log" in said[0], p.stderr
    assert f"RTM_NEWLINK veth {_veth(bridged, 'r1')}" in p.stderr, p.stderr  # it was on the bridge
    assert _left(bridged, "r1") == (False, None, [])
    assert not os.path.exists(_key(bridged, "r1"))


@pytest.mark.parametrize("ip", ["10.89.0.1", "10.89.255.255", "192.168.1.1", "::1", "nonsense"])
def test_restore_takes_only_a_container_address_from_the_images(bridged, tmp_path, ip):
    """network.json comes with the images, which a user may have been given
    (an exported checkpoint): an address that is the bridge's gateway (the
    host's side), its broadcast, outside its subnet or not an address is
    refused in one line before anything is made."""
    images = tmp_path / "img"
    images.mkdir()
    (images / "inventory.img").write_bytes(b"not an image")
    (images / "network.json").write_text(json.dumps({"mode": "bridge", "ip": ip, "ports": []}))
    config = bridged.config(["sleep", "60"])
    config["annotations"] = {}
    p = bridged("restore", "-d", "--image-path", images, "-b", bridged.bundle(config=_own_root(config, tmp_path)),
                "r2")
    assert p.returncode != 0 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "not a container's address" in p.stderr, p.stderr
    assert _left(bridged, "r2") == (False, None, [])
    assert not os.path.exists(_key(bridged, "r2"))


def _wait_for(what, check, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while not (got := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
    return got


def _got(data) -> str:
    try:
        return (data / "got").read_text()
    except OSError:
        return ""


def _fetch(url: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.mark.vm
def test_bridge_checkpoint_and_restore_keep_the_address_and_connections(bridged, tmp_path):
    """run --network bridge -p: a client on the host connected to the
    container's address; checkpoint --tcp-established removes the
    container and its veth, lease and DNAT rule; restore brings it back at
    the same address, the client's connection goes on, new connections
    (to the address, to the published port) work; delete leaves nothing."""
    if not os.environ.get("PYRUN_IN_VM"):
        pytest.skip("CRIU 3.17 works on the VM's kernel, not the host's (make vm-test)")
    rt = bridged
    subprocess.run(["ip", "link", "set", "lo", "up"], check=False)  # CRIU's kernel probe connects to lo
    t0 = time.monotonic()
    data = tmp_path / "data"
    data.mkdir()
    config = rt.config(["sh", "-c", SERVE])
    config["annotations"] = {}  # no init in front (a memfd PID 1 CRIU 3.17 cannot restore)
    config["root"]["readonly"] = False
    config["mounts"].append({"destination": "/data", "type": "bind", "source": str(data),
                             "options": ["rbind", "rw"]})
    bundle = rt.bundle(config=_own_root(config, tmp_path))
    port = _free_port()
    p = rt("run", "-d", "--network", "bridge", "-p", f"127.0.0.1:{port}:80", "-b", bundle, "n1",
           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert p.returncode == 0
    ip = _lease(rt, "n1")["ip"]
    assert _fetch(f"http://{ip}/") == "hello\n"
    client = socket.create_connection((ip, 5000), timeout=60)
    try:
        client.sendall(b"one\n")
        _wait_for("one", lambda: "one" in _got(data))
        images = tmp_path / "img"
        t1 = time.monotonic()
        p = rt("checkpoint", "--tcp-established", "--image-path", images, "n1", timeout=300)
        assert p.returncode == 0, _why(p, images)
        t2 = time.monotonic()
        assert _left(rt, "n1") == (False, None, [])  # destroyed, as runc's checkpoint does
        # CRIU locked the connection inside the dumped namespace, not with
        # rules of the host's (which a restore that never comes would leave)
        assert "CRIU" not in _host_rules()
        p = rt("restore", "-d", "--tcp-established", "--image-path", images, "-b", bundle, "n1", timeout=300)
        assert p.returncode == 0, _why(p, images)
        t3 = time.monotonic()
        assert _lease(rt, "n1")["ip"] == ip
        assert rt.state("n1")["status"] == "running"
        client.sendall(b"two\n")  # the same connection, restored
        _wait_for("two", lambda: "two" in _got(data))
        assert _fetch(f"http://{ip}/") == "hello\n"
        assert _fetch(f"http://127.0.0.1:{port}/") == "hello\n"
    finally:
        client.close()
    rt.ok("delete", "--force", "n1")
    assert _left(rt, "n1") == (False, None, [])
    assert "CRIU" not in _host_rules()
    print(f"\nbridge checkpoint {t2 - t1:.1f}s, restore {t3 - t2:.1f}s, test {time.monotonic() - t0:.1f}s")


# ------------------------------------------------ --systemd-cgroup (systemd VM)

COUNTER = "i=0; while :; do i=$((i+1)); echo $i > /data/n; sleep 0.1; done"


def _count(data) -> int:
    try:
        return int((data / "n").read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


@pytest.mark.systemd
def test_systemd_cgroup_restore_into_a_transient_scope_with_its_limits(rootful, tmp_path):
    """--systemd-cgroup, cgroupsPath slice:prefix:name: checkpoint, then
    restore into the scope unit made again, its TasksMax and pids.max the
    config's, the counter going on; delete stops the unit. runc beside."""
    if not (os.environ.get("PYRUN_IN_VM") and os.path.isdir("/run/systemd/system")):
        pytest.skip("needs systemd as PID 1 and the VM's kernel for CRIU (make vm-test-systemd)")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=False)  # CRIU's kernel probe connects to lo
    runc = shutil.which("runc")
    runtimes = [("pyrun", rootful.cmd)]
    if runc:
        runtimes.append(("runc", lambda *a: [runc, "--root", str(tmp_path / "runc-state"), *map(str, a)]))
    for name, cmd in runtimes:
        t0 = time.monotonic()
        cid = f"ck-{name}"
        data = tmp_path / f"data-{name}"
        data.mkdir()
        config = rootful.config(["sh", "-c", COUNTER])
        config["annotations"] = {"org.pyrun.rootfs": "direct"}  # no init in front; the root as it is
        config["linux"]["cgroupsPath"] = f"pyrun-test.slice:pyck:{cid}"
        config["linux"]["resources"] = {"pids": {"limit": 20}}
        config["mounts"].append({"destination": "/data", "type": "bind", "source": str(data),
                                 "options": ["rbind", "rw"]})
        bundle = rootful.bundle(config=config)
        unit = f"pyck-{cid}.scope"

        def call(*args, timeout=300):
            return subprocess.run(cmd("--systemd-cgroup", *args), stdin=subprocess.DEVNULL, text=True,
                                  capture_output=True, timeout=timeout, cwd=str(tmp_path))

        p = subprocess.run(cmd("--systemd-cgroup", "run", "-d", "-b", bundle, cid), stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120, cwd=str(tmp_path))
        assert p.returncode == 0, name
        _wait_for("the counter", lambda: _count(data) > 2)
        images = tmp_path / f"img-{name}"
        p = call("checkpoint", "--image-path", images, cid)
        assert p.returncode == 0, f"{name}: {_why(p, images)}"
        at = _count(data)
        show = subprocess.run(["systemctl", "show", "-P", "ActiveState", unit], text=True, capture_output=True)
        assert show.stdout.strip() in ("inactive", "failed", ""), f"{name}: {show.stdout}"
        p = call("restore", "-d", "--image-path", images, "-b", bundle, cid)
        assert p.returncode == 0, f"{name}: {_why(p, images)}"
        try:
            _wait_for("the counter to go on", lambda: _count(data) > at + 2)
            assert _count(data) < at + 300, name  # on from where it was, not from 1
            state = json.loads(call("state", cid).stdout)
            with open(f"/proc/{state['pid']}/cgroup") as f:
                cg = "/sys/fs/cgroup" + f.read().split("::", 1)[1].strip()
            assert cg.endswith(f"/pyrun-test.slice/{unit}"), f"{name}: {cg}"
            with open(f"{cg}/pids.max") as f:
                assert f.read().strip() == "20", name
            shown = [subprocess.run(["systemctl", "show", "-P", prop, unit], text=True,
                                    capture_output=True).stdout.strip() for prop in ("ActiveState", "TasksMax")]
            assert shown == ["active", "20"], f"{name}: {shown}"
        finally:
            p = call("delete", "--force", cid)
        assert p.returncode == 0, f"{name}: {p.stderr}"
        show = subprocess.run(["systemctl", "show", "-P", "ActiveState", unit], text=True, capture_output=True)
        assert show.stdout.strip() in ("inactive", "failed", ""), f"{name}: {show.stdout}"
        print(f"\n{name}: systemd-cgroup checkpoint+restore test {time.monotonic() - t0:.1f}s")
