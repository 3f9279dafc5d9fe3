"""``linux.netDevices`` (config-linux.md "Network Devices"): host network
interfaces moved into the container's network namespace, renamed, and
moved back on ``delete``.

Move and rename are one RTM_NEWLINK (IFLA_NET_NS_FD with IFLA_IFNAME,
rtnetlink(7)), so the interface never appears under its old name inside
nor clashes with a host name on the way back. Moving a link drops its
addresses: the permanent global ones are read first and added again on
the other side, with the link's up state, as runc does.

When the last process of a network namespace dies, the kernel deletes
the virtual interfaces in it (a veth, a dummy) and sends physical ones
back under a ``devN`` name: so the namespace is pinned by a bind mount of
``/proc/PID/ns/net`` on ``<state dir>/netns`` (what ``ip netns add``
does), and a container killed before ``delete`` still gives its devices
back. Root only: a rootless container's namespace belongs to its user
namespace, the host's interfaces to the host. pyroute2 is imported here
only, when a config lists devices.
"""

from __future__ import annotations

import os

from pyrun.kernel import syscalls as sc
from pyrun.errors import ConfigError, PyrunError
from pyrun.log import log

PIN = "netns"                 # in the state dir: the pinned network namespace
NAMES = "netdevices.json"     # in the state dir: host name -> container name


def check(spec, privileged: bool) -> None:
    """Before anything is made: root, and every named interface exists."""
    if not privileged:
        raise ConfigError("linux.netDevices", "moving host interfaces needs root (CAP_NET_ADMIN over the "
                          "host's network namespace): a rootless container cannot take them")
    from pyrun.jsonio import quote

    for name in spec.linux.net_devices:
        if not os.path.exists(f"/sys/class/net/{name}"):
            raise ConfigError(f"linux.netDevices[{quote(name)}]", "no such interface on the host")


def attach(state_path: str, devices: dict[str, str], pid: int) -> None:
    """Pin ``pid``'s network namespace, then move each device into it."""
    from pyrun import jsonio

    pin = os.path.join(state_path, PIN)
    os.close(os.open(pin, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o444))
    sc.mount(f"/proc/{pid}/ns/net", pin, None, sc.MS_BIND, None, shown=pin)
    with open(os.path.join(state_path, NAMES), "w") as f:
        f.write(jsonio.dumps(devices))
    netns = os.open(pin, os.O_RDONLY | os.O_CLOEXEC)
    try:
        for host_name, name in devices.items():
            with log.step(f"RTM_NEWLINK {host_name} -> netns as {name}"):
                state = _move_out(host_name, name, netns)
                _in_netns(netns, _restore, name, state)
    finally:
        os.close(netns)


def detach(state_path: str) -> None:
    """Move every device back to the host under its own name, then unpin.
    What is already gone (or never moved) is fine."""
    from pyrun import jsonio

    pin = os.path.join(state_path, PIN)
    if not os.path.exists(pin):
        return
    try:
        with open(os.path.join(state_path, NAMES)) as f:
            devices = jsonio.loads(f.read())
    except (OSError, ValueError):
        devices = {}
    try:
        netns = os.open(pin, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        netns = -1
    if netns >= 0 and _is_nsfs(netns, state_path):
        try:
            host = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                for host_name, name in devices.items():
                    with log.step(f"RTM_NEWLINK {name} -> host as {host_name}"):
                        state = _in_netns(netns, _move_out, name, host_name, host)
                        if state is not None:
                            _restore(host_name, state)
            finally:
                os.close(host)
        finally:
            os.close(netns)
        try:
            sc.umount2(pin, sc.MNT_DETACH)
        except PyrunError:
            pass
    elif netns >= 0:
        os.close(netns)
    for name in (PIN, NAMES):
        try:
            os.unlink(os.path.join(state_path, name))
        except FileNotFoundError:
            pass


def _is_nsfs(fd: int, state_path: str) -> bool:
    """The pin still holds a namespace (nsfs lives on its own device; the
    empty file under it is on the state dir's)."""
    return os.fstat(fd).st_dev != os.stat(state_path).st_dev


def _move_out(name: str, new_name: str, netns: int):
    """In the current namespace: note ``name``'s addresses and state, move it
    to ``netns`` as ``new_name``. None if there is no such link."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            return None
        index = found[0]
        link = ipr.get_links(index)[0]
        up = bool(link["flags"] & 1)  # IFF_UP
        addrs = []
        for a in ipr.get_addr(index=index):
            # permanent (not from DHCP/SLAAC) and global scope only
            if a["scope"] == 0 and a.get_attr("IFA_FLAGS", 0) & 0x80:
                addrs.append((a.get_attr("IFA_ADDRESS"), a["prefixlen"]))
        ipr.link("set", index=index, net_ns_fd=netns, ifname=new_name)
    return up, addrs


def _restore(name: str, state) -> None:
    """In the current namespace: give ``name`` back its addresses and state."""
    if state is None:
        return
    from pyroute2 import IPRoute

    up, addrs = state
    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname=name)[0]
        for address, prefixlen in addrs:
            ipr.addr("add", index=index, address=address, prefixlen=prefixlen)
        if up:
            ipr.link("set", index=index, state="up")


def _in_netns(netns: int, func, *args):
    """``func(*args)`` in the container's network namespace; a device state
    comes back from JSON as lists, made the tuples _restore takes again."""
    from pyrun.kernel.namespaces import run_in_netns

    value = run_in_netns(netns, "linux.netDevices: in the container's network namespace", func, *args)
    return None if value is None else (value[0], [tuple(a) for a in value[1]])
