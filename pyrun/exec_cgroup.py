"""``exec --cgroup`` (runc 1.2+): the process starts in an existing
sub-cgroup of the container's, not in the container's own.

cgroup v2 only, as runc on a unified host: the argument is a path relative
to the container's cgroup (``--cgroup sub`` or ``--cgroup :sub``); runc's
``controller:path`` pairs name v1 hierarchies: on a v1 or hybrid host
(pyrun.cgroups.v1) --cgroup is refused with the reason, for now.
"""

from __future__ import annotations

import os

from pyrun.errors import UsageError


def sub_cgroup(container_cgroup: str, arg: str) -> str:
    """The directory the process goes to; an error names ``--cgroup``."""
    controller, colon, rel = arg.rpartition(":")
    if not colon:
        rel = arg
    elif controller:
        raise UsageError(f"--cgroup {arg}: a controller prefix names a cgroup v1 hierarchy; "
                         "with cgroup v2 give the sub-cgroup's path only")
    if not container_cgroup:
        raise UsageError(f"--cgroup {arg}: the container has no cgroup of its own")
    if "\n" in container_cgroup or not os.path.exists(os.path.join(container_cgroup, "cgroup.controllers")):
        raise UsageError(f"--cgroup {arg}: the container's cgroup is not cgroup v2 (this host's "
                         "controllers are v1): pyrun's --cgroup takes a v2 sub-cgroup only")
    rel = rel.strip("/")
    path = os.path.normpath(os.path.join(container_cgroup, rel))
    if not rel or not path.startswith(container_cgroup.rstrip("/") + "/"):
        raise UsageError(f"--cgroup {arg}: must name a sub-cgroup inside the container's cgroup")
    if not os.path.isfile(os.path.join(path, "cgroup.procs")):
        raise UsageError(f"--cgroup {arg}: {path} does not exist (runc too needs an existing sub-cgroup)")
    return path
