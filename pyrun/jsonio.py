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
  ``json.dumps(obj, indent=N)``.
* :func:`go` — the bytes Go's encoding/json writes (runc's ``state``,
  ``list``, ``ps``, ``events``, ``features``, ``spec``): no spaces after
  ``:`` and ``,`` unless indented, UTF-8 as is, and ``<``, ``>``, ``&``,
  U+2028, U+2029 escaped (Go escapes them for HTML by default), so that a
  tool that greps runc's output (``{"type":"oom"``) finds pyrun's too.

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


# What Go's encoding/json (go1.19, runc 1.1's) writes differently from
# json.dumps(ensure_ascii=False): \b and \f as \u escapes, the HTML
# characters escaped, and each byte of invalid UTF-8 (a lone surrogate
# here, os.fsdecode's surrogateescape) as \ufffd.
_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
               "\u2029": "\\u2029", "\b": "\\u0008", "\f": "\\u000c"}


def go_quote(text: str) -> str:
    """A string as Go's encoding/json quotes it."""
    if not any(c in text for c in _GO_ESCAPES) and text.isascii():
        return _json.encode_basestring(text)
    out = []
    for c in text:
        if c in _GO_ESCAPES:
            out.append(_GO_ESCAPES[c])
        elif "\ud800" <= c <= "\udfff":
            out.append("\\ufffd")
        else:
            out.append(_json.encode_basestring(c)[1:-1])
    return '"' + "".join(out) + '"'


_go_compact = _json.make_encoder(None, _default, go_quote, None, ":", ",", False, False, False)


def go(obj, indent: str | None = None) -> str:
    """Go's json.Marshal(obj) (compact), or json.MarshalIndent(obj, "",
    indent); an Encoder adds a newline, MarshalIndent none."""
    if indent is None:
        return "".join(_go_compact(obj, 0))
    return "".join(_indented(obj, indent, "\n", go_quote))


def go_nested(obj, indent: str, depth: int) -> str:
    """:func:`go` with ``indent``, laid out ``depth`` levels deep in an
    enclosing value (:func:`dumps_nested`'s Go twin)."""
    return "".join(_indented(obj, indent, "\n" + indent * depth, go_quote))


def _indented(obj, step: str, nl: str, quote=_json.encode_basestring_ascii):
    """The layout of json.dumps(indent=...): one member per line."""
    if isinstance(obj, dict) and obj:
        inner = nl + step
        yield "{"
        first = True
        for key, value in obj.items():
            if not isinstance(key, str):
                key = dumps(key).strip('"') if not isinstance(key, bool) else ("true" if key else "false")
            yield (inner if first else "," + inner) + quote(key) + ": "
            first = False
            yield from _indented(value, step, inner, quote)
        yield nl + "}"
    elif isinstance(obj, (list, tuple)) and obj:
        inner = nl + step
        yield "["
        for i, value in enumerate(obj):
            yield inner if i == 0 else "," + inner
            yield from _indented(value, step, inner, quote)
        yield nl + "]"
    elif quote is not _json.encode_basestring_ascii:
        yield go(obj)
    else:
        yield dumps(obj)
