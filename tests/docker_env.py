"""A private Docker daemon (tests/test_docker.py): Debian's ``docker.io``
(dockerd 20.10 with its own managed containerd and containerd's runc v2 shim)
with pyrun registered beside runc, as a user would register it.

Everything the daemon makes is its own or dies with it:

* it runs in new mount, network and pid namespaces (unshare(1)), with tini
  as their PID 1 (it reaps the shims containerd re-parents to it): when
  tini dies, the kernel kills every process in the pid namespace, dockerd,
  containerd, the shims and the containers, and the mount namespace with
  its overlay, shm and netns mounts goes with them;
* unshare runs with PR_SET_PDEATHSIG and ``--kill-child``, so a test run
  killed half way still ends the daemon;
* ``--data-root``, ``--exec-root``, ``--pidfile``, the API socket and the
  daemon.json are under one temporary directory; inside the namespaces a
  tmpfs covers ``/run`` (containerd's shims put their sockets in
  ``/run/containerd/s``) and ``/etc/docker`` (dockerd 20.10 writes its
  ``key.json`` there), so nothing lands in the host's;
* no host network change: the daemon's network namespace is its own (its
  default bridge ``docker0`` is made there), and ``--iptables=false
  --ip-masq=false --ip6tables=false --userland-proxy=false`` besides;
* the containers' cgroups are under ``/pyrun-docker-PID`` in each
  hierarchy (``--cgroup-parent``), removed at the end;
* where AppArmor is on, dockerd loads its ``docker-default`` profile (with
  apparmor_parser, Debian's package ``apparmor``) and gives it to every
  container; a profile it loaded that was not there before is unloaded at
  the end.

Runtimes: ``--add-runtime NAME=PATH`` for each one the caller names
(dockerd passes the path to the shim as its ``BinaryName``), and the
daemon.json ``runtimes`` key for the others; runc, the default, is the one
on PATH.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import select
import shlex
import shutil
import signal
import struct
import subprocess
import tempfile
import termios
import time

from proctree import children

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DOCKERD = shutil.which("dockerd", path=PATH)
# the client from the same package as the daemon (docker.io puts it in
# /usr/bin; a newer one first on PATH would negotiate the API down anyway)
DOCKER = next((p for p in ("/usr/bin/docker",) if os.access(p, os.X_OK)), None) or shutil.which("docker", path=PATH)
TINI = shutil.which("tini", path=PATH)
UNSHARE = shutil.which("unshare", path=PATH)
PR_SET_PDEATHSIG = 1
APPARMOR = "/sys/kernel/security/apparmor"


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the test process dies
    (prctl(2) PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class DockerError(AssertionError):
    pass


class Dockerd:
    """One private dockerd; ``docker(...)`` runs the client against it."""

    def __init__(self, d: str, add_runtimes: dict[str, str], json_runtimes: dict[str, str] | None = None):
        self.dir = d
        self.sock = os.path.join(d, "docker.sock")
        self.cgroup_parent = f"/pyrun-docker-{os.getpid()}"
        self.profiles_before = apparmor_profiles()
        os.mkdir(os.path.join(d, "cli"), 0o700)
        with open(os.path.join(d, "daemon.json"), "w") as f:
            json.dump({"runtimes": {name: {"path": path} for name, path in (json_runtimes or {}).items()}}, f)
        argv = [DOCKERD, "--data-root", f"{d}/data", "--exec-root", f"{d}/exec", "--pidfile", f"{d}/docker.pid",
                "-H", f"unix://{self.sock}", "--config-file", f"{d}/daemon.json",
                "--iptables=false", "--ip-masq=false", "--ip6tables=false", "--userland-proxy=false",
                "--exec-opt", "native.cgroupdriver=cgroupfs", "--cgroup-parent", self.cgroup_parent,
                "--storage-driver", "overlay2", "--log-level", "debug"]
        for name, path in add_runtimes.items():
            argv += ["--add-runtime", f"{name}={path}"]
        script = ("set -e; mount -t tmpfs -o mode=0755 pyrun-docker-run /run; "
                  "if [ -d /etc/docker ]; then mount -t tmpfs -o mode=0700 pyrun-docker-etc /etc/docker; fi; "
                  f"ip link set lo up; exec {shlex.join(argv)}")
        self.env = {"PATH": PATH, "LANG": "C.UTF-8", "HOME": d, "DOCKER_HOST": f"unix://{self.sock}",
                    "DOCKER_CONFIG": os.path.join(d, "cli")}
        self.log = open(os.path.join(d, "dockerd.log"), "w")
        self.proc = subprocess.Popen(
            [UNSHARE, "--mount", "--net", "--pid", "--fork", "--kill-child", "--mount-proc",
             "--propagation", "private", TINI, "-s", "--", "sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, env={"PATH": PATH},
            preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 60
        while self.docker("version", timeout=10).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"dockerd did not start: {self.log_tail()}")
            time.sleep(0.2)

    def log_tail(self, n: int = 3000) -> str:
        with open(self.log.name) as f:
            return f.read()[-n:]

    def cmd(self, *args) -> list[str]:
        return [DOCKER, *map(str, args)]

    def docker(self, *args, timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess:
        """The client, its output through files (a detached container's
        shim must not hold a pipe of ours)."""
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            try:
                p = subprocess.run(self.cmd(*args), stdout=out, stderr=err, text=True, env=self.env,
                                   input=input, stdin=None if input is not None else subprocess.DEVNULL,
                                   timeout=timeout)
            except subprocess.TimeoutExpired:
                err.seek(0)
                raise DockerError(f"timed out after {timeout}s: docker {' '.join(map(str, args))}\n{err.read()}") \
                    from None
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(p.args, p.returncode, out.read(), err.read())

    def ok(self, *args, **kw) -> str:
        p = self.docker(*args, **kw)
        if p.returncode != 0:
            raise DockerError(f"docker {' '.join(map(str, args))} -> exit {p.returncode}\n{p.stderr.strip()}")
        return p.stdout

    def inspect(self, name: str, fmt: str) -> str:
        return self.ok("inspect", "--format", fmt, name).strip()

    def import_rootfs(self, rootfs: str, image: str) -> None:
        """``docker import`` of a directory: no registry is needed."""
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        try:
            p = subprocess.run(self.cmd("import", "-", image), stdin=tar.stdout, capture_output=True, text=True,
                               env=self.env, timeout=120)
        finally:
            tar.stdout.close()
            tar.wait()
        if p.returncode != 0:
            raise DockerError(f"docker import -> {p.returncode}: {p.stderr.strip()}")

    def pty(self, *args, rows: int = 24, cols: int = 80) -> "PtySession":
        return PtySession(self.cmd(*args), self.env, rows, cols)

    def stop(self) -> list[str]:
        """SIGTERM to the namespaces' PID 1 (tini passes it to dockerd,
        which stops its containers and containerd); SIGKILL to unshare after
        30 s (``--kill-child``: the pid namespace dies with its PID 1). Then
        the cgroups and the directory go. Returns what had to be forced."""
        problems = []
        if self.proc.poll() is None:
            for pid in children(self.proc.pid):
                os.kill(pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                problems.append("dockerd did not stop within 30 s of SIGTERM: killed")
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        problems += remove_cgroup_tree(self.cgroup_parent)
        for profile in apparmor_profiles() - self.profiles_before:
            if profile.startswith("docker-"):
                try:  # the kernel's interface (what apparmor_parser -R writes to)
                    with open(os.path.join(APPARMOR, ".remove"), "w") as f:
                        f.write(profile)
                except OSError as e:
                    problems.append(f"AppArmor profile {profile}: not unloaded: {e.strerror}")
        return problems

    def remove(self) -> None:
        # no mount of the daemon's is visible here (its mount namespace is
        # gone), and --one-file-system keeps rm on this one regardless
        subprocess.run(["rm", "-rf", "--one-file-system", self.dir])


def workdir() -> str:
    """A new directory for one daemon, named after this process: a run
    killed before its cleanup leaves it (and its cgroups) for the next
    run's :func:`remove_stale`."""
    remove_stale()
    return tempfile.mkdtemp(prefix=f"pydocker-{os.getpid()}-", dir="/tmp")


def remove_stale() -> None:
    """The directories and cgroups of daemons whose test process is gone
    (SIGKILLed: its daemon died with it, through PR_SET_PDEATHSIG)."""
    def dead(pid: str) -> bool:
        return pid.isdigit() and not os.path.exists(f"/proc/{pid}")

    for name in os.listdir("/tmp"):
        if name.startswith("pydocker-") and dead(name.split("-")[1]) and os.path.isdir(f"/tmp/{name}"):
            subprocess.run(["rm", "-rf", "--one-file-system", f"/tmp/{name}"])
    base = "/sys/fs/cgroup"
    roots = [base] + [os.path.join(base, h) for h in os.listdir(base)] if os.path.isdir(base) else []
    parents = {name for root in roots if os.path.isdir(root) for name in os.listdir(root)
               if name.startswith("pyrun-docker-") and dead(name[len("pyrun-docker-"):])}
    for name in parents:
        remove_cgroup_tree("/" + name)


def apparmor_profiles() -> set[str]:
    """The names of the loaded AppArmor profiles (none where it is off)."""
    try:
        with open(os.path.join(APPARMOR, "profiles")) as f:
            return {line.rsplit(" (", 1)[0] for line in f.read().splitlines()}
    except OSError:
        return set()


def remove_cgroup_tree(parent: str) -> list[str]:
    """``parent`` and the empty cgroups below it in every v1 hierarchy and
    the cgroup2 tree, deepest first (dockerd leaves the parent, as runc)."""
    problems = []
    base = "/sys/fs/cgroup"
    roots = [os.path.join(base, h) for h in sorted(os.listdir(base))] if os.path.isdir(base) else []
    if os.path.exists(os.path.join(base, "cgroup.controllers")):
        roots = [base]  # a cgroup v2 host
    for root in roots:
        top = root + parent
        if not os.path.isdir(top):
            continue
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
            try:
                os.rmdir(dirpath)
            except OSError as e:
                problems.append(f"cgroup {dirpath}: {e.strerror}")
    return problems


class PtySession:
    """The client with a new pseudo-terminal as its stdin, stdout and stderr
    in a session of its own, as from a terminal: ``expect`` output, ``send``
    keys, ``finish`` for (exit status, everything it wrote)."""

    def __init__(self, argv: list[str], env: dict, rows: int, cols: int):
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        try:
            self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                         start_new_session=True)
        finally:
            os.close(slave)
        self.out = b""
        self.eof = False

    def _read(self, timeout: float) -> None:
        if self.eof:
            time.sleep(min(timeout, 0.05))
            return
        if select.select([self.master], [], [], timeout)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: every slave is closed
                chunk = b""
            if chunk:
                self.out += chunk
            else:
                self.eof = True

    def text(self) -> str:
        return self.out.decode(errors="replace")

    def expect(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.text():
            if time.monotonic() > deadline or (self.eof and self.proc.poll() is not None):
                raise DockerError(f"{text!r} not seen within {timeout}s; the terminal shows:\n{self.text()[-2000:]}")
            self._read(0.1)

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        """Read until the client has exited and the terminal is quiet (or
        every slave is closed): (exit status, output)."""
        deadline = time.monotonic() + timeout
        try:
            while not self.eof:
                if time.monotonic() > deadline:
                    self.proc.kill()
                    self.proc.wait()
                    raise DockerError(f"timed out after {timeout}s; the terminal shows:\n{self.text()[-2000:]}")
                before = len(self.out)
                self._read(0.2)
                if len(self.out) == before and self.proc.poll() is not None:
                    break  # exited, and nothing more came within 0.2 s
            return self.proc.wait(timeout=max(1.0, deadline - time.monotonic())), self.text()
        finally:
            os.close(self.master)
