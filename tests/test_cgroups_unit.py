"""linux.resources -> cgroup v2 files: runc's conversions (pure logic)."""

from __future__ import annotations

import pytest

from pyrun import cgroups
from pyrun.errors import ConfigError, PyrunError


def files(resources):
    return {w.file: w.value for w in cgroups.writes(resources)}


def test_memory_limit_reservation_and_swap():
    got = files({"memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 96 << 20}})
    assert got == {"memory.max": str(64 << 20), "memory.low": str(32 << 20), "memory.swap.max": str(32 << 20)}
    assert files({"memory": {"limit": -1}}) == {"memory.max": "max"}
    assert files({"memory": {"limit": 1 << 20, "swap": -1}})["memory.swap.max"] == "max"


def test_swap_below_memory_or_without_memory_is_an_error():
    with pytest.raises(ConfigError, match="linux.resources.memory.swap"):
        cgroups.writes({"memory": {"limit": 64 << 20, "swap": 32 << 20}})
    with pytest.raises(ConfigError, match="without a memory limit"):
        cgroups.writes({"memory": {"swap": 32 << 20}})


def test_cpu_shares_quota_period_cpuset():
    assert cgroups.shares_to_weight(1024) == 39
    assert cgroups.shares_to_weight(2) == 1 and cgroups.shares_to_weight(262144) == 10000
    got = files({"cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"}})
    assert got == {"cpu.weight": "39", "cpu.max": "50000 100000", "cpuset.cpus": "0", "cpuset.mems": "0"}
    assert files({"cpu": {"quota": -1}}) == {"cpu.max": "max 100000"}
    assert files({"cpu": {"period": 50000}}) == {"cpu.max": "max 50000"}


def test_pids_io_hugetlb_unified():
    assert files({"pids": {"limit": 10}}) == {"pids.max": "10"}
    assert files({"pids": {"limit": -1}}) == {"pids.max": "max"}
    assert cgroups.blkio_to_io_weight(500) == 4950 and cgroups.blkio_to_io_weight(10) == 1
    got = cgroups.writes({"blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}]}})
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
        cgroups.writes(resources)
    assert e.value.path == where


def test_devices_alone_are_not_limits():
    assert cgroups.writes({"devices": [{"allow": False, "access": "rwm"}]}) == []


def test_path_for_follows_runcs_cgroupfs_rules():
    assert cgroups.path_for(None, "c1", rootless=False) == "/sys/fs/cgroup/pyrun/c1"
    assert cgroups.path_for("/a/b", "c1", rootless=False) == "/sys/fs/cgroup/a/b"
    assert cgroups.path_for("a/b", "c1", rootless=False).endswith("/a/b")
    with pytest.raises(ConfigError, match="leaves"):
        cgroups.path_for("/../../etc", "c1", rootless=False)
    with pytest.raises(ConfigError, match="systemd"):
        cgroups.path_for("machine.slice:pyrun:c1", "c1", rootless=False)


def test_parse_bytes_like_runc():
    assert cgroups.parse_bytes("512m", "--memory") == 512 << 20
    assert cgroups.parse_bytes("1G", "--memory") == 1 << 30
    assert cgroups.parse_bytes("64MiB", "--memory") == 64 << 20
    assert cgroups.parse_bytes("1048576", "--memory") == 1048576
    assert cgroups.parse_bytes("-1", "--memory") == -1
    with pytest.raises(PyrunError, match="--memory"):
        cgroups.parse_bytes("lots", "--memory")


def test_device_rules_keep_order_then_devices_then_runcs_defaults():
    from pyrun.spec import Device

    rules = cgroups.device_rules({"devices": [{"allow": False, "access": "rwm"},
                                             {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}]},
                                 [Device(type="c", path="/dev/fuse", major=10, minor=229)])
    assert rules[0] == (0, -1, -1, 7, 0)   # deny everything
    assert rules[1] == (2, 1, 3, 6, 1)     # then allow c 1:3 rw
    assert rules[2] == (2, 10, 229, 7, 1)  # a node of linux.devices
    assert (2, 136, -1, 7, 1) in rules[3:] and (1, -1, -1, 1, 1) in rules[3:]  # pts, mknod b *:*


@pytest.mark.parametrize("rule, where", [
    ({"access": "rwm"}, "linux.resources.devices[0].allow"),
    ({"allow": True, "type": "x"}, "linux.resources.devices[0].type"),
    ({"allow": True, "access": "rwx"}, "linux.resources.devices[0].access"),
])
def test_bad_device_rules_name_the_field(rule, where):
    with pytest.raises(ConfigError) as e:
        cgroups.device_rules({"devices": [rule]}, [])
    assert e.value.path == where
