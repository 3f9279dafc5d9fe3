"""``pyrun checkpoint`` / ``pyrun restore`` through CRIU, in the VM (``make
vm-test``): CRIU 3.17.1 fails on the host's kernel 6.18 (``criu check``:
vDSO bounds), and works on the guest's 6.1. Rootful only (CRIU needs root),
runc beside where it is installed, the same scenario for both.

The container counts into a file of a bind mount (so the host reads it
without an exec, which costs seconds in the guest): a restored container
goes on from where it was, a restarted one would begin at 1. The default
spec's maskedPaths (files bound over with a null device) are in every
config: CRIU must be told they are external mounts, as the bind is.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import time

import pytest

pytestmark = pytest.mark.vm

COUNTER = "i=0; while :; do i=$((i+1)); echo $i > /data/n; sleep 0.1; done"
RUNC = shutil.which("runc")


@pytest.fixture
def criu(rootful):
    if not os.environ.get("PYRUN_IN_VM"):
        pytest.skip("CRIU 3.17 works on the VM's kernel, not the host's (make vm-test)")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=False)  # CRIU's kernel probe connects to lo
    return rootful


class Runc:
    """runc with its own state root, called as pyrun's tests call pyrun."""

    def __init__(self, workdir: str):
        self.root = os.path.join(workdir, "runc-state")

    def __call__(self, *args, timeout: float = 120, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        if "stdout" not in kw:
            kw["capture_output"] = True
        return subprocess.run([RUNC, "--root", self.root, *map(str, args)], text=True, timeout=timeout, **kw)


def _bundle(rt, data: str, args=None, **edit) -> str:
    config = rt.config(["sh", "-c", COUNTER] if args is None else args)
    # runc's defaults, which pyrun's own spec changes: no init in front
    # (a memfd PID 1 CRIU 3.17 cannot restore), the bundle's root itself
    config["annotations"] = {}
    config["mounts"].append({"destination": "/data", "type": "bind", "source": data, "options": ["rbind", "rw"]})
    config.update(edit)
    return rt.bundle(config=config)


def _why(p, images) -> str:
    """A failed command's stderr and the errors of CRIU's logs under
    ``images`` (the guest's /tmp dies with it)."""
    out = [p.stderr]
    for log in sorted(glob.glob(f"{images}/**/*.log", recursive=True)):
        with open(log, errors="replace") as f:
            lines = [line.rstrip() for line in f if "Error" in line or "Warn" in line]
        out.append(f"--- {log}:\n" + "\n".join(lines[-15:]))
    return "\n".join(out)


def _count(data: str) -> int:
    try:
        with open(os.path.join(data, "n")) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def _wait_count(data: str, above: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while (n := _count(data)) <= above:
        assert time.monotonic() < deadline, f"the counter did not pass {above} (at {n})"
        time.sleep(0.1)
    return n


def _quiet() -> dict:
    """The container's stdio for ``run -d``: /dev/null, which CRIU finds
    again at restore (a pipe would be the container's: run would not see
    its end; a host file is outside what CRIU dumps)."""
    return {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}


def _runtimes(rt, tmp_path):
    out = [("pyrun", rt)]
    if RUNC:
        out.append(("runc", Runc(str(tmp_path))))
    return out


def test_checkpoint_and_restore_keep_counting(criu, tmp_path):
    """Checkpoint stops and removes the container (as runc's); restore brings
    it back under the same id, counting on from where it was, in its cgroup
    with the config's limits; state, exec, kill and delete work on it."""
    for name, run in _runtimes(criu, tmp_path):
        data = tmp_path / f"data-{name}"
        data.mkdir()
        bundle = _bundle(criu, str(data), linux={**criu.config(["true"])["linux"],
                                                  "resources": {"pids": {"limit": 20}}})
        images = tmp_path / f"img-{name}"
        p = run("run", "-d", "-b", bundle, "c1", **_quiet())
        assert p.returncode == 0, name
        _wait_count(str(data), 3)
        started = time.monotonic()
        p = run("checkpoint", "--image-path", images, "c1")
        took = time.monotonic() - started
        assert p.returncode == 0, (name, _why(p, images))
        at = _count(str(data))
        time.sleep(0.5)
        assert _count(str(data)) == at, f"{name}: the container still counts after checkpoint"
        assert run("state", "c1").returncode != 0, f"{name}: checkpoint leaves no container behind"
        size = sum(f.stat().st_size for f in images.iterdir())
        print(f"{name}: checkpoint {took:.2f}s, {size // 1024} KiB in {len(list(images.iterdir()))} files")
        p = run("restore", "-d", "--image-path", images, "-b", bundle, "c1")
        assert p.returncode == 0, (name, _why(p, images))
        first = _count(str(data))
        assert first >= at, f"{name}: restarted from scratch ({first} < {at})"
        _wait_count(str(data), at + 2)
        state = json.loads(run("state", "c1").stdout)
        assert state["status"] == "running", (name, state)
        with open(f"/proc/{state['pid']}/cgroup") as f:
            cg = f.read().strip().split("::", 1)[1]
        assert cg.endswith("/c1"), (name, cg)
        with open(f"/sys/fs/cgroup{cg}/pids.max") as f:
            assert f.read().strip() == "20", name
        if name == "pyrun":
            p = run("exec", "c1", "cat", "/data/n")
            assert p.returncode == 0 and int(p.stdout) >= at, p.stderr
            # the limit bites: 30 more processes do not fit in pids.max 20
            p = run("exec", "c1", "sh", "-c", "for i in $(seq 30); do sleep 5 & done; wait")
            assert "fork" in p.stderr.lower() or "resource" in p.stderr.lower() or p.returncode != 0, p.stderr
        assert run("kill", "c1", "KILL").returncode == 0
        deadline = time.monotonic() + 30
        while json.loads(run("state", "c1").stdout)["status"] != "stopped":
            assert time.monotonic() < deadline, name
            time.sleep(0.1)
        assert run("delete", "c1").returncode == 0
        assert not os.path.exists(f"/sys/fs/cgroup{cg}"), f"{name}: cgroup left behind"


def test_pre_dump_then_dump_with_parent_leave_running(criu, tmp_path):
    """--pre-dump writes the memory and leaves the container running; a
    dump with --parent-path (relative to --image-path) writes only what
    changed since, --leave-running keeps it running; restore from it works."""
    for name, run in _runtimes(criu, tmp_path):
        data = tmp_path / f"data-{name}"
        data.mkdir()
        bundle = _bundle(criu, str(data))
        img = tmp_path / f"img-{name}"
        assert run("run", "-d", "-b", bundle, "c1", **_quiet()).returncode == 0
        _wait_count(str(data), 2)
        p = run("checkpoint", "--pre-dump", "--image-path", img / "pre", "c1")
        assert p.returncode == 0, (name, _why(p, img))
        p = run("checkpoint", "--parent-path", "../nothing", "--image-path", img / "dump", "c1")
        assert p.returncode != 0, (name, p.stderr)
        assert name != "pyrun" or "invalid --parent-path ../nothing" in p.stderr, p.stderr
        p = run("checkpoint", "--parent-path", "../pre", "--leave-running", "--image-path", img / "dump", "c1")
        assert p.returncode == 0, (name, _why(p, img))
        assert json.loads(run("state", "c1").stdout)["status"] == "running", name
        at = _wait_count(str(data), _count(str(data)))  # still counting
        assert run("delete", "-f", "c1").returncode == 0
        p = run("restore", "-d", "--image-path", img / "dump", "-b", bundle, "c1")
        assert p.returncode == 0, (name, _why(p, img))
        _wait_count(str(data), at)
        assert run("delete", "-f", "c1").returncode == 0


def test_failed_checkpoint_leaves_the_container_running(criu, tmp_path):
    """Refused before CRIU (PID 1 is pyrun's memfd init) or by CRIU itself
    (an established TCP connection without --tcp-established): one line,
    and the container runs on. With --tcp-established it is dumped and
    restored, the connection with it."""
    data = tmp_path / "data"
    data.mkdir()
    bundle = _bundle(criu, str(data))
    assert criu("run", "-d", "--init", "-b", bundle, "c1", **_quiet()).returncode == 0
    _wait_count(str(data), 1)
    p = criu("checkpoint", "--image-path", tmp_path / "img0", "c1")
    assert p.returncode == 1 and "--no-init" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert criu.state("c1")["status"] == "running"
    criu("delete", "-f", "c1")

    # (busybox nc ends at its stdin's end: the server's never ends)
    tcp = ("sleep 1000 | nc -l -p 5000 >/data/got & sleep 3; "  # the guest is slow to start the server
           "(i=0; while :; do i=$((i+1)); echo $i; echo $i >/data/n; sleep 0.1; done) | nc 127.0.0.1 5000")
    bundle = _bundle(criu, str(data), args=["sh", "-c", tcp])
    (data / "n").write_text("0")
    assert criu("run", "-d", "-b", bundle, "c2", **_quiet()).returncode == 0
    _wait_count(str(data), 2)
    p = criu("checkpoint", "--image-path", tmp_path / "img1", "c2")
    assert p.returncode == 1 and "criu dump failed" in p.stderr and "dump.log" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert criu.state("c2")["status"] == "running"
    at = _wait_count(str(data), _count(str(data)))
    p = criu("checkpoint", "--tcp-established", "--image-path", tmp_path / "img2", "c2")
    assert p.returncode == 0, _why(p, tmp_path)
    p = criu("restore", "-d", "--tcp-established", "--image-path", tmp_path / "img2", "-b", bundle, "c2")
    assert p.returncode == 0, _why(p, tmp_path)
    _wait_count(str(data), at + 2)  # the writer into the connection goes on: the connection was restored
    got = (data / "got").read_text().split()
    assert got and int(got[-1]) > at, got[-3:]
    criu("delete", "-f", "c2")
