"""Thin wrappers over the kernel: system calls the ``os`` module lacks (through the cffi shim
``pyrun._native``), namespaces, user-namespace id maps, time namespace offsets and namespaced
sysctls.
"""
