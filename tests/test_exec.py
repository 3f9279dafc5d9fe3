"""pyrun exec: one more process in a running container, in every one of
its namespaces, with its walls; rootful and rootless."""

from __future__ import annotations

import json
import os
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
