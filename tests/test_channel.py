"""The sync channel between the host side and the container's stages (real sockets)."""

from __future__ import annotations

import ast
import inspect
import os
import pathlib
import warnings

from pyrun.stages.channel import Channel


def test_a_peer_that_died_with_our_message_unread_is_still_heard():
    """Stage 1 reports its error and exits while the host's "cgroup-done" is
    still unread in its queue: unix(7) datagram sockets then answer the
    host's next read with ECONNRESET before the error message. The host
    must read the error, not die on "internal error: ConnectionResetError"."""
    host, child = Channel.pair()
    child.send("error", message="setns(network): Invalid argument (EINVAL)")
    host.send("cgroup-done")
    child.close()
    msg = host.recv()
    assert msg == {"kind": "error", "message": "setns(network): Invalid argument (EINVAL)"}
    assert host.recv() is None
    host.close()


# ------------------------------------------------ the message table (unit)

_SENDS = ("send", "send_if_open", "send_fd", "expect")


def _kind_access(node: ast.AST) -> bool:
    """``msg["kind"]`` or ``msg.get("kind")``."""
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Constant) and node.slice.value == "kind"
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
            and bool(node.args) and isinstance(node.args[0], ast.Constant) and node.args[0].value == "kind")


def _kinds_named(tree: ast.AST):
    """Every expression that names a message kind: the first argument of
    send/send_if_open/send_fd/expect, and what ``msg["kind"]`` (or
    ``msg.get("kind")``) is compared with (one value, or a tuple of them)."""
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _SENDS
                and node.args):
            yield node.args[0]
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_kind_access(s) for s in sides):
                for side in sides:
                    if not _kind_access(side):
                        yield from side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side]


def _message_kind_problems(root: str) -> tuple[list[str], set[str]]:
    """(bare strings and unknown names, the table's names used) in root's .py files."""
    from pyrun.stages.channel import Msg

    table = {name for name in vars(Msg) if name.isupper()}
    problems, used = [], set()
    for path in sorted(pathlib.Path(root).rglob("*.py")):
        with warnings.catch_warnings():  # another module's invalid escape is not this test's business
            warnings.simplefilter("ignore")
            tree = ast.parse(path.read_text(), str(path))
        for node in _kinds_named(tree):
            where = f"{path.name}:{node.lineno}"
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                problems.append(f"{where}: bare {node.value!r}, not a name from channel.Msg")
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Msg":
                if node.attr in table:
                    used.add(node.attr)
                else:
                    problems.append(f"{where}: Msg.{node.attr} is not in the table")
            # anything else is a variable passed on (Channel.send_if_open's kind)
    return problems, used


def test_every_message_kind_is_a_name_from_the_table():
    """The channel protocol is named once, in channel.Msg: every kind that
    pyrun/ sends, expects or compares ``msg["kind"]`` with is one of its
    names (not a bare string that could drift from the other side's), and
    every name of the table is used, each with its one-line comment."""
    import pyrun
    from pyrun.stages import channel
    from pyrun.stages.channel import Msg

    problems, used = _message_kind_problems(os.path.dirname(pyrun.__file__))
    assert problems == []
    table = [name for name in vars(Msg) if name.isupper()]
    assert set(table) == used, set(table) - used
    values = [getattr(Msg, name) for name in table]
    assert len(set(values)) == len(values)  # two names for one message would be no table
    source = inspect.getsource(channel.Msg).splitlines()
    for name in table:
        line = next(line for line in source if line.strip().startswith(f"{name} ="))
        assert "#" in line, f"Msg.{name} has no comment saying who sends it to whom and why"


def test_the_scan_finds_a_bare_kind(tmp_path):
    """The scan above is not vacuous: a bare string, an unknown name, and a
    bare string in a comparison are each reported."""
    (tmp_path / "m.py").write_text(
        'ch.send("ready")\n'
        'ch.expect(Msg.NO_SUCH)\n'
        'if msg["kind"] in (Msg.READY, "ack"): pass\n'
        'if msg.get("kind") == "error": pass\n'
        'ch.send_fd(Msg.CONSOLE, 3)\n')
    problems, used = _message_kind_problems(str(tmp_path))
    assert [p.split(":")[1] for p in problems] == ["1", "2", "3", "4"], problems
    assert used == {"READY", "CONSOLE"}
