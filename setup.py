"""Build steps that pyproject.toml cannot express.

* ``cffi_modules`` compiles ``native/shim.c`` into ``pyrun._native`` (cffi API
  mode: the C compiler checks every declaration at install time).
* ``build_py`` also compiles ``native/init.c`` into a *static* executable,
  ``pyrun/_bin/pyrun-init``: it makes every container's last execve(2) and
  is executed from a memfd after ``pivot_root``, so it may not depend on
  anything in the rootfs. With musl (``musl-gcc``, Debian's musl-tools) it
  is 26 KB; with glibc's static libc, 700 KB. Every container copies it
  into a memfd and executes it (and keeps it resident as PID 1 with an
  init): the small one starts about 1.5 ms sooner and weighs less. ``PYRUN_INIT_CC`` chooses the compiler; without musl,
  ``CC`` (or cc) is used.
* ``build_py`` writes ``pyrun/_bin/commit``: ``git describe`` of the
  checkout, the ``commit:`` line of ``pyrun --version`` (runc's).
"""

import os
import shlex
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildPyWithInit(build_py):
    def run(self):
        super().run()
        out_dir = os.path.join(self.build_lib, "pyrun", "_bin")
        os.makedirs(out_dir, exist_ok=True)
        cc = os.environ.get("PYRUN_INIT_CC") or shutil.which("musl-gcc") or os.environ.get("CC", "cc")
        cc = shlex.split(cc)
        cmd = cc + ["-static", "-Os", "-s", "-Wall", "-Wextra", "-o",
                    os.path.join(out_dir, "pyrun-init"),
                    os.path.join(HERE, "native", "init.c")]
        self.announce(" ".join(cmd), level=2)
        subprocess.check_call(cmd)
        with open(os.path.join(out_dir, "commit"), "w") as f:
            f.write(_commit() + "\n")


def _commit() -> str:
    try:
        return subprocess.run(["git", "-C", HERE, "describe", "--always", "--dirty"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


setup(
    cffi_modules=["pyrun/_build_native.py:ffibuilder"],
    cmdclass={"build_py": BuildPyWithInit},
)
