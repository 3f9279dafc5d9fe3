"""``exec --cgroup`` (runc 1.2+): the process starts in an existing
sub-cgroup of the container's, not in the container's own.

runc's forms, repeatable:

* ``--cgroup PATH`` (alone): the same sub-cgroup in every hierarchy (cgroup
  v2's one; on a v1 or hybrid host, each v1 hierarchy's and the cgroup2
  tree's);
* ``--cgroup CTRL[,CTRL...]:PATH``: cgroup v1, that sub-cgroup for those
  controllers' hierarchies; the others keep the container's own.

``PATH`` is relative to the container's cgroup (``/`` is the container's
own); one that leads out of it (``..``) is refused in runc's words (``..
is not a sub cgroup path``; runc 1.2: ``bad sub cgroup path``), and the
sub-cgroup must exist (runc does not make it).
"""

from __future__ import annotations

import os

from pyrun.errors import UsageError


def parse(args: list[str]) -> dict[str, str]:
    """Controller -> sub-cgroup path ("" for the single-path form), with
    runc's errors for a malformed list."""
    paths: dict[str, str] = {}
    for arg in args:
        ctrls, colon, path = arg.partition(":")
        if not colon:
            if len(args) != 1:
                raise UsageError(f"invalid --cgroup argument: {arg} (missing <controller>: prefix)")
            paths[""] = arg
            continue
        for ctrl in ctrls.split(","):
            if not ctrl:
                raise UsageError(f"invalid --cgroup argument: {arg} (empty <controller> prefix)")
            if ctrl in paths:
                raise UsageError(f"invalid --cgroup argument(s): controller {ctrl} specified multiple times")
            paths[ctrl] = path
    return paths


def _inside(base: str, sub: str) -> str:
    """``base``/``sub``, which must be ``base`` or below it."""
    path = os.path.normpath(os.path.join(base, sub.lstrip("/")))
    if path != base.rstrip("/") and not path.startswith(base.rstrip("/") + "/"):
        # runc 1.1's words, after runc 1.2's
        raise UsageError(f"bad sub cgroup path: {sub} is not a sub cgroup path")
    return path


def _existing(path: str, args: list[str]) -> str:
    if not os.path.isfile(os.path.join(path, "cgroup.procs")):
        raise UsageError(f"--cgroup {' '.join(args)}: adding pid to cgroups: "
                         f"{os.path.join(path, 'cgroup.procs')}: no such file or directory (the sub-cgroup "
                         "must exist)")
    return path


def sub_cgroup(record: str, args: list[str]) -> str:
    """The cgroup record (pyrun.cgroups.open_cgroup's argument) the process
    goes to; an error names ``--cgroup``."""
    from pyrun import cgroups

    paths = parse(args)
    if not record:
        raise UsageError(f"--cgroup {args[0]}: the container has no cgroup of its own")
    container = cgroups.directory_of(record)
    if cgroups.available() or ("\n" not in container and os.path.exists(os.path.join(container,
                                                                                    "cgroup.controllers"))):
        # cgroup v2: one directory
        if "" not in paths:
            raise UsageError(f"--cgroup {args[0]}: a controller prefix names a cgroup v1 hierarchy; "
                             "with cgroup v2 give the sub-cgroup's path only")
        return _existing(_inside(container, paths[""]), args)
    if container != record:
        raise UsageError(f"--cgroup {args[0]}: the container's cgroup is a systemd unit: "
                         "pyrun's --cgroup takes a cgroupfs sub-cgroup only")
    return "\n".join(_v1_dirs(container, paths, args))


def _v1_dirs(record: str, paths: dict[str, str], args: list[str]) -> list[str]:
    """Each hierarchy's directory: the sub-cgroup its controller names (or
    the single path's), else the container's own."""
    from pyrun.cgroups.v1 import UNIFIED, Cgroup

    cg = Cgroup.from_record(record)
    if not cg.dirs:
        raise UsageError(f"--cgroup {' '.join(args)}: the container's cgroup {record} is in no mounted hierarchy")
    mounted = {c for ctrls in (cg.mounts or {}).values() for c in ctrls}
    for ctrl in paths:
        if ctrl and ctrl not in mounted:
            raise UsageError(f"--cgroup: unknown controller {ctrl}")
    out = []
    for mnt, d in cg.dirs.items():
        ctrls = cg.mounts[mnt]
        sub = paths.get("")
        if sub is None:
            named = [paths[c] for c in sorted(ctrls) if c in paths and c != UNIFIED]
            sub = named[0] if named else None
        out.append(d if sub is None else _existing(_inside(d, sub), args))
    return out
