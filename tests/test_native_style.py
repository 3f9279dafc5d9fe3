"""native/ has one indentation style, the kernel's (pure).

Indentation is tabs, one per brace level; a continuation line may align
with spaces after its tabs (fewer than 8: a tab is 8 columns wide), as
scripts/checkpatch.pl in Linux asks ("code indent should use tabs where
possible"). Labels and preprocessor lines sit in column 0.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

NATIVE = Path(__file__).resolve().parent.parent / "native"
FILES = sorted(p for p in NATIVE.iterdir() if p.suffix in (".c", ".h"))
INDENT = re.compile(r"^(\t*)( *)(\S?)")


def problems(text: str) -> list[str]:
    """Lines of C source that break the rule, as "LINE: why"."""
    found = []
    depth = 0        # braces open at the start of the line
    in_comment = False
    for n, line in enumerate(text.split("\n"), 1):
        tabs, spaces, first = INDENT.match(line).groups()
        if line != line.rstrip():
            found.append(f"{n}: trailing whitespace")
        elif " \t" in line[:len(line) - len(line.lstrip())]:
            found.append(f"{n}: a space before a tab")
        elif len(spaces) >= 8:
            found.append(f"{n}: {len(spaces)} spaces of indentation (a tab is 8)")
        elif first and not in_comment and first != "#" and not re.match(r"^\w+:\s*$", line.strip()):
            want = depth - (first == "}")
            if len(tabs) < want:
                found.append(f"{n}: {len(tabs)} tab(s) at brace level {want}")
        depth, in_comment = _braces(line, depth, in_comment)
    return found


def _braces(line: str, depth: int, in_comment: bool) -> tuple[int, bool]:
    """The brace depth after ``line``, outside comments, strings and chars."""
    i = 0
    while i < len(line):
        if in_comment:
            end = line.find("*/", i)
            if end < 0:
                return depth, True
            in_comment, i = False, end + 2
            continue
        c = line[i]
        if line.startswith("/*", i):
            in_comment, i = True, i + 2
            continue
        if line.startswith("//", i) or (c == "#" and not line[:i].strip()):
            break
        if c in "\"'":
            i += 1
            while i < len(line) and line[i] != c:
                i += 2 if line[i] == "\\" else 1
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        i += 1
    return depth, in_comment


def test_there_are_c_files():
    assert {"shim.c", "init.c", "hello.c", "seccomp.c"} <= {p.name for p in FILES}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_indentation_is_tabs(path):
    found = problems(path.read_text())
    assert not found, f"{path.name}:\n" + "\n".join(found)


@pytest.mark.parametrize("text, why", [
    ("int f(void)\n{\n    return 0;\n}\n", "0 tab(s) at brace level 1"),
    ("int f(void)\n{\n\tif (x)\n\t        return 0;\n}\n", "8 spaces"),
    ("int f(void)\n{\n \treturn 0;\n}\n", "a space before a tab"),
    ("int f(void)\n{\n\treturn 0; \n\t\n}\n", "trailing whitespace"),
])
def test_the_rule_sees_other_styles(text, why):
    assert any(why in p for p in problems(text)), problems(text)


def test_the_rule_allows_alignment_comments_labels_and_the_preprocessor():
    text = ("/* a comment\n * on two lines */\nint f(int a,\n\t  int b)\n{\n#ifdef X\n\tint s[] = {\n"
            "\t\t1, 2,\n\t};\n#endif\n\tif (a)\n\t\tgoto out;\n\tprintf(\"{%d\\n\",\n\t       a);\n"
            "out:\n\treturn '{';\n}\n")
    assert problems(text) == []
