"""The sync channel between pyrun and the processes that build a container.

A ``socketpair(AF_UNIX, SOCK_SEQPACKET)``: every message is one JSON object
and arrives whole, and a closed peer reads as EOF (``None``). This is how
the container's processes ask the host side to write their id maps, report
their pid, and report success or the error that stopped them.
"""

from __future__ import annotations

import json
import os
import socket


class Channel:
    def __init__(self, sock: socket.socket):
        self.sock = sock

    @classmethod
    def pair(cls) -> tuple["Channel", "Channel"]:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        return cls(a), cls(b)

    def send(self, kind: str, **fields) -> None:
        fields["kind"] = kind
        self.sock.send(json.dumps(fields).encode())

    def send_fd(self, kind: str, fd: int, **fields) -> None:
        """One message with a file descriptor attached (unix(7) SCM_RIGHTS)."""
        fields["kind"] = kind
        socket.send_fds(self.sock, [json.dumps(fields).encode()], [fd])

    def recv(self) -> dict | None:
        """The next message; a file descriptor that came with it (SCM_RIGHTS)
        is in ``msg["fd"]`` and belongs to the caller."""
        data, fds, _, _ = socket.recv_fds(self.sock, 65536, 1)
        if not data:
            for fd in fds:
                os.close(fd)
            return None
        msg = json.loads(data)
        if fds:
            msg["fd"] = fds[0]
        return msg

    def expect(self, kind: str) -> dict:
        """Receive one message of ``kind``; an ``error`` message or EOF raises."""
        from pyrun.errors import ContainerFailed

        msg = self.recv()
        if msg is None:
            raise ContainerFailed(f"container setup process exited while waiting for {kind!r}")
        if msg["kind"] == "error":
            raise ContainerFailed(msg["message"])
        if msg["kind"] != kind:
            raise ContainerFailed(f"sync: expected {kind!r}, got {msg['kind']!r}")
        return msg

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()
