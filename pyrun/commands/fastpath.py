"""The command lines engines send most, parsed without click.

conmon, containerd and CI scripts call ``create``, ``start``, ``state``,
``kill``, ``delete`` and ``exec`` for every container, and containerd
``ps``, ``pause``, ``resume``, ``list``, ``events --stats``, ``update`` and
``features`` for every task; importing click (click.core, click.types,
inspect) takes longer than runc's whole run. This module recognises
those commands in the exact forms runc documents — global ``--root``,
``--log``, ``--log-format``, ``--debug`` first, then the command, its
flags, the id — and calls the same library functions as :mod:`pyrun.commands.cli`.
Anything else (``--help``, a flag it does not know, combined short flags, a
malformed value) returns None and the full click CLI handles the command,
so the two cannot disagree on anything but speed: a bad value is one line
naming the flag and what it accepts, exit 1, either way (cli.bad_value).
"""

from __future__ import annotations

import os
import sys

_GLOBAL_VALUE = {"--root": "--root", "--log": "--log", "--log-format": "--log-format"}
_GLOBAL_FLAG = {"--debug": "--debug", "--systemd-cgroup": "--systemd-cgroup",
                "--ignore-cgroup-limits": "--ignore-cgroup-limits"}


class _Command:
    """One command's grammar: option name (and alias) -> canonical name."""

    def __init__(self, values: dict[str, str], flags: dict[str, str], lo: int, hi: int | None,
                 repeated: tuple[str, ...] = (), stop_at_id: bool = False):
        self.values, self.flags, self.lo, self.hi = values, flags, lo, hi
        self.repeated = repeated      # canonical names that collect a list
        self.stop_at_id = stop_at_id  # exec: what follows the id is the command line


def _names(*groups: str) -> dict[str, str]:
    """"--bundle -b" -> {"--bundle": "--bundle", "-b": "--bundle"}."""
    out = {}
    for group in groups:
        names = group.split()
        for name in names:
            out[name] = names[0]
    return out


_CREATE_VALUES = _names("--bundle -b", "--pid-file", "--console-socket", "--preserve-fds", "--rootfs-mode",
                        "--network", "--publish -p", "--pidfd-socket", "--layers-root")
_CREATE_FLAGS = _names("--no-pivot", "--no-new-keyring", "--init", "--no-init")

_COMMANDS = {
    "state": _Command({}, {}, 1, 1),
    "start": _Command({}, {}, 1, 1),
    "kill": _Command({}, _names("--all -a"), 1, 2),
    "delete": _Command({}, _names("--force -f"), 1, 1),
    "create": _Command(_CREATE_VALUES, _CREATE_FLAGS, 1, 1, ("--publish",)),
    "run": _Command(_CREATE_VALUES, {**_CREATE_FLAGS, **_names("--detach -d", "--keep")}, 1, 1, ("--publish",)),
    "exec": _Command(_names("--process -p", "--env -e", "--cwd", "--user -u", "--additional-gids -g",
                            "--cap -c", "--pid-file", "--console-socket", "--preserve-fds",
                            "--process-label", "--apparmor", "--pidfd-socket", "--cgroup"),
                     _names("--tty -t", "--detach -d", "--no-new-privs", "--ignore-paused"), 1, None,
                     ("--env", "--additional-gids", "--cap", "--cgroup"), stop_at_id=True),
}
_CHOICES = {"--rootfs-mode": ("overlay", "direct"),
            "--network": ("none", "host", "bridge", "pasta", "slirp4netns", "slirp")}


def _split(args: list[str], values: dict[str, str], flags: dict[str, str], stop_at_positional: bool,
           repeated: tuple[str, ...] = ()):
    """(options by canonical name, positionals) or None for anything unexpected."""
    opts: dict[str, str | bool | list[str]] = {}
    pos: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("-") and a != "-":
            name, eq, value = a.partition("=")
            if name in values:
                if not eq:
                    i += 1
                    if i == len(args):
                        return None
                    value = args[i]
                key = values[name]
                if key in repeated:
                    opts.setdefault(key, []).append(value)
                else:
                    opts[key] = value
            elif name in flags and not eq:
                opts[flags[name]] = True
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
        from pyrun.commands.version import text

        sys.stdout.write(text())
        return 0
    parsed = _split(argv, _GLOBAL_VALUE, _GLOBAL_FLAG, stop_at_positional=True)
    if parsed is None or not parsed[1] or parsed[1][0] not in _COMMANDS:
        return None
    glob, rest = parsed
    command, cmd = rest[0], _COMMANDS[rest[0]]
    parsed = _split(rest[1:], cmd.values, cmd.flags, cmd.stop_at_id, cmd.repeated)
    if parsed is None or len(parsed[1]) < cmd.lo or (cmd.hi is not None and len(parsed[1]) > cmd.hi):
        return None
    opts, pos = parsed
    for name, choices in _CHOICES.items():
        if opts.get(name, choices[0]) not in choices:
            return None
    if not all(g.isdigit() for g in opts.get("--additional-gids", [])):
        return None
    if "--init" in opts and "--no-init" in opts:
        return None
    fmt = glob.get("--log-format", "text")
    if fmt not in ("text", "json"):
        return None
    preserve = opts.get("--preserve-fds", "0")
    if not str(preserve).isdigit():
        return None
    if command in _TASK_COMMANDS and not _task_args_ok(command, opts):
        return None

    from pyrun.errors import PyrunError
    from pyrun.log import log

    try:
        log.configure(glob.get("--log"), fmt, bool(glob.get("--debug")))
    except OSError:
        return None  # click reports it
    root = glob.get("--root") or ""
    try:
        if command != "features":  # features reads no container, nor --root (as click's)
            from pyrun.container.state import check_root, default_root

            root = os.path.abspath(root or default_root())
            check_root(root)  # "--root X: not a directory", for every other command
        return _dispatch(root, command, opts, pos, int(preserve),
                         bool(glob.get("--ignore-cgroup-limits")), bool(glob.get("--systemd-cgroup")))
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


def _dispatch(root: str, command: str, opts: dict, pos: list[str], preserve: int, ignore_limits: bool,
              systemd: bool = False) -> int:
    if command in _TASK_COMMANDS:
        return _task(root, command, opts, pos)
    cid = pos[0]
    if command == "exec":
        return _exec(root, cid, pos[1:], opts, preserve)
    if command == "state":  # through pyrun.container.state, not pyrun.container.lifecycle: engines call it all the time
        from pyrun.container.state import write_state

        sys.stdout.flush()
        write_state(root, cid, sys.stdout.buffer)  # runc's bytes: no newline at the end
        return 0
    if command in ("create", "run"):
        return _create(root, command, cid, opts, preserve, ignore_limits, systemd)
    from pyrun.container import lifecycle

    if command == "start":
        lifecycle.start(root, cid)
    elif command == "kill":
        sig = lifecycle.parse_signal(pos[1] if len(pos) > 1 else "SIGTERM")
        lifecycle.kill(root, cid, sig, bool(opts.get("--all")))
    else:
        lifecycle.delete(root, cid, bool(opts.get("--force")))
    return 0


def _create(root: str, command: str, cid: str, opts: dict, preserve: int, ignore_limits: bool,
            systemd: bool) -> int:
    """``create`` and ``run``: ``create`` imports neither click nor pyrun.container.lifecycle."""
    from pyrun.container.planning import Options

    socket = opts.get("--console-socket")
    publish = opts.get("--publish")
    options = Options(
        pid_file=opts.get("--pid-file"), no_pivot=bool(opts.get("--no-pivot")),
        no_new_keyring=bool(opts.get("--no-new-keyring")), preserve_fds=preserve,
        console_socket=os.path.abspath(socket) if socket else None, ignore_cgroup_limits=ignore_limits,
        systemd_cgroup=systemd, rootfs_mode=opts.get("--rootfs-mode"), network=opts.get("--network"),
        init=True if "--init" in opts else False if "--no-init" in opts else None,
        publish=",".join(publish) if publish else None,
        pidfd_socket=os.path.abspath(opts["--pidfd-socket"]) if opts.get("--pidfd-socket") else None,
        keep=bool(opts.get("--keep")))
    bundle = opts.get("--bundle") or "."
    layers = opts.get("--layers-root")
    options.layers_root = os.path.abspath(layers) if layers else None
    if command == "create":
        from pyrun.container.create import create

        create(root, cid, bundle, options)
        return 0
    from pyrun.container.lifecycle import run

    return run(root, cid, bundle, options, detach=bool(opts.get("--detach")))


def _exec(root: str, cid: str, command: list[str], opts: dict, preserve: int) -> int:
    """``exec`` as the CLI runs it (exec_from_flags: 255 if it failed)."""
    from pyrun.container.enter import exec_from_flags

    return exec_from_flags(
        root, cid, command, opts.get("--process"), opts.get("--env", []), opts.get("--cwd"),
        opts.get("--user"), [int(g) for g in opts.get("--additional-gids", [])], opts.get("--cap", []),
        bool(opts.get("--tty")), bool(opts.get("--detach")), opts.get("--pid-file"),
        opts.get("--console-socket"), preserve, bool(opts.get("--no-new-privs")),
        opts.get("--process-label"), opts.get("--apparmor"), opts.get("--pidfd-socket"), opts.get("--cgroup"),
        bool(opts.get("--ignore-paused")))


# ------------------------------------------------ the commands of every task
#
# containerd's shim calls these for every task, and runc answers each
# without a CLI library to load. Each one below does what its click command in pyrun.commands.cli
# does, with the same output (click.echo's: a line, flushed, ANSI escapes
# stripped when stdout is not a terminal), errors and exit status; anything
# it does not know — a streaming ``events`` (no --stats), a hidden flag, a
# value click would convert differently — goes to click.

_FORMAT = _names("--format -f")
_INT_OPTIONS = ("--cpu-quota", "--cpu-period", "--cpu-share", "--cpu-rt-period", "--cpu-rt-runtime",
                "--pids-limit", "--blkio-weight")
_TASK_COMMANDS = {
    "ps": _Command(_FORMAT, {}, 1, None, stop_at_id=True),  # what follows the id is ps(1)'s
    "pause": _Command({}, {}, 1, 1),
    "resume": _Command({}, {}, 1, 1),
    "list": _Command(_FORMAT, _names("--quiet -q"), 0, 0),
    "events": _Command(_names("--interval"), _names("--stats"), 1, 1),
    "update": _Command(_names("--resources -r", "--memory", "--memory-swap", "--memory-reservation",
                              "--cpuset-cpus", "--cpuset-mems", *_INT_OPTIONS), {}, 1, 1),
    "features": _Command({}, {}, 0, 0),
}
_COMMANDS.update(_TASK_COMMANDS)
_CHOICES["--format"] = ("table", "json")


def _task_args_ok(command: str, opts: dict) -> bool:
    """What the fast path takes of these commands' flags: events only with
    --stats (the streaming loop is click's), integers only as plain
    ASCII digits (click's int() takes more forms: those go to click)."""
    if command == "events" and "--stats" not in opts:
        return False
    for name in _INT_OPTIONS:
        value = opts.get(name)
        if value is not None:
            digits = value[1:] if value.startswith("-") else value
            if not (digits.isascii() and digits.isdigit()):
                return False
    return True


def _echo(text: str) -> None:
    """click.echo(text): one line, flushed; click strips ANSI escape
    sequences (a container's command line may hold some) unless stdout is
    a terminal."""
    if "\033" in text and not os.isatty(1):
        import re

        text = re.sub(r"\033\[[0-?]*[ -/]*[@-~]", "", text)  # click._compat._ansi_re
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _duration(text: str) -> float:
    """pyrun.commands.cli._duration without ``re``: ``\\d+(\\.\\d+)?(ms|s|m)?``
    (\\d: a Unicode decimal digit, str.isdecimal)."""
    number, unit = text.strip(), None
    for suffix in ("ms", "s", "m"):
        if number.endswith(suffix):
            number, unit = number[:-len(suffix)], suffix
            break
    whole, dot, fraction = number.partition(".")
    if not whole.isdecimal() or dot and not fraction.isdecimal():
        from pyrun.errors import PyrunError

        raise PyrunError(f"--interval {text!r}: expected a duration such as 5s or 500ms")
    return float(number) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[unit]


def _task(root: str, command: str, opts: dict, pos: list[str]) -> int:
    try:
        _TASKS[command](root, opts, *pos)
    except BrokenPipeError:
        return 1  # click: a closed stdout ends the command quietly, status 1
    return 0


def _ps(root: str, opts: dict, cid: str, *args: str) -> None:
    from pyrun.container import lifecycle
    from pyrun.commands import ps

    pids = lifecycle.processes(root, cid)
    if opts.get("--format") == "json":
        _echo(ps.json_line(pids))
        return
    for line in ps.table(pids, list(args)):
        _echo(line)


def _pause(root: str, opts: dict, cid: str, on: bool = True) -> None:
    from pyrun.container import lifecycle

    lifecycle.pause(root, cid, on)


def _resume(root: str, opts: dict, cid: str) -> None:
    _pause(root, opts, cid, False)


def _list(root: str, opts: dict) -> None:
    from pyrun import jsonio
    from pyrun.container import lifecycle

    states = lifecycle.list_states(root)
    if opts.get("--quiet"):
        for s in states:
            _echo(s["id"])
    elif opts.get("--format") == "json":
        _echo(jsonio.go(states or None))  # runc's Encoder: compact; an empty list is null
    else:
        for line in lifecycle.table(states):
            _echo(line)


def _events(root: str, opts: dict, cid: str) -> None:
    """``events --stats``: one stats line (the streaming form is click's)."""
    from pyrun import cgroups, jsonio
    from pyrun.container import lifecycle

    _duration(opts.get("--interval", "5s"))
    cg = lifecycle.live_cgroup(root, cid, "events")
    cgroups.oom_kills(cg)
    _echo(jsonio.go({"type": "stats", "id": cid, "data": cgroups.stats(cg)}))


def _update(root: str, opts: dict, cid: str) -> None:
    from pyrun.container import lifecycle
    from pyrun.cgroups import UPDATE_FLAGS, update_resources

    values = {flag: (int(opts[flag]) if flag in _INT_OPTIONS else opts[flag])
              for flag, _, _ in UPDATE_FLAGS if opts.get(flag) is not None}
    lifecycle.update(root, cid, update_resources(opts.get("--resources"), values))


def _features(root: str, opts: dict) -> None:
    from pyrun import jsonio
    from pyrun.commands.features import features

    _echo(jsonio.go(features(), indent="    "))


_TASKS = {"ps": _ps, "pause": _pause, "resume": _resume, "list": _list, "events": _events,
          "update": _update, "features": _features}
