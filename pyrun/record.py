"""Records: the part of :mod:`dataclasses` pyrun uses, without its import.

``import dataclasses`` pulls in inspect, ast, dis, tokenize, enum and re,
and each ``@dataclass`` then compiles its methods with exec(). ``pyrun
run`` pays every import on every container start, whose budget is runc's
whole run (``make bench`` sets the two side by side), so the parsed spec
and the plan use this instead.

The spelling is the dataclass one, so a reader who knows dataclasses
knows these::

    @record
    class Mount:
        destination: str
        type: str | None = None
        options: list[str] = field(default_factory=list)

What it gives: ``__slots__`` (one per annotated field, in order), an
``__init__`` taking the fields positionally or by name, ``__repr__``,
``__eq__`` (fields declared ``compare=False`` left out), ``frozen=True``
(assignment raises, and the record is hashable), and :func:`replace`.
What it does not: inheritance between records, ``ClassVar``, ``InitVar``,
``__post_init__``, ordering. The methods are plain functions shared by
every record (no exec), so building a class costs one ``type()`` call.
"""

from __future__ import annotations

_MISSING = object()


class _Field:
    __slots__ = ("compare", "default", "factory", "repr")

    def __init__(self, default, factory, repr: bool, compare: bool):
        self.default = default
        self.factory = factory
        self.repr = repr
        self.compare = compare


def field(*, default=_MISSING, default_factory=None, repr: bool = True, compare: bool = True):
    """dataclasses.field(): a default, a factory for a mutable default
    (``list``, ``dict``, a record class), or a field left out of repr/eq."""
    return _Field(default, default_factory, repr, compare)


class FrozenRecordError(AttributeError):
    """Assignment to a field of a ``frozen=True`` record."""


def _init(self, *args, **kwargs) -> None:
    spec = self._record_fields
    if len(args) > len(spec):
        raise TypeError(f"{type(self).__name__}() takes {len(spec)} positional arguments, got {len(args)}")
    setter = object.__setattr__
    for i, (name, f) in enumerate(spec):
        if i < len(args):
            if name in kwargs:
                raise TypeError(f"{type(self).__name__}() got multiple values for {name!r}")
            value = args[i]
        elif name in kwargs:
            value = kwargs.pop(name)
        elif f.factory is not None:
            value = f.factory()
        elif f.default is not _MISSING:
            value = f.default
        else:
            raise TypeError(f"{type(self).__name__}() missing argument {name!r}")
        setter(self, name, value)
    if kwargs:
        raise TypeError(f"{type(self).__name__}() got unexpected arguments {sorted(kwargs)}")


def _repr(self) -> str:
    inner = ", ".join(f"{name}={getattr(self, name)!r}" for name, f in self._record_fields if f.repr)
    return f"{type(self).__name__}({inner})"


def _key(self) -> tuple:
    return tuple(getattr(self, name) for name, f in self._record_fields if f.compare)


def _eq(self, other):
    if type(other) is not type(self):
        return NotImplemented
    return _key(self) == _key(other)


def _hash(self) -> int:
    return hash(_key(self))


def _frozen_setattr(self, name, value):
    raise FrozenRecordError(f"cannot assign to field {name!r} of frozen {type(self).__name__}")


def record(cls=None, *, frozen: bool = False):
    """The class decorator: ``@record`` or ``@record(frozen=True)``."""

    def wrap(cls):
        spec = []
        ns = {}
        names = cls.__dict__.get("__annotations__", {})  # noqa: RUF063 - not inspect: its import is the cost
        for key, value in cls.__dict__.items():
            if key not in names and key not in ("__dict__", "__weakref__"):
                ns[key] = value
        for name in names:
            value = cls.__dict__.get(name, _MISSING)
            spec.append((name, value if isinstance(value, _Field) else _Field(value, None, True, True)))
        ns["__slots__"] = tuple(names)
        ns["_record_fields"] = tuple(spec)
        ns["__init__"] = _init
        ns.setdefault("__repr__", _repr)
        ns["__eq__"] = _eq
        if frozen:
            ns["__setattr__"] = _frozen_setattr
            ns["__hash__"] = _hash
        else:
            ns["__hash__"] = None  # mutable and compared by value: unhashable, as a dataclass
        return type(cls)(cls.__name__, cls.__bases__, ns)

    return wrap if cls is None else wrap(cls)


def replace(obj, **changes):
    """dataclasses.replace(): a copy of ``obj`` with some fields changed."""
    values = {name: getattr(obj, name) for name, _ in obj._record_fields}
    unknown = set(changes) - set(values)
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no fields {sorted(unknown)}")
    values.update(changes)
    return type(obj)(**values)


def to_dict(obj) -> dict:
    """The fields as a dict, one level deep (records inside stay records)."""
    return {name: getattr(obj, name) for name, _ in obj._record_fields}
