"""docs/TOUR.md runs: every command in it, with the output it promises.

The tour's command blocks are fenced as ```sh tour [WHO/WHERE...]:

* ``sh tour``: rootless; run as the test user (``pyrun-test``) when the
  tests run as root, as you otherwise;
* ``root``: as root (skipped when the tests do not run as root);
* ``v1``: only on a cgroup v1 or hybrid host (this machine and CI's);
* ``vm``: only on a pure cgroup v2 host: marked ``vm``, run in the qemu VM
  by ``make vm-test``;
* ``systemd``: needs systemd as PID 1: marked ``systemd``, run by
  ``make vm-test-systemd``.

In a block, each line (joined with the next while it ends in ``\\``) is a
shell command; under it, ``# expect: RE`` says its output (stdout and stderr)
matches RE (re.M), ``# expect-not: RE`` that it does not, ``# exit: N`` that
it exits with N instead of 0. Other ``#`` lines are comments.

Each page (a ``## `` section) runs in one bash per kind of block, in a fresh
workspace holding copies of bundles/ (their id maps made the runner's), with ``pyrun`` on PATH as a wrapper that adds a ``--root`` of the
test's own; container ids ``tour-NAME`` become ``tourXXXX-NAME`` (unique to
the run) and whatever a page leaves is deleted with ``delete --force``.

``file.py:function`` references (``pyrun/...`` and ``native/...``) must name
a real module-level function or class (or ``Class.method``): a rename that
leaves the tour behind fails ``test_tour_names_real_code``.
"""

from __future__ import annotations

import ast
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile

import pytest

from conftest import BUNDLES, TOP

TOUR = os.path.join(TOP, "docs", "TOUR.md")
TAGS = {"root", "v1", "vm", "systemd"}
FENCE = re.compile(r"^```sh tour(?P<tags>(?: [a-z0-9]+)*)\s*\n(?P<body>.*?)^```\s*$", re.M | re.S)
REF = re.compile(r"`((?:pyrun|native)/[\w/]+\.(?:py|c)):([A-Za-z_][\w.]*)`")
ID = re.compile(r"\btour-([a-z0-9]+)\b")


def unique_ids(text: str, tag: str) -> str:
    return ID.sub(lambda m: f"tour{tag}-{m.group(1)}", text)


class Command:
    def __init__(self, text: str):
        self.text = text
        self.expect: list[str] = []
        self.expect_not: list[str] = []
        self.exit = 0


def parse_block(body: str) -> list[Command]:
    cmds: list[Command] = []
    pending = ""
    for line in body.splitlines():
        stripped = line.strip()
        if pending:
            pending += "\n" + line
            if not line.endswith("\\"):
                cmds.append(Command(pending))
                pending = ""
            continue
        if not stripped:
            continue
        m = re.match(r"#\s*(expect|expect-not|exit):\s?(.*)$", stripped)
        if m:
            assert cmds, f"{m.group(1)} before any command: {line!r}"
            kind, arg = m.groups()
            if kind == "expect":
                cmds[-1].expect.append(arg)
            elif kind == "expect-not":
                cmds[-1].expect_not.append(arg)
            else:
                cmds[-1].exit = int(arg)
            continue
        if stripped.startswith("#"):
            continue
        if line.endswith("\\"):
            pending = line
        else:
            cmds.append(Command(line))
    assert not pending, f"block ends in a continued line: {pending!r}"
    return cmds


def pages() -> list[tuple[str, str]]:
    """(title, text) of each ``## `` section."""
    with open(TOUR) as f:
        text = f.read()
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return [(parts[i].strip(), parts[i + 1]) for i in range(1, len(parts), 2)]


def runs() -> list[tuple[str, frozenset[str], list[Command]]]:
    """(page, tags, commands): one run per page and kind of block, in order."""
    out: dict[tuple[str, frozenset[str]], list[Command]] = {}
    for title, text in pages():
        for m in FENCE.finditer(text):
            tags = frozenset(m.group("tags").split())
            assert tags <= TAGS, f"{title}: unknown tags {sorted(tags - TAGS)}"
            out.setdefault((title, tags), []).extend(parse_block(m.group("body")))
    return [(page, tags, cmds) for (page, tags), cmds in out.items()]


def _param(page: str, tags: frozenset[str], cmds: list[Command]):
    marks = []
    if "vm" in tags:
        marks.append(pytest.mark.vm)
    if "systemd" in tags:
        marks.append(pytest.mark.systemd)
    name = re.sub(r"\W+", "-", page.lower()).strip("-")
    kind = "-".join(sorted(tags)) or "rootless"
    return pytest.param(page, tags, cmds, marks=marks, id=f"{name}-{kind}")


# ---------------------------------------------------------------- the references


def _py_names(path: str) -> set[str]:
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            if isinstance(node, ast.ClassDef):
                names.update(f"{node.name}.{n.name}" for n in node.body
                             if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    return names


def _c_defines(path: str, name: str) -> bool:
    """A function definition: its name, then '(' at the start of a line
    after a return type (or on a line of its own after it)."""
    with open(path) as f:
        text = f.read()
    return re.search(rf"^[A-Za-z_][\w \t\*]*\b{re.escape(name)}\s*\([^;]*$", text, re.M) is not None


def references() -> list[tuple[str, str]]:
    with open(TOUR) as f:
        return REF.findall(f.read())


def test_tour_names_real_code():
    refs = references()
    assert len(refs) >= 9, refs
    missing = []
    for path, name in refs:
        full = os.path.join(TOP, path)
        if not os.path.exists(full):
            missing.append(f"{path}:{name} (no such file)")
        elif path.endswith(".py") and name not in _py_names(full):
            missing.append(f"{path}:{name}")
        elif path.endswith(".c") and not _c_defines(full, name):
            missing.append(f"{path}:{name}")
    assert not missing, "docs/TOUR.md names code that is not there: " + ", ".join(missing)


def test_each_page_names_code_and_runs_something():
    """Every primitive's page has code to read, and commands with checks."""
    for title, text in pages():
        if not title[0].isdigit():
            continue
        assert REF.search(text), f"{title}: names no file.py:function to read"
        blocks = list(FENCE.finditer(text))
        assert blocks, f"{title}: no ```sh tour block"
        cmds = [c for m in blocks for c in parse_block(m.group("body"))]
        assert any(c.expect for c in cmds), f"{title}: no # expect: line"


def test_parser_reads_expectations():
    cmds = parse_block("a \\\n  b\n# expect: x\n# just a comment\nc\n# exit: 3\n# expect-not: y\n")
    assert [c.text for c in cmds] == ["a \\\n  b", "c"]
    assert cmds[0].expect == ["x"] and cmds[1].exit == 3 and cmds[1].expect_not == ["y"]


# ---------------------------------------------------------------- running the pages


def _cgroup_v2() -> bool:
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def _skip_reason(tags: frozenset[str]) -> str | None:
    if "root" in tags and os.geteuid() != 0:
        return "a root block: the tests do not run as root"
    if "v1" in tags and _cgroup_v2():
        return "a cgroup v1 block: this host's /sys/fs/cgroup is cgroup2"
    if "vm" in tags and not _cgroup_v2():
        return "a cgroup v2 block: make vm-test runs it"
    if "systemd" in tags and not os.path.isdir("/run/systemd/system"):
        return "a systemd block: make vm-test-systemd runs it"
    if shutil.which("jq") is None:
        return "the tour needs jq (tools/deps.sh installs it)"
    return None


class Runner:
    """A workspace, a pyrun on PATH and the user to run a page as."""

    def __init__(self, base: str, tags: frozenset[str], rootless_env):
        self.root_user = "root" in tags
        if self.root_user:
            self.uid, self.gid = 0, 0
            self.prefix, env = [sys.executable, "-m", "pyrun"], dict(os.environ)
        else:
            self.prefix, env, self.uid, self.gid, _ = rootless_env
        self.dir = os.path.join(base, "work")
        os.mkdir(self.dir, 0o755)
        self.state = os.path.join(self.dir, ".state")
        bindir = os.path.join(self.dir, ".bin")
        os.mkdir(bindir)
        for name in ("busybox", "hello"):
            dst = os.path.join(self.dir, "bundles", name)
            os.makedirs(dst)
            subprocess.run(["cp", "-a", os.path.join(BUNDLES, name, "rootfs"), dst], check=True)
            with open(os.path.join(BUNDLES, name, "config.json")) as f:
                config = json.load(f)
            for key, own in (("uidMappings", self.uid), ("gidMappings", self.gid)):
                if config["linux"].get(key):
                    config["linux"][key][0]["hostID"] = own
            with open(os.path.join(dst, "config.json"), "w") as f:
                json.dump(config, f, indent="\t")
        with open(os.path.join(bindir, "pyrun"), "w") as f:
            f.write("#!/bin/sh\nexec " + " ".join(map(shlex.quote, self.prefix))
                    + f" --root {shlex.quote(self.state)} \"$@\"\n")
        os.chmod(os.path.join(bindir, "pyrun"), 0o755)
        self.env = {k: v for k, v in env.items() if k not in ("XDG_RUNTIME_DIR", "XDG_DATA_HOME")}
        self.env.update(PATH=f"{bindir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                        HOME=self.dir, LANG="C.UTF-8")
        if os.geteuid() == 0 and self.uid != 0:
            subprocess.run(["chown", "-R", f"{self.uid}:{self.gid}", self.dir], check=True)

    def _user_kw(self) -> dict:
        if os.geteuid() == 0 and self.uid != 0:
            return {"user": self.uid, "group": self.gid, "extra_groups": []}
        return {}

    def run(self, cmds: list[Command], tag: str, timeout: float) -> list[tuple[int, str]]:
        out = os.path.join(self.dir, ".out")
        os.mkdir(out)
        if os.geteuid() == 0 and self.uid != 0:
            os.chown(out, self.uid, self.gid)
        lines = ["cd \"$(dirname \"$0\")\""]
        for i, c in enumerate(cmds):
            text = unique_ids(c.text, tag)
            lines.append(f"{{\n{text}\n}} >.out/{i} 2>&1 </dev/null; echo $? >.out/{i}.rc")
        script = os.path.join(self.dir, ".tour.sh")
        with open(script, "w") as f:
            f.write("\n".join(lines) + "\n")
        try:
            subprocess.run(["bash", script], cwd=self.dir, env=self.env, timeout=timeout,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           **self._user_kw())
        finally:
            self.cleanup()
        results = []
        for i in range(len(cmds)):
            try:
                with open(os.path.join(out, f"{i}.rc")) as f:
                    rc = int(f.read())
                with open(os.path.join(out, str(i))) as f:
                    text = f.read()
            except FileNotFoundError:
                rc, text = -1, "(not run: the page timed out before it)"
            results.append((rc, text))
        return results

    def cleanup(self) -> None:
        """delete --force whatever the page left, by id, in its own --root."""
        if not os.path.isdir(self.state):
            return
        for cid in os.listdir(self.state):
            if os.path.isdir(os.path.join(self.state, cid)):
                subprocess.run(self.prefix + ["--root", self.state, "delete", "--force", cid], env=self.env,
                               cwd=self.dir, capture_output=True, stdin=subprocess.DEVNULL, timeout=120,
                               **self._user_kw())


@pytest.mark.parametrize("page,tags,cmds", [_param(*r) for r in runs()])
def test_tour_page(page, tags, cmds, workspace, rootless_env):
    reason = _skip_reason(tags)
    if reason:
        pytest.skip(reason)
    base = tempfile.mkdtemp(prefix="tour-", dir=workspace)  # world-traversable, as the test user needs
    os.chmod(base, 0o755)
    runner = Runner(base, tags, rootless_env if "root" not in tags else None)
    tag = secrets.token_hex(3)
    slow = os.environ.get("PYRUN_IN_VM")
    results = runner.run(cmds, tag, timeout=1500 if slow else 300)
    failures = []
    for c, (rc, out) in zip(cmds, results):
        problems = []
        if rc != c.exit:
            problems.append(f"exit {rc}, expected {c.exit}")
        problems += [f"no match for {e!r}" for e in c.expect if not re.search(unique_ids(e, tag), out, re.M)]
        problems += [f"unexpected match for {e!r}" for e in c.expect_not
                     if re.search(unique_ids(e, tag), out, re.M)]
        if problems:
            failures.append(f"$ {c.text}\n  -> {'; '.join(problems)}\n" + "".join(f"  | {line}\n" for line in out.splitlines()))
    assert not failures, f"docs/TOUR.md, {page} (ids tour{tag}-*):\n" + "\n".join(failures)
