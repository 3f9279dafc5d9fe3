"""runc's lifecycle: create -> start -> state -> kill -> delete, list, and
status derived robustly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time

import pytest


def test_create_start_kill_delete_transitions(rt):
    bundle = rt.bundle(["sleep", "30"])
    pid_file = os.path.join(rt.dir, "pid")
    rt.ok("create", "-b", bundle, "--pid-file", pid_file, "c1")
    s = rt.state("c1")
    assert s["status"] == "created"
    assert s["pid"] > 0 and open(pid_file).read().strip() == str(s["pid"])
    assert s["id"] == "c1" and s["bundle"] == bundle
    assert s["ociVersion"] and s["rootfs"] == rt.rootfs["busybox"] and s["created"].endswith("Z")
    # The container's process exists but waits: its entrypoint has not run;
    # PID 1 is pyrun's sealed init, on exec.fifo.
    assert os.readlink(f"/proc/{s['pid']}/exe").startswith("/memfd:pyrun-init")
    with open(f"/proc/{s['pid']}/cmdline", "rb") as f:
        assert f.read().startswith(b"pyrun-init\0")
    rt.ok("start", "c1")
    s = rt.wait_status("c1", "running")
    assert s["pid"] > 0
    p = rt("start", "c1")
    assert p.returncode == 1 and "running" in p.stderr
    p = rt("delete", "c1")
    assert p.returncode == 1 and "running" in p.stderr
    rt.ok("kill", "c1", "KILL")
    s = rt.wait_status("c1", "stopped")
    assert s["pid"] == 0
    p = rt("kill", "c1")
    assert p.returncode == 1 and "not running" in p.stderr
    rt.ok("delete", "c1")
    p = rt("state", "c1")
    assert p.returncode == 1 and "does not exist" in p.stderr
    assert os.listdir(rt.root) == []


def test_delete_of_a_created_container_kills_it(rt):
    rt.ok("create", "-b", rt.bundle(["sleep", "30"]), "c1")
    pid = rt.state("c1")["pid"]
    rt.ok("delete", "c1")
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split(")")[1].split()[0] == "Z"


def test_delete_force_kills_a_running_container(rt):
    rt.ok("run", "-d", "-b", rt.bundle(["sleep", "30"]), "c1")
    assert rt.state("c1")["status"] == "running"
    rt.ok("delete", "--force", "c1")
    assert os.listdir(rt.root) == []


def test_run_detached_returns_at_once(rt):
    t0 = time.monotonic()
    rt.ok("run", "-d", "-b", rt.bundle(["sleep", "30"]), "c1")
    assert time.monotonic() - t0 < 20
    assert rt.state("c1")["status"] == "running"
    rt.ok("delete", "-f", "c1")


@pytest.mark.parametrize("sig", ["TERM", "SIGTERM", "sigterm", "15"])
def test_kill_accepts_signal_names_and_numbers(rt, sig):
    rt.ok("run", "-d", "-b", rt.bundle(["sleep", "30"]), "c1")
    rt.ok("kill", "c1", sig)
    assert rt.wait_status("c1", "stopped")["status"] == "stopped"


def test_kill_rejects_an_unknown_signal(rt):
    rt.ok("run", "-d", "-b", rt.bundle(["sleep", "30"]), "c1")
    p = rt("kill", "c1", "SIGNOPE")
    assert p.returncode != 0 and "unknown signal" in p.stderr
    assert "Traceback" not in p.stderr


def test_kill_all_reaches_every_process(rt):
    rt.ok("run", "-d", "--no-init", "-b",
          rt.bundle(["sh", "-c", "trap '' TERM; sleep 30 & sleep 30 & wait"]), "c1")
    pid = rt.state("c1")["pid"]
    time.sleep(0.3)
    rt.ok("kill", "--all", "c1", "KILL")
    assert rt.wait_status("c1", "stopped")["status"] == "stopped"
    assert not os.path.exists(f"/proc/{pid}/cmdline") or open(f"/proc/{pid}/cmdline").read() == ""


def test_list(rt):
    rt.ok("create", "-b", rt.bundle(["sleep", "30"]), "one")
    rt.ok("run", "-d", "-b", rt.bundle(["sleep", "30"]), "two")
    assert rt.ok("list", "-q").split() == ["one", "two"]
    table = rt.ok("list").splitlines()
    assert table[0].split()[:3] == ["ID", "PID", "STATUS"]
    assert [line.split()[2] for line in table[1:]] == ["created", "running"]
    states = json.loads(rt.ok("list", "--format", "json"))
    assert [(s["id"], s["status"]) for s in states] == [("one", "created"), ("two", "running")]


def test_list_skips_a_corrupt_record_as_runc(rt, tmp_path):
    """runc's list warns "load container ID: ..." on stderr for a record it
    cannot read and lists the others (exit 0); pyrun failed the whole list."""
    rt.ok("create", "-b", rt.bundle(["sleep", "30"]), "one")
    os.mkdir(os.path.join(rt.root, "bad"))
    with open(os.path.join(rt.root, "bad", "state.json"), "w") as f:
        f.write("{garbage")
    p = rt("list", "-q")
    assert (p.returncode, p.stdout.split()) == (0, ["one"]), p.stderr
    assert p.stderr.startswith("load container bad: ") and len(p.stderr.splitlines()) == 1, p.stderr
    assert [s["id"] for s in json.loads(rt.ok("list", "--format", "json"))] == ["one"]
    runc = shutil.which("runc", path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin")
    if runc and os.geteuid() == 0:
        os.makedirs(tmp_path / "runc" / "bad")
        (tmp_path / "runc" / "bad" / "state.json").write_text("{garbage")
        r = subprocess.run([runc, "--root", str(tmp_path / "runc"), "list", "-q"], capture_output=True, text=True)
        assert (r.returncode, r.stdout, r.stderr.startswith("load container bad: ")) == (0, "", True), r.stderr


def test_a_recycled_pid_does_not_look_alive(rt):
    rt.ok("run", "-d", "-b", rt.bundle(["sleep", "30"]), "c1")
    rt.ok("kill", "c1", "KILL")
    rt.wait_status("c1", "stopped")
    path = os.path.join(rt.root, "c1", "state.json")
    rec = json.load(open(path))
    rec["pid"] = os.getpid()  # a live process that is not the container
    with open(path, "w") as f:
        json.dump(rec, f)
    assert rt.state("c1")["status"] == "stopped"
    assert rt("kill", "c1", "KILL").returncode == 1


def test_two_creates_of_one_id_exactly_one_succeeds(rt):
    b1, b2 = rt.bundle(["sleep", "30"]), rt.bundle(["sleep", "30"])
    results = []

    def create(b):
        results.append(rt("create", "-b", b, "same"))

    threads = [threading.Thread(target=create, args=(b,)) for b in (b1, b2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(p.returncode for p in results)
    assert codes == [0, 1], [p.stderr for p in results]
    loser = next(p for p in results if p.returncode == 1)
    assert "already exists" in loser.stderr
    assert rt.state("same")["status"] == "created"


def test_create_returns_while_the_container_waits(rt):
    out = os.path.join(rt.dir, "out")
    with open(out, "w") as f:
        if rt.rootless:
            os.chown(out, rt.uid, rt.gid)
        p = rt("create", "-b", rt.bundle(["echo", "started"]), "c1", stdout=f)
    assert p.returncode == 0, p.stderr
    time.sleep(0.3)
    assert open(out).read() == ""
    rt.ok("start", "c1")
    rt.wait_status("c1", "stopped")
    assert open(out).read().strip() == "started"


def test_state_of_unknown_and_malformed_ids(rt):
    p = rt("state", "nope")
    assert p.returncode == 1 and "does not exist" in p.stderr
    p = rt("state", "../etc")
    assert p.returncode != 0 and "invalid container id" in p.stderr


def test_version_spec_and_features(rt):
    assert rt.ok("--version").startswith("pyrun version ")
    d = os.path.join(rt.dir, "specdir")
    os.mkdir(d)
    if rt.rootless:
        os.chown(d, rt.uid, rt.gid)
    rt.ok("spec", "--rootless", "--bundle", d)
    config = json.load(open(os.path.join(d, "config.json")))
    assert any(n["type"] == "user" for n in config["linux"]["namespaces"])
    p = rt("spec", "--bundle", d)
    assert p.returncode == 1 and "exists" in p.stderr
    features = json.loads(rt.ok("features"))
    assert "user" in features["linux"]["namespaces"]
