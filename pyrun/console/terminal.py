"""``process.terminal``: a pseudo-terminal made inside the container.

The pty pair comes from the container's own devpts (``/dev/ptmx`` →
``/dev/pts/ptmx``), so the process's terminal is a ``/dev/pts/N`` it can
see. The container side keeps the slave as its controlling terminal
(setsid(2), ioctl(2) TIOCSCTTY) and stdin/stdout/stderr; the master goes
to the host side over the sync channel (SCM_RIGHTS), which then:

* sends it on to ``--console-socket`` (what conmon and containerd pass), as
  runc does: one message, the name as data, the fd attached; or
* in the foreground, relays between the caller's terminal and the master
  (raw mode, restored on exit; SIGWINCH copies the window size).

pty(7), ioctl_tty(2).
"""

from __future__ import annotations

import _socket  # socket.py's C core: socket.py imports enum and selectors (4 ms, on every exec -t)
import fcntl
import os
import struct
import termios

TIOCGPTPEER = 0x5441  # ioctl_tty(2): open the slave from the master, no path lookup
TIOCSPTLCK = 0x40045431


def open_pty(size: tuple[int, int] | None) -> tuple[int, int]:
    """posix_openpt(3) in the container's /dev/pts: (master, slave).
    /dev/ptmx is the image's to make a link of: resolved inside the root,
    never through a magic link to a descriptor of pyrun's."""
    from pyrun.kernel import syscalls as sc

    master = sc.open_in_own_root("/dev/ptmx", os.O_RDWR | os.O_NOCTTY)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))  # unlockpt(3)
    slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
    if size is not None:
        set_size(master, *size)
    return master, slave


def bind_console(slave: int) -> None:
    """/dev/console is the container's pty, as under runc: the slave is
    bound onto it from its descriptor (open_tree(2) + move_mount(2)). The
    target is made with O_EXCL|O_NOFOLLOW; one the image left there is used
    only if it is not a symlink or a directory (runc CVE-2025-52565: the
    bind followed an image's /dev/console symlink onto a host path)."""
    import stat

    from pyrun.kernel import syscalls as sc
    from pyrun.errors import PyrunError

    if sc.fs_type(slave) != sc.DEVPTS_SUPER_MAGIC:  # the image's /dev/ptmx could be anything
        raise PyrunError("process.terminal: the pty from /dev/ptmx is not on a devpts: "
                         "refusing to make it /dev/console")
    dev = sc.open_in_own_root("/dev", sc.O_PATH | os.O_DIRECTORY)  # after pivot_root: the container's
    try:
        try:
            os.close(os.open("console", os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                             0o600, dir_fd=dev))
        except FileExistsError:
            st = os.stat("console", dir_fd=dev, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode) or stat.S_ISDIR(st.st_mode):
                raise PyrunError("/dev/console in the rootfs is a symlink or a directory: "
                                 "pyrun will not bind the terminal over it") from None
        target = os.open("console", os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dev)
        try:
            sc.bind_fd(slave, target, "/dev/console")
        finally:
            os.close(target)
    finally:
        os.close(dev)


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def copy_size(master: int, fd: int = 0) -> None:
    """The caller's terminal size (``fd``) onto the pty. A terminal that
    does not know its size (0x0) leaves the pty's (consoleSize) alone."""
    try:
        cols, rows = os.get_terminal_size(fd)
        if rows and cols:
            set_size(master, rows, cols)
    except OSError:
        pass


def become_controlling(slave: int) -> None:
    """The slave as controlling terminal and stdio (we lead a session)."""
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


# How long a receiver may take to read the message before ``exec`` concludes
# that it is not reading now: containerd's shim accepts the connection only
# once ``runc exec`` has returned, conmon (an event loop already polling its
# socket) reads it at once.
READ_GRACE = 0.02


# How long connect(2) and sendmsg(2) on --console-socket may wait. A unix
# stream socket whose backlog is full makes a non-blocking connect fail at
# once (EAGAIN), as runc's does; the timeout bounds a receiver that accepts
# and then never reads.
SOCKET_TIMEOUT = 5.0


def connect_socket(path: str, flag: str = "--console-socket"):
    """connect(2) to ``path``, before the container is built (runc dials
    first too): a receiver that is not there, or will not accept, fails the
    command before anything is made. The socket is close-on-exec."""
    from pyrun.errors import PyrunError

    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    s.settimeout(SOCKET_TIMEOUT)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise PyrunError(f"{flag} {path}: connect: {_socket_error(e)}") from None
    return s


def _socket_error(e: OSError) -> str:
    from pyrun.errors import errno_text

    if e.errno is None:  # socket.timeout
        return f"timed out after {SOCKET_TIMEOUT:g} s"
    return errno_text(e)


def send_to_socket(conn, path: str, master: int, wait_taken: float = 0.0) -> None:
    """runc's console-socket protocol over ``conn`` (:func:`connect_socket`
    to ``path``):
    one sendmsg(2) with the fd, the name as data; then close it.

    MSG_NOSIGNAL: a receiver that has closed gives EPIPE, an error with the
    flag's name, not a SIGPIPE. With ``wait_taken``, then wait (at most that
    many seconds) while the receiver is taking the master: see
    :func:`_wait_taken`."""
    from pyrun.errors import PyrunError

    try:
        send_fd(conn, b"/dev/ptmx", master)
        if wait_taken:
            _wait_taken(conn, master, wait_taken)
    except OSError as e:
        raise PyrunError(f"--console-socket {path}: sendmsg: {_socket_error(e)}") from None
    finally:
        conn.close()


def send_fd(conn, data: bytes, fd: int) -> None:
    """socket.send_fds(conn, [data], [fd], MSG_NOSIGNAL): one sendmsg(2),
    the fd as SCM_RIGHTS (unix(7))."""
    conn.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack("i", fd))], _socket.MSG_NOSIGNAL)


def _unread(sock) -> int:
    """Bytes we sent that the receiver has not read yet: for a unix stream
    socket SIOCOUTQ is the memory of our queued messages, freed when the
    receiver reads them (unix(7))."""
    return struct.unpack("i", fcntl.ioctl(sock, termios.TIOCOUTQ, struct.pack("i", 0)))[0]


# sock_diag(7): the netlink family that reports a socket's state, and what
# it says of a unix socket (linux/unix_diag.h).
NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
UDIAG_SHOW_PEER = 0x04
UNIX_DIAG_PEER = 2


def _accepted(sock) -> bool | None:
    """Has the receiver accept(2)ed our connection yet (None: the kernel
    did not say)? Until accept(2) the receiver's end of a unix stream
    connection is a socket in the listener's queue with no file, and
    sock_diag(7) reports our peer's inode as 0 (net/unix/diag.c:
    sk_diag_dump_peer, sock_i_ino); once accepted, the inode of the
    receiver's socket."""
    ino = os.fstat(sock.fileno()).st_ino
    # struct unix_diag_req: family, protocol, pad, states, ino, show, cookie (none)
    req = struct.pack("=BBHIIIII", _socket.AF_UNIX, 0, 0, 0xFFFFFFFF, ino, UDIAG_SHOW_PEER, 0xFFFFFFFF, 0xFFFFFFFF)
    try:
        nl = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)  # close-on-exec (PEP 446)
        try:
            nl.send(struct.pack("=IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY, 1, 1, 0) + req)  # NLM_F_REQUEST
            reply = nl.recv(8192)
        finally:
            nl.close()
    except OSError:
        return None
    length, kind = struct.unpack_from("=IH", reply)
    if kind != SOCK_DIAG_BY_FAMILY:  # NLMSG_ERROR: no unix_diag in this kernel
        return None
    offset = 16 + 16  # struct nlmsghdr, struct unix_diag_msg; then the attributes
    while offset + 8 <= min(length, len(reply)):
        size, attr = struct.unpack_from("=HH", reply, offset)
        if attr == UNIX_DIAG_PEER:
            return struct.unpack_from("=I", reply, offset + 4)[0] != 0
        if size < 4:
            break
        offset += (size + 3) & ~3
    return None


def _has_size(fd: int) -> bool:
    rows, cols = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, bytes(8)))[:2]
    return bool(rows and cols)


def _wait_taken(sock, master: int, limit: float) -> None:
    """An exec's process without a consoleSize starts with a 0x0 window
    unless the receiver sets one first. conmon reads the master at once,
    sets the size its caller sent and closes the connection: wait for that
    (or for the size), at most ``limit`` seconds. containerd's shim takes
    the master only after ``exec`` has returned (and resizes then, as with
    runc, which never waits): a receiver that has not read the message
    within :data:`READ_GRACE` is not waited for, nor one that has not
    accepted the connection yet (:func:`_accepted`): it reads nothing
    before ``exec`` returns."""
    import select
    import time

    if _accepted(sock) is False:
        return

    p = select.poll()
    p.register(sock, select.POLLIN)  # EOF (or HUP) when the receiver closes
    start = time.monotonic()
    read = False
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= limit or p.poll(2) or _has_size(master):
            return
        if not read:
            read = _unread(sock) == 0
            if not read and elapsed >= READ_GRACE:
                return


def relay(master: int, pid: int) -> int:
    """Copy the caller's stdin to the pty and the pty to stdout until
    ``pid`` (our child) exits; returns its wait status."""
    import select
    import signal
    import tty

    stdin_tty = os.isatty(0)
    saved = termios.tcgetattr(0) if stdin_tty else None

    def winch(signum, frame):
        copy_size(master)

    old = signal.signal(signal.SIGWINCH, winch)
    if stdin_tty:
        # TCSANOW, not setraw's default TCSAFLUSH: what the user typed before
        # the relay began (while a restore ran) is the container's input,
        # not to be discarded (runc's console.SetRaw is a plain TCSETS too)
        tty.setraw(0, termios.TCSANOW)
        copy_size(master)
    inputs = [master, 0]
    status = None
    try:
        while True:
            if status is None:
                done, st = os.waitpid(pid, os.WNOHANG)
                if done:
                    status = st
            try:
                ready = select.select(inputs, [], [], 0.05 if status is None else 0)[0]
            except InterruptedError:
                continue
            if not ready and status is not None:
                return status
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: the last slave fd closed
                    data = b""
                if fd == master:
                    if not data:
                        inputs.remove(master)
                        if status is None:
                            _, status = os.waitpid(pid, 0)
                        return status
                    _write_all(1, data)
                else:
                    if not data:
                        inputs.remove(0)  # stdin at EOF: keep relaying output
                    else:
                        _write_all(master, data)
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        signal.signal(signal.SIGWINCH, old)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
