"""Undoing ``create``: what ``delete`` and a ``create`` that fails remove,
in reverse of the order it was made (the network, the cgroup, the writable
layer, the state directory last).

Apart from :mod:`pyrun.container.lifecycle` so that ``create``, which calls
it when a step fails, and ``delete`` both import it without importing each
other.
"""

from __future__ import annotations

import _signal as signal  # signal.py's C core: signal.py builds IntEnums at import (enum)
import os

from pyrun.container.state import Record, StateDir, is_alive
from pyrun.errors import PyrunError
from pyrun.log import log


def remove_everything(sd: StateDir, rec: Record) -> None:
    """What a dead creator or a stopped container left: network, cgroup(s),
    layer dir, state dir (in that order: the record goes last). Each step
    is tried even when one before it failed, as runc's destroy does: a
    cgroup that cannot be removed must not leave the container's writable
    layer behind. The record stays then, so that a later delete finishes
    the job; the first error is raised."""
    from pyrun.container.state import lexists

    errors: list[PyrunError] = []
    if lexists(sd.file("netns")):  # linux.netDevices: back to the host
        from pyrun.net import netdevices

        _attempt(errors, netdevices.detach, sd.path)
    _attempt(errors, _remove_network, sd, rec)
    _attempt(errors, remove_cgroup, rec)
    if errors:
        _attempt(errors, remove_state, sd, rec, False)
        raise errors[0]
    remove_state(sd, rec)


def _attempt(errors: list, step, *args) -> None:
    try:
        step(*args)
    except PyrunError as e:
        errors.append(e)


def _remove_network(sd: StateDir, rec: Record) -> None:
    """Undo what create's _prepare_network and _attach_network did; idempotent, so a
    delete after a killed pyrun finishes the job."""
    if not rec.net:
        return
    if rec.net.get("helper_pid") and is_alive(rec.net["helper_pid"], rec.net.get("helper_start", 0)):
        from pyrun.net.slirp import stop

        stop(rec.net["helper_pid"])
    elif rec.net.get("mode") in ("slirp4netns", "pasta"):
        # create was killed between starting the helper and recording it:
        # find it by the state dir its command line names (its API socket,
        # its pid file). It outlives the namespace: nothing else stops it.
        from pyrun.net.slirp import stop

        for pid in _helpers_of(sd.path):
            stop(pid)
    if rec.net.get("mode") == "bridge":
        from pyrun.net import bridge

        bridge.detach(sd.path)


def _helpers_of(state_path: str) -> list[int]:
    """Our processes whose command line names a file of ``state_path``."""
    needle = (state_path + "/").encode()
    me = os.geteuid()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid != me:
                continue
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if needle in f.read():
                    found.append(int(name))
        except OSError:
            continue
    return [pid for pid in found if pid != os.getpid()]


def remove_cgroup(rec: Record) -> None:
    """What is left in the container's cgroup (exec'd processes of a
    container without a pid namespace) is killed; then rmdir(2). A cgroup
    only pending (create died before it said it had made it) is removed if
    it exists and is empty: it may be someone else's."""
    from pyrun.cgroups import open_cgroup

    if rec.cgroup_pending:
        pending = open_cgroup(rec.cgroup_pending)
        if pending.exists() and not pending.pids():
            pending.remove()
    if not rec.cgroup:
        return

    cg = open_cgroup(rec.cgroup)
    if (rec.cgroup_shared or rec.own_pid_ns) and _others_left(cg):
        # what was there before the container, or joined its cgroup since
        # (another container with the same cgroupsPath, runc warns and runs
        # it), is not ours to kill: the cgroup stays while it is (runc 1.1
        # leaves it too). With its own pid namespace, the container's
        # processes all died with PID 1.
        log.warning(f"cgroup {rec.cgroup.split(chr(10))[0]} still has processes the container did not start: "
                    "left in place")
        return
    if cg.pids():
        if not cg.kill():
            for pid in cg.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    cg.remove()


def _others_left(cg, wait: float = 1.0) -> bool:
    """Processes still in the cgroup after ``wait`` s: the container's own
    last ones may still be leaving cgroup.procs when PID 1 is reaped."""
    import time

    deadline = time.monotonic() + wait
    while cg.pids():
        if time.monotonic() > deadline:
            return True
        time.sleep(0.01)
    return False


def remove_state(sd: StateDir, rec: Record, record_too: bool = True) -> None:
    """Remove the layer dir, then the state dir (``record_too``). Rootless with id ranges,
    the container may have made files owned by subordinate ids, which we
    cannot remove as ourselves: then remove them as root of a user
    namespace with the same maps."""
    from pyrun.container.state import remove_tree

    layers = [rec.layers] if rec.layers else []
    if rec.layers and not os.path.basename(rec.layers).startswith(sd.id + "."):
        # planning.layer_dir's name, always: a record that says otherwise was not
        # written by create, and what it names is not removed.
        log.warning(f"layer dir {rec.layers} in the record of {sd.id!r} is not one pyrun made: left alone")
        layers = []
    for path in layers + ([sd.path] if record_too else []):
        try:
            remove_tree(path)
        except PyrunError:
            if os.geteuid() == 0 or len(rec.uid_mappings) + len(rec.gid_mappings) <= 2:
                raise
            run_as_mapped_root(rec.uid_mappings, rec.gid_mappings, remove_tree, path)


def run_as_mapped_root(uid_maps: list[list[int]], gid_maps: list[list[int]], fn, *args) -> None:
    """Call ``fn(*args)`` in a child that is root of a new user namespace with
    these maps (what ``podman unshare`` does), and wait for it."""
    from pyrun.kernel import namespaces
    from pyrun.kernel.idmap import write_id_maps
    from pyrun.stages.channel import Channel, Msg

    host_end, child_end = Channel.pair()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            host_end.close()
            namespaces.unshare_user()
            child_end.send(Msg.IDMAP)
            child_end.expect(Msg.IDMAP_DONE)
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
            fn(*args)
            child_end.send(Msg.DONE)
            code = 0
        except BaseException as e:  # noqa: BLE001
            try:
                child_end.send(Msg.ERROR, message=str(e))
            except OSError:
                pass
        os._exit(code)
    child_end.close()
    try:
        host_end.expect(Msg.IDMAP)
        write_id_maps(pid, uid_maps, gid_maps)
        host_end.send(Msg.IDMAP_DONE)
        host_end.expect(Msg.DONE)
    finally:
        host_end.close()
        os.waitpid(pid, 0)
