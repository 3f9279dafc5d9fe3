"""containerd (``ctr run``) with pyrun as the runc binary of its runc v2
shim, beside runc: the limits containerd sends are applied (cgroup v1 or
v2, whatever the host has). A private containerd of its own (root, state
and sockets in a temporary directory), so nothing of a host's containerd is
touched. General containerd scenarios: tests/test_containerd.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOTFS = os.path.join(TOP, "bundles", "busybox", "rootfs")
PYRUN = os.path.join(TOP, ".venv", "bin", "pyrun")
RUNC = shutil.which("runc", path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin")

if os.geteuid() != 0 or not shutil.which("containerd") or not shutil.which("ctr"):
    pytest.skip("needs root and containerd (apt-get install containerd)", allow_module_level=True)

CONFIG = """version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{d}/c.sock"
[ttrpc]
  address = "{d}/c.sock.ttrpc"
[debug]
  address = "{d}/d.sock"
[metrics]
  address = ""
"""


@pytest.fixture(scope="module")
def ctr():
    # ctr's containers live in <hierarchy>/default/<id>: the parent is left
    # by runc and pyrun alike; removed at the end if this test made it
    parents = [os.path.join("/sys/fs/cgroup", h, "default") for h in os.listdir("/sys/fs/cgroup")]
    parents = [p for p in parents if not os.path.exists(p)]
    d = tempfile.mkdtemp(prefix="ctdcg-", dir="/tmp")  # unix socket paths: <= 107 bytes
    with open(os.path.join(d, "config.toml"), "w") as f:
        f.write(CONFIG.format(d=d))
    rootfs = os.path.join(d, "rootfs")
    subprocess.run(["cp", "-a", ROOTFS, rootfs], check=True)
    log = open(os.path.join(d, "containerd.log"), "w")
    daemon = subprocess.Popen(["containerd", "--config", os.path.join(d, "config.toml")],
                              stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not os.path.exists(os.path.join(d, "c.sock")):
        if daemon.poll() is not None or time.monotonic() > deadline:
            daemon.kill()
            pytest.fail("containerd did not start: " + open(os.path.join(d, "containerd.log")).read()[-2000:])
        time.sleep(0.05)

    def run(binary: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        cid = f"cg-{uuid.uuid4().hex[:8]}"
        cmd = ["ctr", "--address", os.path.join(d, "c.sock"), "run", "--rm", "--rootfs",
               "--runc-binary", binary, *args[:-1], rootfs, cid, *args[-1]]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    yield run
    daemon.terminate()
    try:
        daemon.wait(timeout=10)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()
    log.close()
    subprocess.run(["umount", "-R", os.path.join(d, "state")], capture_output=True)
    subprocess.run(["rm", "-rf", d])
    for p in parents:
        try:
            os.rmdir(p)
        except OSError:
            pass


ALLOC_64M = "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived ${#x}"


def test_ctr_run_memory_limit_oom_kills_as_with_runc(ctr):
    if not RUNC:
        pytest.skip("runc, the reference")
    results = {}
    for name, binary in (("runc", RUNC), ("pyrun", PYRUN)):
        p = ctr(binary, "--memory-limit", str(32 << 20), ["/bin/sh", "-c", "PATH=/bin:/usr/bin; " + ALLOC_64M])
        results[name] = (p.returncode, "survived" in p.stdout, p.stderr.strip()[-300:])
    assert results["runc"][:2] == (137, False), results
    assert results["pyrun"][:2] == results["runc"][:2], results


def test_ctr_run_without_limits_allocates_freely(ctr):
    p = ctr(PYRUN, ["/bin/sh", "-c", "PATH=/bin:/usr/bin; " + ALLOC_64M])
    assert p.returncode == 0 and "survived 67108864" in p.stdout, (p.stdout, p.stderr)
