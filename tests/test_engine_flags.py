"""Every runc command line containerd's shim (through go-runc) and conmon
(podman) send is accepted by pyrun: parsed, and answered as runc would
("does not exist" for a container that does not), never a usage error.

The command lines are the shapes those programs build (go-runc's
``CreateOpts.args``, ``ExecOpts.args``, ``Kill``, ``Delete``, ``Ps``,
``Pause``, ``Resume``, ``Update``, ``List``, ``Stats``; conmon's runtime
argv for create and exec, and podman's ``--runtime-arg``/``--runtime-flag``
global flags). tests/test_containerd.py records what a real shim sends.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

GLOBAL_SHIM = ["--log", "{log}", "--log-format", "json"]          # go-runc Runc.args()
GLOBAL_SHIM_SYSTEMD = GLOBAL_SHIM + ["--systemd-cgroup"]
GLOBAL_SHIM_ROOTLESS = GLOBAL_SHIM + ["--rootless=false"]
GLOBAL_CONMON = ["--log-format=json", "--log", "{log}"]             # podman's --runtime-arg
GLOBAL_PODMAN_FLAG = GLOBAL_CONMON + ["--ignore-cgroup-limits"]   # podman --runtime-flag

COMMAND_LINES = [
    # containerd's shim: go-runc
    (GLOBAL_SHIM, ["create", "--bundle", "{bundle}", "--pid-file", "{dir}/pid", "nope"]),
    (GLOBAL_SHIM, ["create", "--bundle", "{bundle}", "--pid-file", "{dir}/pid", "--console-socket",
                   "{dir}/console.sock", "--no-pivot", "--no-new-keyring", "--preserve-fds", "1", "nope"]),
    (GLOBAL_SHIM_SYSTEMD, ["start", "nope"]),
    (GLOBAL_SHIM_ROOTLESS, ["state", "nope"]),
    (GLOBAL_SHIM, ["exec", "--pid-file", "{dir}/pid", "--detach", "--process", "{dir}/process.json", "nope"]),
    (GLOBAL_SHIM, ["exec", "--console-socket", "{dir}/console.sock", "--pid-file", "{dir}/pid", "--detach",
                   "--process", "{dir}/process.json", "nope"]),
    (GLOBAL_SHIM, ["kill", "nope", "15"]),
    (GLOBAL_SHIM, ["kill", "--all", "nope", "9"]),
    (GLOBAL_SHIM, ["delete", "nope"]),
    (GLOBAL_SHIM, ["delete", "--force", "nope"]),
    (GLOBAL_SHIM, ["ps", "--format", "json", "nope"]),
    (GLOBAL_SHIM, ["pause", "nope"]),
    (GLOBAL_SHIM, ["resume", "nope"]),
    (GLOBAL_SHIM, ["update", "--resources", "-", "nope"]),
    (GLOBAL_SHIM, ["events", "--stats", "nope"]),
    (GLOBAL_SHIM, ["list", "--format=json"]),
    # conmon's runtime argv, podman's own calls
    (GLOBAL_CONMON, ["create", "--bundle", "{bundle}", "--pid-file", "{dir}/pid", "--no-pivot",
                     "--no-new-keyring", "--console-socket", "{dir}/console.sock", "--preserve-fds", "0", "nope"]),
    (GLOBAL_PODMAN_FLAG, ["create", "--bundle", "{bundle}", "--pid-file", "{dir}/pid", "nope"]),
    (GLOBAL_CONMON, ["exec", "--pid-file", "{dir}/pid", "--process", "{dir}/process.json", "--detach",
                     "--console-socket", "{dir}/console.sock", "--preserve-fds", "0", "nope"]),
    (GLOBAL_PODMAN_FLAG, ["start", "nope"]),
    (GLOBAL_PODMAN_FLAG, ["kill", "--all", "nope", "KILL"]),
    (GLOBAL_PODMAN_FLAG, ["delete", "--force", "nope"]),
    (GLOBAL_PODMAN_FLAG, ["update", "--resources", "{dir}/resources.json", "nope"]),
    ([], ["features"]),
    ([], ["--version"]),
]


@pytest.mark.parametrize("global_flags, argv", COMMAND_LINES,
                         ids=[" ".join(a[:1] + [f for f in a if f.startswith("-")]) for _, a in COMMAND_LINES])
def test_engine_command_lines_are_accepted(tmp_path, global_flags, argv):
    d = str(tmp_path)
    bundle = os.path.join(d, "bundle")
    os.mkdir(bundle)
    with open(os.path.join(d, "process.json"), "w") as f:
        f.write('{"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}}')
    with open(os.path.join(d, "resources.json"), "w") as f:
        f.write("{}")
    subst = {"log": os.path.join(d, "log.json"), "bundle": bundle, "dir": d}
    cmd = [sys.executable, "-m", "pyrun", "--root", os.path.join(d, "state")]
    cmd += [a.format(**subst) for a in global_flags + argv]
    stdin = {"input": "{}"} if "-" in argv else {"stdin": subprocess.DEVNULL}  # update --resources -
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=d, **stdin)
    out = p.stdout + p.stderr + (open(subst["log"]).read() if os.path.exists(subst["log"]) else "")
    assert p.returncode != 2 and "Usage:" not in out and "No such option" not in out, out
    if argv[-1] == "nope" and argv[0] not in ("create", "delete"):
        assert p.returncode != 0 and "does not exist" in out, out
    elif argv[0] == "create":  # an empty bundle: the config is what is missing
        assert p.returncode == 1 and "config.json" in out, out
    elif argv[0] == "delete" and "--force" in argv:
        assert p.returncode == 0, out  # runc: --force of a missing container is not an error
    else:
        assert p.returncode in (0, 1), out
