"""OSV advisories (Debian, Ubuntu, AlmaLinux, Rocky Linux): affected packages, ranges, CVEs named."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from patchbrain.feeds.common import (
    CVE_ID_RE,
    Ctx,
    as_map,
    cvss,
    get_list,
    get_map,
    get_str,
    iter_files,
    parse_time,
    read_json_file,
)

FEED_OSV = "osv"
_MAX_BYTES = 16 * 1024 * 1024
# The distro ecosystems whose version ordering patchbrain knows, and which ordering each uses.
ECOSYSTEM_ORDERING = {"Debian": "dpkg", "Ubuntu": "dpkg", "AlmaLinux": "rpm", "Rocky Linux": "rpm"}
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}$")
_EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")


@dataclasses.dataclass(frozen=True, slots=True)
class OsvRange:
    """One range: ordered events (kind, version), kind in introduced/fixed/last_affected/limit."""

    type: str
    events: tuple[tuple[str, str], ...]


@dataclasses.dataclass(frozen=True, slots=True)
class OsvAffected:
    """One affected package in one ecosystem ("Debian:12", "Ubuntu:22.04:LTS", "AlmaLinux:9", ...)."""

    ecosystem: str
    name: str
    ranges: tuple[OsvRange, ...] = ()
    versions: tuple[str, ...] = ()
    purl: str | None = None

    @property
    def distro(self) -> str:
        """The ecosystem without its release suffix ("Debian:12" -> "Debian")."""
        return self.ecosystem.split(":", 1)[0]

    @property
    def release(self) -> str | None:
        """The release part of the ecosystem ("Debian:12" -> "12"), if any."""
        _, sep, rest = self.ecosystem.partition(":")
        return rest if sep else None


@dataclasses.dataclass(frozen=True, slots=True)
class OsvAdvisory:
    """One OSV record. `cve_ids` collects CVE ids from the id, aliases, upstream and related fields."""

    id: str
    modified: dt.datetime
    published: dt.datetime | None = None
    withdrawn: dt.datetime | None = None
    summary: str = ""
    details: str = ""
    aliases: tuple[str, ...] = ()
    upstream: tuple[str, ...] = ()
    related: tuple[str, ...] = ()
    cve_ids: tuple[str, ...] = ()
    affected: tuple[OsvAffected, ...] = ()
    severity: tuple[tuple[str, str], ...] = ()
    schema_version: str = ""


def iter_osv(path: Path) -> Iterator[OsvAdvisory]:
    """Advisories from one OSV JSON file (one record, or a JSON array of records) or a folder of them."""
    return iter_files(path, "*.json", load_osv_file)


def load_osv_file(path: Path) -> list[OsvAdvisory]:
    """The advisories of one file; raises `FeedError` naming the file and record."""
    ctx = Ctx(str(path))
    doc = read_json_file(path, ctx, _MAX_BYTES)
    docs = doc if isinstance(doc, list) else [doc]
    out = []
    for i, d in enumerate(docs):
        ctx.record = f"#{i}" if isinstance(doc, list) else ""
        out.append(parse_osv(d, ctx))
    return out


def parse_osv(doc: Any, ctx: Ctx) -> OsvAdvisory:
    """One parsed OSV record."""
    doc = as_map(doc, ctx, "record")
    adv_id = get_str(doc, "id", ctx, required=True) or ""
    if not _ID_RE.fullmatch(adv_id):
        raise ctx.error(f"not an advisory id: {adv_id[:60]!r}", "id")
    ctx.record = f"{ctx.record} {adv_id}".strip()
    modified = parse_time(get_str(doc, "modified", ctx, required=True), ctx, "modified")
    if modified is None:
        raise ctx.error("empty time", "modified")
    aliases = _ids(get_list(doc, "aliases", ctx), ctx, "aliases")
    upstream = _ids(get_list(doc, "upstream", ctx), ctx, "upstream")
    related = _ids(get_list(doc, "related", ctx), ctx, "related")
    cves = [i for i in (adv_id, *aliases, *upstream, *related) if CVE_ID_RE.fullmatch(i)]
    # Distro-prefixed records name their CVE in the id itself: "UBUNTU-CVE-2024-1234", "DEBIAN-CVE-...".
    m = re.search(r"(CVE-[0-9]{4}-[0-9]{4,19})$", adv_id)
    if m:
        cves.append(m.group(1))
    affected = tuple(_affected(a, i, ctx) for i, a in enumerate(get_list(doc, "affected", ctx)))
    severity = []
    for s in get_list(doc, "severity", ctx):
        s = as_map(s, ctx, "severity")
        kind = get_str(s, "type", ctx, required=True) or ""
        score = get_str(s, "score", ctx, required=True) or ""
        version = {"CVSS_V2": 2, "CVSS_V3": 3, "CVSS_V4": 4}.get(kind)
        if version is not None:
            score = cvss(version, score, ctx, "severity")[0]
        severity.append((kind, score))
    return OsvAdvisory(
        id=adv_id,
        modified=modified,
        published=parse_time(get_str(doc, "published", ctx), ctx, "published"),
        withdrawn=parse_time(get_str(doc, "withdrawn", ctx), ctx, "withdrawn"),
        summary=get_str(doc, "summary", ctx) or "",
        details=get_str(doc, "details", ctx) or "",
        aliases=aliases,
        upstream=upstream,
        related=related,
        cve_ids=tuple(dict.fromkeys(cves)),
        affected=affected,
        severity=tuple(severity),
        schema_version=get_str(doc, "schema_version", ctx) or "",
    )


def _affected(raw: Any, index: int, ctx: Ctx) -> OsvAffected:
    where = f"affected[{index}]"
    a = as_map(raw, ctx, where)
    pkg = get_map(a, "package", ctx, required=True)
    ecosystem = get_str(pkg, "ecosystem", ctx, required=True) or ""
    name = get_str(pkg, "name", ctx, required=True) or ""
    if not ecosystem or not name:
        raise ctx.error("empty ecosystem or package name", f"{where}.package")
    ranges = []
    for j, r in enumerate(get_list(a, "ranges", ctx)):
        r = as_map(r, ctx, f"{where}.ranges[{j}]")
        rtype = get_str(r, "type", ctx, required=True) or ""
        events = []
        for e in get_list(r, "events", ctx, required=True):
            e = as_map(e, ctx, f"{where}.ranges[{j}].events")
            kinds = [k for k in _EVENT_KINDS if k in e]
            if len(kinds) != 1:
                raise ctx.error("each event needs exactly one of " + "/".join(_EVENT_KINDS), where)
            version = get_str(e, kinds[0], ctx, required=True) or ""
            if not version:
                raise ctx.error("empty version in event", where)
            events.append((kinds[0], version))
        ranges.append(OsvRange(type=rtype, events=tuple(events)))
    versions = tuple(_strs(get_list(a, "versions", ctx), ctx, f"{where}.versions"))
    return OsvAffected(
        ecosystem=ecosystem,
        name=name,
        ranges=tuple(ranges),
        versions=versions,
        purl=get_str(pkg, "purl", ctx),
    )


def _strs(values: Any, ctx: Ctx, field: str) -> list[str]:
    out = []
    for v in values:
        if not isinstance(v, str):
            raise ctx.error(f"expected a string, got {type(v).__name__}", field)
        out.append(v)
    return out


def _ids(values: Any, ctx: Ctx, field: str) -> tuple[str, ...]:
    out = _strs(values, ctx, field)
    for v in out:
        if not _ID_RE.fullmatch(v):
            raise ctx.error(f"not an identifier: {v[:60]!r}", field)
    return tuple(out)


def affected_for(adv: OsvAdvisory, distro: str, package: str) -> Iterator[OsvAffected]:
    """The affected entries of `adv` for one distro (e.g. "Debian") and source or binary package name."""
    for a in adv.affected:
        if a.distro == distro and a.name == package:
            yield a
