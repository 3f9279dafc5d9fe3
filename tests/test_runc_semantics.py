"""A config pyrun did not write runs exactly as runc runs it (issue 13).

Every bundle here is made by ``runc spec`` (rootful) or ``runc spec
--rootless`` (as the rootless user), with a private copy of the busybox
rootfs at ``rootfs`` as runc expects: no org.pyrun.* annotation, so the
rootfs is used directly and the entrypoint is PID 1. Where runc can run the
same scenario here, it runs beside pyrun and the results are compared.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

RUNC = shutil.which("runc")
pytestmark = pytest.mark.skipif(RUNC is None, reason="runc is not installed (apt-get install runc)")


class Bundles:
    """`runc spec` bundles for one ``rt``, and runc itself beside pyrun."""

    def __init__(self, rt):
        self.rt = rt
        self.n = 0
        self.runc_root = os.path.join(rt.dir, "runc-state")
        self.ids: list[tuple[str, str]] = []  # (runtime, id) to delete at the end

    def make(self, args: list[str], edit=None) -> str:
        """A bundle: runc spec's config.json with ``args``, a writable root, ``edit`` applied,
        and its own copy of the busybox rootfs (owned as the template is)."""
        rt = self.rt
        self.n += 1
        d = rt.mkdir(f"runc-bundle{self.n}")
        subprocess.run(["cp", "-a", rt.rootfs["busybox"], os.path.join(d, "rootfs")], check=True)
        subprocess.run([RUNC, "spec", *(["--rootless"] if rt.rootless else [])], cwd=d, env=rt.env,
                       check=True, capture_output=True, **rt._user_kw())
        path = os.path.join(d, "config.json")
        with open(path) as f:
            config = json.load(f)
        assert "annotations" not in config
        config["process"]["args"] = args
        config["process"]["terminal"] = False
        config["root"]["readonly"] = False  # runc spec's is read-only: these tests write
        if edit is not None:
            edit(config)
        with open(path, "w") as f:
            json.dump(config, f)
        return d

    def cid(self, runtime: str) -> str:
        """Ids unique on the host: rootful runc and pyrun name cgroups after them."""
        cid = f"rs{os.getpid()}-{self.n}-{len(self.ids)}"
        self.ids.append((runtime, cid))
        return cid

    def runc(self, *args, timeout: float = 60) -> subprocess.CompletedProcess:
        """runc as pyrun runs (rt): output to files, since ``run -d`` hands
        its stdio to the container."""
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            p = subprocess.run([RUNC, "--root", self.runc_root, *map(str, args)], stdout=out, stderr=err,
                               text=True, env=self.rt.env, cwd=self.rt.dir, stdin=subprocess.DEVNULL,
                               timeout=timeout, **self.rt._user_kw())
            out.seek(0)
            err.seek(0)
            # runc logs with logrus: msg="... exec: \"x\": ..."
            return subprocess.CompletedProcess(p.args, p.returncode, out.read(), err.read().replace('\\"', '"'))

    def both(self, args: list[str], edit=None, pyrun_flags=()) -> tuple:
        """``run`` the same config (two copies of it) under pyrun and runc."""
        b1, b2 = self.make(args, edit), self.make(args, edit)
        p = self.rt("run", *pyrun_flags, "-b", b1, self.cid("pyrun"))
        r = self.runc("run", "-b", b2, self.cid("runc"))
        return (p, b1), (r, b2)

    def cleanup(self) -> None:
        for runtime, cid in self.ids:
            if runtime == "pyrun":
                self.rt("delete", "--force", cid)
            else:
                self.runc("delete", "--force", cid)


@pytest.fixture
def rb(rt):
    b = Bundles(rt)
    yield b
    b.cleanup()


def _user(uid: int, gid: int, *caps: str):
    def edit(config):
        config["process"]["user"] = {"uid": uid, "gid": gid}
        c = config["process"]["capabilities"]
        for key in ("bounding", "effective", "permitted"):
            c[key] = sorted(set(c[key]) | set(caps))
    return edit


def _with_ranges(rt, edit=None):
    """Rootless: map 1..65536 too (newuidmap), as podman does."""
    def both(config):
        rt.with_id_ranges(config)
        if edit:
            edit(config)
    return both


# ------------------------------------------------------------------ the rule

def test_rootfs_is_written_directly_and_the_entrypoint_is_pid1(rt, rb):
    (p, b1), (r, b2) = rb.both(["sh", "-c", "echo $$; echo kept > /written"])
    assert r.returncode == 0, r.stderr
    assert p.returncode == 0, p.stderr
    assert p.stdout == r.stdout == "1\n"
    for b in (b1, b2):
        with open(os.path.join(b, "rootfs", "written")) as f:
            assert f.read() == "kept\n"


def test_flags_still_choose_pyrun_s_overlay_and_init(rt, rb):
    b = rb.make(["sh", "-c", "echo $$; echo kept > /written"])
    p = rt("run", "--rootfs-mode", "overlay", "--init", "-b", b, rb.cid("pyrun"))
    assert p.returncode == 0, p.stderr
    assert p.stdout == "2\n"
    assert not os.path.exists(os.path.join(b, "rootfs", "written"))


# ------------------------------------------- item 3: a missing or unusable program

ENTRYPOINTS = [
    ("no-such-program", 'exec: "no-such-program": executable file not found in $PATH'),
    ("/no/such/program", 'exec: "/no/such/program": stat /no/such/program: no such file or directory'),
    ("/etc/passwd", 'exec: "/etc/passwd": permission denied'),
    ("/etc", 'exec: "/etc": permission denied'),
]


@pytest.mark.parametrize("arg0, words", ENTRYPOINTS)
def test_a_missing_or_unusable_entrypoint_is_worded_as_runc_words_it(rt, rb, arg0, words):
    """podman maps "executable file not found"/"no such file or directory"
    to 127 and "permission denied" to 126: the wording is the interface."""
    (p, _), (r, _) = rb.both([arg0])
    assert r.returncode != 0 and words in r.stderr, r.stderr
    assert p.returncode != 0 and words in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_exec_of_a_missing_or_unusable_program_is_worded_as_runc_words_it(rt, rb):
    p_id, r_id = rb.cid("pyrun"), rb.cid("runc")
    assert rt("run", "-d", "-b", rb.make(["sleep", "60"]), p_id).returncode == 0
    r = rb.runc("run", "-d", "-b", rb.make(["sleep", "60"]), r_id)
    assert r.returncode == 0, r.stderr
    for arg0, words in ENTRYPOINTS:
        r = rb.runc("exec", r_id, arg0)
        p = rt("exec", p_id, arg0)
        assert words in r.stderr, r.stderr
        assert words in p.stderr, p.stderr
        assert p.returncode == r.returncode == 255, (p.returncode, r.returncode)


# ------------------------------------------- item 4: PATH lookup as execve(2) checks

def _secret_program(bundle: str) -> None:
    """/usr/local/bin/secret: only its owner (container root) may execute it;
    CAP_DAC_OVERRIDE lets anyone (capabilities(7))."""
    rootfs = os.path.join(bundle, "rootfs")
    os.makedirs(os.path.join(rootfs, "usr/local/bin"), exist_ok=True)
    dst = os.path.join(rootfs, "usr/local/bin/secret")
    shutil.copy(os.path.join(rootfs, "usr/bin/hello"), dst)
    st = os.stat(os.path.join(rootfs, "bin"))
    os.chown(dst, st.st_uid, st.st_gid)
    os.chmod(dst, 0o700)


def test_path_lookup_counts_capabilities_as_execve_does(rt, rb):
    edit = _with_ranges(rt, _user(1000, 1000, "CAP_DAC_OVERRIDE"))
    results = []
    for runtime in ("pyrun", "runc"):
        b = rb.make(["secret", "uid"], edit)
        _secret_program(b)
        cid = rb.cid(runtime)
        results.append(rt("run", "-b", b, cid) if runtime == "pyrun" else rb.runc("run", "-b", b, cid))
    p, r = results
    assert r.returncode == 0 and r.stdout.split() == ["1000", "1000"], r.stderr
    assert p.returncode == 0 and p.stdout == r.stdout, p.stderr


def test_exec_path_lookup_counts_capabilities_as_execve_does(rt, rb):
    p_id, r_id = rb.cid("pyrun"), rb.cid("runc")
    edit = _with_ranges(rt)
    bp, br = rb.make(["sleep", "60"], edit), rb.make(["sleep", "60"], edit)
    _secret_program(bp)
    _secret_program(br)
    assert rt("run", "-d", "-b", bp, p_id).returncode == 0
    r = rb.runc("run", "-d", "-b", br, r_id)
    assert r.returncode == 0, r.stderr
    args = ["-u", "1000:1000", "--cap", "CAP_DAC_OVERRIDE"]
    r = rb.runc("exec", *args, r_id, "secret", "uid")
    p = rt("exec", *args, p_id, "secret", "uid")
    assert r.returncode == 0 and r.stdout.split() == ["1000", "1000"], r.stderr
    assert p.returncode == 0 and p.stdout == r.stdout, p.stderr


# ------------------------------------------------------------- item 5: HOME

def _passwd(bundle: str, text: str) -> None:
    with open(os.path.join(bundle, "rootfs/etc/passwd"), "a") as f:
        f.write(text)


def test_home_comes_from_the_containers_passwd(rt, rb):
    """runc sets HOME from /etc/passwd for the process's uid when process.env
    has none ("/" when the uid has no entry), for create and exec."""
    outputs = []
    for runtime in ("pyrun", "runc"):
        b = rb.make(["sh", "-c", "echo $HOME; sleep 60"], _with_ranges(rt))
        _passwd(b, "u:x:1000:1000::/home/u:/bin/sh\n")
        cid = rb.cid(runtime)
        call = rt if runtime == "pyrun" else rb.runc
        r = call("run", "-d", "-b", b, cid)
        assert r.returncode == 0, r.stderr
        out = []
        for args in ([], ["-u", "1000:1000"], ["-u", "1001:1001"], ["-u", "65534:65534"],
                     ["-e", "HOME=/mine"], ["-e", "HOME="]):
            e = call("exec", *args, cid, "sh", "-c", "echo $HOME")
            assert e.returncode == 0, e.stderr
            out.append(e.stdout)
        outputs.append(out)
    assert outputs[1] == ["/root\n", "/home/u\n", "/\n", "/\n", "/mine\n", "/root\n"]
    assert outputs[0] == outputs[1]


def test_home_of_the_entrypoint_as_runc(rt, rb):
    def edit(config):
        rt.with_id_ranges(config)
        config["process"]["user"] = {"uid": 1000, "gid": 1000}
    (pp, _), (r, _) = rb.both(["sh", "-c", "echo $HOME"], edit)
    assert r.returncode == 0 and r.stdout == "/\n", r.stderr
    assert pp.returncode == 0 and pp.stdout == r.stdout, pp.stderr


@pytest.mark.parametrize("trap", ["fifo", "dev-zero", "outside"])
def test_a_hostile_etc_passwd_neither_hangs_nor_leaks(rt, rb, trap):
    """/etc/passwd is the image's: a fifo, an endless device or a symlink
    that points out of the root gives HOME=/ (pyrun reads it inside the
    container's root, a regular file only, its first MiB only)."""
    b = rb.make(["sh", "-c", "echo $HOME"])
    passwd = os.path.join(b, "rootfs/etc/passwd")
    os.unlink(passwd)
    if trap == "fifo":
        os.mkfifo(passwd)
    elif trap == "dev-zero":
        os.symlink("/dev/zero", passwd)
    else:
        host = os.path.join(rt.dir, "host-passwd")
        with open(host, "w") as f:
            f.write("root:x:0:0:root:/host-secret:/bin/sh\n")
        os.chmod(host, 0o644)
        os.symlink("../../../" * 8 + host.lstrip("/"), passwd)
    t0 = time.monotonic()
    p = rt("run", "-b", b, rb.cid("pyrun"), timeout=20)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "/\n"
    assert time.monotonic() - t0 < 10


# --------------------------------------------- item 7: linux.rootfsPropagation

def _root_propagation(mountinfo: str) -> str:
    for line in mountinfo.splitlines():
        fields = line.split()
        if fields[4] == "/":
            opt = fields[6:fields.index("-")]
            return " ".join(sorted(o.split(":")[0] for o in opt)) or "private"
    raise AssertionError(f"no / in {mountinfo}")


@pytest.mark.parametrize("prop", ["shared", "slave", "private", "unbindable"])
def test_rootfs_propagation(rt, rb, prop):
    def edit(config):
        config["linux"]["rootfsPropagation"] = prop
    (p, _), (r, _) = rb.both(["cat", "/proc/self/mountinfo"], edit)
    assert p.returncode == 0, p.stderr
    # The root is a private bind until pivot_root, then gets the propagation
    # (a slave of nothing is private). runc 1.1 leaves a "shared" root
    # private; later runc applies it after pivot_root, as pyrun does.
    want = {"shared": "shared", "slave": "private", "private": "private", "unbindable": "unbindable"}
    assert _root_propagation(p.stdout) == want[prop], p.stdout
    if r.returncode == 0 and prop != "shared":
        assert _root_propagation(p.stdout) == _root_propagation(r.stdout), (p.stdout, r.stdout)


# ---------------------------------------------------------------- item 9: hooks

HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def _hooks_without_env(out: str):
    """Each hook writes its environment to out/<kind> (startContainer: to
    /<kind> in the container, which is the bundle's rootfs here)."""
    def edit(config):
        def where(kind):
            return "" if kind == "startContainer" else out
        config["hooks"] = {kind: [{"path": "/bin/sh", "args": ["sh", "-c", f"exec env > {where(kind)}/{kind}"]}]
                           for kind in HOOK_KINDS}
    return edit


def _env_of(path: str) -> dict:
    with open(path) as f:
        env = dict(line.split("=", 1) for line in f.read().splitlines() if "=" in line)
    for name in ("PWD", "OLDPWD", "SHLVL", "_"):  # the shell's own
        env.pop(name, None)
    return {k: v for k, v in env.items() if not k.startswith("_LIBCONTAINER")}


def test_hooks_without_env_get_what_runc_gives(rt, rb):
    """runc (Go's exec.Cmd with a nil Env) passes its own environment to the
    hooks it runs itself, and the container's process environment to
    createContainer and startContainer, which run in its init."""
    envs = []
    for runtime in ("pyrun", "runc"):
        out = rt.mkdir(f"hooks-{runtime}")
        b = rb.make(["true"], _hooks_without_env(out))
        call = rt if runtime == "pyrun" else rb.runc
        r = call("run", "-b", b, rb.cid(runtime))
        assert r.returncode == 0, r.stderr
        envs.append({kind: _env_of(os.path.join(b, "rootfs", kind) if kind == "startContainer"
                                   else os.path.join(out, kind)) for kind in HOOK_KINDS})
    p, r = envs
    assert r["prestart"] == {k: v for k, v in rt.env.items() if k not in ("PWD", "OLDPWD", "SHLVL", "_")}
    assert r["startContainer"]["HOME"] == "/root"
    for kind in HOOK_KINDS:
        assert p[kind] == r[kind], kind


# ------------------------------------------------ item 10: a joined uts namespace

def test_hostname_is_set_in_a_joined_uts_namespace(rt, rb):
    """runc sets the config's hostname in a uts namespace it joins by path."""
    holder = rb.cid("pyrun")
    assert rt("run", "-d", "-b", rb.make(["sleep", "60"]), holder).returncode == 0
    pid = rt.state(holder)["pid"]

    def join(name):
        def edit(config):
            for ns in config["linux"]["namespaces"]:
                if ns["type"] == "uts" or (ns["type"] == "user" and rt.rootless):
                    ns["path"] = f"/proc/{pid}/ns/{ns['type']}"
            if rt.rootless:  # the holder's user namespace: its ids are already mapped
                config["linux"].pop("uidMappings")
                config["linux"].pop("gidMappings")
            config["hostname"] = name
        return edit
    assert rt.ok("exec", holder, "hostname") == "runc\n"
    for runtime in ("pyrun",) + (() if rt.rootless else ("runc",)):
        b = rb.make(["hostname"], join(f"joined-{runtime}"))
        call = rt if runtime == "pyrun" else rb.runc
        r = call("run", "-b", b, rb.cid(runtime))
        assert r.returncode == 0 and r.stdout == f"joined-{runtime}\n", (runtime, r.stderr)
        assert rt.ok("exec", holder, "hostname") == f"joined-{runtime}\n", runtime


# ------------------------------------ issue 24: kill of a container that has exited

KILL_CASES = [  # (flags, signal): containerd's task delete sends the first
    (["--all"], "SIGKILL"), ([], "SIGKILL"), ([], "0"), (["--all"], "0"), ([], "TERM"), (["--all"], "15"),
]


def _runc_msg(stderr: str) -> str:
    """runc's error as its logrus line carries it: msg="..."."""
    return stderr.split('msg="', 1)[1].rsplit('"', 1)[0] if 'msg="' in stderr else stderr


def _wait_stopped(state, cid: str) -> None:
    deadline = time.monotonic() + 10
    while json.loads(state("state", cid).stdout)["status"] != "stopped":
        assert time.monotonic() < deadline, f"{cid} did not stop"
        time.sleep(0.05)


def _exited(rt, rb, runtime: str):
    """(the runtime's command, the id of a container of it whose process
    has exited: created, started, stopped)."""
    call = rt if runtime == "pyrun" else rb.runc
    cid = rb.cid(runtime)
    assert call("create", "-b", rb.make(["true"]), cid).returncode == 0
    assert call("start", cid).returncode == 0
    _wait_stopped(call, cid)
    return call, cid


@pytest.mark.parametrize("path", ["fast", "click"])
def test_kill_of_an_exited_container_answers_as_runc(rt, rb, path):
    """containerd's shim takes only "container not running" (and a few others)
    as a harmless kill error (checkKillError); ``kill --all`` of a stopped
    container succeeds, as runc's does, or CRI never sees the exit. ``--``
    sends the same command line through click instead of the fast path."""
    sep = ["--"] if path == "click" else []
    got = {}
    for runtime in ("pyrun", "runc"):
        call, cid = _exited(rt, rb, runtime)
        answers = []
        for flags, sig in KILL_CASES:
            r = call("kill", *flags, *sep, cid, sig)
            answers.append((flags, sig, r.returncode, r.stdout,
                            (_runc_msg(r.stderr) if runtime == "runc" else r.stderr.removeprefix("pyrun: ")).rstrip("\n")))
        got[runtime] = answers
    assert got["pyrun"] == got["runc"]
    assert got["runc"][1][2:] == (1, "", "container not running")  # the words containerd matches


def test_signal_0_of_a_running_container_succeeds_as_with_runc(rt, rb):
    for runtime in ("pyrun", "runc"):
        call = rt if runtime == "pyrun" else rb.runc
        cid = rb.cid(runtime)
        assert call("run", "-d", "-b", rb.make(["sleep", "60"]), cid).returncode == 0
        for flags in ([], ["--all"]):
            if runtime == "runc" and rt.rootless and flags:
                continue  # runc 1.1 without a cgroup: "lstat : no such file or directory"
            r = call("kill", *flags, cid, "0")
            assert (r.returncode, r.stderr) == (0, ""), (runtime, flags, r.stderr)
        assert call("kill", cid, "KILL").returncode == 0


# ----------------------- issue 24: an rshared bind is a peer of the host's mount

def test_an_rshared_bind_is_a_peer_and_mounts_inside_reach_the_host(rt, rb):
    """CRI's Bidirectional mount: ``rbind,rshared`` with rootfsPropagation
    rshared. The bind must be in the host mount's peer group (``shared:N``,
    no ``master:``) so a mount made inside appears on the host, and the old
    root's detach after pivot_root must unmount nothing of the host's. The
    "host" is a private mount namespace made shared (unshare -m), so nothing
    reaches the real one."""
    if rt.rootless:
        pytest.skip("a mount made by a container reaching the host's namespace: rootful")
    lines = []
    for runtime in ("pyrun", "runc"):
        shared = os.path.join(rt.dir, f"shared-{runtime}")
        os.makedirs(os.path.join(shared, "sub"))

        def edit(config, shared=shared):
            config["linux"]["rootfsPropagation"] = "rshared"
            config["mounts"].append({"destination": "/mnt", "type": "bind", "source": shared,
                                     "options": ["rbind", "rshared"]})
            c = config["process"]["capabilities"]
            for key in ("bounding", "effective", "permitted"):
                c[key].append("CAP_SYS_ADMIN")
        b = rb.make(["sh", "-c", "mount -t tmpfs made-inside /mnt/sub && grep ' /mnt ' /proc/self/mountinfo"],
                    edit)
        cid = rb.cid(runtime)
        cmd = rt.cmd("run", "-b", b, cid) if runtime == "pyrun" else [RUNC, "--root", rb.runc_root, "run",
                                                                       "-b", b, cid]
        script = f"""set -e
            mount -t tmpfs host-{runtime} {shared} && mkdir {shared}/sub
            mount --make-rshared /
            grep ' {shared} ' /proc/self/mountinfo
            cut -d' ' -f5 /proc/self/mountinfo | sort > {rt.dir}/before-{runtime}
            {' '.join(cmd)} </dev/null
            cut -d' ' -f5 /proc/self/mountinfo | sort > {rt.dir}/after-{runtime}
            grep -c ' {shared}/sub .* made-inside' /proc/self/mountinfo || true
            diff {rt.dir}/before-{runtime} {rt.dir}/after-{runtime} | grep "^[<>]" || true"""
        p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], capture_output=True,
                           text=True, env=rt.env, cwd=rt.dir, timeout=60)
        assert p.returncode == 0, (runtime, p.stdout, p.stderr)
        host, inside, seen, *diff = p.stdout.splitlines()
        group = next(f for f in host.split() if f.startswith("shared:"))
        lines.append((runtime, [f for f in inside.split()[6:] if f.startswith(("shared:", "master:"))] == [group],
                      seen, diff))
    assert lines == [(r, True, "1", [f"> {rt.dir}/shared-{r}/sub"]) for r in ("pyrun", "runc")]


def test_kill_all_of_an_exited_container_whose_cgroup_is_gone_succeeds_as_with_runc(rt, rb):
    """systemd removes an empty scope's cgroup on its own: ``kill --all`` of
    the stopped container then has nothing to signal, and succeeds."""
    if rt.rootless:
        pytest.skip("rootless on this host has no cgroup to remove")
    for runtime in ("pyrun", "runc"):
        call, cid = _exited(rt, rb, runtime)
        removed = 0
        for top in os.listdir("/sys/fs/cgroup"):
            for d, subdirs, _ in sorted(os.walk(os.path.join("/sys/fs/cgroup", top)), reverse=True):
                if os.path.basename(d) == cid or f"{cid}." in os.path.basename(d):
                    os.rmdir(d)  # empty: its one process has exited
                    removed += 1
        assert removed, f"no cgroup named after {cid}"
        for sig in ("SIGKILL", "TERM"):
            r = call("kill", "--all", cid, sig)
            assert (r.returncode, r.stderr) == (0, ""), (runtime, sig, r.stderr)
