"""User-namespace id maps: /proc/PID/uid_map and gid_map (user_namespaces(7)).

Who may write what, and therefore how pyrun writes it:

* real root (CAP_SETUID in the parent namespace) writes any map directly;
* an unprivileged user may write, directly, only a single line mapping its
  own uid (and, after writing ``deny`` to /proc/PID/setgroups, its own gid);
* any other map needs the setuid helpers ``newuidmap``/``newgidmap`` from the
  ``uidmap`` package, which check the ranges in /etc/subuid and /etc/subgid.
"""

from __future__ import annotations

import os
import stat

from pyrun.errors import PyrunError, errno_text

Mapping = list[int]  # [container_id, host_id, size]


def _format(maps: list[Mapping]) -> str:
    return "".join(f"{c} {h} {s}\n" for c, h, s in maps)


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as e:
        raise PyrunError(f"write {path}: {errno_text(e)} (mapping {text.strip()!r})") from None


def is_privileged() -> bool:
    return os.geteuid() == 0


def single_own_id(maps: list[Mapping], own: int) -> bool:
    return len(maps) == 1 and maps[0][1] == own and maps[0][2] == 1


def _helper(name: str) -> str:
    import shutil

    path = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None)
    if path is None:
        raise PyrunError(f"{name} not found: install the uidmap package (apt-get install uidmap) "
                         "or use a single-id mapping of your own uid")
    st = os.stat(path)
    if not st.st_mode & stat.S_ISUID and not _has_file_caps(path):
        raise PyrunError(f"{path} is not setuid root: run 'chmod u+s {path}' as root")
    return path


def _has_file_caps(path: str) -> bool:
    try:
        return bool(os.getxattr(path, "security.capability"))
    except OSError:
        return False


def _run_helper(name: str, pid: int, maps: list[Mapping], subids: str) -> None:
    import subprocess

    helper = _helper(name)
    args = [helper, str(pid)] + [str(x) for m in maps for x in m]
    proc = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        detail = msg[-1] if msg else f"exit status {proc.returncode}"
        raise PyrunError(f"{name} {pid} {' '.join(args[2:])} failed: {detail} "
                         f"(check the ranges for your user in {subids})")


def write_id_maps(pid: int, uid_maps: list[Mapping], gid_maps: list[Mapping]) -> bool:
    """Write the maps of process ``pid``; returns True when setgroups(2) was denied."""
    if is_privileged():
        _write(f"/proc/{pid}/uid_map", _format(uid_maps))
        _write(f"/proc/{pid}/gid_map", _format(gid_maps))
        return False
    if single_own_id(uid_maps, os.geteuid()):
        _write(f"/proc/{pid}/uid_map", _format(uid_maps))
    else:
        _run_helper("newuidmap", pid, uid_maps, "/etc/subuid")
    if single_own_id(gid_maps, os.getegid()):
        # The kernel allows an unprivileged gid map only once setgroups is off.
        _write(f"/proc/{pid}/setgroups", "deny")
        _write(f"/proc/{pid}/gid_map", _format(gid_maps))
        return True
    _run_helper("newgidmap", pid, gid_maps, "/etc/subgid")
    return False


def host_id(maps: list[Mapping], container_id: int) -> int | None:
    """The host id that ``container_id`` maps to, or None when unmapped."""
    for c, h, s in maps:
        if c <= container_id < c + s:
            return h + container_id - c
    return None
