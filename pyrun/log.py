"""Logging in runc's formats, and ``--debug`` timing of construction steps.

runc writes ``time="…" level=error msg="…"`` (text) or
``{"level":"error","msg":"…","time":"…"}`` (json, which podman and conmon
parse). The log is an fd opened with O_APPEND so the container's setup
processes, which inherit it, can write to the same file; it is closed
before the container's process is executed.
"""

from __future__ import annotations

import os
import sys
import time

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}

# A test-only fault point: with PYRUN_TEST_HOOKS=1 in pyrun's own
# environment, PYRUN_TEST_KILL_AT=<step name> makes the step of that name
# SIGKILL the runtime (the ``pyrun`` process the caller started) as it
# begins, whichever process of the construction reaches it: a crashing
# engine or an OOM kill, made repeatable. Read once, here; unset, each step
# pays one comparison with None. A config cannot set it: the container's
# processes get the config's env, and nothing of pyrun's runs after that.
_KILL_AT = os.environ.get("PYRUN_TEST_KILL_AT") if os.environ.get("PYRUN_TEST_HOOKS") == "1" else None
# PYRUN_TEST_PAUSE_AT=<step name> makes that step wait a second instead: a
# race window held open so a test can look into it.
_PAUSE_AT = os.environ.get("PYRUN_TEST_PAUSE_AT") if os.environ.get("PYRUN_TEST_HOOKS") == "1" else None
_RUNTIME_PID = os.getpid()  # forked stages inherit the runtime's pid
_KILL_PIPE = -1


def _arm_kill_point() -> None:
    """A stage in a new PID namespace cannot signal the runtime (it is not
    in its namespace, and pidfd_send_signal(2) refuses an ancestor's): it
    writes to a pipe a thread of the runtime reads, and the thread kills."""
    global _KILL_PIPE
    import threading

    r, _KILL_PIPE = os.pipe()  # O_CLOEXEC; the container's fds are closed before exec anyway

    def watch() -> None:
        if os.read(r, 1):
            os.kill(_RUNTIME_PID, 9)

    threading.Thread(target=watch, daemon=True).start()


if _KILL_AT is not None:
    _arm_kill_point()


def kill_point(name: str) -> None:
    """SIGKILL the runtime here (or pause) if the test hook names this step."""
    if _PAUSE_AT is not None and name == _PAUSE_AT:
        time.sleep(1)
    if _KILL_AT is not None and name == _KILL_AT:
        if os.getpid() == _RUNTIME_PID:
            os.kill(_RUNTIME_PID, 9)
        os.write(_KILL_PIPE, b"k")
        time.sleep(10)  # a stage: it dies by PR_SET_PDEATHSIG once the runtime has


class Log:
    def __init__(self) -> None:
        self.fd: int | None = None  # None: stderr only
        self.json = False
        self.debug = False

    def configure(self, path: str | None, fmt: str, debug: bool) -> None:
        self.json = fmt == "json"
        if self.json:
            # now, on the host: exec's stages write after setns(2), where the
            # container's files are all there is to import from
            from pyrun import jsonio  # noqa: F401
        self.debug = debug
        if path:
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)

    def _format(self, level: str, msg: str) -> str:
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e9):09d}Z"
        if self.json:
            from pyrun import jsonio

            return jsonio.go({"level": level, "msg": msg, "time": stamp}) + "\n"  # logrus's JSON: Go's
        return f'time="{stamp}" level={level} msg="{msg}"\n'

    def write(self, level: str, msg: str) -> None:
        if level == "debug" and not self.debug:
            return
        if self.fd is not None:
            os.write(self.fd, self._format(level, msg).encode())
        # The user sees errors and warnings on stderr as well; debug goes
        # there only when no log file was asked for.
        if self.fd is None or _LEVELS[level] >= _LEVELS["warning"]:
            prefix = "pyrun: " if level == "error" else f"pyrun: {level}: "
            try:
                os.write(2, f"{prefix}{msg}\n".encode())
            except OSError:
                pass

    def error(self, msg: str) -> None:
        self.write("error", msg)

    def warning(self, msg: str) -> None:
        self.write("warning", msg)

    def debug_msg(self, msg: str) -> None:
        if self.debug:
            self.write("debug", msg)

    def step(self, name: str) -> _Step | _NoStep:
        """``with log.step("pivot_root"):`` times one construction step;
        printed only with ``--debug``. (A class, not contextlib's
        decorator: contextlib imports collections and functools.)"""
        if _KILL_AT is not None or _PAUSE_AT is not None:
            kill_point(name)
        return _Step(self, name) if self.debug else _NO_STEP

    def close(self) -> None:
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None


class _Step:
    __slots__ = ("log", "name", "t0")

    def __init__(self, log: Log, name: str):
        self.log, self.name = log, name

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc) -> None:
        ms = (time.perf_counter() - self.t0) * 1000
        self.log.write("debug", f"step {self.name}: {ms:.2f} ms (pid {os.getpid()})")


class _NoStep:
    __slots__ = ()

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc) -> None:
        pass


_NO_STEP = _NoStep()
log = Log()


def warn(msg: str) -> None:
    log.warning(msg)


def fatal_to_stderr(msg: str) -> None:
    sys.stderr.write(f"pyrun: {msg}\n")
