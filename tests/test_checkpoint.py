"""``pyrun checkpoint`` / ``restore`` on the host: what is refused before
CRIU runs (bad flags, rootless, a container that is not there), each in one
line. The dumps themselves are tested in the VM (test_checkpoint_vm.py):
this host's kernel is newer than Debian's CRIU 3.17 knows."""

from __future__ import annotations

import pytest


def _one_line(p, *words):
    assert p.returncode != 0, p.stdout
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    for w in words:
        assert w in p.stderr, p.stderr


def _run_runc_style(rootful, cid: str) -> None:
    """``run -d`` of ``sleep 60`` with runc's defaults (no init in front, the
    bundle's root itself): what CRIU can dump."""
    import subprocess

    config = rootful.config(["sleep", "60"])
    config["annotations"] = {}
    rootful.ok("run", "-d", "-b", rootful.bundle(config=config), cid,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_rootless_is_refused_with_the_reason(rt):
    if not rt.rootless:
        pytest.skip("rootless only")
    rt.ok("run", "-d", "-b", rt.bundle(["sleep", "60"]), "c1")
    _one_line(rt("checkpoint", "--image-path", f"{rt.dir}/img", "c1"), "needs root", "CRIU")
    assert rt.state("c1")["status"] == "running"
    _one_line(rt("restore", "--image-path", f"{rt.dir}/img", "-b", rt.bundle(["true"]), "c2"), "needs root")
    rt.ok("delete", "-f", "c1")


@pytest.mark.parametrize("args, words", [
    (["checkpoint", "--manage-cgroups-mode", "bogus", "c1"], ["--manage-cgroups-mode"]),
    (["checkpoint", "--lazy-pages", "c1"], ["--lazy-pages", "not supported"]),
    (["checkpoint", "--page-server", "1.2.3.4:5", "c1"], ["--page-server", "not supported"]),
    (["checkpoint", "--empty-ns", "pid", "c1"], ["--empty-ns"]),
    (["checkpoint", "nosuch"], ["nosuch"]),
    (["restore", "--lazy-pages", "c1"], ["--lazy-pages"]),
    (["restore", "--image-path", "/nonexistent/img", "c1"], ["--image-path", "/nonexistent/img"]),
])
def test_bad_arguments_are_one_line(rootful, args, words):
    _one_line(rootful(*args), *words)


def test_a_missing_id_is_a_usage_error(rootful):
    p = rootful("checkpoint")
    assert p.returncode == 2 and "CONTAINER_ID" in p.stderr, p.stderr


def test_help_and_features_name_the_commands(rootful):
    out = rootful.ok("--help")
    assert "checkpoint" in out and "restore" in out
    assert "org.pyrun.checkpoint" in rootful.ok("features")


def _criu_works() -> bool:
    import subprocess

    try:
        return subprocess.run(["criu", "check"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def test_a_failed_checkpoint_leaves_the_container_running(rootful):
    """Where CRIU cannot run (this host's kernel 6.18 and CRIU 3.17: ``criu
    check`` fails on the vDSO), the dump fails: one line naming CRIU's step,
    its error and its log, and the container runs on, its record intact.
    Refused before CRIU, a container whose PID 1 is pyrun's memfd init."""
    import subprocess

    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    rootful.ok("run", "-d", "--init", "-b", rootful.bundle(["sleep", "60"]), "c1", **quiet)
    p = rootful("checkpoint", "--image-path", f"{rootful.dir}/img0", "c1")
    _one_line(p, "--no-init", "memfd")
    assert rootful.state("c1")["status"] == "running"
    if _criu_works():
        pytest.skip("CRIU works here: its failures are tested in the VM (test_checkpoint_vm.py)")
    _run_runc_style(rootful, "c2")
    p = rootful("checkpoint", "--image-path", f"{rootful.dir}/img", "c2")
    _one_line(p, "criu dump failed", f"{rootful.dir}/img/dump.log")
    assert rootful.state("c2")["status"] == "running"
    rootful.ok("delete", "-f", "c1")
    rootful.ok("delete", "-f", "c2")


def test_restoring_a_terminal_needs_a_console_socket_that_answers(rootful):
    """process.terminal: a detached restore without --console-socket is
    refused (runc's rule, and create's), and so is a socket nobody listens
    on, before anything is made: one line each, no state left. (The pty
    itself goes through CRIU, and the foreground relay: tested in the VM.)"""
    import os

    images = os.path.join(rootful.dir, "img")
    os.mkdir(images)
    open(os.path.join(images, "inventory.img"), "w").close()
    config = rootful.config(["sh"])
    config["process"]["terminal"] = True
    config["annotations"] = {}
    bundle = rootful.bundle(config=config)
    _one_line(rootful("restore", "-d", "--image-path", images, "-b", bundle, "c1"), "--console-socket", "terminal")
    _one_line(rootful("restore", "-d", "--console-socket", os.path.join(rootful.dir, "nobody.sock"),
                      "--image-path", images, "-b", bundle, "c1"), "--console-socket", "nobody.sock")
    assert rootful("state", "c1").returncode != 0
    _one_line(rootful("restore", "-d", "--console-socket", os.path.join(rootful.dir, "x.sock"), "--image-path",
                      images, "-b", rootful.bundle(config={**config, "process": {**config["process"],
                                                                                 "terminal": False}}), "c1"),
              "--console-socket", "no terminal")


def test_a_criu_that_cannot_start_leaves_the_container_running(rootful, tmp_path):
    """``criu`` missing or not executable (here an empty file bound over it,
    in a mount namespace of the test's own): checkpoint says so in one line,
    naming the binary, and the container runs on, its record intact."""
    import os
    import subprocess

    _run_runc_style(rootful, "c4")
    try:
        fake = tmp_path / "criu"
        fake.write_text("")
        criu = "/usr/sbin/criu" if os.path.exists("/usr/sbin/criu") else None
        if criu is None:
            cmd = rootful.cmd("checkpoint", "--image-path", str(tmp_path / "img"), "c4")
        else:
            cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                   'mount --bind "$0" /usr/sbin/criu && exec "$@"', str(fake),
                   *rootful.cmd("checkpoint", "--image-path", str(tmp_path / "img"), "c4")]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=rootful.env, cwd=rootful.dir,
                           stdin=subprocess.DEVNULL)
        _one_line(p, "criu")
        assert rootful.state("c4")["status"] == "running"
    finally:
        rootful.ok("delete", "-f", "c4")


def test_a_symlink_planted_in_the_image_dir_is_not_followed(rootful, tmp_path):
    """--image-path may be a directory another user made first: pyrun's own
    files there (descriptors.json) are never opened through a symlink
    planted in their place; the file it points to stays as it was, and
    the container runs on."""
    import os

    _run_runc_style(rootful, "c5")
    try:
        images = tmp_path / "img"
        images.mkdir()
        victim = tmp_path / "victim"
        victim.write_text("precious\n")
        os.symlink(victim, images / "descriptors.json")
        p = rootful("checkpoint", "--image-path", images, "c5")
        _one_line(p, "descriptors.json", "ELOOP")
        assert victim.read_text() == "precious\n"
        assert rootful.state("c5")["status"] == "running"
    finally:
        rootful.ok("delete", "-f", "c5")
