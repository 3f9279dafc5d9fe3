"""Unprivileged users with subordinate id ranges, for rootless runs
(tests/conftest.py, tests/podman_env.py, bench/bench.py)."""

from __future__ import annotations

import os
import pwd
import subprocess


def ensure_user(name: str, subid_start: int, subid_count: int = 65536) -> pwd.struct_passwd:
    """As root: a system user ``name`` (no home, no shell) and its
    /etc/subuid and /etc/subgid ranges, for newuidmap/newgidmap."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                       check=True, capture_output=True, text=True)
        pw = pwd.getpwnam(name)
    for path in ("/etc/subuid", "/etc/subgid"):
        text = ""
        if os.path.exists(path):
            with open(path) as f:
                text = f.read()
        if not any(line.split(":")[0] == name for line in text.splitlines()):
            with open(path, "a") as f:
                f.write(f"{name}:{subid_start}:{subid_count}\n")
    return pw
