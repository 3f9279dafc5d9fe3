"""The command lines engines send most, parsed without click.

conmon, containerd and CI scripts call ``create``, ``start``, ``state``,
``kill`` and ``delete`` for every container; importing click costs more
than runc's whole run (../PERF-NOTES.md). This module recognises those
commands in the exact forms runc documents — global ``--root``, ``--log``,
``--log-format``, ``--debug`` first, then the command, its flags, the id —
and calls the same library functions as :mod:`pyrun.cli`. Anything else
(``--help``, a flag it does not know, a malformed value) returns None and
the full click CLI handles the command, so the two cannot disagree on
anything but speed.
"""

from __future__ import annotations

import os
import sys

_GLOBAL_VALUE = {"--root", "--log", "--log-format"}
_GLOBAL_FLAG = {"--debug", "--systemd-cgroup", "--ignore-cgroup-limits"}

# command -> (flags taking a value, boolean flags, positional arguments: min, max)
_COMMANDS = {
    "state": (set(), set(), 1, 1),
    "start": (set(), set(), 1, 1),
    "kill": (set(), {"--all", "-a"}, 1, 2),
    "delete": (set(), {"--force", "-f"}, 1, 1),
    "create": ({"--bundle", "-b", "--pid-file", "--console-socket", "--preserve-fds"},
               {"--no-pivot", "--no-new-keyring"}, 1, 1),
    "run": ({"--bundle", "-b", "--pid-file", "--console-socket", "--preserve-fds"},
            {"--no-pivot", "--no-new-keyring", "--detach", "-d"}, 1, 1),
}


def _split(args: list[str], values: set[str], flags: set[str], stop_at_positional: bool):
    """(options, positionals) or None for anything unexpected."""
    opts: dict[str, str | bool] = {}
    pos: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("-") and pos and stop_at_positional:
            return None
        if a.startswith("-") and a != "-":
            name, eq, value = a.partition("=")
            if name in values:
                if not eq:
                    i += 1
                    if i == len(args):
                        return None
                    value = args[i]
                opts[name] = value
            elif name in flags and not eq:
                opts[name] = True
            else:
                return None
        else:
            if stop_at_positional:
                return opts, args[i:]
            pos.append(a)
        i += 1
    return opts, pos


def main(argv: list[str]) -> int | None:
    """Run the command and return its exit status, or None: not ours."""
    if argv in (["--version"], ["-v"]):
        from pyrun import OCI_VERSION, __version__

        sys.stdout.write(f"pyrun version {__version__}\nspec: {OCI_VERSION}\n"
                         f"python: {sys.version.split()[0]}\n")
        return 0
    parsed = _split(argv, _GLOBAL_VALUE, _GLOBAL_FLAG, stop_at_positional=True)
    if parsed is None or not parsed[1] or parsed[1][0] not in _COMMANDS:
        return None
    glob, rest = parsed
    command, cmd_args = rest[0], rest[1:]
    values, flags, lo, hi = _COMMANDS[command]
    parsed = _split(cmd_args, values, flags, stop_at_positional=False)
    if parsed is None or not lo <= len(parsed[1]) <= hi:
        return None
    opts, pos = parsed
    fmt = glob.get("--log-format", "text")
    if fmt not in ("text", "json"):
        return None
    preserve = opts.get("--preserve-fds", "0")
    if not str(preserve).isdigit():
        return None

    from pyrun.errors import PyrunError
    from pyrun.log import log

    try:
        log.configure(glob.get("--log"), fmt, bool(glob.get("--debug")))
    except OSError:
        return None  # click reports it
    root = glob.get("--root")
    try:
        if root is None:
            from pyrun.state import default_root

            root = default_root()
        return _dispatch(os.path.abspath(root), command, opts, pos, int(preserve),
                         bool(glob.get("--ignore-cgroup-limits")))
    except PyrunError as e:
        log.error(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 - a bug: still one line, unless --debug
        if log.debug:
            import traceback

            traceback.print_exc()
        log.error(f"internal error: {type(e).__name__}: {e}")
        return 1


def _dispatch(root: str, command: str, opts: dict, pos: list[str], preserve: int, ignore_limits: bool) -> int:
    from pyrun import container

    cid = pos[0]
    if command == "state":
        from pyrun import jsonio

        sys.stdout.write(jsonio.dumps(container.state(root, cid), indent=2) + "\n")
    elif command == "start":
        container.start(root, cid)
    elif command == "kill":
        sig = container.parse_signal(pos[1] if len(pos) > 1 else "SIGTERM")
        container.kill(root, cid, sig, bool(opts.get("--all") or opts.get("-a")))
    elif command == "delete":
        container.delete(root, cid, bool(opts.get("--force") or opts.get("-f")))
    else:
        socket = opts.get("--console-socket")
        options = container.Options(
            pid_file=opts.get("--pid-file"), no_pivot=bool(opts.get("--no-pivot")),
            no_new_keyring=bool(opts.get("--no-new-keyring")), preserve_fds=preserve,
            console_socket=os.path.abspath(socket) if socket else None, ignore_cgroup_limits=ignore_limits)
        bundle = opts.get("--bundle") or opts.get("-b") or "."
        if command == "create":
            container.create(root, cid, bundle, options)
        else:
            return container.run(root, cid, bundle, options, detach=bool(opts.get("--detach") or opts.get("-d")))
    return 0
