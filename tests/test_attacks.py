"""Attacks an image or a config can make on the host, each as a test.

Every test here was written before its fix and failed on the code before
it (issue 12). The image is hostile: it controls every file of the rootfs
(symlinks at /dev/null, /dev/console, the cwd) and the fields engines copy
from it (``process.cwd``). The caller is trusted to ask, not to be right:
a mount source or a root path that would expose pyrun's own state or the
host is refused with its JSON path.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import uuid

import pytest

DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
C1 = C2 = ""


@pytest.fixture(autouse=True)
def _ids():
    """Ids unique on the host: a rootful container's cgroup is named by its id."""
    global C1, C2
    C1, C2 = f"atk-{uuid.uuid4().hex[:10]}", f"atk-{uuid.uuid4().hex[:10]}"


def own_rootfs(rt, name: str = "busybox") -> str:
    """A private copy of a rootfs template, owned as the template is: the
    test may plant files in it, and direct mode writes into it."""
    rt._n += 1
    dst = os.path.join(rt.dir, f"rootfs-own-{rt._n}")
    subprocess.run(["cp", "-a", rt.rootfs[name], dst], check=True)
    return dst


def canary(rt, name: str = "canary") -> tuple[str, str]:
    """A host file only the host should ever see: (path, secret content)."""
    secret = f"HOST-SECRET-{uuid.uuid4().hex}"
    path = os.path.join(rt.dir, name)
    with open(path, "w") as f:
        f.write(secret)
    os.chmod(path, 0o644)
    return path, secret


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line of error, got: {stderr!r}"
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    return lines[0]


def snapshot(directory: str) -> dict[str, tuple]:
    """Every entry below ``directory``: type, mode, rdev, owner, content."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(directory):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            content = None
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    content = f.read()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            out[os.path.relpath(path, directory)] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                                                      st.st_rdev, st.st_uid, st.st_gid, content)
    return out


def fake_host_dev(rt) -> str:
    """A directory that plays the host's /dev: regular files where the
    devices would be, and the mount points a config puts under /dev."""
    d = os.path.join(rt.dir, f"fake-dev-{uuid.uuid4().hex[:8]}")
    os.mkdir(d)
    for name in DEVICES[:4]:  # null zero full random; urandom and tty missing
        with open(os.path.join(d, name), "w") as f:
            f.write(f"host-{name}")
    for sub in ("pts", "shm", "mqueue"):
        os.mkdir(os.path.join(d, sub))
    subprocess.run(["chown", "-R", f"{rt.uid}:{rt.gid}", d], check=True)
    return d


# --------------------------------------------------------- 1. cwd outside the root

@pytest.mark.parametrize("fd", [3, 4, 5, 6, 7, 8])
def test_cwd_through_a_runtime_fd_never_reaches_the_host(rt, residue, fd):
    """CVE-2024-21626: process.cwd /proc/self/fd/N named a directory of the
    runtime (the state dir) and so the host's tree."""
    _, secret = canary(rt)
    config = rt.config(["sh", "-c", "ls -a . .. ../.. ../../.. ../../../..; cat ../../canary ../../../canary"])
    config["process"]["cwd"] = f"/proc/self/fd/{fd}"
    p = rt("run", "-b", rt.bundle(config=config), C1)
    assert secret not in p.stdout
    assert "canary" not in p.stdout
    assert p.returncode != 0, p.stdout
    assert "process.cwd" in one_line(p.stderr)
    residue.check()


def test_exec_cwd_through_a_runtime_fd_never_reaches_the_host(rt):
    _, secret = canary(rt)
    rt.ok("run", "-d", "-b", rt.bundle(["sleep", "60"]), C1)
    for fd in (3, 4, 5, 6):
        p = rt("exec", "--cwd", f"/proc/self/fd/{fd}", C1, "sh", "-c", "ls ../.. ../../..; cat ../../canary")
        assert secret not in p.stdout and "canary" not in p.stdout
    rt.ok("delete", "--force", C1)


def test_missing_cwd_is_created_inside_the_root(rt):
    """runc creates a missing process.cwd; through a dangling symlink it
    lands inside the rootfs, never on the host."""
    rootfs = own_rootfs(rt)
    outside = os.path.join(rt.dir, f"outside-{uuid.uuid4().hex[:6]}")
    os.symlink(outside, os.path.join(rootfs, "link"))  # absolute: re-rooted inside
    config = rt.config(["sh", "-c", "pwd; ls -d /link/made/here"])
    config["root"]["path"] = rootfs
    config.setdefault("annotations", {})
    config["process"]["cwd"] = "/link/made/here"
    p = rt("run", "-b", rt.bundle(config=config), C1)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[0] == outside + "/made/here"  # getcwd(3): the link's target, inside
    assert not os.path.exists(outside)
    if config["annotations"].get("org.pyrun.rootfs") == "direct":
        assert os.path.isdir(rootfs + outside + "/made/here")


# --------------------------------------------------------- 2. a bind-mounted /dev

def _dev_bind_config(rt, args, fake):
    config = rt.config(args)
    config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/dev"]
    config["mounts"].insert(1, {"destination": "/dev", "type": "bind", "source": fake,
                                "options": ["rbind", "nosuid"]})
    return config


def test_bind_mounted_dev_is_left_alone(rt, residue):
    """A config that binds a host directory at /dev (privileged CI binds the
    host's /dev): pyrun creates, unlinks and chmods nothing in it, as runc."""
    fake = fake_host_dev(rt)
    before = snapshot(fake)
    config = _dev_bind_config(rt, ["sh", "-c", "cat /dev/null; ls /dev"], fake)
    config["linux"]["maskedPaths"] = []
    p = rt("run", "-b", rt.bundle(config=config), C1)
    assert p.returncode == 0, p.stderr
    assert "host-null" in p.stdout  # the container sees the host's files as they are
    assert snapshot(fake) == before
    residue.check()


def test_masking_refuses_a_dev_null_that_is_not_the_null_device(rt, residue):
    """CVE-2025-31133: maskedPaths bound whatever /dev/null was. With a host
    directory at /dev whose null is a regular file, masking would bind that
    writable host file over /proc/kcore."""
    fake = fake_host_dev(rt)
    before = snapshot(fake)
    config = _dev_bind_config(rt, ["sh", "-c", "echo pwned > /proc/kcore; cat /proc/kcore"], fake)
    p = rt("run", "-b", rt.bundle(config=config), C1)
    assert snapshot(fake) == before
    assert p.returncode != 0
    assert "/dev/null" in one_line(p.stderr)
    residue.check()


# --------------------------------------------------------- 3. device modes

def test_device_nodes_have_the_specs_modes(rootful):
    config = rootful.config(["sh", "-c", "stat -c '%n %a %t:%T' /dev/null /dev/zero /dev/full /dev/random "
                             "/dev/urandom /dev/tty /dev/fuse"])
    config["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                                   "fileMode": 0o660, "uid": 0, "gid": 0}]
    p = rootful("run", "-b", rootful.bundle(config=config), C1)
    assert p.returncode == 0, p.stderr
    modes = {line.split()[0]: line.split()[1] for line in p.stdout.splitlines()}
    assert modes == {f"/dev/{n}": "666" for n in DEVICES} | {"/dev/fuse": "660"}


def test_non_root_user_can_write_dev_null(rt):
    config = rt.with_id_ranges(rt.config(["sh", "-c", "echo x > /dev/null && head -c4 /dev/zero | wc -c"]))
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    p = rt("run", "-b", rt.bundle(config=config), C1)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["4"]


# --------------------------------------------------------- 4. a symlinked root

@pytest.mark.parametrize("mode", ["overlay", "direct"])
def test_root_path_that_is_a_symlink_is_refused(rt, residue, mode):
    target = own_rootfs(rt)
    marker = os.path.join(target, "untouched")
    with open(marker, "w") as f:
        f.write("x")
    config = rt.config(["sh", "-c", "echo pwned > /untouched; touch /new-file"])
    bundle = rt.bundle(config=config)
    os.symlink(target, os.path.join(bundle, "rootfs"))
    config["root"]["path"] = "rootfs"
    config["annotations"] = {"org.pyrun.rootfs": mode}
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)
    p = rt("run", "-b", bundle, C1)
    assert p.returncode != 0
    assert "root.path" in one_line(p.stderr)
    assert open(marker).read() == "x" and not os.path.exists(os.path.join(target, "new-file"))
    residue.check()


def test_root_path_symlink_to_slash_is_refused(rt, residue):
    config = rt.config(["true"])
    bundle = rt.bundle(config=config)
    os.symlink("/", os.path.join(bundle, "rootfs"))
    config["root"]["path"] = "rootfs"
    config["annotations"] = {"org.pyrun.rootfs": "direct"}
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)
    p = rt("run", "-b", bundle, C1)
    assert p.returncode != 0
    assert "root.path" in one_line(p.stderr)
    residue.check()


# --------------------------------------------------------- 5. /proc/self/fd mount sources

@pytest.mark.parametrize("source", ["/proc/self/fd/3", "/proc/self/fd/4", "/proc/self/fd/5",
                                    "/proc/thread-self/fd/3", "/dev/fd/3", "link"])
def test_mount_source_naming_a_runtime_fd_is_refused(rt, residue, source):
    config = rt.config(["sh", "-c", "ls -a /x; cat /x/state.json"])
    bundle = rt.bundle(config=config)
    if source == "link":  # a host symlink that leads to one
        os.symlink("/proc/self/fd/3", os.path.join(bundle, "link"))
    config["mounts"].append({"destination": "/x", "type": "bind", "source": source, "options": ["rbind"]})
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)
    p = rt("run", "-b", bundle, C1)
    assert "state.json" not in p.stdout and '"pid"' not in p.stdout
    assert p.returncode != 0
    assert "mounts[" in one_line(p.stderr) and ".source" in p.stderr
    residue.check()


def test_bind_of_a_namespace_file_still_works(rootful):
    """A magic link that ends in a namespace (nsfs) is a legitimate bind
    source (``ip netns`` does it): refused only when it names anything else."""
    config = rootful.config(["sh", "-c", "test -e /netns && echo ok"])
    config["mounts"].append({"destination": "/netns", "type": "bind",
                             "source": f"/proc/{os.getpid()}/ns/net", "options": ["bind"]})
    p = rootful("run", "-b", rootful.bundle(config=config), C1)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "ok"


def test_bind_source_the_containers_root_cannot_reach(rootful):
    """Root creating a container with a user namespace: the container's root
    is a subordinate uid that cannot search a 0700 source of root's. pyrun
    opens the source on the host side (open_tree(2)) before the namespace
    exists, as runc does (runc's userns.bats, "inaccessible mount source")."""
    src = os.path.join(rootful.dir, f"private-{uuid.uuid4().hex[:6]}")
    os.makedirs(os.path.join(src, "dir"))
    os.chmod(src, 0o700)
    config = rootful.config(["sh", "-c", "test -d /src && echo mounted"])
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 300000, "size": 65536}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 300000, "size": 65536}]
    config["mounts"].append({"destination": "/src", "type": "bind", "source": os.path.join(src, "dir"),
                             "options": ["rbind"]})
    p = rootful("run", "-b", rootful.bundle(config=config), C1)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "mounted"


# --------------------------------------------------------- 6. planted /dev/null

def _passwd_linked_at(rt, name: str) -> tuple[str, str]:
    """A rootfs of the test's own whose /dev/NAME is a symlink to
    /etc/passwd, and that file's text (to check it is still itself)."""
    rootfs = own_rootfs(rt)
    with open(os.path.join(rootfs, "etc", "passwd")) as f:
        passwd = f.read()
    node = os.path.join(rootfs, "dev", name)
    if os.path.lexists(node):
        os.unlink(node)
    os.symlink("/etc/passwd", node)
    return rootfs, passwd


def _assert_still_the_images(rootfs: str, name: str, passwd: str) -> None:
    """/dev/NAME is still the image's symlink, and /etc/passwd what it was."""
    assert os.path.islink(os.path.join(rootfs, "dev", name))
    with open(os.path.join(rootfs, "etc", "passwd")) as f:
        assert f.read() == passwd


@pytest.mark.parametrize("mode", ["overlay", "direct"])
def test_planted_dev_null_symlink_is_never_followed(rt, residue, mode):
    """An image whose /dev/null is a symlink (and no /dev tmpfs in the config):
    pyrun must not bind or mknod through it, nor unlink the image's file."""
    rootfs, passwd = _passwd_linked_at(rt, "null")
    config = rt.config(["sh", "-c", "cat /etc/passwd; stat -c %t:%T /proc/kcore"])
    config["root"]["path"] = rootfs
    config["annotations"] = {"org.pyrun.rootfs": mode}
    config["mounts"] = [m for m in config["mounts"] if not m["destination"].startswith("/dev")]
    p = rt("run", "-b", rt.bundle(config=config), C1)
    if p.returncode == 0:
        assert passwd.split("\n")[0] in p.stdout  # /etc/passwd is still itself
        assert p.stdout.split()[-1] == "1:3"      # and the mask is the null device
    else:
        assert "/dev/null" in one_line(p.stderr)
    _assert_still_the_images(rootfs, "null", passwd)
    residue.check()


# --------------------------------------------------------- 7. procfs writes

def test_sysctl_write_cannot_be_redirected_by_a_mount(rt, residue):
    """CVE-2025-52881: a mount over /proc/sys/... redirected the runtime's
    sysctl write into a host file."""
    path, secret = canary(rt)
    os.chown(path, rt.uid, rt.gid)
    config = rt.config(["sh", "-c", "cat /proc/sys/net/ipv4/ip_forward"])
    config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    config["mounts"].append({"destination": "/proc/sys/net/ipv4/ip_forward", "type": "bind",
                             "source": path, "options": ["bind"]})
    p = rt("run", "-b", rt.bundle(config=config), C1)
    with open(path) as f:
        assert f.read() == secret
    if p.returncode != 0:
        one_line(p.stderr)
        residue.check()


# --------------------------------------------------------- 8. /dev/console

def _console_run(rt, config):
    """create with --console-socket, then take the master (runc's
    protocol: it waits in the socket's queue), start, read to END."""
    from test_terminal import read_until

    path = os.path.join(rt.dir, f"{uuid.uuid4().hex[:8]}.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        os.chmod(path, 0o777)
        listener.listen(1)
        p = rt("create", "--console-socket", path, "-b", rt.bundle(config=config), C1)
        if p.returncode != 0:
            return p, b""
        listener.settimeout(10)
        conn, _ = listener.accept()
        with conn:
            _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
    master = fds[0]
    rt.ok("start", C1)
    out = read_until(master, b"END")
    os.close(master)
    rt("delete", "--force", C1)
    return p, out


def test_dev_console_is_the_containers_pty(rt):
    config = rt.config(["sh", "-c", "tty; stat -L -c 'console %t:%T' /dev/console; "
                                    "stat -L -c 'tty %t:%T' $(tty); echo END"])
    config["process"]["terminal"] = True
    p, out = _console_run(rt, config)
    assert p.returncode == 0, p.stderr
    lines = dict(line.split(" ", 1) for line in out.decode().replace("\r", "").splitlines() if " " in line)
    assert lines.get("console") and lines["console"] == lines.get("tty"), out


def test_dev_console_symlink_is_not_followed(rt, residue):
    rootfs, passwd = _passwd_linked_at(rt, "console")
    config = rt.config(["sh", "-c", "head -1 /etc/passwd; echo END"])
    config["root"]["path"] = rootfs
    config["annotations"] = {"org.pyrun.rootfs": "direct"}
    config["process"]["terminal"] = True
    config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/dev"]
    p, out = _console_run(rt, config)
    if p.returncode == 0:
        assert passwd.split("\n")[0].encode() in out
    else:
        assert "/dev/console" in one_line(p.stderr)
    _assert_still_the_images(rootfs, "console", passwd)


# --------------------------------------------------------- descriptors

def _syscall_names() -> list[str]:
    names = []
    for header in ("/usr/include/x86_64-linux-gnu/asm/unistd_64.h", "/usr/include/asm/unistd_64.h"):
        if os.path.exists(header):
            with open(header) as f:
                for line in f:
                    if line.startswith("#define __NR_"):
                        names.append(line.split()[1][len("__NR_"):])
            return names
    pytest.skip("no asm/unistd_64.h to list syscalls from")


def _deny_close_range_profile() -> dict:
    allowed = [n for n in _syscall_names() if n != "close_range"]
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]}


@pytest.mark.parametrize("nnp", [False, True])
def test_profile_without_close_range_does_not_hang(rt, nnp):
    """A deny-by-default profile that lists no close_range (Docker's older
    ones): closing descriptors must not fall back to 2**31 close(2) calls."""
    config = rt.config(["sh", "-c", "ls /proc/self/fd | wc -l"])
    config["linux"]["seccomp"] = _deny_close_range_profile()
    config["process"]["noNewPrivileges"] = nnp
    p = rt("run", "-b", rt.bundle(config=config), C1, timeout=30)
    assert p.returncode == 0, p.stderr
    config["process"]["args"] = ["sleep", "60"]
    rt.ok("run", "-d", "-b", rt.bundle(config=config), C2, timeout=30)
    e = rt("exec", C2, "true", timeout=30)
    assert e.returncode == 0, e.stderr
    rt.ok("delete", "--force", C2)


def test_inherited_descriptors_do_not_reach_the_container(rt):
    """A descriptor the caller left open (not --preserve-fds) is closed."""
    config = rt.config(["sh", "-c", "ls /proc/self/fd"])
    r, w = os.pipe()
    try:
        os.set_inheritable(r, True)
        os.dup2(r, 42)
        os.set_inheritable(42, True)
        p = rt("run", "-b", rt.bundle(config=config), C1, pass_fds=(42,))
    finally:
        for fd in (r, w, 42):
            os.close(fd)
    assert p.returncode == 0, p.stderr
    assert sorted(p.stdout.split()) == ["0", "1", "2", "3"]  # 3: ls's own directory fd
