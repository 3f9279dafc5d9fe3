"""containerd with pyrun as its runc (``ctr run --runc-binary``), beside runc.

The module starts its own containerd: its own root, state, sockets and
runc root under a temporary directory, no CRI plugin; it is stopped, and
the directory removed, at the end. Containers use ``ctr run --rootfs``
(a private copy of the busybox rootfs, no image, no snapshotter), which is
what containerd's shim gives the runtime as root.path: a config pyrun did
not write, run as runc runs it (rootfs written directly, entrypoint PID 1).

The runtime is a wrapper that records each command line the shim sends and
pyrun's exit status: no command line may be refused as a usage error.
Rootful only: rootless containerd needs rootlesskit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

import pytest
from conftest import recorded_calls, recording_wrapper
from containerd_env import Containerd

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUSYBOX_ROOTFS = os.path.join(TOP, "bundles", "busybox", "rootfs")
CONTAINERD = shutil.which("containerd")
CTR = shutil.which("ctr")
RUNC = shutil.which("runc", path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin")
PYRUN = os.path.join(os.path.dirname(sys.executable), "pyrun")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

if not (CONTAINERD and CTR and shutil.which("containerd-shim-runc-v2")):
    pytest.skip("containerd is not installed (tools/deps.sh installs it)", allow_module_level=True)
if os.geteuid() != 0:
    pytest.skip("containerd runs as root here (rootless needs rootlesskit)", allow_module_level=True)


@pytest.fixture(scope="module")
def containerd():
    if not os.path.isdir(os.path.join(BUSYBOX_ROOTFS, "bin")):
        pytest.exit("bundles/busybox is not prepared: run 'make bundles'", 2)
    d = tempfile.mkdtemp(prefix="pyctrd-", dir="/tmp")
    try:
        c = Containerd(d)
    except RuntimeError as e:
        shutil.rmtree(d, ignore_errors=True)
        pytest.skip(str(e))
    yield c
    shut_down(c, d)


def shut_down(c: Containerd, d: str) -> None:
    """Every task killed and deleted, every container deleted, containerd
    stopped, its directory ``d`` unmounted and removed."""
    for task in c.ctr("task", "ls", "-q").stdout.split():
        c.ctr("task", "kill", "-s", "KILL", task)
        c.ctr("task", "delete", "-f", task)
    for container in c.ctr("container", "ls", "-q").stdout.split():
        c.ctr("container", "delete", container)
    c.stop()
    subprocess.run(["umount", "-R", "-l", d], capture_output=True)
    shutil.rmtree(d, ignore_errors=True)
    # ctr's tasks live in /NAMESPACE/ID cgroups: the runtime removes its
    # own, the namespace's parent stays (as runc leaves parents)
    # (cgroup v2: /sys/fs/cgroup/NS; v1 and hybrid: /sys/fs/cgroup/*/NS)
    hierarchies = os.listdir("/sys/fs/cgroup") if os.path.isdir("/sys/fs/cgroup") else []
    for path in [f"/sys/fs/cgroup/{c.ns}"] + [f"/sys/fs/cgroup/{h}/{c.ns}" for h in hierarchies]:
        try:
            os.rmdir(path)
        except OSError:  # not there, not empty, or not a cgroup
            pass


class Runtime:
    """One runc-compatible binary under containerd, through a recording wrapper."""

    def __init__(self, c: Containerd, name: str, exe: str, flags: str = ""):
        self.c = c
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=f"{name}-", dir=c.dir)
        self.argv_log = os.path.join(self.dir, "argv.log")
        self.wrapper = os.path.join(self.dir, "runtime")
        # pyrun serves cgroup v2 only; containerd's spec asks for cpu shares, which a
        # v1/hybrid host cannot give it (as podman's --runtime-flag in test_podman.py)
        recording_wrapper(self.wrapper, f"{exe} {flags}", self.argv_log)
        self.runc_root = os.path.join(self.dir, "state")

    def rootfs(self) -> str:
        path = os.path.join(self.dir, f"rootfs-{uuid.uuid4().hex[:8]}")
        subprocess.run(["cp", "-a", BUSYBOX_ROOTFS, path], check=True)
        return path

    def run(self, cid: str, *args, detach: bool = False, rootfs: str | None = None) -> subprocess.CompletedProcess:
        # ctr's spec for --rootfs has no PATH (no image config); runc 1.1
        # then finds no bare name (Go's LookPath), pyrun searches execvp's default
        return self.c.ctr("run", *(["-d"] if detach else ["--rm"]), "--runc-binary", self.wrapper,
                          "--runc-root", self.runc_root, "--env", f"PATH={PATH}",
                          "--rootfs", rootfs or self.rootfs(), cid, *args)

    def calls(self) -> list[tuple[int, str]]:
        return recorded_calls(self.argv_log)


@pytest.fixture(params=(["runc"] if RUNC else []) + ["pyrun"])
def rt(request, containerd):
    if request.param == "runc":
        return Runtime(containerd, "runc", RUNC)
    return Runtime(containerd, "pyrun", PYRUN, "--ignore-cgroup-limits")


def _id(rt) -> str:
    return f"{rt.name}-{uuid.uuid4().hex[:8]}"


def test_run_writes_the_rootfs_and_the_entrypoint_is_pid1(rt):
    rootfs = rt.rootfs()
    p = rt.run(_id(rt), "sh", "-c", "echo $$; echo kept > /written", rootfs=rootfs)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "1\n"
    with open(os.path.join(rootfs, "written")) as f:
        assert f.read() == "kept\n"


def test_exit_status(rt):
    p = rt.run(_id(rt), "sh", "-c", "exit 7")
    assert p.returncode == 7, p.stderr


def test_exec_ps_pause_resume(rt):
    c = rt.c
    cid = _id(rt)
    p = rt.run(cid, "sleep", "600", detach=True)
    assert p.returncode == 0, p.stderr
    try:
        pid = int(c.ok("task", "ls").split(cid, 1)[1].split()[0])
        assert pid > 0
        assert c.ok("task", "exec", "--exec-id", "e1", cid, "sh", "-c", "echo exec $HOME") == "exec /root\n"
        rc, out = c.ctr_pty("task", "exec", "-t", "--exec-id", "e2", cid, "sh", "-c", "tty; echo tty-ok")
        assert rc == 0 and "/dev/pts/" in out and "tty-ok" in out, out
        ps = c.ok("task", "ps", cid)
        assert str(pid) in ps.split(), ps
        c.ok("task", "pause", cid)
        assert "PAUSED" in c.ok("task", "ls")
        c.ok("task", "resume", cid)
        assert "RUNNING" in c.ok("task", "ls")
        assert c.ok("task", "exec", "--exec-id", "e3", cid, "true") == ""
    finally:
        c.ctr("task", "kill", "-s", "KILL", cid)
        deadline = time.monotonic() + 10
        while c.ctr("task", "delete", cid).returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        c.ctr("container", "delete", cid)


def test_every_command_line_the_shim_sends_is_accepted(rt):
    """After the scenarios above (run in this order), what the shim sent:
    create, start, state, exec, ps, pause, resume, kill, delete; none was a
    usage error (exit status 2 from a CLI parser)."""
    cid = _id(rt)
    assert rt.run(cid, "sleep", "600", detach=True).returncode == 0
    c = rt.c
    c.ok("task", "exec", "--exec-id", "e1", cid, "true")
    c.ok("task", "ps", cid)
    c.ok("task", "pause", cid)
    c.ok("task", "resume", cid)
    c.ctr("task", "kill", "-s", "KILL", cid)
    deadline = time.monotonic() + 10
    while c.ctr("task", "delete", cid).returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    c.ctr("container", "delete", cid)
    calls = rt.calls()
    commands = set()
    for rc, argv in calls:
        words = argv.split()
        command = next(w for w in words[words.index("json") + 1:] if not w.startswith("-")) \
            if "json" in words else words[0]
        commands.add(command)
        assert rc != 2, f"{rt.name} refused the shim's command line: {argv}"
    assert {"create", "start", "exec", "ps", "pause", "resume", "kill", "delete"} <= commands, commands


# issue 28: `ctr run -t` of a command that prints and exits at once, through
# a pseudo-terminal (the shim takes the pty master from --console-socket and
# copies it to ctr's fifo): pyrun may lose the output no more often than
# runc, with a margin of N // 20 for the noise of a loaded machine.
QUICK_TTY_RUNS = 40


def test_run_tty_quick_output_is_not_lost(containerd):
    if not RUNC:
        pytest.skip("runc is the reference here")
    lost = {}
    for rt in (Runtime(containerd, "runc", RUNC), Runtime(containerd, "pyrun", PYRUN, "--ignore-cgroup-limits")):
        rootfs = rt.rootfs()
        lost[rt.name] = []
        for i in range(QUICK_TTY_RUNS):
            rc, out = containerd.ctr_pty("run", "--rm", "-t", "--runc-binary", rt.wrapper, "--runc-root",
                                         rt.runc_root, "--env", f"PATH={PATH}", "--rootfs", rootfs,
                                         _id(rt), "echo", f"quick-{i}")
            if f"quick-{i}" not in out:
                lost[rt.name].append((i, rc, out[-200:]))
    counts = {r: len(v) for r, v in lost.items()}
    print(f"\noutput lost in {counts} of {QUICK_TTY_RUNS} runs of `ctr run --rm -t echo`")
    assert counts["pyrun"] <= counts["runc"] + QUICK_TTY_RUNS // 20, (counts, lost["pyrun"][:5])
