"""``--pidfd-socket PATH`` (runc 1.2+, for create, run and exec): a pidfd of
the container's process (pidfd_open(2)) goes to the AF_UNIX socket at PATH,
one sendmsg(2) with SCM_RIGHTS (unix(7)), as ``--console-socket`` sends the
pty master, with runc's init type as the data. A pidfd names the process, not a pid number: the receiver
(a shim, an engine) can poll it for the exit and pidfd_send_signal(2) to it
with no pid-reuse race, whatever pid namespace it lives in.

As runc does, the socket is connected before anything is made, so a path
nobody listens on fails the command before it has started a process.
"""

from __future__ import annotations

import os

from pyrun.errors import PyrunError, errno_text


def connect(path: str):
    """The connected socket (with a timeout: a full backlog fails at once);
    an error names the flag."""
    from pyrun.console.terminal import connect_socket

    return connect_socket(path, "--pidfd-socket")


def send_pidfd(conn, pid: int, kind: str) -> None:
    """pidfd_open(2) ``pid`` and send it over ``conn``, then close it. The
    message's data is runc's: the init type, "standard" (create, run) or
    "setns" (exec)."""
    from pyrun.console.terminal import send_fd

    path = conn.getpeername()
    try:
        fd = os.pidfd_open(pid)
    except OSError as e:
        conn.close()
        raise PyrunError(f"--pidfd-socket {path}: pidfd_open({pid}): {errno_text(e)}") from None
    try:
        send_fd(conn, kind.encode(), fd)
    except OSError as e:
        raise PyrunError(f"--pidfd-socket {path}: sendmsg: {errno_text(e)}") from None
    finally:
        os.close(fd)
        conn.close()
