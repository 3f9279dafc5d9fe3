"""What engines (podman, buildah, conmon, containerd) do that hand-made
bundles do not, and what they expect of a runc-compatible runtime."""

from __future__ import annotations

import os
import shutil
import subprocess



def _copy(rt, src: str, name: str) -> str:
    """A private copy of a rootfs template, owned as the template is (cp -a)."""
    dst = os.path.join(rt.dir, name)
    subprocess.run(["cp", "-a", src, dst], check=True)
    return dst


def _as_an_engine_writes_it(config):
    """A config pyrun did not write: no org.pyrun.* annotations."""
    config.pop("annotations", None)
    return config


def test_rootfs_that_is_a_mount_point_is_written_directly(rootful):
    """An engine mounts the container's own writable layer at root.path and
    expects the writes there (podman diff, commit, a build's RUN step)."""
    layer = _copy(rootful, rootful.rootfs["busybox"], "layer")
    subprocess.run(["mount", "--bind", layer, layer], check=True)
    try:
        config = _as_an_engine_writes_it(rootful.config(["sh", "-c", "echo kept > /marker"]))
        config["root"] = {"path": layer, "readonly": False}
        p = rootful("run", "-b", rootful.bundle(config=config), "c1")
        assert p.returncode == 0, p.stderr
        with open(os.path.join(layer, "marker")) as f:
            assert f.read() == "kept\n"
    finally:
        subprocess.run(["umount", layer], check=True)


def test_a_plain_rootfs_directory_of_an_engine_is_written_directly(rt):
    """podman's vfs driver (rootless, no overlay) gives a plain directory:
    no heuristic may put an overlay in front of it (issue 13)."""
    layer = _copy(rt, rt.rootfs["busybox"], "vfs-layer")
    config = _as_an_engine_writes_it(rt.config(["sh", "-c", "echo kept > /marker; echo $$"]))
    config["root"] = {"path": layer, "readonly": False}
    p = rt("run", "-b", rt.bundle(config=config), "c1")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "1", "no init in front of the entrypoint"
    with open(os.path.join(layer, "marker")) as f:
        assert f.read() == "kept\n"


def test_a_plain_rootfs_directory_is_never_modified(rt):
    p = rt("run", "-b", rt.bundle(config=_writable(rt.config(["sh", "-c", "echo x > /marker"]))), "c1")
    assert p.returncode == 0, p.stderr
    assert not os.path.exists(os.path.join(rt.rootfs["busybox"], "marker"))


def _writable(config):
    config["root"]["readonly"] = False
    return config


def test_an_init_given_by_the_engine_is_pid_1(rootful):
    """podman --init puts catatonit first: pyrun's init is not stacked on it
    (the config has no org.pyrun.init: nothing is guessed from the name)."""
    rootfs = _copy(rootful, rootful.rootfs["hello"], "init-rootfs")
    shutil.copy(os.path.join(rootfs, "hello"), os.path.join(rootfs, "catatonit"))
    config = _as_an_engine_writes_it(rootful.config(["/catatonit", "pid"], rootfs="hello"))
    config["root"]["path"] = rootfs
    p = rootful("run", "-b", rootful.bundle(config=config), "c1")
    assert p.returncode == 0 and p.stdout.strip() == "1", p.stdout + p.stderr


def test_root_mapped_to_another_host_uid_reaches_its_state(rootful):
    """podman --uidmap 0:200000:65536: the container's processes are host
    uid 200000 and must still reach their state dir under a root-owned root."""
    rootfs = os.path.join(rootful.dir, "mapped-rootfs")
    shutil.copytree(rootful.rootfs["busybox"], rootfs, symlinks=True)
    subprocess.run(["chown", "-R", "200000:200000", rootfs], check=True)
    config = rootful.config(["sh", "-c", "cat /proc/self/uid_map; echo hi > /tmp/f && cat /tmp/f"])
    config["root"] = {"path": rootfs, "readonly": False}
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    p = rootful("run", "-b", rootful.bundle(config=config), "c1")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["0", "200000", "65536", "hi"], p.stdout


def test_root_of_a_user_namespace_set_up_by_the_engine(rt):
    """Rootless podman runs its runtime as uid 0 of a user namespace it made,
    with no user namespace in config.json: that is enough, as with runc."""
    if not rt.rootless:
        import pytest

        pytest.skip("rootless only")
    config = rt.config(["/hello", "uid"], rootfs="hello")
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != "user"]
    config["linux"].pop("uidMappings", None)
    config["linux"].pop("gidMappings", None)
    bundle = rt.bundle(config=config)
    p = subprocess.run(["unshare", "--user", "--map-root-user", "--"] + rt.cmd("run", "-b", bundle, "c1"),
                       capture_output=True, text=True, env=rt.env, cwd=rt.dir, timeout=60,
                       stdin=subprocess.DEVNULL, **rt._user_kw())
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["0", "0"]


def test_delete_force_of_a_missing_container_is_silent(rt):
    p = rt("delete", "--force", "never-was")
    assert p.returncode == 0 and p.stderr == ""
    p = rt("delete", "never-was")
    assert p.returncode == 1 and "does not exist" in p.stderr
