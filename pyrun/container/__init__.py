"""The lifecycle operations on one container (runtime.md "Operations"): create, start, exec, kill,
pause, update, delete, run; the plan each makes before any syscall, and the state directory where a
container's record lives between commands.

As youki's ``container/`` and runc's top-level command files: each operation is a function a test or
another program can call.
"""
