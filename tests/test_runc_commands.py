"""The commands around a running container print, accept and do what runc's
do (issue 23, items 8 and 14): ``kill ID 0``, ``ps`` through ps(1),
``--version``'s lines, the bytes of every JSON output, ``--debug --log``
with ``exec``, and paused containers (``delete --force``, ``exec
--ignore-paused``).

Every scenario runs with runc beside pyrun, in the same test, on `runc
spec` bundles (tests/test_runc_semantics.Bundles), rootful and rootless;
where runc itself cannot (rootless on this cgroup v1 host: no ps, no
pause), that is asserted too, so the day it can the test says so.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time

import pytest
from conftest import _state_letter
from test_runc_semantics import RUNC, rb  # noqa: F401 (rb: the fixture)

pytestmark = pytest.mark.skipif(RUNC is None, reason="runc is not installed (apt-get install runc)")


def _start_both(rt, rb, args=("sleep", "300"), edit=None):
    """``run -d`` of the same config under pyrun and runc: (pyrun id, runc id)."""
    pb, rbundle = rb.make(list(args), edit), rb.make(list(args), edit)
    pid, rid = rb.cid("pyrun"), rb.cid("runc")
    p = rt("run", "-d", "-b", pb, pid)
    assert p.returncode == 0, p.stderr
    r = rb.runc("run", "-d", "-b", rbundle, rid)
    assert r.returncode == 0, r.stderr
    return pid, rid


def go_json(obj, indent: str | None = None) -> str:
    """What Go's encoding/json writes for ``obj`` (the reference, written
    here apart from pyrun's): no spaces unless indented, HTML characters
    escaped, UTF-8 as is."""
    if indent is None:
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    else:
        text = json.dumps(obj, indent=indent, ensure_ascii=False)
    for c, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(c, esc)
    return text


# ------------------------------------------------------------------ kill 0

def test_kill_signal_0_is_accepted_as_runc(rt, rb):
    """Signal 0 asks "does it run?": runc says yes with status 0."""
    pid, rid = _start_both(rt, rb)
    r = rb.runc("kill", rid, "0")
    p = rt("kill", pid, "0")
    assert r.returncode == 0, r.stderr
    assert (p.returncode, p.stderr) == (0, ""), p.stderr
    assert rt.state(pid)["status"] == "running"  # nothing was signalled


# ------------------------------------------------------------------ ps

def test_ps_runs_ps1_with_the_given_arguments_and_keeps_the_containers_lines(rt, rb):
    pid, rid = _start_both(rt, rb)
    host_pid = rt.state(pid)["pid"]
    cases = [[], ["-e", "-x"], ["-o", "pid,comm"], ["-e", "-o", "pid,args"]]
    for args in cases:
        p = rt("ps", pid, *args)
        assert p.returncode == 0, (args, p.stderr)
        lines = p.stdout.splitlines()
        want_header = subprocess.run(["ps", *(args or ["-ef"])], capture_output=True, text=True).stdout
        assert lines[0] == want_header.splitlines()[0], args
        assert len(lines) == 2 and str(host_pid) in lines[1].split(), (args, p.stdout)
        r = rb.runc("ps", rid, *args)
        if rt.rootless:
            # runc 1.1 rootless on a cgroup v1 host has no cgroup to list
            assert r.returncode == 1 and "unable to get all container pids" in r.stderr, r.stderr
            continue
        assert r.returncode == 0, r.stderr
        rlines = r.stdout.splitlines()
        assert rlines[0] == lines[0] and len(rlines) == 2, r.stdout
        # the same columns, the same command; only the pids (and ps's timing) differ
        rfields, fields = rlines[1].split(), lines[1].split()
        assert len(rfields) == len(fields) and rfields[-1] == fields[-1], (rlines, lines)
    p = rt("ps", pid, "-o", "comm")  # no PID column: runc's words
    assert p.returncode == 1 and "couldn't find PID field in ps output" in p.stderr, p.stderr
    if not rt.rootless:
        r = rb.runc("ps", rid, "-o", "comm")
        assert r.returncode == 1 and "couldn't find PID field in ps output" in r.stderr


def test_ps_gives_ps1_no_fd_of_its_caller_and_reads_its_stderr_too(rt):
    """ps(1) runs with stdin /dev/null, stdout and stderr into one pipe, and
    no other fd (as subprocess's close_fds did, before posix_spawnp): a ps
    on PATH that shows its fds and fails shows them in pyrun's error."""
    pid = f"psfd-{os.getpid()}"
    rt.ok("run", "-d", "-b", rt.bundle(["sleep", "60"]), pid)
    bindir = os.path.join(rt.dir, "fake-ps")
    os.makedirs(bindir, exist_ok=True)
    os.chmod(bindir, 0o755)
    with open(os.path.join(bindir, "ps"), "w") as f:
        f.write("#!/bin/sh\necho \"fds $(ls /proc/$$/fd | tr '\\n' ' ')\" >&2\n"
                "readlink /proc/$$/fd/0\nexit 3\n")
    os.chmod(os.path.join(bindir, "ps"), 0o755)
    r, w = os.pipe()
    leaked = os.dup2(w, 77)  # inheritable: the caller's fd, which pyrun must not hand on
    os.close(w)
    w = leaked
    try:
        p = subprocess.run(rt.cmd("ps", pid), env=dict(rt.env, PATH=f"{bindir}:{rt.env.get('PATH', '/usr/bin:/bin')}"),
                           cwd=rt.dir, capture_output=True, text=True, timeout=60, pass_fds=(w,),
                           stdin=subprocess.DEVNULL, **rt._user_kw())
    finally:
        os.close(r)
        os.close(w)
    assert p.returncode == 1, p.stderr
    fds = p.stderr.split("exit status 3: fds ", 1)[1].split("\n", 1)[0].split()
    assert "0" in fds and "77" not in fds and "/dev/null" in p.stderr, p.stderr


# ------------------------------------------------------------------ --version

def test_version_prints_runcs_lines(rt):
    r = subprocess.run([RUNC, "--version"], capture_output=True, text=True, check=True).stdout
    p = rt.ok("--version")
    lines = p.splitlines()
    assert re.fullmatch(r"pyrun version \S+", lines[0]), p
    assert lines[1].startswith("commit: ") and len(lines[1]) > len("commit: "), p
    assert lines[2] == "spec: 1.3.0", p
    runc_seccomp = next(line for line in r.splitlines() if line.startswith("libseccomp: "))
    assert runc_seccomp in lines, (p, r)  # the same library on the same host
    assert [line.split(":")[0] for line in r.splitlines()][1:3] == ["commit", "spec"]


# ------------------------------------------------------------------ JSON bytes

def _normalised(text: str, values: dict) -> str:
    text = re.sub(r'("created":\s*)"[^"]+"', r'\1"T"', text)
    text = re.sub(r'("pid":\s*)\d+', r'\1PID', text)
    for value, name in values.items():
        text = text.replace(value, name)
    return text


def test_json_outputs_are_the_bytes_runc_writes(rt, rb):
    """state (indented, no newline at the end), list --format json, ps
    --format json and events (an Encoder's compact line): runc's bytes,
    once the values that must differ (ids, pids, paths, times, versions)
    are named alike."""
    pid, rid = _start_both(rt, rb)
    ps, rs = rt.state(pid), json.loads(rb.runc("state", rid).stdout)
    names = {}
    for s, who in ((ps, "P"), (rs, "R")):
        names[s["bundle"]] = "BUNDLE"
        names[s["rootfs"]] = "ROOTFS"
        names[s["id"]] = "ID"
        names[s["ociVersion"]] = "VERSION"
    pstate, rstate = rt.ok("state", pid), rb.runc("state", rid).stdout
    assert not rstate.endswith("\n") and rstate == go_json(json.loads(rstate), indent=2)
    norm = names
    assert _normalised(pstate, norm) == _normalised(rstate, norm)
    plist, rlist = rt.ok("list", "--format", "json"), rb.runc("list", "--format", "json").stdout
    assert rlist == go_json(json.loads(rlist)) + "\n"
    assert _normalised(plist, norm) == _normalised(rlist, norm)
    pps, rps = rt.ok("ps", "--format", "json", pid), rb.runc("ps", "--format", "json", rid)
    assert pps == f"[{ps['pid']}]\n"
    if not rt.rootless:
        assert rps.stdout == f"[{rs['pid']}]\n"
    events = []
    for p in (rt("events", "--stats", pid), rb.runc("events", "--stats", rid)):
        if p.returncode != 0:
            assert rt.rootless, p.stderr  # pyrun: no cgroup of its own rootless on cgroup v1
            continue
        assert p.stdout.startswith('{"type":"stats","id":"'), p.stdout[:80]
        assert p.stdout == go_json(json.loads(p.stdout)) + "\n"
        events.append(json.loads(p.stdout)["data"])
    if len(events) == 2:
        _same_layout(events[0], events[1], "data")
    # an empty list is Go's nil slice: null
    rt.ok("delete", "--force", pid)
    rb.runc("delete", "--force", rid)
    assert rt.ok("list", "--format", "json") == rb.runc("list", "--format", "json").stdout == "null\n"


# Fields runc's types.Stats tags omitempty: present in one output, absent in
# the other only when their value is zero there.
OMITEMPTY = {"total", "percpu", "percpu_kernel", "percpu_user", "periods", "throttledPeriods", "throttledTime",
             "cpus", "mems", "cache", "usage", "max", "current", "limit", "raw", "ioServiceBytesRecursive",
             "ioServicedRecursive", "major", "minor", "op", "value"}


def _same_layout(p, r, where: str) -> None:
    """The same keys in the same order at every level (values apart)."""
    if isinstance(p, dict) and isinstance(r, dict):
        common_p, common_r = [k for k in p if k in r], [k for k in r if k in p]
        assert common_p == common_r, (where, list(p), list(r))
        assert set(p) ^ set(r) <= OMITEMPTY, (where, set(p) ^ set(r))
        if where == "data.memory.raw":
            assert list(p) == sorted(p), where  # a Go map: sorted keys
        for k in common_p:
            _same_layout(p[k], r[k], f"{where}.{k}")
    else:
        assert type(p) is type(r) or {type(p), type(r)} <= {int, type(None)}, (where, p, r)


def test_features_and_spec_are_laid_out_as_runcs(rt, tmp_path):
    """features: an Encoder indented by four spaces (newline at the end);
    spec: tabs, no newline at the end, as runc's config.json."""
    r = subprocess.run([RUNC, "features"], capture_output=True, text=True, check=True).stdout
    p = rt.ok("features")
    for out in (r, p):
        assert out == go_json(json.loads(out), indent=4) + "\n"
    d = os.path.join(rt.dir, "spec-layout")
    for who in ("pyrun", "runc"):
        os.makedirs(os.path.join(d, who))
        rt._chown(os.path.join(d, who))
    rt.ok("spec", "-b", os.path.join(d, "pyrun"))
    subprocess.run([RUNC, "spec", "-b", os.path.join(d, "runc")], check=True, **rt._user_kw())
    for who in ("pyrun", "runc"):
        with open(os.path.join(d, who, "config.json")) as f:
            text = f.read()
        assert text == go_json(json.loads(text), indent="\t"), who


# ------------------------------------------------------------------ --debug --log exec

def _seccomp_nnp(config):
    config["process"]["noNewPrivileges"] = True
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                  "syscalls": [{"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"}]}


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_debug_log_exec_works_as_runcs(rt, rb, fmt):
    """With noNewPrivileges the filter is loaded last, after every fd but the
    ones passed on is closed: --debug logged that step to the closed --log
    (EBADF); json lines were made by a module imported after setns(2)."""
    pid, rid = _start_both(rt, rb, edit=_seccomp_nnp)
    for who, call, cid in (("pyrun", rt, pid), ("runc", rb.runc, rid)):
        log = os.path.join(rt.dir, f"{who}-{fmt}.log")
        p = call("--debug", "--log", log, "--log-format", fmt, "exec", cid, "echo", "ran")
        assert (p.returncode, p.stdout) == (0, "ran\n"), (who, p.stderr)
        with open(log) as f:
            lines = f.read().splitlines()
        if fmt == "json":
            for line in lines:
                assert line == go_json(json.loads(line)), (who, line)
        assert not any("level=error" in line or '"level":"error"' in line for line in lines), (who, lines)


# ------------------------------------------------------------------ paused containers

def _pause_both(rt, rb):
    pid, rid = _start_both(rt, rb)
    p, r = rt("pause", pid), rb.runc("pause", rid)
    if rt.rootless:  # no cgroup to freeze, for either, on this host
        assert p.returncode == r.returncode == 1, (p.stderr, r.stderr)
        pytest.skip("rootless on a cgroup v1 host: neither runc nor pyrun can pause")
    assert p.returncode == 0, p.stderr
    assert r.returncode == 0, r.stderr
    return pid, rid


def _freezer_dirs(pid_of_container: int) -> list[str]:
    with open(f"/proc/{pid_of_container}/cgroup") as f:
        return [line.split(":", 2)[2].strip() for line in f if ":freezer:" in line]


def test_delete_force_of_a_paused_container_kills_and_thaws_as_runc(rt, rb):
    pid, rid = _pause_both(rt, rb)
    for who, call, cid in (("pyrun", rt, pid), ("runc", rb.runc, rid)):
        host_pid = json.loads(call("state", cid).stdout)["pid"]
        freezer = "/sys/fs/cgroup/freezer" + _freezer_dirs(host_pid)[0]
        t0 = time.monotonic()
        p = call("delete", "--force", cid)
        assert p.returncode == 0, (who, p.stderr)
        assert time.monotonic() - t0 < 5, who
        assert _state_letter(host_pid) in (None, "Z"), who  # gone (a zombie until init reaps it)
        assert not os.path.exists(freezer), (who, freezer)  # nothing left, frozen or not
        assert call("state", cid).returncode == 1


def test_exec_into_a_paused_container_needs_ignore_paused_and_runs_once_resumed(rt, rb):
    pid, rid = _pause_both(rt, rb)
    for who, call, cid in (("pyrun", rt, pid), ("runc", rb.runc, rid)):
        p = call("exec", cid, "true")
        assert p.returncode == 255, who
        assert "cannot exec in a paused container (use --ignore-paused to override)" in p.stderr, (who, p.stderr)
        done = {}
        t = threading.Thread(target=lambda: done.setdefault(
            "p", call("exec", "--ignore-paused", cid, "echo", "ran")))
        t.start()
        time.sleep(1.0)
        assert "p" not in done, (who, done)  # it waits in the frozen cgroup
        assert json.loads(call("state", cid).stdout)["status"] == "paused"
        assert call("resume", cid).returncode == 0
        t.join(30)
        assert (done["p"].returncode, done["p"].stdout) == (0, "ran\n"), (who, done["p"].stderr)


def test_hooks_read_the_state_bytes_runc_writes(rt, rb):
    """A hook's stdin (createRuntime: pid set; poststop: no pid) is runc's
    json.Marshal of specs.State: compact, pid before bundle."""
    outs = {}
    for who in ("pyrun", "runc"):
        d = rt.mkdir(f"hooks-{who}")

        def edit(config, d=d):
            config["hooks"] = {kind: [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {d}/{kind}"]}]
                               for kind in ("createRuntime", "poststop")}
        b = rb.make(["sleep", "300"], edit)
        cid = rb.cid(who)
        call = rt if who == "pyrun" else rb.runc
        p = call("create", "-b", b, cid)
        assert p.returncode == 0, (who, p.stderr)
        state = json.loads(call("state", cid).stdout)
        assert call("delete", "--force", cid).returncode == 0
        for kind in ("createRuntime", "poststop"):
            with open(os.path.join(d, kind)) as f:
                text = f.read()
            for value, name in ((state["bundle"], "B"), (cid, "ID"), (state["ociVersion"], "V"),
                                (str(state["pid"]), "PID")):
                text = text.replace(value, name)
            if who == "runc" and kind == "createRuntime":
                # The one difference, on purpose: createRuntime hooks read
                # "created", the spec's status after step 2 of the lifecycle,
                # as crun sends it (test_runc_parity.test_create_hooks_read_status_created)
                assert '"status":"creating"' in text, text
                text = text.replace('"status":"creating"', '"status":"created"')
            outs.setdefault(kind, []).append(text)
    for kind, (p, r) in outs.items():
        assert p == r, (kind, p, r)


def _tabwriter(rows: list[list[str]]) -> str:
    """Go's text/tabwriter.NewWriter(out, 12, 1, 3, ' ', 0) as runc's list
    uses it: every cell but the last padded to max(12, widest + 3)."""
    widths = [max(12, max(len(r[i]) for r in rows) + 3) for i in range(len(rows[0]) - 1)]
    return "".join("".join(c.ljust(w) for c, w in zip(r, widths)) + r[-1] + "\n" for r in rows)


def test_list_table_is_laid_out_as_runcs_and_created_is_rfc3339nano(rt, rb):
    pid, rid = _start_both(rt, rb)
    for call in (rt, rb.runc):
        table = call("list").stdout
        states = json.loads(call("list", "--format", "json").stdout)
        rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
        rows += [[s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"]] for s in states]
        assert table == _tabwriter(rows), (table, rows)
        for s in states:  # Go's time.RFC3339Nano: no trailing zeros in the fraction
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z", s["created"]), s["created"]
    from pyrun.container.state import now_rfc3339

    stamps = {now_rfc3339() for _ in range(2000)}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z", s) for s in stamps)
    assert any(len(s) < len("2026-01-01T00:00:00.123456789Z") for s in stamps)  # some ended in 0
