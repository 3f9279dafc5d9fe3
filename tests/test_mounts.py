"""Mounts, namespaces joined by path, and the process's finer settings."""

from __future__ import annotations

import os
import subprocess

import pytest

from conftest import host_mounts


def run(rt, config, cid="c1", extra=()):
    return rt("run", *extra, "-b", rt.bundle(config=config), cid)


def _host_dir(rt, name):
    d = os.path.join(rt.dir, name)
    os.mkdir(d)
    if rt.rootless:
        os.chown(d, rt.uid, rt.gid)
    return d


def test_bind_mounts_rw_ro_and_file(rt):
    rw, ro = _host_dir(rt, "rw"), _host_dir(rt, "ro")
    with open(os.path.join(ro, "f"), "w") as f:
        f.write("from host")
    single = os.path.join(rt.dir, "single.txt")
    with open(single, "w") as f:
        f.write("one file")
    config = rt.config(["sh", "-c", "echo written > /data/rw/x; cat /data/ro/f; echo; "
                        "touch /data/ro/y 2>/dev/null && echo ro-writable || echo ro-refused; cat /etc/single"])
    config["mounts"] += [
        {"destination": "/data/rw", "type": "bind", "source": rw, "options": ["rbind", "rw"]},
        {"destination": "/data/ro", "type": "bind", "source": ro, "options": ["bind", "ro", "nosuid", "nodev"]},
        {"destination": "/etc/single", "type": "bind", "source": single, "options": ["bind", "ro"]},
    ]
    p = run(rt, config)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["from host", "ro-refused", "one file"]
    assert open(os.path.join(rw, "x")).read() == "written\n"
    assert not os.path.exists(os.path.join(ro, "y"))


def test_relative_bind_source_is_relative_to_the_bundle(rt):
    config = rt.config(["cat", "/data/config.json"])
    config["mounts"].append({"destination": "/data", "type": "bind", "source": ".", "options": ["bind"]})
    p = run(rt, config)
    assert p.returncode == 0, p.stderr
    assert '"ociVersion"' in p.stdout


def test_tmpfs_with_data_options(rt):
    config = rt.config(["sh", "-c", "grep ' /scratch ' /proc/mounts"])
    config["mounts"].append({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                             "options": ["nosuid", "noexec", "size=1m", "mode=700"]})
    p = run(rt, config)
    assert p.returncode == 0, p.stderr
    opts = p.stdout.split()[3].split(",")
    assert {"nosuid", "noexec", "size=1024k", "mode=700"} <= set(opts)


def test_symlinked_destination_stays_inside_the_rootfs(rt):
    """A symlink in the rootfs pointing at a host path must not make the
    mount land on the host (runc CVE-2021-30465 class)."""
    hostside = _host_dir(rt, "hostside")
    rootfs = os.path.join(rt.dir, "evil-rootfs")
    subprocess.run(["cp", "-a", rt.rootfs["busybox"], rootfs], check=True)
    os.symlink(hostside, os.path.join(rootfs, "escape"))          # absolute, to a host dir
    os.symlink("../../../../../../" + hostside.lstrip("/"), os.path.join(rootfs, "climb"))
    if rt.rootless:
        subprocess.run(["chown", "-h", f"{rt.uid}:{rt.gid}", os.path.join(rootfs, "escape"),
                        os.path.join(rootfs, "climb")], check=True)
    config = rt.config(["sh", "-c", "ls -d /escape/sub /climb/sub2 && ls " + hostside])
    config["root"]["path"] = rootfs
    config["mounts"] += [
        {"destination": "/escape/sub", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/climb/sub2", "type": "tmpfs", "source": "tmpfs"},
    ]
    before = host_mounts()
    p = run(rt, config)
    assert p.returncode == 0, p.stderr
    assert os.listdir(hostside) == []       # nothing created on the host
    assert host_mounts() == before


def test_join_namespaces_by_path(rt):
    a = rt.config(["sleep", "30"])
    if not any(n["type"] == "network" for n in a["linux"]["namespaces"]):
        a["linux"]["namespaces"].append({"type": "network"})  # rootless specs share the host's
    rt.ok("run", "-d", "-b", rt.bundle(config=a), "a")
    pid = rt.state("a")["pid"]
    config = rt.config(["sh", "-c", "readlink /proc/self/ns/net; readlink /proc/self/ns/ipc"])
    config.pop("hostname")
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] not in ("network", "ipc", "uts")]
    config["linux"]["namespaces"] += [{"type": "network", "path": f"/proc/{pid}/ns/net"},
                                      {"type": "ipc", "path": f"/proc/{pid}/ns/ipc"}]
    if rt.rootless:
        # namespaces owned by another user namespace can only be joined from it
        for n in config["linux"]["namespaces"]:
            if n["type"] == "user":
                n["path"] = f"/proc/{pid}/ns/user"
        config["linux"].pop("uidMappings")
        config["linux"].pop("gidMappings")
    p = run(rt, config, cid="b")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [os.readlink(f"/proc/{pid}/ns/net"), os.readlink(f"/proc/{pid}/ns/ipc")]


def test_oom_score_adj_groups_and_no_new_privileges(rt):
    config = rt.config(["sh", "-c", "cat /proc/self/oom_score_adj; grep -E '^(NoNewPrivs|Groups)' /proc/self/status"])
    config["process"]["oomScoreAdj"] = 500
    config["process"]["noNewPrivileges"] = True
    if not rt.rootless:
        config["process"]["user"] = {"uid": 0, "gid": 0, "additionalGids": [10, 20]}
    p = run(rt, config)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "500"
    assert "NoNewPrivs:\t1" in lines
    if not rt.rootless:
        assert [line for line in lines if line.startswith("Groups")][0].split()[1:] == ["10", "20"]


def test_no_pivot(rt):
    p = run(rt, rt.config(["sh", "-c", "ls /bin/busybox"]), extra=["--no-pivot"])
    assert p.returncode == 0, p.stderr


def test_preserve_fds(rt):
    r, w = os.pipe()
    # A shell wrapper puts the pipe at fd 3 for pyrun, as conmon would.
    wrapper = f"import os, sys; os.dup2({w}, 3); os.close({w}); os.execvp(sys.argv[1], sys.argv[1:])"
    cmd = [rt.prefix[0], "-c", wrapper] + rt.cmd(
        "run", "--preserve-fds", "1", "-b", rt.bundle(["sh", "-c", "echo through-fd3 >&3; hello fds"]), "c1")
    p = subprocess.run(cmd, pass_fds=(w,), capture_output=True, text=True, timeout=60, env=rt.env,
                       cwd=rt.dir, stdin=subprocess.DEVNULL, **rt._user_kw())
    os.close(w)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["0", "1", "2", "3"]
    assert os.read(r, 100) == b"through-fd3\n"
    os.close(r)


@pytest.mark.parametrize("init", ["--init", "--no-init"])
def test_listen_fds_are_passed_on_as_systemd_socket_activation(rt, init):
    """LISTEN_FDS/LISTEN_PID meant for pyrun: the fds go on to the process,
    whose env names it as their owner (sd_listen_fds(3))."""
    r, w = os.pipe()
    wrapper = (f"import os, sys; os.dup2({w}, 3); os.close({w}); os.environ['LISTEN_FDS'] = '1'; "
               "os.environ['LISTEN_PID'] = str(os.getpid()); os.execvp(sys.argv[1], sys.argv[1:])")
    script = 'echo through-listen-fd >&3; echo "$LISTEN_FDS $LISTEN_PID $$"'
    cmd = [rt.prefix[0], "-c", wrapper] + rt.cmd("run", init, "-b", rt.bundle(["sh", "-c", script]), "c1")
    p = subprocess.run(cmd, pass_fds=(w,), capture_output=True, text=True, timeout=60, env=rt.env,
                       cwd=rt.dir, stdin=subprocess.DEVNULL, **rt._user_kw())
    os.close(w)
    assert p.returncode == 0, p.stderr
    count, owner, me = p.stdout.split()
    assert count == "1" and owner == me
    assert os.read(r, 100) == b"through-listen-fd\n"
    os.close(r)
