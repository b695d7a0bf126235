"""Distro version ordering: dpkg (through python-debian) and RPM (rpmvercmp, rewritten and tested equal).

`compare(ordering, a, b)` returns -1, 0 or 1. Both orderings are proven against the real tools
(`dpkg --compare-versions`, rpm's own `rpm.ver` comparison) in tests/unit/test_feeds_versions.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from patchbrain.errors import BadInput

# Debian Policy 5.6.12: [epoch:]upstream_version[-debian_revision], checked as dpkg's parseversion() does.
_UPSTREAM_RE = re.compile(r"^[0-9][A-Za-z0-9.+~:-]*$")
_REVISION_RE = re.compile(r"^[A-Za-z0-9.+~]+$")
_MAX_LEN = 256


def _check(version: str, what: str) -> str:
    if not isinstance(version, str) or not version or len(version) > _MAX_LEN:
        raise BadInput(f"not a {what} version: {str(version)[:60]!r}", field="version")
    if any(c.isspace() or not c.isprintable() for c in version):
        raise BadInput(f"not a {what} version (whitespace or control characters): {version[:60]!r}")
    return version


def dpkg_valid(version: str) -> bool:
    """True when dpkg would accept `version` (epoch digits, upstream starting with a digit, legal chars)."""
    if not version or len(version) > _MAX_LEN or not version.isascii():
        return False
    epoch, colon, rest = version.partition(":")
    if not colon:
        epoch, rest = "", version
    elif not epoch.isdigit():
        return False
    upstream, dash, revision = rest.rpartition("-")
    if not dash:
        upstream, revision = rest, ""
    elif not _REVISION_RE.fullmatch(revision):
        return False
    return bool(_UPSTREAM_RE.fullmatch(upstream))


def dpkg_compare(a: str, b: str) -> int:
    """dpkg's ordering of two Debian versions: -1, 0 or 1. Raises BadInput for an invalid version."""
    from debian.debian_support import version_compare  # lazy: python-debian imports a lot

    for v in (a, b):
        _check(v, "Debian")
        if not dpkg_valid(v):
            raise BadInput(f"not a valid Debian version: {v[:60]!r}", field="version")
    result = version_compare(a, b)
    return (result > 0) - (result < 0)


def _is_alnum(c: str) -> bool:
    return c.isascii() and c.isalnum()


def rpmvercmp(a: str, b: str) -> int:
    """rpm's rpmvercmp() on two version (or release) strings: -1, 0 or 1. Handles `~` and `^`."""
    if a == b:
        return 0
    i, j, la, lb = 0, 0, len(a), len(b)
    while i < la or j < lb:
        while i < la and not _is_alnum(a[i]) and a[i] not in "~^":
            i += 1
        while j < lb and not _is_alnum(b[j]) and b[j] not in "~^":
            j += 1
        ca = a[i] if i < la else ""
        cb = b[j] if j < lb else ""
        if ca == "~" or cb == "~":  # tilde sorts before everything, even the end
            if ca != "~":
                return 1
            if cb != "~":
                return -1
            i, j = i + 1, j + 1
            continue
        if ca == "^" or cb == "^":  # caret sorts after the end, before anything else
            if not ca:
                return -1
            if not cb:
                return 1
            if ca != "^":
                return 1
            if cb != "^":
                return -1
            i, j = i + 1, j + 1
            continue
        if not (ca and cb):
            break
        si, sj = i, j
        if ca.isdigit():
            while si < la and a[si].isascii() and a[si].isdigit():
                si += 1
            while sj < lb and b[sj].isascii() and b[sj].isdigit():
                sj += 1
            isnum = True
        else:
            while si < la and a[si].isascii() and a[si].isalpha():
                si += 1
            while sj < lb and b[sj].isascii() and b[sj].isalpha():
                sj += 1
            isnum = False
        if sj == j:  # b's segment is of the other kind: numbers are newer than letters
            return 1 if isnum else -1
        seg_a, seg_b = a[i:si], b[j:sj]
        if isnum:
            seg_a, seg_b = seg_a.lstrip("0"), seg_b.lstrip("0")
            if len(seg_a) != len(seg_b):
                return 1 if len(seg_a) > len(seg_b) else -1
        if seg_a != seg_b:
            return 1 if seg_a > seg_b else -1
        i, j = si, sj
    if i >= la and j >= lb:
        return 0
    return -1 if i >= la else 1


def split_evr(evr: str) -> tuple[str | None, str, str | None]:
    """Split "[epoch:]version[-release]" the way rpm does (epoch only when all digits before ':')."""
    k = 0
    while k < len(evr) and evr[k].isascii() and evr[k].isdigit():
        k += 1
    dash = evr.rfind("-", k)
    if k < len(evr) and evr[k] == ":":
        epoch: str | None = evr[:k] or "0"
        rest_start = k + 1
    else:
        epoch, rest_start = None, 0
    if dash >= 0:
        return epoch, evr[rest_start:dash], evr[dash + 1 :]
    return epoch, evr[rest_start:], None


def rpm_compare(a: str, b: str) -> int:
    """rpm's ordering of two EVR strings ("1:2.3-4.el9"): -1, 0 or 1, as `rpm.ver(a) <=> rpm.ver(b)`."""
    _check(a, "RPM")
    _check(b, "RPM")
    ea, va, ra = split_evr(a)
    eb, vb, rb = split_evr(b)
    rc = rpmvercmp(ea if ea is not None else "0", eb if eb is not None else "0")
    if rc == 0:
        rc = rpmvercmp(va, vb)
        if rc == 0 and (ra is not None or rb is not None):
            # rpmverCmp(): a missing release sorts before any release, even an empty one.
            rc = -1 if ra is None else 1 if rb is None else rpmvercmp(ra, rb)
    return rc


ORDERINGS: dict[str, Callable[[str, str], int]] = {"dpkg": dpkg_compare, "rpm": rpm_compare}


def compare(ordering: str, a: str, b: str) -> int:
    """Compare two versions under `ordering` ("dpkg" or "rpm")."""
    try:
        fn = ORDERINGS[ordering]
    except KeyError:
        raise BadInput(f"unknown version ordering {ordering!r}", field="ordering") from None
    return fn(a, b)
