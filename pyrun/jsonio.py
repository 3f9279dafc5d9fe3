"""JSON for the hot path: the C scanner and encoder, without ``import json``.

``import json`` imports ``re`` (and with it ``enum``) to compile the
patterns of its pure-Python fallback, paid by every ``pyrun
create``/``run``/``start``/``state``, whose budget is runc's whole run
(``make bench`` sets the two side by side). The parser and serializer that
``json`` actually uses are in the C module ``_json``, which imports nothing;
this module drives them directly, as ``json.decoder`` and ``json.encoder``
do:

* :func:`loads` — ``_json.make_scanner`` over a context object with the
  same settings as ``json.loads`` (strict strings), except that ``NaN`` and
  ``Infinity`` are refused, as Go's encoding/json (runc) refuses them.
* :func:`dumps` — ``_json.make_encoder``: compact, or indented like
  ``json.dumps(obj, indent=N)`` (runc's ``state`` output).

Errors are ``ValueError`` (``json.JSONDecodeError`` for bad syntax, with
``msg``, ``lineno`` and ``colno``; the C scanner imports ``json.decoder``
only to raise it).
"""

from __future__ import annotations

import _json

_WS = " \t\n\r"


def _no_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


class _Context:
    """What ``_json.make_scanner`` reads from a ``json.JSONDecoder``."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_no_constant)


_scan = _json.make_scanner(_Context())


def _syntax_error(msg: str, doc: str, pos: int) -> ValueError:
    from json import JSONDecodeError  # only on the error path

    return JSONDecodeError(msg, doc, pos)


def loads(data: str | bytes):
    """json.loads(): one JSON value, surrounded by whitespace at most."""
    if isinstance(data, (bytes, bytearray)):
        data = data.decode("utf-8-sig" if data[:3] == b"\xef\xbb\xbf" else "utf-8")
    start = len(data) - len(data.lstrip(_WS))
    try:
        value, end = _scan(data, start)
    except StopIteration as e:
        raise _syntax_error("Expecting value", data, e.value) from None
    except SystemError:
        # The scanner raises json.decoder.JSONDecodeError only once something
        # has imported json.decoder; before that it fails without an
        # exception. Import it (the error path only) and scan again.
        import json.decoder  # noqa: F401

        value, end = _scan(data, start)
    tail = data[end:]
    if tail.strip(_WS):
        raise _syntax_error("Extra data", data, end + len(tail) - len(tail.lstrip(_WS)))
    return value


def quote(text: str) -> str:
    """json.dumps(text, ensure_ascii=False): a string quoted for a message."""
    return _json.encode_basestring(text)


def _default(obj):
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


_compact = _json.make_encoder(None, _default, _json.encode_basestring_ascii, None,
                              ":", ",", False, False, False)
_spaced = _json.make_encoder(None, _default, _json.encode_basestring_ascii, None,
                             ": ", ", ", False, False, False)


def dumps(obj, indent: int | None = None, compact: bool = True) -> str:
    """json.dumps(): compact (``{"a":1}``) by default, ``compact=False`` for
    json's default spacing, ``indent=N`` for json.dumps(obj, indent=N)."""
    if indent is None:
        return "".join((_compact if compact else _spaced)(obj, 0))
    return "".join(_indented(obj, " " * indent, "\n"))


def dumps_nested(obj, indent: int, depth: int) -> str:
    """``obj`` as json.dumps(indent=N) lays it out ``depth`` levels deep in
    an enclosing value: its text can be spliced into the enclosing one."""
    return "".join(_indented(obj, " " * indent, "\n" + " " * (indent * depth)))


def _indented(obj, step: str, nl: str):
    """The layout of json.dumps(indent=...): one member per line."""
    if isinstance(obj, dict) and obj:
        inner = nl + step
        yield "{"
        first = True
        for key, value in obj.items():
            if not isinstance(key, str):
                key = dumps(key).strip('"') if not isinstance(key, bool) else ("true" if key else "false")
            yield (inner if first else "," + inner) + _json.encode_basestring_ascii(key) + ": "
            first = False
            yield from _indented(value, step, inner)
        yield nl + "}"
    elif isinstance(obj, (list, tuple)) and obj:
        inner = nl + step
        yield "["
        for i, value in enumerate(obj):
            yield inner if i == 0 else "," + inner
            yield from _indented(value, step, inner)
        yield nl + "]"
    else:
        yield dumps(obj)
