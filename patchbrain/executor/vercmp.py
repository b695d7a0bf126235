"""Version ordering as dpkg and rpm define it (a minimal copy until `patchbrain.feeds.matching` lands).

`deb_compare` follows dpkg's `verrevcmp` (lib/dpkg/version.c); `rpm_compare` follows rpm's `rpmvercmp`
(rpmio/rpmvercmp.c) with epoch and release handled as `rpmVersionCompare` does. Both return <0, 0 or >0.
"""

from __future__ import annotations

from typing import Literal


def _is_digit(c: str) -> bool:
    return "0" <= c <= "9"


def _is_alpha(c: str) -> bool:
    return "a" <= c <= "z" or "A" <= c <= "Z"


def _deb_order(c: str) -> int:
    if _is_digit(c):
        return 0
    if _is_alpha(c):
        return ord(c)
    if c == "~":
        return -1
    return ord(c) + 256


def _verrevcmp(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not _is_digit(a[i])) or (j < len(b) and not _is_digit(b[j])):
            ac = _deb_order(a[i]) if i < len(a) else 0
            bc = _deb_order(b[j]) if j < len(b) else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        first_diff = 0
        while i < len(a) and _is_digit(a[i]) and j < len(b) and _is_digit(b[j]):
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and _is_digit(a[i]):
            return 1
        if j < len(b) and _is_digit(b[j]):
            return -1
        if first_diff:
            return first_diff
    return 0


def _split_deb(version: str) -> tuple[int, str, str]:
    epoch, _, rest = version.partition(":") if ":" in version else ("0", "", version)
    upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "")
    return int(epoch or 0), upstream, revision


def deb_compare(a: str, b: str) -> int:
    """Compare two Debian versions ([epoch:]upstream[-revision]) as dpkg does."""
    ea, ua, ra = _split_deb(a)
    eb, ub, rb = _split_deb(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _verrevcmp(ua, ub) or _verrevcmp(ra, rb)


def _rpmvercmp(a: str, b: str) -> int:
    if a == b:
        return 0
    i = j = 0
    while i < len(a) or j < len(b):
        while i < len(a) and not (_is_digit(a[i]) or _is_alpha(a[i]) or a[i] in "~^"):
            i += 1
        while j < len(b) and not (_is_digit(b[j]) or _is_alpha(b[j]) or b[j] in "~^"):
            j += 1
        if (i < len(a) and a[i] == "~") or (j < len(b) and b[j] == "~"):
            if i >= len(a) or a[i] != "~":
                return 1
            if j >= len(b) or b[j] != "~":
                return -1
            i += 1
            j += 1
            continue
        if (i < len(a) and a[i] == "^") or (j < len(b) and b[j] == "^"):
            if i >= len(a):
                return -1
            if j >= len(b):
                return 1
            if a[i] != "^":
                return 1
            if b[j] != "^":
                return -1
            i += 1
            j += 1
            continue
        if i >= len(a) or j >= len(b):
            break
        kind = _is_digit if _is_digit(a[i]) else _is_alpha
        si, sj = i, j
        while i < len(a) and kind(a[i]):
            i += 1
        while j < len(b) and kind(b[j]):
            j += 1
        seg_a, seg_b = a[si:i], b[sj:j]
        if not seg_b:
            return 1 if kind is _is_digit else -1
        if kind is _is_digit:
            seg_a, seg_b = seg_a.lstrip("0"), seg_b.lstrip("0")
            if len(seg_a) != len(seg_b):
                return 1 if len(seg_a) > len(seg_b) else -1
        if seg_a != seg_b:
            return 1 if seg_a > seg_b else -1
    if i >= len(a) and j >= len(b):
        return 0
    return -1 if i >= len(a) else 1


def _split_rpm(evr: str) -> tuple[int, str, str | None]:
    epoch, _, rest = evr.partition(":") if ":" in evr else ("0", "", evr)
    version, sep, release = rest.rpartition("-") if "-" in rest else (rest, "", "")
    return int(epoch or 0), version, release if sep else None


def rpm_compare(a: str, b: str) -> int:
    """Compare two RPM [epoch:]version[-release] strings as rpm does (a missing release matches any)."""
    ea, va, ra = _split_rpm(a)
    eb, vb, rb = _split_rpm(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _rpmvercmp(va, vb) or (_rpmvercmp(ra, rb) if ra is not None and rb is not None else 0)


def compare(a: str, b: str, family: Literal["deb", "rpm"]) -> int:
    """Compare two versions of the given package family."""
    return deb_compare(a, b) if family == "deb" else rpm_compare(a, b)
