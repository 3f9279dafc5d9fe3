"""The sync channel between pyrun and the processes that build a container.

A ``socketpair(AF_UNIX, SOCK_SEQPACKET)``: every message is one JSON object
and arrives whole, and a closed peer reads as EOF (``None``). This is how
the container's processes ask the host side to write their id maps, report
their pid, and report success or the error that stopped them; :class:`Msg`
names every message, in the order they are exchanged.

It uses the C module ``_socket`` (what ``socket.py`` wraps) and
:mod:`pyrun.jsonio`: ``import socket`` pulls in enum and selectors, and
``import json`` re and enum, which every ``pyrun create`` would pay.
"""

from __future__ import annotations

import _socket
import os
import struct

from pyrun import jsonio

_FD = struct.Struct("i")


class Msg:
    """The protocol: every message's ``kind``, in the order ``create``
    exchanges them (youki's InitPhase). The host is ``pyrun create``
    (:mod:`pyrun.container.create`) or ``pyrun exec`` (:mod:`pyrun.container.enter`); stage 1
    and PID 1 are :mod:`pyrun.stages.builder`'s; exec's helper and the process it
    forks are enter's. Plain str constants: the enum module would cost
    every start its import."""

    IDMAP = "idmap"              # stage 1 -> host: unshared CLONE_NEWUSER; write its id maps (only we may)
    IDMAP_DONE = "idmap-done"    # host -> stage 1: maps written, so setresuid(0) works
    CGROUP_DONE = "cgroup-done"  # host -> stage 1 (exec: helper): moved into the cgroup; what it forks is inside
    PREPARED = "prepared"        # host -> PID 1: exec.fifo, overlay dirs made (the init's memfd attached): mount
    PID = "pid"                  # stage 1 (exec: helper) -> host: the pid of the child it forked, to record
    HOOKS = "hooks"              # PID 1 -> host: mounted, not yet pivoted: run prestart and createRuntime now
    HOOKS_DONE = "hooks-done"    # host -> PID 1: they ran; with PID 1's host pid, for createContainer's state
    CONSOLE = "console"          # PID 1 (exec: process) -> host: the pty master, for --console-socket or relay
    CONSOLE_DONE = "console-done"  # host -> exec's process: the master is at --console-socket: go on
    SECCOMP_LISTENER = "seccomp-listener"  # PID 1 (exec: process) -> host: the NOTIFY fd, for listenerPath
    READY = "ready"              # PID 1 -> host: built: record it; it now waits on exec.fifo
    ACK = "ack"                  # host -> PID 1: recorded (with its host pid, for hooks): drop PR_SET_PDEATHSIG
    DETACHED = "detached"        # PID 1 -> host: pdeathsig dropped: the container now outlives pyrun
    EXIT = "exit"                # host -> stage 1: all recorded; exit (PID 1 needs it no more)
    DONE = "done"                # teardown.run_as_mapped_root's child -> its parent: the function ran
    ERROR = "error"              # any child -> its parent, at any step: what stopped it ("message"); it exits


class Channel:
    def __init__(self, sock: _socket.socket):
        self.sock = sock

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)  # close-on-exec (PEP 446)
        return cls(a), cls(b)

    def send(self, kind: str, **fields) -> None:
        """write(2): one packet (send(2) without flags; write is what a
        seccomp profile written for runc lets PID 1 make after it)."""
        fields["kind"] = kind
        os.write(self.sock.fileno(), jsonio.dumps(fields).encode())

    def send_fd(self, kind: str, fd: int, **fields) -> None:
        """One message with a file descriptor attached (unix(7) SCM_RIGHTS)."""
        fields["kind"] = kind
        self.sock.sendmsg([jsonio.dumps(fields).encode()],
                          [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, _FD.pack(fd))])

    def send_if_open(self, kind: str, fd: int | None = None, **fields) -> None:
        """:meth:`send` (or :meth:`send_fd`) to a peer that may have failed
        meanwhile: a closed peer is not an error here, since what it sent
        before it went (its error, or EOF) is what :meth:`recv` reads next."""
        try:
            if fd is None:
                self.send(kind, **fields)
            else:
                self.send_fd(kind, fd, **fields)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def recv(self) -> dict | None:
        """The next message; a file descriptor that came with it (SCM_RIGHTS)
        is in ``msg["fd"]`` and belongs to the caller."""
        try:
            data, ancdata, _, _ = self.sock.recvmsg(65536, _socket.CMSG_SPACE(_FD.size),
                                                    _socket.MSG_CMSG_CLOEXEC)
        except ConnectionResetError:
            # The peer closed with a message of ours unread: a datagram
            # socket reports that (ECONNRESET, once) before what the peer
            # sent, typically its error message. Read on.
            data, ancdata, _, _ = self.sock.recvmsg(65536, _socket.CMSG_SPACE(_FD.size),
                                                    _socket.MSG_CMSG_CLOEXEC)
        fds = [_FD.unpack_from(cdata)[0] for level, kind, cdata in ancdata
               if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS and len(cdata) >= _FD.size]
        if not data:
            for fd in fds:
                os.close(fd)
            return None
        msg = jsonio.loads(data)
        if fds:
            msg["fd"] = fds[0]
        return msg

    def recv_plain(self) -> dict | None:
        """:meth:`recv` of a message that carries no descriptor, with
        read(2) alone (after PID 1's seccomp filter: see :meth:`send`)."""
        try:
            data = os.read(self.sock.fileno(), 65536)
        except ConnectionResetError:  # as in recv
            data = os.read(self.sock.fileno(), 65536)
        return jsonio.loads(data) if data else None

    def expect(self, kind: str, plain: bool = False) -> dict:
        """Receive one message of ``kind``; an ``error`` message or EOF
        raises. ``plain``: one that carries no descriptor (:meth:`recv_plain`)."""
        from pyrun.errors import ContainerFailed

        msg = self.recv_plain() if plain else self.recv()
        if msg is None:
            raise ContainerFailed(f"container setup process exited while waiting for {kind!r}")
        if msg["kind"] == Msg.ERROR:
            raise ContainerFailed(msg["message"])
        if msg["kind"] != kind:
            raise ContainerFailed(f"sync: expected {kind!r}, got {msg['kind']!r}")
        return msg

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()
