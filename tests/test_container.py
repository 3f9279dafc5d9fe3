"""What a container is: its own PID 1, processes, hostname, users, mounts
and root filesystem. Each test runs rootful and rootless (fixture ``rt``)."""

from __future__ import annotations

import os
import signal

from conftest import host_mounts


def run(rt, args, rootfs="busybox", cid="c1", extra=(), config=None, **kw):
    bundle = rt.bundle(args, rootfs=rootfs, config=config)
    return rt("run", *extra, "-b", bundle, cid, **kw)


def test_hello_bundle_runs(rt):
    p = run(rt, ["/hello"], rootfs="hello")
    assert p.returncode == 0, p.stderr
    assert "Hello from pyrun! pid=2 uid=0 gid=0 hostname=pyrun-test" in p.stdout


def test_init_is_pid1_and_entrypoint_is_pid2(rt):
    p = run(rt, ["sh", "-c", "echo $$; cat /proc/1/comm; readlink /proc/1/exe"])
    assert p.returncode == 0, p.stderr
    pid, comm, exe = p.stdout.split("\n")[:3]
    assert pid == "2"
    assert comm.startswith("memfd:pyrun-ini")
    # PID 1 runs from a sealed memfd, not from a host file (CVE-2019-5736)
    assert exe.startswith("/memfd:pyrun-init")


def test_no_init_makes_the_entrypoint_pid1(rt):
    p = run(rt, ["sh", "-c", "echo $$"], extra=["--no-init"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "1"


def test_init_annotation_turns_the_init_off(rt):
    config = rt.config(["sh", "-c", "echo $$"])
    config["annotations"].update({"org.pyrun.init": "false"})
    p = run(rt, None, config=config)
    assert p.stdout.strip() == "1", p.stderr


def test_init_holds_none_of_the_containers_stdio(rt):
    """`pyrun run -d ID | cat` returns once the entrypoint has let go of the
    pipe, while the container keeps running: PID 1 (pyrun's init) must not
    hold the caller's stdout/stderr for the container's whole life."""
    import shlex
    import subprocess
    import time

    cid = f"stdio-{os.getpid()}"
    bundle = rt.bundle(["sh", "-c", "echo started; exec sleep 30 >/dev/null 2>&1"])
    cmd = shlex.join(rt.cmd("run", "--init", "-d", "-b", bundle, cid)) + " 2>&1 | cat"
    t0 = time.monotonic()
    p = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=20, env=rt.env,
                       cwd=rt.dir, stdin=subprocess.DEVNULL, **rt._user_kw())
    took = time.monotonic() - t0
    try:
        assert p.stdout.strip() == "started", p.stdout + p.stderr
        assert took < 5, f"the pipe stayed open for {took:.1f} s"
        assert rt.state(cid)["status"] == "running"
    finally:
        rt("delete", "--force", cid)


def test_ps_shows_only_the_containers_processes(rt):
    p = run(rt, ["hello", "ps"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["1", "2"]


def test_hostname_and_domainname(rt):
    config = rt.config(["sh", "-c", "hostname; hello domainname"])
    config["hostname"] = "box1"
    config["domainname"] = "example.test"
    p = run(rt, None, config=config)
    assert p.stdout.split() == ["box1", "example.test"], p.stderr
    assert os.uname().nodename != "box1"


def test_uid0_inside_maps_to_the_caller_outside(rt):
    bundle = rt.bundle(["sh", "-c", "id -u; cat /proc/self/uid_map; sleep 30"])
    proc = rt.popen("run", "-b", bundle, "c1", stdout=__import__("subprocess").PIPE)
    try:
        s = rt.wait_status("c1", "running")
        first = proc.stdout.readline().strip()
        uid_map = proc.stdout.readline().split()
        assert first == "0"
        if rt.rootless:
            assert uid_map == ["0", str(rt.uid), "1"]
        # The container's processes belong to the caller on the host.
        with open(f"/proc/{s['pid']}/status") as f:
            uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
        assert uids == [str(rt.uid)] * 4
    finally:
        rt("kill", "c1", "KILL")
        proc.wait(timeout=10)


def test_mounts_do_not_leak_to_the_host(rt):
    before = host_mounts()
    config = rt.config(["sh", "-c", "mkdir -p /mnt && mount -t tmpfs none /mnt && echo mounted; sleep 30"])
    caps = config["process"].setdefault("capabilities", {})
    for kind in ("bounding", "effective", "permitted"):
        caps[kind] = sorted(set(caps.get(kind, [])) | {"CAP_SYS_ADMIN"})
    config["linux"].pop("seccomp")  # the default profile denies mount(2)
    bundle = rt.bundle(config=config)
    proc = rt.popen("run", "-b", bundle, "c1", stdout=__import__("subprocess").PIPE)
    try:
        assert proc.stdout.readline().strip() == "mounted"
        assert host_mounts() == before
    finally:
        rt("kill", "c1", "KILL")
        proc.wait(timeout=10)
    assert host_mounts() == before


def test_bundle_is_untouched_and_the_next_container_starts_clean(rt):
    lower = rt.rootfs["busybox"]
    before = sorted(os.listdir(os.path.join(lower, "etc")))
    passwd = open(os.path.join(lower, "etc", "passwd")).read()
    p = run(rt, ["sh", "-c", "echo x > /etc/newfile && echo hacked >> /etc/passwd && rm /bin/ls && cat /etc/newfile"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "x"
    assert sorted(os.listdir(os.path.join(lower, "etc"))) == before
    assert open(os.path.join(lower, "etc", "passwd")).read() == passwd
    assert os.path.lexists(os.path.join(lower, "bin", "ls"))
    p = run(rt, ["sh", "-c", "test -e /etc/newfile && echo leaked; grep -c hacked /etc/passwd; test -e /bin/ls && echo ls-ok"],
            cid="c2")
    assert "leaked" not in p.stdout
    assert p.stdout.split() == ["0", "ls-ok"]


def test_readonly_root(rt):
    config = rt.config(["sh", "-c", "touch /x 2>/dev/null && echo writable || echo readonly"])
    config["root"]["readonly"] = True
    p = run(rt, None, config=config)
    assert p.stdout.strip() == "readonly", p.stderr


def test_direct_rootfs_mode_writes_to_the_bundle(rt, workspace):
    # runc's behaviour, on request: a private copy so other tests are unaffected
    import shutil
    import subprocess

    rootfs = os.path.join(rt.dir, "direct-rootfs")
    subprocess.run(["cp", "-a", rt.rootfs["hello"], rootfs], check=True)
    config = rt.config(["/hello", "write", "/written", "yes"], rootfs="hello")
    config["root"]["path"] = rootfs
    p = run(rt, None, config=config, extra=["--rootfs-mode", "direct"])
    assert p.returncode == 0, p.stderr
    assert open(os.path.join(rootfs, "written")).read() == "yes"
    shutil.rmtree(rootfs)


def test_zombies_are_reaped(rt):
    p = run(rt, ["sh", "-c", "hello orphans 5; sleep 0.6; hello zombies"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "0"


def test_exit_codes(rt):
    assert run(rt, ["hello", "true"], cid="a").returncode == 0
    assert run(rt, ["hello", "exit", "42"], cid="b").returncode == 42
    assert run(rt, ["sh", "-c", "kill -9 $$"], cid="c").returncode == 128 + 9


def test_exit_code_of_signal_without_init(rt):
    bundle = rt.bundle(["sleep", "30"])
    proc = rt.popen("run", "--no-init", "-b", bundle, "c1")
    rt.wait_status("c1", "running")
    rt.ok("kill", "c1", "9")
    assert proc.wait(timeout=10) == 137


def test_sigterm_from_pyrun_kill_reaches_the_entrypoint(rt):
    out = os.path.join(rt.dir, "out.txt")
    bundle = rt.bundle(["hello", "pause"])
    with open(out, "w") as f:
        if rt.rootless:
            os.chown(out, rt.uid, rt.gid)
        p = rt("run", "-d", "-b", bundle, "c1", stdout=f, capture_output=False, stderr=None)
    assert p.returncode == 0
    rt.wait_handler("c1", signal.SIGTERM)  # the entrypoint's sigaction(2) is done
    rt.ok("kill", "c1", "TERM")
    assert rt.wait_status("c1", "stopped")["status"] == "stopped"
    assert open(out).read().strip() == "got SIGTERM"
    rt.ok("delete", "c1")


def test_foreground_run_forwards_signals(rt):
    bundle = rt.bundle(["hello", "pause"])
    proc = rt.popen("run", "-b", bundle, "c1", stdout=__import__("subprocess").PIPE)
    rt.wait_status("c1", "running")
    rt.wait_handler("c1", signal.SIGTERM)
    proc.send_signal(signal.SIGTERM) if not rt.rootless else rt.ok("kill", "c1", "SIGTERM")
    assert proc.wait(timeout=10) == 0
    assert proc.stdout.read().strip() == "got SIGTERM"


def test_process_user_cwd_env_rlimits(rt):
    config = rt.config(["sh", "-c", "id -u; id -g; pwd; echo $FOO; ulimit -n; umask"])
    config["process"]["cwd"] = "/tmp"
    config["process"]["env"].append("FOO=bar")
    config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 512}]
    if not rt.rootless:
        config["process"]["user"] = {"uid": 1000, "gid": 1000, "umask": 0o027}
    p = run(rt, None, config=config)
    assert p.returncode == 0, p.stderr
    ids = ["1000", "1000"] if not rt.rootless else ["0", "0"]
    umask = "0027" if not rt.rootless else "0022"
    assert p.stdout.split() == ids + ["/tmp", "bar", "512", umask]


def test_loopback_is_up(rt):
    p = run(rt, ["sh", "-c", "ip -o link show lo"])
    assert p.returncode == 0, p.stderr
    assert "UP" in p.stdout.split("<")[1].split(">")[0]


def test_dev_has_the_default_devices(rt):
    p = run(rt, ["sh", "-c", "ls /dev; echo x > /dev/null && head -c 4 /dev/zero | wc -c; readlink /dev/fd"])
    assert p.returncode == 0, p.stderr
    for name in ("null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx", "stdin"):
        assert name in p.stdout.split(), name
    assert p.stdout.split()[-2:] == ["4", "/proc/self/fd"]


def test_only_stdio_reaches_the_container(rt):
    p = run(rt, ["hello", "fds"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["0", "1", "2"]


def test_rootless_id_ranges_use_newuidmap_and_delete_cleans_up(rt):
    """uid 0 -> the user, 1..65536 -> its /etc/subuid range (newuidmap).
    Files the container gives to uid 1000 belong to a subordinate id on the
    host; delete still removes them (as root of a user namespace)."""
    if not rt.rootless or os.geteuid() != 0:
        import pytest

        pytest.skip("needs the test user and its /etc/subuid range")
    from conftest import SUBID_COUNT, SUBID_START

    config = rt.config(["sh", "-c", "cat /proc/self/uid_map; mkdir -p /home/u && touch /home/u/f && "
                        "chown -R 1000:1000 /home/u && stat -c %u /home/u/f && chmod 700 /home/u"])
    for kind in ("bounding", "effective", "permitted"):
        config["process"]["capabilities"][kind] += ["CAP_CHOWN", "CAP_FOWNER"]
    for key, own in (("uidMappings", rt.uid), ("gidMappings", rt.gid)):
        config["linux"][key] = [{"containerID": 0, "hostID": own, "size": 1},
                                {"containerID": 1, "hostID": SUBID_START, "size": SUBID_COUNT}]
    p = run(rt, None, config=config)
    assert p.returncode == 0, p.stderr
    lines = [line.split() for line in p.stdout.splitlines()]
    assert ["1", str(SUBID_START), str(SUBID_COUNT)] in lines
    assert lines[-1] == ["1000"]
    assert os.listdir(rt.root) == []


def test_log_format_json_and_debug_steps(rt):
    import json

    logfile = os.path.join(rt.dir, "log.json")
    p = rt("--log", logfile, "--log-format", "json", "create", "-b", rt.bundle(["no-such-program"]), "c1")
    assert p.returncode == 1
    entries = [json.loads(line) for line in open(logfile)]
    assert entries[-1]["level"] == "error" and "process.args[0]" in entries[-1]["msg"]
    assert entries[-1]["time"].endswith("Z")
    p = rt("--debug", "run", "-b", rt.bundle(["true"]), "c2")
    assert p.returncode == 0, p.stderr
    for step in ("unshare(", "mount(root, overlay)", "pivot_root", "lookup(args[0])"):
        assert f"step {step}" in p.stderr, step
