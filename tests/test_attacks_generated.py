"""Generated attacks: what an image controls, combined at random.

A seeded generator (``PYRUN_ATTACK_SEED``, ``PYRUN_ATTACK_N`` per mode,
default 100: 200 containers rootful + rootless) draws each container from
the fields an image controls — ``process.cwd``, ``args``, ``env``,
``user``, the symlinks and special files planted in the rootfs at /dev,
/proc, /sys, the cwd and mount destinations — plus the network mode and a
bind of a fake host /dev, and what other local users control (issue 22): a
``root.path`` another uid swaps with a symlink to a decoy host directory
all along (renameat2 RENAME_EXCHANGE), a layers root another uid made, a
``--pid-file`` whose temporary name is a planted symlink to a canary.
After every container it asserts: no host canary (nor the decoy's secret)
was read or changed, no file under the fake host /dev changed, the state
root is empty, a layers root of another user's was refused, and an error
is one line. The failing seed and index are in
the assertion message, so a failure can be replayed alone.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import uuid

import pytest
from conftest import Residue
from test_attacks import fake_host_dev, own_rootfs, snapshot
from test_attacks_paths import EXCHANGE, as_user, attacker, chown, decoy_root

N = int(os.environ.get("PYRUN_ATTACK_N", "100"))
SEED = int(os.environ.get("PYRUN_ATTACK_SEED", "1912"))

MAGIC = ["/proc/self/fd/3", "/proc/self/fd/4", "/proc/self/fd/5", "/proc/self/fd/6", "/proc/self/fd/7",
         "/proc/thread-self/fd/3", "/proc/self/cwd", "/proc/1/cwd", "/proc/self/root", "/dev/fd/4"]


def _plant(rootfs: str, variant: int, hostdev_dest: str) -> None:
    """Variant 0 is clean; the others plant what an image can."""
    def link(target, path):
        full = os.path.join(rootfs, path.lstrip("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        if os.path.lexists(full):
            if os.path.isdir(full) and not os.path.islink(full):
                os.rmdir(full) if not os.listdir(full) else None
            else:
                os.unlink(full)
        if not os.path.lexists(full):
            os.symlink(target, full)

    if variant == 1:  # device paths as links to other files and to pyrun's descriptors
        link("/etc/passwd", "/dev/null")
        link("/etc/group", "/dev/console")
        link("/proc/self/fd/3", "/dev/ptmx")
        link("/proc/self/fd/4", "/dev/zero")
    elif variant == 2:  # the mount points of the config as links
        link("/proc/self/fd/3", "/work")
        link("../../../../../../", "/up")
        link("/proc/self/fd/5", "/mnt/hostdev")
        link("/tmp/made-by-link", "/dangling")
    elif variant == 3:  # /dev leads into the bind of the fake host /dev
        subprocess.run(["rm", "-rf", os.path.join(rootfs, "dev")], check=True)
        os.symlink(hostdev_dest, os.path.join(rootfs, "dev"))
    elif variant == 4:  # special files where devices go
        os.makedirs(os.path.join(rootfs, "dev"), exist_ok=True)
        for name in ("null", "tty", "zero"):
            p = os.path.join(rootfs, "dev", name)
            if os.path.lexists(p):
                os.unlink(p)
        os.mkfifo(os.path.join(rootfs, "dev", "null"))
        os.mkdir(os.path.join(rootfs, "dev", "tty"))
        with open(os.path.join(rootfs, "dev", "zero"), "w") as f:
            f.write("not a device")
    elif variant == 5:  # /proc and /sys themselves
        for d in ("proc", "sys"):
            subprocess.run(["rm", "-rf", os.path.join(rootfs, d)], check=True)
        os.symlink("/proc/self/fd/3", os.path.join(rootfs, "sys"))
        os.symlink("/tmp", os.path.join(rootfs, "proc"))


def _attack_script(canaries: list[str]) -> str:
    reads = " ".join(["../canary", "../../canary", "../../../canary", "../../../../canary",
                      "/proc/1/cwd/../../canary", "/proc/self/fd/3/../../canary", "/x/canary",
                      *canaries, *(f"/proc/1/root{c}" for c in canaries)])
    writes = "../../canary ../../../canary /dev/null /dev/zero /dev/console /dev/tty /dev/urandom /x/null"
    return (f"for p in {reads}; do cat \"$p\" 2>/dev/null; done; ls -la . .. ../.. ../../.. 2>/dev/null; "
            f"for f in {writes}; do echo pwned >> \"$f\" 2>/dev/null; done; "
            "mknod /dev/sda b 8 0 2>/dev/null && cat /dev/sda 2>/dev/null | head -c 64; true")


def _generate(rng: random.Random, rt, rootfs: dict[int, str], fake: str, canaries: list[str], others: dict):
    """(variant, config, extra command line, what the others' fields were)."""
    variant = rng.choice([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5])  # /proc and /sys links (5) end most runs early
    config = rt.config(["sh", "-c", _attack_script(canaries)])
    config["root"]["path"] = rootfs[variant]
    config["annotations"] = {"org.pyrun.rootfs": "overlay",
                             "org.pyrun.network": rng.choice(["none", "host"])}
    extra, drawn = [], []
    if others and rng.random() < 0.2:  # root.path swapped with a symlink to the decoy, all along
        config["root"]["path"] = others["race_root"]
        config["annotations"]["org.pyrun.rootfs"] = rng.choice(["overlay", "direct"])
        drawn.append("root.path race")
    if others and rng.random() < 0.1:  # a layers root another user made
        extra += ["--layers-root", others["their_layers"]]
        config["annotations"]["org.pyrun.rootfs"] = "overlay"
        drawn.append("their layers root")
    if others and rng.random() < 0.2:  # its temporary name a symlink to a canary
        extra += ["--pid-file", others["pid_file"]]
        drawn.append("pid file")
    proc = config["process"]
    proc["cwd"] = rng.choice(["/", "/tmp", "/work", "/up", "/up/x", "/dangling/new", "/etc/passwd",
                              "/no/such/dir", "../../..", *MAGIC])
    if rng.random() < 0.3:
        proc["args"] = rng.choice([["cat", "../../canary"], ["ls", "-la", "../../.."],
                                   [rng.choice(MAGIC) + "/../../canary"], ["sh", "-c", "cd ../../..; ls"]])
    if rng.random() < 0.4:
        proc["env"] = proc["env"] + [rng.choice(["PATH=/proc/self/fd/3:.", "HOME=/proc/self/fd/3",
                                                 "PWD=/proc/self/fd/3", "LD_PRELOAD=/proc/self/fd/3"])]
    if rng.random() < 0.3:
        proc["user"] = rng.choice([{"uid": 0, "gid": 0}, {"uid": 1000, "gid": 1000},
                                   {"uid": 0, "gid": 0, "additionalGids": [5]}])
    r = rng.random()
    if r < 0.25:  # the fake host /dev bound at /dev
        config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/dev"]
        config["mounts"].insert(1, {"destination": "/dev", "type": "bind", "source": fake,
                                    "options": ["rbind"]})
    elif r < 0.5:  # bound where a planted link may lead /dev
        config["mounts"].append({"destination": "/mnt/hostdev", "type": "bind", "source": fake,
                                 "options": ["rbind"]})
    if rng.random() < 0.3:
        config["mounts"].append({"destination": rng.choice(["/work", "/up/y", "/dangling/m", *MAGIC[:3]]),
                                 "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]})
    if rng.random() < 0.2:
        config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    return variant, config, extra, drawn


@pytest.fixture
def attack_env(rt):
    """The rootfs variants, the fake host /dev and the canaries, once per mode."""
    fake = fake_host_dev(rt)
    rootfs = {}
    for variant in range(6):
        path = own_rootfs(rt)
        _plant(path, variant, "/mnt/hostdev")
        subprocess.run(["chown", "-hR", f"{rt.uid}:{rt.gid}", path], check=True)
        rootfs[variant] = path
    canaries = {}
    for where in (rt.dir, os.path.dirname(rt.dir), f"/tmp/pyrun-canary-{uuid.uuid4().hex[:8]}"):
        os.makedirs(where, exist_ok=True)
        secret = f"HOST-SECRET-{uuid.uuid4().hex}"
        path = os.path.join(where, "canary")
        with open(path, "w") as f:
            f.write(secret)
        canaries[path] = secret
    # What other local users control (issue 22), where the test can be one.
    others, swapper = {}, None
    if os.geteuid() == 0:
        other = attacker(rt)
        race = os.path.join(rt.dir, "their-bundle")
        os.mkdir(race)
        os.rename(own_rootfs(rt), os.path.join(race, "rootfs"))
        decoy, secret = decoy_root(rt)
        canaries[os.path.join(decoy, "secret")] = secret
        os.symlink(decoy, os.path.join(race, "swap"))
        chown(race, other, recursive=True)
        swapper = as_user(other, EXCHANGE, os.path.join(race, "rootfs"), os.path.join(race, "swap"), "600")
        assert swapper.stdout.readline() == "go\n"
        theirs = os.path.join(rt.dir, "their-layers")
        os.mkdir(theirs)
        os.chmod(theirs, 0o777)
        chown(theirs, other)
        volume = os.path.join(rt.dir, "pid-volume")
        os.mkdir(volume)
        os.symlink(os.path.join(rt.dir, "canary"), os.path.join(volume, ".gen.pid.tmp"))
        chown(os.path.join(rt.dir, "canary"), (rt.uid, rt.gid))  # one the caller could write
        chown(volume, (rt.uid, rt.gid), recursive=True)
        others = {"race_root": os.path.join(race, "rootfs"), "their_layers": theirs,
                  "pid_file": os.path.join(volume, "gen.pid")}
    yield rootfs, fake, canaries, others
    if swapper is not None:
        swapper.kill()
        swapper.wait()
    for path in canaries:
        if path.startswith("/tmp/pyrun-canary-"):
            subprocess.run(["rm", "-rf", os.path.dirname(path)])


def test_generated_containers_never_reach_the_host(rt, attack_env):
    rootfs, fake, canaries, others = attack_env
    seed = SEED + (1 if rt.rootless else 0)
    rng = random.Random(seed)
    fake_before = snapshot(fake)
    canary_stat = {p: os.stat(p).st_mtime_ns for p in canaries}
    residue = Residue(rt)
    for i in range(N):
        variant, config, extra, drawn = _generate(rng, rt, rootfs, fake, list(canaries), others)
        cid = f"gen-{uuid.uuid4().hex[:10]}"
        where = (f"seed {seed} container {i} (variant {variant}, {', '.join(drawn) or '-'}): "
                 f"{json.dumps(config['process'])[:300]}")
        p = rt("run", *extra, "-b", rt.bundle(config=config), cid, timeout=60)
        out = p.stdout + p.stderr
        if os.environ.get("PYRUN_ATTACK_SHOW"):
            print(i, variant, p.returncode, p.stderr.strip()[:150].replace("\n", " | "))
        for path, secret in canaries.items():
            assert secret not in out, f"{where}: read {path}"
            with open(path) as f:
                assert f.read() == secret, f"{where}: changed {path}"
            assert os.stat(path).st_mtime_ns == canary_stat[path], f"{where}: touched {path}"
        assert snapshot(fake) == fake_before, f"{where}: the fake host /dev changed"
        assert os.listdir(rt.root) == [], f"{where}: state left behind"
        if "their layers root" in drawn:
            # refused (or an earlier error of the config's): never used
            assert p.returncode != 0, f"{where}: another user's layers root was used"
            assert os.listdir(others["their_layers"]) == [], f"{where}: made something in it"
        if p.returncode != 0 and p.returncode < 126:
            err = [line for line in p.stderr.splitlines() if line.startswith("pyrun:")]
            assert "Traceback" not in p.stderr and "internal error" not in p.stderr, f"{where}: {p.stderr}"
            if err:
                assert len(err) == 1, f"{where}: {p.stderr}"
    residue.check()
