"""pyrun exec: one more process in a running container, in every one of
its namespaces, with its walls; rootful and rootless."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

NAMESPACES = ["mnt", "pid", "net", "uts", "ipc", "user", "cgroup"]


@pytest.fixture
def running(rt):
    rt.ok("run", "-d", "-b", rt.bundle(["sleep", "300"]), "c1")
    return rt


def test_exec_joins_every_namespace_of_the_container(running):
    script = "; ".join(f'[ "$(readlink /proc/1/ns/{n})" = "$(readlink /proc/self/ns/{n})" ] && echo {n}'
                       for n in NAMESPACES)
    p = running("exec", "c1", "sh", "-c", script + "; hostname; cat /proc/self/status")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[:len(NAMESPACES)] == NAMESPACES, p.stdout
    assert lines[len(NAMESPACES)] == "pyrun-test"
    status = dict(line.split(":\t", 1) for line in lines[len(NAMESPACES) + 1:] if ":\t" in line)
    # the container's walls: default caps, no_new_privs, its seccomp filter
    assert int(status["CapEff"], 16) == int(status["CapBnd"], 16) == 0x20000420
    assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2"


def test_exec_sees_the_containers_root_and_processes(running):
    p = running("exec", "c1", "sh", "-c", "ls /; ps -o pid,comm")
    assert p.returncode == 0, p.stderr
    assert "bin" in p.stdout.split() and "sleep" in p.stdout
    assert "pytest" not in p.stdout and "python" not in p.stdout


def test_exec_exit_status_is_the_process_s(running):
    assert running("exec", "c1", "sh", "-c", "exit 42").returncode == 42
    assert running("exec", "c1", "sh", "-c", "kill -9 $$").returncode == 137


def test_exec_flags_env_cwd_user_gids(rt):
    running = rt
    rt.ok("run", "-d", "-b", rt.bundle(config=rt.with_id_ranges(rt.config(["sleep", "300"]))), "c1")
    p = running("exec", "--env", "FOO=bar", "--cwd", "/tmp", "--user", "1000:1000",
                "--additional-gids", "5", "c1", "sh", "-c", 'echo $FOO; pwd; id -u; id -g; id -G')
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["bar", "/tmp", "1000", "1000", "1000", "5"], p.stdout


def test_exec_cap_adds_a_capability(running):
    p = running("exec", "c1", "hostname", "changed")
    assert p.returncode != 0  # no CAP_SYS_ADMIN by default
    p = running("exec", "--cap", "CAP_SYS_ADMIN", "c1", "sh", "-c", "hostname changed && hostname")
    assert p.returncode == 0 and p.stdout.strip() == "changed", p.stderr


def test_exec_process_json(rt):
    running = rt
    rt.ok("run", "-d", "-b", rt.bundle(config=rt.with_id_ranges(rt.config(["sleep", "300"]))), "c1")
    proc = {"args": ["sh", "-c", "echo $A; id -u"], "env": ["A=from-json", "PATH=/bin:/usr/bin"], "cwd": "/",
            "user": {"uid": 7, "gid": 7}}
    path = os.path.join(running.dir, "process.json")
    with open(path, "w") as f:
        json.dump(proc, f)
    os.chmod(path, 0o644)
    p = running("exec", "--process", path, "c1")
    assert p.returncode == 0 and p.stdout.split() == ["from-json", "7"], p.stderr


def test_exec_bad_process_json_names_file_and_field(running):
    path = os.path.join(running.dir, "bad.json")
    with open(path, "w") as f:
        json.dump({"args": [], "cwd": "/"}, f)
    os.chmod(path, 0o644)
    p = running("exec", "--process", path, "c1")
    assert p.returncode == 255 and f"{path}: args: must contain at least one entry" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr


def test_exec_detached_writes_the_host_pid(running):
    pid_file = os.path.join(running.dir, "exec.pid")
    t0 = time.monotonic()
    running.ok("exec", "-d", "--pid-file", pid_file, "c1", "sleep", "30")
    assert time.monotonic() - t0 < 10
    pid = int(open(pid_file).read())
    init = running.state("c1")["pid"]
    assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{init}/ns/pid")
    assert open(f"/proc/{pid}/cmdline").read().split("\0")[0] == "sleep"


def test_exec_of_a_missing_command_fails_255_and_leaves_nothing(running):
    before = _container_pids(running)
    p = running("exec", "c1", "no-such-command")
    assert p.returncode == 255 and "exec failed" in p.stderr and "no-such-command" in p.stderr, p.stderr
    assert set(_container_pids(running)) <= set(before)  # the failed process is gone


def test_exec_into_a_stopped_or_missing_container_is_an_error(rt):
    rt.ok("run", "-d", "-b", rt.bundle(["true"]), "c1")
    rt.wait_status("c1", "stopped")
    p = rt("exec", "c1", "true")
    assert p.returncode == 255 and "stopped" in p.stderr, p.stderr
    p = rt("exec", "nope", "true")
    assert p.returncode == 255 and "does not exist" in p.stderr, p.stderr


def test_exec_does_not_expose_the_runtime_executable(running):
    """CVE-2019-5736: while pyrun execs into the container, a process in it
    looks for a pyrun process whose /proc/PID/exe it can reach (the host's
    python). The helper and the child are non-dumpable until execve(2), so
    it finds none."""
    watcher = ("end=$(($(date +%s)+20)); while [ $(date +%s) -lt $end ]; do "
               "for p in /proc/[0-9]*; do t=$(readlink $p/exe 2>/dev/null) && echo \"$t\"; done; "
               "[ -e /tmp/stop ] && break; done | sort -u")
    watch = running.popen("exec", "c1", "sh", "-c", watcher, stdout=__import__("subprocess").PIPE)
    time.sleep(0.5)
    for _ in range(8):
        running.ok("exec", "c1", "true")
    running.ok("exec", "c1", "touch", "/tmp/stop")
    out, _ = watch.communicate(timeout=60)
    seen = out.split()
    assert seen, "the watcher saw no process at all"
    assert not [t for t in seen if "python" in t or "pyrun" in t and "memfd" not in t], seen


def _container_pids(rt) -> list[int]:
    return json.loads(rt.ok("ps", "--format", "json", "c1"))


# --------------------------------------------- exec joins PID 1's namespaces
#
# Whatever made a namespace — a linux.namespaces entry, --network (or the
# org.pyrun.network annotation) adding one to a config without it, a path
# to join, or none at all (the host's) — an exec'd process is in exactly the
# namespaces the container's PID 1 is in (issue 12, item 11).

PROC_NS = {"pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts", "user": "user",
           "cgroup": "cgroup", "time": "time"}


def _ns_of(pid: int) -> dict[str, str]:
    return {t: os.readlink(f"/proc/{pid}/ns/{n}") for t, n in PROC_NS.items()}


def _cid(name: str) -> str:
    """A container id no other test on this host uses: rootful cgroups are
    named after the id, and other test runs may share the machine."""
    return f"{name}-{os.getpid()}-{time.monotonic_ns() % 10**9}"


def assert_exec_in_pid1_namespaces(rt, cid: str, inside: bool = True) -> None:
    """exec -d a sleep; the host compares its /proc/PID/ns/* with PID 1's.
    With ``inside``, the exec'd process also compares /proc/self/ns/* with
    /proc/1/ns/* (the container's own pid namespace: 1 is its PID 1)."""
    pid_file = os.path.join(rt.dir, f"{cid}-exec.pid")
    rt.ok("exec", "-d", "--pid-file", pid_file, cid, "sleep", "30")
    pid = int(open(pid_file).read())
    init = rt.state(cid)["pid"]
    try:
        assert _ns_of(pid) == _ns_of(init)
    finally:
        os.kill(pid, 9)
    if inside:
        script = "; ".join(f'[ "$(readlink /proc/1/ns/{n})" = "$(readlink /proc/self/ns/{n})" ] || echo {n}'
                           for n in PROC_NS.values())
        p = rt("exec", cid, "sh", "-c", script)
        assert p.returncode == 0 and p.stdout == "", p.stdout + p.stderr


def _without(config: dict, ns_type: str) -> dict:
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != ns_type]
    return config


def _with(config: dict, ns_type: str, path: str | None = None) -> dict:
    _without(config, ns_type)
    config["linux"]["namespaces"].append({"type": ns_type, **({"path": path} if path else {})})
    if ns_type == "user" and "uidMappings" not in config["linux"]:
        config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 300000, "size": 65536}]
        config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 300000, "size": 65536}]
    return config


@pytest.mark.parametrize("ns_type", list(PROC_NS))
@pytest.mark.parametrize("way", ["new", "path", "host"])
def test_exec_is_in_pid1_namespaces_however_they_were_made(rt, ns_type, way):
    if way == "host" and ns_type == "mount":
        pytest.skip("a mount namespace is required")
    if way == "host" and ns_type == "user" and rt.rootless:
        pytest.skip("rootless needs a user namespace")
    if way == "path" and ns_type in ("mount", "user"):
        pytest.skip(f"joining another container's {ns_type} namespace is not supported")
    if way == "host" and ns_type in ("pid", "ipc") and rt.rootless:
        pytest.skip("rootless: the host's /proc or /dev/mqueue cannot be mounted from a user namespace")
    if way == "path" and rt.rootless:
        pytest.skip("rootless: another container's namespaces belong to its own user namespace")
    config = rt.config(["sleep", "300"])
    if way == "new":
        _with(config, ns_type)
    elif way == "host":
        _without(config, ns_type)
    else:
        donor = rt.config(["sleep", "300"])
        _with(donor, ns_type)
        donor_id = _cid("donor")
        rt.ok("run", "-d", "-b", rt.bundle(config=donor), donor_id)
        donor_pid = rt.state(donor_id)["pid"]
        _with(config, ns_type, f"/proc/{donor_pid}/ns/{PROC_NS[ns_type]}")
    if ns_type == "uts" and way != "new":
        config.pop("hostname", None)  # a hostname needs a uts namespace of the container's own
    cid = _cid("c")
    rt.ok("run", "-d", "-b", rt.bundle(config=config), cid)
    assert_exec_in_pid1_namespaces(rt, cid, inside=ns_type != "pid" or way == "new")


@pytest.mark.parametrize("how", ["flag", "annotation"])
@pytest.mark.parametrize("mode", ["none", "bridge", "pasta", "slirp4netns"])
def test_exec_joins_a_network_namespace_added_by_the_network_mode(rt, mode, how):
    """Rootless configs have no network namespace, and --network none,
    bridge, pasta or slirp4netns adds one: exec must join it too."""
    if mode == "bridge" and rt.rootless or mode == "pasta" and not rt.rootless:
        pytest.skip(f"{mode} is {'root' if mode == 'bridge' else 'rootless'}-only")
    if mode in ("pasta", "slirp4netns") and shutil.which(mode) is None:
        pytest.skip(f"{mode} is not installed")
    config = _without(rt.config(["sleep", "300"]), "network")
    flags = []
    if how == "flag":
        flags = ["--network", mode]
    else:
        config["annotations"].update({"org.pyrun.network": mode})
    cid = _cid("c")
    rt.ok("run", "-d", *flags, "-b", rt.bundle(config=config), cid)
    assert_exec_in_pid1_namespaces(rt, cid)


@pytest.mark.parametrize("mode", ["bridge", "pasta", "slirp4netns"])
def test_exec_cannot_reach_the_hosts_loopback_the_container_cannot(rt, mode):
    """A secret served on the host's 127.0.0.1: the container's own process
    cannot reach it, and neither can a process exec'd into it."""
    if mode == "bridge" and rt.rootless or mode == "pasta" and not rt.rootless:
        pytest.skip(f"{mode} is {'root' if mode == 'bridge' else 'rootless'}-only")
    if shutil.which(mode) is None and mode != "bridge":
        pytest.skip(f"{mode} is not installed")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.1)
    port = server.getsockname()[1]
    got = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                got.append(conn.recv(100))
                conn.sendall(b"secret\n")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        probe = f"echo ping | timeout 3 nc 127.0.0.1 {port}; true"
        config = _without(rt.config(["sh", "-c", probe + "; sleep 300"]), "network")
        cid = _cid("c")
        rt.ok("run", "-d", "--network", mode, "-b", rt.bundle(config=config), cid)
        p = rt("exec", cid, "sh", "-c", probe, timeout=30)
        assert "secret" not in p.stdout, p.stdout
        time.sleep(0.2)
    finally:
        stop.set()
        t.join(5)
        server.close()
    assert got == [], got



def test_exec_that_arrives_before_the_process_runs_waits_for_it(rt):
    """``start`` (and ``run -d``) return once exec.fifo is read, a moment
    before PID 1 — pyrun's non-dumpable interpreter until then — calls
    execve(2). Rootless, the caller may not read a non-dumpable process's
    /proc/PID/ns/* (no CAP_SYS_PTRACE over an mm of the host's user
    namespace): an ``exec`` in that moment must wait for the execve, not
    fail with "cannot read /proc/PID/ns/pid: Permission denied" (seen as a
    flaky ``run -d`` + ``exec`` in docs/TOUR.md's test). Made deterministic:
    the exec starts while the container is still created, start follows."""
    rt.ok("create", "-b", rt.bundle(["sleep", "60"]), "c1")
    ex = rt.popen("exec", "c1", "echo", "in", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.5)
    rt.ok("start", "c1")
    out, err = ex.communicate(timeout=30)
    assert ex.returncode == 0 and out.strip() == "in", err


def test_start_returns_once_the_process_runs(rt):
    """``start`` reads exec.fifo until PID 1's execve(2) closes it (runc's
    start reads until its init closes the fifo): when it returns, PID 1 is
    the container's program, not pyrun's interpreter, so a rootless ``exec``
    or ``ps`` right after it finds the process. Raced before (start returned
    at the fifo's "0"; a test hook held PID 1 a second after that write
    while it was Python's: the write and the execve(2) are now the sealed
    pyrun-init's, a few instructions apart)."""
    rt.ok("create", "--no-init", "-b", rt.bundle(["sleep", "60"]), "c1")
    pid = rt.state("c1")["pid"]
    rt.ok("start", "c1")
    with open(f"/proc/{pid}/comm") as f:
        assert f.read().strip() == "sleep"
    assert rt.ok("exec", "c1", "echo", "in").strip() == "in"
