"""Entry point: ``python -m pyrun`` and the ``pyrun`` console script.

The commands engines call for every container take the fast path
(:mod:`pyrun.commands.fastpath`, no click); everything else goes to :mod:`pyrun.commands.cli`.
"""


def main() -> None:
    import os
    import sys

    from pyrun.commands.fastpath import main as fast

    code = fast(sys.argv[1:])
    if code is None:
        from pyrun.commands.cli import main as cli_main

        cli_main()
        return
    # The command is done and every file it wrote is closed: skip the
    # interpreter's teardown (freeing every module and object, on each
    # engine's create/start/state/delete), as os._exit(2) does.
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        code = code or 120  # what Python's own exit reports for a failed flush
    os._exit(code)


if __name__ == "__main__":
    main()
