"""Input an attacker controls, bounded (issue 22 items 9-12, issue 23 items 2, 9, 10).

The bundle's owner can make config.json a device, a FIFO or a huge file;
a console-socket receiver can refuse to accept or close at once; a seccomp
profile can name a system call libseccomp does not know; a config can ask
for device nodes, cgroup mounts and a /dev that the host must not give.
Each test was watched failing on the code before its fix; where runc is
installed it runs the same scenario beside pyrun and pyrun must match it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid

import pytest
from test_attacks import one_line
from test_runc_semantics import RUNC, Bundles

MiB = 1 << 20


@pytest.fixture
def rb(rt):
    b = Bundles(rt)
    yield b
    b.cleanup()


def _cid() -> str:
    return f"h-input-{uuid.uuid4().hex[:10]}"


# ----------------------------------------------- 22.9 config.json is bounded input

def _bundle_with_config(rt, make) -> str:
    """A bundle whose config.json is what ``make(path)`` puts there."""
    b = rt.bundle(["true"])
    path = os.path.join(b, "config.json")
    os.unlink(path)
    make(path)
    return b


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "directory"])
def test_config_json_that_is_not_a_regular_file_is_refused_at_once(rt, residue, rb, kind):
    def make(path):
        if kind == "dev-zero":
            os.symlink("/dev/zero", path)
        elif kind == "fifo":
            os.mkfifo(path, 0o644)
        else:
            os.mkdir(path)

    b = _bundle_with_config(rt, make)
    start = time.monotonic()
    p = rt("create", "-b", b, _cid(), timeout=20)
    took = time.monotonic() - start
    assert p.returncode != 0
    line = one_line(p.stderr)
    assert "config.json" in line and "regular file" in line, line
    assert took < 5, took
    residue.check()
    if RUNC and kind == "dev-zero":  # runc's JSON decoder stops at the first NUL
        r = rb.runc("create", "-b", b, rb.cid("runc"), timeout=20)
        assert r.returncode != 0


def test_config_json_larger_than_the_limit_is_refused(rt, residue, rb):
    config = rt.config(["true"])
    config["annotations"] = {"big": "x" * (64 * MiB)}
    b = rt.bundle(config=config)
    p = rt("create", "-b", b, _cid(), timeout=30)
    assert p.returncode != 0
    line = one_line(p.stderr)
    assert "config.json" in line and "64 MiB" in line, line
    residue.check()


def test_state_does_not_reparse_large_annotations(rt):
    """Every command reads the record: a config with large annotations (up
    to the limit) must not make each later state/kill/delete parse them."""
    config = rt.config(["sleep", "60"])
    config["annotations"] = {"big": "x" * (48 * MiB), "small": "s"}
    cid = _cid()
    rt.ok("run", "-d", "-b", rt.bundle(config=config), cid, timeout=60)
    record = os.path.join(rt.root, cid, "state.json")
    assert os.path.getsize(record) < 64 * 1024, "the record carries the annotations"
    state = rt.state(cid)
    assert state["annotations"]["small"] == "s" and len(state["annotations"]["big"]) == 48 * MiB
    rt.ok("delete", "--force", cid)
