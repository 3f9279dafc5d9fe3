"""Fixtures for tests that start real containers with the real kernel.

``rt`` is parametrized over the two ways pyrun runs:

* ``rootful``: pyrun as root (skipped when the tests do not run as root);
* ``rootless``: pyrun as an unprivileged user. Run as root (as in CI), the
  tests create the user ``pyrun-test`` with /etc/subuid and /etc/subgid
  ranges and run pyrun as that user; run as a normal user, they run pyrun as
  you.

Each test gets its own ``--root`` state directory and bundles that point at
shared rootfs templates (read-only lower layers of the overlay; a rootless
user gets its own copy so that overlay copy-up keeps file owners mapped).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid

import pytest
from proctree import children  # noqa: F401  (also for the tests: from conftest import children)

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLES = os.path.join(TOP, "bundles")
TEST_USER = "pyrun-test"
SUBID_START, SUBID_COUNT = 300000, 65536


def _run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def ensure_test_user() -> pwd.struct_passwd:
    """As root: an unprivileged user with subordinate id ranges."""
    from users import ensure_user

    return ensure_user(TEST_USER, SUBID_START, SUBID_COUNT)


@pytest.fixture(scope="session")
def workspace():
    """A world-traversable scratch directory for the whole session."""
    d = tempfile.mkdtemp(prefix="pyrun-tests-")
    os.chmod(d, 0o755)
    yield d
    subprocess.run(["rm", "-rf", d])


def _templates_ready():
    for name, probe in (("hello", "hello"), ("busybox", "bin/busybox")):
        if not os.path.exists(os.path.join(BUNDLES, name, "rootfs", probe)):
            pytest.exit(f"bundles/{name} is not prepared: run 'make bundles' (or 'make test')", 2)


def _copy_tree_for(uid: int, gid: int, src: str, dst: str) -> None:
    _run(["cp", "-a", src, dst])
    _run(["chown", "-R", f"{uid}:{gid}", dst])


class Runtime:
    """Runs ``pyrun`` as root or as the test user, with its own state root."""

    def __init__(self, mode: str, workspace: str, prefix: list[str], env: dict, uid: int, gid: int,
                 rootfs: dict[str, str]):
        self.mode = mode
        self.rootless = mode == "rootless"
        self.uid, self.gid = uid, gid
        self.prefix = prefix
        self.env = dict(env)
        self.rootfs = rootfs
        self.dir = tempfile.mkdtemp(prefix=f"{mode}-", dir=workspace)
        os.chmod(self.dir, 0o755)
        self._chown(self.dir)
        self.root = os.path.join(self.dir, "state")
        os.mkdir(self.root, 0o700)
        self._chown(self.root)
        # Where overlay upper layers go by default (pyrun.container.state.default_layers_root):
        # /var/lib/pyrun as root; rootless, $XDG_DATA_HOME/pyrun, per test here.
        if self.rootless:
            self.env["XDG_DATA_HOME"] = os.path.join(self.dir, "data")
            self.layers = os.path.join(self.dir, "data", "pyrun")
        else:
            self.layers = "/var/lib/pyrun"
        self._n = 0

    def _chown(self, path: str) -> None:
        if os.geteuid() == 0 and self.uid != 0:
            os.chown(path, self.uid, self.gid)

    def _user_kw(self) -> dict:
        if os.geteuid() == 0 and self.uid != 0:
            return {"user": self.uid, "group": self.gid, "extra_groups": []}
        return {}

    def cmd(self, *args) -> list[str]:
        return self.prefix + ["--root", self.root] + [str(a) for a in args]

    def __call__(self, *args, timeout: float = 60, input: str | None = None, **kw):
        """Run pyrun; returns CompletedProcess with stdout/stderr as text.

        Output is captured in files, not pipes: like runc, ``create`` hands
        its stdio to the container, so a pipe would not reach EOF while the
        container lives."""
        kw.setdefault("cwd", self.dir)  # not the checkout: its pyrun/ has no compiled shim
        capture = kw.pop("capture_output", True)
        cmd = self.cmd(*args)
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            if capture:
                kw.setdefault("stdout", out)
                kw.setdefault("stderr", err)
            p = subprocess.run(cmd, text=True, timeout=timeout, env=self.env, input=input,
                               stdin=None if input is not None else subprocess.DEVNULL,
                               **self._user_kw(), **kw)
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(cmd, p.returncode, out.read(), err.read())

    def popen(self, *args, **kw) -> subprocess.Popen:
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("cwd", self.dir)
        return subprocess.Popen(self.cmd(*args), text=True, env=self.env, **self._user_kw(), **kw)

    def ok(self, *args, **kw) -> str:
        p = self(*args, **kw)
        assert p.returncode == 0, f"pyrun {' '.join(map(str, args))} -> {p.returncode}\n{p.stderr}"
        return p.stdout

    def create_fails_in_one_line(self, config: dict) -> str:
        """``pyrun create`` a container of ``config``, expecting a failure
        told in one line that leaves the state root as it was; return that
        stderr."""
        before = sorted(os.listdir(self.root))
        p = self("create", "-b", self.bundle(config=config), f"fail-{uuid.uuid4().hex[:8]}")
        assert p.returncode != 0
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert sorted(os.listdir(self.root)) == before
        return p.stderr

    def config(self, args: list[str], rootfs: str = "busybox") -> dict:
        from pyrun.config.spec import default_spec

        c = default_spec(rootless=True, uid=self.uid, gid=self.gid) if self.rootless else default_spec()
        c["root"] = {"path": self.rootfs[rootfs], "readonly": False}
        c["process"]["args"] = args
        c["process"]["terminal"] = False
        c["hostname"] = "pyrun-test"
        return c

    def with_id_ranges(self, config: dict) -> dict:
        """Rootless: uid/gid 0 -> the user, 1..65536 -> its /etc/subuid and
        /etc/subgid ranges (newuidmap), so that other ids exist inside."""
        if self.rootless:
            if os.geteuid() != 0:
                pytest.skip("needs the test user's /etc/subuid range")
            for key, own in (("uidMappings", self.uid), ("gidMappings", self.gid)):
                config["linux"][key] = [{"containerID": 0, "hostID": own, "size": 1},
                                        {"containerID": 1, "hostID": SUBID_START, "size": SUBID_COUNT}]
        return config

    def mkdir(self, name: str) -> str:
        """A new directory ``name`` in the test's directory, owned by the
        user pyrun runs as: a hook or a runtime may write there."""
        path = os.path.join(self.dir, name)
        os.mkdir(path)
        self._chown(path)
        return path

    def bundle(self, args: list[str] | None = None, rootfs: str = "busybox", config: dict | None = None,
               raw: str | None = None) -> str:
        """A bundle directory whose config.json is ``config`` (or ``raw`` text)."""
        self._n += 1
        path = os.path.join(self.dir, f"bundle{self._n}")
        os.mkdir(path)
        if raw is None:
            raw = json.dumps(config if config is not None else self.config(args or ["true"], rootfs))
        with open(os.path.join(path, "config.json"), "w") as f:
            f.write(raw)
        self._chown(path)
        self._chown(os.path.join(path, "config.json"))
        return path

    def state(self, cid: str) -> dict:
        return json.loads(self.ok("state", cid))

    def events_until(self, cid: str, want: str, timeout: float = 20, interval: str = "100ms",
                     go=None) -> list[dict]:
        """``pyrun events --interval`` of ``cid``, read until an event of
        type ``want`` (then the last one), the end of the stream or
        ``timeout`` seconds. ``go()``, if given, runs once the first event
        is read: what is to cause ``want`` starts once it is watched."""
        events = self.popen("events", "--interval", interval, cid, stdout=subprocess.PIPE)
        seen = []
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                line = events.stdout.readline()
                if not line:
                    break
                seen.append(json.loads(line))
                if len(seen) == 1 and go is not None:
                    go()
                if seen[-1]["type"] == want:
                    break
        finally:
            events.kill()
            events.wait()
        return seen

    def wait_status(self, cid: str, status: str, timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            p = self("state", cid)
            if p.returncode == 0:
                s = json.loads(p.stdout)
                if s["status"] == status:
                    return s
            if time.monotonic() > deadline:
                raise AssertionError(f"{cid} did not become {status}: {p.stdout or p.stderr}")
            time.sleep(0.05)

    def wait_handler(self, cid: str, signum: int, timeout: float = 10) -> int:
        """Wait until the container's process (PID 1, or the init's child)
        catches ``signum`` (SigCgt in /proc/PID/status); returns its pid.
        A test that signals a process must not race its sigaction(2)."""
        pid = self.state(cid)["pid"]
        deadline = time.monotonic() + timeout
        while True:
            for p in [pid, *children(pid)]:
                try:
                    with open(f"/proc/{p}/status") as f:
                        caught = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
                except (OSError, StopIteration):
                    continue
                if caught & (1 << (signum - 1)):  # pyrun-init blocks signals (signalfd), catches none
                    return p
            if time.monotonic() > deadline:
                raise AssertionError(f"no process of {cid} caught signal {signum} within {timeout}s")
            time.sleep(0.02)


def compose_edits(*edits):
    """One config edit (a function that changes a config dict in place)
    that makes each of ``edits`` in turn."""
    def edit(config: dict) -> None:
        for e in edits:
            e(config)
    return edit


RECORDING_WRAPPER = """\
#!/bin/sh
{command} "$@"
rc=$?
printf '%s\\t%s\\n' "$rc" "$*" >> {log}
exit $rc
"""


def recording_wrapper(path: str, command: str, log: str) -> str:
    """Write at ``path`` an executable sh script that runs ``command "$@"``
    and appends its exit status and its arguments to ``log``, for a test
    to see how a daemon (containerd's shim, dockerd's) called the runtime:
    :func:`recorded_calls`. Returns ``path``."""
    with open(path, "w") as f:
        f.write(RECORDING_WRAPPER.format(command=command, log=log))
    os.chmod(path, 0o755)
    return path


def recorded_calls(log: str) -> list[tuple[int, str]]:
    """What a :func:`recording_wrapper` wrote to ``log``: (exit status,
    arguments) a call, oldest first."""
    if not os.path.exists(log):
        return []
    with open(log) as f:
        return [(int(rc), argv) for rc, argv in (line.rstrip("\n").split("\t", 1) for line in f)]


def wait_children(pid: int, timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    while not (found := children(pid)):
        if time.monotonic() > deadline:
            raise AssertionError(f"process {pid} forked nothing within {timeout}s")
        time.sleep(0.02)
    return found


@pytest.fixture(scope="session")
def rootless_env(workspace):
    """(prefix, env, uid, gid, rootfs templates) for the unprivileged side."""
    _templates_ready()
    if os.geteuid() != 0:
        env = dict(os.environ)
        templates = {n: os.path.join(BUNDLES, n, "rootfs") for n in ("hello", "busybox")}
        return [sys.executable, "-m", "pyrun"], env, os.geteuid(), os.getegid(), templates
    pw = ensure_test_user()
    uid, gid = pw.pw_uid, pw.pw_gid
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/", "LANG": "C.UTF-8"}
    prefix = [sys.executable, "-m", "pyrun"]
    probe = subprocess.run(prefix + ["--version"], user=uid, group=gid, extra_groups=[], env=env,
                           capture_output=True, text=True)
    if probe.returncode != 0:
        # The venv is somewhere the test user cannot reach (a checkout under
        # /root): give it a world-readable copy of the installed packages.
        site = os.path.join(workspace, "site-packages")
        shutil.copytree(sysconfig.get_paths()["purelib"], site, symlinks=True)
        _run(["chmod", "-R", "a+rX", site])
        env["PYTHONPATH"] = site
        prefix = [getattr(sys, "_base_executable", sys.executable), "-m", "pyrun"]
        probe = subprocess.run(prefix + ["--version"], user=uid, group=gid, extra_groups=[], env=env,
                               capture_output=True, text=True)
        assert probe.returncode == 0, f"the test user cannot run pyrun: {probe.stderr}"
    templates = {}
    for name in ("hello", "busybox"):
        dst = os.path.join(workspace, f"rootfs-{name}-{uid}")
        _copy_tree_for(uid, gid, os.path.join(BUNDLES, name, "rootfs"), dst)
        templates[name] = dst
    return prefix, env, uid, gid, templates


@pytest.fixture(params=["rootful", "rootless"])
def rt(request, workspace, rootless_env):
    if request.param == "rootful":
        if os.geteuid() != 0:
            pytest.skip("rootful tests need root")
        _templates_ready()
        templates = {n: os.path.join(BUNDLES, n, "rootfs") for n in ("hello", "busybox")}
        runtime = Runtime("rootful", workspace, [sys.executable, "-m", "pyrun"], dict(os.environ), 0, 0,
                          templates)
    else:
        prefix, env, uid, gid, templates = rootless_env
        runtime = Runtime("rootless", workspace, prefix, env, uid, gid, templates)
    yield runtime
    # Whatever a test left behind is removed, so one failure does not cascade.
    for cid in os.listdir(runtime.root) if os.path.isdir(runtime.root) else []:
        runtime("delete", "--force", cid)


@pytest.fixture
def rootful(rt):
    if rt.rootless:
        pytest.skip("rootful only")
    return rt


def host_mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return sorted(" ".join(line.split()[3:5]) for line in f)


def foreign_mntns_pids() -> set[int]:
    """Processes in a mount namespace other than ours: containers, mostly."""
    mine = os.readlink("/proc/self/ns/mnt")
    out = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.readlink(f"/proc/{name}/ns/mnt") != mine:
                    out.add(int(name))
            except OSError:
                pass
    return out


class Residue:
    """Snapshot host state; ``check()`` asserts a failed command left nothing."""

    def __init__(self, rt: Runtime):
        self.rt = rt
        self.mounts = host_mounts()
        self.pids = foreign_mntns_pids()
        self.layers = _listdir(rt.layers)

    def check(self, cid: str | None = None) -> None:
        state_entries = os.listdir(self.rt.root) if os.path.isdir(self.rt.root) else []
        assert state_entries == [], f"state left behind: {state_entries}"
        layers = sorted(set(_listdir(self.rt.layers)) - set(self.layers))
        assert layers == [], f"layer dirs left behind in {self.rt.layers}: {layers}"
        assert host_mounts() == self.mounts, "host mount table changed"
        deadline = time.monotonic() + 5
        while True:
            extra = {p for p in foreign_mntns_pids() - self.pids if os.path.exists(f"/proc/{p}")}
            extra = {p for p in extra if _state_letter(p) not in ("Z", None)}
            if not extra or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert not extra, f"processes left behind: {extra}"


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def _state_letter(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


@pytest.fixture
def residue(rt):
    return Residue(rt)
