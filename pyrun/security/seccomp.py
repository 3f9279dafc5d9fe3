"""``linux.seccomp`` → a libseccomp filter, loaded last before exec.

The config model parsed ``linux.seccomp`` into records when config.json
was loaded (:mod:`pyrun.config.syscall_filter`: every error of the JSON a
:class:`~pyrun.errors.ConfigError` naming the field, e.g.
``linux.seccomp.syscalls[3].action``). :func:`build` compiles those records
into a libseccomp filter context, refusing, with the field's path, what
this host's libseccomp or kernel cannot do; :meth:`Filter.load` installs it in the calling process
(seccomp(2) ``SECCOMP_SET_MODE_FILTER`` through seccomp_load(3)).
:func:`supported` is what ``pyrun features`` reports.

Semantics follow runc, the reference for what a config means:

* ``SCMP_ACT_ERRNO`` and ``SCMP_ACT_TRACE`` return ``errnoRet`` (or
  ``defaultErrnoRet``), EPERM when unset; other actions refuse it (as crun).
* A syscall name libseccomp does not know (newer than this libseccomp, or a
  typo) in an ``SCMP_ACT_ALLOW`` rule is skipped with a debug message, not an
  error: engines' profiles allow calls newer than the host's libseccomp. In
  any other rule it would be a denial silently dropped (runc drops it), so
  its number comes from :data:`NEWER_SYSCALLS` (the kernel's table), and a
  name not there, or a filter for other architectures too, is refused with
  the rule's JSON path. A name known only on other architectures (``vm86``
  on x86_64) applies where it exists.
* A rule whose action equals the default action is skipped: it changes
  nothing, and libseccomp refuses it.
* ``args`` are ANDed in one rule (seccomp_rule_add(3)); when two of them
  compare the same argument they are instead added as one rule each, ORed,
  as runc does.
* The filter does not set no_new_privs itself (``SCMP_FLTATR_CTL_NNP`` off):
  ``process.noNewPrivileges`` decides. Loading a filter without
  no_new_privs needs CAP_SYS_ADMIN (seccomp(2)).
* ``SCMP_ACT_NOTIFY`` needs ``listenerPath`` and may not be the default
  action or apply to ``write`` (the runtime must still be able to hand the
  listener fd over).
* ``SCMP_ACT_KILL`` is ``SCMP_ACT_KILL_THREAD``, as in libseccomp.
* A system call newer than every one the profile names gets ENOSYS, not a
  denying default action (runc's -ENOSYS stub): a libc newer than the
  profile then falls back to the calls it knows (clone3 to clone).
"""

from __future__ import annotations

import errno
import os
import struct

from pyrun._native import ffi, lib
from pyrun.errors import ConfigError, SyscallError, errno_text
from pyrun.config import syscall_filter as sf
from pyrun.config.syscall_filter import Rule, Seccomp
from pyrun.record import field, record

BASE = sf.BASE

# seccomp(2) return actions, as libseccomp encodes them (seccomp.h).
ACT_KILL_PROCESS = lib.SCMP_ACT_KILL_PROCESS
ACT_KILL_THREAD = lib.SCMP_ACT_KILL_THREAD
ACT_TRAP = lib.SCMP_ACT_TRAP
ACT_NOTIFY = lib.SCMP_ACT_NOTIFY
ACT_LOG = lib.SCMP_ACT_LOG
ACT_ALLOW = lib.SCMP_ACT_ALLOW


def act_errno(value: int) -> int:
    """SCMP_ACT_ERRNO(value): the call fails with errno ``value``."""
    return lib.PYRUN_SCMP_ACT_ERRNO_BASE | (value & 0xFFFF)


def act_trace(value: int) -> int:
    """SCMP_ACT_TRACE(value): a ptrace(2) tracer is told, with ``value``."""
    return lib.PYRUN_SCMP_ACT_TRACE_BASE | (value & 0xFFFF)


# OCI action names: those without a value, and those taking errnoRet.
_FIXED = {
    "SCMP_ACT_KILL": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": ACT_KILL_PROCESS,
    "SCMP_ACT_TRAP": ACT_TRAP,
    "SCMP_ACT_ALLOW": ACT_ALLOW,
    "SCMP_ACT_LOG": ACT_LOG,
    "SCMP_ACT_NOTIFY": ACT_NOTIFY,
}
_WITH_VALUE = {"SCMP_ACT_ERRNO": act_errno, "SCMP_ACT_TRACE": act_trace}
ACTIONS = sf.ACTIONS
assert set(_FIXED) == set(sf.FIXED_ACTIONS) and set(_WITH_VALUE) == set(sf.VALUE_ACTIONS)

# The comparisons, by the names the config model checked.
OPERATORS = {name: getattr(lib, name) for name in sf.OPERATORS}

ARCHS = sf.ARCHS

# seccomp(2) filter flags → the libseccomp attribute that sets each.
FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": lib.SCMP_FLTATR_CTL_TSYNC,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": lib.SCMP_FLTATR_CTL_SSB,
    "SECCOMP_FILTER_FLAG_LOG": lib.SCMP_FLTATR_CTL_LOG,
}
assert set(FLAGS) == set(sf.FLAGS)

# System calls newer than the table of libseccomp 2.5.4 (which ends at
# futex_requeue, 456), with their numbers in the kernel's table. Since
# Linux 5.1 a new call gets one number on every architecture (asm-generic
# and arch/*/entry/syscalls alike), except where the ABI adds an offset:
# mips (4000/5000/6000), alpha (+110) and x32 (bit 30) are left out.
NEWER_SYSCALLS = {
    "statmount": 457, "listmount": 458, "lsm_get_self_attr": 459, "lsm_set_self_attr": 460,
    "lsm_list_modules": 461, "mseal": 462, "setxattrat": 463, "getxattrat": 464,
    "listxattrat": 465, "removexattrat": 466, "open_tree_attr": 467, "file_getattr": 468,
    "file_setattr": 469,
}
_UNIFORM_MACHINES = ("x86_64", "i686", "i386", "aarch64", "armv7l", "armv8l", "riscv64", "s390x",
                     "ppc64le", "ppc64", "ppc", "loongarch64", "parisc", "parisc64")


def kernel_number(name: str) -> int | None:
    """``name``'s number on this machine from :data:`NEWER_SYSCALLS`, or None."""
    if os.uname().machine not in _UNIFORM_MACHINES:
        return None
    return NEWER_SYSCALLS.get(name)


# The ENOSYS stub's instructions (linux/bpf_common.h: class | size | mode |
# op | src), and each machine's AUDIT_ARCH_* (linux/audit.h) with its OCI name.
_LD_ABS, _JA, _JEQ, _JGT, _JSET, _RET = 0x20, 0x05, 0x15, 0x25, 0x45, 0x06
_NATIVE = {"x86_64": (0xC000003E, "SCMP_ARCH_X86_64"), "aarch64": (0xC00000B7, "SCMP_ARCH_AARCH64")}


def action_number(name: str, errno_ret: int | None) -> int:
    """libseccomp's action for a checked action name (and its errnoRet:
    EPERM when unset, as runc)."""
    if name in _WITH_VALUE:
        return _WITH_VALUE[name](errno.EPERM if errno_ret is None else errno_ret)
    return _FIXED[name]


# --- the filter --------------------------------------------------------------

def _check_rc(rc: int, call: str, detail: str = "") -> int:
    if rc < 0:
        raise SyscallError(call, -rc, detail)
    return rc


def _lib_arch(name: str) -> str:
    """"SCMP_ARCH_X86_64" → "x86_64", libseccomp's name."""
    return name.removeprefix("SCMP_ARCH_").lower()


def _number(name: str) -> int | None:
    """``name``'s number: libseccomp's, else the kernel's (:func:`kernel_number`)."""
    nr = resolve(name)
    return kernel_number(name) if nr is None else nr


def resolve(name: str) -> int | None:
    """The system call number libseccomp gives ``name`` on this machine's
    architecture (seccomp_syscall_resolve_name(3)): negative for a call that
    exists only on other architectures; None when libseccomp does not know
    the name."""
    nr = ffi.new("int *")
    if lib.pyrun_seccomp_syscall_resolve(name.encode(), nr) < 0:
        return None
    return nr[0]


class _Context:
    """Owns a libseccomp filter context (seccomp_init(3)/seccomp_release(3))."""

    def __init__(self, default_action: int):
        self.ptr = lib.pyrun_seccomp_init(default_action)
        if self.ptr == ffi.NULL:
            raise SyscallError("seccomp_init", errno.EINVAL, f"default action {default_action:#x}")

    def attr(self, attr: int, value: int) -> int:
        return lib.pyrun_seccomp_attr_set(self.ptr, attr, value)

    def rule(self, action: int, nr: int, args: list[sf.Arg]) -> int:
        cmps = ffi.new("struct pyrun_arg_cmp[]", max(len(args), 1))
        for i, a in enumerate(args):
            cmps[i].arg, cmps[i].op, cmps[i].datum_a, cmps[i].datum_b = a.index, OPERATORS[a.op], a.value, a.value_two
        return lib.pyrun_seccomp_rule_add(self.ptr, action, nr, len(args), cmps)

    def __del__(self) -> None:
        if getattr(self, "ptr", ffi.NULL) != ffi.NULL:
            lib.pyrun_seccomp_release(self.ptr)
            self.ptr = ffi.NULL


@record
class Filter:
    """A checked ``linux.seccomp``, compiled into a libseccomp context."""

    default_action: int
    architectures: list[str] = field(default_factory=list)  # OCI names
    flags: list[str] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    listener_path: str | None = None
    listener_metadata: str = ""
    skipped: list[str] = field(default_factory=list)  # names libseccomp does not know
    _ctx: _Context | None = field(default=None, repr=False, compare=False)
    _program: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def notify(self) -> bool:
        """True when some rule is SCMP_ACT_NOTIFY: load() returns a listener fd."""
        return any(r.action == "SCMP_ACT_NOTIFY" for r in self.rules)

    def _compile(self) -> None:
        from pyrun.log import log

        self.skipped = []
        self._program = None
        ctx = _Context(self.default_action)
        # no_new_privs is process.noNewPrivileges' business, not the filter's.
        _check_rc(ctx.attr(lib.SCMP_FLTATR_CTL_NNP, 0), "seccomp_attr_set(CTL_NNP)")
        for i, arch in enumerate(self.architectures):
            rc = lib.pyrun_seccomp_arch_add(ctx.ptr, _lib_arch(arch).encode())
            if rc == -errno.EINVAL:
                raise ConfigError(f"{BASE}.architectures[{i}]",
                                  f"{arch} is not supported by libseccomp {version()}")
            _check_rc(rc, "seccomp_arch_add", arch)
        for i, flag in enumerate(self.flags):
            rc = ctx.attr(FLAGS[flag], 1)
            if rc < 0:
                raise ConfigError(f"{BASE}.flags[{i}]",
                                  f"{flag} is not supported by this kernel or libseccomp: {errno_text(-rc)}")
        count = 0
        for rule in self.rules:
            action = action_number(rule.action, rule.errno_ret)
            if action == self.default_action:
                continue  # no effect, and libseccomp refuses it (EACCES)
            indexes = [a.index for a in rule.args]
            if len(set(indexes)) == len(indexes):
                arg_sets = [rule.args]
            else:  # runc: comparisons of one argument are ORed, one rule each
                arg_sets = [[a] for a in rule.args]
            for j, name in enumerate(rule.names):
                nr = resolve(name)
                by_number = False
                if nr is None and action == ACT_ALLOW:
                    log.debug_msg(f"seccomp: unknown system call {name!r} ignored ({rule.path})")
                    self.skipped.append(name)
                    continue
                if nr is None:  # a denial: enforced by number, or refused
                    nr, by_number = kernel_number(name), True
                    if nr is None:
                        raise ConfigError(f"{rule.path}.names[{j}]",
                                          f"unknown system call {name!r} (libseccomp {version()}): "
                                          f"a {rule.action} rule for it cannot be enforced")
                for args in arg_sets:
                    rc = ctx.rule(action, nr, args)
                    if rc < 0 and by_number:
                        raise ConfigError(f"{rule.path}.names[{j}]",
                                          f"libseccomp {version()} does not know {name}: its number {nr} "
                                          f"is known for {os.uname().machine} only, and the filter is for "
                                          f"other architectures too ({errno_text(-rc)})")
                    if rc < 0:
                        raise ConfigError(f"{rule.path}.names[{j}]",
                                          f"libseccomp refused the rule for {name}: {errno_text(-rc)}")
                    count += 1
        if count > 32:
            # libseccomp's binary tree of syscalls: shorter filters for long
            # profiles. Best effort (runc avoids it for small rule sets).
            ctx.attr(lib.SCMP_FLTATR_CTL_OPTIMIZE, 2)
        self._ctx = ctx

    def _context(self) -> _Context:
        if self._ctx is None:
            self._compile()
        assert self._ctx is not None
        return self._ctx

    def export_bpf(self, fd: int) -> None:
        """Write the filter as a BPF program (struct sock_filter[], 8 bytes
        an instruction) to ``fd`` (seccomp_export_bpf(3)), for a loader
        without libseccomp: seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog),
        where flags must then carry what :meth:`kernel_flags` says."""
        _check_rc(lib.pyrun_seccomp_export_bpf(self._context().ptr, fd), "seccomp_export_bpf")

    def kernel_flags(self) -> int:
        """The seccomp(2) SECCOMP_FILTER_FLAG_* bits seccomp_load(3) would
        pass: the config's flags, and NEW_LISTENER for SCMP_ACT_NOTIFY
        (with TSYNC, then TSYNC_ESRCH: the kernel refuses the pair alone)."""
        bits = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2,
                "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}
        value = sum(bits[f] for f in set(self.flags))
        if self.notify:
            value |= 8 | (16 if value & 1 else 0)  # NEW_LISTENER, TSYNC_ESRCH
        return value

    def program(self) -> bytes:
        """The filter as seccomp(2) takes it (struct sock_filter[]):
        libseccomp's program (seccomp_export_bpf(3)) behind :meth:`enosys_stub`."""
        if self._program is None:
            fd = os.memfd_create("pyrun-bpf", os.MFD_CLOEXEC)
            try:
                self.export_bpf(fd)
                exported = os.pread(fd, os.fstat(fd).st_size, 0)
            finally:
                os.close(fd)
            self._program = self.enosys_stub() + exported
        return self._program

    def enosys_stub(self) -> bytes:
        """runc's -ENOSYS stub (libcontainer/seccomp/patchbpf), for this
        machine's architecture when the profile lists it: a system call
        numbered above every one the profile names fails with ENOSYS, so a
        libc newer than the profile falls back to older calls, where the
        default action would make it fail for good. Only when the default
        denies (not ALLOW, LOG or TRACE, nor ENOSYS already). x32 numbers
        (bit 30) go to the filter unchanged."""
        arch = _NATIVE.get(os.uname().machine)
        if arch is None or arch[1] not in self.architectures:
            return b""
        if (self.default_action in (ACT_ALLOW, ACT_LOG, act_errno(errno.ENOSYS))
                or self.default_action & 0xFFFF0000 == lib.PYRUN_SCMP_ACT_TRACE_BASE):
            return b""
        numbers = [n for rule in self.rules for n in map(_number, rule.names) if n is not None and n >= 0]
        if not numbers:
            return b""
        filt, enosys = "filter", "enosys"
        insns = [(_LD_ABS, 0, 0, 4),                     # A = seccomp_data.arch
                 (_JEQ, 0, filt, arch[0]),
                 (_LD_ABS, 0, 0, 0)]                     # A = seccomp_data.nr
        if arch[1] == "SCMP_ARCH_X86_64":
            insns.append((_JSET, filt, 0, 0x40000000))  # __X32_SYSCALL_BIT
        insns += [(_JGT, enosys, 0, max(numbers)),
                  (_JA, 0, 0, filt),
                  (_RET, 0, 0, act_errno(errno.ENOSYS))]
        where = {filt: len(insns), enosys: len(insns) - 1}
        out = b""
        for i, (code, jt, jf, k) in enumerate(insns):
            def rel(t):
                return where[t] - i - 1 if isinstance(t, str) else t
            out += struct.pack("=HBBI", code, rel(jt), rel(jf), rel(k) if code == _JA else k)
        return out

    def load(self) -> int | None:
        """Install :meth:`program` in the calling thread (seccomp(2), as
        seccomp_load(3) would); with SECCOMP_FILTER_FLAG_TSYNC, in all its threads.

        Needs no_new_privs or CAP_SYS_ADMIN (seccomp(2): EACCES otherwise).
        Returns the listener fd (SECCOMP_FILTER_FLAG_NEW_LISTENER) when a rule is
        SCMP_ACT_NOTIFY — the caller sends it to ``listener_path`` — else
        None. Raises :class:`SyscallError`.
        """
        prog = self.program()
        fd = _check_rc(lib.pyrun_seccomp_set_filter(self.kernel_flags(), ffi.from_buffer(prog), len(prog) // 8),
                       "seccomp(SECCOMP_SET_MODE_FILTER)")
        return fd if self.notify else None


def build(seccomp: Seccomp | dict) -> Filter:
    """Compile a checked ``linux.seccomp`` (libseccomp context ready for
    :meth:`Filter.load`); a dict is checked first (:func:`pyrun.config.syscall_filter.parse`).
    Raises :class:`ConfigError` for what this host's libseccomp or kernel cannot do."""
    if not isinstance(seccomp, Seccomp):
        seccomp = sf.parse(seccomp)
    f = Filter(action_number(seccomp.default_action, seccomp.default_errno_ret), seccomp.architectures,
               seccomp.flags, seccomp.syscalls, seccomp.listener_path, seccomp.listener_metadata)
    f._compile()
    return f


# --- what works here ---------------------------------------------------------

def version() -> str:
    """libseccomp's version, "2.5.4" (seccomp_version(3)), for the errors
    above. (``pyrun --version`` asks the native module itself: importing
    this module costs it 3 ms.)"""
    buf = ffi.new("char[]", 32)
    lib.pyrun_seccomp_version(buf, 32)
    return ffi.string(buf).decode()


def api_level() -> int:
    """seccomp_api_get(3): 1..6 for what libseccomp and this kernel support
    (2 TSYNC, 3 LOG, 4 SPEC_ALLOW, 5 NOTIFY, 6 NOTIFY with TSYNC)."""
    return lib.pyrun_seccomp_api_get()


def _action_works(action: int) -> bool:
    """libseccomp accepts a rule with ``action`` only when the kernel has it
    (it asks with seccomp(2) SECCOMP_GET_ACTION_AVAIL)."""
    ctx = _Context(ACT_KILL_PROCESS if action == ACT_ALLOW else ACT_ALLOW)
    nr = resolve("getpid")
    return nr is not None and ctx.rule(action, nr, []) == 0


def supported() -> dict:
    """``linux.seccomp`` of ``pyrun features`` (runtime-spec features.md):
    only the actions, flags and architectures that work with this kernel and
    this libseccomp."""
    actions = [name for name in ACTIONS
               if _action_works(_FIXED[name] if name in _FIXED else _WITH_VALUE[name](errno.EPERM))]
    if api_level() < 5 and "SCMP_ACT_NOTIFY" in actions:
        actions.remove("SCMP_ACT_NOTIFY")
    probe = _Context(ACT_ALLOW)
    flags = [name for name, attr in FLAGS.items() if probe.attr(attr, 1) == 0]
    archs = [a for a in ARCHS if lib.pyrun_seccomp_arch_known(_lib_arch(a).encode()) == 0]
    return {
        "enabled": True,
        "actions": actions,
        "operators": sorted(OPERATORS),
        "archs": sorted(archs),
        "knownFlags": list(FLAGS),
        "supportedFlags": flags,
    }
