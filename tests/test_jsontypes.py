"""One wording for a JSON type error, wherever config.json is read: the
parsers of :mod:`pyrun.config.spec`, of ``linux.seccomp`` (:mod:`pyrun.security.seccomp`) and
of ``linux.resources`` (:mod:`pyrun.cgroups.convert`, v2 and v1) all check
through :mod:`pyrun.config.jsontypes`. Pure logic: nothing is applied."""

from __future__ import annotations

import pytest

from pyrun.security import seccomp
from pyrun.cgroups import convert
from pyrun.errors import ConfigError
from pyrun.config.spec import parse


def _error(call) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        call()
    return e.value


def _spec(process: dict) -> ConfigError:
    data = {"ociVersion": "1.2.0", "root": {"path": "rootfs"},
            "process": {"args": ["sh"], "cwd": "/", **process}}
    return _error(lambda: parse(data, "/b"))


def _seccomp(fields: dict) -> ConfigError:
    return _error(lambda: seccomp.build({"defaultAction": "SCMP_ACT_ALLOW", **fields}))


def _resources(resources: dict) -> list[ConfigError]:
    return [_error(lambda: convert.writes(resources)), _error(lambda: convert.writes_v1(resources))]


def _same(expected: list[tuple[str, str]], errors: list[ConfigError]) -> None:
    got = [(e.path, e.message) for e in errors]
    assert got == expected
    for e, (path, message) in zip(errors, expected):
        assert str(e) == f"config.json: {path}: {message}"  # the JSON path in every message


def test_a_bool_for_an_integer_is_worded_the_same_everywhere():
    errors = [_spec({"user": {"uid": True}}), _seccomp({"defaultErrnoRet": True}),
              *_resources({"pids": {"limit": True}})]
    _same([("process.user.uid", "expected an integer, got bool"),
           ("linux.seccomp.defaultErrnoRet", "expected an integer, got bool"),
           ("linux.resources.pids.limit", "expected an integer, got bool"),
           ("linux.resources.pids.limit", "expected an integer, got bool")], errors)


def test_a_string_for_an_integer_is_worded_the_same_everywhere():
    errors = [_spec({"oomScoreAdj": "5"}), _seccomp({"defaultErrnoRet": "1"}),
              *_resources({"memory": {"limit": "1g"}})]
    _same([("process.oomScoreAdj", "expected an integer, got string"),
           ("linux.seccomp.defaultErrnoRet", "expected an integer, got string"),
           ("linux.resources.memory.limit", "expected an integer, got string"),
           ("linux.resources.memory.limit", "expected an integer, got string")], errors)


def test_an_integer_out_of_range_is_worded_the_same_everywhere():
    errors = [_spec({"oomScoreAdj": 1001}), _seccomp({"defaultErrnoRet": 65536}),
              *_resources({"cpu": {"shares": 1}})]
    _same([("process.oomScoreAdj", "expected an integer between -1000 and 1000, got 1001"),
           ("linux.seccomp.defaultErrnoRet", "expected an integer between 0 and 65535, got 65536"),
           ("linux.resources.cpu.shares", "expected an integer between 2 and 262144, got 1"),
           ("linux.resources.cpu.shares", "expected an integer between 2 and 262144, got 1")], errors)


def test_a_string_for_an_object_is_worded_the_same_everywhere():
    errors = [_spec({"user": "root"}), _seccomp({"syscalls": ["read"]}), *_resources({"memory": "1g"})]
    _same([("process.user", "expected an object, got string"),
           ("linux.seccomp.syscalls[0]", "expected an object, got string"),
           ("linux.resources.memory", "expected an object, got string"),
           ("linux.resources.memory", "expected an object, got string")], errors)


def test_a_lower_bound_alone_is_worded_as_a_range_is():
    """cgroup fields that are uint64 in runc: the bound in the same form."""
    _same([("linux.resources.cpu.period", "expected an integer >= 0, got -1")] * 2,
          _resources({"cpu": {"period": -1}}))


@pytest.mark.parametrize("linux, path, message", [
    ({"timeOffsets": {"monotonic": 5}}, "linux.timeOffsets.monotonic", "expected an object, got int"),
    ({"netDevices": {"eth0": "ctr0"}}, 'linux.netDevices["eth0"]', "expected an object, got string"),
])
def test_runtime_spec_1_1_to_1_3_fields_use_the_same_wording(linux, path, message):
    data = {"ociVersion": "1.3.0", "root": {"path": "rootfs"}, "linux": linux}
    e = _error(lambda: parse(data, "/b"))
    assert (e.path, e.message) == (path, message)
