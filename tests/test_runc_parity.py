"""Configs the OCI's conformance suite and engines send run as runc runs
them (issue 23). Each scenario runs beside runc (``runc spec`` bundles, as
in test_runc_semantics), rootful and rootless."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from conftest import compose_edits
from test_runc_semantics import RUNC, _with_ranges, rb  # noqa: F401 (rb: the fixture)

pytestmark = pytest.mark.skipif(RUNC is None, reason="runc is not installed (apt-get install runc)")


# ------------------------------------- item 1: system calls after the seccomp filter

# What the container's process (the static hello of the busybox rootfs:
# glibc's startup, then getcwd or pause) needs, on top of the runtime's list.
HELLO_NEEDS = ["arch_prctl", "brk", "set_tid_address", "set_robust_list", "rseq", "prlimit64",
               "readlink", "getrandom", "mprotect", "newfstatat", "getcwd", "write", "exit_group",
               "pause", "rt_sigreturn"]
# runc 1.1's own after its filter (strace of its init's thread), and its Go runtime's.
RUNC_AFTER_FILTER = ["capget", "capset", "prctl", "setgroups", "setgid", "setuid", "chdir", "fchdir",
                     "getcwd", "openat", "getdents64", "fstatfs", "fstat", "fchown", "fcntl", "newfstatat",
                     "faccessat2", "read", "write", "close", "getppid", "getpid", "execve", "epoll_ctl",
                     "epoll_pwait", "futex", "mmap", "munmap", "madvise", "nanosleep", "sched_yield",
                     "rt_sigreturn", "rt_sigprocmask", "rt_sigaction", "sigaltstack", "gettid", "tgkill",
                     "clone", "exit", "exit_group", "mprotect"]


def _only(names: list[str]):
    """A profile that allows ``names`` and refuses everything else (EPERM)."""
    def edit(config):
        config["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": sorted(set(names)), "action": "SCMP_ACT_ALLOW"}]}
    return edit


def _cwd(path: str, nnp: bool):
    def edit(config):
        config["process"]["cwd"] = path
        config["process"]["noNewPrivileges"] = nnp
    return edit


def test_pyrun_s_list_is_runc_s():
    """Everything pyrun calls after the filter, runc calls there too, but
    what the sealed pyrun-init takes (execveat(2) of it, its libc's start,
    the signal dispositions Python changed) and the interpreter's brk."""
    from pyrun.stages.builder import SYSCALLS_AFTER_FILTER

    sealed_init = {"execveat", "arch_prctl", "set_tid_address", "rt_sigaction"}
    assert set(SYSCALLS_AFTER_FILTER) - sealed_init - {"brk"} <= set(RUNC_AFTER_FILTER)


@pytest.mark.parametrize("nnp", [False, True])
def test_a_profile_of_exactly_the_listed_syscalls_runs_and_execs(rt, rb, nnp):
    """deny-by-default, allowing what the runtime calls after its filter
    (and execve, and what the process itself needs): create, start and
    exec work, with the filter loaded early (noNewPrivileges false, as
    runc) or last. The suite's own profile, an old Docker list without
    openat2(2), failed every create."""
    from pyrun.stages.builder import SYSCALLS_AFTER_FILTER

    results = {}
    for runtime, allowed in (("pyrun", SYSCALLS_AFTER_FILTER), ("runc", RUNC_AFTER_FILTER)):
        edit = compose_edits(_cwd("/tmp", nnp), _only([*allowed, "execve", *HELLO_NEEDS]))
        run = rt if runtime == "pyrun" else rb.runc
        p = run("run", "-b", rb.make(["hello", "cwd"], edit), rb.cid(runtime))
        cid = rb.cid(runtime)
        d = run("run", "-d", "-b", rb.make(["hello", "pause"], edit), cid)
        e = run("exec", "--cwd", "/etc", cid, "hello", "cwd")
        results[runtime] = (p.returncode, p.stdout, d.returncode, e.returncode, e.stdout)
        assert results[runtime] == (0, "/tmp\n", 0, 0, "/etc\n"), (runtime, p.stderr, d.stderr, e.stderr)


# ------------------------------------------------- item 6: process.cwd and the user

def _root_only_dir(bundle: str, path: str, uid: int | None = None, gid: int | None = None) -> None:
    """A 0700 directory in the bundle's rootfs, owned by the rootfs's owner
    (container root) unless ``uid``/``gid`` (host ids) are given."""
    rootfs = os.path.join(bundle, "rootfs")
    d = os.path.join(rootfs, path.lstrip("/"))
    os.makedirs(d, exist_ok=True)
    st = os.stat(os.path.join(rootfs, "bin"))
    os.chown(d, st.st_uid if uid is None else uid, st.st_gid if gid is None else gid)
    os.chmod(d, 0o700)


def _as(uid: int, gid: int, cwd: str):
    def edit(config):
        config["process"]["user"] = {"uid": uid, "gid": gid}
        config["process"]["cwd"] = cwd
    return edit


@pytest.mark.parametrize("nnp", [False, True])
def test_a_cwd_only_root_may_enter_is_entered_before_the_user_switch(rt, rb, nnp):
    """runc chdirs as root first and keeps that: user 42 starts in /root
    (0700), where it could not chdir itself; exec too, as 42 and as 0."""
    results = {}
    for runtime in ("pyrun", "runc"):
        edit = _with_ranges(rt, compose_edits(_as(42, 42, "/root"), _cwd("/root", nnp)))
        run = rt if runtime == "pyrun" else rb.runc
        b = rb.make(["sh", "-c", "pwd; id -u"], edit)
        _root_only_dir(b, "/root")
        p = run("run", "-b", b, rb.cid(runtime))
        b = rb.make(["sleep", "60"], edit)
        _root_only_dir(b, "/root")
        cid = rb.cid(runtime)
        assert run("run", "-d", "-b", b, cid).returncode == 0
        e42 = run("exec", cid, "sh", "-c", "pwd; id -u")
        e0 = run("exec", "--user", "0", cid, "sh", "-c", "pwd; id -u")
        results[runtime] = [(x.returncode, x.stdout) for x in (p, e42, e0)]
        assert results[runtime] == [(0, "/root\n42\n"), (0, "/root\n42\n"), (0, "/root\n0\n")], \
            (runtime, p.stderr, e42.stderr, e0.stderr)


def test_a_cwd_only_the_user_may_enter_is_entered_after_the_user_switch(rt, rb):
    """Rootless: a directory of a mapped uid whose group is not mapped is
    closed to root in the user namespace (no capability over an inode with
    an unmapped id) and open to its owner: runc retries the chdir after the
    switch, and only that try counts."""
    if not rt.rootless:
        pytest.skip("root in the initial user namespace may enter it")
    from conftest import SUBID_START

    results = {}
    for runtime in ("pyrun", "runc"):
        edit = _with_ranges(rt, _as(1000, 1000, "/work"))
        run = rt if runtime == "pyrun" else rb.runc
        b = rb.make(["sh", "-c", "pwd; id -u"], edit)
        _root_only_dir(b, "/work", uid=SUBID_START + 999, gid=0)  # host gid 0: unmapped
        p = run("run", "-b", b, rb.cid(runtime))
        b = rb.make(["sleep", "60"], edit)
        _root_only_dir(b, "/work", uid=SUBID_START + 999, gid=0)
        cid = rb.cid(runtime)
        assert run("run", "-d", "-b", b, cid).returncode == 0
        e = run("exec", cid, "sh", "-c", "pwd; id -u")
        results[runtime] = [(x.returncode, x.stdout) for x in (p, e)]
        assert results[runtime] == [(0, "/work\n1000\n"), (0, "/work\n1000\n")], (runtime, p.stderr, e.stderr)


# ------------------------------------------------- item 3: unknown capabilities

def _caps_plus(*names: str):
    def edit(config):
        c = config["process"]["capabilities"]
        for key in ("bounding", "effective", "permitted"):
            c[key] = c[key] + list(names)
    return edit


def test_an_unknown_capability_is_a_warning_and_dropped(rt, rb):
    """runtime-spec 1.1: "MUST be logged as a warning ... SHOULD NOT fail";
    runc and crun run it. Known ones stay."""
    log = os.path.join(rt.dir, "caps.log")
    for runtime in ("pyrun", "runc"):
        b = rb.make(["sh", "-c", "grep ^CapEff /proc/self/status"], _caps_plus("CAP_FLY", "cap_kill", "CAP_SYS_TIME"))
        if runtime == "pyrun":
            p = rt("--log", log, "run", "-b", b, rb.cid(runtime))
            assert "CAP_FLY" in p.stderr and "cap_kill" in p.stderr, p.stderr
            with open(log) as f:
                assert "CAP_FLY" in f.read()
        else:
            p = rb.runc("run", "-b", b, rb.cid(runtime))
        assert p.returncode == 0, (runtime, p.stderr)
        assert int(p.stdout.split()[1], 16) & (1 << 25), (runtime, p.stdout)  # CAP_SYS_TIME kept


def test_exec_cap_of_an_unknown_capability_is_a_warning_and_dropped(rt, rb):
    for runtime in ("pyrun", "runc"):
        run = rt if runtime == "pyrun" else rb.runc
        cid = rb.cid(runtime)
        assert run("run", "-d", "-b", rb.make(["sleep", "60"]), cid).returncode == 0
        e = run("exec", "--cap", "CAP_FLY", "--cap", "CAP_SYS_TIME", cid, "grep", "^CapEff", "/proc/self/status")
        assert e.returncode == 0, (runtime, e.stderr)
        assert int(e.stdout.split()[1], 16) & (1 << 25), (runtime, e.stdout)
        if runtime == "pyrun":
            assert "CAP_FLY" in e.stderr, e.stderr


# ------------------------------------------------- item 4: device rules in order

def test_device_rules_are_written_in_the_config_s_order(rt, rb):
    """cgroup v1 keeps a devices.list in the order rules were written, and
    the OCI suite reads the config's back from it ("The runtime MUST apply
    entries in the listed order"): the config's rules come first, in its
    order, then the default devices, as crun writes them. (runc 1.1 writes
    the same rules in another order, and fails that program.)"""
    from pyrun import cgroups

    if rt.rootless or cgroups.available() or not os.path.exists("/sys/fs/cgroup/devices/cgroup.procs"):
        pytest.skip("needs root on a cgroup v1 or hybrid host")
    rules = [{"allow": False, "access": "rwm"},
             {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
             {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "rw"},
             {"allow": True, "type": "b", "major": 7, "minor": 1, "access": "r"}]
    lists = {}
    for runtime in ("pyrun", "runc"):
        cid = rb.cid(runtime)

        def edit(config, cid=cid):
            config["linux"]["resources"] = {"devices": rules}
            config["linux"]["cgroupsPath"] = f"/{cid}"
        run = rt if runtime == "pyrun" else rb.runc
        p = run("create", "-b", rb.make(["sleep", "60"], edit), cid)
        assert p.returncode == 0, (runtime, p.stderr)
        with open(f"/sys/fs/cgroup/devices/{cid}/devices.list") as f:
            lists[runtime] = f.read().splitlines()
        run("delete", "--force", cid)
    assert lists["pyrun"][:3] == ["c 10:229 rwm", "b 8:0 rw", "b 7:1 r"], lists["pyrun"]
    assert sorted(lists["pyrun"]) == sorted(lists["runc"]), lists


# ------------------------------------------------- item 5: no mount namespace

def test_a_config_without_a_mount_namespace_runs_chrooted(rt, rb):
    """crun runs it: the process is chrooted into the root, in the host's
    mount namespace, and nothing is mounted on the host's mount table (the
    config's mounts are named in a warning; masked paths are refused, as
    runc refuses them without a mount namespace). runc is no
    reference here: it mounts the config's mounts on the host's table."""
    if rt.rootless:
        pytest.skip("rootless needs a user namespace, and mounts in it a mount namespace")
    with open("/proc/self/mountinfo") as f:
        before = len(f.read().splitlines())
    host_mnt = os.readlink("/proc/self/ns/mnt")

    def edit(config):
        config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != "mount"]
        del config["linux"]["maskedPaths"], config["linux"]["readonlyPaths"]  # refused, as runc does
    cid = rb.cid("pyrun")
    p = rt("create", "-b", rb.make(["sleep", "60"], edit), cid)
    assert p.returncode == 0, p.stderr
    assert "no mount namespace: mounts not applied" in p.stderr, p.stderr
    pid = json.loads(rt("state", cid).stdout)["pid"]
    assert os.readlink(f"/proc/{pid}/ns/mnt") == host_mnt
    assert os.path.exists(f"/proc/{pid}/root/bin/busybox")
    assert rt("start", cid).returncode == 0
    e = rt("exec", cid, "sh", "-c", "ls /bin/busybox")
    assert (e.returncode, e.stdout) == (0, "/bin/busybox\n"), e.stderr
    assert rt("delete", "--force", cid).returncode == 0
    with open("/proc/self/mountinfo") as f:
        assert len(f.read().splitlines()) == before


# ------------------------------------------------- item 13: createContainer's cwd

def test_create_container_hooks_run_in_the_container_s_root(rt, rb):
    """runc runs them in its init with the container's root as working
    directory (not the bundle): a relative path there names the root's files."""
    seen = {}
    for runtime in ("pyrun", "runc"):
        out = rt.mkdir(f"cwd-hook-{runtime}")

        def edit(config, out=out):
            config["hooks"] = {"createContainer": [
                {"path": "/bin/sh", "args": ["sh", "-c", f"cat etc/marker > {out}/seen"]}]}
        b = rb.make(["true"], edit)
        with open(os.path.join(b, "rootfs", "etc", "marker"), "w") as f:
            f.write(f"root of {runtime}\n")
        with open(os.path.join(b, "etc-marker-in-bundle"), "w") as f:
            f.write("bundle\n")
        call = rt if runtime == "pyrun" else rb.runc
        r = call("run", "-b", b, rb.cid(runtime))
        assert r.returncode == 0, (runtime, r.stderr)
        with open(os.path.join(out, "seen")) as f:
            seen[runtime] = f.read()
    assert seen == {"pyrun": "root of pyrun\n", "runc": "root of runc\n"}


# ------------------------------------------------- item 11: the pty's owner

def test_the_pty_belongs_to_the_process_user(rt, rb):
    """runc chowns the terminal to the process's uid (the gid stays the
    devpts mount's, 5 in runc spec's config), so a non-root process can use
    its own console (mesg, stty on its tty, ssh-style checks)."""
    from test_terminal import ConsoleSocket, read_until

    seen = {}
    for runtime in ("pyrun", "runc"):
        def edit(config):
            config["process"]["terminal"] = True
            config["process"]["user"] = {"uid": 1000, "gid": 1000}
        b = rb.make(["sh", "-c", "stat -c owner=%u:%g $(tty); id -u"], _with_ranges(rt, edit))
        sock = os.path.join(rt.dir, f"console-{runtime}.sock")
        console = ConsoleSocket(sock)
        rt._chown(sock)
        cid = rb.cid(runtime)
        call = rt if runtime == "pyrun" else rb.runc
        r = call("create", "--console-socket", sock, "-b", b, cid)
        assert r.returncode == 0, (runtime, r.stderr)
        console.thread.join(10)
        assert call("start", cid).returncode == 0
        out = read_until(console.master, b"\n1000").decode().replace("\r", "")
        seen[runtime] = [line for line in out.splitlines() if line.startswith("owner=")]
        os.close(console.master)
    assert seen["runc"] and seen["runc"][0].startswith("owner=1000:"), seen
    assert seen["pyrun"] == seen["runc"], seen


def test_a_capability_the_runtime_lacks_is_named(rt, rb):
    """The OCI suite's privileged config asks for every capability; where
    root itself lacks one (this CI host's has no CAP_SYS_RESOURCE), create
    fails, for runc too: the error names the syscall and the capability."""
    import _prctl

    from pyrun.config.spec_names import CAPABILITIES

    last = int(open("/proc/sys/kernel/cap_last_cap").read())
    lacking = [name for name, n in CAPABILITIES.items() if n <= last and not _prctl.prctl(_prctl.PR_CAPBSET_READ, n)]
    if not lacking or rt.rootless:
        pytest.skip("root holds every capability here")
    b = rb.make(["true"], _caps_plus(lacking[0]))
    p = rt("run", "-b", b, rb.cid("pyrun"))
    r = rb.runc("run", "-b", rb.make(["true"], _caps_plus(lacking[0])), rb.cid("runc"))
    assert r.returncode != 0
    assert p.returncode == 1 and f"capset: Operation not permitted (EPERM): process.capabilities ({lacking[0]}" \
        in p.stderr, p.stderr


# ------------------------------------------------- the create hooks' state

CRUN = shutil.which("crun")


def crun(rb, *args, timeout: float = 60) -> subprocess.CompletedProcess:
    """crun as root, as the OCI suite's reference runs are made: it refuses
    a hybrid host's cgroup2 at /sys/fs/cgroup/unified, so it runs in a
    private mount namespace with an empty tmpfs there."""
    hide = "mount -t tmpfs none /sys/fs/cgroup/unified && " if os.path.isdir("/sys/fs/cgroup/unified") else ""
    root = os.path.join(rb.rt.dir, "crun-state")
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                           hide + 'exec "$0" "$@"', CRUN, "--root", root, *map(str, args)],
                          capture_output=True, text=True, cwd=rb.rt.dir, input="",
                          timeout=timeout)  # stdin a pipe: crun chowns its stdio, /dev/null too


def test_create_hooks_read_status_created(rt, rb):
    """runtime-spec 1.1+ lifecycle: the create operation's environment is
    step 2 ("creating"); prestart, createRuntime and createContainer hooks
    are steps 3 to 5, after it, and "created" is the status from then until
    the user's program runs. crun sends "created" to all three (the OCI
    suite's hooks_stdin checks prestart's); runc 1.1 sends "creating"."""
    runtimes = ["pyrun"] + (["crun"] if CRUN and not rt.rootless else [])
    kinds = ("prestart", "createRuntime", "createContainer")
    seen = {}
    for runtime in runtimes:
        out = rt.mkdir(f"hook-state-{runtime}")

        def edit(config, out=out):
            config["hooks"] = {kind: [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out}/{kind}"]}]
                               for kind in kinds}
        cid = rb.cid(runtime if runtime == "pyrun" else "crun")
        b = rb.make(["true"], edit)
        r = rt("run", "-b", b, cid) if runtime == "pyrun" else crun(rb, "run", "-b", b, cid)
        assert r.returncode == 0, (runtime, r.stderr)
        for kind in kinds:
            with open(os.path.join(out, kind)) as f:
                state = json.load(f)
            assert state["id"] == cid, (runtime, kind, state)
            seen[runtime, kind] = state["status"]
    assert set(seen.values()) == {"created"}, seen
