"""The six OCI hooks: when, where (namespaces), with what state, and what
a failure does."""

from __future__ import annotations

import json
import os

import pytest


def sh(script: str, env: list[str] | None = None, timeout: int | None = None) -> dict:
    hook = {"path": "/bin/sh", "args": ["sh", "-c", script], "env": env or []}
    if timeout:
        hook["timeout"] = timeout
    return hook


def recorder(out: str, kind: str) -> dict:
    """A hook that saves its stdin, uts namespace and env to out/kind.*"""
    return sh(f"cat > {out}/{kind}.json; readlink /proc/self/ns/uts > {out}/{kind}.host; echo \"$FOO:$HOME\" > {out}/{kind}.env",
              env=["FOO=bar"])


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def test_all_six_hooks_run_where_and_when_the_spec_says(rt):
    out = rt.dir
    config = rt.config(["sh", "-c", "cat /tmp/startContainer.json; echo; hostname"])
    config["hooks"] = {
        kind: [recorder(out, kind)] for kind in ("prestart", "createRuntime", "createContainer",
                                                   "poststart", "poststop")}
    # startContainer runs in the container's root: its /bin/sh, its /tmp
    config["hooks"]["startContainer"] = [sh("cat > /tmp/startContainer.json")]
    p = rt("run", "-b", rt.bundle(config=config), "c1")
    assert p.returncode == 0, p.stderr
    host = os.readlink("/proc/self/ns/uts")
    states = {}
    for kind in ("prestart", "createRuntime", "createContainer", "poststart", "poststop"):
        states[kind] = json.loads(read(f"{out}/{kind}.json"))
        assert states[kind]["id"] == "c1" and states[kind]["bundle"].startswith(rt.dir)
        assert read(f"{out}/{kind}.env") == "bar:", kind  # exactly the hook's env
    for kind in ("prestart", "createRuntime", "createContainer"):
        assert states[kind]["status"] == "created" and states[kind]["pid"] > 0
    assert states["poststart"]["status"] == "running"
    assert states["poststop"]["status"] == "stopped" and "pid" not in states["poststop"]
    # runtime namespace vs container namespace
    assert read(f"{out}/createRuntime.host") == read(f"{out}/prestart.host") == host
    assert read(f"{out}/createContainer.host") != host  # the container's uts namespace
    start_state, hostname = p.stdout.strip().splitlines()
    assert json.loads(start_state)["status"] == "created" and hostname == "pyrun-test"


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_failing_create_hook_aborts_create_and_cleans_up(rt, residue, kind):
    config = rt.config(["true"])
    config["hooks"] = {kind: [sh("exit 0"), sh("echo hook-says-no >&2; exit 3")]}
    p = rt("create", "-b", rt.bundle(config=config), "c1")
    assert p.returncode == 1, p.stderr
    assert f"hooks.{kind}[1] /bin/sh: exit status 3" in p.stderr and "hook-says-no" in p.stderr
    residue.check()


def test_hook_timeout_kills_it_and_fails(rt, residue):
    config = rt.config(["true"])
    config["hooks"] = {"createRuntime": [sh("sleep 30", timeout=1)]}
    p = rt("run", "-b", rt.bundle(config=config), "c1", timeout=20)
    assert p.returncode == 1 and "hooks.createRuntime[0] /bin/sh: timed out after 1 s" in p.stderr, p.stderr
    residue.check()


def test_failing_start_container_hook_fails_start_and_stops_the_container(rt):
    config = rt.config(["sh", "-c", "echo must-not-run"])
    config["hooks"] = {"startContainer": [sh("exit 4")]}
    rt.ok("create", "-b", rt.bundle(config=config), "c1")
    p = rt("start", "c1")
    assert p.returncode == 1 and "hooks.startContainer[0] /bin/sh: exit status 4" in p.stderr, p.stderr
    assert "must-not-run" not in p.stdout
    rt.wait_status("c1", "stopped")
    rt.ok("delete", "c1")


def test_poststart_and_poststop_failures_are_warnings(rt):
    config = rt.config(["echo", "ran"])
    config["hooks"] = {"poststart": [sh("exit 1")], "poststop": [sh("exit 2"), sh(f"touch {rt.dir}/second")]}
    p = rt("run", "-b", rt.bundle(config=config), "c1")
    assert p.returncode == 0 and p.stdout.strip() == "ran", p.stderr
    assert "warning: hooks.poststart[0] /bin/sh: exit status 1" in p.stderr
    assert "warning: hooks.poststop[0] /bin/sh: exit status 2" in p.stderr
    assert os.path.exists(f"{rt.dir}/second")  # the remaining hooks still run
    assert os.listdir(rt.root) == []


def test_missing_hook_binary_is_a_clear_error(rt, residue):
    config = rt.config(["true"])
    config["hooks"] = {"createRuntime": [{"path": "/no/such/hook"}]}
    p = rt("run", "-b", rt.bundle(config=config), "c1")
    assert p.returncode == 1 and "hooks.createRuntime[0] /no/such/hook: No such file or directory" in p.stderr
    residue.check()
