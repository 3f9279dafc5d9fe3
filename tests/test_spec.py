"""Unit tests for pyrun.config.spec and pyrun.config.defaults: pure logic, no syscalls."""

from __future__ import annotations

import json

import pytest
from conftest import compose_edits

from pyrun.errors import ConfigError, UsageError
from pyrun.config.spec import (
    CAPABILITIES,
    Namespace,
    default_spec,
    load,
    parse,
    require_process,
)
from pyrun.config.resources import parse as parse_resources
from pyrun.container.state import validate_id  # where ids live (pyrun.config.spec re-exported it)

BUNDLE = "/bundles/b"


def minimal() -> dict:
    return {
        "ociVersion": "1.2.0",
        "root": {"path": "rootfs"},
        "process": {"args": ["sh"], "cwd": "/"},
    }


def full() -> dict:
    """A config using most fields, all valid."""
    return {
        "ociVersion": "1.2.0",
        "root": {"path": "/abs/rootfs", "readonly": True},
        "process": {
            "terminal": True,
            "consoleSize": {"height": 24, "width": 80},
            "user": {"uid": 1000, "gid": 100, "umask": 0o22, "additionalGids": [5, 6]},
            "args": ["/bin/echo", "hi"],
            "env": ["PATH=/bin", "EMPTY="],
            "cwd": "/tmp",
            "capabilities": {"bounding": ["CAP_KILL"], "ambient": []},
            "rlimits": [{"type": "RLIMIT_CORE", "soft": 0, "hard": 2**64 - 1}],
            "noNewPrivileges": True,
            "oomScoreAdj": -1000,
            "apparmorProfile": "",
            "selinuxLabel": "system_u:system_r:container_t:s0",
            "someFutureField": {"x": 1},
        },
        "hostname": "box",
        "domainname": "example.org",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/data", "source": "/srv", "options": ["rbind", "ro"]},
        ],
        "hooks": {
            "createRuntime": [{"path": "/bin/hook", "args": ["hook", "x"], "timeout": 5}],
            "poststop": [{"path": "/bin/cleanup"}],
        },
        "annotations": {"org.example.key": "value"},
        "linux": {
            "namespaces": [
                {"type": "pid"},
                {"type": "network", "path": "/proc/1/ns/net"},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "mount"},
                {"type": "user"},
                {"type": "cgroup"},
            ],
            "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
            "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
            "devices": [
                {"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229, "fileMode": 0o666},
                {"type": "p", "path": "/dev/myfifo"},
            ],
            "cgroupsPath": "/pyrun/x",
            "resources": {"pids": {"limit": 10}},
            "rootfsPropagation": "rslave",
            "maskedPaths": ["/proc/kcore"],
            "readonlyPaths": ["/proc/sys"],
            "sysctl": {"net.ipv4.ip_forward": "1", "kernel/shmmax": "1", "kernel.domainname": "x"},
            "seccomp": {"defaultAction": "SCMP_ACT_ALLOW"},
            "mountLabel": "",
        },
        "unknownTopLevel": [1, 2, 3],
    }


# --------------------------------------------------------------------------
# Valid configs
# --------------------------------------------------------------------------


def test_minimal_parses():
    spec = parse(minimal(), BUNDLE)
    assert spec.oci_version == "1.2.0"
    assert spec.bundle == BUNDLE
    assert spec.root.path == "/bundles/b/rootfs"
    assert spec.root.readonly is False
    assert spec.process.args == ["sh"]
    assert spec.process.user.uid == 0 and spec.process.user.gid == 0
    assert spec.process.terminal is False
    assert spec.mounts == [] and spec.linux.namespaces == []
    assert spec.hostname is None
    assert not spec.has_namespace("pid")


def test_full_parses():
    spec = parse(full(), "relative/bundle")
    assert spec.bundle.startswith("/") and spec.bundle.endswith("/relative/bundle")
    assert spec.root.path == "/abs/rootfs"
    p = spec.process
    assert p.console_size == (24, 80)
    assert p.user.umask == 0o22 and p.user.additional_gids == [5, 6]
    assert p.capabilities.bounding == ["CAP_KILL"] and p.capabilities.effective == []
    assert p.rlimits[0].hard == 2**64 - 1
    assert p.oom_score_adj == -1000
    assert p.apparmor_profile is None  # "" means unset
    assert spec.namespace("network") == Namespace("network", "/proc/1/ns/net")
    assert spec.has_namespace("user") and not spec.has_namespace("time")
    assert spec.mounts[1].type is None and spec.mounts[1].options == ["rbind", "ro"]
    assert spec.linux.devices[1].major == 0
    assert spec.linux.mount_label is None
    assert spec.hooks.create_runtime[0].timeout == 5
    assert spec.hooks.poststop[0].args == []
    assert spec.annotations == {"org.example.key": "value"}
    assert spec.raw["unknownTopLevel"] == [1, 2, 3]


def test_nulls_mean_unset():
    data = minimal()
    data.update(hostname=None, mounts=None, linux=None, hooks=None, annotations=None)
    data["process"].update(env=None, user=None, capabilities=None, terminal=None)
    spec = parse(data, BUNDLE)
    assert spec.process.env == [] and spec.process.capabilities is None
    assert spec.linux.namespaces == []


def test_require_process():
    data = minimal()
    del data["process"]
    spec = parse(data, BUNDLE)
    assert spec.process is None
    with pytest.raises(ConfigError) as e:
        require_process(spec)
    assert e.value.path == "process"
    assert str(e.value) == "config.json: process: is required"
    assert require_process(parse(minimal(), BUNDLE)).args == ["sh"]


def test_all_capabilities_known():
    assert len(CAPABILITIES) == 41
    assert CAPABILITIES["CAP_CHECKPOINT_RESTORE"] == 40
    data = minimal()
    data["process"]["capabilities"] = {"permitted": list(CAPABILITIES)}
    assert len(parse(data, BUNDLE).process.capabilities.permitted) == 41


def test_unknown_capabilities_are_dropped_with_a_warning(capfd):
    """runtime-spec 1.1: logged as a warning, not a failure (runc and crun)."""
    data = minimal()
    data["process"]["capabilities"] = {"effective": ["CAP_KILL", "CAP_FLY"], "ambient": ["cap_kill"]}
    caps = parse(data, BUNDLE).process.capabilities
    assert caps.effective == ["CAP_KILL"] and caps.ambient == []
    err = capfd.readouterr().err
    assert 'process.capabilities.effective[1]: unknown capability "CAP_FLY"' in err
    assert 'process.capabilities.ambient[0]: unknown capability "cap_kill"' in err


# --------------------------------------------------------------------------
# default_spec
# --------------------------------------------------------------------------


def test_default_spec_parses_back():
    data = default_spec(cgroupns=False)
    spec = parse(json.loads(json.dumps(data)), BUNDLE)
    assert spec.process.args == ["sh"] and spec.process.terminal
    assert spec.process.no_new_privileges
    assert spec.process.capabilities.bounding == ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    assert spec.process.capabilities.ambient == []
    assert [(r.type, r.soft, r.hard) for r in spec.process.rlimits] == [("RLIMIT_NOFILE", 1024, 1024)]
    assert spec.root.path == "/bundles/b/rootfs" and spec.root.readonly
    assert spec.hostname == "pyrun"
    assert [m.destination for m in spec.mounts] == [
        "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup",
    ]
    assert [n.type for n in spec.linux.namespaces] == ["pid", "network", "ipc", "uts", "mount"]
    assert spec.linux.resources == parse_resources({"devices": [{"allow": False, "access": "rwm"}]})  # records now
    assert "/proc/kcore" in spec.linux.masked_paths
    assert "gid=5" in spec.mounts[2].options
    assert default_spec(cgroupns=True)["linux"]["namespaces"][-1] == {"type": "cgroup"}
    # pyrun's extras are asked for by the configs pyrun writes, never guessed (README, "The rule")
    assert spec.annotations == {"org.pyrun.rootfs": "overlay", "org.pyrun.init": "true"}
    assert default_spec(rootless=True, uid=1, gid=1)["annotations"] == spec.annotations


def test_default_spec_is_fresh_each_call():
    a = default_spec(cgroupns=False)
    a["process"]["env"].append("X=1")
    a["linux"]["maskedPaths"].clear()
    b = default_spec(cgroupns=False)
    assert "X=1" not in b["process"]["env"] and b["linux"]["maskedPaths"]


def test_default_spec_rootless_shape():
    data = default_spec(rootless=True, uid=1000, gid=1001, cgroupns=False)
    linux = data["linux"]
    assert list(linux)[:2] == ["uidMappings", "gidMappings"]  # runc's field order
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": 1000, "size": 1}]
    assert linux["gidMappings"] == [{"containerID": 0, "hostID": 1001, "size": 1}]
    assert "resources" not in linux
    assert [n["type"] for n in linux["namespaces"]] == ["pid", "ipc", "uts", "mount", "user"]
    mounts = {m["destination"]: m for m in data["mounts"]}
    assert mounts["/sys"] == {
        "destination": "/sys",
        "type": "none",
        "source": "/sys",
        "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
    }
    assert "gid=5" not in mounts["/dev/pts"]["options"]
    assert "mode=0620" in mounts["/dev/pts"]["options"]
    assert "/sys/fs/cgroup" in mounts  # runc keeps the cgroup mount
    assert "options" not in mounts["/proc"]

    spec = parse(json.loads(json.dumps(data)), BUNDLE)
    assert spec.namespace("user") == Namespace("user", None)
    assert not spec.has_namespace("network")
    assert spec.linux.uid_mappings[0].host_id == 1000
    assert spec.linux.gid_mappings[0].host_id == 1001
    assert spec.linux.resources is None


def test_default_spec_rootless_keeps_cgroupns():
    data = default_spec(rootless=True, uid=5, gid=5, cgroupns=True)
    assert [n["type"] for n in data["linux"]["namespaces"]] == [
        "pid", "ipc", "uts", "mount", "cgroup", "user",
    ]
    parse(data, BUNDLE)


# --------------------------------------------------------------------------
# Bad configs: each gives the exact JSON path
# --------------------------------------------------------------------------


def _set(path, value):
    """A mutation setting data[path...] = value."""

    def mutate(d):
        *parents, last = path
        for k in parents:
            d = d[k]
        d[last] = value

    return mutate


def _del(path):
    def mutate(d):
        *parents, last = path
        for k in parents:
            d = d[k]
        del d[last]

    return mutate


def _linux(**fields):
    def mutate(d):
        d.setdefault("linux", {}).update(fields)

    return mutate


NS_ALL = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
USERNS = NS_ALL + [{"type": "user"}]
MAP = [{"containerID": 0, "hostID": 1000, "size": 1}]

BAD = [
    # (id, mutation, json path, message fragment)
    ("top-ociVersion-missing", _del(["ociVersion"]), "ociVersion", "is required"),
    ("top-ociVersion-int", _set(["ociVersion"], 1), "ociVersion", "expected a string, got int"),
    ("root-missing", _del(["root"]), "root", "is required"),
    ("root-array", _set(["root"], []), "root", "expected an object, got array"),
    ("root-path-missing", _set(["root"], {}), "root.path", "is required"),
    ("root-readonly-int", _set(["root", "readonly"], 1), "root.readonly", "expected a boolean, got int"),
    ("process-string", _set(["process"], "sh"), "process", "expected an object, got string"),
    ("args-missing", _del(["process", "args"]), "process.args", "is required"),
    ("args-empty", _set(["process", "args"], []), "process.args", "at least one"),
    ("args-not-list", _set(["process", "args"], "sh"), "process.args", "expected an array, got string"),
    ("args-0-int", _set(["process", "args"], [1]), "process.args[0]", "expected a string, got int"),
    ("args-1-null", _set(["process", "args"], ["sh", None]), "process.args[1]", "got null"),
    ("args-0-empty", _set(["process", "args"], [""]), "process.args[0]", "must not be empty"),
    ("args-nul", _set(["process", "args"], ["sh", "a\0b"]), "process.args[1]", "nul byte"),
    ("cwd-missing", _del(["process", "cwd"]), "process.cwd", "is required"),
    ("cwd-relative", _set(["process", "cwd"], "tmp"), "process.cwd", 'absolute path, got "tmp"'),
    ("env-int", _set(["process", "env"], ["A=1", 2]), "process.env[1]", "expected a string, got int"),
    ("env-no-eq", _set(["process", "env"], ["A=1", "B"]), "process.env[1]", "missing '='"),
    ("env-empty-name", _set(["process", "env"], ["=x"]), "process.env[0]", "empty name"),
    ("terminal-int", _set(["process", "terminal"], 1), "process.terminal", "expected a boolean, got int"),
    ("terminal-str", _set(["process", "terminal"], "true"), "process.terminal", "got string"),
    ("nnp-int", _set(["process", "noNewPrivileges"], 0), "process.noNewPrivileges", "expected a boolean"),
    ("uid-bool", _set(["process", "user"], {"uid": True}), "process.user.uid", "expected an integer, got bool"),
    ("uid-negative", _set(["process", "user"], {"uid": -1}), "process.user.uid", "between 0 and 4294967295, got -1"),
    ("uid-float", _set(["process", "user"], {"uid": 1.0}), "process.user.uid", "got float"),
    ("gid-too-big", _set(["process", "user"], {"gid": 2**32}), "process.user.gid", "between 0 and"),
    ("umask-str", _set(["process", "user"], {"umask": "022"}), "process.user.umask", "expected an integer"),
    ("addgids-bad", _set(["process", "user"], {"additionalGids": [1, "2"]}), "process.user.additionalGids[1]", "got string"),
    ("console-width-missing", _set(["process", "consoleSize"], {"height": 1}), "process.consoleSize.width", "is required"),
    ("console-height-bool", _set(["process", "consoleSize"], {"height": False, "width": 1}), "process.consoleSize.height", "got bool"),
    ("oom-range", _set(["process", "oomScoreAdj"], 1001), "process.oomScoreAdj", "between -1000 and 1000, got 1001"),
    ("oom-str", _set(["process", "oomScoreAdj"], "5"), "process.oomScoreAdj", "expected an integer, got string"),
    ("apparmor-int", _set(["process", "apparmorProfile"], 5), "process.apparmorProfile", "expected a string"),
    ("caps-list", _set(["process", "capabilities"], ["CAP_KILL"]), "process.capabilities", "expected an object, got array"),
    ("rlimit-unknown", _set(["process", "rlimits"], [{"type": "RLIMIT_FOO", "soft": 1, "hard": 1}]), "process.rlimits[0].type", 'unknown rlimit type "RLIMIT_FOO"'),
    ("rlimit-dup", _set(["process", "rlimits"], [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}] * 2), "process.rlimits[1].type", "duplicate rlimit type"),
    ("rlimit-soft-missing", _set(["process", "rlimits"], [{"type": "RLIMIT_CORE", "hard": 1}]), "process.rlimits[0].soft", "is required"),
    ("rlimit-negative", _set(["process", "rlimits"], [{"type": "RLIMIT_CORE", "soft": -1, "hard": 1}]), "process.rlimits[0].soft", "between 0 and"),
    ("rlimit-soft-gt-hard", _set(["process", "rlimits"], [{"type": "RLIMIT_CORE", "soft": 2, "hard": 1}]), "process.rlimits[0]", "greater than hard"),
    ("rlimit-not-object", _set(["process", "rlimits"], ["RLIMIT_CORE"]), "process.rlimits[0]", "expected an object, got string"),
    ("hostname-int", _set(["hostname"], 7), "hostname", "expected a string, got int"),
    ("mounts-object", _set(["mounts"], {}), "mounts", "expected an array, got object"),
    ("mount-relative", _set(["mounts"], [{"destination": "/a"}, {"destination": "/b"}, {"destination": "/c"}, {"destination": "proc"}]), "mounts[3].destination", 'absolute path, got "proc"'),
    ("mount-dest-missing", _set(["mounts"], [{"type": "tmpfs"}]), "mounts[0].destination", "is required"),
    ("mount-options-str", _set(["mounts"], [{"destination": "/a", "options": "ro"}]), "mounts[0].options", "expected an array"),
    ("mount-option-int", _set(["mounts"], [{"destination": "/a", "options": ["ro", 1]}]), "mounts[0].options[1]", "expected a string"),
    ("mount-source-nul", _set(["mounts"], [{"destination": "/a", "source": "x\0"}]), "mounts[0].source", "nul byte"),
    ("linux-array", _set(["linux"], []), "linux", "expected an object, got array"),
    ("ns-unknown", _linux(namespaces=[{"type": "pid"}, {"type": "ipc"}, {"type": "net"}]), "linux.namespaces[2].type", 'unknown namespace type "net"'),
    ("ns-type-missing", _linux(namespaces=[{"path": "/x"}]), "linux.namespaces[0].type", "is required"),
    ("ns-duplicate", _linux(namespaces=[{"type": "pid"}, {"type": "ipc"}, {"type": "pid"}]), "linux.namespaces[2].type", "first at linux.namespaces[0]"),
    ("ns-path-relative", _linux(namespaces=[{"type": "network", "path": "ns/net"}]), "linux.namespaces[0].path", "absolute path"),
    ("uidmap-without-userns", _linux(namespaces=NS_ALL, uidMappings=MAP), "linux.uidMappings", "no user namespace"),
    ("gidmap-without-userns", _linux(gidMappings=MAP), "linux.gidMappings", "no user namespace"),
    ("userns-without-uidmap", _linux(namespaces=USERNS, gidMappings=MAP), "linux.uidMappings", "user namespaces enabled, but no uid mappings found"),
    ("userns-without-gidmap", _linux(namespaces=USERNS, uidMappings=MAP), "linux.gidMappings", "no gid mappings found"),
    ("userns-root-unmapped", _linux(namespaces=USERNS, uidMappings=[{"containerID": 1, "hostID": 1000, "size": 5}], gidMappings=MAP), "linux.uidMappings", "container uid 0 is not mapped"),
    ("map-size-zero", _linux(namespaces=USERNS, uidMappings=[{"containerID": 0, "hostID": 1, "size": 0}]), "linux.uidMappings[0].size", "between 1 and"),
    ("map-hostid-missing", _linux(namespaces=USERNS, uidMappings=[{"containerID": 0, "size": 1}]), "linux.uidMappings[0].hostID", "is required"),
    ("hostname-no-uts", compose_edits(_set(["hostname"], "h"), _linux(namespaces=[{"type": "pid"}])), "hostname", "without a private uts namespace"),
    ("domainname-no-linux", _set(["domainname"], "d"), "domainname", "without a private uts namespace"),
    ("propagation-bad", _linux(rootfsPropagation="recursive"), "linux.rootfsPropagation", 'unknown propagation "recursive"'),
    ("device-type", _linux(devices=[{"type": "x", "path": "/dev/x", "major": 1, "minor": 1}]), "linux.devices[0].type", 'unknown device type "x"'),
    ("device-major-missing", _linux(devices=[{"type": "c", "path": "/dev/x", "minor": 1}]), "linux.devices[0].major", "is required"),
    ("device-relative", _linux(devices=[{"type": "b", "path": "dev/x", "major": 1, "minor": 1}]), "linux.devices[0].path", "absolute path"),
    ("device-mode-neg", _linux(devices=[{"type": "p", "path": "/dev/f", "fileMode": -1}]), "linux.devices[0].fileMode", "between 0 and"),
    ("sysctl-int", _linux(namespaces=NS_ALL, sysctl={"kernel.shmmax": 1}), 'linux.sysctl["kernel.shmmax"]', "expected a string, got int"),
    ("sysctl-host-net", _linux(namespaces=NS_ALL, sysctl={"net.ipv4.ip_forward": "1"}), 'linux.sysctl["net.ipv4.ip_forward"]', "host's network namespace"),
    ("sysctl-not-namespaced", _linux(namespaces=NS_ALL, sysctl={"vm.swappiness": "1"}), 'linux.sysctl["vm.swappiness"]', "not in a separate kernel namespace"),
    ("sysctl-hostname", _linux(namespaces=NS_ALL, sysctl={"kernel.hostname": "x"}), 'linux.sysctl["kernel.hostname"]', "hostname"),
    ("masked-relative", _linux(namespaces=NS_ALL, maskedPaths=["/ok", "proc/kcore"]), "linux.maskedPaths[1]", "absolute path"),
    ("masked-no-mountns", _linux(namespaces=[{"type": "pid"}], readonlyPaths=["/proc/sys"]), "linux.readonlyPaths", "mount namespace"),
    ("resources-list", _linux(resources=[]), "linux.resources", "expected an object"),
    ("seccomp-str", _linux(seccomp="default"), "linux.seccomp", "expected an object"),
    ("cgroupspath-int", _linux(cgroupsPath=5), "linux.cgroupsPath", "expected a string"),
    ("timeoffsets-no-timens", _linux(timeOffsets={"monotonic": {"secs": 1}}), "linux.timeOffsets", "no time namespace"),
    ("hooks-list", _set(["hooks"], []), "hooks", "expected an object"),
    ("hook-relative", _set(["hooks"], {"poststart": [{"path": "/ok"}, {"path": "hook.sh"}]}), "hooks.poststart[1].path", "absolute path"),
    ("hook-timeout-zero", _set(["hooks"], {"createContainer": [{"path": "/h", "timeout": 0}]}), "hooks.createContainer[0].timeout", "> 0, got 0"),
    ("hook-timeout-bool", _set(["hooks"], {"prestart": [{"path": "/h", "timeout": True}]}), "hooks.prestart[0].timeout", "got bool"),
    ("hook-args-int", _set(["hooks"], {"poststop": [{"path": "/h", "args": ["h", 3]}]}), "hooks.poststop[0].args[1]", "expected a string"),
    ("annotation-value-int", _set(["annotations"], {"a": "b", "c.d": 1}), 'annotations["c.d"]', "expected a string, got int"),
    ("annotation-empty-key", _set(["annotations"], {"": "x"}), 'annotations[""]', "must not be empty"),
]


@pytest.mark.parametrize("mutate,path,fragment", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_config(mutate, path, fragment):
    data = minimal()
    mutate(data)
    with pytest.raises(ConfigError) as e:
        parse(data, BUNDLE)
    assert e.value.path == path
    assert fragment in e.value.message
    msg = e.value.message
    assert msg[:1] == msg[:1].lower() and not msg.endswith(".")
    assert str(e.value) == f"config.json: {path}: {msg}"


def test_top_level_not_object():
    with pytest.raises(ConfigError) as e:
        parse([], BUNDLE)  # type: ignore[arg-type]
    assert e.value.path == "" and "got array" in e.value.message


def test_userns_joined_by_path_needs_no_mappings():
    data = minimal()
    data["linux"] = {"namespaces": [{"type": "user", "path": "/proc/1/ns/user"}]}
    assert parse(data, BUNDLE).namespace("user").path == "/proc/1/ns/user"


def test_sysctl_slash_form_and_joined_netns_accepted():
    data = minimal()
    data["linux"] = {
        "namespaces": [{"type": "ipc"}, {"type": "network", "path": "/run/netns/x"}],
        "sysctl": {"kernel/msgmax": "1", "fs.mqueue.msg_max": "1", "net/ipv4/conf/eth0.100/rp_filter": "1"},
    }
    assert len(parse(data, BUNDLE).linux.sysctl) == 3


# --------------------------------------------------------------------------
# load()
# --------------------------------------------------------------------------


def test_load_ok(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(minimal()))
    spec = load(str(tmp_path))
    assert spec.bundle == str(tmp_path)
    assert spec.root.path == str(tmp_path / "rootfs")


def test_load_missing_bundle(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError) as e:
        load(str(missing))
    assert e.value.path == ""
    assert e.value.message == f"bundle directory {missing} does not exist"


def test_load_missing_config(tmp_path):
    with pytest.raises(ConfigError) as e:
        load(str(tmp_path))
    assert e.value.path == ""
    assert str(tmp_path / "config.json") in e.value.message
    assert e.value.message.endswith(": No such file or directory (ENOENT)")


def test_load_invalid_json_line_number(tmp_path):
    (tmp_path / "config.json").write_text('{\n  "ociVersion": "1.2.0",\n  "root": {"path": "r"}\n  "x": 1\n}\n')
    with pytest.raises(ConfigError) as e:
        load(str(tmp_path))
    assert e.value.path == ""
    assert e.value.message.startswith("invalid JSON at line 4 column 3: expecting ',' delimiter")


def test_load_rejects_nan(tmp_path):
    (tmp_path / "config.json").write_text('{"ociVersion": NaN}')
    with pytest.raises(ConfigError) as e:
        load(str(tmp_path))
    assert "NaN" in e.value.message


@pytest.mark.parametrize("text,kind", [("[]", "array"), ('"x"', "string"), ("null", "null")])
def test_load_top_level_not_object(tmp_path, text, kind):
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(ConfigError) as e:
        load(str(tmp_path))
    assert e.value.path == ""
    assert e.value.message == f"expected a JSON object at the top level, got {kind}"


def test_load_field_error_has_path(tmp_path):
    data = minimal()
    data["process"]["args"] = [1]
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError) as e:
        load(str(tmp_path))
    assert str(e.value) == "config.json: process.args[0]: expected a string, got int"


# --------------------------------------------------------------------------
# validate_id
# --------------------------------------------------------------------------


@pytest.mark.parametrize("cid", ["a", "my-container_1", "a.b+c", "...", "a..b", "1", "a,b", "x" * 200])
def test_validate_id_accepts(cid):
    validate_id(cid)


@pytest.mark.parametrize(
    "cid", ["", ".", "..", "a/b", "/a", "a b", "a:b", "é", "a\n", "a\0", "a*", "a$b"]
)
def test_validate_id_rejects(cid):
    with pytest.raises(UsageError) as e:
        validate_id(cid)
    assert "invalid container id" in str(e.value)
    assert "\n" not in str(e.value)


def test_validate_id_message():
    with pytest.raises(UsageError) as e:
        validate_id("a/b")
    assert str(e.value) == ('invalid container id "a/b" (3 characters): an id is 1 to 200 characters '
                            "of [A-Za-z0-9_+,.-], not '.' or '..'")
