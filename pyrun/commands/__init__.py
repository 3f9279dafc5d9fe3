"""The command line: runc's commands and flags, parsed (the fast path without click, the rest with
click), over the lifecycle operations of :mod:`pyrun.container`.

Nothing here builds a container: a command parses its arguments, calls one operation and prints what
runc prints.
"""
