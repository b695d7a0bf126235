"""CVE IDs an update fixes, read from the candidate's changelog between installed and candidate versions.

As Vuls does: walk the changelog from the newest entry down, keep entries newer than the installed version
(and not newer than the candidate), and collect the CVE IDs they mention. Changelog text comes from hosts:
it is parsed as data, and only strings matching the CVE grammar come out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Literal

from patchbrain.executor.vercmp import compare

Family = Literal["deb", "rpm"]

_CVE = re.compile(r"\bCVE-[0-9]{4}-[0-9]{4,9}\b")
# Debian: "labdemo (1.1) bookworm; urgency=medium"
_DEB_HEADER = re.compile(r"^[a-z0-9][a-z0-9+.-]*\s+\(([^()\s]+)\)\s+[^;]*;")
# RPM: "* Wed Nov 26 2026 Lab Maintainer <lab@example.org> - 1.1-1" (the trailing version is a convention)
_RPM_HEADER = re.compile(r"^\*\s")
_RPM_HEADER_VERSION = re.compile(
    r"(?:\s-\s*|\s)((?:[0-9]+:)?[0-9][A-Za-z0-9._+~^]*(?:-[A-Za-z0-9._+~^]+)?)\s*$"
)


def _entries(text: str, family: Family) -> Iterator[tuple[str | None, str]]:
    """Yield (version or None, body) for each changelog entry, newest first."""
    version: str | None = None
    body: list[str] = []
    started = False
    for line in text.splitlines():
        if family == "deb":
            m = _DEB_HEADER.match(line)
            is_header = m is not None
            new_version = m.group(1) if m else None
        else:
            is_header = _RPM_HEADER.match(line) is not None
            vm = _RPM_HEADER_VERSION.search(line) if is_header else None
            new_version = vm.group(1) if vm else None
        if is_header:
            if started:
                yield version, "\n".join(body)
            version, body, started = new_version, [], True
        elif started:
            body.append(line)
    if started:
        yield version, "\n".join(body)


def _strip_epoch(version: str) -> str:
    return version.split(":", 1)[1] if ":" in version else version


def cves_between(text: str, family: Family, installed: str | None, candidate: str) -> tuple[str, ...]:
    """Sorted CVE IDs mentioned by entries with installed < version <= candidate.

    With no installed version every entry up to the candidate counts. An RPM header without an epoch is
    compared without epochs; an entry whose header names no version counts while no older entry was seen.
    """
    found: set[str] = set()
    for version, body in _entries(text, family):
        if version is not None:
            ver, inst, cand = version, installed, candidate
            if family == "rpm" and ":" not in version:
                inst = _strip_epoch(installed) if installed else None
                cand = _strip_epoch(candidate)
            if inst is not None and compare(ver, inst, family) <= 0:
                break
            if compare(ver, cand, family) > 0:
                continue
        found.update(_CVE.findall(body))
    return tuple(sorted(found))
