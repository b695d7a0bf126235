"""Pending updates read from a discovery document, for host explanations.

The document is what `patchbrain discover --json` prints and what the journal stores for a discovery:
`{"hosts": [{"host": NAME, "pkg_mgr": "apt"|"dnf"|"zypper", "pending": [{"package": ..., "installed": ...,
"candidate": ..., "cves": [...]}, ...]}, ...]}`. It is untrusted input: every field is validated (host and
package names, versions, CVE ids) and a bad one is `BadInput` naming the file and the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from patchbrain.errors import BadInput
from patchbrain.feeds.common import CVE_ID_RE
from patchbrain.inventory import HOST_NAME
from patchbrain.models import PendingUpdate, PkgManager

_MAX_BYTES = 64 * 1024 * 1024
_PKG_MGRS = ("apt", "dnf", "zypper")
# Debian and RPM package names and versions (epoch, tilde, caret, plus, dots, colons)
_PACKAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+_-]{0,199}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+~^:_-]{0,199}$")


def read_discovery(path: Path) -> dict[str, list[PendingUpdate]]:
    """Host name -> its pending updates, from a discovery JSON file."""
    source = str(path)
    try:
        with Path(path).open("rb") as fh:
            data = fh.read(_MAX_BYTES + 1)
    except OSError as exc:
        raise BadInput(f"cannot read: {exc.strerror}", source=source, field="--discovery") from exc
    if len(data) > _MAX_BYTES:
        raise BadInput(f"larger than {_MAX_BYTES} bytes", source=source, field="--discovery")
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"not JSON: {exc}", source=source, field="--discovery") from exc
    return pending_by_host(doc, source=source)


def pending_by_host(doc: Any, *, source: str) -> dict[str, list[PendingUpdate]]:
    """Validate a discovery document; host name -> pending updates (in document order)."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("hosts"), list):
        raise BadInput('expected an object with a "hosts" list', source=source, field="hosts")
    out: dict[str, list[PendingUpdate]] = {}
    for i, entry in enumerate(doc["hosts"]):
        where = f"hosts[{i}]"
        if not isinstance(entry, Mapping):
            raise BadInput("expected an object", source=source, field=where)
        host = _match(entry.get("host"), HOST_NAME, source, f"{where}.host")
        mgr = entry.get("pkg_mgr")
        if mgr not in _PKG_MGRS:
            raise BadInput(f"must be one of {', '.join(_PKG_MGRS)}", source=source, field=f"{where}.pkg_mgr")
        pending = entry.get("pending", [])
        if not isinstance(pending, list):
            raise BadInput("expected a list", source=source, field=f"{where}.pending")
        updates = out.setdefault(host, [])
        for j, p in enumerate(pending):
            pw = f"{where}.pending[{j}]"
            if not isinstance(p, Mapping):
                raise BadInput("expected an object", source=source, field=pw)
            installed = p.get("installed")
            cves = p.get("cves", [])
            if not isinstance(cves, list):
                raise BadInput("expected a list of CVE ids", source=source, field=f"{pw}.cves")
            updates.append(
                PendingUpdate(
                    host=host,
                    package=_match(p.get("package"), _PACKAGE, source, f"{pw}.package"),
                    installed=None
                    if installed is None
                    else _match(installed, _VERSION, source, f"{pw}.installed"),
                    candidate=_match(p.get("candidate"), _VERSION, source, f"{pw}.candidate"),
                    pkg_mgr=cast(PkgManager, mgr),
                    cves=tuple(
                        dict.fromkeys(
                            _match(c, CVE_ID_RE, source, f"{pw}.cves[{k}]") for k, c in enumerate(cves)
                        )
                    ),
                )
            )
    return out


def _match(value: Any, pattern: re.Pattern[str], source: str, field: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise BadInput(f"invalid value {value!r:.60}", source=source, field=field)
    return value
