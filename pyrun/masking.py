"""``linux.maskedPaths`` and ``linux.readonlyPaths`` (config-linux.md).

Done after pivot_root, when the paths are the container's own (its /proc
and /sys). A masked file gets /dev/null bound over it and a masked directory
an empty read-only tmpfs, so reading /proc/kcore or /proc/keys yields
nothing. A read-only path is bound onto itself and remounted read-only, so
/proc/sys and /proc/sysrq-trigger cannot be written even by root inside.
Paths that do not exist are skipped, as runc does.
"""

from __future__ import annotations

import os
import stat

from pyrun import syscalls as sc
from pyrun.mounts import remount


def mask_paths(paths: list[str]) -> None:
    for path in paths:
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(mode):
            sc.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY, None, shown=path)
        else:
            sc.mount("/dev/null", path, None, sc.MS_BIND, None, shown=path)


def readonly_paths(paths: list[str]) -> None:
    for path in paths:
        if not os.path.exists(path):
            continue
        sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC, None, shown=path)
        remount(path, sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC, shown=path)
