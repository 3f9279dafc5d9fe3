"""Checkpoint and restore asked for by the engines, with pyrun as their
runtime, in the VM (``make vm-test-criu-engines``, marker criu_engines:
about 6 minutes under TCG, so not in CI; CRIU 3.17.1 fails on the host's
kernel): ``podman container checkpoint`` / ``restore`` (and ``--export`` /
``--import``), and containerd's ``ctr task checkpoint`` and ``ctr
container checkpoint --task`` / ``restore --live`` through the runc-v2
shim. runc runs the same scenario in the same test, through the same
recording wrapper (tests/conftest.py's), and must give the same result.
The two unmarked tests run on the host: the command lines the engines
send are parsed, and a paused container goes to CRIU (which fails there).

The container counts into a file of a bind mount, so the test reads it on
the host without an exec (seconds in the guest): a restored container goes
on from where it was, a restarted one would begin at 1.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time

import pytest
from conftest import recorded_calls, recording_wrapper
from test_checkpoint_vm import _count

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUSYBOX_ROOTFS = os.path.join(TOP, "bundles", "busybox", "rootfs")
RUNC = shutil.which("runc", path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin")
RUNTIMES = (["runc"] if RUNC else []) + ["pyrun"]
COUNTER = "i=0; while :; do i=$((i+1)); echo $i > /data/n; sleep 0.1; done"


@pytest.fixture
def criu_vm():
    if not os.environ.get("PYRUN_IN_VM") or os.geteuid() != 0:
        pytest.skip("CRIU 3.17 works on the VM's kernel, not the host's, and as root (make vm-test-criu-engines)")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=False)  # CRIU's kernel probe connects to lo


def _wait_count(data: str, above: int, timeout: float = 90) -> int:
    deadline = time.monotonic() + timeout
    while (n := _count(data)) <= above:
        assert time.monotonic() < deadline, f"the counter did not pass {above} (at {n})"
        time.sleep(0.1)
    return n


def _stopped_counting(data: str) -> int:
    at = _count(data)
    time.sleep(0.5)
    assert _count(data) == at, "the container still counts after the checkpoint"
    return at


def _criu_calls(log: str) -> list[tuple[int, str]]:
    return [(rc, argv) for rc, argv in recorded_calls(log)
            if any(w in ("checkpoint", "restore") for w in argv.split())]


def _show(log: str, stderr: str = "") -> str:
    """The runtime's calls, and the errors of the CRIU log an error names
    (the guest's /tmp dies with it)."""
    out = [f"  [{rc}] {argv}" for rc, argv in recorded_calls(log)]
    for path in re.findall(r"\(see (/\S+\.log)\)", stderr):
        try:
            with open(path, errors="replace") as f:
                lines = [line.rstrip() for line in f]
        except OSError as e:
            out.append(f"--- {path}: {e}")
            continue
        out.append(f"--- {path}:")
        out += [line for line in lines if "Error" in line or "Warn" in line][-20:] + lines[-12:]
    return "\n".join(out)


# ----------------------------------------------------------------- host

def test_the_engines_restore_flags_are_accepted(rootful):
    """containerd's shim (go-runc) sends ``-no-subreaper`` with one dash,
    podman ``--lsm-profile`` / ``--lsm-mount-context`` (runc 1.1's): not
    usage errors; the restore goes on to what is wrong (no images)."""
    p = rootful("restore", "--image-path", "/nonexistent/img", "--detach", "-no-subreaper",
                "--lsm-profile", "apparmor:unconfined", "--lsm-mount-context", "system_u:object_r:foo_t:s0",
                "--bundle", rootful.bundle(["true"]), "c1")
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "--image-path /nonexistent/img" in p.stderr, p.stderr


def test_restore_makes_the_mount_points_a_fresh_root_lacks(rootful, tmp_path):
    """An engine restores into a fresh copy of the image (podman's
    --import, containerd's new snapshot): the bind mounts' mount points are
    made in the root first, as at create (runc's prepareCriuRestoreMounts),
    a file for a file's bind. Here CRIU then fails (the host's kernel):
    one line, no container left."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    images = tmp_path / "img"
    images.mkdir()
    (images / "inventory.img").write_bytes(b"")
    root = str(tmp_path / "rootfs")  # a copy of its own: the restore writes in it
    shutil.copytree(BUSYBOX_ROOTFS, root, symlinks=True)
    config = rootful.config(["true"])
    config["annotations"] = {}
    config["root"]["path"] = root
    config["mounts"] += [{"destination": "/new/data", "type": "bind", "source": str(src), "options": ["rbind"]},
                         {"destination": "/etc/newfile", "type": "bind", "source": str(src / "f"),
                          "options": ["rbind"]}]
    bundle = rootful.bundle(config=config)
    p = rootful("restore", "-d", "--image-path", images, "-b", bundle, "c1")
    assert os.path.isdir(os.path.join(root, "new/data")), p.stderr
    assert os.path.isfile(os.path.join(root, "etc/newfile")), p.stderr
    if p.returncode != 0:
        assert "criu restore failed" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert rootful("state", "c1").returncode != 0
    else:
        rootful("delete", "-f", "c1")


def test_a_paused_container_is_checkpointed_as_runc(rootful):
    """containerd's ``ctr container checkpoint --task`` pauses the task and
    then asks for the checkpoint: a paused container goes to CRIU (runc
    refuses only created and stopped ones). Where CRIU fails (this host's
    kernel), the dump fails in one line and the container stays paused."""
    import subprocess

    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    config = rootful.config(["sleep", "60"])
    config["annotations"] = {}  # runc's defaults: no init in front, the bundle's root itself
    rootful.ok("run", "-d", "-b", rootful.bundle(config=config), "c1", **quiet)
    try:
        if rootful("pause", "c1").returncode != 0:
            pytest.skip("no freezer for pause here")
        p = rootful("checkpoint", "--leave-running", "--image-path", f"{rootful.dir}/img", "c1")
        assert "paused" not in p.stderr, p.stderr
        if p.returncode != 0:  # CRIU fails on this host's kernel
            assert "criu dump failed" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert rootful.state("c1")["status"] == "paused"
    finally:
        rootful("delete", "-f", "c1")


# ----------------------------------------------------------------- podman

@pytest.mark.criu_engines
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_podman_checkpoint_restore_export_import(criu_vm, runtime):
    """podman container checkpoint stops the container (exited), restore
    brings it back running and counting on; --export writes an archive,
    --import makes the container again from it after ``podman rm``."""
    from podman_env import IMAGE, PodmanEnv, runtime_for

    d = tempfile.mkdtemp(prefix="pyck-", dir="/tmp")  # podman: runroot paths <= 50 characters
    os.chmod(d, 0o755)
    tar = os.path.join(d, "busybox.tar")
    subprocess.run(["tar", "-C", BUSYBOX_ROOTFS, "-cf", tar, "."], check=True)
    exe = RUNC if runtime == "runc" else runtime_for(0, 0, d)
    os.mkdir(os.path.join(d, "rt"))
    log = os.path.join(d, "argv.log")
    # named as the runtime: podman passes --log-format/--log only to names it knows
    wrapper = recording_wrapper(os.path.join(d, "rt", runtime), exe, log)
    pm = PodmanEnv(runtime, wrapper, [], "rootful", d, tar, driver="vfs")
    try:
        data = pm.mkdir("data")
        pm.ok("run", "-d", "--network", "none", "--name", "ck", "-v", f"{data}:/data", IMAGE,
              "sh", "-c", COUNTER, timeout=240)
        _wait_count(data, 3)
        t0 = time.monotonic()
        p = pm("container", "checkpoint", "ck", timeout=400)
        took = time.monotonic() - t0
        assert p.returncode == 0, f"{runtime}: {p.stderr}\n{_show(log, p.stderr)}"
        at = _stopped_counting(data)
        assert pm.inspect("ck", "{{.State.Status}}") == "exited"
        t0 = time.monotonic()
        p = pm("container", "restore", "ck", timeout=400)
        took_restore = time.monotonic() - t0
        assert p.returncode == 0, f"{runtime}: {p.stderr}\n{_show(log, p.stderr)}"
        assert _count(data) >= at, f"{runtime}: restarted from scratch"
        _wait_count(data, at + 2)
        assert pm.inspect("ck", "{{.State.Status}}") == "running"
        p = pm("exec", "ck", "cat", "/data/n", timeout=120)
        assert p.returncode == 0 and int(p.stdout) >= at, (runtime, p.stdout, p.stderr)

        archive = os.path.join(d, "ck.tar.gz")
        p = pm("container", "checkpoint", "--export", archive, "ck", timeout=400)
        assert p.returncode == 0, f"{runtime}: {p.stderr}\n{_show(log, p.stderr)}"
        at = _stopped_counting(data)
        assert pm("rm", "ck", timeout=120).returncode == 0
        p = pm("container", "restore", "--import", archive, timeout=400)
        assert p.returncode == 0, f"{runtime}: {p.stderr}\n{_show(log, p.stderr)}"
        _wait_count(data, at + 2)
        assert pm.inspect("ck", "{{.State.Status}}") == "running"
        assert pm("rm", "-f", "-t", "0", "ck", timeout=120).returncode == 0
        calls = _criu_calls(log)
        print(f"\n{runtime} under podman: checkpoint {took:.1f}s, restore {took_restore:.1f}s; calls:")
        print("\n".join(f"  [{rc}] {argv}" for rc, argv in calls))
        assert all(rc == 0 for rc, _ in calls), _show(log)
    finally:
        problems = pm.teardown()
        shutil.rmtree(d, ignore_errors=True)
    assert not problems, problems


# ----------------------------------------------------------------- containerd

IMAGE_NAME = "localhost/pyrun-busybox:ck"


def _oci_archive(out: str) -> None:
    """The busybox rootfs as a one-layer OCI image archive (ctr images import)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as t:
        t.add(BUSYBOX_ROOTFS, arcname=".")
    layer = raw.getvalue()
    blobs = {}

    def add(data: bytes, media: str) -> dict:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"mediaType": media, "digest": digest, "size": len(data)}

    cfg = {"architecture": "amd64", "os": "linux",
           "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]},
           "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": add(json.dumps(cfg).encode(), "application/vnd.oci.image.config.v1+json"),
                "layers": [add(gzip.compress(layer, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip")]}
    desc = add(json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json")
    desc["annotations"] = {"io.containerd.image.name": IMAGE_NAME, "org.opencontainers.image.ref.name": "ck"}
    with tarfile.open(out, "w") as t:
        def put(path: str, data: bytes) -> None:
            info = tarfile.TarInfo(path)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        put("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        put("index.json", json.dumps({"schemaVersion": 2, "manifests": [desc]}).encode())
        for digest, data in blobs.items():
            put("blobs/sha256/" + digest.split(":", 1)[1], data)


@pytest.mark.criu_engines
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_ctr_task_checkpoint_and_container_restore(criu_vm, runtime):
    """ctr task checkpoint (--image-path; the shim pauses the task, asks
    for ``checkpoint --leave-running`` and resumes it: it runs on), ctr
    container checkpoint --task (the same, into an image), then the
    container deleted and made again by ctr container restore --live: it
    counts on from where the checkpoint was."""
    from containerd_env import Containerd
    from test_containerd import PYRUN, shut_down

    d = tempfile.mkdtemp(prefix="pyctrd-", dir="/tmp")
    c = Containerd(d)
    log = os.path.join(d, "argv.log")
    wrapper = recording_wrapper(os.path.join(d, runtime), RUNC if runtime == "runc" else PYRUN, log)
    data = os.path.join(d, "data")
    os.mkdir(data)
    try:
        archive = os.path.join(d, "image.tar")
        _oci_archive(archive)
        c.ok("images", "import", archive, timeout=300)
        c.ok("run", "-d", "--runc-binary", wrapper, "--runc-root", os.path.join(d, "runtime-state"),
             "--mount", f"type=bind,src={data},dst=/data,options=rbind:rw", IMAGE_NAME, "ck1", "sh", "-c", COUNTER,
             timeout=240)
        _wait_count(data, 3)
        img = os.path.join(d, "img")
        p = c.ctr("task", "checkpoint", "--image-path", img, "--work-path", os.path.join(d, "work"), "ck1",
                  timeout=400)
        assert p.returncode == 0, f"{runtime}: {p.stderr}\n{_show(log, p.stderr)}"
        assert os.path.exists(os.path.join(img, "inventory.img")), os.listdir(img)
        _wait_count(data, _count(data))  # the task runs on

        at = _count(data)
        p = c.ctr("container", "checkpoint", "--task", "ck1", "localhost/ck1-checkpoint:1", timeout=400)
        assert p.returncode == 0, f"{runtime}: {p.stderr}\n{_show(log, p.stderr)}"
        c.ok("task", "kill", "-s", "KILL", "ck1")
        deadline = time.monotonic() + 60
        while c.ctr("task", "delete", "ck1").returncode != 0:
            assert time.monotonic() < deadline, "task ck1 not deleted"
            time.sleep(0.5)
        c.ok("container", "delete", "ck1")
        killed_at = _count(data)
        p = c.ctr("container", "restore", "--live", "ck1", "localhost/ck1-checkpoint:1", timeout=400)
        assert p.returncode == 0, f"{runtime}: {p.stderr}\n{_show(log, p.stderr)}"
        deadline = time.monotonic() + 90
        while (n := _count(data)) == killed_at:
            assert time.monotonic() < deadline, f"{runtime}: the restored task does not count"
            time.sleep(0.1)
        # the restored counter goes on from the checkpoint (a new one would write 1)
        assert n >= at, f"{runtime}: restarted from scratch ({n} < {at})"
        calls = _criu_calls(log)
        print(f"\n{runtime} under containerd: calls:")
        print("\n".join(f"  [{rc}] {argv}" for rc, argv in calls))
        assert all(rc == 0 for rc, _ in calls), _show(log)
    finally:
        shut_down(c, d)


# ----------------------------------------------------------------- cgroup v1

@pytest.mark.systemd_v1
def test_checkpoint_restore_on_cgroup_v1(rootful, tmp_path):
    """The v1 (hybrid) boot (make vm-test-systemd-v1): the dump freezes the
    tree through the freezer hierarchy, the restore makes the container's
    cgroup in every v1 hierarchy with the config's limits and gives CRIU
    each one as its cgroup root: the restored counter is in .../c1 with
    pids.max 20. runc (cgroupfs driver) beside."""
    from test_checkpoint_vm import _bundle, _quiet, _runtimes, _why

    if not os.environ.get("PYRUN_IN_VM") or not os.path.isdir("/sys/fs/cgroup/freezer"):
        pytest.skip("needs the VM booted with cgroup v1 (make vm-test-systemd-v1)")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=False)
    for name, run in _runtimes(rootful, tmp_path):
        data = tmp_path / f"data-{name}"
        data.mkdir()
        bundle = _bundle(rootful, str(data), linux={**rootful.config(["true"])["linux"],
                                                    "resources": {"pids": {"limit": 20}}})
        images = tmp_path / f"img-{name}"
        assert run("run", "-d", "-b", bundle, "c1", **_quiet()).returncode == 0, name
        _wait_count(str(data), 3)
        t0 = time.monotonic()
        p = run("checkpoint", "--image-path", images, "c1")
        took = time.monotonic() - t0
        assert p.returncode == 0, (name, _why(p, images))
        at = _stopped_counting(str(data))
        p = run("restore", "-d", "--image-path", images, "-b", bundle, "c1")
        assert p.returncode == 0, (name, _why(p, images))
        assert _count(str(data)) >= at, f"{name}: restarted from scratch"
        _wait_count(str(data), at + 2)
        state = json.loads(run("state", "c1").stdout)
        assert state["status"] == "running", (name, state)
        with open(f"/proc/{state['pid']}/cgroup") as f:
            cgroups = dict(line.rstrip("\n").split(":", 2)[1:] for line in f)
        pids = cgroups["pids"]
        assert pids.endswith("/c1"), (name, cgroups)
        with open(f"/sys/fs/cgroup/pids{pids}/pids.max") as f:
            assert f.read().strip() == "20", name
        print(f"\n{name} on cgroup v1: checkpoint {took:.1f}s; cgroups {cgroups}")
        assert run("delete", "-f", "c1").returncode == 0, name
        assert not os.path.exists(f"/sys/fs/cgroup/pids{pids}"), f"{name}: cgroup left behind"
