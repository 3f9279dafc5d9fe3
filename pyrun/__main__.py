"""Entry point: ``python -m pyrun`` and the ``pyrun`` console script."""


def main() -> None:
    from pyrun.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
