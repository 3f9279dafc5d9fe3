"""The container's network: the modes (none, host, bridge, slirp4netns, pasta) and the host interfaces
moved into its namespace (``linux.netDevices``).
"""
