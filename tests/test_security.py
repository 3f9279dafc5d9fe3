"""The walls: capabilities, masked and read-only paths, sysctl, fds.
Each attack must fail safely, rootful and rootless."""

from __future__ import annotations

import json
import os

import pytest

CAP_CHOWN, CAP_KILL, CAP_NET_BIND_SERVICE, CAP_NET_RAW, CAP_SYS_ADMIN, CAP_AUDIT_WRITE = 0, 5, 10, 13, 21, 29


def run(rt, config, cid="c1"):
    return rt("run", "-b", rt.bundle(config=config), cid)


def _caps(stdout: str) -> dict[str, int]:
    return {line.split(":")[0]: int(line.split()[1], 16) for line in stdout.splitlines()
            if line.startswith("Cap")}


def test_default_capabilities_are_runcs(rt):
    p = run(rt, rt.config(["grep", "^Cap", "/proc/self/status"]))
    assert p.returncode == 0, p.stderr
    caps = _caps(p.stdout)
    want = (1 << CAP_AUDIT_WRITE) | (1 << CAP_KILL) | (1 << CAP_NET_BIND_SERVICE)
    assert caps["CapEff"] == caps["CapPrm"] == caps["CapBnd"] == want
    assert caps["CapAmb"] == 0


def test_operations_without_their_capability_fail(rt):
    script = ("chown 1:1 /etc/passwd 2>/dev/null && echo chown-ok || echo chown-denied; "
              "ping -c1 -W1 127.0.0.1 >/dev/null 2>&1 && echo raw-ok || echo raw-denied; "
              "hostname other 2>/dev/null && echo sethostname-ok || echo sethostname-denied")
    p = run(rt, rt.config(["sh", "-c", script]))
    assert p.stdout.split() == ["chown-denied", "raw-denied", "sethostname-denied"], p.stderr


def test_granted_capabilities_work(rt):
    config = rt.config(["sh", "-c", "hostname other && hostname"])
    for kind in ("bounding", "effective", "permitted"):
        config["process"]["capabilities"][kind].append("CAP_SYS_ADMIN")
    p = run(rt, config)
    assert p.stdout.strip() == "other", p.stderr


def test_non_root_user_keeps_exactly_its_ambient_capabilities(rootful):
    config = rootful.config(["grep", "^Cap", "/proc/self/status"])
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    caps = config["process"]["capabilities"]
    caps["inheritable"] = ["CAP_NET_BIND_SERVICE"]
    caps["ambient"] = ["CAP_NET_BIND_SERVICE"]
    p = run(rootful, config)
    assert p.returncode == 0, p.stderr
    got = _caps(p.stdout)
    assert got["CapEff"] == got["CapPrm"] == got["CapAmb"] == 1 << CAP_NET_BIND_SERVICE


@pytest.mark.parametrize("nnp", [True, False])
def test_setuid_binary_gains_nothing_under_no_new_privs(rootful, nnp):
    """A setuid-root binary in the rootfs, run by uid 1000: with
    noNewPrivileges the kernel ignores the setuid bit (prctl(2)
    PR_SET_NO_NEW_PRIVS); without it, the bit works (the test's control)."""
    import shutil

    rootfs = os.path.join(rootful.dir, "suid-rootfs")
    shutil.copytree(rootful.rootfs["hello"], rootfs, symlinks=True)
    shutil.copy(os.path.join(rootfs, "hello"), os.path.join(rootfs, "suid"))
    os.chown(os.path.join(rootfs, "suid"), 0, 0)
    os.chmod(os.path.join(rootfs, "suid"), 0o4755)
    config = rootful.config(["/suid", "euid"], rootfs="hello")
    config["root"]["path"] = rootfs
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    config["process"]["noNewPrivileges"] = nnp
    p = run(rootful, config)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == ("1000" if nnp else "0")


def test_no_capabilities_field_means_none(rt):
    config = rt.config(["grep", "^CapEff", "/proc/self/status"])
    del config["process"]["capabilities"]
    p = run(rt, config)
    assert _caps(p.stdout)["CapEff"] == 0, p.stderr


def test_unknown_capability_name_is_a_warning(rt):
    """runtime-spec 1.1 and later: warn, do not fail (tests/test_runc_parity.py)."""
    config = rt.config(["true"])
    config["process"]["capabilities"]["effective"].append("CAP_NOPE")
    p = run(rt, config)
    assert p.returncode == 0 and "process.capabilities.effective" in p.stderr and "CAP_NOPE" in p.stderr


def test_ambient_without_inheritable_is_skipped_as_runc_does(rt):
    """`runc spec` writes ambient capabilities without inheritable ones; the
    kernel cannot raise them, and runc goes on without: so does pyrun."""
    config = rt.config(["grep", "^CapAmb", "/proc/self/status"])
    config["process"]["capabilities"]["ambient"] = ["CAP_KILL"]
    p = run(rt, config)
    assert p.returncode == 0, p.stderr
    assert _caps(p.stdout)["CapAmb"] == 0


def test_proc_sys_sysrq_and_sys_are_read_only(rt):
    script = ("for f in /proc/sys/kernel/hostname /proc/sysrq-trigger /sys/kernel/uevent_helper; do "
              "(echo x > $f) 2>/dev/null && echo $f-WRITABLE || echo $f-refused; done")
    p = run(rt, rt.config(["sh", "-c", script]))
    assert "WRITABLE" not in p.stdout, p.stdout
    assert p.stdout.count("refused") == 3


def test_masked_paths_read_as_nothing(rt):
    # /proc/kcore is not in this kernel; these masked paths are.
    script = "cat /proc/keys | wc -l; ls /proc/acpi | wc -l; ls /sys/firmware | wc -l; grep -c ' /proc/keys ' /proc/mounts"
    p = run(rt, rt.config(["sh", "-c", script]))
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["0", "0", "0", "1"]


def test_namespaced_sysctl_is_written(rt):
    config = rt.config(["cat", "/proc/sys/net/ipv4/ip_forward"])
    if not any(n["type"] == "network" for n in config["linux"]["namespaces"]):
        config["linux"]["namespaces"].append({"type": "network"})
    config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    p = run(rt, config)
    assert p.stdout.strip() == "1", p.stderr


@pytest.mark.parametrize("key", ["kernel.panic", "vm.swappiness"])
def test_global_sysctl_is_refused(rt, residue, key):
    config = rt.config(["true"])
    config["linux"]["sysctl"] = {key: "1"}
    p = run(rt, config)
    assert p.returncode == 1 and "linux.sysctl" in p.stderr
    residue.check()


def test_host_processes_are_invisible(rt):
    p = run(rt, rt.config(["sh", "-c", "ls /proc | grep -c '^[0-9]'"]))
    assert int(p.stdout) <= 4, p.stdout  # init, sh, ls, grep


def test_no_process_reaches_the_hosts_mount_namespace_through_an_fd(rt):
    """Every process of the container has the container's mount namespace,
    root and cwd, and no fd (beyond the caller's stdio) naming a file:
    nothing to openat(2) or fchdir(2) out through (CVE-2024-21626's class)."""
    script = (
        'me=$(readlink /proc/self/ns/mnt); '
        'for p in /proc/[0-9]*; do '
        '  [ "$(readlink $p/ns/mnt)" = "$me" ] || echo "foreign-mnt $p"; '
        '  echo "root $(readlink $p/root) cwd $(readlink $p/cwd)"; '
        '  for f in $p/fd/*; do n=${f##*/}; [ "$n" -ge 3 ] || continue; t=$(readlink $f); '
        '    case "$t" in anon_inode:*|pipe:*|socket:*|"") ;; *) echo "fd $f -> $t";; esac; done; '
        'done')
    config = rt.config(["sh", "-c", script])
    config["process"]["cwd"] = "/"
    p = run(rt, config)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines and all(line == "root / cwd /" for line in lines), p.stdout


def test_no_runtime_fd_reaches_the_container_even_with_a_log(rt):
    import os

    logfile = os.path.join(rt.dir, "log")
    p = rt("--log", logfile, "--debug", "run", "-b", rt.bundle(["hello", "fds"]), "c1")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["0", "1", "2"]


def test_apparmor_and_selinux_labels_are_ignored_where_the_host_has_neither(rt):
    import os

    if os.path.exists("/sys/kernel/security/apparmor") or os.path.exists("/sys/fs/selinux/enforce"):
        pytest.skip("this host enforces an LSM")
    config = rt.config(["true"])
    config["process"]["apparmorProfile"] = "docker-default"
    config["process"]["selinuxLabel"] = "system_u:system_r:container_t:s0"
    p = rt("--debug", "run", "-b", rt.bundle(config=config), "c1")
    assert p.returncode == 0, p.stderr
    assert "apparmorProfile 'docker-default' ignored" in p.stderr


def test_host_executables_cannot_be_overwritten_through_proc_exe(rootful):
    """CVE-2019-5736: root in the container opens /proc/PID/exe of every
    process it can see for writing. PID 1 runs from a sealed memfd, so
    there is no host file behind any of them."""
    import hashlib
    import sys

    def digest():
        with open(sys.executable, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

    before = digest()
    config = rootful.config(["sh", "-c", "for p in /proc/[0-9]*; do "
                             "(printf x >> $p/exe) 2>/dev/null && echo WROTE $(readlink $p/exe); done; "
                             "readlink /proc/1/exe"])
    caps = config["process"]["capabilities"]
    for kind in ("bounding", "effective", "permitted"):
        caps[kind] = sorted(set(caps[kind]) | {"CAP_SYS_PTRACE", "CAP_DAC_OVERRIDE"})
    p = rootful("run", "-b", rootful.bundle(config=config), "c1")
    assert p.returncode == 0, p.stderr
    assert "WROTE" not in p.stdout, p.stdout
    assert p.stdout.splitlines()[-1].startswith("/memfd:pyrun-init")
    assert digest() == before


def _profile(*rules, default="SCMP_ACT_ALLOW"):
    return {"defaultAction": default, "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": list(rules)}


def test_default_profile_denies_unshare_with_eperm(rt):
    config = rt.config(["sh", "-c", "unshare -U true 2>&1; echo rc=$?"])
    assert config["linux"]["seccomp"]["defaultAction"]  # pyrun spec writes a profile
    p = run(rt, config)
    assert "Operation not permitted" in p.stdout and "rc=1" in p.stdout, p.stdout + p.stderr


@pytest.mark.parametrize("nnp", [True, False])
def test_denied_syscall_returns_the_configured_errno(rt, nnp):
    config = rt.config(["sh", "-c", "hostname x 2>&1; echo rc=$?"])
    config["process"]["noNewPrivileges"] = nnp
    config["linux"]["seccomp"] = _profile({"names": ["sethostname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38})
    p = run(rt, config)
    assert "Function not implemented" in p.stdout, p.stdout + p.stderr


def test_argument_filter_blocks_only_the_matching_call(rt):
    # kill(2) with signal 10 (SIGUSR1) is denied; signal 0 is not.
    config = rt.config(["sh", "-c", "kill -0 $$ && echo probe-ok; kill -USR1 $$ 2>/dev/null || echo usr1-denied"])
    config["linux"]["seccomp"] = _profile({"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                                           "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]})
    p = run(rt, config)
    assert p.stdout.split() == ["probe-ok", "usr1-denied"], p.stdout + p.stderr


def test_kill_process_action_exits_159(rt):
    config = rt.config(["uname"])
    config["linux"]["seccomp"] = _profile({"names": ["uname"], "action": "SCMP_ACT_KILL_PROCESS"})
    assert run(rt, config).returncode == 128 + 31


def test_bad_seccomp_profile_names_the_field(rt, residue):
    config = rt.config(["true"])
    config["linux"]["seccomp"] = _profile({"names": ["uname"], "action": "SCMP_ACT_NOPE"})
    p = run(rt, config)
    assert p.returncode == 1 and "linux.seccomp.syscalls[0].action" in p.stderr, p.stderr
    residue.check()


class _Listener:
    """A seccomp agent: accepts the runtime's message on a unix socket
    (config-linux.md, "listenerPath") and answers every notified system
    call with ``answer`` (seccomp_unotify(2))."""

    def __init__(self, path: str, answer: int):
        import socket
        import threading

        self.path, self.answer = path, answer
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        os.chmod(path, 0o777)  # a rootless runtime connects too
        self.sock.listen(1)
        self.message, self.fds, self.notified = None, [], 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import fcntl
        import select
        import socket
        import struct

        self.sock.settimeout(30)
        conn, _ = self.sock.accept()
        with conn:
            data, self.fds, _, _ = socket.recv_fds(conn, 65536, 4)
        self.message = json.loads(data)
        listener = self.fds[0]
        while True:
            ready = select.poll()
            ready.register(listener, select.POLLIN)
            events = ready.poll(30000)
            if not events or events[0][1] & (select.POLLHUP | select.POLLERR):
                break  # every process under the filter is gone
            buf = bytearray(80)  # struct seccomp_notif
            try:
                fcntl.ioctl(listener, 0xC0502100, buf)  # SECCOMP_IOCTL_NOTIF_RECV
            except OSError:
                continue
            notif_id = struct.unpack_from("=Q", buf)[0]
            resp = bytearray(struct.pack("=QqiI", notif_id, self.answer, 0, 0))  # struct seccomp_notif_resp
            try:
                fcntl.ioctl(listener, 0xC0182101, resp)  # SECCOMP_IOCTL_NOTIF_SEND
                self.notified += 1
            except OSError:
                pass
        os.close(listener)


@pytest.mark.parametrize("nnp", [True, False])
def test_notify_listener_receives_a_working_fd(rt, nnp):
    config = rt.config(["/hello", "ppid"], rootfs="hello")
    config["process"]["noNewPrivileges"] = nnp
    config["linux"]["seccomp"] = _profile({"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"})
    sock = os.path.join(rt.dir, "agent.sock")
    config["linux"]["seccomp"]["listenerPath"] = sock
    config["linux"]["seccomp"]["listenerMetadata"] = "hello-agent"
    agent = _Listener(sock, 4242)
    p = run(rt, config)
    assert p.returncode == 0 and p.stdout.split() == ["4242"], p.stdout + p.stderr
    agent.thread.join(10)
    msg = agent.message
    assert msg["fds"] == ["seccompFd"] and msg["metadata"] == "hello-agent" and len(agent.fds) == 1
    assert msg["state"]["id"] == "c1" and msg["state"]["status"] == "creating"
    assert msg["pid"] == msg["state"]["pid"] > 0
    assert agent.notified >= 1


def test_unreachable_listener_fails_create_cleanly(rt, residue):
    config = rt.config(["/hello", "ppid"], rootfs="hello")
    config["linux"]["seccomp"] = _profile({"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"})
    config["linux"]["seccomp"]["listenerPath"] = os.path.join(rt.dir, "nobody-listens.sock")
    p = run(rt, config)
    assert p.returncode == 1 and "listenerPath" in p.stderr and "No such file" in p.stderr, p.stderr
    residue.check()


@pytest.mark.parametrize("init", ["--init", "--no-init"])
def test_no_signal_is_ignored_or_blocked_at_start(rt, init):
    """Python ignores SIGPIPE and SIGXFSZ; that must not reach the container
    (an ignored signal stays ignored across execve(2))."""
    # and whatever the caller ignored (nohup ignores SIGHUP) is not inherited
    p = rt("run", init, "-b", rt.bundle(["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"]), "c1",
           preexec_fn=lambda: __import__("signal").signal(1, __import__("signal").SIG_IGN))
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["SigBlk:", "0000000000000000", "SigIgn:", "0000000000000000"], p.stdout


def test_no_fd_leaks_even_without_proc_in_the_container(rt):
    config = rt.config(["/hello", "fds"], rootfs="hello")
    config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/proc"]
    config["linux"]["maskedPaths"] = []
    config["linux"]["readonlyPaths"] = []
    # hello lists /proc/self/fd, so give it a /proc only after pyrun is done:
    # a bind of the host's /proc is not possible; instead count through the
    # init's view from outside.
    config["process"]["args"] = ["/hello", "pause"]
    rt.ok("run", "-d", "-b", rt.bundle(config=config), "c1")
    pid = rt.state("c1")["pid"]
    import os

    from conftest import wait_children

    child = wait_children(pid)[0]
    assert sorted(int(fd) for fd in os.listdir(f"/proc/{child}/fd")) == [0, 1, 2]
    assert sorted(int(fd) for fd in os.listdir(f"/proc/{pid}/fd")) == [0, 1, 2, 3]  # init's signalfd
