"""One exception hierarchy for pyrun, mapped to process exit codes.

The CLI catches :class:`PyrunError` and prints ``str(err)`` as one line
(never a traceback) and exits with ``err.exit_code``.  runc exits 1 for
every runtime error; so do we, and subclasses exist so that library users
and tests can catch precisely.
"""

from __future__ import annotations


class PyrunError(Exception):
    """Base class: a failure that has a one-line, user-facing message."""

    exit_code = 1


class ConfigError(PyrunError):
    """The bundle's config.json is missing, unreadable, or invalid.

    ``path`` is the JSON path of the offending field (``process.args[0]``),
    or ``""`` when the problem is the file as a whole.
    """

    def __init__(self, path: str, message: str, file: str = "config.json"):
        self.path = path
        self.message = message
        where = f"{file}: {path}: " if path else f"{file}: "
        super().__init__(where + message)


class UsageError(PyrunError):
    """A command-line argument is malformed (bad id, bad signal name...)."""


class ContainerNotFound(PyrunError):
    def __init__(self, container_id: str):
        super().__init__(f"container {container_id!r} does not exist")


class ContainerExists(PyrunError):
    def __init__(self, container_id: str):
        super().__init__(f"container {container_id!r} already exists")


class InvalidState(PyrunError):
    """The operation is not allowed in the container's current status."""


def errno_text(e: OSError | int) -> str:
    """An errno as every pyrun message words it: its words, then its name
    (``Invalid argument (EINVAL)``), so that a user can look the name up in
    the syscall's man page (ERRORS). An OSError raised without an errno
    (``socket.timeout``, a message alone) keeps its own words."""
    import errno
    import os

    err = e if isinstance(e, int) else e.errno
    if not err:
        return str(e)
    return f"{os.strerror(err)} ({errno.errorcode.get(err, err)})"


def errno_text_runc(e: OSError | int) -> str:
    """An errno as runc words it (Go's ``syscall.Errno``: the lower-case
    words, no name), for the messages engines read: podman turns "no such
    file or directory" into exit status 127, "permission denied" into 126."""
    import os

    err = e if isinstance(e, int) else e.errno
    return os.strerror(err).lower() if err else str(e)


class SyscallError(PyrunError):
    """A system call failed: names the call, its argument and the errno.

    Keeps ``errno`` so that callers can react to EPERM vs ENOENT.
    """

    def __init__(self, call: str, errno: int, detail: str = ""):
        self.call = call
        self.errno = errno
        msg = f"{call}: {errno_text(errno)}"
        if detail:
            msg += f": {detail}"
        super().__init__(msg)


class ContainerFailed(PyrunError):
    """Setup inside the container's processes failed; message comes from there."""
