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
    (["create", "--rootfs-mode", "direct", "--no-init", "--network=none", "c1"], True),
    (["create", "--rootfs-mode", "sideways", "c1"], False),
    (["create", "--network", "carrier-pigeon", "c1"], False),
    (["create", "--init", "--no-init", "c1"], False),
    (["exec", "c1", "true"], True),
    (["exec", "-t", "-e", "A=1", "--user", "1:2", "-g", "5", "c1", "sh", "-c", "x"], True),
    (["exec", "-td", "c1", "true"], False),  # combined short flags: click's
    (["exec", "-g", "wheel", "c1", "true"], False),
    (["exec", "--tty"], False),
    (["--log-format", "xml", "state", "c1"], False),
    (["create", "--preserve-fds", "x", "c1"], False),
])
def test_fast_path_takes_only_what_it_knows(argv, ours, monkeypatch):
    seen = []
    monkeypatch.setattr(fastpath, "_dispatch", lambda *a: seen.append(a) or 0)
    monkeypatch.setattr("pyrun.log.log.configure", lambda *a: None)
    assert (fastpath.main(argv) is not None) == ours
    assert bool(seen) == ours


def _parsed(monkeypatch, argv):
    seen = []
    monkeypatch.setattr(fastpath, "_dispatch", lambda *a: seen.append(a) or 0)
    monkeypatch.setattr("pyrun.log.log.configure", lambda *a: None)
    assert fastpath.main(argv) == 0
    _root, command, opts, pos, _preserve, _ignore = seen[0]
    return command, opts, pos


def test_exec_options_stop_at_the_id(monkeypatch):
    command, opts, pos = _parsed(monkeypatch, ["exec", "-e", "A=1", "--env=B=2", "-c", "CAP_NET_ADMIN",
                                               "-g", "5", "--additional-gids", "6", "-t", "c1",
                                               "ls", "-l", "--color", "-e", "x"])
    assert command == "exec" and pos == ["c1", "ls", "-l", "--color", "-e", "x"]
    assert opts == {"--env": ["A=1", "B=2"], "--cap": ["CAP_NET_ADMIN"], "--additional-gids": ["5", "6"],
                    "--tty": True}


def test_aliases_and_repeated_publish(monkeypatch):
    _command, opts, pos = _parsed(monkeypatch, ["run", "-b", "/b", "-p", "80:80", "--publish", "8080:80/udp",
                                               "-d", "--no-init", "c1"])
    assert opts == {"--bundle": "/b", "--publish": ["80:80", "8080:80/udp"], "--detach": True, "--no-init": True}
    assert pos == ["c1"]


def test_state_and_version_do_not_import_click(tmp_path):
    for argv, spec in ((["--version"], False), (["--root", str(tmp_path), "state", "nope"], False),
                       (["--root", str(tmp_path), "exec", "nope", "true"], None)):
        p = subprocess.run([sys.executable, "-X", "importtime", "-m", "pyrun", *argv],
                           capture_output=True, text=True, cwd=tmp_path)
        assert " click" not in p.stderr, argv
        if spec is False:
            assert "pyrun.spec" not in p.stderr, argv
            assert "pyrun.container" not in p.stderr, argv  # state reads through pyrun.state alone
