"""pyrun beside runc and crun: start-up time, split lifecycle, memory, scale.

Run as root (``make bench``). What it measures, each runtime driven through
its command line exactly as a user would:

* ``run`` of ``/hello true`` (create+start+wait+delete), rootful and
  rootless (an unprivileged user, ``pyrun-bench``, with /etc/subuid ranges);
* ``create``, ``start``, ``state``, ``exec /hello true`` and ``delete``
  timed separately, against a container running ``/hello pause``;
* the RSS and PSS of the container's PID 1 (pyrun's init against tini and
  catatonit under runc and crun; the entrypoint itself as PID 1), the peak
  RSS of the runtime during ``create`` and during a foreground ``run``;
* ``ps``, ``pause``, ``resume``, ``list``, ``events --stats``, ``update``,
  ``features`` (what containerd's shim calls for every task) and ``exec -t``
  with a console socket whose receiver accepts only after exec returned (as
  the shim does), against a running container;
* 50 containers launched at once (``run -d``), waited for and deleted;
* the kernel's floor: unshare(1) of the config's namespaces and exec of
  ``true``, interleaved with the ``run`` rows;
* per-container overhead under engines: ``podman run --rm IMAGE true``
  (rootful and rootless) and ``ctr run --rm`` with pyrun, then runc, as the
  runtime (tests/podman_env.py and tests/containerd_env.py's private
  podman and containerd; the busybox bundle's rootfs is the image); skipped
  with the reason when podman, containerd or the rootfs is missing;
* where ``pyrun run`` spends its time: ``--debug`` step timings and
  ``python -X importtime``.

Runtimes are interleaved (pyrun runc crun pyrun runc crun ...) so that drift
of the machine hits all alike; each measurement is reported as median and
p90 over the runs. Every runtime gets its own copy of the bundle, all with
the same config (``runc spec``, unchanged but for the process): pyrun then
runs as runc does (README, "The rule"), its overlay and init are the
``pyrun --rootfs-mode overlay --init`` line and the PID 1 rows.

This host's cgroups are hybrid (v1 controllers, cgroup2 at
/sys/fs/cgroup/unified) and crun refuses them, so the whole benchmark
re-executes itself in a private mount namespace with an empty tmpfs over
/sys/fs/cgroup/unified, for every runtime alike; the rootless user's
processes are started from inside it.

Environment: BENCH_N (runs per measurement, default 20), BENCH_QUICK=1 (a
fast smoke run), BENCH_OUT (JSON path, default bench/results.json),
BENCH_SCALE (containers in the scale test, default 50), PYRUN (the pyrun
executable, default .venv/bin/pyrun), BENCH_ENGINES=0 (skip podman and
containerd), BENCH_ONLY (sections to run, by name: run lifecycle tasks
engines version memory scale steps importtime; default all; ``make
vm-bench`` runs ``run`` and ``steps`` in the cgroup v2 VM).
"""

from __future__ import annotations

import json
import math
import os
import pwd
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
HELLO_ROOTFS = os.path.join(TOP, "bundles", "hello", "rootfs")
BUSYBOX_ROOTFS = os.path.join(TOP, "bundles", "busybox", "rootfs")   # the engines' image
sys.path.insert(0, os.path.join(TOP, "bundles"))
from prepare import is_static  # noqa: E402  (the bundles' own ELF check)

sys.path.insert(0, os.path.join(TOP, "tests"))
from proctree import children  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK") == "1"
N = int(os.environ.get("BENCH_N") or (3 if QUICK else 20))
MEM_N = 1 if QUICK else max(3, N // 4)
SCALE = int(os.environ.get("BENCH_SCALE") or (10 if QUICK else 50))
SCALE_ROUNDS = 1 if QUICK else 3
OUT = os.environ.get("BENCH_OUT") or os.path.join(HERE, "results.json")
PYRUN = os.environ.get("PYRUN") or os.path.join(TOP, ".venv", "bin", "pyrun")
SECTIONS = ("run", "lifecycle", "tasks", "engines", "version", "memory", "scale", "steps", "importtime")
ONLY = {w for w in (os.environ.get("BENCH_ONLY") or "").replace(",", " ").split()}

BENCH_USER = "pyrun-bench"
SUBID_START, SUBID_COUNT = 500000, 65536
NS_MARK = "PYRUN_BENCH_IN_NS"
UNIFIED = "/sys/fs/cgroup/unified"
TIMEOUT = 60.0
GNU_TIME = "/usr/bin/time"
STEP_RE = re.compile(r"step (.+?): ([0-9.]+) ms \(pid (\d+)\)")


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ numbers

def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


@dataclass
class Series:
    """The samples of one runtime for one measurement, and its failures."""

    samples: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def ok(self, v: float) -> None:
        self.samples.append(v)

    def fail(self, reason: str) -> None:
        self.failures.append(reason)

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def p90(self) -> float | None:
        return pct(self.samples, 90) if self.samples else None

    def to_json(self) -> dict:
        return {"median": self.median, "p90": self.p90, "n": len(self.samples),
                "failures": len(self.failures),
                "failure_reasons": sorted(set(self.failures))[:5],
                "samples": [round(v, 3) for v in self.samples]}


@dataclass
class Row:
    name: str
    unit: str                      # "ms", "kB", "s", "count"
    series: dict[str, Series]      # column (pyrun/runc/crun) -> samples
    note: str = ""
    single: bool = False           # one number per runtime: no p90


class Table:
    def __init__(self) -> None:
        self.rows: list[Row] = []

    def add(self, name: str, unit: str, note: str = "", single: bool = False,
            columns: tuple[str, ...] = ("pyrun", "runc", "crun")) -> dict[str, Series]:
        row = Row(name, unit, {c: Series() for c in columns}, note, single)
        self.rows.append(row)
        return row.series


# ------------------------------------------------------------------ runtimes

@dataclass
class Runtime:
    name: str                  # column of the table
    exe: str
    create_flags: tuple = ()   # after create/run: pyrun's --rootfs-mode/--init
    label: str = ""

    def __post_init__(self):
        self.label = self.label or self.name


@dataclass
class Mode:
    """rootful (as root) or rootless (as the bench user)."""

    name: str
    dir: str
    uid: int = 0
    gid: int = 0
    env: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)   # the base config.json
    pyrun: str = PYRUN                            # the pyrun this user can execute

    @property
    def rootless(self) -> bool:
        return self.uid != 0

    def user_kw(self) -> dict:
        return {"user": self.uid, "group": self.gid, "extra_groups": []} if self.rootless else {}

    def chown(self, path: str) -> None:
        if self.rootless:
            os.chown(path, self.uid, self.gid)


@dataclass
class Result:
    rc: int
    ms: float
    err: str
    maxrss_kb: int = 0

    @property
    def ok(self) -> bool:
        return self.rc == 0

    @property
    def reason(self) -> str:
        lines = [ln.strip() for ln in self.err.splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit status {self.rc}"
        if len(last) > 110:
            last = last[:107] + "..."
        return last


class Bench:
    def __init__(self, workdir: str):
        self.workdir = workdir
        self.modes: dict[str, Mode] = {}
        self.runtimes: dict[str, Runtime] = {}
        self.live: set[tuple[str, str, str]] = set()   # (mode, runtime, id) to clean up
        self.lock = threading.Lock()
        self.counter = 0
        self.table = Table()
        self.extra: dict = {}
        self.bundles: dict[tuple, str] = {}
        self.rootfs: dict[tuple, str] = {}

    # ------------------------------------------------------------ plumbing

    def new_id(self, prefix: str = "b") -> str:
        with self.lock:
            self.counter += 1
            return f"{prefix}{os.getpid()}-{self.counter}"

    def exe(self, mode: Mode, rt: Runtime) -> str:
        return mode.pyrun if rt.exe == PYRUN else rt.exe

    def root(self, mode: Mode, rt: Runtime) -> str:
        """The --root state directory: one per mode and runtime binary."""
        base = "pyrun" if rt.exe == PYRUN else rt.name
        return os.path.join(mode.dir, f"state-{base}")

    def call(self, mode: Mode, rt: Runtime, args: list[str], stdout=subprocess.DEVNULL,
             timeout: float = TIMEOUT, global_flags: tuple = (), root: bool = True,
             peak_rss: bool = False) -> Result:
        """Run the runtime once: wall time around spawn and wait.
        stdout/stderr are never pipes: create hands its stdio to the
        container, so a pipe would not reach EOF while it lives.

        ``peak_rss``: run it under ``/usr/bin/time -f %M`` for the peak RSS
        of the runtime and the children it waits for. (wait4's ru_maxrss
        from here would not do: the kernel counts in it the RSS the child
        had before execve, a copy of this 18 MB Python.)"""
        cmd = [self.exe(mode, rt), *global_flags, *(["--root", self.root(mode, rt)] if root else []), *args]
        return self.spawn(mode, cmd, stdout, timeout, peak_rss)

    def spawn(self, mode: Mode, cmd: list[str], stdout=subprocess.DEVNULL, timeout: float = TIMEOUT,
              peak_rss: bool = False) -> Result:
        """Run ``cmd`` once as ``mode``'s user: wall time around spawn and wait."""
        return timed(cmd, mode.env, mode.dir, mode.user_kw(), stdout, timeout, peak_rss)

    # ------------------------------------------------------------ engines

    def bench_engines(self) -> None:
        """(h) what an engine adds per container: `podman run --rm IMAGE
        true` (rootful and rootless) and `ctr run --rm ... true` (rootful),
        each with pyrun and with runc as the OCI runtime, interleaved. The
        engines are the tests' own hermetic ones (tests/podman_env.py,
        tests/containerd_env.py): private storage, state and config, the
        busybox rootfs as the image, nothing from a registry."""
        if os.environ.get("BENCH_ENGINES") == "0":
            return self.skip_engines("all", "BENCH_ENGINES=0")
        if not os.path.isdir(os.path.join(BUSYBOX_ROOTFS, "bin")):
            return self.skip_engines("all", "no image: bundles/busybox is not prepared (make bundles)")
        runc = self.runtimes["runc"].exe
        if not os.access(runc, os.X_OK):
            return self.skip_engines("all", "runc is not installed: nothing to compare with")
        for mode in ("rootful",) if QUICK else ("rootful", "rootless"):
            self.bench_podman(mode, runc)
        self.bench_ctr(runc)

    def skip_engines(self, what: str, reason: str) -> None:
        say(f"bench: engines ({what}) skipped: {reason}")
        self.extra.setdefault("engines_skipped", {})[what] = reason

    def bench_podman(self, mode: str, runc: str) -> None:
        if shutil.which("podman") is None or (shutil.which("conmon") is None \
                                               and not os.path.exists("/usr/libexec/podman/conmon")):
            return self.skip_engines(f"podman {mode}", "podman or conmon is not installed")
        from podman_env import IMAGE, PodmanEnv, ensure_test_user, runtime_for

        say(f"bench: podman run --rm {IMAGE} true, {mode}, N={N}")
        # podman refuses a runroot path longer than 50 characters: a short workspace
        ws = tempfile.mkdtemp(prefix="pybe-", dir="/tmp")
        envs: dict[str, PodmanEnv] = {}
        try:
            os.chmod(ws, 0o755)
            tar = os.path.join(ws, "busybox.tar")
            subprocess.run(["tar", "-C", BUSYBOX_ROOTFS, "-cf", tar, "."], check=True)
            os.chmod(tar, 0o644)
            uid = gid = 0
            if mode == "rootless":
                pw = ensure_test_user()
                uid, gid = pw.pw_uid, pw.pw_gid
            # as tests/test_podman.py: rootless on a v1/hybrid host has no
            # cgroup (runc ignores it too), and pyrun would refuse the limits
            flags = ["ignore-cgroup-limits"] if mode == "rootless" else []
            try:
                envs["pyrun"] = PodmanEnv("pyrun", runtime_for(uid, gid, ws), flags, mode, ws, tar)
                envs["runc"] = PodmanEnv("runc", runc, [], mode, ws, tar)
            except Exception as e:   # a podman that cannot even import the image
                return self.skip_engines(f"podman {mode}", f"setup failed: {str(e).splitlines()[0][:100]}")
            row = self.table.add(f"podman run --rm {IMAGE} true, {mode} (ms)", "ms",
                                 columns=("pyrun", "runc"))
            for i in range(N + 1):   # the first round warms up and is not counted
                for name, env in envs.items():
                    r = timed(env.cmd("run", "--rm", IMAGE, "true"), env.env, env.dir, env.user_kw())
                    if i:
                        row[name].ok(r.ms) if r.ok else row[name].fail(r.reason)
        finally:
            for env in envs.values():
                for problem in env.teardown():
                    say(f"bench: {problem}")
            shutil.rmtree(ws, ignore_errors=True)

    def bench_ctr(self, runc: str) -> None:
        from containerd_env import CONTAINERD, CTR, Containerd

        if not (CONTAINERD and CTR and shutil.which("containerd-shim-runc-v2")):
            return self.skip_engines("ctr", "containerd, ctr or containerd-shim-runc-v2 is not installed")
        say(f"bench: ctr run --rm --rootfs ... true, rootful, N={N}")
        d = tempfile.mkdtemp(prefix="pybc-", dir="/tmp")
        c = None
        try:
            try:
                c = Containerd(d, ns="pyrun-bench")
            except RuntimeError as e:
                return self.skip_engines("ctr", str(e).splitlines()[0][:100])
            argv = {}
            # the same sh wrapper for both (containerd takes one binary, pyrun
            # needs a flag: a v1/hybrid host cannot give the cpu shares
            # containerd's spec asks for, as in tests/test_containerd.py)
            for name, cmd in (("pyrun", f"{PYRUN} --ignore-cgroup-limits"), ("runc", runc)):
                wrapper = os.path.join(d, f"{name}-runtime")
                with open(wrapper, "w") as f:
                    f.write(f'#!/bin/sh\nexec {cmd} "$@"\n')
                os.chmod(wrapper, 0o755)
                rootfs = os.path.join(d, f"rootfs-{name}")
                subprocess.run(["cp", "-a", BUSYBOX_ROOTFS, rootfs], check=True)
                argv[name] = ["--runc-binary", wrapper, "--runc-root", os.path.join(d, f"state-{name}"),
                              "--env", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "--rootfs", rootfs]
            row = self.table.add("ctr run --rm --rootfs BUSYBOX ID true, rootful (ms)", "ms",
                                 columns=("pyrun", "runc"))
            for i in range(N + 1):
                for name, args in argv.items():
                    cid = self.new_id("c")
                    r = timed([CTR, "-a", c.sock, "-n", c.ns, "run", "--rm", *args, cid, "true"],
                              {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, d, {})
                    if i:
                        row[name].ok(r.ms) if r.ok else row[name].fail(r.reason)
        finally:
            if c is not None:
                stop_containerd(c)
            subprocess.run(["umount", "-R", "-l", d], capture_output=True)
            shutil.rmtree(d, ignore_errors=True)

    def destroy(self, mode: Mode, rt: Runtime, cid: str, deleted: bool = False) -> None:
        """delete --force, unless the measurement deleted it already."""
        if not deleted:
            self.call(mode, rt, ["delete", "--force", cid], timeout=30)
        with self.lock:
            self.live.discard((mode.name, rt.name, cid))

    def track(self, mode: Mode, rt: Runtime, cid: str) -> None:
        with self.lock:
            self.live.add((mode.name, rt.name, cid))

    def cleanup(self) -> None:
        """Every container we may have left, by id, then by listing each root."""
        for mname, rname, cid in sorted(self.live):
            self.destroy(self.modes[mname], self.runtimes[rname], cid)
        for mode in self.modes.values():
            seen = set()
            for rt in self.runtimes.values():
                root = self.root(mode, rt)
                if root in seen or not os.path.isdir(root):
                    continue
                seen.add(root)
                for cid in os.listdir(root):
                    if os.path.isdir(os.path.join(root, cid)):
                        self.call(mode, rt, ["delete", "--force", cid], timeout=30)
        # A runtime that failed half-way may leave its (empty) cgroup v1
        # directories behind, named after our container ids.
        ours = re.compile(rf"^[a-z]{os.getpid()}-\d+$")
        for top in ("/sys/fs/cgroup", *(os.path.join("/sys/fs/cgroup", c) for c in _listdir("/sys/fs/cgroup"))):
            for name in _listdir(top):
                if ours.match(name):
                    try:
                        os.rmdir(os.path.join(top, name))
                    except OSError:
                        pass

    # ------------------------------------------------------------ setup

    def setup(self) -> None:
        self.runtimes = {
            "pyrun": Runtime("pyrun", PYRUN),
            "pyrun-extras": Runtime("pyrun-extras", PYRUN, ("--rootfs-mode", "overlay", "--init"),
                                    "pyrun --rootfs-mode overlay --init"),
            "pyrun-init": Runtime("pyrun-init", PYRUN, ("--init",), "pyrun --init"),
            "runc": Runtime("runc", shutil.which("runc") or "/usr/sbin/runc"),
            "crun": Runtime("crun", shutil.which("crun") or "/usr/bin/crun"),
        }
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/",
               "LANG": "C.UTF-8"}
        rootful = Mode("rootful", os.path.join(self.workdir, "rootful"), env=dict(env, HOME="/root"))
        pw = ensure_bench_user()
        # the bench user's HOME is /: its overlay layers go to its own dir
        rootless_dir = os.path.join(self.workdir, "rootless")
        rootless = Mode("rootless", rootless_dir, pw.pw_uid, pw.pw_gid, dict(env, XDG_DATA_HOME=rootless_dir))
        for mode in (rootful, rootless):
            os.mkdir(mode.dir, 0o755)
            mode.chown(mode.dir)
            mode.config = base_config(mode)
            for rt in self.runtimes.values():
                root = self.root(mode, rt)
                if not os.path.isdir(root):
                    os.mkdir(root, 0o700)
                    mode.chown(root)
            self.modes[mode.name] = mode
        rootless.pyrun = self.pyrun_for(rootless)

    def pyrun_for(self, mode: Mode) -> str:
        """The bench user must be able to execute the venv's pyrun; if the
        checkout is somewhere it cannot reach (under /root), give it a copy."""
        probe = subprocess.run([PYRUN, "--version"], capture_output=True, env=mode.env,
                               cwd=mode.dir, **mode.user_kw())
        if probe.returncode == 0:
            return PYRUN
        venv = os.path.dirname(os.path.dirname(PYRUN))
        copy = os.path.join(self.workdir, "venv")
        subprocess.run(["cp", "-a", venv, copy], check=True)
        subprocess.run(["chmod", "-R", "a+rX", copy], check=True)
        script = os.path.join(copy, "bin", "pyrun")
        with open(script) as f:
            lines = f.read().split("\n")
        lines[0] = f"#!{copy}/bin/python"
        with open(script, "w") as f:
            f.write("\n".join(lines))
        say(f"bench: {BENCH_USER} cannot reach {PYRUN}; using a copy of the venv at {copy}")
        return script

    def rootfs_for(self, mode: Mode, rt: Runtime, extras: bool = False) -> str:
        """Each runtime gets its own copy of the hello rootfs (runc and crun
        create mount points in it); ``extras`` adds /tini and /catatonit."""
        base = "pyrun" if rt.exe == PYRUN else rt.name
        key = (mode.name, base, extras)
        if key not in self.rootfs:
            path = os.path.join(mode.dir, f"rootfs-{base}{'-init' if extras else ''}")
            subprocess.run(["cp", "-a", HELLO_ROOTFS, path], check=True)
            if extras:
                for src, name in ((tini_binary(), "tini"), (catatonit_binary(), "catatonit")):
                    if src:
                        shutil.copy2(src, os.path.join(path, name))
            if mode.rootless:
                subprocess.run(["chown", "-R", f"{mode.uid}:{mode.gid}", path], check=True)
            subprocess.run(["chmod", "-R", "a+rX", path], check=True)
            self.rootfs[key] = path
        return self.rootfs[key]

    def bundle(self, mode: Mode, rt: Runtime, args: list[str], extras: bool = False) -> str:
        key = (mode.name, rt.name, tuple(args), extras)
        if key not in self.bundles:
            path = os.path.join(mode.dir, f"bundle-{rt.name}-{len(self.bundles)}")
            os.mkdir(path, 0o755)
            config = json.loads(json.dumps(mode.config))
            config["process"]["args"] = list(args)
            config["root"]["path"] = self.rootfs_for(mode, rt, extras)
            with open(os.path.join(path, "config.json"), "w") as f:
                json.dump(config, f, indent="\t")
            mode.chown(path)
            mode.chown(os.path.join(path, "config.json"))
            self.bundles[key] = path
        return self.bundles[key]

    def rts(self, *names: str) -> list[Runtime]:
        return [self.runtimes[n] for n in names]

    # ------------------------------------------------------------ measurements

    def warm(self, mode: Mode, rts: list[Runtime], args: list[str]) -> None:
        for rt in rts:
            cid = self.new_id("w")
            self.track(mode, rt, cid)
            r = self.call(mode, rt, ["run", *rt.create_flags, "-b", self.bundle(mode, rt, args), cid])
            self.destroy(mode, rt, cid, deleted=r.ok)

    def bench_run(self, mode: Mode) -> None:
        """(a) the whole create+start+wait+delete of /hello true."""
        say(f"bench: run /hello true, {mode.name}, N={N}")
        rts = self.rts("pyrun", "pyrun-extras", "runc", "crun")
        args = ["/hello", "true"]
        self.warm(mode, rts, args)
        main = self.table.add(f"run /hello true, {mode.name} (ms)", "ms")
        extras = self.table.add(f"  pyrun --rootfs-mode overlay --init, {mode.name} (ms)", "ms",
                                note="runc/crun columns: the same samples as the row above")
        extras["runc"], extras["crun"] = main["runc"], main["crun"]
        floor_cmd = unshare_floor(mode.config)
        floor = self.table.add(f"  kernel floor: {' '.join(floor_cmd)}, {mode.name} (ms)", "ms",
                               note="pyrun column only: the config's namespaces, made by "
                               "unshare(1), and exec of the host's true; no rootfs, no cgroup",
                               columns=("pyrun",))
        series = {"pyrun": main["pyrun"], "pyrun-extras": extras["pyrun"],
                  "runc": main["runc"], "crun": main["crun"]}
        for _ in range(N):
            for rt in rts:
                cid = self.new_id()
                self.track(mode, rt, cid)
                r = self.call(mode, rt, ["run", *rt.create_flags, "-b", self.bundle(mode, rt, args), cid])
                series[rt.name].ok(r.ms) if r.ok else series[rt.name].fail(r.reason)
                self.destroy(mode, rt, cid, deleted=r.ok)   # a foreground run deletes at exit
            r = self.spawn(mode, floor_cmd)   # interleaved with the runtimes: the same drift
            floor["pyrun"].ok(r.ms) if r.ok else floor["pyrun"].fail(r.reason)

    def bench_lifecycle(self, mode: Mode) -> None:
        """(b) create, start, state, exec, kill, delete timed one by one,
        against a container running /hello pause; (f) state."""
        say(f"bench: create/start/state/exec/kill/delete, {mode.name}, N={N}")
        rts = self.rts("pyrun", "runc", "crun")
        args = ["/hello", "pause"]
        rows = {op: self.table.add(f"{op}, {mode.name} (ms)", "ms")
                for op in ("create", "start", "state", "exec /hello true", "kill", "delete")}
        for i in range(N + 1):   # the first round warms up and is not counted
            for rt in rts:
                self.lifecycle_once(mode, rt, args, rows if i else None)

    def lifecycle_once(self, mode, rt, args, rows) -> None:
        def record(op, r: Result) -> bool:
            if rows is not None:
                rows[op][rt.name].ok(r.ms) if r.ok else rows[op][rt.name].fail(r.reason)
            return r.ok

        def skip(*ops):
            if rows is not None:
                for op in ops:
                    rows[op][rt.name].fail("not run: an earlier step failed")

        cid = self.new_id()
        pidfile = os.path.join(mode.dir, f"{cid}.pid")
        self.track(mode, rt, cid)
        deleted = False
        try:
            r = self.call(mode, rt, ["create", *rt.create_flags, "-b", self.bundle(mode, rt, args),
                                     "--pid-file", pidfile, cid])
            if not record("create", r):
                return skip("start", "state", "exec /hello true", "kill", "delete")
            pid = read_pid(pidfile)
            if not record("start", self.call(mode, rt, ["start", cid])):
                return skip("state", "exec /hello true", "kill", "delete")
            record("state", self.call(mode, rt, ["state", cid]))
            wait_entrypoint(pid)
            record("exec /hello true", self.call(mode, rt, ["exec", cid, "/hello", "true"]))
            killed = record("kill", self.call(mode, rt, ["kill", cid, "KILL"]))
            kill_and_wait(pid, signal_first=not killed)
            deleted = record("delete", self.call(mode, rt, ["delete", cid]))
        finally:
            self.destroy(mode, rt, cid, deleted)
            _unlink(pidfile)

    # What containerd's shim calls for every task, against a running
    # container (/hello pause); "exec -t" as the shim runs it: --detach with
    # a --console-socket whose receiver accepts only once exec has returned.
    TASK_OPS = (("ps", ["ps", "{id}"]), ("ps --format json", ["ps", "--format", "json", "{id}"]),
                ("pause", ["pause", "{id}"]), ("resume", ["resume", "{id}"]), ("list", ["list"]),
                ("events --stats", ["events", "--stats", "{id}"]),
                ("update --pids-limit", ["update", "--pids-limit", "1000", "{id}"]),
                ("features", ["features"]), ("exec -t (containerd)", None))

    def bench_task_commands(self, mode: Mode) -> None:
        """(g) ps, pause, resume, list, events --stats, update, features
        and exec -t, each timed beside runc and crun."""
        say(f"bench: ps/pause/resume/list/events/update/features/exec -t, {mode.name}, N={N}")
        rts = self.rts("pyrun", "runc", "crun")
        rows = {op: self.table.add(f"{op}, {mode.name} (ms)", "ms") for op, _ in self.TASK_OPS}
        containers = {}
        try:
            for rt in rts:
                cid = self.new_id("t")
                self.track(mode, rt, cid)
                r = self.call(mode, rt, ["run", "-d", *rt.create_flags,
                                         "-b", self.bundle(mode, rt, ["/hello", "pause"]), cid])
                if r.ok:
                    containers[rt.name] = cid
                else:
                    for op in rows:
                        rows[op][rt.name].fail(f"run -d: {r.reason}")
            for i in range(N + 1):   # the first round warms up and is not counted
                for rt in rts:
                    cid = containers.get(rt.name)
                    if cid is None:
                        continue
                    for op, args in self.TASK_OPS:
                        r = (self.exec_tty_once(mode, rt, cid) if args is None else
                             self.call(mode, rt, [a.format(id=cid) for a in args], root=op != "features"))
                        if i:
                            rows[op][rt.name].ok(r.ms) if r.ok else rows[op][rt.name].fail(r.reason)
        finally:
            for rt in rts:
                if rt.name in containers:
                    self.destroy(mode, rt, containers[rt.name])

    def exec_tty_once(self, mode: Mode, rt: Runtime, cid: str) -> Result:
        import socket

        path = os.path.join(mode.dir, f"console-{cid}.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(path)
            os.chmod(path, 0o777)
            listener.listen(1)
            r = self.call(mode, rt, ["exec", "-t", "-d", "--console-socket", path, cid, "/hello", "true"])
            if r.ok:
                listener.settimeout(5)
                conn, _ = listener.accept()   # only now, as containerd's shim does
                with conn:
                    _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
                    for fd in fds:
                        os.close(fd)
            return r
        finally:
            listener.close()
            _unlink(path)

    def bench_version(self) -> None:
        """(f) --version: the floor of every command."""
        say(f"bench: --version, N={N}")
        mode = self.modes["rootful"]
        rts = self.rts("pyrun", "runc", "crun")
        row = self.table.add("--version (ms)", "ms")
        floor = self.table.add("  interpreter floor: python -IS -c pass, as .venv/bin/pyrun starts (ms)", "ms",
                               note="pyrun column only", columns=("pyrun",))
        python = os.path.join(os.path.dirname(PYRUN), "python")
        for i in range(N + 1):
            for rt in rts:
                r = self.call(mode, rt, ["--version"], root=False)
                if i:
                    row[rt.name].ok(r.ms) if r.ok else row[rt.name].fail(r.reason)
            t0 = time.perf_counter()
            p = subprocess.run([python, "-IS", "-c", "pass"], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=mode.dir)
            if i:
                floor["pyrun"].ok((time.perf_counter() - t0) * 1000) if p.returncode == 0 \
                    else floor["pyrun"].fail(f"exit status {p.returncode}")

    def bench_memory(self) -> None:
        """(c) PID 1's RSS/PSS with each runtime's init, and the runtime's own
        RSS during a foreground run of a container that sleeps 1 s."""
        say(f"bench: memory, rootful, N={MEM_N}")
        mode = self.modes["rootful"]
        pyinit, pyrun, runc, crun = self.rts("pyrun-init", "pyrun", "runc", "crun")
        pause = ["/hello", "pause"]
        tini = ["/tini", "-s", "--", *pause] if tini_binary() else None
        cata = ["/catatonit", "--", *pause] if catatonit_binary() else None
        # (row label, [(column, runtime, args, extras)])
        cases = [
            ("PID 1 with an init: pyrun-init vs tini-static",
             [("pyrun", pyinit, pause, False), ("runc", runc, tini, True), ("crun", crun, tini, True)]),
            ("PID 1 with an init: pyrun-init vs catatonit",
             [("pyrun", pyinit, pause, False), ("runc", runc, cata, True), ("crun", crun, cata, True)]),
            ("PID 1 without init (/hello pause)",
             [("pyrun", pyrun, pause, False), ("runc", runc, pause, False), ("crun", crun, pause, False)]),
        ]
        rows = {}
        for label, _ in cases:
            rows[label] = (self.table.add(f"{label}: RSS (kB)", "kB"),
                           self.table.add(f"{label}: PSS (kB)", "kB"))
        create_peak = self.table.add("peak RSS of `create` (runtime and its waited children) (kB)", "kB")
        fg_peak = self.table.add("peak RSS of foreground `run` (sleep 1) (kB)", "kB")
        fg_rss = self.table.add("RSS of the runtime process while the container runs (kB)", "kB")
        fg_pss = self.table.add("PSS of the runtime process while the container runs (kB)", "kB")
        sleep1 = ["/hello", "sleep", "1"]
        for _ in range(MEM_N):
            pyrun_sample = None
            for label, cols in cases:
                rss_row, pss_row = rows[label]
                for col, rt, args, extras in cols:
                    if args is None:
                        rss_row[col].fail("not installed")
                        pss_row[col].fail("not installed")
                        continue
                    if label.endswith("catatonit") and col == "pyrun" and pyrun_sample:
                        got = pyrun_sample   # the same pyrun-init: measured once per round
                    else:
                        got = self.pid1_memory(mode, rt, args, extras)
                    if col == "pyrun" and rt is pyinit:
                        pyrun_sample = got
                    if isinstance(got, str):
                        rss_row[col].fail(got)
                        pss_row[col].fail(got)
                    else:
                        rss_row[col].ok(got[0])
                        pss_row[col].ok(got[1])
                    if label == cases[0][0]:
                        create_peak[col].ok(got[2]) if not isinstance(got, str) and got[2] \
                            else create_peak[col].fail(got if isinstance(got, str) else "no %M")
            for rt in (pyrun, runc, crun):
                got = self.foreground_memory(mode, rt, sleep1)
                if isinstance(got, str):
                    for row in (fg_peak, fg_rss, fg_pss):
                        row[rt.name].fail(got)
                else:
                    fg_peak[rt.name].ok(got[0])
                    fg_rss[rt.name].ok(got[1])
                    fg_pss[rt.name].ok(got[2])

    def pid1_memory(self, mode, rt, args, extras) -> tuple[int, int, int] | str:
        """PID 1's RSS and PSS once /hello runs, and create's peak RSS."""
        cid = self.new_id("m")
        pidfile = os.path.join(mode.dir, f"{cid}.pid")
        self.track(mode, rt, cid)
        try:
            r = self.call(mode, rt, ["create", *rt.create_flags, "-b",
                                     self.bundle(mode, rt, args, extras), "--pid-file", pidfile, cid],
                          peak_rss=True)
            if not r.ok:
                return r.reason
            create_peak = r.maxrss_kb
            pid = read_pid(pidfile)
            r = self.call(mode, rt, ["start", cid])
            if not r.ok:
                return r.reason
            if not wait_entrypoint(pid):
                return "the entrypoint did not start"
            time.sleep(0.1)   # let PID 1 settle (pyrun-init: signalfd set up, child forked)
            mem = smaps_rollup(pid)
            with self.lock:   # what PID 1 was, for the record (pyrun's init: memfd:pyrun-init)
                self.extra.setdefault("pid1_comm", {})[f"{rt.label}: {' '.join(args)}"] = _comm(pid)
            kill_and_wait(pid)
            return (mem["Rss"], mem["Pss"], create_peak) if mem else "PID 1 vanished"
        finally:
            self.destroy(mode, rt, cid)
            _unlink(pidfile)

    def foreground_memory(self, mode, rt, args) -> tuple[int, int, int] | str:
        """Peak RSS (GNU time's %M) of a foreground `run`, and the RSS/PSS of
        the runtime process half-way through the container's 1 s sleep."""
        cid = self.new_id("f")
        self.track(mode, rt, cid)
        try:
            with tempfile.TemporaryFile("w+") as err, tempfile.NamedTemporaryFile("r") as rss:
                os.chmod(rss.name, 0o666)
                cmd = [GNU_TIME, "-f", "%M", "-o", rss.name, "--", self.exe(mode, rt),
                       "--root", self.root(mode, rt), "run", *rt.create_flags,
                       "-b", self.bundle(mode, rt, args), cid]
                p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=err, cwd=mode.dir, env=mode.env, start_new_session=True,
                                     **mode.user_kw())
                time.sleep(0.6)
                runtime = children(p.pid)   # GNU time's one child: the runtime
                mem = smaps_rollup(runtime[0]) if runtime else None
                p.wait(timeout=TIMEOUT)
                err.seek(0)
                text = err.read()
                peak = _last_int(rss.read())
            if p.returncode != 0:
                return Result(p.returncode, 0, text).reason
            if not mem:
                return "the runtime exited before the container's sleep was over"
            return peak, mem["Rss"], mem["Pss"]
        finally:
            self.destroy(mode, rt, cid)

    def bench_scale(self) -> None:
        """(d) SCALE containers launched at once with `run -d`, waited for
        (/hello true exits at once) and deleted, all concurrently."""
        say(f"bench: scale, {SCALE} containers at once, rootful, {SCALE_ROUNDS} round(s)")
        mode = self.modes["rootful"]
        rts = self.rts("pyrun", "runc", "crun")
        args = ["/hello", "true"]
        total = self.table.add(f"scale: {SCALE}x run -d + wait + delete, total wall (s)", "s")
        launch_wall = self.table.add(f"scale: {SCALE}x run -d, until all launched (s)", "s")
        p50 = self.table.add("scale: per-container `run -d` p50 (ms)", "ms", single=True)
        p99 = self.table.add("scale: per-container `run -d` p99 (ms)", "ms", single=True)
        fails = self.table.add(f"scale: failures (of {SCALE * SCALE_ROUNDS})", "count", single=True)
        launches: dict[str, Series] = {rt.name: Series() for rt in rts}
        failed: dict[str, list[str]] = {rt.name: [] for rt in rts}
        for rt in rts:
            self.bundle(mode, rt, args)
        for _ in range(SCALE_ROUNDS):
            for rt in rts:
                wall, lw = self.scale_once(mode, rt, args, launches[rt.name], failed[rt.name])
                total[rt.name].ok(wall)
                launch_wall[rt.name].ok(lw)
        for rt in rts:
            s = launches[rt.name]
            if s.samples:
                p50[rt.name].ok(pct(s.samples, 50))
                p99[rt.name].ok(pct(s.samples, 99))
            else:
                p50[rt.name].fail(failed[rt.name][0] if failed[rt.name] else "no launch")
                p99[rt.name].fail(failed[rt.name][0] if failed[rt.name] else "no launch")
            fails[rt.name].ok(len(failed[rt.name]))
            if failed[rt.name]:
                fails[rt.name].failures.extend(failed[rt.name])
        self.extra["scale_failures"] = {k: sorted(set(v))[:5] for k, v in failed.items()}

    def scale_once(self, mode, rt, args, launches: Series, failed: list[str]) -> tuple[float, float]:
        bundle = self.bundle(mode, rt, args)
        ids = [self.new_id("s") for _ in range(SCALE)]
        for cid in ids:
            self.track(mode, rt, cid)

        def launch(cid):
            pidfile = os.path.join(mode.dir, f"{cid}.pid")
            r = self.call(mode, rt, ["run", "-d", *rt.create_flags, "-b", bundle,
                                     "--pid-file", pidfile, cid], timeout=120)
            pid = read_pid(pidfile) if r.ok else None
            _unlink(pidfile)
            return cid, r, pid

        def delete(cid):
            return cid, self.call(mode, rt, ["delete", cid], timeout=120)

        t0 = time.perf_counter()
        ok_ids, deleted = [], set()
        with ThreadPoolExecutor(max_workers=SCALE) as pool:
            results = list(pool.map(launch, ids))
            t_launched = time.perf_counter()
            for cid, r, pid in results:
                if r.ok:
                    launches.ok(r.ms)
                    ok_ids.append(cid)
                    if pid:
                        kill_and_wait(pid, signal_first=False)
                else:
                    failed.append(f"run -d: {r.reason}")
            for cid, r in pool.map(delete, ok_ids):
                if r.ok:
                    deleted.add(cid)
                else:
                    failed.append(f"delete: {r.reason}")
        t1 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda c: self.destroy(mode, rt, c, c in deleted), ids))
        return t1 - t0, t_launched - t0

    def bench_steps(self) -> None:
        """(e) `pyrun --debug run`: the median of each named step."""
        say(f"bench: pyrun --debug run step timings, N={N}")
        rt = self.runtimes["pyrun"]
        args = ["/hello", "true"]
        out = {}
        for mode in self.modes.values():
            per_step: dict[str, list[float]] = {}
            walls, sums, fails = [], [], []
            runs = []
            for i in range(N + 1):
                cid = self.new_id("d")
                self.track(mode, rt, cid)
                r = self.call(mode, rt, ["run", "-b", self.bundle(mode, rt, args), cid],
                              global_flags=("--debug",))
                self.destroy(mode, rt, cid, deleted=r.ok)
                if not i:
                    continue
                if not r.ok:
                    fails.append(r.reason)
                    continue
                steps: dict[str, float] = {}
                for m in STEP_RE.finditer(r.err):
                    steps[m.group(1)] = steps.get(m.group(1), 0.0) + float(m.group(2))
                runs.append(steps)
                walls.append(r.ms)
                sums.append(sum(steps.values()))
            names = {name for steps in runs for name in steps}
            for name in names:
                per_step[name] = [steps.get(name, 0.0) for steps in runs]
            out[mode.name] = {
                "runs": len(runs), "failures": sorted(set(fails))[:5],
                "wall_median_ms": statistics.median(walls) if walls else None,
                "sum_of_steps_median_ms": statistics.median(sums) if sums else None,
                "outside_steps_median_ms": statistics.median([w - s for w, s in zip(walls, sums)])
                if walls else None,
                "steps": {name: {"median_ms": statistics.median(v), "p90_ms": pct(v, 90)}
                          for name, v in sorted(per_step.items(),
                                                key=lambda kv: -statistics.median(kv[1]))},
            }
        self.extra["pyrun_debug_steps"] = out

    def bench_importtime(self) -> None:
        """Where `pyrun --version` and `pyrun run` spend their imports."""
        say("bench: python -X importtime")
        mode = self.modes["rootful"]
        python = os.path.join(os.path.dirname(PYRUN), "python")
        rt = self.runtimes["pyrun"]
        out = {}
        reps = 1 if QUICK else 5
        for what in ("--version", "run"):
            totals: dict[str, list[int]] = {}
            selfs: dict[str, list[int]] = {}
            for i in range(reps + 1):
                cid = self.new_id("i")
                args = ["--version"] if what == "--version" else \
                    ["--root", self.root(mode, rt), "run", "-b", self.bundle(mode, rt, ["/hello", "true"]), cid]
                self.track(mode, rt, cid)
                with tempfile.TemporaryFile("w+") as err:
                    # the console script itself, as users run it (-m pyrun adds runpy's imports)
                    subprocess.run([python, "-X", "importtime", PYRUN, *args],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                   cwd=mode.dir, env=mode.env, timeout=TIMEOUT)
                    err.seek(0)
                    text = err.read()
                if what == "run":
                    self.destroy(mode, rt, cid)
                if not i:
                    continue
                top: dict[str, int] = {}
                own: dict[str, int] = {}
                for line in text.splitlines():
                    parts = line.split("|")
                    if not line.startswith("import time:") or len(parts) != 3 or "self" in parts[0]:
                        continue
                    name_field = parts[2]
                    name = name_field.strip()
                    depth = (len(name_field) - len(name_field.lstrip()) - 1) // 2
                    self_us = int(parts[0].split(":")[1])
                    cum_us = int(parts[1])
                    own[name] = own.get(name, 0) + self_us
                    if depth == 0:
                        top[name] = top.get(name, 0) + cum_us
                for k, v in top.items():
                    totals.setdefault(k, []).append(v)
                for k, v in own.items():
                    selfs.setdefault(k, []).append(v)
            med = {k: statistics.median(v) / 1000 for k, v in totals.items()}
            med_self = {k: statistics.median(v) / 1000 for k, v in selfs.items()}
            out[what] = {
                "total_import_ms": round(sum(med.values()), 2),
                "top_level_cumulative_ms": dict(sorted(((k, round(v, 2)) for k, v in med.items()),
                                                       key=lambda kv: -kv[1])[:12]),
                "self_ms": dict(sorted(((k, round(v, 2)) for k, v in med_self.items()),
                                       key=lambda kv: -kv[1])[:12]),
            }
        self.extra["importtime"] = out


# ------------------------------------------------------------------ helpers

class Watchdog:
    """Kills (the process group of) any runtime call that overstays its
    timeout: one thread for all, so a call costs no thread start."""

    def __init__(self) -> None:
        self.deadlines: dict[int, float] = {}
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def watch(self, pid: int, timeout: float) -> None:
        with self.lock:
            self.deadlines[pid] = time.monotonic() + timeout
            if self.thread is None:
                self.thread = threading.Thread(target=self._loop, daemon=True)
                self.thread.start()

    def unwatch(self, pid: int) -> None:
        with self.lock:
            self.deadlines.pop(pid, None)

    def _loop(self) -> None:
        while True:
            time.sleep(0.5)
            now = time.monotonic()
            with self.lock:
                late = [pid for pid, t in self.deadlines.items() if t < now]
                for pid in late:
                    del self.deadlines[pid]
            for pid in late:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass


WATCHDOG = Watchdog()


def timed(cmd: list[str], env: dict, cwd: str, user_kw: dict, stdout=subprocess.DEVNULL,
          timeout: float = TIMEOUT, peak_rss: bool = False) -> Result:
    """Run ``cmd`` once: wall time around spawn and wait.
    stdout/stderr are never pipes: create hands its stdio to the
    container, so a pipe would not reach EOF while it lives."""
    with tempfile.TemporaryFile("w+") as err, tempfile.NamedTemporaryFile("r") as rss:
        if peak_rss:
            os.chmod(rss.name, 0o666)
            cmd = [GNU_TIME, "-f", "%M", "-o", rss.name, "--", *cmd]
        t0 = time.perf_counter()
        try:
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=err,
                                 cwd=cwd, env=env, start_new_session=True, **user_kw)
        except OSError as e:
            return Result(127, 0.0, f"{cmd[0]}: {e.strerror}")
        WATCHDOG.watch(p.pid, timeout)
        try:
            _, status = os.waitpid(p.pid, 0)
        finally:
            WATCHDOG.unwatch(p.pid)
        t1 = time.perf_counter()
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read()
        maxrss = _last_int(rss.read()) if peak_rss else 0
    if p.returncode == -signal.SIGKILL and t1 - t0 >= timeout:
        text += f"\ntimeout after {timeout:.0f} s"
    return Result(p.returncode, (t1 - t0) * 1000, text, maxrss)


def stop_containerd(c) -> None:
    """Every task killed and deleted, every container deleted, containerd
    stopped; the runtime removed each task's cgroup, the namespace's parent
    cgroups it leaves (as runc does) are removed here."""
    for task in c.ctr("task", "ls", "-q").stdout.split():
        c.ctr("task", "kill", "-s", "KILL", task)
        c.ctr("task", "delete", "-f", task)
    for container in c.ctr("container", "ls", "-q").stdout.split():
        c.ctr("container", "delete", container)
    c.stop()
    for top in ("/sys/fs/cgroup", *(os.path.join("/sys/fs/cgroup", h) for h in _listdir("/sys/fs/cgroup"))):
        try:
            os.rmdir(os.path.join(top, c.ns))
        except OSError:   # not there, not empty, or not a cgroup
            pass


def _last_int(text: str) -> int:
    """GNU time's -o file: maybe a "Command exited with..." line, then %M."""
    for line in reversed(text.splitlines()):
        if line.strip().isdigit():
            return int(line.strip())
    return 0


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def read_pid(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _proc_state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    """Until the process is gone or a zombie (what runtimes call stopped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = _proc_state(pid)
        if state is None or state in ("Z", "X"):
            return True
        time.sleep(0.002)
    return False


def kill_and_wait(pid: int | None, signal_first: bool = True) -> None:
    if pid is None:
        return
    if signal_first:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            return
    wait_gone(pid)


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def wait_entrypoint(pid: int | None, timeout: float = 5.0) -> bool:
    """Until /hello runs as PID 1 or as PID 1's child (an init in front)."""
    if pid is None:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _comm(pid) == "hello" or any(_comm(c) == "hello" for c in children(pid)):
            return True
        if _proc_state(pid) in (None, "Z"):
            return False
        time.sleep(0.002)
    return False


def smaps_rollup(pid: int) -> dict[str, int] | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            out = {}
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[2] == "kB":
                    out[parts[0].rstrip(":")] = int(parts[1])
            return out
    except OSError:
        return None


def tini_binary() -> str | None:
    return next((p for p in ("/usr/bin/tini-static",) if os.path.exists(p)), None)


def catatonit_binary() -> str | None:
    return next((p for p in ("/usr/bin/catatonit", "/usr/libexec/podman/catatonit")
                 if os.path.exists(p)), None)


def ensure_bench_user() -> pwd.struct_passwd:
    """An unprivileged user with subordinate id ranges (as make test's)."""
    sys.path.insert(0, os.path.join(TOP, "tests"))
    from users import ensure_user

    return ensure_user(BENCH_USER, SUBID_START, SUBID_COUNT)


def base_config(mode: Mode) -> dict:
    """`runc spec [--rootless]` for every runtime, with the changes they all
    need: /hello's args later, no terminal, and rootless: the bench user's
    ids mapped to 0."""
    d = tempfile.mkdtemp(prefix="spec-")
    try:
        flags = ["--rootless"] if mode.rootless else []
        runc = shutil.which("runc")
        if runc:
            subprocess.run([runc, "spec", *flags], cwd=d, check=True, capture_output=True)
        else:
            subprocess.run([PYRUN, "spec", *flags], cwd=d, check=True, capture_output=True)
        with open(os.path.join(d, "config.json")) as f:
            config = json.load(f)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    config["process"]["terminal"] = False
    config["hostname"] = "bench"
    if not runc:
        config["linux"].pop("seccomp", None)   # runc spec has none: same for all
    if mode.rootless:
        config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": mode.uid, "size": 1}]
        config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": mode.gid, "size": 1}]
    return config


# unshare(1)'s flag for each namespace of an OCI config
UNSHARE_FLAGS = {"pid": "--pid", "network": "--net", "ipc": "--ipc", "uts": "--uts", "mount": "--mount",
                 "cgroup": "--cgroup", "user": "--user", "time": "--time"}


def unshare_floor(config: dict) -> list[str]:
    """The kernel's floor for a container of ``config``: unshare(1) of the
    same namespaces (a new pid namespace needs a fork and its own /proc,
    a user namespace maps the caller to root as the rootless config does),
    then execve of true. What every runtime pays at least."""
    kinds = [ns["type"] for ns in config["linux"].get("namespaces", []) if not ns.get("path")]
    cmd = ["unshare", *(UNSHARE_FLAGS[k] for k in kinds if k in UNSHARE_FLAGS)]
    if "user" in kinds:
        cmd.append("--map-root-user")
    if "pid" in kinds:
        cmd += ["--fork", "--mount-proc"]
    return cmd + ["true"]


def loadavg() -> str:
    """The 1-minute load average: other work on the machine makes noise."""
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def versions() -> dict:
    out = {}
    for name, cmd in (("pyrun", [PYRUN, "--version"]), ("runc", ["runc", "--version"]),
                      ("crun", ["crun", "--version"])):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            out[name] = p.stdout.splitlines()[0] if p.returncode == 0 and p.stdout else \
                f"failed: {p.stderr.strip()[:80]}"
        except OSError as e:
            out[name] = f"missing: {e.strerror}"
    for name, path in (("tini", tini_binary()), ("catatonit", catatonit_binary())):
        out[name] = (f"{path} ({'static' if is_static(path) else 'dynamic'})" if path else "missing")
    with open("/proc/version") as f:
        out["kernel"] = f.read().split()[2]
    out["cpus"] = os.cpu_count()
    return out


# ------------------------------------------------------------------ report

def fmt_num(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "ms":
        return f"{v:.1f}"
    if unit == "s":
        return f"{v:.2f}"
    return f"{v:.0f}"


def cell(s: Series, row: Row) -> str:
    if not s.samples:
        if s.failures:
            return "failed: " + s.failures[0]
        return "-"
    if row.single or len(s.samples) == 1:
        text = fmt_num(s.median, row.unit)
    else:
        text = f"{fmt_num(s.median, row.unit)} / {fmt_num(s.p90, row.unit)}"
    if s.failures and row.unit != "count":
        text += f" ({len(s.failures)} failed)"
    return text


def ratio(a: Series | None, b: Series | None) -> str:
    if not a or not b or a.median is None or b.median is None or b.median == 0:
        return "-"
    return f"{a.median / b.median:.2f}x"


# Issue 25's goals: (row name prefix, the other runtime, the largest ratio
# pyrun/other that meets it). Memory: at most what it was when they were set.
SHORT_COMMANDS = ("create", "start", "state", "exec /hello true", "kill", "delete", "ps", "pause",
                  "resume", "list")
GOALS = ([(f"run /hello true, {m}", "runc", 1.0) for m in ("rootful", "rootless")]
         + [(f"{op}, {m}", "runc", 1.5) for m in ("rootful", "rootless") for op in SHORT_COMMANDS]
         + [("podman run --rm", "runc", 1.1), ("ctr run --rm", "runc", 1.1)]
         + [(f"run /hello true, {m}", "crun", 1.5) for m in ("rootful", "rootless")])
MEMORY_GOALS = (("peak RSS of `create`", 11059), ("PID 1 with an init: pyrun-init vs catatonit: PSS", 28))


def goals(table: Table) -> list[str]:
    """One line per goal of issue 25 that this run measured: met or missed,
    by how much. What stands in the way is in the step and import times
    printed below the table."""
    out = ["", "goals (issue 25):"]
    floor = next((row.series["pyrun"].median for row in table.rows
                  if row.name.strip().startswith("interpreter floor")), None)
    for prefix, other, limit in GOALS:
        for row in table.rows:
            if not row.name.startswith(prefix) or other not in row.series:
                continue
            mine, theirs = row.series["pyrun"].median, row.series[other].median
            if mine is None or not theirs:
                continue
            verdict = "meets" if mine / theirs <= limit else "misses"
            why = ""
            if verdict == "misses" and floor and prefix.split(",")[0] in SHORT_COMMANDS:
                why = f"; the interpreter's start alone is {floor / theirs:.2f}x"
            out.append(f"  {verdict:6} {row.name.split(' (')[0]}: pyrun {mine:.1f} ms, {mine / theirs:.2f}x "
                       f"{other} (goal <= {limit:g}x{why})")
    for prefix, limit in MEMORY_GOALS:
        for row in table.rows:
            mine = row.series["pyrun"].median if row.name.startswith(prefix) else None
            if mine is not None:
                verdict = "meets" if mine <= limit else "misses"
                out.append(f"  {verdict:6} {row.name.split(' (')[0]}: pyrun {mine:.0f} kB (goal <= {limit} kB)")
    return out if len(out) > 2 else []


def render(table: Table, extra: dict) -> str:
    head = ["measurement (median / p90)", "pyrun", "runc", "crun", "pyrun/runc", "pyrun/crun"]
    lines = []
    for row in table.rows:
        s = row.series
        lines.append([row.name] + [cell(s[c], row) if c in s else "-" for c in ("pyrun", "runc", "crun")]
                     + ([ratio(s.get("pyrun"), s.get("runc")), ratio(s.get("pyrun"), s.get("crun"))]
                        if row.unit != "count" else ["-", "-"]))
    widths = [max(len(r[i]) for r in [head] + lines) for i in range(len(head))]
    widths[0] = min(widths[0], 72)

    def fmt(r):
        first = r[0] if len(r[0]) <= widths[0] else r[0][:widths[0] - 1] + "…"
        return "  ".join([first.ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])])

    out = [fmt(head), "  ".join("-" * w for w in widths)] + [fmt(r) for r in lines]
    notes = [f"  {row.name.strip()}: {row.note}" for row in table.rows if row.note]
    if notes:
        out += ["", "notes:"] + notes

    runs = {row.name.split(", ")[1].split(" ")[0]: row for row in table.rows
            if row.name.startswith("run /hello true, ")}
    for row in table.rows:
        if row.name.strip().startswith("kernel floor") and row.series["pyrun"].median:
            mode = row.name.rsplit(", ", 1)[1].split(" ")[0]
            floor = row.series["pyrun"].median
            if mode in runs:
                out.append(f"  {mode} run /hello true over the kernel floor ({floor:.1f} ms): " + ", ".join(
                    f"{c} {s.median - floor:+.1f} ms ({s.median / floor:.1f}x)"
                    for c, s in runs[mode].series.items() if s.median))
    out += goals(table)

    for what, reason in extra.get("engines_skipped", {}).items():
        out.append(f"  engines ({what}) skipped: {reason}")

    steps = extra.get("pyrun_debug_steps", {})
    for mode, data in steps.items():
        out += ["", f"pyrun --debug run /hello true, {mode}: wall {fmt_num(data['wall_median_ms'], 'ms')} ms, "
                f"named steps {fmt_num(data['sum_of_steps_median_ms'], 'ms')} ms, "
                f"outside them {fmt_num(data['outside_steps_median_ms'], 'ms')} ms (medians, {data['runs']} runs)"]
        for name, v in list(data["steps"].items())[:12]:
            out.append(f"  {v['median_ms']:8.2f} ms  (p90 {v['p90_ms']:7.2f})  step {name}")
        if data["failures"]:
            out.append(f"  failed: {data['failures'][0]}")
    for what, data in extra.get("importtime", {}).items():
        out += ["", f"python -X importtime .venv/bin/pyrun {what}: {data['total_import_ms']:.1f} ms of imports "
                f"(top-level, cumulative, median)"]
        for name, ms in list(data["top_level_cumulative_ms"].items())[:8]:
            out.append(f"  {ms:8.2f} ms  {name}")
        out.append("  heaviest by self time: " + ", ".join(
            f"{k} {v:.1f}" for k, v in list(data["self_ms"].items())[:6]))
    return "\n".join(out)


def to_json(table: Table, extra: dict, meta: dict) -> dict:
    rows = []
    for row in table.rows:
        s = row.series
        rows.append({
            "name": row.name.strip(), "unit": row.unit, "note": row.note,
            "values": {c: v.to_json() for c, v in s.items()},
            "ratio_pyrun_runc": (s["pyrun"].median / s["runc"].median
                                 if "runc" in s and s["pyrun"].median and s["runc"].median else None),
            "ratio_pyrun_crun": (s["pyrun"].median / s["crun"].median
                                 if "crun" in s and s["pyrun"].median and s["crun"].median else None),
        })
    return {"meta": meta, "rows": rows, **extra}


# ------------------------------------------------------------------ main

def enter_private_mount_ns() -> None:
    """Re-execute under `unshare -m --propagation private`, then hide the
    host's cgroup2 mount at /sys/fs/cgroup/unified under an empty tmpfs
    (crun refuses hybrid cgroups; a plain umount would let it write into
    the host's tmpfs underneath). Applies to every runtime alike."""
    if os.environ.get(NS_MARK) != "1":
        os.environ[NS_MARK] = "1"
        os.execvp("unshare", ["unshare", "-m", "--propagation", "private", "--",
                              sys.executable, os.path.abspath(__file__), *sys.argv[1:]])
    with open("/proc/self/mountinfo") as f:
        hybrid = any(line.split()[4] == UNIFIED and " - cgroup2 " in line for line in f)
    if hybrid:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=755", "bench-no-cgroup2", UNIFIED],
                       check=True)


def main() -> int:
    if os.geteuid() != 0:
        say("bench: run me as root (rootful runs, and a rootless user to create)")
        return 2
    if not os.access(PYRUN, os.X_OK):
        say(f"bench: {PYRUN} missing: run 'make build bundles' first")
        return 2
    if not os.path.exists(os.path.join(HELLO_ROOTFS, "hello")):
        say("bench: bundles/hello is not prepared: run 'make bundles'")
        return 2
    unknown = ONLY - set(SECTIONS)
    if unknown:
        say(f"bench: BENCH_ONLY: unknown section(s) {', '.join(sorted(unknown))} "
            f"(known: {' '.join(SECTIONS)})")
        return 2
    enter_private_mount_ns()
    workdir = tempfile.mkdtemp(prefix="pyrun-bench-")
    os.chmod(workdir, 0o755)
    bench = Bench(workdir)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    meta = {"n": N, "mem_n": MEM_N, "scale": SCALE, "scale_rounds": SCALE_ROUNDS, "quick": QUICK,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "versions": versions(),
            "loadavg_start": loadavg(),
            "private_mount_ns": "tmpfs over " + UNIFIED,
            "config": "runc spec [--rootless], same for every runtime"}
    t_start = time.monotonic()
    interrupted = False
    try:
        bench.setup()
        steps = [
            ("run", lambda: bench.bench_run(bench.modes["rootful"])),
            ("run", lambda: bench.bench_run(bench.modes["rootless"])),
            ("lifecycle", lambda: bench.bench_lifecycle(bench.modes["rootful"])),
            ("lifecycle", lambda: bench.bench_lifecycle(bench.modes["rootless"])),
            ("tasks", lambda: bench.bench_task_commands(bench.modes["rootful"])),
            ("tasks", lambda: bench.bench_task_commands(bench.modes["rootless"])),
            ("engines", bench.bench_engines),
            ("version", bench.bench_version),
            ("memory", bench.bench_memory),
            ("scale", bench.bench_scale),
            ("steps", bench.bench_steps),
            ("importtime", bench.bench_importtime),
        ]
        for name, step in steps:
            if ONLY and name not in ONLY:
                continue
            t_section = time.monotonic()
            try:
                step()
            except KeyboardInterrupt:
                raise
            except Exception as e:   # one broken measurement must not lose the others
                say(f"bench: a measurement failed: {type(e).__name__}: {e}")
                bench.extra.setdefault("errors", []).append(f"{type(e).__name__}: {e}")
                bench.cleanup()
            sections = meta.setdefault("section_seconds", {})
            sections[name] = round(sections.get(name, 0) + time.monotonic() - t_section, 1)
    except KeyboardInterrupt:
        interrupted = True
        say("bench: interrupted, cleaning up")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        bench.cleanup()
        subprocess.run(["rm", "-rf", workdir])
    if interrupted:
        return 130
    meta["seconds"] = round(time.monotonic() - t_start, 1)
    meta["loadavg_end"] = loadavg()
    print()
    print(f"pyrun benchmark: N={N} per measurement (memory {MEM_N}), interleaved; "
          f"{meta['versions']['pyrun']}, {meta['versions']['runc']}, {meta['versions']['crun']}; "
          f"{meta['seconds']} s; load average {meta['loadavg_start']} at the start, "
          f"{meta['loadavg_end']} at the end ({meta['versions']['cpus']} CPUs)")
    print(render(bench.table, bench.extra))
    print("\nseconds per section: " + ", ".join(f"{k} {v}" for k, v in meta["section_seconds"].items()))
    os.makedirs(os.path.dirname(os.path.abspath(OUT)), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(to_json(bench.table, bench.extra, meta), f, indent=1)
        f.write("\n")
    print(f"\nwritten: {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
