"""Attacks by the owner of a path pyrun is handed, and by every other local user.

Issue 22, items 2, 3, 6, 7 and 8. pyrun used to check a path and then use
it by name: the bundle's owner swapped ``root.path`` for a symlink between
check and mount, another user made the layers root and planted ``upper`` and
``work`` links in it, a symlink at the pid file's temporary name was
written through, and other users reached exec.fifo and the overlay's upper
layer through directories 0711. Every test here failed on the code before
its fix. The "host" each attack aims at is a decoy made by the test, never
a real host file.

The attacker is another uid: the test user (``pyrun-test``) when pyrun runs
as root, ``nobody`` when pyrun runs as the test user.
"""

from __future__ import annotations

import errno
import json
import os
import pwd
import subprocess
import time
import uuid

import pytest
from conftest import TEST_USER
from test_attacks import one_line, own_rootfs

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the attacker is another uid: needs root to be one")

RACES = int(os.environ.get("PYRUN_RACES", "200"))
PYTHON = "/usr/bin/python3"  # the attacker's, not the venv's

# renameat2(RENAME_EXCHANGE) of two names, in a loop, for a while.
EXCHANGE = r"""
import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
a, b, end = sys.argv[1].encode(), sys.argv[2].encode(), time.monotonic() + float(sys.argv[3])
print("go", flush=True)
while time.monotonic() < end:
    libc.renameat2(-100, a, -100, b, 2)
"""


def attacker(rt) -> tuple[int, int]:
    """Another local user than the one pyrun runs as."""
    pw = pwd.getpwnam("nobody" if rt.rootless else TEST_USER)
    return pw.pw_uid, pw.pw_gid


def as_user(uid_gid: tuple[int, int], script: str, *args: str, **kw) -> subprocess.Popen:
    uid, gid = uid_gid
    return subprocess.Popen([PYTHON, "-I", "-c", script, *args], user=uid, group=gid, extra_groups=[],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/", **kw)


def chown(path: str, uid_gid: tuple[int, int], recursive: bool = False) -> None:
    flags = "-hR" if recursive else "-h"
    subprocess.run(["chown", flags, f"{uid_gid[0]}:{uid_gid[1]}", path], check=True)


def decoy_root(rt) -> tuple[str, str]:
    """A directory that plays one of the host's (the caller's, rootless):
    a rootfs with a secret only its owner may read. (path, secret)"""
    path = own_rootfs(rt)
    secret = f"DECOY-SECRET-{uuid.uuid4().hex}"
    with open(os.path.join(path, "secret"), "w") as f:
        f.write(secret)
    chown(path, (rt.uid, rt.gid), recursive=True)
    os.chmod(os.path.join(path, "secret"), 0o600)
    os.chmod(path, 0o700)
    return path, secret


# --------------------------------------------------------- item 2: root.path swapped before the mount

@pytest.mark.parametrize("mode", ["direct", "overlay"])
def test_root_path_swapped_between_check_and_mount(rootful, mode):
    """The bundle's owner (another uid) exchanges ``rootfs`` with a symlink
    to a host directory, in a loop, while root runs the container: the
    container is never rooted there (it read a 0600 root-only file and
    wrote into the directory before the fix)."""
    rt = rootful
    owner = attacker(rt)
    decoy, secret = decoy_root(rt)
    bundle = os.path.join(rt.dir, f"owned-bundle-{uuid.uuid4().hex[:6]}")
    os.mkdir(bundle)
    rootfs = own_rootfs(rt)
    os.rename(rootfs, os.path.join(bundle, "rootfs"))
    os.symlink(decoy, os.path.join(bundle, "swap"))
    config = rt.config(["sh", "-c", "cat /secret 2>/dev/null; touch /pwned 2>/dev/null; true"])
    config["root"]["path"] = "rootfs"
    config["annotations"] = {"org.pyrun.rootfs": mode}
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)
    chown(bundle, owner, recursive=True)
    swapper = as_user(owner, EXCHANGE, os.path.join(bundle, "rootfs"), os.path.join(bundle, "swap"), "120")
    try:
        assert swapper.stdout.readline() == "go\n", swapper.stderr.read()
        escapes, ran, refused = [], 0, 0
        for i in range(RACES):
            p = rt("run", "-b", bundle, f"race2-{uuid.uuid4().hex[:8]}")
            if secret in p.stdout or os.path.lexists(os.path.join(decoy, "pwned")):
                escapes.append(i)
                subprocess.run(["rm", "-f", os.path.join(decoy, "pwned")], check=True)
            elif p.returncode == 0:
                ran += 1
            else:
                refused += 1
                assert "root.path" in one_line(p.stderr), p.stderr
    finally:
        swapper.kill()
        swapper.wait()
    assert escapes == [], f"rooted at the decoy in runs {escapes} of {RACES}"
    assert ran + refused == RACES
    assert refused > 0, f"the swap never landed in {RACES} runs: the race was not run"
    assert os.listdir(rt.root) == []


# --------------------------------------------------------- item 3: a layers root another user made

def test_layers_root_made_by_another_user_is_refused(rt, residue):
    """A shared --layers-root (or rootless $XDG_DATA_HOME in a shared place)
    made by another uid before pyrun: refused, as a state root would be."""
    other = attacker(rt)
    shared = os.path.join(rt.dir, "shared-layers")
    os.mkdir(shared, 0o777)
    os.chmod(shared, 0o777)
    chown(shared, other)
    config = rt.config(["true"])
    config["annotations"] = {"org.pyrun.rootfs": "overlay"}
    p = rt("run", "--layers-root", shared, "-b", rt.bundle(config=config), f"lr-{uuid.uuid4().hex[:8]}")
    assert p.returncode != 0
    line = one_line(p.stderr)
    assert "layers root" in line and f"owned by uid {other[0]}" in line, line
    assert os.listdir(shared) == []
    residue.check()


def test_layers_root_through_a_symlink_is_resolved_once(rt, residue):
    """A guard for the rule above, not an attack: the layers root the
    caller names may lead through a symlink of its own (pyrun takes its
    real path once); only a symlink found where pyrun opens the real path
    is refused."""
    mine = os.path.join(rt.dir, "real-layers")
    os.mkdir(mine, 0o711)
    chown(mine, (rt.uid, rt.gid))
    link = os.path.join(rt.dir, "linked-layers")
    os.symlink(mine, link)
    chown(link, attacker(rt))
    config = rt.config(["true"])
    config["annotations"] = {"org.pyrun.rootfs": "overlay", "org.pyrun.layers": link}
    # realpath(2) of a caller's --layers-root is the caller's choice; a
    # symlink swapped in as the last component after that is refused.
    from pyrun.errors import PyrunError
    from pyrun.filesystem.hostpath import own_dir

    with pytest.raises(PyrunError, match="is a symlink"):
        own_dir(link, 0o711, "layers root")
    p = rt("run", "-b", rt.bundle(config=config), f"lr-{uuid.uuid4().hex[:8]}")
    assert p.returncode == 0, p.stderr  # through the link to a root of the caller's: allowed
    assert os.listdir(mine) == []
    residue.check()


# The other user's side: every new layer dir is renamed away and replaced
# by one whose upper and work are links to the attacker's own directories.
PLANT = r"""
import os, sys, time
root, mine, end = sys.argv[1], sys.argv[2], time.monotonic() + float(sys.argv[3])
n = 0
print("go", flush=True)
while time.monotonic() < end:
    for name in os.listdir(root):
        if name.startswith(".") or os.path.islink(os.path.join(root, name, "upper")):
            continue
        n += 1
        try:
            os.rename(os.path.join(root, name), os.path.join(root, f".gone-{n}"))
            os.mkdir(os.path.join(root, name), 0o777)
            for sub in ("upper", "work"):
                os.symlink(os.path.join(mine, sub), os.path.join(root, name, sub))
        except OSError:
            pass
"""


def test_layer_dir_swapped_by_the_layers_roots_maker(rt):
    """The race of item 3: the maker of the layers root replaces the fresh
    ``<id>.<hex>`` with upper/work links to its own directories. The
    container never reads the planted file nor writes into them."""
    other = attacker(rt)
    shared = os.path.join(rt.dir, "shared-layers-race")
    os.mkdir(shared, 0o777)
    os.chmod(shared, 0o777)
    mine = os.path.join(rt.dir, "attackers")
    planted = f"PLANTED-{uuid.uuid4().hex}"
    os.makedirs(os.path.join(mine, "upper", "etc"))
    os.makedirs(os.path.join(mine, "work"))
    with open(os.path.join(mine, "upper", "etc", "planted"), "w") as f:
        f.write(planted)
    subprocess.run(["chmod", "-R", "a+rwX", mine], check=True)
    chown(mine, other, recursive=True)
    chown(shared, other)
    config = rt.config(["sh", "-c", "cat /etc/planted 2>/dev/null; touch /pwned 2>/dev/null; true"])
    config["annotations"] = {"org.pyrun.rootfs": "overlay"}
    bundle = rt.bundle(config=config)
    planter = as_user(other, PLANT, shared, mine, "120")
    try:
        assert planter.stdout.readline() == "go\n", planter.stderr.read()
        escapes = []
        for i in range(RACES):
            p = rt("run", "--layers-root", shared, "-b", bundle, f"race3-{uuid.uuid4().hex[:8]}")
            if planted in p.stdout or os.path.lexists(os.path.join(mine, "upper", "pwned")):
                escapes.append(i)
                subprocess.run(["rm", "-f", os.path.join(mine, "upper", "pwned")], check=True)
            elif p.returncode != 0:
                assert "layers root" in one_line(p.stderr), p.stderr
    finally:
        planter.kill()
        planter.wait()
    assert escapes == [], f"the planted layer was used in runs {escapes} of {RACES}"
    for dirpath, _, files in os.walk(mine):
        for name in files:
            owner = os.lstat(os.path.join(dirpath, name)).st_uid
            assert owner == other[0], f"{dirpath}/{name} written by pyrun"


# --------------------------------------------------------- item 6: --pid-file through a symlink

@pytest.mark.parametrize("command", ["run", "exec"])
def test_pid_file_never_writes_through_a_symlink(rt, command):
    """A container with the pid file's directory as a volume plants a
    symlink at the temporary name pyrun used (``.NAME.tmp``), and at the
    pid file's own name: neither is followed (the decoy is unchanged); the
    pid file is a regular file with the pid."""
    volume = os.path.join(rt.dir, "volume")
    os.mkdir(volume)
    decoy = os.path.join(rt.dir, "decoy-file")
    with open(decoy, "w") as f:
        f.write("DECOY")
    for path in (volume, decoy):
        chown(path, (rt.uid, rt.gid))
    cid = f"pf-{uuid.uuid4().hex[:8]}"
    pidfile = os.path.join(volume, "container.pid")
    os.symlink(decoy, os.path.join(volume, ".container.pid.tmp"))
    os.symlink(decoy, pidfile)
    for name in os.listdir(volume):
        chown(os.path.join(volume, name), (rt.uid, rt.gid))
    if command == "run":
        rt.ok("run", "-d", "--pid-file", pidfile, "-b", rt.bundle(["sleep", "60"]), cid)
    else:
        rt.ok("run", "-d", "-b", rt.bundle(["sleep", "60"]), cid)
        rt.ok("exec", "-d", "--pid-file", pidfile, cid, "sleep", "30")
    try:
        with open(decoy) as f:
            assert f.read() == "DECOY"
        assert not os.path.islink(pidfile)
        with open(pidfile) as f:
            assert f.read().strip().isdigit()
        assert os.path.islink(os.path.join(volume, ".container.pid.tmp"))  # not ours: left alone
        assert sorted(os.listdir(volume)) == [".container.pid.tmp", "container.pid"]
    finally:
        rt("delete", "--force", cid)


# --------------------------------------------------------- item 7: exec.fifo and the state root

HOLD_FIFO = r"""
import os, sys, time
try:
    fd = os.open(sys.argv[1], os.O_WRONLY)  # blocks until `start` reads
except OSError as e:
    print("refused", e.errno, flush=True)
    sys.exit(0)
print("opened", flush=True)
os.write(fd, b"!the attacker's words")
time.sleep(30)
"""


def test_another_user_cannot_hang_or_feed_start(rt):
    """Another uid opens exec.fifo for writing, holds it and writes into it:
    ``start`` hung until killed, or failed with the writer's words. The
    state root is 0700 (as runc's): nobody else reaches the fifo."""
    other = attacker(rt)
    cid = f"fifo-{uuid.uuid4().hex[:8]}"
    rt.ok("create", "-b", rt.bundle(["true"]), cid)
    try:
        holder = as_user(other, HOLD_FIFO, os.path.join(rt.root, cid, "exec.fifo"))
        time.sleep(0.3)  # let it block in open(2) if it may
        try:
            p = rt("start", cid, timeout=15)
        except subprocess.TimeoutExpired:
            p = None
        try:
            out, _ = holder.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            holder.kill()
            out, _ = holder.communicate()
        assert p is not None, "start hung on a fifo another user held open"
        assert p.returncode == 0, p.stderr
        assert out.split()[:2] == ["refused", str(errno.EACCES)], out
        assert os.stat(rt.root).st_mode & 0o777 == 0o700
    finally:
        rt("delete", "--force", cid)


def test_state_root_is_made_0700_and_made_so_again(rt):
    root = os.path.join(rt.dir, "state-0700")
    os.mkdir(root, 0o711)
    os.chmod(root, 0o711)  # as pyrun made it before
    chown(root, (rt.uid, rt.gid))
    cid = f"sr-{uuid.uuid4().hex[:8]}"
    saved, rt.root = rt.root, root
    try:
        rt.ok("create", "-b", rt.bundle(["true"]), cid)
        assert os.stat(root).st_mode & 0o777 == 0o700
    finally:
        rt("delete", "--force", cid)
        rt.root = saved


# --------------------------------------------------------- item 8: the overlay's upper, for its owner only

READ = r"""
import sys
try:
    print(open(sys.argv[1]).read(), flush=True)
except OSError as e:
    print("refused", e.errno, flush=True)
"""


@pytest.mark.parametrize("ids", ["own", "mapped"])
def test_other_users_cannot_read_what_a_container_writes(rt, ids):
    """The container writes a file (0644) into its overlay; another uid
    reads it through the upper layer's path (in world-readable mountinfo
    before the fix): refused, the layer directory is 0700. ``mapped``: the
    container's root is another host uid (a user namespace with id ranges),
    which still reaches its own layer."""
    other = attacker(rt)
    secret = f"WRITTEN-{uuid.uuid4().hex}"
    config = rt.config(["sh", "-c", f"echo {secret} > /written; chmod 644 /written; sleep 60"])
    config["annotations"] = {"org.pyrun.rootfs": "overlay"}
    if ids == "mapped":
        if rt.rootless:
            config = rt.with_id_ranges(config)
        else:
            config["linux"]["namespaces"].append({"type": "user"})
            for key in ("uidMappings", "gidMappings"):
                config["linux"][key] = [{"containerID": 0, "hostID": 400000, "size": 65536}]
    cid = f"up-{uuid.uuid4().hex[:8]}"
    rt.ok("run", "-d", "-b", rt.bundle(config=config), cid)
    try:
        layers = json.load(open(os.path.join(rt.root, cid, "state.json")))["layers"]
        written = os.path.join(layers, "upper", "written")
        deadline = time.monotonic() + 10
        while not os.path.exists(written) and time.monotonic() < deadline:
            time.sleep(0.05)
        with open(written) as f:
            assert f.read().strip() == secret  # root reads it: it is there
        p = as_user(other, READ, written)
        out, _ = p.communicate(timeout=10)
        assert secret not in out
        assert out.split()[:2] == ["refused", str(errno.EACCES)], out
        st = os.stat(layers)
        assert st.st_mode & 0o777 == 0o700, oct(st.st_mode)
        assert st.st_uid == (400000 if ids == "mapped" and not rt.rootless else rt.uid)
    finally:
        rt("delete", "--force", cid)
