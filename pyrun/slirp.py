"""Network mode ``slirp4netns``: outbound connectivity and published ports
without privileges (slirp4netns(1)).

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


def start(pid: int, state_dir: str, ports, allow_host_loopback: bool, timeout: float = 10.0) -> int:
    """Start slirp4netns for the container whose PID 1 is ``pid``; returns its pid."""
    exe = shutil.which("slirp4netns")
    if exe is None:
        raise PyrunError("network mode slirp4netns: slirp4netns is not installed "
                         "(Debian: apt-get install slirp4netns)")
    api = os.path.join(state_dir, "slirp.sock")
    args = [exe, "--configure", "--mtu=65520", "--ready-fd=3", "--api-socket", api]
    if not allow_host_loopback:
        args.append("--disable-host-loopback")
    if os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user"):
        args += ["--userns-path", f"/proc/{pid}/ns/user"]
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
            why = f.read().strip().splitlines()[-1:] or ["no output"]
        raise PyrunError(f"slirp4netns did not start: {why[0]}")
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


def stop(pid: int) -> None:
    """SIGKILL slirp4netns and reap it if it is our child."""
    import signal

    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
