"""Input an attacker controls, bounded (issue 22 items 9-12, issue 23 items 2, 9, 10).

The bundle's owner can make config.json a device, a FIFO or a huge file;
a console-socket receiver can refuse to accept or close at once; a seccomp
profile can name a system call libseccomp does not know; a config can ask
for device nodes, cgroup mounts and a /dev that the host must not give.
Each test was watched failing on the code before its fix; where runc is
installed it runs the same scenario beside pyrun and pyrun must match it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest
from conftest import Residue
from test_attacks import one_line
from test_runc_semantics import RUNC, Bundles

MiB = 1 << 20
PREFIX = "h-input-"


class OwnResidue(Residue):
    """Residue, blind to what other runs on this host make meanwhile (they
    share /var/lib/pyrun, the mount table and the process list): the state
    root is empty, and no layer dir or mount names one of this file's ids."""

    def check(self, cid=None):
        state_entries = os.listdir(self.rt.root) if os.path.isdir(self.rt.root) else []
        assert state_entries == [], f"state left behind: {state_entries}"
        layers = os.listdir(self.rt.layers) if os.path.isdir(self.rt.layers) else []
        assert [n for n in layers if n.startswith(PREFIX)] == [], layers
        with open("/proc/self/mountinfo") as f:
            assert PREFIX not in f.read()


@pytest.fixture
def residue(rt):
    return OwnResidue(rt)


@pytest.fixture
def rb(rt):
    b = Bundles(rt)
    yield b
    b.cleanup()


def _cid() -> str:
    return f"{PREFIX}{uuid.uuid4().hex[:10]}"


# ----------------------------------------------- 22.9 config.json is bounded input

def _bundle_with_config(rt, make) -> str:
    """A bundle whose config.json is what ``make(path)`` puts there."""
    b = rt.bundle(["true"])
    path = os.path.join(b, "config.json")
    os.unlink(path)
    make(path)
    return b


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "directory"])
def test_config_json_that_is_not_a_regular_file_is_refused_at_once(rt, residue, rb, kind):
    def make(path):
        if kind == "dev-zero":
            os.symlink("/dev/zero", path)
        elif kind == "fifo":
            os.mkfifo(path, 0o644)
        else:
            os.mkdir(path)

    b = _bundle_with_config(rt, make)
    start = time.monotonic()
    p = rt("create", "-b", b, _cid(), timeout=20)
    took = time.monotonic() - start
    assert p.returncode != 0
    line = one_line(p.stderr)
    assert "config.json" in line and "regular file" in line, line
    assert took < 5, took
    residue.check()
    if RUNC and kind == "dev-zero":  # runc's JSON decoder stops at the first NUL
        r = rb.runc("create", "-b", b, rb.cid("runc"), timeout=20)
        assert r.returncode != 0


def test_config_json_larger_than_the_limit_is_refused(rt, residue, rb):
    config = rt.config(["true"])
    config["annotations"] = {"big": "x" * (64 * MiB)}
    b = rt.bundle(config=config)
    p = rt("create", "-b", b, _cid(), timeout=30)
    assert p.returncode != 0
    line = one_line(p.stderr)
    assert "config.json" in line and "64 MiB" in line, line
    residue.check()


def test_state_does_not_reparse_large_annotations(rt):
    """Every command reads the record: a config with large annotations (up
    to the limit) must not make each later state/kill/delete parse them."""
    config = rt.config(["sleep", "60"])
    config["annotations"] = {"big": "x" * (48 * MiB), "small": "s"}
    cid = _cid()
    rt.ok("run", "-d", "-b", rt.bundle(config=config), cid, timeout=60)
    record = os.path.join(rt.root, cid, "state.json")
    assert os.path.getsize(record) < 64 * 1024, "the record carries the annotations"
    state = rt.state(cid)
    assert state["annotations"]["small"] == "s" and len(state["annotations"]["big"]) == 48 * MiB
    rt.ok("delete", "--force", cid)


# ------------------------------------ 22.10 a console socket cannot hang or crash pyrun

class Receiver:
    """An AF_UNIX listener at a path the runtime's user can reach:
    ``never-accepts`` has its backlog full (connect(2) would wait),
    ``closes`` accepts each connection and closes it at once."""

    def __init__(self, rt, mode: str):
        self.path = os.path.join(rt.dir, f"console-{uuid.uuid4().hex[:8]}.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o777)
        self.sock.listen(0)
        self.fillers: list[socket.socket] = []
        self.stop = False
        if mode == "never-accepts":
            while True:  # fill the backlog: the next connect would block
                c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                c.setblocking(False)
                try:
                    c.connect(self.path)
                except BlockingIOError:
                    c.close()
                    break
                self.fillers.append(c)
        else:
            self.thread = threading.Thread(target=self._close_each, daemon=True)
            self.thread.start()

    def _close_each(self):
        self.sock.settimeout(0.1)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            c.close()

    def close(self):
        self.stop = True
        for c in self.fillers:
            c.close()
        self.sock.close()


def _tty_config(rt, args):
    config = rt.config(args)
    config["process"]["terminal"] = True
    return config


@pytest.mark.parametrize("mode", ["never-accepts", "closes"])
def test_console_socket_receiver_cannot_hang_or_crash_create(rt, residue, rb, mode):
    recv = Receiver(rt, mode)
    try:
        start = time.monotonic()
        p = rt("run", "-d", "--console-socket", recv.path, "-b", rt.bundle(config=_tty_config(rt, ["sleep", "30"])),
               _cid(), timeout=30)
        took = time.monotonic() - start
        assert p.returncode != 0
        line = one_line(p.stderr)
        assert "--console-socket" in line, line
        assert took < 3, took
        residue.check()
        if RUNC:
            b = rb.make(["sleep", "30"], edit=lambda c: c["process"].__setitem__("terminal", True))
            r = rb.runc("run", "-d", "--console-socket", recv.path, "-b", b, rb.cid("runc"), timeout=30)
            assert r.returncode != 0, "runc fails too"
    finally:
        recv.close()


def test_exec_console_socket_receiver_that_never_accepts_fails_promptly(rt):
    cid = _cid()
    rt.ok("run", "-d", "-b", rt.bundle(["sleep", "30"]), cid)
    recv = Receiver(rt, "never-accepts")
    try:
        start = time.monotonic()
        p = rt("exec", "-t", "-d", "--console-socket", recv.path, cid, "true", timeout=30)
        assert p.returncode != 0
        assert "--console-socket" in one_line(p.stderr)
        assert time.monotonic() - start < 3
    finally:
        recv.close()
        rt("delete", "--force", cid)


# ------------------------- 22.11 a seccomp denial pyrun cannot enforce is refused

def test_seccomp_denial_of_an_unknown_call_is_refused_with_its_path(rt, residue):
    config = rt.config(["true"])
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["no_such_call_ever"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["getppid", "no_such_call_ever"], "action": "SCMP_ACT_ERRNO"}]}
    p = rt("run", "-b", rt.bundle(config=config), _cid())
    assert p.returncode != 0
    assert "linux.seccomp.syscalls[1].names[1]" in one_line(p.stderr)
    residue.check()


def test_seccomp_denial_of_a_call_newer_than_libseccomp_runs(rt):
    """setxattrat is unknown to libseccomp 2.5.4: denied by its number."""
    config = rt.config(["true"])
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["setxattrat", "getxattrat"], "action": "SCMP_ACT_ERRNO"}]}
    rt.ok("run", "-b", rt.bundle(config=config), _cid())


# ---------------------------- 23.9 / 22.12 device nodes and the device cgroup

KMSG = {"type": "c", "path": "/dev/kmsg", "major": 1, "minor": 11, "fileMode": 0o644, "uid": 0, "gid": 0}
# open(2) for writing, no write(2): the device cgroup decides at open.
OPEN_KMSG = ["sh", "-c", "if (: > /dev/kmsg) 2>/dev/null; then echo OPENED; else echo DENIED; fi"]


def _both_rootful(rt, rb, args, edit):
    """``run`` one config under pyrun and (if installed) runc: (pyrun, runc or None)."""
    p = rt("run", "-b", rb.make(args, edit), rb.cid("pyrun"))
    r = rb.runc("run", "-b", rb.make(args, edit), rb.cid("runc")) if RUNC else None
    return p, r


def test_a_linux_devices_node_is_not_allowed_when_resources_deny_it(rootful, rb):
    """runc makes the node and allows only its default devices: the
    container cannot open /dev/kmsg for writing (the host's kernel log)."""
    def edit(config):
        config["linux"]["devices"] = [KMSG]
        config["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}

    p, r = _both_rootful(rootful, rb, OPEN_KMSG, edit)
    assert p.returncode == 0, p.stderr
    assert "DENIED" in p.stdout, p.stdout
    if r is not None:
        assert r.returncode == 0 and "DENIED" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("access, opens", [("rwa", True), ("wa", True), ("r", False)])
def test_device_access_letters_as_runc_reads_them(rootful, rb, access, opens):
    """runc keeps the r, w and m of an access string and ignores the rest."""
    def edit(config):
        config["linux"]["devices"] = [KMSG]
        config["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"},
                                                    {"allow": True, "type": "c", "major": 1, "minor": 11,
                                                     "access": access}]}

    p, r = _both_rootful(rootful, rb, OPEN_KMSG, edit)
    assert p.returncode == 0, p.stderr
    want = "OPENED" if opens else "DENIED"
    assert want in p.stdout, p.stdout
    if r is not None:
        assert want in r.stdout, r.stdout + r.stderr


def test_device_access_without_any_known_letter_is_refused(rootful):
    rt = rootful
    config = rt.config(["true"])
    config["linux"]["resources"] = {"devices": [{"allow": True, "type": "c", "major": 1, "minor": 11,
                                                 "access": "x"}]}
    p = rt("run", "-b", rt.bundle(config=config), _cid())
    assert p.returncode != 0
    assert "linux.resources.devices[0].access" in one_line(p.stderr)


def test_dev_ptmx_in_linux_devices(rt, rb):
    """runc makes /dev/ptmx a node when the config asks for one."""
    ptmx = {"type": "c", "path": "/dev/ptmx", "major": 5, "minor": 2, "fileMode": 0o666, "uid": 0, "gid": 0}

    def edit(config):
        config["linux"]["devices"] = [ptmx]

    args = ["sh", "-c", "ls -l /dev/ptmx | cut -c1"]
    p = rt("run", "-b", rb.make(args, edit), rb.cid("pyrun"))
    assert p.returncode == 0, p.stderr
    if RUNC:
        r = rb.runc("run", "-b", rb.make(args, edit), rb.cid("runc"))
        assert r.returncode == 0, r.stderr
        assert p.stdout == r.stdout


# ------------------------------------------------------------- 23.10 mounts

@pytest.mark.parametrize("where", ["proc", "sys"])
def test_proc_or_sys_that_is_a_symlink_in_the_rootfs_is_refused(rt, rb, where):
    """runc: 'filesystem "proc" must be mounted on ordinary directory'
    (the mount would land wherever the image's link points)."""
    def plant(bundle):
        target = os.path.join(bundle, "rootfs", where)
        shutil.rmtree(target)
        os.symlink("tmp", target)

    b1, b2 = rb.make(["true"]), rb.make(["true"])
    plant(b1)
    plant(b2)
    fstype = "proc" if where == "proc" else "sysfs"
    with open(os.path.join(b1, "config.json")) as f:
        types = {m["destination"]: m.get("type") for m in json.load(f)["mounts"]}
    refused = types[f"/{where}"] == fstype  # rootless runc spec binds /sys: runc checks only proc and sysfs
    p = rt("run", "-b", b1, rb.cid("pyrun"))
    assert (p.returncode != 0) == refused, p.stderr
    if refused:
        line = one_line(p.stderr)
        assert f'filesystem "{fstype}" must be mounted on ordinary directory' in line, line
        assert os.listdir(os.path.join(b1, "rootfs", "tmp")) == []
    if RUNC:
        r = rb.runc("run", "-b", b2, rb.cid("runc"))
        assert (r.returncode != 0) == refused, r.stderr
        if refused:
            assert f'filesystem "{fstype}" must be mounted on ordinary directory' in r.stderr


def test_read_only_dev_is_made_then_remounted_read_only(rt, rb):
    """runc makes /dev's nodes, links and mount points first and remounts
    /dev read-only at the end."""
    def edit(config):
        for m in config["mounts"]:
            if m["destination"] == "/dev":
                m["options"].append("ro")

    args = ["sh", "-c", "ls /dev/pts >/dev/null && echo pts; echo x > /dev/null && echo null; "
                        "touch /dev/new 2>/dev/null || echo ro; ls -l /dev/ptmx | cut -c1; "
                        "grep ' /dev ' /proc/self/mountinfo | cut -d' ' -f6 | tr , '\\n' | grep -x -e ro -e nosuid"]
    p = rt("run", "-b", rb.make(args, edit), rb.cid("pyrun"))
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["pts", "null", "ro", "l", "ro", "nosuid"], p.stdout
    if RUNC:
        r = rb.runc("run", "-b", rb.make(args, edit), rb.cid("runc"))
        assert r.returncode == 0, r.stderr
        assert p.stdout == r.stdout


def test_no_pivot_leaves_no_full_proc_to_mount_again(rt, rb):
    """--no-pivot: the host's /proc and /sys are gone from the container's
    mount namespace before MS_MOVE, so a new user namespace inside cannot
    mount a procfs (the kernel allows it only where a full one is visible)."""
    def edit(config):
        caps = config["process"]["capabilities"]
        for key in ("bounding", "effective", "permitted"):
            caps[key] = sorted(set(caps[key]) | {"CAP_SETFCAP"})

    args = ["unshare", "-mrpf", "sh", "-c", "mount -t proc none /proc && echo MOUNTED; echo done"]
    p = rt("run", "--no-pivot", "-b", rb.make(args, edit), rb.cid("pyrun"))
    assert "done" in p.stdout, p.stderr
    assert "MOUNTED" not in p.stdout
    if RUNC:
        r = rb.runc("run", "--no-pivot", "-b", rb.make(args, edit), rb.cid("runc"))
        assert "done" in r.stdout and "MOUNTED" not in r.stdout, r.stdout + r.stderr
    q = rt("run", "--no-pivot", "-b", rb.make(["sh", "-c", "unshare -U true && echo userns"]), rb.cid("pyrun"))
    assert q.stdout == "userns\n", q.stderr


# ------------------- 23.2 / 22.12 a cgroup mount shows the container's own cgroups

def _cgroup_v2_host() -> bool:
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


CGROUP_MOUNT = {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
# What the container sees: its cgroup mounts (the cgroup root and the mount
# point of each), the listing, and its own memory limit (docker run --memory).
CGROUP_PROBE = ["sh", "-c",
                "grep -E ' /sys/fs/cgroup' /proc/self/mountinfo | cut -d' ' -f4,5,6 | sed 's/,relatime//';"
                "echo ---; ls /sys/fs/cgroup; echo ---; cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                "/sys/fs/cgroup/memory.max 2>/dev/null; ls /sys/fs/cgroup/pids/pids.max 2>/dev/null; "
                "touch /sys/fs/cgroup/memory/x 2>/dev/null && echo WRITABLE; echo end"]


def _limited(cid: str):
    """64 MiB, the cgroup mount, and the cgroup at /h-input-cg/ID for both
    runtimes (runc's default is /ID, pyrun's /pyrun/ID)."""
    def edit(config):
        config["linux"].setdefault("resources", {})["memory"] = {"limit": 64 * MiB}
        config["linux"]["cgroupsPath"] = f"/{PREFIX}cg/{cid}"
        if not any(m["destination"] == "/sys/fs/cgroup" for m in config["mounts"]):
            config["mounts"].append(dict(CGROUP_MOUNT))
    return edit


def _mountinfo_of(text: str) -> list[str]:
    """The probe's mount lines with the container's own id taken out."""
    return text.split("---")[0].split("\n")


def test_cgroup_mount_shows_only_the_containers_own_cgroups(rootful, rb):
    """runc on cgroup v1 (and hybrid): a tmpfs with each hierarchy of the
    container's own cgroup bound read-only at its name; never the host's
    tree (other containers' cgroups, docker, k8s.io...)."""
    rt = rootful
    pid_, rid = rb.cid("pyrun"), rb.cid("runc")
    try:
        p = rt("run", "-b", rb.make(CGROUP_PROBE, _limited(pid_)), pid_)
        assert p.returncode == 0, p.stderr
        assert p.stdout.endswith("end\n"), p.stdout
        assert str(64 * MiB) in p.stdout, p.stdout          # its own limit, readable
        assert "WRITABLE" not in p.stdout                    # read-only, as the config says
        for line in _mountinfo_of(p.stdout):
            if " /sys/fs/cgroup/" in line:
                assert line.split()[0].endswith(pid_), line   # its own cgroup, not the host's root
        if not _cgroup_v2_host():
            assert "pids.max" in p.stdout
            assert "unified" not in p.stdout.split("---")[1]  # runc binds no cgroup2 tree on a hybrid host
        if RUNC:
            r = rb.runc("run", "-b", rb.make(CGROUP_PROBE, _limited(rid)), rid)
            assert r.returncode == 0, r.stderr
            assert p.stdout.replace(pid_, "ID") == r.stdout.replace(rid, "ID")
    finally:
        rb.cleanup()
        for d in os.listdir("/sys/fs/cgroup"):  # the parent both runtimes made and leave, as runc leaves it
            try:
                os.rmdir(os.path.join("/sys/fs/cgroup", d, f"{PREFIX}cg"))
            except OSError:
                pass


def test_cgroup_mount_rootless_never_shows_the_hosts_root(rt):
    """Rootless (no cgroup of its own on a v1 host): no hierarchy's root,
    whose directories are other users' and containers' cgroups. A decoy
    directory of a random name at each hierarchy's root (made as root, as
    another user's cgroup would be) must not be seen inside."""
    if not rt.rootless:
        pytest.skip("rootful: the test above")
    if os.geteuid() != 0:
        pytest.skip("the decoys at the hierarchies' roots need root")
    decoy = f"{PREFIX}decoy-{uuid.uuid4().hex[:8]}"
    roots = [os.path.join("/sys/fs/cgroup", h) for h in os.listdir("/sys/fs/cgroup")
             if os.path.ismount(os.path.join("/sys/fs/cgroup", h))]
    made = []
    try:
        for r in roots:
            try:
                os.mkdir(os.path.join(r, decoy))
                made.append(os.path.join(r, decoy))
            except OSError:  # read-only or not a cgroup hierarchy
                pass
        assert made, "no cgroup hierarchy to put a decoy in"
        probe = "for d in /sys/fs/cgroup/*/; do ls -1a $d; done; echo end"
        config = rt.config(["sh", "-c", probe])
        config["mounts"] = [m for m in config["mounts"] if not m["destination"].startswith("/sys/fs/cgroup")]
        config["mounts"].append(dict(CGROUP_MOUNT))
        p = rt("run", "-b", rt.bundle(config=config), _cid())
        assert p.returncode == 0, p.stderr
        assert p.stdout.endswith("end\n")
        assert decoy not in p.stdout, f"a hierarchy's root is visible inside:\n{p.stdout}"
    finally:
        for d in made:
            os.rmdir(d)


def test_podman_default_cgroup_mount(rootful, rb):
    """podman's config: a cgroup mount rw=false with --memory; the limit is
    readable inside as under runc (see ../shared/PODMAN-NOTES.md)."""
    def edit(config):
        config["mounts"].append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                                 "options": ["rprivate", "nosuid", "noexec", "nodev", "relatime", "ro"]})
        config["linux"]["resources"] = {"memory": {"limit": 32 * MiB, "swap": 64 * MiB},
                                        "devices": [{"allow": False, "access": "rwm"}]}

    args = ["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max 2>/dev/null; true"]
    p = rootful("run", "-b", rb.make(args, edit), rb.cid("pyrun"))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == str(32 * MiB), p.stdout
    if RUNC:
        r = rb.runc("run", "-b", rb.make(args, edit), rb.cid("runc"))
        assert p.stdout == r.stdout, r.stderr


@pytest.mark.parametrize("ptmx", [False, True])
def test_created_container_holds_no_host_socket(rt, ptmx):
    """The --console-socket connection is the host side's: PID 1 of a
    created container (still pyrun's) holds no socket at all. (With
    /dev/ptmx in linux.devices too: issue 23.9, the pty still opens.)"""
    path = os.path.join(rt.dir, f"console-{uuid.uuid4().hex[:8]}.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    os.chmod(path, 0o777)
    srv.listen(1)
    got = []

    def take():
        c, _ = srv.accept()
        got.append(socket.recv_fds(c, 64, 1))
        got.append(c)

    t = threading.Thread(target=take, daemon=True)
    t.start()
    cid = _cid()
    try:
        config = _tty_config(rt, ["sleep", "30"])
        if ptmx:
            config["linux"]["devices"] = [{"type": "c", "path": "/dev/ptmx", "major": 5, "minor": 2,
                                           "fileMode": 0o666, "uid": 0, "gid": 0}]
        rt.ok("create", "--console-socket", path, "-b", rt.bundle(config=config), cid)
        t.join(10)
        assert got and got[0][1], "the receiver got the pty master"
        pid = rt.state(cid)["pid"]
        links = [os.readlink(f"/proc/{pid}/fd/{n}") for n in os.listdir(f"/proc/{pid}/fd")]
        assert not [ln for ln in links if ln.startswith("socket:")], links
    finally:
        for fd in (got[0][1] if got else []):
            os.close(fd)
        srv.close()
        rt("delete", "--force", cid)


V2_PROBE = r"""
import os, sys
from pyrun.filesystem import cgroup_mount
from pyrun.kernel import syscalls as sc
target = sys.argv[1]
fd = os.open(target, sc.O_PATH | os.O_DIRECTORY)
reopen = lambda: os.open(target, sc.O_PATH | os.O_DIRECTORY)
cgroup_mount.mount(fd, reopen, sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC, False,
                   cgroup_mount.View(v2_dir=sys.argv[2]), "/sys/fs/cgroup")
for line in open("/proc/self/mountinfo"):
    f = line.split()
    if f[4] == target:
        print(f[3], f[5], line.split(" - ")[1].split()[0])
print(sorted(os.listdir(target)) == sorted(os.listdir(sys.argv[2] or "/nonexistent")) if sys.argv[2] else os.listdir(target))
"""


@pytest.mark.parametrize("own", [True, False])
def test_cgroup2_mount_binds_the_containers_cgroup_not_the_root(rootful, own):
    """cgroup v2 (this host's hybrid cgroup2 tree stands in for it), no
    cgroup namespace: the container's own cgroup is bound read-only; with
    none but the root, an empty read-only directory. In a private mount
    namespace (unshare -m): nothing reaches the host's mount table."""
    unified = "/sys/fs/cgroup/unified" if not _cgroup_v2_host() else "/sys/fs/cgroup"
    if not os.path.isdir(unified) or not shutil.which("unshare"):
        pytest.skip("no cgroup2 tree or no unshare(1)")
    # a cgroup of the tree, not its root: the first one there is (none is made)
    subs = sorted(e.name for e in os.scandir(unified) if e.is_dir(follow_symlinks=False))
    if own and not subs:
        pytest.skip("the cgroup2 tree has no cgroup below its root")
    mine = "/" + subs[0] if own else "/"
    source = os.path.normpath(unified + mine) if own else ""
    target = os.path.join(rootful.dir, f"cg-{uuid.uuid4().hex[:6]}")
    os.mkdir(target)
    p = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, "-P", "-c", V2_PROBE,
                        target, source], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    root, opts, fstype = lines[-2].split()
    assert opts.split(",")[0] == "ro"
    if own:
        assert (root, fstype) == (mine, "cgroup2") and lines[-1] == "True", p.stdout
    else:
        assert fstype == "tmpfs" and lines[-1] == "[]", p.stdout
