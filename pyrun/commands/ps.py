"""``pyrun ps ID [PS-ARGS...]``: ps(1) on the host, its table kept to the
container's processes, as runc's ps does.

The arguments after the id go to ps(1) as they are (``-ef`` without any:
``ps ID -e -o pid,comm,args``); the header line is printed, then each line
whose PID column names a process of the container. ``--format json`` is
the list of their host pids, as runc's (``[1234,1240]``, ``null`` for
none: Go's encoding of an empty slice).
"""

from __future__ import annotations

import os

from pyrun.errors import PyrunError


def json_line(pids: list[int]) -> str:
    from pyrun import jsonio

    return jsonio.go(pids or None)


def table(pids: list[int], args: list[str]) -> list[str]:
    """Run ps(1) with ``args`` (default ``-ef``); its header and the lines
    of ``pids``. Its stderr is part of its output, as runc reads it; a ps
    that fails is ``exit status N: what it printed``."""
    code, output = _run(["ps", *(args or ["-ef"])])
    if code != 0:
        how = f"exit status {code}" if code > 0 else f"signal: {-code}"
        raise PyrunError(f"{how}: {output}")
    lines = output.split("\n")
    try:
        column = lines[0].split().index("PID")
    except ValueError:
        raise PyrunError("couldn't find PID field in ps output") from None
    wanted = set(pids)
    out = [lines[0]]
    for line in lines[1:]:
        if not line:
            continue
        fields = line.split()
        try:
            pid = int(fields[column])
        except (IndexError, ValueError):
            raise PyrunError(f"unable to parse pid: {line!r}") from None
        if pid in wanted:
            out.append(line)
    return out


def _run(argv: list[str]) -> tuple[int, str]:
    """``argv`` run with stdin /dev/null and stdout and stderr into one pipe
    (Go's CombinedOutput, as runc runs ps); its exit code (-N: killed by
    signal N) and its output. posix_spawnp(3) rather than subprocess, whose
    import (locale, re, enum, threading, selectors) takes longer than runc's
    whole ``ps``; like subprocess's close_fds, no fd of ours but the pipe
    reaches ps (every fd above 2 made close-on-exec first)."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:  # no /proc: every fd there can be
        fds = list(range(os.sysconf("SC_OPEN_MAX")))
    for fd in fds:
        if fd > 2:
            try:
                os.set_inheritable(fd, False)
            except OSError:  # not open (listdir's own fd, closed by now)
                pass
    r, w = os.pipe()
    try:
        pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_DUP2, w, 2)])
    except FileNotFoundError:
        os.close(r)
        raise PyrunError(f'exec: "{argv[0]}": executable file not found in $PATH') from None
    finally:
        os.close(w)
    chunks = []
    while data := os.read(r, 65536):
        chunks.append(data)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode(errors="replace")
