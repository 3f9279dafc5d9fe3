"""``pyrun create`` with and without clone3(2) CLONE_INTO_CGROUP, in the VM.

Run inside the cgroup v2 guest, as root (the host here is v1/hybrid):

    flock /work/notes/vm.lock tools/vm/vm-test --shell \\
        '.venv/bin/python -P tools/vm/bench-clone3.py'

Each round creates and deletes the sample busybox bundle (bundles/busybox)
twice, once each way, in alternating order so that drift hits both alike:

* clone3:   the default; stage 1 is cloned into the container's cgroup;
* fallback: PYRUN_TEST_HOOKS=1 PYRUN_NO_CLONE_INTO_CGROUP=1, fork(2) and a
            write of stage 1's pid to cgroup.procs (today's path before).

The time is the wall time of ``pyrun create`` (process start to exit). Under
TCG emulation everything is slower, the RCU grace period a cgroup.procs
write waits for included: the ratio is what carries over, not the absolute
times. Then a few ``--debug`` creates show the steps' own times.

Environment: BENCH_N (rounds, default 20), BENCH_DEBUG_N (default 5),
BENCH_ROOTLESS=1 (also as the test user pyrun-test, whose delegated cgroup
the guest sets up).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYRUN = os.path.join(TOP, ".venv", "bin", "pyrun")
BUNDLE = os.path.join(TOP, "bundles", "busybox")
WAYS = {"clone3": {}, "fallback": {"PYRUN_TEST_HOOKS": "1", "PYRUN_NO_CLONE_INTO_CGROUP": "1"}}
STEP = re.compile(r"step (clone3\(CLONE_INTO_CGROUP\)|write cgroup\.procs|waitpid\(stage 1\)): ([0-9.]+) ms")


class Side:
    """rootful, or rootless as a user: its state root, bundle and env."""

    def __init__(self, name: str, user: str | None):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=f"bench-clone3-{name}-")
        self.kw: dict = {}
        self.env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/", "LANG": "C.UTF-8"}
        self.bundle = BUNDLE
        if user:
            pw = pwd.getpwnam(user)
            self.kw = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
            # its own copy: the config's uid map and a rootfs it may read
            self.bundle = os.path.join(self.dir, "bundle")
            shutil.copytree(BUNDLE, self.bundle, symlinks=True)
            subprocess.run(["chown", "-R", f"{pw.pw_uid}:{pw.pw_gid}", self.dir], check=True)
            os.chmod(self.dir, 0o755)
            self.env["XDG_DATA_HOME"] = os.path.join(self.dir, "data")
            # the sample's process, in a rootless config (the user's uid mapped)
            import json

            from pyrun.config.spec import default_spec

            path = os.path.join(self.bundle, "config.json")
            with open(path) as f:
                sample = json.load(f)
            config = default_spec(rootless=True, uid=pw.pw_uid, gid=pw.pw_gid)
            config["process"]["args"] = sample["process"]["args"]
            config["process"]["terminal"] = sample["process"]["terminal"]
            config["root"] = sample["root"]
            with open(path, "w") as f:
                json.dump(config, f)
        self.root = os.path.join(self.dir, "state")
        os.mkdir(self.root, 0o700)
        if user:
            os.chown(self.root, self.kw["user"], self.kw["group"])
        self.n = 0

    def create(self, way: str, debug: bool = False) -> tuple[float, str]:
        """(seconds, stderr) of one create; then delete."""
        self.n += 1
        cid = f"b{self.n}"
        env = dict(self.env, **WAYS[way])
        cmd = [PYRUN, "--root", self.root] + (["--debug"] if debug else []) + ["create", "-b", self.bundle, cid]
        with tempfile.TemporaryFile("w+") as err:
            t0 = time.perf_counter()
            p = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                               cwd=self.dir, **self.kw)
            elapsed = time.perf_counter() - t0
            err.seek(0)
            text = err.read()
        if p.returncode != 0:
            sys.exit(f"{self.name} {way}: pyrun create failed ({p.returncode}): {text}")
        subprocess.run([PYRUN, "--root", self.root, "delete", "--force", cid], env=self.env, check=True,
                       stdin=subprocess.DEVNULL, cwd=self.dir, **self.kw)
        return elapsed, text


def summary(values: list[float]) -> str:
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(round(0.9 * (len(values) - 1))))]
    return f"median {statistics.median(values) * 1000:8.1f} ms  p90 {p90 * 1000:8.1f} ms  (n={len(values)})"


def measure(side: Side, rounds: int, debug_rounds: int) -> None:
    times: dict[str, list[float]] = {w: [] for w in WAYS}
    for way in WAYS:  # one unmeasured create each: caches warm
        side.create(way)
    for i in range(rounds):
        order = list(WAYS) if i % 2 == 0 else list(reversed(WAYS))
        for way in order:
            times[way].append(side.create(way)[0])
    print(f"== {side.name}: pyrun create of bundles/busybox, wall time")
    for way, values in times.items():
        print(f"  {way:9} {summary(values)}")
    a, b = statistics.median(times["clone3"]), statistics.median(times["fallback"])
    print(f"  ratio clone3/fallback (medians): {a / b:.3f}   difference: {(b - a) * 1000:.1f} ms")
    a, b = statistics.mean(times["clone3"]), statistics.mean(times["fallback"])
    print(f"  ratio clone3/fallback (means):   {a / b:.3f}   difference: {(b - a) * 1000:.1f} ms")
    steps: dict[str, list[float]] = {}
    for i in range(debug_rounds):
        for way in WAYS:
            for name, ms in STEP.findall(side.create(way, debug=True)[1]):
                steps.setdefault(f"{way}: {name}", []).append(float(ms))
    if steps:
        print(f"  --debug step times (median of {debug_rounds}):")
        for key, values in sorted(steps.items()):
            print(f"    {key:40} {statistics.median(values):8.2f} ms")
    sys.stdout.flush()


def main() -> None:
    if not os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        sys.exit("bench-clone3: needs a cgroup v2 hierarchy: run it in the VM (tools/vm/vm-test --shell ...)")
    if os.geteuid() != 0:
        sys.exit("bench-clone3: run as root")
    rounds = int(os.environ.get("BENCH_N", "20"))
    debug_rounds = int(os.environ.get("BENCH_DEBUG_N", "5"))
    print(f"bench-clone3: kernel {os.uname().release}, {rounds} rounds")
    sides = [Side("rootful", None)]
    if os.environ.get("BENCH_ROOTLESS") == "1":
        sides.append(Side("rootless", "pyrun-test"))
    for side in sides:
        measure(side, rounds, debug_rounds)


if __name__ == "__main__":
    main()
