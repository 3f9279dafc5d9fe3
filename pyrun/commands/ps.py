"""``pyrun ps ID [PS-ARGS...]``: ps(1) on the host, its table kept to the
container's processes, as runc's ps does.

The arguments after the id go to ps(1) as they are (``-ef`` without any:
``ps ID -e -o pid,comm,args``); the header line is printed, then each line
whose PID column names a process of the container. ``--format json`` is
the list of their host pids, as runc's (``[1234,1240]``, ``null`` for
none: Go's encoding of an empty slice).
"""

from __future__ import annotations

from pyrun.errors import PyrunError


def json_line(pids: list[int]) -> str:
    from pyrun import jsonio

    return jsonio.go(pids or None)


def table(pids: list[int], args: list[str]) -> list[str]:
    """Run ps(1) with ``args`` (default ``-ef``); its header and the lines
    of ``pids``. Its stderr is part of its output, as runc reads it; a ps
    that fails is ``exit status N: what it printed``."""
    import subprocess

    try:
        p = subprocess.run(["ps", *(args or ["-ef"])], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise PyrunError('exec: "ps": executable file not found in $PATH') from None
    output = p.stdout.decode(errors="replace")
    if p.returncode != 0:
        how = f"exit status {p.returncode}" if p.returncode > 0 else f"signal: {-p.returncode}"
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
