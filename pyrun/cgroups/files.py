"""The files of a cgroup directory, as every backend (v1, v2, systemd) reads
and writes them: one value a file, flat-keyed files (``memory.events``),
directories made with their parents and removed with retries, and the rule
for a container that gets no cgroup (fine without limits, else an error
naming the first limit).

Apart from the package's ``__init__`` (the interface the host calls, which
picks a backend) so that the backends import this and not the module that
imports them.
"""

from __future__ import annotations

import os


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, value: str) -> None:
    """One write(2) of the whole value: cgroup files take one value a write."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _flat(text: str) -> dict[str, int]:
    """A flat-keyed cgroup file ("key value" lines: memory.stat, cpu.stat)."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def _mkdirs(top: str, target: str, before=None, after=None) -> None:
    """mkdir(2) each level from ``top`` (an existing hierarchy root) down to
    ``target``; a level that exists already is fine. ``before(parent)`` runs
    ahead of each mkdir (v2 enables controllers there), ``after(parent,
    level)`` behind it (v1 copies cpuset's cpus and mems)."""
    from pyrun.errors import PyrunError, errno_text

    level = top
    for part in os.path.relpath(target, top).split("/"):
        parent, level = level, os.path.join(level, part)
        if before is not None:
            before(parent)
        try:
            os.mkdir(level, 0o755)
        except FileExistsError:
            pass
        except OSError as e:
            raise PyrunError(f"cgroup: mkdir {level}: {errno_text(e)}") from None
        if after is not None:
            after(parent, level)


def _rmdir(path: str, deadline: float) -> None:
    """rmdir(2) of a cgroup, its sub-cgroups first (``exec --cgroup``'s, or
    the container's own: runc removes them too): EBUSY until the kernel has
    let go of the last (dying) process, so it is retried until ``deadline``
    (time.monotonic)."""
    import errno
    import time

    from pyrun.errors import PyrunError, errno_text

    try:
        subs = [e.path for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return
    except OSError as e:
        raise PyrunError(f"cgroup: read {path}: {errno_text(e)}") from None
    for sub in subs:
        _rmdir(sub, deadline)
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                raise PyrunError(f"cgroup: rmdir {path}: {errno_text(e)}") from None
            time.sleep(0.01)


def without_limits(items, reason: str, ignore_limits: bool) -> None:
    """No cgroup for this container: fine without limits; with limits, the
    first one's field and ``reason``, unless the caller said to ignore them."""
    from pyrun.errors import ConfigError
    from pyrun.log import log

    if items and not ignore_limits:
        raise ConfigError(items[0].path, f"cannot apply cgroup limits: {reason}; or run without "
                          "them: pyrun --ignore-cgroup-limits, or annotation org.pyrun.cgroups=ignore-limits")
    if items:
        # asked for: a debug note, not a warning on the container's
        # stderr (create's stderr is the container's, as in runc)
        log.debug_msg(f"cgroup limits ignored: {reason}")
    return None
