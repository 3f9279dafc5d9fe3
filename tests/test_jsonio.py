"""pyrun.jsonio: the same JSON as the json module, without importing it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pyrun import jsonio

SAMPLES = [
    {}, [], "", 0, -1, 1.5, True, False, None, "snow ☃ \u0000 \" \\ \n",
    {"ociVersion": "1.0.2", "process": {"args": ["sh", "-c", "echo hi"], "env": [], "user": {"uid": 0}},
     "annotations": {"a": "b"}, "list": [1, [2, [3, {}]], {"x": []}], "n": 2**63 - 1, "f": 1e-9},
    {1: "int key", "nested": {"deep": {"deeper": [None, True]}}},
]


@pytest.mark.parametrize("obj", SAMPLES)
def test_dumps_matches_json(obj):
    assert jsonio.dumps(obj) == json.dumps(obj, separators=(",", ":"))
    assert jsonio.dumps(obj, compact=False) == json.dumps(obj)
    assert jsonio.dumps(obj, indent=2) == json.dumps(obj, indent=2)
    assert jsonio.loads(jsonio.dumps(obj)) == json.loads(json.dumps(obj))


@pytest.mark.parametrize("text", ['  {"a": [1, 2.5, "x"]}\n', b'\xef\xbb\xbf{"a": 1}', b"[true, null]",
                                  '"\\u2603"', "\t0 "])
def test_loads_matches_json(text):
    plain = text.decode("utf-8-sig") if isinstance(text, bytes) else text
    assert jsonio.loads(text) == json.loads(plain)


@pytest.mark.parametrize("text, msg", [("", "Expecting value"), ("   ", "Expecting value"),
                                       ('{"a": 1} x', "Extra data"), ('{"a": }', "Expecting value"),
                                       ('{"a" 1}', "Expecting ':' delimiter"), ('["a\tb"]', "Invalid control")])
def test_syntax_errors_are_json_decode_errors(text, msg):
    with pytest.raises(json.JSONDecodeError) as e:
        jsonio.loads(text)
    assert e.value.msg.startswith(msg)
    with pytest.raises(json.JSONDecodeError) as ref:
        json.loads(text)
    assert (e.value.lineno, e.value.colno) == (ref.value.lineno, ref.value.colno)


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": -Infinity}'])
def test_nan_and_infinity_are_refused_like_go(text):
    with pytest.raises(ValueError, match="not valid JSON"):
        jsonio.loads(text)


def test_unserializable_is_a_type_error():
    with pytest.raises(TypeError, match="not JSON serializable"):
        jsonio.dumps({"a": object()})


def test_import_is_free_of_json_and_re():
    code = "import sys, pyrun.jsonio; print([m for m in ('json', 're', 'enum') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == "[]"


def test_syntax_errors_before_json_is_imported():
    """The C scanner raises json.decoder.JSONDecodeError only if something
    imported json.decoder already; otherwise it returned NULL and the error
    read "<_json.Scanner object at 0x...> returned NULL without setting an
    exception" (a corrupt state.json said that)."""
    code = ("import sys, pyrun.jsonio\n"
            "for text in ['{garbage', '{\"a\" 1}', '[1,', '[\"a\\tb\"]']:\n"
            "    try:\n"
            "        pyrun.jsonio.loads(text)\n"
            "    except ValueError as e:\n"
            "        print(type(e).__name__, e.msg)\n")
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, cwd="/")
    assert out.stdout.splitlines() == [
        "JSONDecodeError Expecting property name enclosed in double quotes",
        "JSONDecodeError Expecting ':' delimiter",
        "JSONDecodeError Expecting value",
        "JSONDecodeError Invalid control character at",
    ], out.stderr
