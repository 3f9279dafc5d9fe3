"""Process attributes the kernel keeps across fork(2) and execve(2):
``process.scheduler`` (sched_setattr(2)), ``process.ioPriority``
(ioprio_set(2)), ``linux.personality`` (personality(2)),
``linux.memoryPolicy`` (set_mempolicy(2)) and ``process.execCPUAffinity``
(sched_setaffinity(2)).

The first four are set by the process itself just before it gives up its
capabilities (a real-time policy or a negative nice needs CAP_SYS_NICE, in
the *initial* user namespace: rootless, the kernel says EPERM and the error
names the field). They are inherited by the init's child, the entrypoint.
Each error names the system call, the errno and the JSON path.
"""

from __future__ import annotations

import os

from pyrun.kernel import syscalls as sc
from pyrun.errors import PyrunError, errno_text

IOPRIO_WHO_PROCESS = 1
IOPRIO_CLASS_SHIFT = 13


def apply(process, linux) -> None:
    """Everything of the above that the config asks for, on the caller."""
    if linux.personality is not None:
        p = linux.personality
        sc.personality(p.domain, shown="linux.personality")
    if linux.memory_policy is not None:
        m = linux.memory_policy
        sc.set_mempolicy(m.mode | m.flags, m.nodes, shown="linux.memoryPolicy")
    if process.io_priority is not None:
        io = process.io_priority
        sc.ioprio_set(IOPRIO_WHO_PROCESS, 0, io.klass << IOPRIO_CLASS_SHIFT | io.priority,
                      shown="process.ioPriority")
    if process.scheduler is not None:
        s = process.scheduler
        sc.sched_setattr(0, s.policy, s.flags, s.nice, s.priority, s.runtime, s.deadline, s.period,
                         shown="process.scheduler")


def set_affinity(pid: int, cpus: list[int], field: str) -> None:
    """sched_setaffinity(2) for ``process.execCPUAffinity.initial``/``final``."""
    try:
        os.sched_setaffinity(pid, cpus)
    except OSError as e:
        raise PyrunError(f"sched_setaffinity({','.join(map(str, cpus))}): {errno_text(e)}: "
                         f"process.execCPUAffinity.{field}") from None

