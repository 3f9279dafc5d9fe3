"""The process tree as /proc shows it, for the tests and the bench
(tests/conftest.py, tests/docker_env.py, bench/bench.py, tools/cri/cri.py)."""

from __future__ import annotations


def children(pid: int) -> list[int]:
    """/proc/PID/task/PID/children: the pids the process forked (proc(5))."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []
