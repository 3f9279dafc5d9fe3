"""Network modes ``pasta`` and ``slirp4netns``: outbound connectivity and
published ports without privileges (pasta(1), slirp4netns(1)).

Both are user-mode network stacks in a helper process that joins the
container's user and network namespaces (it owns nothing else), creates a
tap device there and moves packets between it and ordinary sockets on the
host. ``slirp`` picks pasta when it is installed (podman's default), else
slirp4netns. pasta is for rootless containers: run as root, Debian 12's
pasta (2023-03) drops to nobody before it joins the namespace. The helper
is killed on ``delete``.

pasta (passt package) copies the host's addresses and routes into the
namespace (``--config-net``), forwards the published ports (``-t``/``-u``)
and, with ``org.pyrun.network.allow-host-loopback``, maps the gateway
address to the host's loopback; it daemonizes once ready and writes its
pid to a file.

slirp4netns joins the container's user and network namespaces, creates
``tap0`` there (10.0.2.100/24, gateway 10.0.2.2, DNS 10.0.2.3) and moves
packets between it and ordinary sockets on the host: it needs no
privilege beyond owning the container's user namespace. pyrun starts it
in a session of its own, waits for its ready byte (``--ready-fd``), adds
each published port through its API socket (``add_hostfwd``), and kills
it on ``delete``. With ``org.pyrun.network.allow-host-loopback: "true"``,
10.0.2.2 reaches the host's 127.0.0.1 (off by default, as in podman).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket

from pyrun.errors import PyrunError

GUEST_IP = "10.0.2.100"
DNS = "10.0.2.3"


def choose(mode: str) -> str:
    """``slirp``: pasta if installed, else slirp4netns; a clear error if neither."""
    if mode != "slirp":
        return mode
    for name in ("pasta", "slirp4netns"):
        if shutil.which(name):
            return name
    raise PyrunError("network mode slirp: neither pasta (Debian: passt) nor slirp4netns is installed")


def start_pasta(pid: int, state_dir: str, ports, allow_host_loopback: bool, timeout: float = 10.0) -> int:
    """Start pasta for the namespaces of ``pid``; returns the daemon's pid."""
    import subprocess

    exe = shutil.which("pasta")
    if exe is None:
        raise PyrunError("network mode pasta: pasta is not installed (Debian: apt-get install passt)")
    pidfile = os.path.join(state_dir, "pasta.pid")

    def forwards(proto: str) -> str:  # pasta(1) -t/-u: [ADDR/]HOST_PORT:CONTAINER_PORT,...
        return ",".join(f"{p.host_ip + '/' if p.host_ip else ''}{p.host_port}:{p.container_port}"
                        for p in ports if p.proto == proto) or "none"

    args = [exe, "--config-net", "--quiet", "--pid", pidfile, "--netns", f"/proc/{pid}/ns/net",
            "-t", forwards("tcp"), "-u", forwards("udp"), "-T", "none", "-U", "none"]
    if os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user"):
        args += ["--userns", f"/proc/{pid}/ns/user"]
    if not allow_host_loopback:
        args.append("--no-map-gw")
    try:
        p = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                           start_new_session=True)
    except subprocess.TimeoutExpired:
        raise PyrunError(f"pasta did not start within {timeout:.0f} s") from None
    if p.returncode != 0:
        lines = [line for line in (p.stderr + p.stdout).splitlines() if line.strip()]
        raise PyrunError(f"pasta did not start: {lines[0] if lines else f'exit status {p.returncode}'}")
    with open(pidfile) as f:
        return int(f.read().strip())


def start(pid: int, state_dir: str, ports, allow_host_loopback: bool, timeout: float = 10.0) -> int:
    """Start slirp4netns for the container whose PID 1 is ``pid``; returns its pid."""
    exe = shutil.which("slirp4netns")
    if exe is None:
        raise PyrunError("network mode slirp4netns: slirp4netns is not installed "
                         "(Debian: apt-get install slirp4netns)")
    api = os.path.join(state_dir, "slirp.sock")
    args = [exe, "--configure", "--mtu=65520", "--ready-fd=3", f"--api-socket={api}"]
    if not allow_host_loopback:
        args.append("--disable-host-loopback")
    if os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user"):
        args.append(f"--userns-path=/proc/{pid}/ns/user")  # optional_argument: needs the =
    args += ["--netns-type=path", f"/proc/{pid}/ns/net", "tap0"]
    r, w = os.pipe()
    log_path = os.path.join(state_dir, "slirp4netns.log")
    logfd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    devnull = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    try:
        child = os.posix_spawn(exe, args, dict(os.environ), setsid=True, file_actions=[
            (os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, logfd, 1),
            (os.POSIX_SPAWN_DUP2, logfd, 2), (os.POSIX_SPAWN_DUP2, w, 3)])
    finally:
        os.close(w)
        os.close(logfd)
        os.close(devnull)
    try:
        ready = select.select([r], [], [], timeout)[0] and os.read(r, 1)
    finally:
        os.close(r)
    if ready != b"1":
        stop(child)
        with open(log_path, errors="replace") as f:
            lines = [line for line in f.read().splitlines() if line.strip()]
        # its first line says why (usage text may follow)
        raise PyrunError(f"slirp4netns did not start: {lines[0] if lines else 'no output'}")
    try:
        for p in ports:
            _api(api, {"execute": "add_hostfwd", "arguments": {
                "proto": p.proto, "host_addr": p.host_ip or "0.0.0.0", "host_port": p.host_port,
                "guest_addr": GUEST_IP, "guest_port": p.container_port}}, f"publish {p}")
    except BaseException:
        stop(child)
        raise
    return child


def _api(path: str, request: dict, what: str) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(path)
        s.sendall(json.dumps(request).encode())
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    reply = json.loads(data or b"{}")
    if "error" in reply:
        raise PyrunError(f"{what}: slirp4netns: {reply['error'].get('desc', reply['error'])}")
    return reply


def stop(pid: int, timeout: float = 5.0) -> None:
    """SIGKILL the helper and wait until it has exited (its pidfd polls
    readable), so that its published ports are free when delete returns;
    reap it if it is our child."""
    import signal

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        signal.pidfd_send_signal(fd, signal.SIGKILL)
        select.select([fd], [], [], timeout)
    except ProcessLookupError:
        pass
    finally:
        os.close(fd)
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
