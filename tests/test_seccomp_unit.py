"""pyrun.security.seccomp: checking linux.seccomp, and filters loaded in the real kernel.

Kernel tests fork a child that loads the filter (after no_new_privs) and
makes system calls with ctypes' syscall(2) — raw numbers, no libc caching —
then reports what happened to the parent through a pipe. No container."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import resource
import select
import signal
import socket
import struct

import pytest

from pyrun.config import syscall_filter
from pyrun.security import seccomp
from pyrun.errors import ConfigError
from pyrun.config.seccomp_profile import DENIED, default_profile

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def nr(name: str) -> int:
    value = seccomp.resolve(name)
    assert value is not None and value >= 0, name
    return value


def call(name: str, *args: int) -> int:
    """syscall(2): the result, or -errno."""
    ctypes.set_errno(0)
    rc = _libc.syscall(ctypes.c_long(nr(name)), *(ctypes.c_long(a) for a in args))
    return -ctypes.get_errno() if rc == -1 else rc


def in_child(profile: dict, probe):
    """Build the filter here, load it in a child, run ``probe()`` there.

    Returns (what probe returned, or None if the child died; wait status)."""
    return collect(*fork_filtered(seccomp.build(profile), probe))


def fork_filtered(filt, probe, after_load=None) -> tuple[int, int]:
    """Fork a child that loads ``filt`` (under no_new_privs), calls
    ``after_load(fd)`` if given, then reports ``probe()`` through a pipe.
    Returns (pid, the pipe's read end) for :func:`collect`."""
    import prctl

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: no pytest machinery from here on
        try:
            os.close(r)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGSYS dumps core
            prctl.set_no_new_privs(1)
            fd = filt.load()
            if after_load is not None:
                after_load(fd)
            out = {"fd": fd, "result": probe()}
        except BaseException as e:  # noqa: BLE001
            out = {"error": repr(e)}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    return pid, r


def collect(pid: int, r: int):
    """(what the child's probe returned, or None if it died; wait status)."""
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if not data:
        return None, status
    out = json.loads(data)
    assert "error" not in out, out["error"]
    return out, status


def allow_all(*rules: dict, **extra) -> dict:
    return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": list(rules), **extra}


# --- checking the config -----------------------------------------------------

def _valid() -> dict:
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64"],
        "flags": ["SECCOMP_FILTER_FLAG_LOG"],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["fcntl"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 1, "value": 1, "op": "SCMP_CMP_EQ"}]},
        ],
    }


def test_valid_profile_builds():
    f = seccomp.build(_valid())
    assert f.default_action == seccomp.act_errno(errno.EPERM)
    assert [r.names for r in f.rules] == [["read", "write"], ["fcntl"]]
    assert f.rules[1].args == [syscall_filter.Arg(1, "SCMP_CMP_EQ", 1, 0)]  # the config model's record
    assert not f.notify


def _set(path: list, value):
    def change(d: dict) -> dict:
        target = d
        for key in path[:-1]:
            target = target[key]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return d
    return change


BAD = [
    (_set(["defaultAction"], KeyError), "linux.seccomp.defaultAction", "is required"),
    (_set(["defaultAction"], "SCMP_ACT_MAYBE"), "linux.seccomp.defaultAction", "unknown action"),
    (_set(["defaultAction"], 3), "linux.seccomp.defaultAction", "expected a string, got int"),
    (_set(["defaultAction"], "SCMP_ACT_NOTIFY"), "linux.seccomp.defaultAction", "cannot be the default"),
    (_set(["defaultErrnoRet"], "1"), "linux.seccomp.defaultErrnoRet", "expected an integer, got string"),
    (_set(["defaultErrnoRet"], True), "linux.seccomp.defaultErrnoRet", "expected an integer, got bool"),
    (_set(["defaultErrnoRet"], -1), "linux.seccomp.defaultErrnoRet", "between 0 and 65535"),
    (_set(["architectures"], "SCMP_ARCH_X86_64"), "linux.seccomp.architectures", "expected an array"),
    (_set(["architectures", 0], "x86_64"), "linux.seccomp.architectures[0]", "unknown architecture"),
    (_set(["flags", 0], "SECCOMP_FILTER_FLAG_NOPE"), "linux.seccomp.flags[0]", "unknown or unsupported flag"),
    (_set(["flags", 0], "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"), "linux.seccomp.flags[0]", "unsupported"),
    (_set(["listenerPath"], 5), "linux.seccomp.listenerPath", "expected a string"),
    (_set(["syscalls"], {}), "linux.seccomp.syscalls", "expected an array, got object"),
    (_set(["syscalls", 1], "fcntl"), "linux.seccomp.syscalls[1]", "expected an object, got string"),
    (_set(["syscalls", 0, "names"], KeyError), "linux.seccomp.syscalls[0].names", "is required"),
    (_set(["syscalls", 0, "names"], []), "linux.seccomp.syscalls[0].names", "at least one"),
    (_set(["syscalls", 0, "names"], "read"), "linux.seccomp.syscalls[0].names", "expected an array"),
    (_set(["syscalls", 0, "names", 1], None), "linux.seccomp.syscalls[0].names[1]", "expected a string, got null"),
    (_set(["syscalls", 0, "names", 1], ""), "linux.seccomp.syscalls[0].names[1]", "invalid system call name"),
    (_set(["syscalls", 0, "action"], KeyError), "linux.seccomp.syscalls[0].action", "is required"),
    (_set(["syscalls", 0, "action"], "ALLOW"), "linux.seccomp.syscalls[0].action", "unknown action 'ALLOW'"),
    (_set(["syscalls", 0, "errnoRet"], 1), "linux.seccomp.syscalls[0].errnoRet",
     "only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE"),
    (_set(["syscalls", 1, "args"], {"index": 0}), "linux.seccomp.syscalls[1].args", "expected an array"),
    (_set(["syscalls", 1, "args", 0, "op"], "SCMP_CMP_LIKE"), "linux.seccomp.syscalls[1].args[0].op",
     "unknown operator"),
    (_set(["syscalls", 1, "args", 0, "op"], KeyError), "linux.seccomp.syscalls[1].args[0].op", "is required"),
    (_set(["syscalls", 1, "args", 0, "index"], 6), "linux.seccomp.syscalls[1].args[0].index",
     "between 0 and 5"),
    (_set(["syscalls", 1, "args", 0, "index"], KeyError), "linux.seccomp.syscalls[1].args[0].index",
     "is required"),
    (_set(["syscalls", 1, "args", 0, "value"], 1 << 64), "linux.seccomp.syscalls[1].args[0].value",
     "between 0 and 18446744073709551615"),
    (_set(["syscalls", 1, "args", 0, "value"], 1.5), "linux.seccomp.syscalls[1].args[0].value",
     "expected an integer, got float"),
    (_set(["syscalls", 1, "args", 0, "valueTwo"], -2), "linux.seccomp.syscalls[1].args[0].valueTwo",
     "between 0"),
]


@pytest.mark.parametrize("change,path,message", BAD, ids=[f"{p}:{m}" for _, p, m in BAD])
def test_bad_config(change, path, message):
    with pytest.raises(ConfigError) as info:
        seccomp.build(change(_valid()))
    assert info.value.path == path
    assert message in info.value.message


def test_default_errno_ret_needs_errno_action():
    with pytest.raises(ConfigError) as info:
        seccomp.build({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1})
    assert info.value.path == "linux.seccomp.defaultErrnoRet"


def test_notify_needs_listener_path_and_not_write():
    rule = {"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}
    with pytest.raises(ConfigError) as info:
        seccomp.build(allow_all(rule))
    assert info.value.path == "linux.seccomp.listenerPath"
    rule = {"names": ["read", "write"], "action": "SCMP_ACT_NOTIFY"}
    with pytest.raises(ConfigError) as info:
        seccomp.build(allow_all(rule, listenerPath="/run/agent.sock"))
    assert info.value.path == "linux.seccomp.syscalls[0].names[1]"


def test_architecture_libseccomp_lacks():
    missing = [a for a in seccomp.ARCHS if a not in seccomp.supported()["archs"]]
    if not missing:
        pytest.skip("this libseccomp knows every architecture")
    with pytest.raises(ConfigError) as info:
        seccomp.build({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86", missing[0]]})
    assert info.value.path == "linux.seccomp.architectures[1]"
    assert "not supported by libseccomp" in info.value.message


def test_unknown_syscall_names_in_allow_rules_are_skipped():
    profile = {"defaultAction": "SCMP_ACT_ERRNO",
               "syscalls": [{"names": ["no_such_call_ever", "getppid"], "action": "SCMP_ACT_ALLOW"}]}
    assert seccomp.build(profile).skipped == ["no_such_call_ever"]


@pytest.mark.parametrize("action", ["SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_LOG"])
def test_unknown_syscall_names_in_deny_rules_are_refused(action):
    """Issue 22.11: a rule pyrun cannot enforce is refused, not dropped."""
    with pytest.raises(ConfigError) as info:
        seccomp.build(allow_all({"names": ["getppid"], "action": action},
                                {"names": ["getpid", "no_such_call_ever"], "action": action}))
    assert info.value.path == "linux.seccomp.syscalls[1].names[1]"
    assert "no_such_call_ever" in info.value.message


# setxattrat(2), Linux 6.13: newer than libseccomp 2.5.4's table. Since
# Linux 5.1 a new system call has one number on every architecture.
SETXATTRAT = 463


def _kernel_has(nr_: int) -> bool:
    ctypes.set_errno(0)
    rc = _libc.syscall(ctypes.c_long(nr_), ctypes.c_long(-1), ctypes.c_long(0), ctypes.c_long(0),
                       ctypes.c_long(0), ctypes.c_long(0), ctypes.c_long(0))
    return not (rc == -1 and ctypes.get_errno() == errno.ENOSYS)


def test_deny_rule_for_a_call_libseccomp_lacks_is_enforced_by_number():
    if seccomp.resolve("setxattrat") is not None:
        pytest.skip("this libseccomp knows setxattrat")
    if not _kernel_has(SETXATTRAT):
        pytest.skip("this kernel has no setxattrat")

    def probe():
        ctypes.set_errno(0)
        rc = _libc.syscall(ctypes.c_long(SETXATTRAT), ctypes.c_long(-1), ctypes.c_long(0), ctypes.c_long(0),
                           ctypes.c_long(0), ctypes.c_long(0), ctypes.c_long(0))
        return -ctypes.get_errno() if rc == -1 else rc

    rule = {"names": ["setxattrat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EROFS}
    out, _ = in_child(allow_all(rule), probe)
    assert out["result"] == -errno.EROFS
    out, _ = in_child(allow_all(), probe)
    assert out["result"] != -errno.EROFS  # the kernel's own answer (EBADF)
    # other architectures' numbers for it are not known: refused, not dropped
    with pytest.raises(ConfigError) as info:
        seccomp.build(allow_all(rule, architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]))
    assert info.value.path == "linux.seccomp.syscalls[0].names[0]"


def test_action_encoding():
    assert seccomp.act_errno(38) == 0x00050026
    assert seccomp.act_trace(7) == 0x7FF00007
    assert (seccomp.ACT_KILL_PROCESS, seccomp.ACT_KILL_THREAD, seccomp.ACT_TRAP) == (0x80000000, 0, 0x00030000)
    assert (seccomp.ACT_LOG, seccomp.ACT_ALLOW, seccomp.ACT_NOTIFY) == (0x7FFC0000, 0x7FFF0000, 0x7FC00000)


def test_supported():
    s = seccomp.supported()
    assert s["enabled"] is True
    assert {"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL"} <= set(s["actions"])
    assert set(s["actions"]) <= set(seccomp.ACTIONS)
    assert len(s["operators"]) == 7
    assert "SCMP_ARCH_X86_64" in s["archs"] or "SCMP_ARCH_AARCH64" in s["archs"]
    assert set(s["supportedFlags"]) <= set(s["knownFlags"])
    assert seccomp.api_level() >= 1


def test_default_profile_is_data():
    p = default_profile()
    assert p is not default_profile()  # a new object every call
    assert p["defaultAction"] == "SCMP_ACT_ALLOW"
    assert p["syscalls"][0]["errnoRet"] == errno.EPERM
    assert "keyctl" in DENIED and "personality" not in DENIED
    seccomp.build(p)


# --- in the kernel -----------------------------------------------------------

def test_denied_syscall_returns_eperm():
    out, status = in_child(allow_all({"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}),
                           lambda: [call("getppid"), call("getpid") > 0])
    assert out["result"] == [-errno.EPERM, True]
    assert out["fd"] is None


def test_errno_ret():
    rule = {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS}
    out, _ = in_child(allow_all(rule), lambda: call("getppid"))
    assert out["result"] == -errno.ENOSYS


def test_default_action_errno_with_allow_list():
    # What Python needs between load and exit, plus getppid.
    allowed = ["write", "exit_group", "exit", "brk", "mmap", "munmap", "mremap", "madvise",
               "rt_sigprocmask", "rt_sigaction", "futex", "getppid"]
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.EACCES,
               "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]}
    out, _ = in_child(profile, lambda: [call("getpid"), call("getppid") > 0])
    assert out["result"] == [-errno.EACCES, True]


F_GETFD, F_GETFL = 1, 3


@pytest.mark.parametrize("op,value,value_two,denied", [
    ("SCMP_CMP_EQ", F_GETFD, 0, F_GETFD),
    ("SCMP_CMP_NE", F_GETFD, 0, F_GETFL),
    ("SCMP_CMP_LT", F_GETFL, 0, F_GETFD),
    ("SCMP_CMP_LE", F_GETFD, 0, F_GETFD),
    ("SCMP_CMP_GE", F_GETFL, 0, F_GETFL),
    ("SCMP_CMP_GT", F_GETFD, 0, F_GETFL),
    ("SCMP_CMP_MASKED_EQ", 0b10, 0b10, F_GETFL),  # (cmd & 2) == 2
])
def test_argument_operators(op, value, value_two, denied):
    rule = {"names": ["fcntl"], "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 1, "value": value, "valueTwo": value_two, "op": op}]}
    out, _ = in_child(allow_all(rule), lambda: {cmd: call("fcntl", 0, cmd) for cmd in (F_GETFD, F_GETFL)})
    results = {int(k): v for k, v in out["result"].items()}
    allowed = F_GETFL if denied == F_GETFD else F_GETFD
    assert results[denied] == -errno.EPERM
    assert results[allowed] >= 0


def test_arguments_of_one_rule_are_anded():
    # fcntl(fd 1, F_GETFD) only: other fds or commands pass.
    rule = {"names": ["fcntl"], "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                     {"index": 1, "value": F_GETFD, "op": "SCMP_CMP_EQ"}]}
    out, _ = in_child(allow_all(rule), lambda: [call("fcntl", 1, F_GETFD), call("fcntl", 0, F_GETFD),
                                                call("fcntl", 1, F_GETFL)])
    first, *others = out["result"]
    assert first == -errno.EPERM
    assert all(r >= 0 for r in others)


def test_comparisons_of_one_argument_are_ored():
    # As runc: two conditions on argument 1 become two rules.
    rule = {"names": ["fcntl"], "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 1, "value": F_GETFD, "op": "SCMP_CMP_EQ"},
                     {"index": 1, "value": F_GETFL, "op": "SCMP_CMP_EQ"}]}
    out, _ = in_child(allow_all(rule), lambda: [call("fcntl", 0, F_GETFD), call("fcntl", 0, F_GETFL),
                                                call("getppid") > 0])
    assert out["result"] == [-errno.EPERM, -errno.EPERM, True]


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL", "SCMP_ACT_TRAP"])
def test_kill_and_trap_end_with_sigsys(action):
    out, status = in_child(allow_all({"names": ["getppid"], "action": action}), lambda: call("getppid"))
    assert out is None
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS


def test_unknown_names_skipped_and_known_ones_applied():
    allowed = ["write", "exit_group", "exit", "brk", "mmap", "munmap", "mremap", "madvise",
               "rt_sigprocmask", "rt_sigaction", "futex", "no_such_call_ever", "getppid"]
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.EPERM,
               "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]}
    out, _ = in_child(profile, lambda: [call("getppid") > 0, call("getpid")])
    assert out["result"] == [True, -errno.EPERM]


def test_rule_with_the_default_action_is_ignored():
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["getpid"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["write", "exit_group", "brk", "mmap", "munmap", "getppid"], "action": "SCMP_ACT_ALLOW"}]}
    out, _ = in_child(profile, lambda: [call("getpid"), call("getppid") > 0])
    assert out["result"] == [-errno.EPERM, True]


def test_flags_load():
    flags = seccomp.supported()["supportedFlags"]
    if not flags:
        pytest.skip("no seccomp filter flag supported here")
    out, _ = in_child(allow_all({"names": ["getppid"], "action": "SCMP_ACT_LOG"}, flags=flags),
                      lambda: call("getppid") > 0)
    assert out["result"] is True


def test_notify_hands_over_a_listener_fd():
    """The child sends its listener fd to the parent, which answers the
    intercepted getppid() with EBUSY (seccomp_unotify(2))."""
    if "SCMP_ACT_NOTIFY" not in seccomp.supported()["actions"]:
        pytest.skip("SCMP_ACT_NOTIFY unsupported")
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    getppid = nr("getppid")

    def probe():
        return call("getppid")

    rule = {"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}
    profile = allow_all(rule, listenerPath="/unused/in/this/test.sock")
    pid, r = fork_filtered(seccomp.build(profile), probe,
                           after_load=lambda fd: socket.send_fds(child_sock, [b"fd"], [fd]))
    child_sock.close()
    try:
        parent_sock.settimeout(10)
        _, fds, _, _ = socket.recv_fds(parent_sock, 16, 1)
        listener = fds[0]
        assert select.select([listener], [], [], 10)[0], "no notification within 10 s"
        # struct seccomp_notif: id u64, pid u32, flags u32, seccomp_data
        # (nr i32, arch u32, ip u64, args 6 * u64): 80 bytes.
        buf = bytearray(80)
        import fcntl

        fcntl.ioctl(listener, 0xC0502100, buf)  # SECCOMP_IOCTL_NOTIF_RECV
        notif_id, notif_pid, _, call_nr = struct.unpack_from("=QIIi", buf)
        assert notif_pid == pid and call_nr == getppid
        # struct seccomp_notif_resp: id u64, val s64, error s32, flags u32.
        resp = bytearray(struct.pack("=QqiI", notif_id, 0, -errno.EBUSY, 0))
        fcntl.ioctl(listener, 0xC0182101, resp)  # SECCOMP_IOCTL_NOTIF_SEND
        os.close(listener)
    finally:
        out, _ = collect(pid, r)
    assert out["fd"] >= 0
    assert out["result"] == -errno.EBUSY


def test_default_profile_blocks_keyctl_and_unshare():
    KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING = 0, -3
    CLONE_NEWUTS = 0x04000000

    def probe():
        return [call("keyctl", KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0),
                call("unshare", CLONE_NEWUTS), call("getppid") > 0]

    out, _ = in_child(default_profile(), probe)
    assert out["result"] == [-errno.EPERM, -errno.EPERM, True]


def test_exported_bpf_loads_without_libseccomp():
    """export_bpf() gives a program that seccomp(2) takes as it is."""
    import tempfile

    filt = seccomp.build(allow_all({"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 7}))
    with tempfile.TemporaryFile() as tmp:
        filt.export_bpf(tmp.fileno())
        tmp.seek(0)
        program = tmp.read()
    assert program and len(program) % 8 == 0  # struct sock_filter
    assert filt.kernel_flags() == 0

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

    def probe():
        prog = SockFprog(len(program) // 8, program)
        SECCOMP_SET_MODE_FILTER = 1
        rc = call("seccomp", SECCOMP_SET_MODE_FILTER, 0, ctypes.addressof(prog))
        return [rc, call("getppid")]

    # An empty filter from build() for in_child to load first: allow all.
    out, _ = in_child({"defaultAction": "SCMP_ACT_ALLOW"}, probe)
    assert out["result"] == [0, -7]


@pytest.mark.skipif(os.geteuid() != 0, reason="drops root to show the need for CAP_SYS_ADMIN")
def test_load_needs_no_new_privs_or_cap_sys_admin():
    """The filter does not set no_new_privs itself (SCMP_FLTATR_CTL_NNP off):
    without it and without CAP_SYS_ADMIN, seccomp(2) refuses with EACCES."""
    from pyrun.errors import SyscallError

    filt = seccomp.build(allow_all({"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)  # clears the capability sets
            try:
                filt.load()
                out = {"errno": 0}
            except SyscallError as e:
                out = {"errno": e.errno}
        except BaseException as e:  # noqa: BLE001
            out = {"error": repr(e)}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    data = os.read(r, 65536)
    os.close(r)
    os.waitpid(pid, 0)
    assert json.loads(data) == {"errno": errno.EACCES}


def _numbered_names(highest: int) -> list[str]:
    """Every x86_64 system call numbered up to ``highest`` that libseccomp knows."""
    header = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"
    if os.uname().machine != "x86_64" or not os.path.exists(header):
        pytest.skip(f"needs x86_64 and {header}")
    names = []
    with open(header) as f:
        for line in f:
            words = line.split()
            if len(words) == 3 and words[0] == "#define" and words[1].startswith("__NR_"):
                name = words[1][len("__NR_"):]
                if int(words[2]) <= highest and seccomp.resolve(name) is not None:
                    names.append(name)
    return names


def test_a_call_newer_than_the_profile_gets_enosys():
    """Issue 23 item 12, as runc's -ENOSYS stub: a deny-by-default profile
    written before a system call existed makes that call fail with ENOSYS
    (a new libc then falls back to the older call), while a call the
    profile knows of and does not allow gets the default action. Failed
    before (io_uring_setup, 425, got EPERM)."""
    allowed = [n for n in _numbered_names(334) if n != "getppid"]  # 334: rseq, Linux 4.18
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
               "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]}
    out, _ = in_child(profile, lambda: [call("io_uring_setup", 0, 0), call("getppid")])
    assert out["result"] == [-errno.ENOSYS, -errno.EPERM]
    # an allowing default, or an explicit defaultErrnoRet of ENOSYS, needs no stub
    assert seccomp.build(dict(profile, defaultAction="SCMP_ACT_ALLOW",
                              syscalls=[{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}])).enosys_stub() == b""
