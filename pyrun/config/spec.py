"""The bundle's config.json: load it, type-check it, turn it into records.

Pure logic (no syscalls beyond reading the file) and cheap to import.  Every
problem is a :class:`~pyrun.errors.ConfigError` naming the JSON path of the
offending field (``process.args[0]``, ``linux.namespaces[2].type``,
``annotations["key"]``) and saying what was expected.

Conventions, chosen to match how runc (Go's encoding/json) reads the file:

* an absent key and ``null`` mean the same thing: "not set";
* an empty string means "not set" for optional strings whose Go zero value
  is meaningful to runc (hostname, namespace path, cgroupsPath, ...);
* unknown keys, at any depth, are ignored (forward compatibility);
* integers must be JSON integers (no ``1.0``, no ``true``) within the range
  of the Go type the spec uses (uint32, int64, ...).

References are to the OCI runtime spec: config.md and config-linux.md.

This module keeps the records, the parsers and :func:`load`; the type
checks are :mod:`pyrun.config.jsontypes` (shared with seccomp and cgroups), the
name tables :mod:`pyrun.config.spec_names`, the rules that relate several fields
:mod:`pyrun.config.spec_rules`.
"""

from __future__ import annotations

import os

from pyrun.config.defaults import default_spec
from pyrun.errors import ConfigError, errno_text
from pyrun.config.jsontypes import (INT64_MAX, INT64_MIN, UINT32_MAX, UINT64_MAX, abs_path, array, boolean, check, get,
                             int_value, integer, join, map_entry, no_nul, objects, opt_str, optional_object, quote,
                             req_integer, str_list, str_map, type_name)
from pyrun.record import field, record
from pyrun.config.spec_names import (CAPABILITIES, DEVICE_TYPES, HOOK_KINDS, NAMESPACE_TYPES, RLIMITS,
                              ROOTFS_PROPAGATIONS)

__all__ = [
    "CAPABILITIES",
    "RLIMITS",
    "NAMESPACE_TYPES",
    "ROOTFS_PROPAGATIONS",
    "IDMapping",
    "User",
    "Rlimit",
    "Capabilities",
    "Process",
    "Root",
    "Mount",
    "Namespace",
    "Device",
    "Hook",
    "Hooks",
    "Linux",
    "Spec",
    "load",
    "parse",
    "require_process",
    "default_spec",
]

# --------------------------------------------------------------------------
# Dataclasses
# --------------------------------------------------------------------------


@record
class IDMapping:
    """One uid/gid map line (config-linux.md "User namespace mappings")."""

    container_id: int
    host_id: int
    size: int


@record
class User:
    """The process's identity (config.md "POSIX process", ``user``)."""

    uid: int = 0
    gid: int = 0
    umask: int | None = None
    additional_gids: list[int] = field(default_factory=list)


@record
class Rlimit:
    """A setrlimit(2) entry (config.md "POSIX process", ``rlimits``)."""

    type: str
    soft: int
    hard: int


@record
class Capabilities:
    """The five capability sets (config.md "Linux process", ``capabilities``)."""

    bounding: list[str] = field(default_factory=list)
    effective: list[str] = field(default_factory=list)
    inheritable: list[str] = field(default_factory=list)
    permitted: list[str] = field(default_factory=list)
    ambient: list[str] = field(default_factory=list)


@record
class Process:
    """The container process (config.md "Process").

    ``console_size`` is ``(height, width)``.
    """

    args: list[str]
    env: list[str] = field(default_factory=list)
    cwd: str = "/"
    user: User = field(default_factory=User)
    terminal: bool = False
    console_size: tuple[int, int] | None = None
    rlimits: list[Rlimit] = field(default_factory=list)
    no_new_privileges: bool = False
    oom_score_adj: int | None = None
    capabilities: Capabilities | None = None
    apparmor_profile: str | None = None
    selinux_label: str | None = None
    # process attributes (pyrun.config.process_attrs's records)
    scheduler: object = None
    io_priority: object = None
    exec_cpu_affinity: object = None


@record
class Root:
    """The root filesystem (config.md "Root"); ``path`` is absolute."""

    path: str
    readonly: bool = False


@record
class Mount:
    """One entry of ``mounts`` (config.md "Mounts"), in listed order."""

    destination: str
    type: str | None = None
    source: str | None = None
    options: list[str] = field(default_factory=list)
    # an idmapped mount (runtime-spec 1.1, pyrun.filesystem.mount_attrs)
    uid_mappings: list[IDMapping] = field(default_factory=list)
    gid_mappings: list[IDMapping] = field(default_factory=list)


@record
class Namespace:
    """A namespace to create, or join when ``path`` is set (config-linux.md "Namespaces")."""

    type: str
    path: str | None = None


@record
class Device:
    """A device node to create (config-linux.md "Devices"); type c, b, u or p."""

    type: str
    path: str
    major: int = 0
    minor: int = 0
    file_mode: int | None = None
    uid: int | None = None
    gid: int | None = None


@record
class Hook:
    """One hook command (config.md "POSIX-platform Hooks")."""

    path: str
    args: list[str] = field(default_factory=list)
    env: list[str] | None = None   # None (absent): the environment runc would give (hooks.run)
    timeout: int | None = None


@record
class Hooks:
    """All hook lists (config.md "POSIX-platform Hooks"); prestart is deprecated."""

    prestart: list[Hook] = field(default_factory=list)
    create_runtime: list[Hook] = field(default_factory=list)
    create_container: list[Hook] = field(default_factory=list)
    start_container: list[Hook] = field(default_factory=list)
    poststart: list[Hook] = field(default_factory=list)
    poststop: list[Hook] = field(default_factory=list)


@record
class Linux:
    """The ``linux`` object (config-linux.md).

    ``seccomp`` and ``resources`` are records checked here
    (:mod:`pyrun.config.syscall_filter`, :mod:`pyrun.config.resources`);
    what they mean for this host's libseccomp and cgroups is decided by the
    code that applies them.
    """

    namespaces: list[Namespace] = field(default_factory=list)
    uid_mappings: list[IDMapping] = field(default_factory=list)
    gid_mappings: list[IDMapping] = field(default_factory=list)
    devices: list[Device] = field(default_factory=list)
    cgroups_path: str | None = None
    resources: object = None  # pyrun.config.resources.Resources
    rootfs_propagation: str | None = None
    masked_paths: list[str] = field(default_factory=list)
    readonly_paths: list[str] = field(default_factory=list)
    sysctl: dict[str, str] = field(default_factory=dict)
    seccomp: object = None  # pyrun.config.syscall_filter.Seccomp
    mount_label: str | None = None
    # personality, memory_policy: pyrun.config.process_attrs's records
    time_offsets: dict[str, tuple[int, int]] = field(default_factory=dict)
    personality: object = None
    memory_policy: object = None
    net_devices: dict[str, str] = field(default_factory=dict)
    intel_rdt: dict | None = None


@record
class Spec:
    """A parsed config.json (config.md).

    ``bundle`` is the absolute bundle directory; ``raw`` is the JSON object
    as read, for fields this module does not model.
    """

    oci_version: str
    bundle: str
    root: Root
    process: Process | None = None
    hostname: str | None = None
    domainname: str | None = None
    mounts: list[Mount] = field(default_factory=list)
    linux: Linux = field(default_factory=Linux)
    hooks: Hooks = field(default_factory=Hooks)
    annotations: dict[str, str] = field(default_factory=dict)
    raw: dict = field(default_factory=dict, repr=False, compare=False)
    sha256: str = field(default="", repr=False, compare=False)  # of the bytes read (load)

    def namespace(self, type: str) -> Namespace | None:
        """The ``linux.namespaces`` entry of that type, or None."""
        for ns in self.linux.namespaces:
            if ns.type == type:
                return ns
        return None

    def has_namespace(self, type: str) -> bool:
        """True when a namespace of that type is created or joined."""
        return self.namespace(type) is not None


# --------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------


def _parse_root(data: dict, bundle: str) -> Root:
    root = get(data, "root", dict, "", required=True)
    path = get(root, "path", str, "root", required=True)
    if not path:
        raise ConfigError("root.path", "must not be empty")
    no_nul(path, "root.path")
    # config.md "Root": a relative path is relative to the bundle.
    return Root(
        path=os.path.normpath(os.path.join(bundle, path)),
        readonly=boolean(root, "readonly", "root"),
    )


def _parse_env(obj: dict, key: str, path: str) -> list[str]:
    env = str_list(obj, key, path)
    base = join(path, key)
    for i, entry in enumerate(env):
        name, sep, _ = entry.partition("=")
        if not sep:
            raise ConfigError(f"{base}[{i}]", f"expected KEY=value, got {quote(entry)} (missing '=')")
        if not name:
            raise ConfigError(f"{base}[{i}]", f"expected KEY=value, got {quote(entry)} (empty name)")
        no_nul(entry, f"{base}[{i}]")
    return env


def _parse_user(proc: dict) -> User:
    user = get(proc, "user", dict, "process")
    if user is None:
        return User()
    p = "process.user"
    gids = []
    base = join(p, "additionalGids")
    for i, g in enumerate(array(user, "additionalGids", p)):
        gids.append(int_value(g, f"{base}[{i}]", 0, UINT32_MAX))
    return User(
        uid=integer(user, "uid", p, 0, UINT32_MAX) or 0,
        gid=integer(user, "gid", p, 0, UINT32_MAX) or 0,
        umask=integer(user, "umask", p, 0, UINT32_MAX),
        additional_gids=gids,
    )


def _parse_rlimits(proc: dict) -> list[Rlimit]:
    out: list[Rlimit] = []
    seen: dict[str, str] = {}
    for item, p in objects(proc, "rlimits", "process"):
        rtype = get(item, "type", str, p, required=True)
        if rtype not in RLIMITS:
            raise ConfigError(
                join(p, "type"),
                f"unknown rlimit type {quote(rtype)}: expected one of {', '.join(RLIMITS)}",
            )
        if rtype in seen:
            raise ConfigError(
                join(p, "type"), f"duplicate rlimit type {quote(rtype)} (first at {seen[rtype]})"
            )
        seen[rtype] = p
        soft = req_integer(item, "soft", p, 0, UINT64_MAX)
        hard = req_integer(item, "hard", p, 0, UINT64_MAX)
        if soft > hard:
            raise ConfigError(p, f"soft limit {soft} is greater than hard limit {hard}")
        out.append(Rlimit(type=rtype, soft=soft, hard=hard))
    return out


@optional_object("process", "capabilities")
def _parse_capabilities(caps: dict, p: str) -> Capabilities:
    sets = {}
    for name in ("bounding", "effective", "inheritable", "permitted", "ambient"):
        names = str_list(caps, name, p)
        for i, cap in enumerate(names):
            if cap not in CAPABILITIES:
                # runtime-spec 1.1: "MUST be logged as a warning by the
                # runtime. Runtimes SHOULD NOT fail" (runc and crun run it)
                from pyrun.log import log

                log.warning(f"{p}.{name}[{i}]: unknown capability {quote(cap)}: ignored")
        sets[name] = [cap for cap in names if cap in CAPABILITIES]
    return Capabilities(**sets)


def _parse_process(data: dict) -> Process | None:
    proc = get(data, "process", dict, "")
    if proc is None:
        return None
    p = "process"

    args = str_list(proc, "args", p)
    if "args" not in proc or proc["args"] is None:
        raise ConfigError("process.args", "is required")
    if not args:
        raise ConfigError("process.args", "must contain at least one entry")
    if not args[0]:
        raise ConfigError("process.args[0]", "must not be empty")
    for i, a in enumerate(args):
        no_nul(a, f"process.args[{i}]")

    cwd = get(proc, "cwd", str, p, required=True)
    if not cwd:
        raise ConfigError("process.cwd", "must not be empty")
    abs_path(cwd, "process.cwd")

    console_size = None
    box = get(proc, "consoleSize", dict, p)
    if box is not None:
        bp = "process.consoleSize"
        console_size = (
            req_integer(box, "height", bp, 0, UINT32_MAX),
            req_integer(box, "width", bp, 0, UINT32_MAX),
        )

    extra = {}
    if _PROCESS_ATTRS.intersection(proc):
        from pyrun.config import process_attrs as pa

        extra = dict(scheduler=pa.parse_scheduler(proc), io_priority=pa.parse_io_priority(proc),
                     exec_cpu_affinity=pa.parse_exec_cpu_affinity(proc))
    return Process(
        args=args,
        env=_parse_env(proc, "env", p),
        cwd=cwd,
        user=_parse_user(proc),
        terminal=boolean(proc, "terminal", p),
        console_size=console_size,
        rlimits=_parse_rlimits(proc),
        no_new_privileges=boolean(proc, "noNewPrivileges", p),
        oom_score_adj=integer(proc, "oomScoreAdj", p, -1000, 1000),
        capabilities=_parse_capabilities(proc),
        apparmor_profile=opt_str(proc, "apparmorProfile", p),
        selinux_label=opt_str(proc, "selinuxLabel", p),
        **extra,
    )


# The process attributes the kernel keeps, parsed by pyrun.config.process_attrs (imported only when present).
_PROCESS_ATTRS = frozenset(("scheduler", "ioPriority", "execCPUAffinity"))
_LINUX_PROCESS_ATTRS = frozenset(("personality", "memoryPolicy"))


def _parse_mounts(data: dict) -> list[Mount]:
    out = []
    for item, p in objects(data, "mounts", ""):
        dest = get(item, "destination", str, p, required=True)
        # config.md "Mounts": destination MUST be absolute.  (runc still
        # accepts relative ones with a deprecation warning; we do not.)
        abs_path(dest, join(p, "destination"))
        mtype = get(item, "type", str, p)
        source = get(item, "source", str, p)
        if mtype is not None:
            no_nul(mtype, join(p, "type"))
        if source is not None:
            no_nul(source, join(p, "source"))
        out.append(
            Mount(
                destination=dest,
                type=mtype,
                source=source,
                options=str_list(item, "options", p),
            )
        )
        if "uidMappings" in item or "gidMappings" in item:
            out[-1].uid_mappings, out[-1].gid_mappings = _parse_mount_mappings(item, p)
    return out


def _parse_mount_mappings(item: dict, path: str) -> tuple[list[IDMapping], list[IDMapping]]:
    """``mounts[i].uidMappings``/``gidMappings`` (config.md "Mounts"): an
    idmapped mount; both or neither, as runc requires."""
    out = []
    for key in ("uidMappings", "gidMappings"):
        maps = []
        for m, mp in objects(item, key, path):
            maps.append(IDMapping(container_id=req_integer(m, "containerID", mp, 0, UINT32_MAX),
                                  host_id=req_integer(m, "hostID", mp, 0, UINT32_MAX),
                                  size=req_integer(m, "size", mp, 1, UINT32_MAX)))
        out.append(maps)
    if bool(out[0]) != bool(out[1]):
        missing = "gidMappings" if out[0] else "uidMappings"
        raise ConfigError(join(path, missing), "an idmapped mount needs both uidMappings and gidMappings")
    return out[0], out[1]


def _parse_hooks(data: dict) -> Hooks:
    hooks = get(data, "hooks", dict, "")
    result = Hooks()
    if hooks is None:
        return result
    for json_name, attr in HOOK_KINDS:
        lst = getattr(result, attr)
        for item, p in objects(hooks, json_name, "hooks"):
            path = get(item, "path", str, p, required=True)
            abs_path(path, join(p, "path"))
            timeout = item.get("timeout")
            if timeout is not None:
                check(timeout, int, join(p, "timeout"))
                if timeout <= 0:
                    raise ConfigError(
                        join(p, "timeout"), f"expected a number of seconds > 0, got {timeout}"
                    )
            lst.append(
                Hook(
                    path=path,
                    args=str_list(item, "args", p),
                    env=str_list(item, "env", p) if item.get("env") is not None else None,
                    timeout=timeout,
                )
            )
    return result


def _parse_mappings(linux: dict, key: str) -> list[IDMapping]:
    out = []
    for item, p in objects(linux, key, "linux"):
        container_id = req_integer(item, "containerID", p, 0, UINT32_MAX)
        host_id = req_integer(item, "hostID", p, 0, UINT32_MAX)
        # A zero-length range is refused by the kernel when writing the map.
        size = req_integer(item, "size", p, 1, UINT32_MAX)
        out.append(IDMapping(container_id=container_id, host_id=host_id, size=size))
    return out


def _parse_namespaces(linux: dict) -> tuple[list[Namespace], dict[str, str]]:
    """Namespaces, and type -> JSON path of its entry (for later messages)."""
    out = []
    where: dict[str, str] = {}
    for item, p in objects(linux, "namespaces", "linux"):
        ntype = get(item, "type", str, p, required=True)
        if ntype not in NAMESPACE_TYPES:
            raise ConfigError(
                join(p, "type"),
                f"unknown namespace type {quote(ntype)}: expected one of {', '.join(NAMESPACE_TYPES)}",
            )
        if ntype in where:
            raise ConfigError(
                join(p, "type"), f"duplicate namespace type {quote(ntype)} (first at {where[ntype]})"
            )
        where[ntype] = p
        path = opt_str(item, "path", p)
        if path is not None:
            abs_path(path, join(p, "path"))
        out.append(Namespace(type=ntype, path=path))
    return out, where


def _parse_devices(linux: dict) -> list[Device]:
    out = []
    for item, p in objects(linux, "devices", "linux"):
        dtype = get(item, "type", str, p, required=True)
        if dtype not in DEVICE_TYPES:
            raise ConfigError(
                join(p, "type"), f"unknown device type {quote(dtype)}: expected one of c, b, u, p"
            )
        path = get(item, "path", str, p, required=True)
        abs_path(path, join(p, "path"))
        needed = dtype != "p"  # major/minor are REQUIRED unless a fifo
        out.append(
            Device(
                type=dtype,
                path=path,
                major=integer(item, "major", p, INT64_MIN, INT64_MAX, required=needed) or 0,
                minor=integer(item, "minor", p, INT64_MIN, INT64_MAX, required=needed) or 0,
                file_mode=integer(item, "fileMode", p, 0, UINT32_MAX),
                uid=integer(item, "uid", p, 0, UINT32_MAX),
                gid=integer(item, "gid", p, 0, UINT32_MAX),
            )
        )
    return out


def _abs_list(linux: dict, key: str) -> list[str]:
    items = str_list(linux, key, "linux")
    for i, item in enumerate(items):
        abs_path(item, f"linux.{key}[{i}]")
    return items


#: time_namespaces(7): the clocks a time namespace can offset.
TIME_CLOCKS = ("monotonic", "boottime")


def _parse_time_offsets(linux: dict) -> dict[str, tuple[int, int]]:
    obj = get(linux, "timeOffsets", dict, "linux")
    out: dict[str, tuple[int, int]] = {}
    for clock, value in (obj or {}).items():
        p = map_entry("linux.timeOffsets", clock) if clock not in TIME_CLOCKS else f"linux.timeOffsets.{clock}"
        if clock not in TIME_CLOCKS:
            raise ConfigError(p, f"unknown clock: expected one of {', '.join(TIME_CLOCKS)}")
        check(value, dict, p)
        out[clock] = (integer(value, "secs", p, INT64_MIN, INT64_MAX) or 0,
                      integer(value, "nanosecs", p, 0, 999_999_999) or 0)
    return out


def _parse_net_devices(linux: dict) -> dict[str, str]:
    """host interface name -> its name in the container (the key when not given)."""
    obj = get(linux, "netDevices", dict, "linux")
    out: dict[str, str] = {}
    for host_name, value in (obj or {}).items():
        p = map_entry("linux.netDevices", host_name)
        _ifname(host_name, p)
        if value is None:
            value = {}
        check(value, dict, p)
        name = get(value, "name", str, p) or host_name
        _ifname(name, join(p, "name"))
        if name in out.values():
            raise ConfigError(join(p, "name"), f"two devices are renamed to {quote(name)}")
        out[host_name] = name
    return out


def _ifname(name: str, path: str) -> None:
    """netdevice(7): at most 15 bytes, no '/', ':' or whitespace, not "." or ".."."""
    if (not name or len(name.encode()) > 15 or name in (".", "..")
            or any(c in name for c in "/: \t\n\0")):
        raise ConfigError(path, f"invalid interface name {quote(name)}")


@optional_object("linux", "resources")
def _parse_resources(obj: dict, p: str):
    """``linux.resources`` checked into records (imported only when there is one)."""
    from pyrun.config import resources

    return resources.parse(obj)


@optional_object("linux", "seccomp")
def _parse_seccomp(obj: dict, p: str):
    """``linux.seccomp`` checked into records (imported only when there is one)."""
    from pyrun.config import syscall_filter

    return syscall_filter.parse(obj, p)


def _parse_linux(data: dict) -> tuple[Linux, dict[str, str]]:
    linux = get(data, "linux", dict, "")
    if linux is None:
        return Linux(), {}
    p = "linux"
    namespaces, where = _parse_namespaces(linux)

    propagation = opt_str(linux, "rootfsPropagation", p)
    if propagation is not None and propagation not in ROOTFS_PROPAGATIONS:
        raise ConfigError(
            "linux.rootfsPropagation",
            f"unknown propagation {quote(propagation)}: "
            f"expected one of {', '.join(ROOTFS_PROPAGATIONS)}",
        )

    extra = dict(time_offsets=_parse_time_offsets(linux))
    if _LINUX_PROCESS_ATTRS.intersection(linux):
        from pyrun.config import process_attrs as pa

        extra.update(personality=pa.parse_personality(linux), memory_policy=pa.parse_memory_policy(linux))
    extra.update(net_devices=_parse_net_devices(linux), intel_rdt=get(linux, "intelRdt", dict, "linux"))
    return (
        Linux(
            namespaces=namespaces,
            uid_mappings=_parse_mappings(linux, "uidMappings"),
            gid_mappings=_parse_mappings(linux, "gidMappings"),
            devices=_parse_devices(linux),
            cgroups_path=opt_str(linux, "cgroupsPath", p),
            resources=_parse_resources(linux),
            rootfs_propagation=propagation,
            masked_paths=_abs_list(linux, "maskedPaths"),
            readonly_paths=_abs_list(linux, "readonlyPaths"),
            sysctl=str_map(linux, "sysctl", p),
            seccomp=_parse_seccomp(linux),
            mount_label=opt_str(linux, "mountLabel", p),
            **extra,
        ),
        where,
    )


# --------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------


def parse(data: dict, bundle: str) -> Spec:
    """Check and convert a decoded config.json; ``bundle`` anchors root.path."""
    if not isinstance(data, dict):
        raise ConfigError("", f"expected a JSON object at the top level, got {type_name(data)}")
    bundle = os.path.abspath(bundle)

    oci_version = get(data, "ociVersion", str, "", required=True)
    if not oci_version:
        raise ConfigError("ociVersion", "must not be empty")

    root = _parse_root(data, bundle)
    process = _parse_process(data)
    mounts = _parse_mounts(data)
    linux, where = _parse_linux(data)
    hooks = _parse_hooks(data)

    annotations = str_map(data, "annotations", "")
    if "" in annotations:
        raise ConfigError('annotations[""]', "keys must not be empty")

    spec = Spec(
        oci_version=oci_version,
        bundle=bundle,
        root=root,
        process=process,
        hostname=opt_str(data, "hostname", ""),
        domainname=opt_str(data, "domainname", ""),
        mounts=mounts,
        linux=linux,
        hooks=hooks,
        annotations=annotations,
        raw=data,
    )

    from pyrun.config import spec_rules

    spec_rules.check(spec)
    if data.get("vm") is not None:
        raise ConfigError("vm", "pyrun runs containers, not virtual machines: use a VM-based runtime "
                          "(Kata Containers) for this config")
    spec_rules.check_mounts(spec)
    return spec


def require_process(spec: Spec) -> Process:
    """The spec's process, for commands that start one (create, run)."""
    if spec.process is None:
        raise ConfigError("process", "is required")
    return spec.process


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def load(bundle: str, path: str | None = None) -> Spec:
    """Read, decode and :func:`parse` ``<bundle>/config.json`` (or ``path``:
    the copy a container keeps in its state directory). ``spec.sha256`` is
    the digest of the bytes parsed, so a later check compares what was used."""
    bundle = os.path.abspath(bundle)
    if path is None:
        if not os.path.exists(bundle):
            raise ConfigError("", f"bundle directory {bundle} does not exist")
        if not os.path.isdir(bundle):
            raise ConfigError("", f"bundle {bundle} is not a directory")
        path = os.path.join(bundle, "config.json")
    return from_bytes(read_bounded(path), bundle)


def from_bytes(blob: bytes, bundle: str) -> Spec:
    """:func:`parse` of config.json's bytes, as read once."""
    spec = parse(_decode(blob), bundle)
    spec.sha256 = sha256_hex(blob)
    return spec


def load_process(path: str) -> Process:
    """``exec --process FILE``: one ``process`` object of config.md, alone.
    The caller's file: a pipe (``--process <(...)``) is read too, bounded."""
    try:
        proc = _parse_process({"process": _decode(read_bounded(path, regular=False))})
    except ConfigError as e:
        field = e.path.removeprefix("process").removeprefix(".")
        raise ConfigError(field, e.message, file=path) from None
    assert proc is not None
    return proc


# The most pyrun reads of a config: runc's configs are kilobytes, and the
# bundle's owner (not always the caller) could hand /dev/zero or a sparse
# terabyte. A limit, not a memory error or a hang.
MAX_CONFIG = 64 << 20


def read_bounded(path: str, regular: bool = True) -> bytes:
    """The bytes of ``path``, at most :data:`MAX_CONFIG`.

    open(2) with O_PATH first and fstat(2) that descriptor: a FIFO would
    block the open and a device could act on it (a tape rewinds). Only a
    regular file (``regular``) is then opened for reading, through the same
    inode (/proc/self/fd/N), never through the name again."""
    import stat

    try:
        pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError as e:
        raise ConfigError("", f"cannot read {path}: {errno_text(e)}") from None
    try:
        st = os.fstat(pfd)
        if not stat.S_ISREG(st.st_mode) and (regular or not stat.S_ISFIFO(st.st_mode)):
            raise ConfigError("", f"{path} is not a regular file")
        if st.st_size > MAX_CONFIG:
            raise ConfigError("", f"{path} is {st.st_size} bytes: more than the {MAX_CONFIG >> 20} MiB "
                              "pyrun reads")
        try:
            fd = os.open(f"/proc/self/fd/{pfd}", os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
        except OSError as e:
            raise ConfigError("", f"cannot read {path}: {errno_text(e)}") from None
    finally:
        os.close(pfd)
    try:
        with open(fd, "rb") as f:
            blob = f.read(MAX_CONFIG + 1)  # a file that grew since fstat stops here too
    except OSError as e:
        raise ConfigError("", f"cannot read {path}: {errno_text(e)}") from None
    if len(blob) > MAX_CONFIG:
        raise ConfigError("", f"{path} is more than the {MAX_CONFIG >> 20} MiB pyrun reads")
    return blob


def sha256_hex(blob: bytes) -> str:
    try:
        from _sha256 import sha256  # the C core: hashlib loads OpenSSL's _hashlib and looks up every algorithm
    except ImportError:  # pragma: no cover - a Python built without it
        from hashlib import sha256
    return sha256(blob).hexdigest()


def _decode(blob: bytes) -> dict:
    # surrogateescape: stray non-UTF-8 bytes survive as the same bytes when
    # the strings are handed back to the OS (paths, argv, env).
    text = blob.decode("utf-8", "surrogateescape")

    from pyrun import jsonio

    try:
        data = jsonio.loads(text)  # NaN and Infinity refused, as Go's encoding/json
    except ValueError as e:
        if hasattr(e, "lineno"):  # json.JSONDecodeError
            raise ConfigError(
                "", f"invalid JSON at line {e.lineno} column {e.colno}: {_lower_first(e.msg)}"
            ) from None
        raise ConfigError("", f"invalid JSON: {e}") from None
    except RecursionError as e:
        raise ConfigError("", f"invalid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError("", f"expected a JSON object at the top level, got {type_name(data)}")
    return data
