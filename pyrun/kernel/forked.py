"""Run a piece of code in a forked child and read its answer through a pipe
(fork(2), pipe(2), _exit(2)).

Some steps must not touch the caller itself: setns(2) into another network
namespace, or a trial write to /proc/self/attr that would change our own
label. A child does them and dies; what it learnt comes back as bytes.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (create's path avoids it)
if TYPE_CHECKING:
    from typing import Callable


def run_forked(body: Callable[[], bytes]) -> tuple[int, bytes]:
    """fork(2) a child that writes ``body()`` to a pipe and _exit(2)s;
    return its wait status and all it wrote. An exception ``body`` lets
    out ends the child with status 1 and, most likely, nothing written:
    a ``body`` that has something to say about a failure returns it."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        status = 1
        try:
            os.write(w, body())
            status = 0
        except BaseException:  # noqa: BLE001 - the parent sees the status
            pass
        os._exit(status)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read()
    _, wait_status = os.waitpid(pid, 0)
    return wait_status, out
