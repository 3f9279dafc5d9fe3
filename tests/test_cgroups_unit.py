"""linux.resources -> cgroup v2 and v1 files: runc's conversions (pure logic)."""

from __future__ import annotations

import pytest

from pyrun import cgroups
from pyrun.cgroups import convert, v1, v2
from pyrun.errors import ConfigError, PyrunError


def files(resources):
    return {w.file: w.value for w in convert.writes(resources)}


def test_memory_limit_reservation_and_swap():
    got = files({"memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 96 << 20}})
    assert got == {"memory.max": str(64 << 20), "memory.low": str(32 << 20), "memory.swap.max": str(32 << 20)}
    assert files({"memory": {"limit": -1}}) == {"memory.max": "max"}
    assert files({"memory": {"limit": 1 << 20, "swap": -1}})["memory.swap.max"] == "max"


def test_swap_below_memory_or_without_memory_is_an_error():
    with pytest.raises(ConfigError, match="linux.resources.memory.swap"):
        convert.writes({"memory": {"limit": 64 << 20, "swap": 32 << 20}})
    with pytest.raises(ConfigError, match="without a memory limit"):
        convert.writes({"memory": {"swap": 32 << 20}})


def test_cpu_shares_quota_period_cpuset():
    assert convert.shares_to_weight(1024) == 39
    assert convert.shares_to_weight(2) == 1 and convert.shares_to_weight(262144) == 10000
    got = files({"cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"}})
    assert got == {"cpu.weight": "39", "cpu.max": "50000 100000", "cpuset.cpus": "0", "cpuset.mems": "0"}
    assert files({"cpu": {"quota": -1}}) == {"cpu.max": "max 100000"}
    assert files({"cpu": {"period": 50000}}) == {"cpu.max": "max 50000"}


def test_pids_io_hugetlb_unified():
    assert files({"pids": {"limit": 10}}) == {"pids.max": "10"}
    assert files({"pids": {"limit": -1}}) == {"pids.max": "max"}
    assert convert.blkio_to_io_weight(500) == 4950 and convert.blkio_to_io_weight(10) == 1
    got = convert.writes({"blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}]}})
    assert [(w.file, w.value) for w in got] == [("io.weight", "default 4950"), ("io.max", "8:0 rbps=1000")]
    assert files({"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}) == {"hugetlb.2MB.max": "0"}
    assert files({"unified": {"memory.high": "50M"}}) == {"memory.high": "50M"}


@pytest.mark.parametrize("resources, where", [
    ({"memory": {"limit": "1G"}}, "linux.resources.memory.limit"),
    ({"cpu": {"shares": 1}}, "linux.resources.cpu.shares"),
    ({"cpu": {"realtimeRuntime": 1000}}, "linux.resources.cpu.realtimeRuntime"),
    ({"blockIO": {"weight": 5}}, "linux.resources.blockIO.weight"),
    ({"unified": {"../escape": "1"}}, "linux.resources.unified['../escape']"),
    ({"unified": {"memory.high": 5}}, "linux.resources.unified['memory.high']"),
])
def test_bad_values_name_the_field(resources, where):
    with pytest.raises(ConfigError) as e:
        convert.writes(resources)
    assert e.value.path == where


def test_devices_alone_are_not_limits():
    assert convert.writes({"devices": [{"allow": False, "access": "rwm"}]}) == []


def test_path_for_follows_runcs_cgroupfs_rules():
    assert v2.path_for(None, "c1", rootless=False) == "/sys/fs/cgroup/pyrun/c1"
    assert v2.path_for("/a/b", "c1", rootless=False) == "/sys/fs/cgroup/a/b"
    assert v2.path_for("a/b", "c1", rootless=False).endswith("/a/b")
    with pytest.raises(ConfigError, match="leaves"):
        v2.path_for("/../../etc", "c1", rootless=False)
    with pytest.raises(ConfigError, match="systemd"):
        v2.path_for("machine.slice:pyrun:c1", "c1", rootless=False)


def test_parse_bytes_like_runc():
    assert cgroups.parse_bytes("512m", "--memory") == 512 << 20
    assert cgroups.parse_bytes("1G", "--memory") == 1 << 30
    assert cgroups.parse_bytes("64MiB", "--memory") == 64 << 20
    assert cgroups.parse_bytes("1048576", "--memory") == 1048576
    assert cgroups.parse_bytes("-1", "--memory") == -1
    with pytest.raises(PyrunError, match="--memory"):
        cgroups.parse_bytes("lots", "--memory")


def test_device_rules_keep_order_then_runcs_defaults():
    from pyrun.config.spec import Device

    rules = convert.device_rules({"devices": [{"allow": False, "access": "rwm"},
                                             {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}]},
                                 [Device(type="c", path="/dev/fuse", major=10, minor=229)])
    assert rules[0] == (0, -1, -1, 7, 0)   # deny everything
    assert rules[1] == (2, 1, 3, 6, 1)     # then allow c 1:3 rw
    assert (2, 10, 229, 7, 1) not in rules  # a node of linux.devices is made, not allowed (runc)
    assert (2, 136, -1, 7, 1) in rules[2:] and (1, -1, -1, 1, 1) in rules[2:]  # pts, mknod b *:*


def test_a_linux_devices_node_replaces_the_default_and_its_rule():
    from pyrun.config.spec import Device

    rules = convert.device_rules(None, [Device(type="c", path="/dev/null", major=1, minor=11)])
    assert (2, 1, 3, 7, 1) not in rules and (2, 1, 11, 7, 1) not in rules
    assert (2, 1, 5, 7, 1) in rules


@pytest.mark.parametrize("access, bits", [("rwa", 6), ("wa", 4), ("mrw", 7), ("rrw", 6), ("m", 1)])
def test_device_access_keeps_r_w_m_as_runc(access, bits):
    rules = convert.device_rules({"devices": [{"allow": True, "type": "c", "major": 1, "minor": 11,
                                               "access": access}]}, [])
    assert rules[0] == (2, 1, 11, bits, 1)


@pytest.mark.parametrize("rule, where", [
    ({"access": "rwm"}, "linux.resources.devices[0].allow"),
    ({"allow": True, "type": "x"}, "linux.resources.devices[0].type"),
    ({"allow": True, "type": ["c"]}, "linux.resources.devices[0].type"),
    ({"allow": True, "access": "x"}, "linux.resources.devices[0].access"),
])
def test_bad_device_rules_name_the_field(rule, where):
    with pytest.raises(ConfigError) as e:
        convert.device_rules({"devices": [rule]}, [])
    assert e.value.path == where


def _device_rules(resources):
    return convert.device_rules(resources, [])


V2_V1 = (convert.writes, convert.writes_v1)


@pytest.mark.parametrize("resources, converters, where, message", [
    ({"blockIO": {"weightDevice": [5]}}, V2_V1, "linux.resources.blockIO.weightDevice[0]",
     "expected an object, got int"),
    ({"blockIO": {"throttleReadBpsDevice": "8:0"}}, V2_V1, "linux.resources.blockIO.throttleReadBpsDevice",
     "expected an array, got string"),
    ({"hugepageLimits": ["2MB"]}, V2_V1, "linux.resources.hugepageLimits[0]", "expected an object, got string"),
    ({"network": {"priorities": [1]}}, (convert.writes_v1,), "linux.resources.network.priorities[0]",
     "expected an object, got int"),
    ({"devices": {"allow": True}}, (_device_rules,), "linux.resources.devices", "expected an array, got object"),
    ({"devices": [5]}, (_device_rules,), "linux.resources.devices[0]", "expected an object, got int"),
    ({"devices": 5}, (_device_rules, lambda r: convert.device_writes_v1(r, [])), "linux.resources.devices",
     "expected an array, got int"),
])
def test_a_resources_array_of_the_wrong_shape_is_a_config_error(resources, converters, where, message):
    """Not a traceback (AttributeError on .get) from v2, v1 or the device rules."""
    for convert_ in converters:
        with pytest.raises(ConfigError) as e:
            convert_(resources)
        assert (e.value.path, e.value.message) == (where, message)


# --------------------------------------------------------------- cgroup v1

def files_v1(resources):
    return [(w.file, w.value) for w in convert.writes_v1(resources)]


def test_v1_memory_as_runc_writes_it():
    got = files_v1({"memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 96 << 20, "swappiness": 10,
                               "kernelTCP": 1 << 20, "disableOOMKiller": True}})
    assert got == [("memory.limit_in_bytes", str(64 << 20)), ("memory.memsw.limit_in_bytes", str(96 << 20)),
                   ("memory.soft_limit_in_bytes", str(32 << 20)), ("memory.kmem.tcp.limit_in_bytes", str(1 << 20)),
                   ("memory.swappiness", "10"), ("memory.oom_control", "1")]
    # unlimited memory: unlimited memory+swap too (runc's setMemoryAndSwap)
    assert files_v1({"memory": {"limit": -1}}) == [("memory.limit_in_bytes", "-1"),
                                                   ("memory.memsw.limit_in_bytes", "-1")]
    with pytest.raises(ConfigError, match="memory.swap"):
        convert.writes_v1({"memory": {"limit": 64 << 20, "swap": 32 << 20}})
    with pytest.raises(ConfigError, match="swappiness"):
        convert.writes_v1({"memory": {"swappiness": 101}})


def test_v1_cpu_pids_blkio_hugetlb_network():
    assert files_v1({"cpu": {"shares": 1024, "quota": 50000, "period": 100000, "realtimeRuntime": 950,
                             "realtimePeriod": 1000, "cpus": "0", "mems": "0", "idle": 1}}) == [
        ("cpu.shares", "1024"), ("cpu.cfs_period_us", "100000"), ("cpu.cfs_quota_us", "50000"),
        ("cpu.rt_period_us", "1000"), ("cpu.rt_runtime_us", "950"), ("cpu.idle", "1"),
        ("cpuset.cpus", "0"), ("cpuset.mems", "0")]
    assert files_v1({"cpu": {"quota": -1}}) == [("cpu.cfs_quota_us", "-1")]
    assert files_v1({"pids": {"limit": 10}}) == [("pids.max", "10")]
    assert files_v1({"pids": {"limit": -1}}) == [("pids.max", "max")]
    assert files_v1({"blockIO": {"weight": 500, "leafWeight": 300,
                                 "weightDevice": [{"major": 8, "minor": 0, "weight": 600}],
                                 "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}]}}) == [
        ("blkio.weight", "500"), ("blkio.leaf_weight", "300"), ("blkio.weight_device", "8:0 600"),
        ("blkio.throttle.write_iops_device", "8:0 100")]
    assert files_v1({"hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 21}]}) == [
        ("hugetlb.2MB.limit_in_bytes", str(1 << 21))]
    assert files_v1({"network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]}}) == [
        ("net_cls.classid", "1048577"), ("net_prio.ifpriomap", "eth0 5")]
    with pytest.raises(ConfigError, match="linux.resources.unified"):
        convert.writes_v1({"unified": {"memory.high": "50M"}})


def _v1_devices(rules, devices=()):
    writes, allowlist, expect = convert.device_writes_v1({"devices": rules}, list(devices))
    return [(w.file, w.value) for w in writes], allowlist, expect


def test_v1_devices_deny_all_then_the_allow_list_as_runc():
    from pyrun.config.spec import Device

    writes, allowlist, expect = _v1_devices([{"allow": False, "access": "rwm"},
                                             {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"}],
                                            [Device(type="b", path="/dev/loop7", major=7, minor=7)])
    assert allowlist and writes[0] == ("devices.deny", "a *:* rwm")
    allowed = [v for f, v in writes[1:] if f == "devices.allow"]
    assert len(allowed) == len(writes) - 1
    assert "c 10:229 rw" in allowed and "b 7:7 rwm" not in allowed   # the config's; linux.devices' node is not
    assert "c *:* m" in allowed and "b *:* m" in allowed and "c 1:3 rwm" in allowed and "c 136:* rwm" in allowed
    assert "c 10:200 rwm" in allowed and expect == set(allowed)
    assert not any(v.startswith("b 7:0") for v in allowed)  # no loop device of the host


def test_v1_devices_a_later_deny_takes_an_exception_away_and_allow_all_is_a_deny_list():
    writes, _, _ = _v1_devices([{"allow": False, "access": "rwm"},
                                {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
                                {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "w"}])
    assert ("devices.allow", "c 10:229 rm") in writes
    writes, allowlist, expect = _v1_devices([{"allow": True, "access": "rwm"},
                                             {"allow": False, "type": "b", "major": 7, "access": "rwm"}])
    assert not allowlist and writes == [("devices.allow", "a *:* rwm"), ("devices.deny", "b 7:* rwm")]
    assert expect == {"a *:* rwm"}


def test_v1_paths_follow_runcs_cgroupfs_layout():
    mounts = {"/sys/fs/cgroup/memory": frozenset({"memory"}), "/sys/fs/cgroup/cpu,cpuacct":
              frozenset({"cpu", "cpuacct"})}
    assert v1.paths_for(None, "c1", mounts) == {m: f"{m}/pyrun/c1" for m in mounts}
    assert v1.paths_for("/a/b", "c1", mounts) == {m: f"{m}/a/b" for m in mounts}
    with pytest.raises(ConfigError, match="leaves"):
        v1.paths_for("/../../etc", "c1", mounts)
    with pytest.raises(ConfigError, match="systemd"):
        v1.paths_for("machine.slice:pyrun:c1", "c1", mounts)


def test_v1_devices_a_hole_in_a_wildcard_is_refused_as_runc():
    """v1 keeps no order: "c *:* rwm" allowed then "c 10:229" denied would
    leave /dev/fuse open. runc's emulator refuses it; so does pyrun."""
    with pytest.raises(ConfigError) as e:
        _v1_devices([{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "access": "rwm"},
                     {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rw"}])
    assert e.value.path == "linux.resources.devices[2]"
    # the same deny with no wildcard in the way is fine
    _v1_devices([{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 10, "minor": 229},
                 {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rw"}])


def test_rdma_limits_v1_and_v2():
    res = {"rdma": {"mlx4_0": {"hcaHandles": 2, "hcaObjects": 2000}}}
    assert files(res) == {"rdma.max": "mlx4_0 hca_handle=2 hca_object=2000"}
    assert files_v1(res) == [("rdma.max", "mlx4_0 hca_handle=2 hca_object=2000")]
    for bad in ({"mlx4_0": 5}, {"a b": {"hcaHandles": 1}}):
        with pytest.raises(ConfigError) as e:
            convert.writes({"rdma": bad})
        assert e.value.path.startswith("linux.resources.rdma[")


class _Unwritten:
    """A cgroup that must not be read: ``pyrun update`` checks the JSON first."""

    def __init__(self):
        self.applied = None

    def apply(self, items):
        self.applied = items

    def __getattr__(self, name):
        raise AssertionError(f"the cgroup was used ({name}) before the resources were checked")


@pytest.mark.parametrize("resources, where, message", [
    ({"memory": "64m"}, "linux.resources.memory", "expected an object, got string"),
    ({"memory": "swap"}, "linux.resources.memory", "expected an object, got string"),
    ({"memory": {"checkBeforeUpdate": True, "limit": "64m"}}, "linux.resources.memory.limit",
     "expected an integer, got string"),
])
def test_update_checks_the_resources_before_it_reads_the_cgroup(resources, where, message):
    """v1 compared memory.limit with the usage before checking its type, v2
    looked into memory before checking it is an object: a traceback each."""
    from pyrun.cgroups import v1, v2

    for update in (lambda r: v1.Cgroup.update(_Unwritten(), r), lambda r: v2.update(_Unwritten(), r)):
        with pytest.raises(ConfigError) as e:
            update(resources)
        assert (e.value.path, e.value.message) == (where, message)


def test_update_with_a_null_memory_limit_checks_nothing_against_the_usage():
    from pyrun.cgroups import v2

    cg = _Unwritten()
    v2.update(cg, {"memory": {"checkBeforeUpdate": True, "limit": None}, "pids": {"limit": 5}})
    assert cg.applied == [convert.Write("pids.max", "5", "linux.resources.pids.limit")]
