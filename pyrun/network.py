"""Networking. For now: bring up loopback in a new network namespace.

A new network namespace has only ``lo``, and it is down. Bringing it up is
one SIOCSIFFLAGS ioctl (netdevice(7)); no netlink library is needed, and
pyroute2 (hundreds of milliseconds to import) stays off this path.
"""

from __future__ import annotations

import fcntl
import socket
import struct

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))
