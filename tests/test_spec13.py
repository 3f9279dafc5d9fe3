"""runtime-spec 1.3's fields, each with a real container, rootful and
rootless: what a config asks for is done, or refused with one line naming
its JSON path and nothing left behind (issue 17)."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest


_N = [0]


def new_id() -> str:
    """Ids unique on the host: rootful containers share the v1 freezer
    hierarchy (/sys/fs/cgroup/freezer/pyrun/ID) with other test runs."""
    _N[0] += 1
    return f"s13-{os.getpid()}-{_N[0]}"


def run(rt, config, cid=None, extra=()):
    bundle = rt.bundle(config=config)
    return rt("run", *extra, "-b", bundle, cid or new_id())


def with_time_ns(config):
    config["linux"]["namespaces"].append({"type": "time"})
    return config


# ------------------------------------------------------------ linux.timeOffsets

def test_time_offsets_move_the_clocks_inside_only(rt):
    """CLOCK_MONOTONIC and CLOCK_BOOTTIME inside are the host's plus the
    offsets; /proc/uptime (boottime) too; the host's clocks do not move."""
    config = with_time_ns(rt.config(["sh", "-c", "hello clock; cat /proc/uptime"]))
    config["linux"]["timeOffsets"] = {"monotonic": {"secs": 1_000_000, "nanosecs": 0},
                                      "boottime": {"secs": 3_000_000}}
    before = time.clock_gettime(time.CLOCK_MONOTONIC), time.clock_gettime(time.CLOCK_BOOTTIME)
    p = run(rt, config)
    after = time.clock_gettime(time.CLOCK_MONOTONIC), time.clock_gettime(time.CLOCK_BOOTTIME)
    assert p.returncode == 0, p.stderr
    clock, uptime = p.stdout.splitlines()[:2]
    mono, boot = map(int, clock.split())
    assert int(before[0]) + 1_000_000 <= mono <= int(after[0]) + 1_000_000
    assert int(before[1]) + 3_000_000 <= boot <= int(after[1]) + 3_000_000
    assert int(before[1]) + 3_000_000 <= float(uptime.split()[0]) <= after[1] + 3_000_001
    # the host's own clocks did not move
    assert time.clock_gettime(time.CLOCK_MONOTONIC) < before[0] + 60


def test_time_offsets_apply_to_exec_too(rt):
    config = with_time_ns(rt.config(["hello", "sleep", "30"]))
    config["linux"]["timeOffsets"] = {"monotonic": {"secs": 500_000}}
    cid = new_id()
    rt.ok("run", "-d", "-b", rt.bundle(config=config), cid)
    try:
        out = rt.ok("exec", cid, "hello", "clock")
        assert int(out.split()[0]) >= 500_000 + int(time.clock_gettime(time.CLOCK_MONOTONIC)) - 5
    finally:
        rt("delete", "-f", cid)


def test_time_offsets_without_a_new_time_namespace_are_refused(rt, residue):
    config = rt.config(["true"])
    config["linux"]["timeOffsets"] = {"monotonic": {"secs": 5}}
    p = run(rt, config)
    assert p.returncode == 1
    assert "linux.timeOffsets" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    residue.check()
