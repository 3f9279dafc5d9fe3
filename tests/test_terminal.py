"""process.terminal: a pty from the container's devpts, handed to
--console-socket (as conmon expects) or relayed in the foreground."""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import socket
import struct
import subprocess
import termios
import threading
import time

import pytest

SCRIPT = "tty; stty size; test -t 0 && echo stdin-is-a-tty; read line; echo got:$line; exit 3"


class ConsoleSocket:
    """The receiving end of --console-socket: one connection, one fd.

    Like conmon, it can set a window ``size`` on the master once it has it
    (after ``delay`` seconds: a slow conmon) and only then close the
    connection; with ``hold`` it keeps the connection open (runc's recvtty)."""

    def __init__(self, path: str, size: tuple[int, int] | None = None, delay: float = 0, hold: bool = False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        os.chmod(path, 0o777)
        self.sock.listen(1)
        self.master = None
        self.name = None
        self.size, self.delay, self.hold = size, delay, hold
        self.conn = None
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        self.sock.settimeout(30)
        conn, _ = self.sock.accept()
        self.name, fds, _, _ = socket.recv_fds(conn, 4096, 1)
        self.master = fds[0]
        if self.size:
            time.sleep(self.delay)
            set_size(self.master, *self.size)
        if self.hold:
            self.conn = conn
        else:
            conn.close()


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def read_until(fd: int, marker: bytes, timeout: float = 15) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while marker not in out and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                data = os.read(fd, 4096)
            except OSError:
                break
            if not data:
                break
            out += data
    return out


def terminal_config(rt, args):
    config = rt.config(args)
    config["process"]["terminal"] = True
    config["process"]["consoleSize"] = {"height": 33, "width": 101}
    return config


def test_console_socket_receives_the_pty_master(rt):
    console = ConsoleSocket(os.path.join(rt.dir, "console.sock"))
    bundle = rt.bundle(config=terminal_config(rt, ["sh", "-c", SCRIPT]))
    rt.ok("create", "-b", bundle, "--console-socket", os.path.join(rt.dir, "console.sock"), "c1")
    console.thread.join(10)
    assert console.master is not None and console.name == b"/dev/ptmx"
    rt.ok("start", "c1")
    out = read_until(console.master, b"stdin-is-a-tty")
    os.write(console.master, b"hello\n")
    out += read_until(console.master, b"got:hello")
    lines = out.decode().replace("\r", "").splitlines()
    assert lines[0] == "/dev/pts/0" and lines[1] == "33 101" and "stdin-is-a-tty" in lines, lines
    assert "got:hello" in lines
    rt.wait_status("c1", "stopped")
    os.close(console.master)


def test_foreground_run_relays_the_callers_terminal(rt):
    bundle = rt.bundle(config=terminal_config(rt, ["sh", "-c", SCRIPT]))
    master, slave = os.openpty()
    proc = rt.popen("run", "-b", bundle, "c1", stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    out = read_until(master, b"stdin-is-a-tty")
    os.write(master, b"hello\r")
    out += read_until(master, b"got:hello")
    assert proc.wait(timeout=30) == 3
    text = out.decode().replace("\r", "")
    assert "/dev/pts/0" in text and "33 101" in text and "got:hello" in text, text
    os.close(master)


def test_foreground_run_keeps_what_was_typed_before_the_relay_began(rt):
    """A line typed before the relay makes the caller's terminal raw (here:
    before pyrun even starts; for a human, while a restore or a slow create
    runs) is the container's input: raw mode is set with TCSANOW, as runc's
    console.SetRaw (TCSETS), not tty.setraw's default TCSAFLUSH, which threw
    the line away and left the shell waiting. runc beside, rootful."""
    script = "read line; echo got:$line; exit 4"
    runners = [("pyrun", lambda bundle: rt.popen("run", "-b", bundle, "c1", **stdio))]
    if not rt.rootless and shutil.which("runc"):
        root = os.path.join(rt.dir, "runc-state")
        runners.append(("runc", lambda bundle: subprocess.Popen(["runc", "--root", root, "run", "-b", bundle, "c1"],
                                                                **stdio)))
    for name, start in runners:
        bundle = rt.bundle(config=terminal_config(rt, ["sh", "-c", script]))
        master, slave = os.openpty()
        os.write(master, b"early\n")  # queued on the caller's terminal, cooked
        stdio = {"stdin": slave, "stdout": slave, "stderr": slave}
        proc = start(bundle)
        os.close(slave)
        try:
            out = read_until(master, b"got:early", timeout=30)
            assert b"got:early" in out, (name, out)
            assert proc.wait(timeout=30) == 4, name
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)


def test_exec_tty_in_the_foreground_and_through_a_console_socket(rt):
    rt.ok("run", "-d", "-b", rt.bundle(["sleep", "60"]), "c1")
    master, slave = os.openpty()
    proc = rt.popen("exec", "-t", "c1", "sh", "-c", "tty; exit 5", stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    out = read_until(master, b"/dev/pts/")
    assert proc.wait(timeout=30) == 5
    assert b"/dev/pts/" in out, out
    os.close(master)
    path = os.path.join(rt.dir, "exec-console.sock")
    console = ConsoleSocket(path)
    rt.ok("exec", "-t", "-d", "--console-socket", path, "c1", "sh", "-c", "tty; sleep 1")
    console.thread.join(10)
    assert b"/dev/pts/" in read_until(console.master, b"/dev/pts/")
    os.close(console.master)


def test_exec_tty_process_starts_with_the_size_the_console_receiver_sets(rt):
    """An exec's process has no consoleSize: conmon sets the size on the
    master when it has it. exec waits until the receiver has taken the
    master (closed the connection), so the process never reads 0x0 first."""
    rt.ok("run", "-d", "-b", rt.bundle(["sleep", "60"]), "c1")
    path = os.path.join(rt.dir, "slow-console.sock")
    console = ConsoleSocket(path, size=(40, 120), delay=0.05)
    rt.ok("exec", "-t", "-d", "--console-socket", path, "c1", "sh", "-c", "stty size; sleep 1")
    console.thread.join(10)
    out = read_until(console.master, b"\n").decode().replace("\r", "")
    assert out.splitlines()[0] == "40 120", out
    os.close(console.master)


def test_exec_tty_with_a_receiver_that_keeps_the_connection_open(rt):
    rt.ok("run", "-d", "-b", rt.bundle(["sleep", "60"]), "c1")
    path = os.path.join(rt.dir, "held-console.sock")
    console = ConsoleSocket(path, hold=True)
    rt.ok("exec", "-t", "-d", "--console-socket", path, "c1", "sh", "-c", "echo hello-from-exec; sleep 1")
    console.thread.join(10)
    assert b"hello-from-exec" in read_until(console.master, b"hello-from-exec")
    os.close(console.master)
    console.conn.close()


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace (tools/deps.sh installs it)")
def test_exec_child_speaks_only_after_the_helper_reported_its_pid(rootful):
    """exec's helper reports the child's pid on a channel the child shares;
    the child sends its pty master on it. strace delays every sendto(2) (the
    helper's "pid") and not sendmsg(2) (the master): the child must still
    wait for the pid to be reported. Before the fix: "the helper process
    died", every time."""
    rt = rootful
    rt.ok("run", "-d", "-b", rt.bundle(["sleep", "60"]), "c1")
    master, slave = os.openpty()
    proc = subprocess.Popen(["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=sendto",
                             "-e", "inject=sendto:delay_enter=300000",
                             *rt.cmd("exec", "-t", "c1", "sh", "-c", "tty; exit 5")],
                            stdin=slave, stdout=slave, stderr=slave, env=rt.env, cwd=rt.dir)
    os.close(slave)
    out = read_until(master, b"/dev/pts/")
    assert proc.wait(timeout=30) == 5, out
    assert b"/dev/pts/" in out, out
    os.close(master)


def test_foreground_exec_tty_starts_with_the_callers_size(rt):
    rt.ok("run", "-d", "-b", rt.bundle(["sleep", "60"]), "c1")
    master, slave = os.openpty()
    set_size(master, 50, 150)
    proc = rt.popen("exec", "-t", "c1", "stty", "size", stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    out = read_until(master, b"150")
    assert proc.wait(timeout=30) == 0
    assert "50 150" in out.decode(), out
    os.close(master)


@pytest.mark.parametrize("command", [["create"], ["run", "-d"]])
def test_detached_terminal_without_console_socket_is_an_error(rt, residue, command):
    bundle = rt.bundle(config=terminal_config(rt, ["true"]))
    p = rt(*command, "-b", bundle, "c1")
    assert p.returncode == 1 and "process.terminal" in p.stderr and "--console-socket" in p.stderr, p.stderr
    residue.check()


def _exec_seconds(rt, *args) -> float:
    t0 = time.monotonic()
    rt.ok(*args)
    return time.monotonic() - t0


@pytest.mark.parametrize("console_size", [False, True])
def test_exec_tty_does_not_wait_for_a_receiver_that_takes_the_master_after_exec_returns(rt, console_size):
    """containerd's shim accepts the --console-socket connection only once
    ``runc exec`` has returned: exec -t must not wait for it to close the
    connection (it was 0.25 s more than exec without -t, every time). With
    a consoleSize the process starts with it; without, there is nothing
    to wait for from a receiver that is not reading."""
    cid = f"late-{os.getpid()}"
    rt.ok("run", "-d", "-b", rt.bundle(["sleep", "60"]), cid)
    args = ["sh", "-c", "stty size"]
    if console_size:
        path = os.path.join(rt.dir, "process.json")
        with open(path, "w") as f:
            json.dump({"args": args, "cwd": "/", "terminal": True, "env": ["PATH=/bin:/usr/bin"],
                       "consoleSize": {"height": 30, "width": 90}, "user": {"uid": 0, "gid": 0}}, f)
        os.chmod(path, 0o644)
        command = ["--process", path, cid]
    else:
        command = [cid, *args]
    plain = min(_exec_seconds(rt, "exec", "-d", cid, "true") for _ in range(3))
    tty = []
    for i in range(3):
        sock_path = os.path.join(rt.dir, f"late{i}.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(sock_path)
        os.chmod(sock_path, 0o777)
        listener.listen(1)
        tty.append(_exec_seconds(rt, "exec", "-t", "-d", "--console-socket", sock_path, *command))
        conn, _ = listener.accept()  # only now, as containerd's shim does
        _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
        out = read_until(fds[0], b"\n").decode().replace("\r", "")
        if console_size:
            assert out.splitlines()[0] == "30 90", out
        os.close(fds[0])
        conn.close()
        listener.close()
    assert min(tty) - plain < 0.15, (tty, plain)


def test_exec_tells_a_receiver_that_has_not_accepted_from_one_that_has(tmp_path):
    """exec -t waits for a --console-socket receiver to take the master only
    if it has accepted the connection (conmon); containerd's shim accepts
    only once exec has returned, and waiting for it cost 20 ms of every
    exec -t. sock_diag(7) tells the two apart."""
    from pyrun.console.terminal import _accepted

    path = str(tmp_path / "s.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen(1)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(path)
            assert _accepted(client) is False
            conn, _ = listener.accept()
            with conn:
                assert _accepted(client) is True
