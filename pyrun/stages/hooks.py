"""OCI hooks (config.md "POSIX-platform Hooks", runtime.md "Lifecycle").

Each hook is a program run with exactly its ``args`` and ``env``, the
container's state JSON on stdin, and an optional ``timeout`` in seconds.
A hook with no ``env`` gets what runc gives it (Go's exec.Cmd with a nil
Env inherits): the runtime's own environment for the hooks the runtime runs
(prestart, createRuntime, poststart, poststop), the process's environment
for those run in the container's init (createContainer, startContainer).
When and where:

============== ============================== =========================
hook           when                           namespaces
============== ============================== =========================
prestart       create, before pivot_root      the runtime's (deprecated)
createRuntime  create, before pivot_root      the runtime's
createContainer create, before pivot_root     the container's
startContainer start, before the user process the container's (its root)
poststart      start, after the process runs  the runtime's
poststop       delete, after the container    the runtime's
============== ============================== =========================

A failing hook before the user process runs aborts (create undoes
everything; startContainer stops the container); poststart and poststop
failures are warnings, as the spec says.

Hooks are started with posix_spawn(3) and waited on through a pidfd.
startContainer hooks are run by the sealed pyrun-init instead (native/init.c,
from :func:`pyrun.stages.pid1.hooks_blob`): a hook started from Python would run
with the host's interpreter as /proc/self/exe (CVE-2019-5736).
"""

from __future__ import annotations

import _signal as signal  # signal.py's C core: signal.py builds IntEnums at import (enum)
import os
import select

from pyrun import jsonio
from pyrun.errors import PyrunError, errno_text


class HookFailed(PyrunError):
    pass


def state_json(oci_version: str, container_id: str, status: str, pid: int, bundle: str,
               annotations: dict) -> bytes:
    """The state on a hook's stdin: the bytes runc writes (specs.State
    marshalled by Go: compact, its field order, pid and annotations left
    out when empty)."""
    state = {"ociVersion": oci_version, "id": container_id, "status": status}
    if pid:
        state["pid"] = pid
    state["bundle"] = bundle
    if annotations:
        state["annotations"] = annotations
    return jsonio.go(state).encode()


def run(hook, state: bytes, kind: str, index: int, default_env: list[str] | None = None) -> None:
    """Run one hook to completion; raise :class:`HookFailed` naming it
    (``hooks.createRuntime[0] /usr/bin/x``) if it fails or times out.
    ``default_env``: the environment of a hook without ``env``; None for
    our own (os.environ)."""
    where = f"hooks.{kind}[{index}] {hook.path}"
    if hook.env is None and default_env is None:
        env = os.environ
    else:
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in
                   (hook.env if hook.env is not None else default_env))
    r, w = os.pipe()
    try:
        pid = os.posix_spawn(hook.path, hook.args or [hook.path], env,
                             file_actions=[(os.POSIX_SPAWN_DUP2, r, 0), (os.POSIX_SPAWN_CLOSE, w)])
    except OSError as e:
        os.close(r)
        os.close(w)
        raise HookFailed(f"{where}: {errno_text(e)}") from None
    os.close(r)
    try:
        os.write(w, state)  # the state is small: it fits the pipe
    except OSError:
        pass  # a hook that does not read its stdin is fine
    os.close(w)
    pidfd = os.pidfd_open(pid)
    try:
        if not select.select([pidfd], [], [], hook.timeout)[0]:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise HookFailed(f"{where}: timed out after {hook.timeout} s")
    finally:
        os.close(pidfd)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        raise HookFailed(f"{where}: {how}")


def run_all(hooks: list, state: bytes, kind: str, default_env: list[str] | None = None) -> None:
    for i, hook in enumerate(hooks):
        run(hook, state, kind, i, default_env)


def run_all_warn(hooks: list, state: bytes, kind: str) -> None:
    """poststart, poststop: a failure is logged; the others still run."""
    from pyrun.log import log

    for i, hook in enumerate(hooks):
        try:
            run(hook, state, kind, i)
        except HookFailed as e:
            log.warning(str(e))
