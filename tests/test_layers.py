"""The layering of pyrun/ (docs/ARCHITECTURE.md "The layers"), read from the source.

Every ``import`` and ``from ... import`` of every module under pyrun/,
function-local ones included (most of pyrun's imports are local, to keep
``pyrun state`` small), is parsed with :mod:`ast`; no module is imported.
The test fails

* on a module outside the layer table (a new package or a module left at
  the top: give it a layer in LAYERS and docs/ARCHITECTURE.md),
* on an import from a higher layer (the lower layer would depend on the
  one built over it), and
* on a cycle: modules that import each other, directly or around a ring
  (a package's ``__init__`` counts as a module of its own; importing
  ``pyrun.x.y`` is not counted as importing ``pyrun.x``).

Imports under ``if TYPE_CHECKING:`` are for the type checker only and are
not counted. Modules of one layer may import each other (the concerns use
each other: a cgroup mount is a mount), as long as no cycle forms.
"""

from __future__ import annotations

import ast
import os
import warnings

from conftest import TOP

SOURCE = os.path.join(TOP, "pyrun")

# Top to bottom: a module may import from its own layer and the layers below.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("entry", ("pyrun.__main__",)),
    ("commands", ("pyrun.commands",)),
    ("container", ("pyrun.container",)),
    ("stages", ("pyrun.stages",)),
    ("concerns", ("pyrun.filesystem", "pyrun.security", "pyrun.cgroups", "pyrun.net", "pyrun.console")),
    ("config", ("pyrun.config",)),
    ("kernel", ("pyrun.kernel",)),
    ("foundation", ("pyrun", "pyrun._native", "pyrun._build_native", "pyrun.errors", "pyrun.log", "pyrun.record",
                    "pyrun.jsonio")),
]


def modules(source: str = SOURCE) -> dict[str, str]:
    """Module name -> file, for every .py under source."""
    found = {}
    top = os.path.dirname(source)
    for d, subdirs, files in os.walk(source):
        subdirs[:] = [s for s in subdirs if s not in ("__pycache__", "_bin")]
        for f in files:
            if f.endswith(".py"):
                name = os.path.relpath(os.path.join(d, f), top)[:-3].replace(os.sep, ".")
                found[name.removesuffix(".__init__")] = os.path.join(d, f)
    return found


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:``."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skip


def imports(name: str, path: str, known: dict[str, str]) -> dict[str, int]:
    """The pyrun modules ``name`` imports, each with the line of its first import."""
    with open(path) as f, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a module's invalid escape is not this test's business
        tree = ast.parse(f.read(), path)
    skip = _type_checking_only(tree)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    out: dict[str, int] = {}

    def add(target: str, line: int) -> None:
        if target.split(".")[0] == "pyrun" and target != name:
            out.setdefault(target, line)

    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                add(sub if sub in known else base, node.lineno)
    return out


def layer_of(module: str) -> int | None:
    best, rank = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                if p == "pyrun" and module != "pyrun":
                    continue  # only pyrun/__init__.py itself; pyrun.X needs its own entry
                best, rank = len(p), i
    return rank


def graph(source: str = SOURCE) -> dict[str, dict[str, int]]:
    known = modules(source)
    return {name: imports(name, path, known) for name, path in sorted(known.items())}


def unplaced(g: dict[str, dict[str, int]]) -> list[str]:
    return [m for m in g if layer_of(m) is None]


def upward(g: dict[str, dict[str, int]]) -> list[str]:
    found = []
    for m, targets in g.items():
        mine = layer_of(m)
        for t, line in targets.items():
            theirs = layer_of(t)
            if mine is not None and theirs is not None and theirs < mine:
                found.append(f"{m} (layer {LAYERS[mine][0]}) imports {t} (layer {LAYERS[theirs][0]}), line {line}")
    return found


def cycles(g: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, {}):
            if w not in g:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in g:
        if v not in index:
            visit(v)
    return sorted(out)


def test_every_module_has_a_layer():
    g = graph()
    assert len(g) > 40, SOURCE
    assert unplaced(g) == [], "modules outside the layer table (tests/test_layers.py LAYERS)"


def test_no_import_from_a_higher_layer():
    assert upward(graph()) == []


def test_no_import_cycle():
    assert cycles(graph()) == []


def test_the_checks_see_what_they_should(tmp_path):
    """Not vacuous: a function-local import from a higher layer, a relative
    import that closes a cycle, and a module outside the table are found."""
    pkg = tmp_path / "pyrun"
    for d in ("kernel", "config", "stray"):
        (pkg / d).mkdir(parents=True)
        (pkg / d / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "kernel" / "a.py").write_text("def f():\n    from pyrun.config import b\n")
    (pkg / "config" / "b.py").write_text("from ..kernel import a\n")
    (pkg / "config" / "c.py").write_text("TYPE_CHECKING = False\nif TYPE_CHECKING:\n    from pyrun.commands import x\n")
    g = graph(str(pkg))
    assert g["pyrun.kernel.a"] == {"pyrun.config.b": 2}
    assert g["pyrun.config.b"] == {"pyrun.kernel.a": 1}
    assert g["pyrun.config.c"] == {}
    assert upward(g) == ["pyrun.kernel.a (layer kernel) imports pyrun.config.b (layer config), line 2"]
    assert cycles(g) == [["pyrun.config.b", "pyrun.kernel.a"]]
    assert unplaced(g) == ["pyrun.stray"]
