"""A hermetic podman for the integration suite (tests/test_podman.py).

``PodmanEnv`` is one podman installation in miniature: its own storage
(``--root``/``--runroot``), libpod tmp dir, ``containers.conf``,
``storage.conf``, volume and network config directories, all under one
temporary directory, with one OCI runtime (pyrun or runc) and one mode:

* ``rootful``: podman runs as root;
* ``rootless``: podman runs as the user ``pyrun-podman`` (created when
  missing, with /etc/subuid and /etc/subgid ranges 400000:65536, which
  overlap neither tests/conftest.py's ``pyrun-test`` nor the benchmarks'
  ranges), with HOME and XDG_RUNTIME_DIR inside the env's directory, so
  that its pause process, runtime state and configuration are its own.

What podman needs from a host and the env provides: default_ulimits
below the hard limits (podman's default nofile 1048576 fails with any
runtime where the bounding set lacks CAP_SYS_RESOURCE), cgroupfs,
the file events backend, k8s-file logs, file locks (not /dev/shm), and
slirp4netns networking in both modes: each container still gets a network
namespace that podman creates and the runtime joins by path, but no bridge
or firewall rule is left on the host. Rootless slirp4netns needs
/dev/net/tun to be 0666, as Debian's udev rule makes it.

Nothing touches the host's default podman storage. ``teardown`` removes
the containers, stops the rootless pause process (by its pid file),
unmounts whatever is left under the directory and deletes it.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import select
import shutil
import signal
import struct
import subprocess
import sys
import sysconfig
import tempfile
import termios
import time

TEST_USER = "pyrun-podman"
SUBID_START, SUBID_COUNT = 400000, 65536
IMAGE = "localhost/bb"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc={nproc}:{nproc}"]
netns = "slirp4netns"
log_driver = "k8s-file"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
lock_type = "file"
tmp_dir = "{d}/tmp"
volume_path = "{d}/volumes"
image_copy_tmp_dir = "{d}/vartmp"
[network]
network_config_dir = "{d}/networks"
"""

STORAGE_CONF = """\
[storage]
driver = "{driver}"
graphroot = "{d}/root"
runroot = "{d}/runroot"
"""


def _run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def ensure_test_user() -> pwd.struct_passwd:
    """As root: the unprivileged user rootless podman runs as."""
    from users import ensure_user

    return ensure_user(TEST_USER, SUBID_START, SUBID_COUNT)


def ensure_tun_for_users() -> None:
    """Rootless slirp4netns opens /dev/net/tun; Debian's udev makes it 0666."""
    if os.path.exists("/dev/net/tun") and os.stat("/dev/net/tun").st_mode & 0o777 != 0o666:
        os.chmod("/dev/net/tun", 0o666)


def mounts_under(path: str) -> list[str]:
    """Mount points at or below ``path`` in our mount namespace."""
    path = os.path.realpath(path)
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == path or point.startswith(path + "/"):
                out.append(point)
    return out


def runtime_for(uid: int, gid: int, workspace: str) -> str:
    """The path podman is given for pyrun: $PYRUN_RUNTIME if set, else the
    virtualenv's console script, when ``uid`` can execute it; otherwise
    (a checkout under /root) a wrapper script named ``pyrun`` that runs the
    base interpreter on a world-readable copy of the installed packages,
    as tests/conftest.py's rootless_env does."""
    kw = {"user": uid, "group": gid, "extra_groups": []} if uid != os.geteuid() else {}

    def fails(path: str) -> str | None:
        try:
            p = subprocess.run([path, "--version"], capture_output=True, text=True, env={"PATH": PATH},
                               cwd="/", **kw)
        except OSError as e:
            return str(e)
        return None if p.returncode == 0 else p.stderr.strip()

    script = os.environ.get("PYRUN_RUNTIME") or os.path.join(os.path.dirname(sys.executable), "pyrun")
    error = fails(script)
    if error is None:
        return script
    if os.environ.get("PYRUN_RUNTIME"):
        raise RuntimeError(f"user {uid} cannot run $PYRUN_RUNTIME {script}: {error}")
    site = os.path.join(workspace, "site-packages")
    if not os.path.isdir(site):
        shutil.copytree(sysconfig.get_paths()["purelib"], site, symlinks=True)
        _run(["chmod", "-R", "a+rX", site])
    bindir = os.path.join(workspace, "bin")
    os.makedirs(bindir, mode=0o755, exist_ok=True)
    wrapper = os.path.join(bindir, "pyrun")
    base = getattr(sys, "_base_executable", sys.executable)
    with open(wrapper, "w") as f:
        # -P: the runtime's cwd (a checkout?) must not shadow the package
        f.write(f"#!/bin/sh\nPYTHONPATH={site} exec {base} -P -m pyrun \"$@\"\n")
    os.chmod(wrapper, 0o755)
    error = fails(wrapper)
    if error is not None:
        raise RuntimeError(f"user {uid} cannot run pyrun, not even from a copy: {error}")
    return wrapper


def nproc_limit() -> int:
    """podman's default nproc rlimit: 32768, or less where the hard limit
    (the kernel's threads-max / 2: about 7800 in a 2 GiB VM) is lower, which
    a rootless runtime cannot raise (runc and pyrun fail alike)."""
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    return 32768 if hard == resource.RLIM_INFINITY else min(32768, hard)


class PodmanError(AssertionError):
    pass


class PodmanEnv:
    """One runtime × one mode, with podman's state under ``self.dir``."""

    def __init__(self, runtime: str, runtime_path: str, runtime_flags: list[str], mode: str,
                 workspace: str, image_tar: str, driver: str = "overlay", cgroup_manager: str = "cgroupfs"):
        """``driver``: the storage driver; ``vfs`` (rootless podman's default
        where overlay is not available) gives the runtime a plain directory
        as root.path. ``cgroup_manager``: ``systemd`` rootless needs the
        user's systemd running (user@UID.service and /run/user/UID/bus)."""
        self.runtime = runtime
        self.driver = driver
        self.mode = mode
        self.rootless = mode == "rootless"
        if self.rootless:
            pw = ensure_test_user()
            self.uid, self.gid = pw.pw_uid, pw.pw_gid
            ensure_tun_for_users()
        else:
            self.uid = self.gid = 0
        # short: podman refuses a runroot path longer than 50 characters
        self.dir = tempfile.mkdtemp(prefix=f"{runtime}-{mode[4:6]}-", dir=workspace)
        os.chmod(self.dir, 0o755)
        self._chown(self.dir)
        for sub in ("tmp", "volumes", "vartmp", "networks", "home", "run", "root", "runroot", "scratch"):
            os.mkdir(os.path.join(self.dir, sub), 0o700 if sub == "run" else 0o755)
            self._chown(os.path.join(self.dir, sub))
        self.scratch = os.path.join(self.dir, "scratch")  # files the tests share with containers
        for name, text in (("containers.conf", CONTAINERS_CONF), ("storage.conf", STORAGE_CONF)):
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(text.format(d=self.dir, driver=driver, nproc=nproc_limit()).replace(
                    'cgroup_manager = "cgroupfs"', f'cgroup_manager = "{cgroup_manager}"'))
        self.env = {
            "PATH": PATH, "LANG": "C.UTF-8", "HOME": os.path.join(self.dir, "home"),
            "CONTAINERS_CONF": os.path.join(self.dir, "containers.conf"),
            "CONTAINERS_STORAGE_CONF": os.path.join(self.dir, "storage.conf"),
            "TMPDIR": os.path.join(self.dir, "vartmp"),
        }
        if self.rootless and cgroup_manager == "systemd":
            # rootless podman asks the user's own systemd (user@UID.service)
            # over its bus; without one it falls back to cgroupfs
            self.env["XDG_RUNTIME_DIR"] = f"/run/user/{self.uid}"
            self.env["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path=/run/user/{self.uid}/bus"
        elif self.rootless:
            self.env["XDG_RUNTIME_DIR"] = os.path.join(self.dir, "run")
        self.prefix = ["podman", "--root", os.path.join(self.dir, "root"),
                       "--runroot", os.path.join(self.dir, "runroot"),
                       "--tmpdir", os.path.join(self.dir, "tmp"),
                       "--storage-driver", driver, "--cgroup-manager", cgroup_manager,
                       "--events-backend", "file", "--runtime", runtime_path]
        for flag in runtime_flags:
            self.prefix += ["--runtime-flag", flag]
        self.ok("import", image_tar, IMAGE, timeout=120)

    def __repr__(self):
        return f"<podman {self.runtime} {self.mode} {self.driver}>"

    def _chown(self, path: str) -> None:
        if self.uid != os.geteuid():
            os.chown(path, self.uid, self.gid)

    def user_kw(self) -> dict:
        if self.uid != os.geteuid():
            return {"user": self.uid, "group": self.gid, "extra_groups": []}
        return {}

    def path(self, name: str) -> str:
        """A fresh path in the scratch directory (owned by the podman user)."""
        return os.path.join(self.scratch, name)

    def mkdir(self, name: str) -> str:
        d = self.path(name)
        os.mkdir(d)
        self._chown(d)
        return d

    def write(self, name: str, text: str) -> str:
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text)
        self._chown(p)
        return p

    def cmd(self, *args) -> list[str]:
        return self.prefix + [str(a) for a in args]

    def __call__(self, *args, timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess:
        """Run podman; stdout/stderr as text. Output goes to files, not
        pipes: a detached container's conmon must not keep a pipe open."""
        cmd = self.cmd(*args)
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            try:
                p = subprocess.run(cmd, text=True, timeout=timeout, env=self.env, input=input,
                                   stdin=None if input is not None else subprocess.DEVNULL,
                                   stdout=out, stderr=err, cwd=self.dir, **self.user_kw())
            except subprocess.TimeoutExpired:
                err.seek(0)
                raise PodmanError(f"timed out after {timeout}s: {self.show(args)}\n{err.read()}") from None
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(cmd, p.returncode, out.read(), err.read())

    @staticmethod
    def show(args) -> str:
        return "podman " + " ".join(map(str, args))

    def ok(self, *args, **kw) -> str:
        p = self(*args, **kw)
        if p.returncode != 0:
            raise PodmanError(f"{self.show(args)} -> exit {p.returncode}\n{p.stderr.strip()}")
        return p.stdout

    def popen(self, *args, **kw) -> subprocess.Popen:
        return subprocess.Popen(self.cmd(*args), env=self.env, cwd=self.dir, **self.user_kw(), **kw)

    def pty(self, *args, timeout: float = 60, rows: int = 24, cols: int = 80) -> tuple[int, str]:
        """Run podman with a pty as its stdin, stdout and stderr (as from a
        terminal): returns (exit status, everything written to the pty)."""
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        try:
            p = subprocess.Popen(self.cmd(*args), stdin=slave, stdout=slave, stderr=slave,
                                 env=self.env, cwd=self.dir, start_new_session=True, **self.user_kw())
        finally:
            os.close(slave)
        out = b""
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    p.kill()
                    p.wait()
                    raise PodmanError(f"timed out after {timeout}s: {self.show(args)}\n{out.decode(errors='replace')}")
                r, _, _ = select.select([master], [], [], min(left, 0.2))
                if r:
                    try:
                        chunk = os.read(master, 65536)
                    except OSError:  # EIO: every slave fd is closed
                        chunk = b""
                    if not chunk:
                        break
                    out += chunk
                elif p.poll() is not None:
                    # podman is gone; something else (conmon?) may still hold
                    # the slave: what was written is in ``out`` already
                    break
            rc = p.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            os.close(master)
        return rc, out.decode(errors="replace")

    def inspect(self, name: str, fmt: str) -> str:
        return self.ok("inspect", "--format", fmt, name).strip()

    def wait_for_log(self, name: str, text: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while True:
            logs = self("logs", name)
            if text in logs.stdout + logs.stderr:
                return logs.stdout
            if time.monotonic() > deadline:
                raise PodmanError(f"{name}: {text!r} not in the logs after {timeout}s:\n{logs.stdout}{logs.stderr}")
            time.sleep(0.1)

    def remove_all(self) -> None:
        self("rm", "--all", "--force", "--time", "0", timeout=120)

    def teardown(self) -> list[str]:
        """Remove everything; returns problems (mounts or processes left)."""
        problems = []
        try:
            self.remove_all()
            self("volume", "rm", "--all", "--force", timeout=60)
            self("rmi", "--all", "--force", timeout=60)
        except PodmanError as e:
            problems.append(f"{self!r}: cleanup: {e}")
        if self.rootless:
            self._stop_pause_process(problems)
        left = mounts_under(self.dir)
        for point in sorted(left, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True)
        if left:
            problems.append(f"{self!r}: mounts left after podman's cleanup: {left}")
        subprocess.run(["rm", "-rf", "--one-file-system", self.dir])
        return problems

    def _stop_pause_process(self, problems: list[str]) -> None:
        """Rootless podman keeps a pause process (catatonit) that holds its
        user and mount namespaces; its pid file is in our tmp dir."""
        pidfile = os.path.join(self.dir, "tmp", "pause.pid")
        try:
            pid = int(open(pidfile).read().strip())
            status = open(f"/proc/{pid}/status").read()
        except (OSError, ValueError):
            return
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        if int(uid_line.split()[1]) != self.uid:
            return
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.05)
        if os.path.exists(f"/proc/{pid}"):
            problems.append(f"{self!r}: pause process {pid} did not exit")
