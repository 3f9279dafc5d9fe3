"""Every name pyrun's code (and its tools') reads is defined (pyflakes, undefined names only).

An error path runs rarely: a function removed from one module while
another still calls it in a message stays silent until a bad config meets
it, and then the user gets a NameError's traceback instead of the message.
(It happened: seccomp.version() went, three ConfigErrors still named it.)
Unused imports are not checked: stage 2 imports modules before
pivot_root(2) on purpose (stages/builder._import_before_pivot_root).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

pyflakes_api = pytest.importorskip("pyflakes.api")
from pyflakes import messages, reporter  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FILES = sorted(p for d in ("pyrun", "bench", "tools") for p in (REPO / d).rglob("*.py"))
WANTED = (messages.UndefinedName, messages.UndefinedLocal, messages.UndefinedExport)


class _Collect(reporter.Reporter):
    def __init__(self) -> None:
        self.found: list[str] = []

    def flake(self, message) -> None:
        if isinstance(message, WANTED):
            self.found.append(str(message))

    def syntaxError(self, filename, msg, lineno, offset, text) -> None:
        self.found.append(f"{filename}:{lineno}: {msg}")

    def unexpectedError(self, filename, msg) -> None:
        self.found.append(f"{filename}: {msg}")


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_name_is_defined(path: Path) -> None:
    out = _Collect()
    source = path.read_text()
    pyflakes_api.check(source, str(path), out)
    assert out.found == []
    with warnings.catch_warnings():  # "\\w" in a docstring: a SyntaxWarning from Python 3.12
        warnings.simplefilter("error")
        compile(source, str(path), "exec")
