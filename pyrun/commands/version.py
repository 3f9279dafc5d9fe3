"""``pyrun --version``: runc's lines, so that engines and tools that read
``runc --version`` (the first line, ``NAME version X``; ``spec:``; the
library versions) read pyrun's the same way::

    pyrun version 0.1.0
    commit: 99f3838
    spec: 1.3.0
    python: 3.11.2
    libseccomp: 2.5.4

``commit`` is what ``git describe`` said when the package was built
(setup.py writes it next to pyrun-init), ``unknown`` without it; where runc
names its Go, pyrun names its Python.
"""

from __future__ import annotations

import os
import sys

from pyrun import OCI_VERSION, __version__


def _commit() -> str:
    try:
        with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "_bin", "commit")) as f:
            return f.read().strip() or "unknown"
    except OSError:
        return "unknown"


def _libseccomp() -> str:
    """The version of the libseccomp pyrun's native module runs with,
    "2.5.4" (seccomp_version(3)). From the module itself, not through
    pyrun.security.seccomp, whose filter compiler's imports cost 3 ms more."""
    from pyrun._native import ffi, lib

    buf = ffi.new("char[]", 32)
    lib.pyrun_seccomp_version(buf, 32)
    return ffi.string(buf).decode()


def text() -> str:
    lines = [f"pyrun version {__version__}", f"commit: {_commit()}", f"spec: {OCI_VERSION}",
             f"python: {sys.version.split()[0]}"]
    try:
        lines.append(f"libseccomp: {_libseccomp()}")
    except (ImportError, OSError):  # no compiled module (a checkout without a build)
        pass
    return "\n".join(lines) + "\n"
