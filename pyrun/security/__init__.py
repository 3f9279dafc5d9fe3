"""What the container's process may do: its user, rlimits and file descriptors, capabilities, process
attributes (scheduler, I/O priority, personality, memory policy), the LSM label and the seccomp
filter.
"""
