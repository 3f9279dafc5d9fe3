"""The container's last execve(2), from pyrun's sealed native binary.

The rule: the container's first instruction never runs in a process whose
exe is a host file. An entrypoint that is a script starting
``#!/proc/self/exe`` makes the kernel resolve ``/proc/self/exe`` in the
process that calls execve(2); were that pyrun's Python, the image's own
ELF interpreter would run the image's code with the host's interpreter as
its exe, and root in the container could rewrite it (CVE-2019-5736). So
Python makes every setup step and then execveat(2)s ``native/init.c``,
copied into a memfd sealed against writes; that binary makes the rest
(waits on exec.fifo, loads the seccomp filter, runs startContainer hooks)
and executes the program: ``/proc/self/exe`` is then an anonymous,
immutable file, from before ``pyrun start`` (PID 1 of a created container
is that binary, with the container's environment only) to the end.

As the container's init (``--init``) the same binary stays PID 1: in a PID
namespace, PID 1 must reap orphaned zombies and pass on signals (the kernel
drops signals PID 1 has no handler for), which most entrypoints do not do.
"""

from __future__ import annotations

import fcntl
import os

from pyrun.kernel import syscalls as sc
from pyrun.errors import PyrunError, errno_text
from pyrun.record import record

INIT_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "_bin", "pyrun-init")

_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


def sealed_init_memfd() -> int:
    """memfd_create(2) + sendfile(2) + F_ADD_SEALS: an executable nobody can
    modify. sendfile copies inside the kernel, page cache to memfd: the
    bytes never pass through Python."""
    try:
        src = os.open(INIT_PATH, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise PyrunError(f"native init {INIT_PATH}: {errno_text(e)} (reinstall pyrun: pip install .)") from None
    fd = -1
    try:
        size = os.fstat(src).st_size
        fd = os.memfd_create("pyrun-init", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        offset = 0
        while offset < size:
            sent = os.sendfile(fd, src, offset, size - offset)
            if sent == 0:
                raise PyrunError(f"native init {INIT_PATH}: shorter than its size (reinstall pyrun)")
            offset += sent
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
    except BaseException:
        if fd >= 0:
            os.close(fd)  # this runs in the host now, which lives on (library use, `run`)
        raise
    finally:
        os.close(src)
    return fd


@record
class Handover:
    """The descriptors the sealed binary gets (its command line: native/init.c).
    Each is made inheritable before any seccomp filter (builder._prepare_process)
    and close-on-exec again by the binary."""

    fifo: int = -1       # exec.fifo, O_PATH: wait for ``pyrun start``
    state_dir: int = -1  # or the state directory (a container without /proc)
    hooks: int = -1      # a memfd: the startContainer hooks (hooks_blob)
    chan: int = -1       # exec's channel: a failed execve(2) is reported there

    def fds(self) -> list[int]:
        return [fd for fd in (self.fifo, self.state_dir, self.hooks, self.chan) if fd >= 0]


def hooks_blob(hooks: list, state: bytes, default_env: list[str]) -> bytes:
    """The startContainer hooks as native/init.c reads them: NUL-terminated
    strings, STATE COUNT {PATH TIMEOUT ARGC ARG... ENVC ENV...}."""
    out = [state.replace(b"\0", b""), str(len(hooks)).encode()]
    for hook in hooks:
        args = hook.args or [hook.path]
        env = hook.env if hook.env is not None else default_env
        out += [hook.path.encode(), str(hook.timeout or "").encode(), str(len(args)).encode()]
        out += [a.encode() for a in args]
        out += [str(len(env)).encode()] + [e.encode() for e in env]
    return b"\0".join(out) + b"\0"


def exec_process(sealed_fd: int, path: str, args: list[str], env: list[str], *, init: bool = False,
                 handover: Handover | None = None, caps: str = "", bpf: int = -1, bpf_flags: int = 0,
                 filtered: bool = False, label: tuple[str, str] | None = None) -> None:
    """execveat(2) the sealed binary, which executes ``path`` (``init``:
    runs it as its child). ``caps``: the sets it restores, "E:P:I:A"
    (capabilities.hand_over). ``bpf``: a seccomp filter it loads last.
    ``filtered``: a filter is in force already; should it refuse
    execveat(2) (profiles that know only execve), the memfd is executed by
    its /proc/self/fd name: the filter is loaded, so whatever that name
    resolves to runs under it, as the program would. ``label``: the
    /proc/self/attr file and what it writes there (pyrun.security.lsm)."""
    h = handover or Handover()
    argv = ["pyrun-init"] + (["-i"] if init else []) + (["-c", caps] if caps else [])
    for flag, fd in (("-f", h.fifo), ("-d", h.state_dir), ("-k", h.hooks), ("-e", h.chan)):
        if fd >= 0:
            argv += [flag, str(fd)]
    if bpf >= 0:
        os.set_inheritable(bpf, True)
        argv += ["-s", f"{bpf}:{bpf_flags}"]
    if label is not None:
        argv += ["-l", f"{label[0]}:{label[1]}"]
    argv += ["--", path] + args
    try:
        sc.execveat(sealed_fd, argv, env, shown="pyrun-init memfd")
    except PyrunError as e:
        import errno

        if not filtered or getattr(e, "errno", None) not in (errno.EPERM, errno.EACCES, errno.ENOSYS):
            raise
    # The name is the container's /proc: it must be a procfs that shows our memfd there.
    name = f"/proc/self/fd/{sealed_fd}"
    try:
        proc = os.open("/proc", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            ours = sc.fs_type(proc) == sc.PROC_SUPER_MAGIC and os.path.samestat(os.stat(name), os.fstat(sealed_fd))
        finally:
            os.close(proc)
        if not ours:
            raise PyrunError(f"exec pyrun-init: execveat(2) refused by the seccomp filter, and {name} is not it")
        environ = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
        os.execve(name, argv, environ)
    except OSError as e:
        raise PyrunError(f"exec pyrun-init: {errno_text(e)}") from None
