"""What ``pyrun run`` of a third-party bundle loads and leaves, rootful and rootless.

A config as ``runc spec`` writes it names no seccomp filter, no LSM label
and (rootless) no limit: the host side must not import the modules of
those concerns (each import is paid on every container start, whose
budget is runc's whole run), and a module both the host and stage 1 need
is imported once, before fork(2), not in each. ``-X importtime`` is
inherited through fork: the lines of every pyrun process of the run are
on its stderr.
"""

from __future__ import annotations

import os
import subprocess

CGROUP_V2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def _third_party(rt) -> dict:
    """rt's config as ``runc spec [--rootless]`` has it: no seccomp, no
    pyrun annotation, no label; rootless, no linux.resources."""
    c = rt.config(["/hello", "true"], "hello")
    c["linux"].pop("seccomp", None)
    c.pop("annotations", None)
    for key in ("apparmorProfile", "selinuxLabel"):
        c["process"].pop(key, None)
    c["linux"].pop("mountLabel", None)
    if rt.rootless:
        c["linux"].pop("resources", None)
    return c


def _imports(rt, *args) -> list[str]:
    kw = dict(env=rt.env, cwd=rt.dir, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
              **rt._user_kw())
    p = subprocess.run([rt.prefix[0], "-X", "importtime", *rt.prefix[1:], "--root", rt.root, *args], **kw)
    rest = [line for line in p.stderr.splitlines() if not line.startswith("import time:")]
    assert p.returncode == 0, "\n".join(rest)
    return [line.split("|")[-1].strip() for line in p.stderr.splitlines() if line.startswith("import time:")]


def test_a_runc_spec_run_imports_only_what_its_config_uses(rt):
    modules = _imports(rt, "run", "-b", rt.bundle(config=_third_party(rt)), f"rp-{os.getpid()}")
    assert modules.count("pyrun.stages.pid1") == 1, "host and stage 1 share one import of pid1"
    for unused in ("pyrun.security.seccomp", "pyrun.security.lsm", "pyrun.kernel.forked", "pyrun.net.bridge",
                   "pyrun.net.slirp"):
        assert unused not in modules, unused
    if not rt.rootless:
        assert "pyrun.kernel.idmap" not in modules  # no user namespace: no maps to write
    elif not CGROUP_V2:
        assert "pyrun.cgroups.convert" not in modules  # no cgroup of its own on v1, and no limit to refuse
    assert "pyrun.container.teardown" in modules  # run's delete: imported once it is needed, still


def test_run_as_a_library_reaps_every_child(rt):
    """``run`` reaps stage 1 after start (its exit overlaps start): once
    run returns, no child of the caller is left, not even a zombie."""
    code = ("import os, sys\n"
            "from pyrun.container.lifecycle import run\n"
            "status = run(sys.argv[1], sys.argv[2], sys.argv[3])\n"
            "try:\n"
            "    left = os.waitpid(-1, os.WNOHANG)\n"
            "except ChildProcessError:\n"
            "    left = None\n"
            "print(status, left)\n")
    bundle = rt.bundle(config=_third_party(rt))
    p = subprocess.run([rt.prefix[0], "-c", code, rt.root, f"rl-{os.getpid()}", bundle], env=rt.env,
                       cwd=rt.dir, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                       **rt._user_kw())
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["0", "None"]
