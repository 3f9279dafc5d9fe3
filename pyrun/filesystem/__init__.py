"""The container's file system: the root filesystem and pivot_root, the ``mounts`` (attributes,
idmapped mounts, cgroup mounts, tmpcopyup), device nodes, masked and read-only paths, and the host
paths pyrun is handed (checked and used by descriptor).
"""
