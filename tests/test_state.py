"""State that survives kills, races, bad hosts and full disks (issue 16), and
writable layers off the state root (issue 12, item 10).

The kill tests use pyrun's test-only fault point: with PYRUN_TEST_HOOKS=1,
PYRUN_TEST_KILL_AT=<step> SIGKILLs the runtime as the ``--debug`` step of
that name begins (pyrun.log.kill_point), whichever process reaches it.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import time
import uuid

import pytest
from conftest import Residue

KILLED = -9


def _with_env(rt, extra: dict, *args, **kw):
    saved = rt.env
    rt.env = {**saved, **extra}
    try:
        return rt(*args, **kw)
    finally:
        rt.env = saved


def _kill_at(rt, step: str, *args, **kw):
    return _with_env(rt, {"PYRUN_TEST_HOOKS": "1", "PYRUN_TEST_KILL_AT": step}, *args, **kw)


def _concurrently(rt, commands: list[list[str]], timeout: float = 300) -> list[tuple[int, str]]:
    """Run pyrun commands at once; (exit status, stderr) of each. Files, not
    pipes: create hands its stdio to the container, which keeps it open."""
    import tempfile

    errs = [tempfile.TemporaryFile("w+") for _ in commands]
    ps = [rt.popen(*cmd, stdout=subprocess.DEVNULL, stderr=err) for cmd, err in zip(commands, errs)]
    out = []
    for p, err in zip(ps, errs):
        code = p.wait(timeout=timeout)
        err.seek(0)
        out.append((code, err.read()))
        err.close()
    return out


def _one_line(p) -> str:
    assert "Traceback" not in p.stderr, p.stderr
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, p.stderr
    return lines[0]


def _cid() -> str:
    """Ids unique on the host: the rootful v1 freezer cgroup is named after
    the id, and other test runs on this machine use c1."""
    return "st-" + uuid.uuid4().hex[:10]


def _marked(rt, marker: str) -> list[int]:
    """Live processes whose command line names this test: the runtime's
    stages (--root) and the container's process (the marker)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
            with open(f"/proc/{name}/stat") as f:
                letter = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if letter != "Z" and (marker in cmd or rt.root in cmd):
            out.append(int(name))
    return out


def _cgroups_of(cid: str) -> list[str]:
    """The container's cgroup in every hierarchy (v2 and each v1 one)."""
    return glob.glob(f"/sys/fs/cgroup/pyrun/{cid}") + glob.glob(f"/sys/fs/cgroup/*/pyrun/{cid}")


def _network_of(rt, cid: str) -> list[str]:
    """veth, nftables rules and lease of a bridge container (keyed by its state dir)."""
    if rt.rootless:
        return []
    from pyrun.net import bridge

    key = os.path.join(rt.root, cid)
    left = []
    if os.path.exists(f"/sys/class/net/{bridge.veth_name(key)}"):
        left.append(f"veth {bridge.veth_name(key)}")
    if shutil.which("nft"):
        rules = subprocess.run(["nft", "list", "table", "ip", "pyrun"], capture_output=True, text=True).stdout
        if bridge._comment(key) in rules:
            left.append("nftables rule")
    try:
        with open(bridge.LEASES) as f:
            if key in json.load(f):
                left.append("lease")
    except (FileNotFoundError, ValueError):
        pass
    return left


def _assert_nothing_left(rt, cid: str, marker: str, layers_before: set[str]) -> None:
    deadline = time.monotonic() + 10
    while _marked(rt, marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _marked(rt, marker) == [], "processes left behind"
    assert os.listdir(rt.root) == [], f"state left behind: {os.listdir(rt.root)}"
    layers = set(os.listdir(rt.layers)) if os.path.isdir(rt.layers) else set()
    # this container's (as root the layers root is host-wide: other runs use it too)
    left = {name for name in layers - layers_before if name.startswith(f"{cid}.")}
    assert left == set(), f"layer dirs left behind: {left}"
    assert _cgroups_of(cid) == [], "cgroups left behind"
    assert _network_of(rt, cid) == [], "network left behind"
    with open("/proc/self/mountinfo") as f:
        mounts = [line for line in f if rt.root in line or rt.dir in line]
    assert mounts == [], mounts


def _layers(rt) -> set[str]:
    return set(os.listdir(rt.layers)) if os.path.isdir(rt.layers) else set()


def _steps(stderr: str) -> list[str]:
    """The --debug step names, in the order they ended, each once."""
    seen: list[str] = []
    for m in re.finditer(r"step (.*): [0-9.]+ ms \(pid \d+\)", stderr):
        if m.group(1) not in seen:
            seen.append(m.group(1))
    return seen


def _kill_config(rt, marker: str, network: str | None = None) -> tuple[dict, list[str]]:
    config = rt.config(["sh", "-c", f"sleep 1000; : {marker}"])
    config["hooks"] = {}
    extra = []
    if network and shutil.which(network if network != "bridge" else "nft"):
        extra = ["--network", network]
    return config, extra

def _a_marked_bundle(rt) -> tuple[str, str, set[str], str]:
    """A marker its processes carry, a bundle of _kill_config's, the layer
    dirs there were before, and a fresh id."""
    marker = f"m{uuid.uuid4().hex[:8]}"
    return marker, rt.bundle(config=_kill_config(rt, marker)[0]), _layers(rt), _cid()



@pytest.mark.parametrize("network", ["default", "bridge", "slirp4netns", "pasta"])
def test_kill_at_every_step_then_delete_force_leaves_nothing(rt, network):
    """kill -9 of the runtime at each named construction step, then
    ``delete --force``: no process, mount, cgroup, network, state or layer."""
    if (network == "bridge") != (not rt.rootless) and network != "default":
        pytest.skip("bridge is rootful's network, slirp4netns and pasta rootless ones")
    marker = f"m{uuid.uuid4().hex[:8]}"
    config, extra = _kill_config(rt, marker, network if network != "default" else None)
    if network != "default" and not extra:
        pytest.skip(f"{network} is not installed")
    bundle = rt.bundle(config=config)
    layers_before = _layers(rt)
    cid = _cid()
    p = rt("--debug", "create", *extra, "-b", bundle, cid)
    assert p.returncode == 0, p.stderr
    steps = _steps(p.stderr)
    assert "write(state.json)" in steps and "pivot_root" in steps, steps
    rt.ok("delete", "--force", cid)
    _assert_nothing_left(rt, cid, marker, layers_before)
    covered = []
    for step in steps:
        cid = _cid()
        if " pyrv" in step:  # the veth's name is made from the state dir's path
            from pyrun.net import bridge

            step = step.split(" pyrv")[0] + " " + bridge.veth_name(os.path.join(rt.root, cid))
        p = _kill_at(rt, step, "create", *extra, "-b", bundle, cid)
        assert p.returncode == KILLED, f"step {step}: create was not killed: {p.returncode} {p.stderr}"
        d = rt("delete", "--force", cid)
        assert d.returncode == 0, f"step {step}: {d.stderr}"
        _assert_nothing_left(rt, cid, marker, layers_before)
        # and the id can be used again at once
        rt.ok("create", *extra, "-b", bundle, cid)
        rt.ok("delete", "--force", cid)
        _assert_nothing_left(rt, cid, marker, layers_before)
        covered.append(step)
    print(f"{rt.mode} {network}: {len(covered)} kill points covered: {covered}")
    assert len(covered) >= 15


def test_create_killed_right_after_mkdir_leaves_a_usable_id(rt):
    """Item 1: SIGKILL between mkdir(state dir) and the first record: the
    id is not lost, ``create`` reclaims it, ``delete --force`` removes it."""
    marker, bundle, layers_before, cid = _a_marked_bundle(rt)
    p = _kill_at(rt, "write(state.json)", "create", "-b", bundle, cid)
    assert p.returncode == KILLED, p.stderr
    assert os.listdir(rt.root) == [cid]  # the directory, without a record
    assert rt.ok("list", "--format", "json") == "null\n"  # runc: an empty list is Go's nil slice
    rt.ok("create", "-b", bundle, cid)  # reclaimed, not "already exists"
    assert rt.state(cid)["status"] == "created"
    rt.ok("delete", "--force", cid)
    _assert_nothing_left(rt, cid, marker, layers_before)
    # delete --force alone removes such a directory too
    p = _kill_at(rt, "write(state.json)", "create", "-b", bundle, cid)
    assert p.returncode == KILLED, p.stderr
    rt.ok("delete", "--force", cid)
    _assert_nothing_left(rt, cid, marker, layers_before)


def test_create_killed_after_the_cgroup_was_made_leaves_no_cgroup(rt):
    """Item 1, the cgroup: killed once cgroups.setup made it and before the
    record said so; the pending path in the first record finds it."""
    from pyrun import cgroups

    if rt.rootless and not cgroups.available():
        pytest.skip("no cgroup for a rootless container on a cgroup v1 host")
    marker, bundle, layers_before, cid = _a_marked_bundle(rt)
    p = _kill_at(rt, "write(state.json, cgroup, network)", "create", "-b", bundle, cid)
    assert p.returncode == KILLED, p.stderr
    if not rt.rootless:
        assert _cgroups_of(cid), "the v1 freezer cgroup should exist here (rootful)"
    rt.ok("delete", "--force", cid)
    _assert_nothing_left(rt, cid, marker, layers_before)


def test_two_concurrent_delete_force_both_succeed(rt):
    """Item 2: runc exits 0 and 0; so must pyrun."""
    bundle = rt.bundle(["sleep", "1000"])
    for _ in range(5):
        cid = _cid()
        rt.ok("run", "-d", "-b", bundle, cid)
        results = _concurrently(rt, [["delete", "--force", cid]] * 2)
        assert [r[0] for r in results] == [0, 0], results
        assert os.listdir(rt.root) == []


def test_unreadable_state_is_an_error_not_absence(rt):
    """Item 3: EACCES is not ENOENT. delete --force must fail, naming the
    path, and leave the container running."""
    if not rt.rootless or rt.uid == 0:
        pytest.skip("rootless: root reads any mode")
    cid = _cid()
    rt.ok("run", "-d", "-b", rt.bundle(["sleep", "1000"]), cid)
    for path in (os.path.join(rt.root, cid), rt.root):
        os.chmod(path, 0)
        try:
            p = rt("delete", "--force", cid)
            line = _one_line(p)
            assert p.returncode != 0 and path in line and "Permission denied" in line, line
            p = rt("state", cid)
            assert p.returncode != 0 and path in _one_line(p)
        finally:
            os.chmod(path, 0o711)
        assert rt.state(cid)["status"] == "running"
    rt.ok("delete", "--force", cid)


def test_a_full_state_root_is_one_line_and_no_residue(rootful):
    """Item 6: --root on a full tmpfs."""
    rt = rootful
    mnt = os.path.join(rt.dir, "full")
    os.mkdir(mnt)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0711", "tmpfs", mnt], check=True)
    try:
        subprocess.run(["dd", "if=/dev/zero", f"of={mnt}/filler", "bs=4k", "count=64"], capture_output=True)
        before = sorted(os.listdir(mnt))
        saved, rt.root = rt.root, mnt
        try:
            cid = _cid()
            p = rt("create", "-b", rt.bundle(["sleep", "1000"]), cid)
            line = _one_line(p)
            assert p.returncode == 1 and mnt in line and "No space left on device" in line, line
            assert sorted(os.listdir(mnt)) == before
            assert _cgroups_of(cid) == []
        finally:
            rt.root = saved
    finally:
        subprocess.run(["umount", mnt], check=True)


def test_a_full_layers_root_is_one_line_and_no_fallback(rootful):
    """Item 6 and issue 12 item 10: the layers root full (no inode left):
    one line naming it, nothing left, and never a silent switch to writing
    into the bundle."""
    rt = rootful
    mnt = os.path.join(rt.dir, "layers")
    os.mkdir(mnt)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,nr_inodes=8,mode=0711", "tmpfs", mnt], check=True)
    try:
        n = 0
        while True:
            try:
                open(os.path.join(mnt, f"f{n}"), "w").close()
            except OSError:
                break
            n += 1
        before = sorted(os.listdir(mnt))
        rootfs = os.path.join(rt.dir, "rootfs-copy")
        shutil.copytree(rt.rootfs["busybox"], rootfs, symlinks=True)
        config = rt.config(["sh", "-c", "echo x > /written"])
        config["root"]["path"] = rootfs
        cid = _cid()
        p = rt("run", "--layers-root", mnt, "-b", rt.bundle(config=config), cid)
        line = _one_line(p)
        assert p.returncode == 1 and mnt in line and "No space left on device" in line, line
        assert sorted(os.listdir(mnt)) == before
        assert not os.path.exists(os.path.join(rootfs, "written")), "wrote into the bundle"
        assert os.listdir(rt.root) == [] and _cgroups_of(cid) == []
    finally:
        subprocess.run(["umount", mnt], check=True)


def test_a_50mb_config_is_stored_once(rt):
    """Item 7: no copy of config.json in the state dir; exec still uses the
    config as created (an edited one is refused, never silently used)."""
    config = rt.config(["sleep", "1000"])
    config["process"]["env"].append("FROM_CREATE=yes")
    config.setdefault("annotations", {})["big"] = "x" * (50 << 20)
    bundle = rt.bundle(config=config)
    size = os.path.getsize(os.path.join(bundle, "config.json"))
    cid = _cid()
    rt.ok("run", "-d", "-b", bundle, cid, timeout=120)
    stored = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(os.path.join(rt.root, cid))
                 for f in fs if not os.path.islink(os.path.join(d, f)))
    assert stored < size * 1.2, f"{stored} bytes stored for a {size} byte config"
    assert rt.ok("exec", cid, "sh", "-c", "echo $FROM_CREATE", timeout=120).strip() == "yes"
    config["process"]["env"][-1] = "FROM_CREATE=edited"
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)
    p = rt("exec", cid, "sh", "-c", "echo $FROM_CREATE", timeout=120)
    assert p.returncode != 0 and "edited" not in p.stdout and "changed since" in p.stderr, (p.stdout, p.stderr)
    rt.ok("delete", "--force", cid, timeout=120)


def test_state_record_is_complete_json_after_every_write(rt):
    """Item 9: written through a temporary name and renamed: no torn file,
    no temporary left once create is done."""
    cid = _cid()
    rt.ok("create", "-b", rt.bundle(["sleep", "1000"]), cid)
    d = os.path.join(rt.root, cid)
    assert ".state.json.tmp" not in os.listdir(d)
    with open(os.path.join(d, "state.json")) as f:
        assert json.load(f)["id"] == cid
    rt.ok("delete", "--force", cid)


def test_a_torn_record_is_reported_and_delete_force_removes_the_container(rt):
    """Item 9: a torn state.json names its path; delete --force still
    removes the container: process, layer dir, state dir."""
    marker, bundle, layers_before, cid = _a_marked_bundle(rt)
    rt.ok("run", "-d", "-b", bundle, cid)
    path = os.path.join(rt.root, cid, "state.json")
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) * 3 // 5])
    p = rt("state", cid)
    line = _one_line(p)
    assert p.returncode == 1 and path in line and "corrupt" in line, line
    p = rt("delete", "--force", cid)
    assert p.returncode == 0, p.stderr
    _assert_nothing_left(rt, cid, marker, layers_before)


def test_another_runtimes_record_in_a_shared_root_is_named_as_such(rt):
    """dockerd 20.10 gives runc and pyrun the same --root: runc's state.json
    (well-formed JSON of another shape) is skipped by ``list`` and named in
    one line by ``state``, not as a Python constructor's complaint."""
    cid = "runc-" + uuid.uuid4().hex[:8]
    d = os.path.join(rt.root, cid)
    os.mkdir(d, 0o700)
    rt._chown(d)
    path = os.path.join(d, "state.json")
    with open(path, "w") as f:
        json.dump({"id": cid, "init_process_pid": 1, "created": "2026-12-06T00:00:00Z"}, f)
    rt._chown(path)
    try:
        p = rt("list")
        assert p.returncode == 0 and cid not in p.stdout, p
        p = rt("state", cid)
        line = _one_line(p)
        assert p.returncode == 1 and path in line and "not a pyrun state record" in line, line
        assert "Record()" not in p.stderr
    finally:
        shutil.rmtree(d)


def test_thirty_concurrent_creates(rt):
    bundle = rt.bundle(["sleep", "1000"])
    ids = [_cid() for _ in range(30)]
    results = _concurrently(rt, [["create", "-b", bundle, cid] for cid in ids])
    assert all(code == 0 for code, _ in results), [r for r in results if r[0]]
    listed = json.loads(rt.ok("list", "--format", "json"))
    assert sorted(s["id"] for s in listed) == sorted(ids)
    assert all(s["status"] == "created" for s in listed)
    for cid in ids:
        rt.ok("delete", "--force", cid)
    assert os.listdir(rt.root) == []


def test_ten_concurrent_creates_of_one_id(rt):
    """Exactly one wins; the losers make nothing and do not disturb it."""
    bundle = rt.bundle(["sleep", "1000"])
    layers_before = _layers(rt)
    cid = _cid()
    results = _concurrently(rt, [["create", "-b", bundle, cid]] * 10)
    codes = sorted(code for code, _ in results)
    assert codes == [0] + [1] * 9, results
    assert all("already exists" in err for code, err in results if code), results
    assert os.listdir(rt.root) == [cid]
    assert len(_layers(rt) - layers_before) == 1
    assert rt.state(cid)["status"] == "created"
    rt.ok("start", cid)
    assert rt.state(cid)["status"] == "running"
    rt.ok("delete", "--force", cid)
    assert os.listdir(rt.root) == [] and _layers(rt) == layers_before


# ----------------------------------------------------------------- issue 12, item 10

def test_the_writable_layer_is_not_under_the_state_root(rt):
    """Writes of the container go to the layers root (disk), never to --root
    (the RAM tmpfs /run/pyrun by default); delete removes the layer dir."""
    residue = Residue(rt)
    cid = _cid()
    rt.ok("run", "-d", "-b", rt.bundle(["sh", "-c", "dd if=/dev/zero of=/big bs=1M count=4; sleep 1000"]), cid)
    deadline = time.monotonic() + 20
    mine = set()
    while time.monotonic() < deadline:
        mine = _layers(rt) - set(residue.layers)
        if mine and os.path.exists(os.path.join(rt.layers, next(iter(mine)), "upper", "big")) and \
                os.path.getsize(os.path.join(rt.layers, next(iter(mine)), "upper", "big")) == 4 << 20:
            break
        time.sleep(0.05)
    assert len(mine) == 1 and next(iter(mine)).startswith(cid + "."), mine
    state_bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(os.path.join(rt.root, cid))
                      for f in fs)
    assert state_bytes < 64 << 10, f"{state_bytes} bytes under --root"
    rt.ok("delete", "--force", cid)
    residue.check()


@pytest.mark.parametrize("how", ["flag", "annotation"])
def test_layers_root_flag_and_annotation(rt, how):
    chosen = os.path.join(rt.dir, f"my-layers-{how}")
    config = rt.config(["sleep", "1000"])
    args = []
    if how == "flag":
        args = ["--layers-root", chosen]
    else:
        config.setdefault("annotations", {})["org.pyrun.layers"] = chosen
    cid = _cid()
    rt.ok("create", *args, "-b", rt.bundle(config=config), cid)
    made = os.listdir(chosen)
    assert len(made) == 1 and made[0].startswith(cid + "."), made
    assert sorted(os.listdir(os.path.join(chosen, made[0]))) == ["upper", "work"]
    rt.ok("delete", "--force", cid)
    assert os.listdir(chosen) == []


def test_delete_removes_only_a_layer_dir_pyrun_named(rt):
    """A record that names some other directory as its layer dir (edited,
    or damaged) does not make delete --force remove that directory."""
    victim = os.path.join(rt.dir, "victim")
    os.mkdir(victim)
    with open(os.path.join(victim, "keep"), "w") as f:
        f.write("x")
    cid = _cid()
    rt.ok("create", "-b", rt.bundle(["sleep", "1000"]), cid)
    path = os.path.join(rt.root, cid, "state.json")
    with open(path) as f:
        rec = json.load(f)
    real = rec["layers"]
    rec["layers"] = victim
    with open(path, "w") as f:
        json.dump(rec, f)
    p = rt("delete", "--force", cid)
    assert p.returncode == 0 and "left alone" in p.stderr, p.stderr
    assert os.path.exists(os.path.join(victim, "keep"))
    assert os.listdir(rt.root) == []
    shutil.rmtree(real, ignore_errors=True)
