"""A private containerd: its own root, state, sockets and config under one
directory, and ctr against it (tests/test_containerd.py, tests/test_cri.py
and tools/cri/test-cri use it)."""

from __future__ import annotations

import os
import pty
import select
import shutil
import signal
import subprocess
import tempfile
import time

CONTAINERD = shutil.which("containerd", path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin")
CTR = shutil.which("ctr", path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin")

# Plugins neither the tests nor tools/cri use; the CRI plugin is off unless asked for.
_UNUSED = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
           "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
           "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]


def config_head(cri: bool = False) -> str:
    """The top of a private containerd's config.toml: its root, state,
    sockets and opt directory under ``{d}`` (filled in by :class:`Containerd`)."""
    disabled = ([] if cri else ["io.containerd.grpc.v1.cri"]) + _UNUSED
    return f"""\
version = 2
root = "{{d}}/root"
state = "{{d}}/state"
disabled_plugins = {disabled!r}
[grpc]
  address = "{{d}}/containerd.sock"
[ttrpc]
  address = "{{d}}/containerd.sock.ttrpc"
[debug]
  address = "{{d}}/debug.sock"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{{d}}/opt"
""".replace("'", '"')


CONFIG = config_head()


class Containerd:
    """A private containerd and ctr against it."""

    def __init__(self, d: str, config: str = CONFIG, prefix: tuple[str, ...] = (), ns: str = ""):
        """``config`` is formatted with d=``d``; ``prefix`` runs containerd
        (tools/cri: unshare, for its own mount and network namespace)."""
        self.dir = d
        self.sock = os.path.join(d, "containerd.sock")
        self.ns = ns or f"pyrun-test-{os.getpid()}"
        with open(os.path.join(d, "config.toml"), "w") as f:
            f.write(config.format(d=d))
        self.log = open(os.path.join(d, "containerd.log"), "w")
        self.proc = subprocess.Popen([*prefix, CONTAINERD, "--config", os.path.join(d, "config.toml")],
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while subprocess.run([CTR, "-a", self.sock, "version"], capture_output=True).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"containerd did not start: {open(self.log.name).read()[-2000:]}")
            time.sleep(0.1)

    def ctr(self, *args, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            p = subprocess.run([CTR, "-a", self.sock, "-n", self.ns, *map(str, args)], stdout=out, stderr=err,
                               stdin=subprocess.DEVNULL, text=True, timeout=timeout, **kw)
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(p.args, p.returncode, out.read(), err.read())

    def ok(self, *args, **kw) -> str:
        p = self.ctr(*args, **kw)
        assert p.returncode == 0, f"ctr {' '.join(map(str, args))} -> {p.returncode}\n{p.stderr}"
        return p.stdout

    def ctr_pty(self, *args, timeout: float = 30) -> tuple[int, str]:
        """ctr with a terminal as its stdio (``-t`` needs one)."""
        return run_in_pty([CTR, "-a", self.sock, "-n", self.ns, *args], timeout)

    def stop(self) -> None:
        """SIGTERM, as systemd stops it; the shims of deleted tasks are gone."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def run_in_pty(argv: list[str], timeout: float = 30) -> tuple[int, str]:
    """Run ``argv`` in a session of its own with a new pseudo-terminal as its
    stdio (``ctr -t`` and ``crictl exec -it`` need one): (exit code, output)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every slave is closed
                    break
                if not chunk:
                    break
                out += chunk
            elif p.poll() is not None:
                break
        else:
            p.kill()
        return p.wait(timeout=10), out.decode(errors="replace")
    finally:
        os.close(master)
