"""Network mode ``bridge`` (root only): a veth pair into the bridge
``pyrun0``, an address from a lease file, NAT with nftables.

Per container, in order (each undone by :func:`detach`):

1. lease: the lowest free address of 10.89.0.0/16, recorded in
   ``/run/pyrun/network/leases.json`` under an flock(2) — one file for the
   host, since the bridge is one for the host — with the container's name
   and published ports (a port already published is refused);
2. ``/etc/hosts`` of every container on the bridge is rewritten (they are
   bind mounts of files in each state directory, so the running ones see
   the newcomer by name);
3. the bridge, once: ``ip link add pyrun0 type bridge``, 10.89.0.1/16, up;
   an nftables rule that drops what arrives on the bridge for 127.0.0.0/8
   unless it belongs to a DNATed (published port) connection; IPv4
   forwarding on; ``route_localnet`` on the bridge so that a port
   published on 127.0.0.1 can be DNATed into it;
4. RTM_NEWLINK veth ``pyrv<hash>`` whose peer is created directly in the
   container's network namespace as ``eth0``; master pyrun0; up;
5. in the namespace (pyroute2 NetNS): address, up, default route;
6. nftables table ``ip pyrun``: masquerade of the subnet going elsewhere
   (and of 127.0.0.1 going into it), and per published port a DNAT rule in
   ``prerouting`` and ``output`` tagged with a comment naming the container.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import ipaddress
import json
import os
from contextlib import contextmanager

from pyrun.errors import PyrunError
from pyrun.log import log

BRIDGE = "pyrun0"
SUBNET = ipaddress.IPv4Network("10.89.0.0/16")
GATEWAY = SUBNET.network_address + 1
NETDIR = "/run/pyrun/network"
LEASES = os.path.join(NETDIR, "leases.json")


def veth_name(key: str) -> str:
    return "pyrv" + hashlib.sha256(key.encode()).hexdigest()[:10]


def _comment(key: str) -> str:
    return "pyrun:" + hashlib.sha256(key.encode()).hexdigest()[:16]


@contextmanager
def _locked():
    os.makedirs(NETDIR, mode=0o755, exist_ok=True)
    fd = os.open(os.path.join(NETDIR, "leases.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            with open(LEASES) as f:
                leases = json.load(f)
        except FileNotFoundError:
            leases = {}
        yield leases
        tmp = LEASES + ".tmp"
        with open(tmp, "w") as f:
            json.dump(leases, f, indent=1)
        os.rename(tmp, LEASES)
    finally:
        os.close(fd)


def _write_hosts(leases: dict) -> None:
    from pyrun.net.network import hosts_text

    entries = [(v["ip"], v["name"]) for v in leases.values()]
    for v in leases.values():
        try:
            # in place: the file is bind-mounted; a rename would not be seen
            with open(v["hosts"], "r+") as f:
                f.seek(0)
                f.write(hosts_text(entries))
                f.truncate()
        except OSError:
            pass  # its container is being deleted


def _a_container_address(text: str) -> bool:
    """``text`` is an address of SUBNET a container may have: not the
    network's, the broadcast or the gateway (the host's side)."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return address in SUBNET and address not in (SUBNET.network_address, SUBNET.broadcast_address, GATEWAY)


def allocate(key: str, name: str, hosts_path: str, ports, want: str | None = None) -> str:
    """A free address for ``key`` (the state directory), and its hosts file;
    ``want``: that address or none (a restored container keeps the one it
    had at checkpoint: its TCP connections name it)."""
    from pyrun.net.network import hosts_text

    if want is not None and not _a_container_address(want):
        # (restore's network.json is read from images a user may have been given)
        raise PyrunError(f"bridge {BRIDGE}: {want!r} is not a container's address in {SUBNET}")
    with _locked() as leases:
        taken = {v["ip"] for v in leases.values()}
        if want is not None and want in taken:
            other = next(v["name"] for v in leases.values() if v["ip"] == want)
            raise PyrunError(f"bridge {BRIDGE}: address {want} is taken by container {other!r}")
        for other, v in leases.items():
            for p in ports:
                if f"{p.host_port}/{p.proto}" in v.get("ports", []):
                    raise PyrunError(f"publish {p}: host port {p.host_port}/{p.proto} is already "
                                     f"published by container {v['name']!r}")
        ip = want or next((str(a) for a in SUBNET.hosts() if a != GATEWAY and str(a) not in taken), None)
        if ip is None:
            raise PyrunError(f"bridge {BRIDGE}: no free address left in {SUBNET}")
        with open(hosts_path, "w") as f:
            f.write(hosts_text([]))
        leases[key] = {"ip": ip, "name": name, "hosts": hosts_path,
                       "ports": [f"{p.host_port}/{p.proto}" for p in ports]}
        _write_hosts(leases)
    return ip


def _sysctl(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _nft(script: str) -> None:
    import subprocess

    p = subprocess.run(["nft", "-f", "-"], input=script, text=True, capture_output=True)
    if p.returncode != 0:
        raise PyrunError(f"nft: {p.stderr.strip() or 'exit status ' + str(p.returncode)}")


_BASE = """
table ip pyrun {
  chain prerouting { type nat hook prerouting priority dstnat; }
  chain output { type nat hook output priority -100; }
  chain postrouting { type nat hook postrouting priority srcnat; }
  chain input { type filter hook input priority filter; }
}
"""

# route_localnet lets the kernel take packets that arrive on the bridge for
# 127.0.0.0/8; only the replies of a published port's DNATed connections may
# (a container with CAP_NET_RAW would otherwise reach the host's
# loopback-only services: CVE-2020-8558, kube-proxy's and Docker's rule).
LOOPBACK_GUARD = (f'add rule ip pyrun input iifname "{BRIDGE}" ip daddr 127.0.0.0/8 ct status & dnat == 0 '
                  'drop comment "pyrun:loopback-guard"')


def _ensure_base(ipr) -> int:
    """The bridge and the NAT table, made once; returns the bridge's index.
    The loopback guard is in place before route_localnet is switched on."""
    found = ipr.link_lookup(ifname=BRIDGE)
    if not found:
        with log.step(f"RTM_NEWLINK bridge {BRIDGE}"):
            ipr.link("add", ifname=BRIDGE, kind="bridge")
            found = ipr.link_lookup(ifname=BRIDGE)
            ipr.addr("add", index=found[0], address=str(GATEWAY), prefixlen=SUBNET.prefixlen)
            ipr.link("set", index=found[0], state="up")
    import subprocess

    listed = subprocess.run(["nft", "list", "table", "ip", "pyrun"], capture_output=True, text=True)
    listed = listed.stdout if listed.returncode == 0 else ""
    rules = []
    if "pyrun:base" not in listed:
        rules += [f'add rule ip pyrun postrouting ip saddr {SUBNET} ip daddr != {SUBNET} masquerade '
                  'comment "pyrun:base"',
                  f'add rule ip pyrun postrouting ip saddr 127.0.0.0/8 ip daddr {SUBNET} masquerade '
                  'comment "pyrun:base"']
    if "pyrun:loopback-guard" not in listed:  # a table made by an older pyrun has none
        rules.append(LOOPBACK_GUARD)
    if rules:
        _nft(_BASE + "\n".join(rules) + "\n")
    _sysctl("/proc/sys/net/ipv4/ip_forward", "1")
    _sysctl(f"/proc/sys/net/ipv4/conf/{BRIDGE}/route_localnet", "1")
    return found[0]


def attach(key: str, ip: str, pid: int, ports) -> str:
    """Steps 3-6 for the container whose PID 1 is ``pid``; returns the veth."""
    netns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        return attach_netns(key, ip, netns, ports)
    finally:
        os.close(netns)


def attach_netns(key: str, ip: str, netns: int, ports, loopback: bool = False) -> str:
    """Steps 3-6 for the network namespace open as ``netns``; ``loopback``:
    bring ``lo`` up there too (a namespace no container has set up yet:
    pyrun restore's, pyrun.container.checkpoint). Returns the veth."""
    from pyroute2 import IPRoute

    veth = veth_name(key)
    with IPRoute() as ipr:
        with _locked():
            bridge = _ensure_base(ipr)
        with log.step(f"RTM_NEWLINK veth {veth}"):
            ipr.link("add", ifname=veth, kind="veth", peer={"ifname": "eth0", "net_ns_fd": netns})
        index = ipr.link_lookup(ifname=veth)[0]
        ipr.link("set", index=index, master=bridge, state="up")
    with log.step("setns(net): eth0 address, route"):
        from pyrun.kernel.namespaces import run_in_netns

        run_in_netns(netns, "network setup in the container's namespace", _configure_eth0, ip, loopback)
    with _locked():
        if ports:
            rules = []
            for p in ports:
                match = f"ip daddr {p.host_ip}" if p.host_ip else "fib daddr type local"
                rule = (f"{match} {p.proto} dport {p.host_port} dnat to {ip}:{p.container_port} "
                        f'comment "{_comment(key)}"')
                rules += [f"add rule ip pyrun prerouting {rule}", f"add rule ip pyrun output {rule}"]
            _nft("\n".join(rules) + "\n")
    return veth


def _configure_eth0(ip: str, loopback: bool = False) -> None:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        if loopback:
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        eth0 = ipr.link_lookup(ifname="eth0")[0]
        ipr.addr("add", index=eth0, address=ip, prefixlen=SUBNET.prefixlen)
        ipr.link("set", index=eth0, state="up")
        ipr.route("add", dst="default", gateway=str(GATEWAY))


def detach(key: str) -> None:
    """Undo everything of ``key``; what is already gone is fine."""
    import subprocess

    with _locked() as leases:
        listed = subprocess.run(["nft", "-a", "list", "table", "ip", "pyrun"], capture_output=True, text=True)
        if listed.returncode == 0:
            tag = f'comment "{_comment(key)}"'
            chain, deletes = None, []
            for line in listed.stdout.splitlines():
                words = line.split()
                if words[:1] == ["chain"]:
                    chain = words[1]
                elif tag in line and "# handle" in line:
                    deletes.append(f"delete rule ip pyrun {chain} handle {words[-1]}")
            if deletes:
                _nft("\n".join(deletes) + "\n")
        veth = veth_name(key)
        if os.path.exists(f"/sys/class/net/{veth}"):
            from pyroute2 import IPRoute, NetlinkError

            with IPRoute() as ipr:
                for index in ipr.link_lookup(ifname=veth):
                    try:
                        ipr.link("del", index=index)
                    except NetlinkError as e:
                        # The kernel destroys the pair with the container's
                        # netns, asynchronously: it may be gone by now.
                        if e.code != errno.ENODEV:
                            raise
        if leases.pop(key, None) is not None:
            _write_hosts(leases)
