"""Cross-field rules of config.json: checks that relate several fields.

runc's libcontainer/configs/validate, made pure: a user namespace needs id
mappings (and mappings need a user namespace), a hostname needs a uts
namespace, masked and read-only paths need a mount namespace, a sysctl needs
the namespace that owns it. :func:`check` runs them on a parsed
:class:`~pyrun.config.spec.Spec` whose fields each passed their own type checks
(:mod:`pyrun.config.spec`); the first broken rule is a
:class:`~pyrun.errors.ConfigError` naming the JSON path of a field involved.
"""

from __future__ import annotations

from pyrun.errors import ConfigError
from pyrun.config.jsontypes import join, map_entry, quote
from pyrun.config.spec_names import IPC_SYSCTLS

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from pyrun.config.spec import IDMapping, Linux, Spec  # the records these rules read

__all__ = ["check", "check_mounts"]


def check(spec: Spec) -> None:
    """The rules between ``linux`` and the rest of the spec, runc's order."""
    _check_userns(spec.linux)
    _check_uts(spec)
    _check_restricted_paths(spec.linux)
    _check_sysctl(spec.linux)
    _check_linux(spec)


def check_mounts(spec: Spec) -> None:
    """Idmapped mounts against the spec's user namespace (runtime-spec 1.1)."""
    for i, m in enumerate(spec.mounts):
        if m.uid_mappings or "idmap" in m.options or "ridmap" in m.options:
            _check_idmapped_mount(m, f"mounts[{i}]", spec)


def _mapped(maps: list[IDMapping], ident: int) -> bool:
    return any(m.container_id <= ident < m.container_id + m.size for m in maps)


def _check_userns(linux: Linux) -> None:
    userns = next((ns for ns in linux.namespaces if ns.type == "user"), None)
    if userns is None:
        for key, maps in (("uidMappings", linux.uid_mappings), ("gidMappings", linux.gid_mappings)):
            if maps:
                kind = key[:3]
                raise ConfigError(
                    f"linux.{key}",
                    f"{kind} mappings specified, "
                    "but there is no user namespace in linux.namespaces",
                )
        return
    if userns.path is not None:
        # Joining an existing userns: its mappings are what they are.  runc
        # tolerates mappings here only if they match the namespace's; that
        # needs /proc, so the runtime checks it, not the parser.
        return
    for key, kind, maps in (
        ("uidMappings", "uid", linux.uid_mappings),
        ("gidMappings", "gid", linux.gid_mappings),
    ):
        if not maps:
            raise ConfigError(
                f"linux.{key}", f"user namespaces enabled, but no {kind} mappings found"
            )
        # runc computes the host id of container root (to chown devices and
        # the cgroup) and fails when root is unmapped.
        if not _mapped(maps, 0):
            raise ConfigError(
                f"linux.{key}",
                f"user namespaces enabled, but container {kind} 0 is not mapped",
            )


def _check_uts(spec: Spec) -> None:
    uts = spec.namespace("uts")
    for key, value in (("hostname", spec.hostname), ("domainname", spec.domainname)):
        if value is None:
            continue
        # A uts namespace joined by path is the container's too: runc sets
        # the name there (sethostname(2) needs CAP_SYS_ADMIN over its owner).
        if uts is None:
            raise ConfigError(key, f"unable to set {key} without a private uts namespace")


def _check_restricted_paths(linux: Linux) -> None:
    if any(ns.type == "mount" for ns in linux.namespaces):
        return
    for key, paths in (
        ("maskedPaths", linux.masked_paths),
        ("readonlyPaths", linux.readonly_paths),
    ):
        if paths:
            raise ConfigError(
                f"linux.{key}",
                "unable to restrict paths without a mount namespace in linux.namespaces",
            )


def _sysctl_dots(name: str) -> str:
    """runc's normalisation: "net/ipv4/conf/eth0.100/x" -> "net.ipv4.conf.eth0/100.x"."""
    for ch in name:
        if ch == ".":
            return name
        if ch == "/":
            return name.translate(str.maketrans("./", "/."))
    return name


def _check_sysctl(linux: Linux) -> None:
    """Only namespaced sysctls may be set, and only with their namespace.

    Matches runc's validator, except that a sysctl under ``net.`` is accepted
    when the network namespace is joined by path (runc then checks that the
    path is not the host's own netns; that needs stat, so the runtime does it).
    """
    kinds = {ns.type: ns for ns in linux.namespaces}
    for key in linux.sysctl:
        path = map_entry("linux.sysctl", key)
        name = _sysctl_dots(key)
        if name in IPC_SYSCTLS or name.startswith("fs.mqueue."):
            if "ipc" not in kinds:
                raise ConfigError(
                    path,
                    "sysctl is not allowed in the host's ipc namespace: "
                    "add an ipc namespace to linux.namespaces",
                )
            continue
        if name.startswith("net."):
            if "network" not in kinds:
                raise ConfigError(
                    path,
                    "sysctl is not allowed in the host's network namespace: "
                    "add a network namespace to linux.namespaces",
                )
            continue
        if "uts" in kinds:
            if name == "kernel.domainname":
                continue
            if name == "kernel.hostname":
                raise ConfigError(
                    path, 'sysctl conflicts with the "hostname" field: set that instead'
                )
        raise ConfigError(
            path,
            "sysctl is not in a separate kernel namespace: only ipc (kernel.msg*, kernel.sem, "
            "kernel.shm*, fs.mqueue.*), net.* and, with a uts namespace, kernel.domainname "
            "can be set",
        )


def _check_linux(spec: Spec) -> None:
    """Time offsets need a time namespace of the container's own, net devices a network namespace."""
    linux = spec.linux
    if linux.time_offsets:
        ns = spec.namespace("time")
        if ns is None:
            raise ConfigError("linux.timeOffsets", "time namespace offsets specified, "
                              "but there is no time namespace in linux.namespaces")
        if ns.path is not None:
            raise ConfigError("linux.timeOffsets", "cannot be set when joining an existing time namespace "
                              "(its offsets are fixed once a process has entered it)")
    if linux.net_devices:
        ns = spec.namespace("network")
        if ns is None:
            raise ConfigError("linux.netDevices", "needs a network namespace in linux.namespaces")


def _check_idmapped_mount(m, path: str, spec: Spec) -> None:
    """What pyrun can idmap: binds (as runc) and tmpfs (Linux 6.3+)."""
    bind = m.type == "bind" or "bind" in m.options or "rbind" in m.options
    if not bind and m.type != "tmpfs":
        raise ConfigError(path, f"idmapped mounts are supported for bind mounts and tmpfs, not {quote(m.type or '')}")
    if not m.uid_mappings and spec.namespace("user") is None:
        raise ConfigError(join(path, "options"), "idmap/ridmap without uidMappings use the container's "
                          "mappings, and there is no user namespace in linux.namespaces")
    if not m.uid_mappings and not (spec.linux.uid_mappings and spec.linux.gid_mappings):
        raise ConfigError(join(path, "options"), "idmap/ridmap without uidMappings need linux.uidMappings "
                          "and linux.gidMappings")
