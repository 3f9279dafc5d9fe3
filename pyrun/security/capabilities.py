"""Capabilities: the five sets of ``process.capabilities`` (capabilities(7)).

The order is forced by the kernel, around the switch to ``process.user``:

1. drop from the *bounding* set what the config does not list
   (PR_CAPBSET_DROP needs CAP_SETPCAP, which we still have);
2. PR_SET_KEEPCAPS, so that setresuid(2) to a non-zero uid keeps the
   permitted set instead of clearing it;
3. switch user (``process.switch_user``);
4. capset(2) the effective, permitted and inheritable sets exactly;
5. raise each *ambient* capability (the only way a non-root process keeps a
   capability across execve(2); each must be permitted and inheritable);
6. carry the sets across the execve(2) of the sealed pyrun-init, which
   makes the last one (:func:`hand_over`).

A config without ``capabilities`` gets none, as with runc. Names the running
kernel does not know are skipped with a warning, as runc and crun do.
"""

from __future__ import annotations

import _prctl  # python-prctl's C core: prctl.py generates its wrappers at import

from pyrun.kernel import syscalls as sc
from pyrun.log import log
from pyrun.config.spec_names import CAPABILITIES


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return _prctl.CAP_LAST_CAP


class CapSets:
    """The config's five sets as numbers the running kernel knows."""

    def __init__(self, caps, last: int):
        self.last = last
        names = caps or None
        self.bounding = self._numbers(names, "bounding")
        self.effective = self._numbers(names, "effective")
        self.permitted = self._numbers(names, "permitted")
        self.inheritable = self._numbers(names, "inheritable")
        self.ambient = self._numbers(names, "ambient")

    def _numbers(self, caps, field: str) -> set[int]:
        out = set()
        for name in getattr(caps, field, None) or []:
            number = CAPABILITIES[name]
            if number > self.last:
                log.warning(f"process.capabilities.{field}: {name} is unknown to this kernel; ignored")
                continue
            out.add(number)
        return out


def drop_bounding(sets: CapSets) -> None:
    """prctl(PR_CAPBSET_DROP) for every capability not in the bounding set."""
    for cap in range(sets.last + 1):
        if cap not in sets.bounding and _prctl.prctl(_prctl.PR_CAPBSET_READ, cap):
            _prctl.prctl(_prctl.PR_CAPBSET_DROP, cap)


def keep_across_setuid() -> None:
    _prctl.prctl(_prctl.PR_SET_KEEPCAPS, 1)


def apply(sets: CapSets) -> None:
    """capset(2) the three sets, then the ambient set (PR_CAP_AMBIENT)."""
    _prctl.prctl(_prctl.PR_SET_KEEPCAPS, 0)
    everything = set(range(sets.last + 1))
    # libcap's cap_set_proc(3) through python-prctl: the sets to raise
    # (effective, permitted, inheritable), then the sets to clear.
    try:
        _prctl.set_caps(
            sorted(sets.effective), sorted(sets.permitted), sorted(sets.inheritable),
            sorted(everything - sets.effective), sorted(everything - sets.permitted),
            sorted(everything - sets.inheritable),
        )
    except OSError as e:
        from pyrun.errors import PyrunError, errno_text

        # A capability the runtime itself does not hold cannot be given.
        missing = [name for name, n in CAPABILITIES.items() if n in sets.permitted and not _prctl.prctl(
            _prctl.PR_CAPBSET_READ, n)]
        hint = f" ({', '.join(missing)}: not in pyrun's own bounding set)" if missing else ""
        raise PyrunError(f"capset: {errno_text(e)}: process.capabilities{hint}") from None
    sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_CLEAR_ALL, shown="prctl(PR_CAP_AMBIENT_CLEAR_ALL)")
    for cap in sorted(sets.ambient):
        if cap not in sets.permitted or cap not in sets.inheritable:
            # The kernel refuses it (prctl(2) EPERM). runc skips it with a
            # message, and `runc spec` writes such a config: so do we.
            name = next(n for n, v in CAPABILITIES.items() if v == cap)
            log.debug_msg(f"process.capabilities.ambient: {name} skipped: not in both "
                          "permitted and inheritable")
            continue
        sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_RAISE, cap, shown=f"prctl(PR_CAP_AMBIENT_RAISE, {cap})")


def _mask(caps: set[int]) -> str:
    return f"{sum(1 << c for c in caps):x}"


def hand_over(sets: CapSets) -> str:
    """Carry the sets across the execveat(2) of the sealed pyrun-init
    (pyrun.stages.pid1), which makes the process's execve(2) with these caps: a
    user other than root keeps only its ambient set across an execve(2),
    and the kernel checks the process's execve (a 0700 program for
    CAP_DAC_OVERRIDE) with the caller's. So every permitted capability
    still in the bounding set is made inheritable and ambient for that one
    execve(2); the binary then sets exactly ``E:P:I:A`` (returned, hex)
    again with capset(2) and PR_CAP_AMBIENT."""
    carry = sets.permitted & sets.bounding
    everything = set(range(sets.last + 1))
    inheritable = sets.inheritable | carry
    _prctl.set_caps(sorted(sets.effective & carry), sorted(carry), sorted(inheritable),
                    sorted(everything - (sets.effective & carry)), sorted(everything - carry),
                    sorted(everything - inheritable))
    for cap in sorted(carry):
        sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_RAISE, cap, shown=f"prctl(PR_CAP_AMBIENT_RAISE, {cap})")
    ambient = sets.ambient & carry & sets.inheritable
    return ":".join(_mask(m) for m in (sets.effective & carry, carry, sets.inheritable, ambient))
