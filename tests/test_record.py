"""pyrun.record: the dataclass subset the spec and the plan are built from."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pyrun.record import FrozenRecordError, field, record, replace, to_dict


@record
class Point:
    """A point."""

    x: int
    y: int = 0
    tags: list[str] = field(default_factory=list)
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    def norm(self) -> int:
        return abs(self.x) + abs(self.y)


@record(frozen=True)
class Port:
    host: int
    proto: str = "tcp"


def test_fields_defaults_and_factories():
    a, b = Point(1), Point(x=2, y=3, tags=["t"])
    assert (a.x, a.y, a.tags, a.raw) == (1, 0, [], {})
    assert (b.x, b.y, b.tags) == (2, 3, ["t"])
    a.tags.append("only a")
    assert Point(1).tags == []  # a fresh list each time, as default_factory
    assert a.norm() == 1 and Point.__doc__ == "A point."
    assert Point.__slots__ == ("x", "y", "tags", "raw")
    with pytest.raises(AttributeError):
        a.z = 1  # slots: no stray attributes


def test_init_errors():
    with pytest.raises(TypeError, match="missing argument 'x'"):
        Point()
    with pytest.raises(TypeError, match="unexpected"):
        Point(1, colour="red")
    with pytest.raises(TypeError, match="multiple values"):
        Point(1, x=2)
    with pytest.raises(TypeError, match="positional"):
        Point(1, 2, [], {}, 5)


def test_eq_repr_and_compare_false():
    assert Point(1, raw={"a": 1}) == Point(1, raw={"b": 2})
    assert Point(1) != Point(2)
    assert Point(1) != (1, 0, [])
    assert repr(Point(1, 2)) == "Point(x=1, y=2, tags=[])"
    with pytest.raises(TypeError):
        hash(Point(1))  # mutable records are unhashable, like dataclasses


def test_frozen():
    p = Port(80)
    with pytest.raises(FrozenRecordError):
        p.host = 81
    assert {Port(80), Port(80), Port(81, "udp")} == {Port(80), Port(81, "udp")}


def test_replace_and_to_dict():
    a = Point(1, tags=["t"])
    b = replace(a, y=5)
    assert (b.x, b.y, b.tags) == (1, 5, ["t"]) and a.y == 0
    assert to_dict(b) == {"x": 1, "y": 5, "tags": ["t"], "raw": {}}
    with pytest.raises(TypeError, match="no fields"):
        replace(a, z=1)
    assert replace(Port(80), proto="udp") == Port(80, "udp")


def test_the_create_path_does_not_import_what_it_avoids():
    """The reason this module (and jsonio, and the _socket/_signal/_thread/
    _prctl imports) exists: the modules ``create``, ``run`` and ``exec`` load
    must not pull in dataclasses, json, re, enum, ... (together more than
    runc's whole run, on every start)."""
    avoided = ("dataclasses", "inspect", "ast", "json", "re", "enum", "socket", "signal", "contextlib",
               "shutil", "collections", "subprocess", "threading", "typing", "prctl", "traceback")
    code = ("import sys\n"
            "import pyrun.commands.fastpath, pyrun.container.planning, pyrun.container.create, pyrun.container.lifecycle, pyrun.config.spec, pyrun.stages.builder\n"
            "import pyrun.net.network, pyrun.container.state\n"
            "import pyrun.cgroups, pyrun.stages.channel, pyrun.security.capabilities, pyrun.filesystem.mounts, pyrun.filesystem.devices\n"
            "import pyrun.stages.pid1, pyrun.security.process, pyrun.filesystem.masking, pyrun.kernel.idmap, pyrun.filesystem.rootfs, pyrun.container.enter\n"
            f"print(sorted(m for m in {avoided!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == "[]"
