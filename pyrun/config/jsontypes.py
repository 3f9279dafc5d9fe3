"""Type checks for decoded JSON: one wording for every parser of config.json.

:mod:`pyrun.config.spec`, :mod:`pyrun.config.process_attrs`, ``linux.seccomp``
(:mod:`pyrun.config.syscall_filter`) and ``linux.resources`` (:mod:`pyrun.config.resources`)
check fields through these helpers, so the same mistake reads the same
wherever it is made. Every error is a :class:`~pyrun.errors.ConfigError`
naming the JSON path of the field::

    process.user.uid: expected an integer, got bool
    linux.resources.cpu.shares: expected an integer between 2 and 262144, got 1
    linux.resources.cpu.period: expected an integer >= 0, got -1

The names of JSON's types are the ones Go's encoding/json prints in runc's
errors ("cannot unmarshal bool into ... of type uint32"): bool, string,
array, object; a number is "int" or "float" because config.json's integers
must be integers (no ``1.0``, no ``true``, as Go refuses them).

An absent key and ``null`` mean the same thing, "not set" (Go's nil).
Pure logic and cheap to import: the create path loads it.
"""

from __future__ import annotations

from pyrun.errors import ConfigError
from pyrun.jsonio import quote

__all__ = [
    "UINT16_MAX", "UINT32_MAX", "UINT64_MAX", "INT64_MIN", "INT64_MAX",
    "type_name", "join", "map_entry", "quote", "check", "get", "int_value", "integer",
    "req_integer", "boolean", "opt_str", "no_nul", "abs_path", "array", "str_list", "objects",
    "str_map",
]

UINT16_MAX = 2**16 - 1
UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_EXPECTED = {
    str: "a string",
    int: "an integer",
    bool: "a boolean",
    list: "an array",
    dict: "an object",
}


# bool before int: in Python, True is an int.
_NAMES = ((bool, "bool"), (int, "int"), (float, "float"), (str, "string"), (list, "array"), (dict, "object"))


def type_name(value: object) -> str:
    """The JSON type of a decoded value, as a message names it."""
    if value is None:
        return "null"
    for kind, name in _NAMES:
        if isinstance(value, kind):
            return name
    return type(value).__name__


def join(base: str, key: str) -> str:
    """Path of an object's member: ``process.user``."""
    return f"{base}.{key}" if base else key


def optional_object(parent: str, key: str):
    """Turn ``parse(obj, path)``, a parser of the object at ``parent.key``,
    into ``parse(parent_object)``: None where the key is absent or null,
    and "expected an object" (naming ``parent.key``) before ``parse`` runs
    where it is something else."""
    path = join(parent, key)

    def wrap(parse):
        def run(container: dict):
            obj = get(container, key, dict, parent)
            return None if obj is None else parse(obj, path)

        run.__name__, run.__qualname__, run.__doc__ = parse.__name__, parse.__qualname__, parse.__doc__
        return run

    return wrap


def map_entry(base: str, key: str) -> str:
    """Path of a map entry: ``annotations["a.b"]``."""
    return f"{base}[{quote(key)}]"


def check(value: object, kind: type, path: str):
    """``value`` when it is of JSON type ``kind`` (str, int, bool, list, dict)."""
    # bool is a subclass of int in Python; JSON true is not a number.
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise ConfigError(path, f"expected {_EXPECTED[kind]}, got {type_name(value)}")
    return value


def get(obj: dict, key: str, kind: type, path: str, required: bool = False):
    """obj[key] checked against kind; None when absent or null."""
    value = obj.get(key)
    if value is None:
        if required:
            raise ConfigError(join(path, key), "is required")
        return None
    return check(value, kind, join(path, key))


def int_value(value: object, path: str, lo: int | None, hi: int | None = None) -> int:
    """An integer within [lo, hi]; no bound where None (hi, or both)."""
    check(value, int, path)
    if lo is not None and value < lo or hi is not None and value > hi:  # type: ignore[operator]
        if hi is None:
            raise ConfigError(path, f"expected an integer >= {lo}, got {value}")
        raise ConfigError(path, f"expected an integer between {lo} and {hi}, got {value}")
    return value  # type: ignore[return-value]


def integer(obj: dict, key: str, path: str, lo: int | None, hi: int | None,
            required: bool = False) -> int | None:
    """obj[key], an integer within [lo, hi] (see int_value); None when absent or null."""
    value = obj.get(key)
    if value is None:
        if required:
            raise ConfigError(join(path, key), "is required")
        return None
    return int_value(value, join(path, key), lo, hi)


def req_integer(obj: dict, key: str, path: str, lo: int | None, hi: int | None) -> int:
    value = integer(obj, key, path, lo, hi, required=True)
    assert value is not None
    return value


def boolean(obj: dict, key: str, path: str) -> bool:
    value = get(obj, key, bool, path)
    return bool(value)


def opt_str(obj: dict, key: str, path: str) -> str | None:
    """An optional string where "" means unset (Go's zero value)."""
    value = get(obj, key, str, path)
    return value or None


def no_nul(value: str, path: str) -> None:
    if "\0" in value:
        raise ConfigError(path, "must not contain a nul byte")


def abs_path(value: str, path: str) -> None:
    no_nul(value, path)
    if not value.startswith("/"):
        raise ConfigError(path, f"expected an absolute path, got {quote(value)}")


def array(obj: dict, key: str, path: str) -> list:
    """obj[key], an array; [] when absent or null."""
    value = get(obj, key, list, path)
    return value if value is not None else []


def str_list(obj: dict, key: str, path: str) -> list[str]:
    items = array(obj, key, path)
    base = join(path, key)
    for i, item in enumerate(items):
        check(item, str, f"{base}[{i}]")
    return list(items)


def objects(obj: dict, key: str, path: str):
    """Yield (item, item_path) for an array of objects."""
    base = join(path, key)
    for i, item in enumerate(array(obj, key, path)):
        item_path = f"{base}[{i}]"
        check(item, dict, item_path)
        yield item, item_path


def str_map(obj: dict, key: str, path: str) -> dict[str, str]:
    value = get(obj, key, dict, path)
    if value is None:
        return {}
    base = join(path, key)
    for k, v in value.items():
        check(v, str, map_entry(base, k))
    return dict(value)
