"""The click-free fast path takes only the exact forms it knows; anything
else falls through to the full CLI (pure logic, and one import check)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pyrun.commands import fastpath


@pytest.mark.parametrize("argv, ours", [
    (["state", "c1"], True),
    (["--root", "/r", "--log-format=json", "--log", "/l", "state", "c1"], True),
    (["kill", "--all", "c1", "9"], True),
    (["delete", "-f", "c1"], True),
    (["create", "--bundle", "/b", "--pid-file", "/p", "--console-socket", "/s", "c1"], True),
    (["run", "-d", "-b", "/b", "c1"], True),
    (["state", "--help"], False),
    (["--help"], False),
    (["state"], False),
    (["state", "a", "b"], False),
    (["create", "--bundle"], False),
    (["create", "--rootfs-mode", "direct", "--no-init", "--network=none", "c1"], True),
    (["create", "--rootfs-mode", "sideways", "c1"], False),
    (["create", "--network", "carrier-pigeon", "c1"], False),
    (["create", "--init", "--no-init", "c1"], False),
    (["exec", "c1", "true"], True),
    (["exec", "-t", "-e", "A=1", "--user", "1:2", "-g", "5", "c1", "sh", "-c", "x"], True),
    (["exec", "-td", "c1", "true"], False),  # combined short flags: click's
    (["exec", "-g", "wheel", "c1", "true"], False),
    (["exec", "--tty"], False),
    (["--log-format", "xml", "state", "c1"], False),
    (["create", "--preserve-fds", "x", "c1"], False),
    (["ps", "-f", "json", "c1"], True),
    (["ps", "-f", "xml", "c1"], False),
    (["list", "-q"], True),
    (["list", "c1"], False),
    (["pause", "c1"], True),
    (["resume", "c1"], True),
    (["events", "--stats", "c1"], True),
    (["events", "c1"], False),  # the streaming loop is click's
    (["update", "--pids-limit", "5", "-r", "/r.json", "c1"], True),
    (["update", "--cpu-quota", "1_0", "c1"], False),
    (["update", "--kernel-memory", "1M", "c1"], False),
    (["features"], True),
    (["features", "x"], False),
])
def test_fast_path_takes_only_what_it_knows(argv, ours, monkeypatch):
    seen = []
    monkeypatch.setattr(fastpath, "_dispatch", lambda *a: seen.append(a) or 0)
    monkeypatch.setattr("pyrun.log.log.configure", lambda *a: None)
    assert (fastpath.main(argv) is not None) == ours
    assert bool(seen) == ours


def _parsed(monkeypatch, argv):
    seen = []
    monkeypatch.setattr(fastpath, "_dispatch", lambda *a: seen.append(a) or 0)
    monkeypatch.setattr("pyrun.log.log.configure", lambda *a: None)
    assert fastpath.main(argv) == 0
    _root, command, opts, pos, _preserve, _ignore, _systemd = seen[0]
    return command, opts, pos


def test_exec_options_stop_at_the_id(monkeypatch):
    command, opts, pos = _parsed(monkeypatch, ["exec", "-e", "A=1", "--env=B=2", "-c", "CAP_NET_ADMIN",
                                               "-g", "5", "--additional-gids", "6", "-t", "c1",
                                               "ls", "-l", "--color", "-e", "x"])
    assert command == "exec" and pos == ["c1", "ls", "-l", "--color", "-e", "x"]
    assert opts == {"--env": ["A=1", "B=2"], "--cap": ["CAP_NET_ADMIN"], "--additional-gids": ["5", "6"],
                    "--tty": True}


def test_aliases_and_repeated_publish(monkeypatch):
    _command, opts, pos = _parsed(monkeypatch, ["run", "-b", "/b", "-p", "80:80", "--publish", "8080:80/udp",
                                               "-d", "--no-init", "c1"])
    assert opts == {"--bundle": "/b", "--publish": ["80:80", "8080:80/udp"], "--detach": True, "--no-init": True}
    assert pos == ["c1"]


def test_state_and_version_do_not_import_click(tmp_path):
    for argv, spec in ((["--version"], False), (["--root", str(tmp_path), "state", "nope"], False),
                       (["--root", str(tmp_path), "exec", "nope", "true"], None)):
        p = subprocess.run([sys.executable, "-X", "importtime", "-m", "pyrun", *argv],
                           capture_output=True, text=True, cwd=tmp_path)
        assert " click" not in p.stderr, argv
        if spec is False:
            assert "pyrun.config.spec" not in p.stderr, argv
            for module in ("pyrun.container.planning", "pyrun.container.create", "pyrun.container.lifecycle"):
                assert module not in p.stderr, argv  # state reads through pyrun.container.state alone


# ------------------------------------ the commands of every task: fast = click
#
# ps, pause, resume, list, events --stats, update and features take the
# fast path (containerd calls them for every task); each must print, fail
# and exit exactly as its click command does, for every flag and for bad
# input. Each case runs both ways against the same containers.

CLICK = "import sys; sys.argv[0] = 'pyrun'; from pyrun.commands.cli import main; main()"

TASK_CASES = [
    ["ps", "{c}"], ["ps", "-f", "json", "{c}"], ["ps", "--format=json", "{c}"], ["ps", "{c}", "--format", "table"],
    ["ps", "{red}"], ["ps", "-f", "json", "{red}"], ["ps", "nope"], ["ps", "-f", "xml", "{c}"], ["ps"],
    ["ps", "{c}", "{c}"], ["ps", "--bogus", "{c}"], ["ps", "{c}", "-o", "pid,comm"], ["ps", "{c}", "-o", "comm"],
    ["ps", "-f", "json", "{c}", "-o", "pid"],
    ["list"], ["list", "-q"], ["list", "--quiet"], ["list", "-f", "json"], ["list", "--format=table"],
    ["list", "-q", "-f", "json"], ["list", "extra"], ["list", "--format"],
    ["events", "--stats", "{c}"], ["events", "--stats", "--interval", "1s", "{c}"],
    ["events", "--stats", "--interval", "bogus", "{c}"], ["events", "--stats", "--interval", " 1.5ms ", "{c}"],
    ["events", "--stats", "--interval", "\u0661s", "{c}"], ["events", "--stats", "--interval", "1.s", "{c}"],
    ["events", "--stats", "nope"], ["events", "--stats"],
    ["update", "--pids-limit", "10", "{c}"], ["update", "--memory", "1M", "{c}"],
    ["update", "--memory", "bogus", "{c}"], ["update", "--cpu-quota", "x", "{c}"],
    ["update", "--cpu-share", "-5", "{c}"], ["update", "--cpu-quota", "+5", "{c}"],
    ["update", "-r", "{dir}/missing.json", "{c}"], ["update", "-r", "{dir}/bad.json", "{c}"],
    ["update", "-r", "{dir}/list.json", "{c}"], ["update", "--resources={dir}/bom.json", "{c}"],
    ["update", "-r", "{dir}/ok.json", "{c}"], ["update", "--cpuset-cpus", "0", "nope"], ["update", "{c}"],
    ["pause", "nope"], ["resume", "{c}"], ["pause"], ["resume", "nope", "x"],
    ["features"], ["features", "x"],
]
FILES = {"bad.json": "{", "list.json": "[]", "bom.json": "\ufeff{}", "ok.json": '{"pids": {"limit": 20}}'}


def _both(rt, args: list[str], input: str | None = None):
    """(fast, click): (status, stdout, stderr) of pyrun ARGS each way; the
    fast run is made with -X importtime, which also proves it took no click."""
    kw = dict(env=rt.env, cwd=rt.dir, capture_output=True, text=True, timeout=60, input=input,
              stdin=None if input is not None else subprocess.DEVNULL, **rt._user_kw())
    python = rt.prefix[0]
    fast = subprocess.run([python, "-X", "importtime", *rt.prefix[1:], "--root", rt.root, *args], **kw)
    slow = subprocess.run([python, "-c", CLICK, "--root", rt.root, *args], **kw)
    timing = [line for line in fast.stderr.splitlines(True) if line.startswith("import time:")]
    fast_err = "".join(line for line in fast.stderr.splitlines(True) if not line.startswith("import time:"))
    took_click = any(line.split("|")[-1].strip() == "click" for line in timing)
    return (fast.returncode, fast.stdout, fast_err, took_click), (slow.returncode, slow.stdout, slow.stderr)


def _comparable(args, result):
    code, out, err = result[:3]
    if args[0] == "events" and code == 0:  # the statistics move between the two runs: their shape does not
        event = json.loads(out)
        event["data"] = sorted(event["data"])
        out = event
    return code, out, err


def test_task_commands_print_fail_and_exit_as_click_does(rt):
    import os

    ids = {"c": f"fp-{os.getpid()}", "red": f"fpred-{os.getpid()}", "dir": rt.dir}
    rt.ok("run", "-d", "-b", rt.bundle(["sleep", "300"]), ids["c"])
    rt.ok("run", "-d", "-b", rt.bundle(["sh", "-c", "sleep 300 # \x1b[31mred\x1b[0m \x1b]0;title\x07"]), ids["red"])
    for name, text in FILES.items():
        with open(os.path.join(rt.dir, name), "w") as f:
            f.write(text)
        os.chmod(os.path.join(rt.dir, name), 0o644)
    mismatches, fast_ones = [], 0
    for case in TASK_CASES:
        args = [a.format(**ids) for a in case]
        fast, slow = _both(rt, args)
        fast_ones += not fast[3]
        if _comparable(args, fast) != _comparable(args, slow):
            mismatches.append((args, fast[:3], slow))
    fast, slow = _both(rt, ["update", "-r", "-", ids["c"]], input='{"pids": {"limit": 30}}')
    if fast[:3] != slow:
        mismatches.append((["update", "-r", "-"], fast[:3], slow))
    assert not mismatches, "\n".join(f"{a}:\n  fast  {f}\n  click {s}" for a, f, s in mismatches)
    assert fast_ones >= 30, f"only {fast_ones} of the cases took the fast path"


def test_pause_and_resume_as_click_does(rt):
    """The same sequence, fast and through click: pause, pause again (an
    error), resume, resume again (an error); the state in between."""
    import os

    cid = f"fpp-{os.getpid()}"
    rt.ok("run", "-d", "-b", rt.bundle(["sleep", "300"]), cid)
    kw = dict(env=rt.env, cwd=rt.dir, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
              **rt._user_kw())
    results = {}
    for way, prefix in (("fast", rt.prefix), ("click", [rt.prefix[0], "-c", CLICK])):
        seq = []
        for args in (["pause", cid], ["pause", cid], ["state", cid], ["resume", cid], ["resume", cid]):
            p = subprocess.run(prefix + ["--root", rt.root, *args], **kw)
            seq.append(json.loads(p.stdout)["status"] if args[0] == "state" and p.returncode == 0
                       else (p.returncode, p.stdout, p.stderr))
        results[way] = seq
    assert results["fast"] == results["click"]


def test_duration_is_cli_duration():
    from pyrun.commands import cli
    from pyrun.errors import PyrunError

    for text in ["5s", "500ms", "1m", "2", " 3s ", "1.5s", "1.s", ".5s", "s", "", "5 s", "5sm", "\u0661\u0662ms",
                 "-1s", "1e3", "5h", "0", "1..2s", "\u00b2s"]:
        def run(f):
            try:
                return f(text)
            except PyrunError as e:
                return str(e)
        assert run(fastpath._duration) == run(cli._duration), text


def test_state_and_kill_read_the_freezer_without_a_cgroup_backend(rt):
    """``state`` (engines call it all the time), ``kill`` and ``list`` ask
    whether the cgroup is frozen: one file of the record's directories, not
    a cgroup backend (cgroup v1's parses /proc/self/mountinfo to find its
    hierarchies). A paused container still says so."""
    cid = f"fpfrz-{os.getpid()}"
    rt.ok("run", "-d", "-b", rt.bundle(["sleep", "30"]), cid)
    try:
        kw = dict(env=rt.env, cwd=rt.dir, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                  **rt._user_kw())
        for args in (["state", cid], ["kill", cid, "CONT"], ["list"]):
            p = subprocess.run([rt.prefix[0], "-X", "importtime", *rt.prefix[1:], "--root", rt.root, *args], **kw)
            assert p.returncode == 0, p.stderr
            modules = [line.split("|")[-1].strip() for line in p.stderr.splitlines() if line.startswith("import time:")]
            assert not {"pyrun.cgroups.v1", "pyrun.cgroups.v2", "pyrun.cgroups.systemd"} & set(modules), (args, modules)
        if json.loads(rt.ok("state", cid)).get("status") and rt("pause", cid).returncode == 0:
            assert json.loads(rt.ok("state", cid))["status"] == "paused"
            assert [s["status"] for s in json.loads(rt.ok("list", "-f", "json")) if s["id"] == cid] == ["paused"]
            rt.ok("resume", cid)
            assert json.loads(rt.ok("state", cid))["status"] == "running"
    finally:
        rt.ok("delete", "--force", cid)


def test_the_installed_command_ignores_the_callers_python_environment(tmp_path):
    """The ``pyrun`` command beside the interpreter (``make build`` writes
    it with tools/entry-script.py) starts Python with -I -S: a
    sitecustomize.py on the caller's PYTHONPATH does not run in it (run as
    root by an engine, it would run as root), and no command pays for
    site's .pth files."""
    script = os.path.join(os.path.dirname(sys.executable), "pyrun")
    if not os.path.exists(script):
        pytest.skip("no installed pyrun command beside this interpreter")
    (tmp_path / "sitecustomize.py").write_text("open(__file__ + '.ran', 'w').close()\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path), PYTHONPROFILEIMPORTTIME="1")
    p = subprocess.run([script, "--version"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0 and p.stdout.startswith("pyrun version "), p.stderr
    assert not (tmp_path / "sitecustomize.py.ran").exists()
    assert "import time:" not in p.stderr  # -I: no PYTHON* variable is read
    p = subprocess.run([script, "--root", str(tmp_path), "list", "--bogus"], env=env, capture_output=True, text=True)
    assert p.returncode == 2 and "No such option '--bogus'" in p.stderr, p.stderr  # click's path finds click


def test_features_reads_no_root_as_click_and_runc(tmp_path):
    """features reads no container: a --root that is not a directory is no
    error to it, through click, to runc, and (since it skips --root) on the
    fast path."""
    import shutil

    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    fast = subprocess.run([sys.executable, "-m", "pyrun", "--root", str(not_a_dir), "features"],
                          capture_output=True, text=True, cwd=tmp_path)
    slow = subprocess.run([sys.executable, "-c", CLICK, "--root", str(not_a_dir), "features"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert (fast.returncode, fast.stdout, fast.stderr) == (slow.returncode, slow.stdout, slow.stderr)
    assert fast.returncode == 0 and json.loads(fast.stdout)["ociVersionMax"], fast.stderr
    if shutil.which("runc"):
        assert subprocess.run(["runc", "--root", str(not_a_dir), "features"], capture_output=True).returncode == 0
