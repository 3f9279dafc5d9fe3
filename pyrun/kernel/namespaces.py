"""Namespaces: unshare(2) new ones, setns(2) into existing ones (namespaces(7)).

The order matters and is the kernel's, not ours:

1. the user namespace first — every other namespace created after it is
   *owned* by it, which is what lets an unprivileged user create them;
2. namespaces given by ``path`` are joined with setns(2);
3. the remaining new ones are created in one unshare(2).

CLONE_NEWPID (and CLONE_NEWTIME) do not move the caller: only its next child
is PID 1 of the new namespace, which is why pyrun forks once more afterwards.
"""

from __future__ import annotations

import os

from pyrun.kernel import syscalls as sc
from pyrun.errors import PyrunError, errno_text

FLAGS = {
    "pid": sc.CLONE_NEWPID,
    "network": sc.CLONE_NEWNET,
    "mount": sc.CLONE_NEWNS,
    "ipc": sc.CLONE_NEWIPC,
    "uts": sc.CLONE_NEWUTS,
    "user": sc.CLONE_NEWUSER,
    "cgroup": sc.CLONE_NEWCGROUP,
    "time": sc.CLONE_NEWTIME,
}

# The names under /proc/PID/ns/.
PROC_NAMES = {"pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts",
              "user": "user", "cgroup": "cgroup", "time": "time"}


def open_ns(ns_type: str, path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise PyrunError(f"linux.namespaces: open {ns_type} namespace {path}: {errno_text(e)}") from None


def setns_path(ns_type: str, path: str) -> None:
    """Join the namespace at ``path``; setns checks that it is of ``ns_type``."""
    fd = open_ns(ns_type, path)
    try:
        sc.setns(fd, FLAGS[ns_type], shown=f"{ns_type} namespace {path}")
    finally:
        os.close(fd)


def unshare_user() -> None:
    sc.unshare(sc.CLONE_NEWUSER)


def unshare_rest(ns_types: list[str]) -> None:
    """One unshare(2) for all the new (path-less) namespaces but the user one."""
    flags = 0
    for t in ns_types:
        flags |= FLAGS[t]
    if flags:
        sc.unshare(flags)


def run_in_netns(netns: int, what: str, func, *args):
    """fork(2), setns(2) into the network namespace ``netns`` and return
    ``func(*args)`` (JSON-able data, through a pipe): the caller's own
    network namespace never changes. A failure there is a PyrunError
    "``what``: its message"."""
    import _signal as signal

    from pyrun import jsonio

    def body() -> bytes:
        for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(s, signal.SIG_DFL)
        try:
            sc.setns(netns, sc.CLONE_NEWNET, shown="the container's network namespace")
            return b"ok" + jsonio.dumps(func(*args)).encode()
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            import traceback

            return b"no" + (str(e) or traceback.format_exc()).encode()[:4000]

    from pyrun.kernel.forked import run_forked  # only for work in another network namespace

    status, out = run_forked(body)
    if status != 0 or out[:2] != b"ok":
        why = out[2:].decode(errors="replace") or f"the helper died (wait status {status})"
        raise PyrunError(f"{what}: {why}")
    return jsonio.loads(out[2:].decode())
