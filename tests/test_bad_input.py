"""Bad input: one clear line naming the problem, a non-zero exit, no
traceback, and nothing left behind (state dir, mounts, processes)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest


def _assert_clean_failure(p, residue, *needles):
    assert p.returncode != 0
    assert "Traceback" not in p.stderr, p.stderr
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, p.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    residue.check()


def test_missing_bundle(rt, residue):
    p = rt("create", "-b", os.path.join(rt.dir, "nope"), "c1")
    _assert_clean_failure(p, residue, "does not exist")


def test_missing_config(rt, residue):
    bundle = rt.bundle(["true"])
    os.unlink(os.path.join(bundle, "config.json"))
    _assert_clean_failure(rt("create", "-b", bundle, "c1"), residue, "config.json")


def test_invalid_json(rt, residue):
    bundle = rt.bundle(raw='{"ociVersion": "1.0.2",\n "process": ')
    _assert_clean_failure(rt("create", "-b", bundle, "c1"), residue, "invalid JSON", "line 2")


@pytest.mark.parametrize("mutate, path", [
    (lambda c: c["process"].__setitem__("args", "sh"), "process.args"),
    (lambda c: c["process"].__setitem__("args", []), "process.args"),
    (lambda c: c["process"]["user"].__setitem__("uid", "root"), "process.user.uid"),
    (lambda c: c["linux"]["namespaces"].append({"type": "bogus"}), "linux.namespaces[5].type"),
    (lambda c: c["mounts"][0].__setitem__("destination", "proc"), "mounts[0].destination"),
    (lambda c: c.__setitem__("hostname", 7), "hostname"),
    (lambda c: c.pop("process"), "process"),
])
def test_wrong_types_name_the_json_path(rt, residue, mutate, path):
    config = rt.config(["true"])
    mutate(config)
    _assert_clean_failure(rt("create", "-b", rt.bundle(config=config), "c1"), residue, path)


RUNC = shutil.which("runc", path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin")


@pytest.mark.parametrize("path", ["process.user.uid", "linux.seccomp.defaultErrnoRet",
                                  "linux.resources.pids.limit"])
def test_a_bool_for_an_integer_reads_the_same_in_spec_seccomp_and_resources(rt, residue, path):
    """One wording from pyrun.config.jsontypes wherever the field is; runc (Go's
    encoding/json) also names the field and "bool" for each of the three."""
    config = rt.config(["true"])
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW"}
    *parents, key = path.split(".")
    target = config
    for name in parents:
        target = target.setdefault(name, {})
    target[key] = True
    bundle = rt.bundle(config=config)
    p = rt("create", "-b", bundle, "c1")
    _assert_clean_failure(p, residue, path)
    assert p.stderr.strip().endswith(f"config.json: {path}: expected an integer, got bool"), p.stderr
    if RUNC and not rt.rootless:
        r = subprocess.run([RUNC, "--root", os.path.join(rt.dir, "runc-state"), "create", "-b", bundle, "c1"],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert r.returncode != 0 and "unmarshal bool into Go struct field" in r.stderr, r.stderr
        assert f".{path} of type" in r.stderr, r.stderr


def test_missing_rootfs(rt, residue):
    config = rt.config(["true"])
    config["root"]["path"] = os.path.join(rt.dir, "no-rootfs")
    _assert_clean_failure(rt("create", "-b", rt.bundle(config=config), "c1"), residue, "root.path")


@pytest.mark.parametrize("arg0", ["/no/such/program", "no-such-program"])
def test_missing_entrypoint(rt, residue, arg0):
    p = rt("create", "-b", rt.bundle([arg0]), "c1")
    _assert_clean_failure(p, residue, "process.args[0]", arg0)


def test_missing_entrypoint_with_run(rt, residue):
    p = rt("run", "-b", rt.bundle(["no-such-program"]), "c1")
    _assert_clean_failure(p, residue, "process.args[0]")


@pytest.mark.parametrize("cid", ["a/b", "..", "", "with space"])
def test_malformed_id(rt, residue, cid):
    _assert_clean_failure(rt("create", "-b", rt.bundle(["true"]), cid), residue, "invalid container id")


def test_id_taken(rt):
    rt.ok("create", "-b", rt.bundle(["sleep", "30"]), "c1")
    before = rt.state("c1")
    p = rt("create", "-b", rt.bundle(["sleep", "30"]), "c1")
    assert p.returncode == 1 and "already exists" in p.stderr
    assert rt.state("c1") == before  # the first container is unharmed


def test_failure_half_way_through_the_mounts(rt, residue):
    """A mount late in the list fails inside the container's PID 1, after the
    overlay and earlier mounts were made: everything is undone."""
    config = rt.config(["true"])
    config["mounts"].append({"destination": "/late", "type": "no-such-fs", "source": "none"})
    p = rt("create", "-b", rt.bundle(config=config), "c1")
    _assert_clean_failure(p, residue, "mount('/late', type=no-such-fs)", "ENODEV")


def test_failure_at_the_last_step_before_ready(rt, residue):
    config = rt.config(["true"])
    config["process"]["cwd"] = "/etc/passwd"  # a missing cwd is created (runc); a file is no directory
    p = rt("create", "-b", rt.bundle(config=config), "c1")
    _assert_clean_failure(p, residue, "process.cwd")


def test_root_mapped_to_a_uid_we_cannot_give_files_to(rt, residue):
    """Rootless, the container's root mapped to host uid 0: the overlay's
    dirs cannot be chown(2)ed to it. That happens after stage 1 is forked
    (the host makes them while stage 1 imports): one line, and undone."""
    if not rt.rootless:
        pytest.skip("root may chown to anyone")
    config = rt.config(["true"])
    for key in ("uidMappings", "gidMappings"):
        config["linux"][key] = [{"containerID": 0, "hostID": 0, "size": 1}]
    p = rt("create", "-b", rt.bundle(config=config), "c1")
    _assert_clean_failure(p, residue, "linux.uidMappings", "chown(2)")


def test_joining_a_namespace_of_the_wrong_type(rt, residue):
    """Stage 1 fails at its first setns(2) while the host still works on
    the state dir and the cgroup: its error is what is reported (not a
    broken pipe from the host's next message), and everything is undone."""
    if rt.rootless:
        pytest.skip("joining another process's namespaces needs root")
    config = rt.config(["true"])
    for ns in config["linux"]["namespaces"]:
        if ns["type"] == "network":
            ns["path"] = f"/proc/{os.getpid()}/ns/ipc"
    p = rt("create", "-b", rt.bundle(config=config), "c1")
    _assert_clean_failure(p, residue, "network")
    assert "Broken pipe" not in p.stderr and "internal error" not in p.stderr


def test_bind_mount_of_a_missing_source(rt, residue):
    config = rt.config(["true"])
    config["mounts"].append({"destination": "/data", "type": "bind", "source": "/no/such/source",
                             "options": ["rbind"]})
    p = rt("create", "-b", rt.bundle(config=config), "c1")
    _assert_clean_failure(p, residue, "mounts[", "source")


def test_unmapped_user(rt, residue):
    config = rt.config(["true"])
    config["process"]["user"] = {"uid": 4242, "gid": 4242}
    if not rt.rootless:
        pytest.skip("every uid is mapped for root without a user namespace")
    p = rt("create", "-b", rt.bundle(config=config), "c1")
    _assert_clean_failure(p, residue, "process.user")


def test_rootless_without_a_user_namespace(rt, residue):
    if not rt.rootless:
        pytest.skip("rootless only")
    config = rt.config(["true"])
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != "user"]
    config["linux"].pop("uidMappings")
    config["linux"].pop("gidMappings")
    p = rt("create", "-b", rt.bundle(config=config), "c1")
    _assert_clean_failure(p, residue, "user namespace")


def test_delete_and_start_of_unknown_ids(rt):
    for cmd in ("delete", "start", "kill"):
        p = rt(cmd, "ghost")
        assert p.returncode == 1 and "does not exist" in p.stderr and "Traceback" not in p.stderr


def test_stale_half_created_container_is_reclaimed(rt):
    """A creator killed with SIGKILL leaves a 'creating' record whose creator
    is dead; the next create of that id (or delete) removes it."""
    os.makedirs(os.path.join(rt.root, "c1"))
    rec = {"id": "c1", "bundle": "/x", "rootfs": "/x", "created": "2026-01-01T00:00:00Z", "owner": "x",
           "creator_pid": 999999, "creator_start": 1}
    with open(os.path.join(rt.root, "c1", "state.json"), "w") as f:
        json.dump(rec, f)
    if rt.rootless:
        os.system(f"chown -R {rt.uid}:{rt.gid} {rt.root}/c1")
    assert rt.state("c1")["status"] == "stopped"
    rt.ok("run", "-b", rt.bundle(["true"]), "c1")
    assert os.listdir(rt.root) == []


def test_a_child_that_failed_first_is_the_error_reported():
    """create.child_error_first: when the host's step fails because the
    child it forked was already gone, the child's own message wins; a child
    that said nothing is killed and the host's error stands. Real processes,
    the real channel."""
    from pyrun.stages.channel import Channel
    from pyrun.container.create import child_error_first
    from pyrun.errors import ContainerFailed, PyrunError

    for says in ("error", None):
        host, child = Channel.pair()
        pid = os.fork()
        if pid == 0:
            host.close()
            if says:
                child.send("error", message="setns(the container's namespaces): No such process")
                os._exit(1)
            child.recv()  # waits for the host, which kills it instead
            os._exit(0)
        child.close()
        if says:  # it failed first: gone (not yet reaped) before the host's step fails
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        try:
            with pytest.raises(PyrunError) as e:
                child_error_first(host, pid, PyrunError("cgroup: add pid: No such process"))
            if says:
                assert isinstance(e.value, ContainerFailed) and "setns" in str(e.value)
            else:
                assert "cgroup: add pid" in str(e.value)
        finally:
            _, status = os.waitpid(pid, 0)
            host.close()
        assert os.WIFEXITED(status) if says else os.WTERMSIG(status) == 9


# ----------------------------------------------------------------- issue 16: ids, --root, flags

# Every command that takes an id, with what else it needs to parse.
_ID_COMMANDS = [
    ["create", "-b", "."], ["run", "-b", "."], ["start"], ["state"], ["kill"], ["delete"],
    ["delete", "--force"], ["exec"], ["pause"], ["resume"], ["ps"], ["events", "--stats"], ["update"],
]


def _id_args(cmd: list[str], cid: str) -> list[str]:
    return [cmd[0], *cmd[1:], cid] + (["true"] if cmd[0] == "exec" else [])


@pytest.mark.parametrize("length", [201, 256, 1000])
def test_too_long_ids_are_one_message_for_every_command(rt, length):
    """Item 4: "File name too long" was an internal error, and delete
    --force of such an id exited 0 without a word."""
    cid = "a" * length
    messages = set()
    for cmd in _ID_COMMANDS:
        p = rt(*_id_args(cmd, cid))
        # exec: runc's "exec failed: ..." and status 255
        assert p.returncode == (255 if cmd[0] == "exec" else 1), (cmd, p.returncode, p.stderr)
        lines = [line for line in p.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "invalid container id" in lines[0] and "internal error" not in lines[0], \
            (cmd, p.stderr)
        messages.add(lines[0].replace("exec failed: ", ""))
    assert len(messages) == 1, messages
    assert os.listdir(rt.root) == []


def test_the_longest_id_works(rt):
    from pyrun.container.state import MAX_ID_LEN

    cid = "b" * (MAX_ID_LEN - 8) + os.urandom(4).hex()  # the rootful v1 cgroup is named after it: host-unique
    rt.ok("run", "-d", "-b", rt.bundle(["sleep", "100"]), cid)
    assert rt.state(cid)["status"] == "running"
    rt.ok("delete", "--force", cid)
    assert os.listdir(rt.root) == []


def test_root_that_is_a_file_is_one_line_for_every_command(rt):
    """Item 5: "cannot create state root X: File exists", "internal error:
    NotADirectoryError"... One line, exit 1."""
    root = os.path.join(rt.dir, "a-file")
    with open(root, "w"):
        pass
    saved, rt.root = rt.root, root
    try:
        for cmd in [*_ID_COMMANDS, ["list"]]:
            args = _id_args(cmd, "c1") if cmd != ["list"] else ["list"]
            p = rt(*args)
            lines = [line for line in p.stderr.splitlines() if line.strip()]
            assert p.returncode == 1 and lines == [f"pyrun: --root {root}: not a directory"], (cmd, p.stderr)
    finally:
        rt.root = saved


# (flags, the flag named, an accepted value that must be listed)
_BAD_FLAGS = [
    (["run", "--network", "bogus", "-b", ".", "c1"], "--network", "slirp4netns"),
    (["create", "--network", "bogus", "-b", ".", "c1"], "--network", "pasta"),
    (["run", "--rootfs-mode", "bogus", "-b", ".", "c1"], "--rootfs-mode", "overlay"),
    (["create", "--preserve-fds", "many", "-b", ".", "c1"], "--preserve-fds", "integer"),
    (["run", "--preserve-fds", "-1", "-b", ".", "c1"], "--preserve-fds", "negative"),
    (["exec", "-g", "wheel", "c1", "true"], "--additional-gids", "integer"),
    (["exec", "--preserve-fds", "x", "c1", "true"], "--preserve-fds", "integer"),
    (["list", "--format", "yaml"], "--format", "json"),
    (["ps", "--format", "yaml", "c1"], "--format", "table"),
    (["update", "--cpu-quota", "lots", "c1"], "--cpu-quota", "integer"),
    (["events", "--interval", "soon", "c1"], "--interval", "500ms"),
]


@pytest.mark.parametrize("args, flag, accepted", _BAD_FLAGS)
@pytest.mark.parametrize("path", ["fast", "click"])
def test_a_bad_flag_value_is_one_line_naming_the_flag(rt, args, flag, accepted, path):
    """Item 8: click printed its usage text and exited 2 (the fast path
    handed such commands over). One line naming the flag and what it
    accepts, exit 1, through either path ("--rootless auto" is a global
    flag only click knows: it sends the command past the fast path)."""
    p = rt(*(["--rootless", "auto"] if path == "click" else []), *args)
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert p.returncode == 1 and len(lines) == 1, (p.returncode, p.stderr)
    assert flag in lines[0] and accepted in lines[0] and "Usage" not in lines[0], lines[0]


def test_bad_global_flag_values_are_one_line(rt):
    for args, flag in ((["--log-format", "yaml", "list"], "--log-format"),
                       (["--log", os.path.join(rt.dir, "no", "such", "dir", "log"), "list"], "--log")):
        p = rt(*args)
        lines = [line for line in p.stderr.splitlines() if line.strip()]
        assert p.returncode == 1 and len(lines) == 1 and flag in lines[0], (args, p.returncode, p.stderr)
