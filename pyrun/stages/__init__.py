"""The processes a container is built by, by role: stage 1 (unshares, forks) and stage 2 (becomes PID
1) in :mod:`builder`, the channel between them and the host, the hooks each runs, and the last
execve(2) (the sealed pyrun-init).
"""
