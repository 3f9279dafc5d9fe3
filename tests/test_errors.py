"""One wording for a failed system call: the call, the errno's words and its name (pure)."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import pytest

from pyrun.errors import SyscallError, errno_text, errno_text_runc

SOURCE = Path(__file__).resolve().parent.parent / "pyrun"


def test_errno_text_gives_the_words_and_the_name():
    assert errno_text(errno.EINVAL) == "Invalid argument (EINVAL)"
    assert errno_text(PermissionError(errno.EACCES, "Permission denied", "/x")) == "Permission denied (EACCES)"
    assert errno_text(9999) == f"{os.strerror(9999)} (9999)"  # a number the kernel may add later


def test_an_os_error_without_an_errno_keeps_its_own_words():
    """socket.timeout, or an OSError raised with a message alone."""
    assert errno_text(OSError("no pty")) == "no pty"


def test_runc_words_are_go_s_lower_case_words_without_the_name():
    """runc's messages that engines read (podman: "no such file or directory" is 127)."""
    assert errno_text_runc(errno.ENOENT) == "no such file or directory"
    assert errno_text_runc(FileNotFoundError(errno.ENOENT, "x")) == "no such file or directory"


def test_syscall_error_names_the_call_the_errno_and_the_detail():
    e = SyscallError("mount(/x)", errno.EINVAL, "linux.mounts[0]")
    assert str(e) == "mount(/x): Invalid argument (EINVAL): linux.mounts[0]"
    assert e.errno == errno.EINVAL and e.call == "mount(/x)"
    assert str(SyscallError("pivot_root", errno.EPERM)) == "pivot_root: Operation not permitted (EPERM)"


def _sources():
    files = sorted(SOURCE.rglob("*.py"))
    assert len(files) > 20, SOURCE
    return [(p, p.read_text()) for p in files]


def test_no_message_formats_an_errno_by_hand():
    """os.strerror / e.strerror lose the errno's name: only pyrun/errors.py words an errno."""
    found = [f"{p.relative_to(SOURCE.parent)}:{n}: {line.strip()}"
             for p, text in _sources() if p.name != "errors.py"
             for n, line in enumerate(text.splitlines(), 1) if "strerror" in line or "errorcode" in line]
    assert not found, "\n".join(found)


BARE = re.compile(r"errno\s*(==|!=|not in|in)\s*\(?\s*\d|SyscallError\(.*?,\s*\d+\s*[,)]|errno or \d")


def test_errnos_are_named_not_numbered():
    """``e.errno not in (38, 13, 1)`` reads as nothing: errno.ENOSYS does."""
    found = [f"{p.relative_to(SOURCE.parent)}:{n}: {line.strip()}"
             for p, text in _sources()
             for n, line in enumerate(text.splitlines(), 1) if BARE.search(line)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("line", ["if e.errno not in (38, 13, 1):", "if e.errno == 2:",
                                  'raise SyscallError("unshare", 1)', "e.errno or 5"])
def test_the_scan_sees_a_bare_errno(line):
    assert BARE.search(line)
