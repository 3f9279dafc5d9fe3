"""Networking modes: bridge (root) with published ports, slirp4netns
(rootless); and that delete leaves nothing of a container's network.
Traffic stays on loopback and on namespaces the tests create."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

LEASES = "/run/pyrun/network/leases.json"
HTTPD = "mkdir -p /tmp/www && echo hello-from-$(hostname) > /tmp/www/index.html && exec httpd -f -p 80 -h /tmp/www"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def web_config(rt, hostname="web"):
    config = rt.config(["sh", "-c", HTTPD])
    config["root"]["readonly"] = False
    config["hostname"] = hostname
    return config


def fetch(url: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def veths() -> set[str]:
    return {n for n in os.listdir("/sys/class/net") if n.startswith("pyrv")}


def nft_rules() -> str:
    p = subprocess.run(["nft", "list", "table", "ip", "pyrun"], capture_output=True, text=True)
    return "\n".join(line for line in p.stdout.splitlines() if "dnat to" in line)


def leases_of(rt) -> dict:
    try:
        with open(LEASES) as f:
            return {k: v for k, v in json.load(f).items() if k.startswith(rt.root + "/")}
    except FileNotFoundError:
        return {}


@pytest.fixture
def bridge(rootful):
    if shutil.which("nft") is None:
        pytest.skip("nft is not installed")
    before = (veths(), nft_rules())
    yield rootful
    for cid in os.listdir(rootful.root):
        rootful("delete", "--force", cid)
    assert (veths(), nft_rules()) == before, "network left behind"
    assert leases_of(rootful) == {}


def test_bridge_container_is_reached_on_a_published_port_at_127_0_0_1(bridge):
    port = free_port()
    bridge.ok("run", "-d", "--network", "bridge", "-p", f"127.0.0.1:{port}:80",
              "-b", bridge.bundle(config=web_config(bridge)), "c1")
    assert fetch(f"http://127.0.0.1:{port}/").strip() == "hello-from-web"


def test_ports_and_mode_from_annotations(bridge):
    port = free_port()
    config = web_config(bridge)
    config["annotations"].update({"org.pyrun.network": "bridge", "org.pyrun.ports": f"{port}:80/tcp"})
    bridge.ok("run", "-d", "-b", bridge.bundle(config=config), "c1")
    assert fetch(f"http://127.0.0.1:{port}/").strip() == "hello-from-web"


def test_two_bridge_containers_reach_each_other_by_name_and_ip(bridge):
    bridge.ok("run", "-d", "--network", "bridge", "-b", bridge.bundle(config=web_config(bridge, "alpha")), "c1")
    ip = leases_of(bridge)[os.path.join(bridge.root, "c1")]["ip"]
    assert fetch(f"http://{ip}/").strip() == "hello-from-alpha"  # c1's httpd is up before c2 asks
    config = bridge.config(["sh", "-c", f"wget -qO- http://c1/; wget -qO- http://alpha/; wget -qO- http://{ip}/; "
                                        "cat /etc/hosts"])
    p = bridge("run", "--network", "bridge", "-b", bridge.bundle(config=config), "c2")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.splitlines()[:3] == ["hello-from-alpha"] * 3, p.stdout
    # the first container's /etc/hosts learned about the second one
    p = bridge("exec", "c1", "cat", "/etc/hosts")
    assert "c1 alpha" in p.stdout


def test_twenty_bridge_containers_get_twenty_addresses(bridge):
    procs = [bridge.popen("run", "-d", "--network", "bridge", "-b", bridge.bundle(["sleep", "60"]), f"n{i}",
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for i in range(20)]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    ips = [v["ip"] for v in leases_of(bridge).values()]
    assert len(ips) == len(set(ips)) == 20
    for i in range(20):
        bridge.ok("delete", "--force", f"n{i}")
    assert leases_of(bridge) == {}


def test_delete_after_sigkill_removes_everything(bridge):
    port = free_port()
    bridge.ok("run", "-d", "--network", "bridge", "-p", f"{port}:80", "-b",
              bridge.bundle(config=web_config(bridge)), "c1")
    assert veths() and str(port) in nft_rules()
    os.kill(bridge.state("c1")["pid"], 9)
    bridge.wait_status("c1", "stopped")
    bridge.ok("delete", "c1")


def test_delete_after_pyrun_was_killed_half_way(bridge):
    config = bridge.config(["true"])
    config["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "sleep 30"]}]}
    p = bridge.popen("create", "--network", "bridge", "-p", f"{free_port()}:80", "-b", bridge.bundle(config=config),
                     "c1", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not (veths() and nft_rules()) and time.monotonic() < deadline:
        time.sleep(0.05)
    p.kill()
    p.wait()
    bridge.wait_status("c1", "stopped")
    bridge.ok("delete", "c1")  # the fixture checks that nothing is left


@pytest.mark.parametrize("args, message", [
    (["--network", "bridge", "-p", "nonsense"], "expected [HOST_IP:]HOST_PORT:CONTAINER_PORT"),
    (["--network", "bridge", "-p", "70000:80"], "within 1-65535"),
    (["--network", "none", "-p", "8080:80"], "need network mode bridge, pasta or slirp4netns"),
])
def test_bad_network_input_is_a_clear_error(bridge, residue, args, message):
    p = bridge("run", *args, "-b", bridge.bundle(["true"]), "c1")
    assert p.returncode != 0 and message in p.stderr, p.stderr
    residue.check()


def test_unknown_mode_in_the_annotation(rt, residue):
    config = rt.config(["true"])
    config["annotations"].update({"org.pyrun.network": "carrier-pigeon"})
    p = rt("run", "-b", rt.bundle(config=config), "c1")
    assert p.returncode == 1 and "unknown network mode 'carrier-pigeon'" in p.stderr, p.stderr
    residue.check()


def test_a_port_already_taken_is_refused(rt, residue):
    mode = "slirp4netns" if rt.rootless else "bridge"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = rt("run", "--network", mode, "-p", f"127.0.0.1:{port}:80", "-b", rt.bundle(["true"]), "c1")
    assert p.returncode == 1 and f"host port {port}/tcp is not free" in p.stderr, p.stderr
    residue.check()


def test_pasta_is_refused_as_root(rootful, residue):
    p = rootful("run", "--network", "pasta", "-b", rootful.bundle(["true"]), "c1")
    assert p.returncode == 1 and "pasta is for rootless containers" in p.stderr, p.stderr
    residue.check()


def test_bridge_is_refused_rootless(rt, residue):
    if not rt.rootless:
        pytest.skip("rootless only")
    p = rt("run", "--network", "bridge", "-b", rt.bundle(["true"]), "c1")
    assert p.returncode == 1 and "bridge needs root" in p.stderr
    residue.check()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


@pytest.fixture(params=["pasta", "slirp4netns"])
def slirp(rt, request):
    """The rootless helpers; each test runs with both where installed."""
    if shutil.which(request.param) is None:
        pytest.skip(f"{request.param} is not installed")
    if request.param == "pasta" and not rt.rootless:
        pytest.skip("pasta is for rootless containers")
    rt.helper = request.param
    return rt


def test_slirp_published_port_is_reached_on_127_0_0_1(slirp, residue):
    port = free_port()
    slirp.ok("run", "-d", "--network", slirp.helper, "-p", f"127.0.0.1:{port}:80", "-b",
             slirp.bundle(config=web_config(slirp)), "c1")
    assert fetch(f"http://127.0.0.1:{port}/").strip() == "hello-from-web"
    helper = json.load(open(os.path.join(slirp.root, "c1", "state.json")))["net"]["helper_pid"]
    slirp.ok("delete", "--force", "c1")
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))  # delete waited for the helper: the port is free at once
        s.listen()
    deadline = time.monotonic() + 10
    while _alive(helper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(helper), f"{slirp.helper} still runs after delete"
    residue.check()


def _pong_server(count: int, timeout: float):
    """A server on the host's loopback, in a thread, that answers "pong" to
    each of ``count`` connections: (its socket, what it received, the thread)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(32)
    server.settimeout(timeout)
    got: list[bytes] = []

    def serve():
        try:
            for _ in range(count):
                conn, _ = server.accept()
                with conn:
                    got.append(conn.recv(100))
                    conn.sendall(b"pong\n")
        except OSError:
            pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return server, got, t


def _host_gateway(slirp) -> str:
    """The address that reaches the host's loopback from inside: slirp4netns's
    10.0.2.2; for pasta the default route's gateway (a shell expression)."""
    return "10.0.2.2" if slirp.helper == "slirp4netns" else "$(ip route | awk '/^default/ {print $3}')"


def test_slirp_outbound_tcp_reaches_a_host_server(slirp):
    """The host's loopback through the helper's gateway (slirp4netns's
    10.0.2.2; for pasta the default route's gateway, which pasta maps to the
    host), allowed by org.pyrun.network.allow-host-loopback."""
    server, got, t = _pong_server(1, 20)
    port = server.getsockname()[1]
    gateway = _host_gateway(slirp)
    # timeout: through pasta, busybox nc does not see the server's close
    config = slirp.config(["sh", "-c", f"echo ping | timeout 5 nc {gateway} {port}"])
    config["annotations"].update({"org.pyrun.network": slirp.helper, "org.pyrun.network.allow-host-loopback": "true"})
    p = slirp("run", "-b", slirp.bundle(config=config), "c1")
    t.join(20)
    server.close()
    assert got == [b"ping\n"] and p.stdout.split()[:1] == ["pong"], (got, p.stdout, p.stderr)


# ------------------------------------ the host's loopback from the bridge
#
# CVE-2020-8558 class: route_localnet=1 on pyrun0 (for ports published on
# 127.0.0.1) lets the kernel accept packets arriving on the bridge for
# 127.0.0.0/8. Anything on the bridge with CAP_NET_RAW (a container gets it
# by default from Docker and podman) sends a frame to the gateway's MAC
# addressed to 127.0.0.1 and reaches the host's loopback-only services.
# The test puts its own veth into pyrun0 from a network namespace it makes
# (what a container's eth0 is) and sends the frame from there with an
# AF_PACKET socket: the host's service must receive nothing.

SEND_FRAME = r"""
import socket, struct, sys
dst_mac, src_mac, src_ip, port, ifname = sys.argv[1:6]
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    return ~(s + (s >> 16)) & 0xffff
payload = b"from-the-bridge"
udp = struct.pack("!HHHH", 40000, int(port), 8 + len(payload), 0) + payload
hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0x4000, 64, 17, 0,
                  socket.inet_aton(src_ip), socket.inet_aton("127.0.0.1"))
hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
frame = bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", "")) + b"\x08\x00" + hdr + udp
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
for _ in range(5):
    s.send(frame)
"""


@pytest.fixture
def bridge_port():
    """A veth whose one end is a port of pyrun0 and whose other end
    (``eth0``) is in a network namespace of the test's own."""
    name = f"pyrt{os.getpid() % 100000}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", name],
                       check=True)
        subprocess.run(["ip", "link", "set", name, "master", "pyrun0", "up"], check=True)
        subprocess.run(["ip", "-n", name, "link", "set", "eth0", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "link", "del", name], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], check=True)


def _send_to_host_loopback(netns: str, port: int) -> None:
    import sys

    gateway_mac = open("/sys/class/net/pyrun0/address").read().strip()
    mac = subprocess.run(["ip", "netns", "exec", netns, "cat", "/sys/class/net/eth0/address"],
                         check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", SEND_FRAME, gateway_mac, mac,
                    "10.89.255.254", str(port), "eth0"], check=True)


def test_a_frame_from_the_bridge_does_not_reach_the_hosts_loopback(bridge, request):
    port = free_port()
    # a container on the bridge, with a port published on 127.0.0.1 (the
    # reason for route_localnet): it keeps working
    bridge.ok("run", "-d", "--network", "bridge", "-p", f"127.0.0.1:{port}:80",
              "-b", bridge.bundle(config=web_config(bridge)), "c1")
    assert fetch(f"http://127.0.0.1:{port}/").strip() == "hello-from-web"
    netns = request.getfixturevalue("bridge_port")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as secret:
        secret.bind(("127.0.0.1", 0))
        secret.settimeout(1)
        _send_to_host_loopback(netns, secret.getsockname()[1])
        try:
            got = secret.recvfrom(100)
        except TimeoutError:
            got = None
    assert got is None, f"the host's 127.0.0.1 received {got} from the bridge"
    assert fetch(f"http://127.0.0.1:{port}/").strip() == "hello-from-web"


# pasta 0.0~git20230309 (Debian 12) loses the host's FIN once the container's
# side has half-closed first (shutdown(SHUT_WR), as busybox nc does at the
# end of its stdin): the container's socket stays in FIN-WAIT-2 until its
# program gives up. Seen without pyrun too: `pasta --config-net -- CMD`
# (pasta makes the namespaces itself) hangs the same, while a client that
# does not half-close sees the close at once (CLOSE-WAIT).
PASTA_HALF_CLOSE = "pasta (Debian 12's 2023-03 build) drops the host's FIN after the container half-closes"


def test_twenty_quick_connections_to_the_hosts_loopback(slirp, request):
    """issue 28: through the helper's gateway (mapped to the host's loopback
    with org.pyrun.network.allow-host-loopback), twenty connections in a
    row, each half-closed by the container (nc at the end of its stdin),
    answered and closed by the host's server: every one completes, none
    waits in FIN-WAIT-2 for nc's timeout."""
    if slirp.helper == "pasta":
        request.applymarker(pytest.mark.xfail(reason=PASTA_HALF_CLOSE, strict=False))
    server, served, t = _pong_server(20, 60)
    port = server.getsockname()[1]
    gateway = _host_gateway(slirp)
    # a hang is nc killed by timeout (124); after three, the rest would hang too
    script = (f"gw={gateway}; i=0; hung=0; while [ $i -lt 20 ] && [ $hung -lt 3 ]; do i=$((i+1)); "
              f"r=$(echo ping | timeout 3 nc $gw {port}); rc=$?; [ $rc = 124 ] && hung=$((hung+1)); "
              f"echo \"$i $rc $r\"; done")
    config = slirp.config(["sh", "-c", script])
    config["annotations"].update({"org.pyrun.network": slirp.helper,
                                  "org.pyrun.network.allow-host-loopback": "true"})
    started = time.monotonic()
    p = slirp("run", "-b", slirp.bundle(config=config), "c1", timeout=120)
    took = time.monotonic() - started
    t.join(5)
    server.close()
    lines = [line.split() for line in p.stdout.splitlines() if line.split()[:1] != ["Terminated"]]
    done = [line for line in lines if line[1:] == ["0", "pong"]]
    hung = [line for line in lines if line[1:2] == ["124"]]
    print(f"\n{slirp.helper}: {len(done)} of 20 completed, {len(hung)} hung in {took:.1f} s")
    assert len(done) == 20 and not hung, (p.stdout, p.stderr)
