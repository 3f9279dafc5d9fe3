"""Networking modes: what the container's network namespace gets.

Chosen per container by the annotation ``org.pyrun.network`` (or
``create/run --network``), with published ports in ``org.pyrun.ports``
(or ``-p``), so the OCI bundle stays the contract:

* ``none``: a network namespace with only loopback, up (the default when
  the config asks for a new network namespace);
* ``host``: no network namespace (the default when the config has none);
* a ``path`` in ``linux.namespaces``: joined, and nothing is touched;
* ``bridge`` (root): a veth pair into the bridge ``pyrun0``, an address
  from a lease file, a default route, outbound NAT and published ports
  with nftables (see :mod:`pyrun.net.bridge`);
* ``slirp4netns`` (rootless): a user-mode network stack in a helper
  process, published ports through its API socket (see :mod:`pyrun.net.slirp`).

Ports: ``[HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp]``, comma-separated.

This module stays light: loopback is one SIOCSIFFLAGS ioctl (netdevice(7));
pyroute2, hundreds of milliseconds to import, is loaded only for a bridge.
"""

from __future__ import annotations

import _socket  # socket.py's C core: socket.py imports enum and selectors
import fcntl
import struct

from pyrun.errors import ConfigError
from pyrun.record import field, record

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1

ANNOTATION = "org.pyrun.network"
ANNOTATION_PORTS = "org.pyrun.ports"
ANNOTATION_HOST_LOOPBACK = "org.pyrun.network.allow-host-loopback"
NONE, HOST, PATH, BRIDGE, SLIRP4NETNS, PASTA = "none", "host", "path", "bridge", "slirp4netns", "pasta"
MODES = (NONE, HOST, BRIDGE, SLIRP4NETNS, PASTA, "slirp")
USER_MODE = (SLIRP4NETNS, PASTA)  # the unprivileged ones, through a helper process


def loopback_up() -> None:
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        ifreq = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))
    finally:
        s.close()


@record(frozen=True)
class Port:
    host_ip: str       # "" = every host address
    host_port: int
    container_port: int
    proto: str = "tcp"

    def __str__(self) -> str:
        ip = f"{self.host_ip}:" if self.host_ip else ""
        return f"{ip}{self.host_port}:{self.container_port}/{self.proto}"


@record
class NetPlan:
    mode: str = NONE
    ports: list[Port] = field(default_factory=list)
    allow_host_loopback: bool = False


def parse_ports(text: str, where: str) -> list[Port]:
    out: list[Port] = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        spec, _, proto = item.partition("/")
        proto = proto or "tcp"
        if proto not in ("tcp", "udp"):
            raise ConfigError(where, f"{item!r}: protocol must be tcp or udp")
        parts = spec.rsplit(":", 2)
        if len(parts) == 2:
            host_ip, host_port, cport = "", parts[0], parts[1]
        elif len(parts) == 3:
            host_ip, host_port, cport = parts
            import ipaddress

            try:
                ipaddress.IPv4Address(host_ip)
            except ValueError:
                raise ConfigError(where, f"{item!r}: {host_ip!r} is not an IPv4 address") from None
        else:
            raise ConfigError(where, f"{item!r}: expected [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp]")
        try:
            hp, cp = int(host_port), int(cport)
        except ValueError:
            raise ConfigError(where, f"{item!r}: ports must be numbers") from None
        if not (0 < hp < 65536 and 0 < cp < 65536):
            raise ConfigError(where, f"{item!r}: ports must be within 1-65535")
        port = Port(host_ip, hp, cp, proto)
        if any(p.host_port == hp and p.proto == proto for p in out):
            raise ConfigError(where, f"{item!r}: host port {hp}/{proto} is published twice")
        out.append(port)
    return out


def plan(spec, mode: str | None, ports: str | None, privileged: bool) -> NetPlan:
    """Decide the mode from flags, then annotations, then the config's
    namespaces; adjust nothing yet (the caller edits the namespace list)."""
    where = f"annotations[{ANNOTATION!r}]"
    mode = mode or spec.annotations.get(ANNOTATION)
    netns = spec.namespace("network")
    if mode is None:
        mode = HOST if netns is None else (PATH if netns.path else NONE)
    elif mode not in MODES:
        raise ConfigError(where, f"unknown network mode {mode!r} (none, host, bridge, pasta, slirp4netns, slirp)")
    if mode == "slirp":
        from pyrun.net.slirp import choose

        mode = choose(mode)
    if netns is not None and netns.path and mode != PATH:
        raise ConfigError("linux.namespaces", f"network mode {mode!r} conflicts with joining the "
                          f"network namespace {netns.path}")
    if mode == BRIDGE and not privileged:
        raise ConfigError(where, "bridge needs root: rootless containers use slirp (pasta or slirp4netns)")
    if mode == PASTA and privileged:
        raise ConfigError(where, "pasta is for rootless containers (as root it drops to nobody before "
                          "joining the namespace): use bridge or slirp4netns")
    port_text = ports if ports is not None else spec.annotations.get(ANNOTATION_PORTS, "")
    port_list = parse_ports(port_text, f"annotations[{ANNOTATION_PORTS!r}]") if port_text else []
    if port_list and mode not in (BRIDGE, *USER_MODE):
        raise ConfigError(f"annotations[{ANNOTATION_PORTS!r}]",
                          f"published ports need network mode bridge, pasta or slirp4netns, not {mode}")
    loopback = spec.annotations.get(ANNOTATION_HOST_LOOPBACK, "false").lower() in ("true", "1", "yes")
    return NetPlan(mode, port_list, loopback)


def check_ports_free(ports: list[Port]) -> None:
    """A host port another program listens on fails ``create`` now, clearly."""
    import socket

    from pyrun.errors import PyrunError, errno_text

    for p in ports:
        kind = socket.SOCK_STREAM if p.proto == "tcp" else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, kind) as s:
            # SO_REUSEADDR: a connection in TIME_WAIT from an earlier
            # container does not make the port busy; a listener still does
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((p.host_ip or "0.0.0.0", p.host_port))
            except OSError as e:
                raise PyrunError(f"publish {p}: host port {p.host_port}/{p.proto} is not free: "
                                 f"{errno_text(e)}") from None


def hosts_text(entries: list[tuple[str, str]]) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines += [f"{ip}\t{name}" for ip, name in entries]
    return "\n".join(lines) + "\n"


def resolv_text(nameservers: list[str] | None = None) -> str:
    """The host's resolv.conf, minus loopback resolvers the container cannot reach."""
    if nameservers is None:
        nameservers = []
        try:
            with open("/etc/resolv.conf") as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 2 and parts[0] == "nameserver" and not parts[1].startswith("127."):
                        nameservers.append(parts[1])
        except OSError:
            pass
    return "".join(f"nameserver {n}\n" for n in nameservers or ["1.1.1.1"])
