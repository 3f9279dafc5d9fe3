"""The click-free fast path takes only the exact forms it knows; anything
else falls through to the full CLI (pure logic, and one import check)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pyrun import fastpath


@pytest.mark.parametrize("argv, ours", [
    (["state", "c1"], True),
    (["--root", "/r", "--log-format=json", "--log", "/l", "state", "c1"], True),
    (["kill", "--all", "c1", "9"], True),
    (["delete", "-f", "c1"], True),
    (["create", "--bundle", "/b", "--pid-file", "/p", "--console-socket", "/s", "c1"], True),
    (["run", "-d", "-b", "/b", "c1"], True),
    (["state", "--help"], False),
    (["--help"], False),
    (["state"], False),
    (["state", "a", "b"], False),
    (["create", "--bundle"], False),
    (["create", "--rootfs-mode", "direct", "c1"], False),
    (["exec", "c1", "true"], False),
    (["--log-format", "xml", "state", "c1"], False),
    (["create", "--preserve-fds", "x", "c1"], False),
])
def test_fast_path_takes_only_what_it_knows(argv, ours, monkeypatch):
    seen = []
    monkeypatch.setattr(fastpath, "_dispatch", lambda *a: seen.append(a) or 0)
    monkeypatch.setattr("pyrun.log.log.configure", lambda *a: None)
    assert (fastpath.main(argv) is not None) == ours
    assert bool(seen) == ours


def test_state_and_version_do_not_import_click(tmp_path):
    for argv in (["--version"], ["--root", str(tmp_path), "state", "nope"]):
        p = subprocess.run([sys.executable, "-X", "importtime", "-m", "pyrun", *argv],
                           capture_output=True, text=True, cwd=tmp_path)
        assert " click" not in p.stderr and "pyrun.spec" not in p.stderr, argv
