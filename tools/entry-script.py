"""Write the ``pyrun`` command of a virtualenv as ``python -I -S``.

Usage (``make build`` runs it after pip install)::

    .venv/bin/python tools/entry-script.py .venv/bin/pyrun

pip's console script starts the interpreter plainly, so every ``pyrun``
command an engine runs first pays for ``site``: the virtualenv's
``.pth`` files (setuptools' distutils hack), the distribution's
sitecustomize, the user site -- about 1 ms of the 8-10 ms a short command
like ``state`` costs in all. It also lets the caller's environment into a
runtime that runs as root: PYTHONPATH, PYTHONHOME, PYTHONUSERBASE (a
``sitecustomize.py`` on the caller's PYTHONPATH runs before pyrun does).

The script written here starts the same interpreter isolated (``-I``: no
PYTHON* variable, no user site, not the script's directory on sys.path)
and without ``site`` (``-S``), and puts only this environment's
site-packages on sys.path, where pyrun and its dependencies are. The
kernel passes the shebang's text after the interpreter as one argument,
so the flags are combined: ``-IS``.
"""

from __future__ import annotations

import os
import sys
import sysconfig

TEMPLATE = '''#!{python} -IS
# pyrun's command, written by tools/entry-script.py (see there): the
# interpreter isolated (-I) and without site (-S), this environment's
# site-packages put on sys.path by hand.
import sys
sys.path.extend({paths!r})
from pyrun.__main__ import main
sys.exit(main())
'''


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python tools/entry-script.py VENV/bin/pyrun\n")
        return 2
    paths = list(dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib")))
    target = argv[0]
    tmp = f"{target}.tmp"
    with open(tmp, "w") as f:
        f.write(TEMPLATE.format(python=sys.executable, paths=paths))
    os.chmod(tmp, 0o755)
    os.rename(tmp, target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
