"""Entry point: ``python -m pyrun`` and the ``pyrun`` console script.

The commands engines call for every container take the fast path
(:mod:`pyrun.fastpath`, no click); everything else goes to :mod:`pyrun.cli`.
"""


def main() -> None:
    import sys

    from pyrun.fastpath import main as fast

    code = fast(sys.argv[1:])
    if code is None:
        from pyrun.cli import main as cli_main

        cli_main()
        return
    sys.exit(code)


if __name__ == "__main__":
    main()
