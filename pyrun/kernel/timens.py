"""Time namespace offsets: ``linux.timeOffsets`` (time_namespaces(7)).

A new time namespace starts with the host's CLOCK_MONOTONIC and
CLOCK_BOOTTIME; its offsets can be written to /proc/PID/timens_offsets only
until the first process enters it. unshare(CLONE_NEWTIME) does not move the
caller (only its children are born inside: /proc/self/ns/time_for_children),
so stage 1 writes the offsets between that unshare(2) and the fork(2) of
PID 1 — the one window the kernel leaves. Writing needs CAP_SYS_TIME in the
user namespace that owns the time namespace: stage 1 has it there, rootless
too.
"""

from __future__ import annotations

import os

from pyrun.errors import PyrunError, errno_text

# The clock ids of <linux/time.h>, as timens_offsets takes them.
CLOCK_IDS = {"monotonic": 1, "boottime": 7}


def write_offsets(offsets: dict[str, tuple[int, int]]) -> None:
    """One write(2) of every "<clockid> <secs> <nanosecs>" line: the kernel
    takes them together or not at all (proc_timens_set_offset)."""
    text = "".join(f"{CLOCK_IDS[clock]} {secs} {nsecs}\n" for clock, (secs, nsecs) in offsets.items())
    try:
        fd = os.open("/proc/self/timens_offsets", os.O_WRONLY | os.O_CLOEXEC)
    except OSError as e:
        raise PyrunError(f"open /proc/self/timens_offsets: {errno_text(e)} (linux.timeOffsets)") from None
    try:
        os.write(fd, text.encode())
    except OSError as e:
        raise PyrunError(f"write /proc/self/timens_offsets: {errno_text(e)} (linux.timeOffsets: "
                         "an offset that would put a clock below zero or past 2^62 s is refused)") from None
    finally:
        os.close(fd)
