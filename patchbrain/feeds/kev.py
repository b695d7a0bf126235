"""CISA Known Exploited Vulnerabilities catalog (CSV or JSON) into `KevEntry`s keyed by CVE id."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from patchbrain.feeds.common import (
    READ_ERRORS,
    Ctx,
    as_map,
    check_cve_id,
    get_list,
    get_str,
    head_bytes,
    open_text,
    parse_date,
    parse_time,
)

FEED_KEV = "cisa-kev"
_CSV_COLUMNS = ("cveID", "vendorProject", "product", "dateAdded")


@dataclasses.dataclass(frozen=True, slots=True)
class KevEntry:
    """One catalog entry. `known_ransomware` is True only when CISA says "Known"."""

    cve_id: str
    vendor: str
    product: str
    name: str
    date_added: dt.date
    short_description: str = ""
    required_action: str = ""
    due_date: dt.date | None = None
    known_ransomware: bool = False
    notes: str = ""
    cwes: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class KevCatalog:
    """The catalog with what it says about itself (the JSON form has a version and release time)."""

    entries: dict[str, KevEntry]
    version: str | None = None
    released: dt.datetime | None = None
    format: str = "csv"


def load_kev(path: Path) -> dict[str, KevEntry]:
    """The KEV catalog at `path` (CSV or JSON, gzip or not), keyed by CVE id."""
    return load_kev_catalog(path).entries


def load_kev_catalog(path: Path) -> KevCatalog:
    """The KEV catalog at `path` with its metadata. Raises `FeedError` naming the file and the entry."""
    path = Path(path)
    head = head_bytes(path, 64).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"{"):
        return _load_json(path)
    return _load_csv(path)


def _load_csv(path: Path) -> KevCatalog:
    ctx = Ctx(str(path))
    entries: dict[str, KevEntry] = {}
    reader: csv.DictReader[str] | None = None
    try:
        with open_text(path) as fh:
            reader = csv.DictReader(fh, strict=True)
            columns = reader.fieldnames or []
            missing = [c for c in _CSV_COLUMNS if c not in columns]
            if missing:
                raise ctx.error(f"not a KEV catalog: missing columns {', '.join(missing)}", "header")
            for row in reader:
                ctx.record = f"line {reader.line_num}"
                if None in row:
                    raise ctx.error("more fields than the header names")
                entry = _entry(row, ctx, cwes=_split_cwes(row.get("cwes") or ""))
                _add(entries, entry, ctx)
    except csv.Error as exc:
        if reader is not None:  # the line that failed, not the last one that parsed (DictReader's lags)
            ctx.record = f"line {reader.reader.line_num}"
        raise ctx.error(f"not valid CSV: {exc}") from exc
    except READ_ERRORS as exc:
        raise ctx.error(f"cannot read: {exc}") from exc
    return KevCatalog(entries=entries, format="csv")


def _load_json(path: Path) -> KevCatalog:
    ctx = Ctx(str(path))
    try:
        with open_text(path) as fh:
            doc = json.load(fh)  # the whole catalog is about 1 MB: no need to stream
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ctx.error(f"not valid JSON: {exc}") from exc
    except READ_ERRORS as exc:
        raise ctx.error(f"cannot read: {exc}") from exc
    doc = as_map(doc, ctx, "catalog")
    vulns = get_list(doc, "vulnerabilities", ctx, required=True)
    entries: dict[str, KevEntry] = {}
    for index, raw in enumerate(vulns):
        ctx.record = f"#{index}"
        row = as_map(raw, ctx, "vulnerabilities[]")
        cwes_raw = row.get("cwes")
        if isinstance(cwes_raw, str):
            cwes = _split_cwes(cwes_raw)
        else:
            cwes = tuple(_strings(get_list(row, "cwes", ctx), ctx, "cwes"))
        _add(entries, _entry(row, ctx, cwes=cwes), ctx)
    ctx.record = ""
    count = doc.get("count")
    if isinstance(count, int) and not isinstance(count, bool) and count != len(vulns):
        raise ctx.error(f"says it holds {count} entries but holds {len(vulns)}", "count")
    return KevCatalog(
        entries=entries,
        version=get_str(doc, "catalogVersion", ctx),
        released=parse_time(get_str(doc, "dateReleased", ctx), ctx, "dateReleased"),
        format="json",
    )


def _entry(row: Mapping[str, Any], ctx: Ctx, *, cwes: tuple[str, ...]) -> KevEntry:
    cve_id = check_cve_id((get_str(row, "cveID", ctx, required=True) or "").strip(), ctx, "cveID")
    ctx.record = f"{ctx.record} {cve_id}".strip()
    added = parse_date(get_str(row, "dateAdded", ctx, required=True), ctx, "dateAdded")
    if added is None:
        raise ctx.error("empty date", "dateAdded")
    ransomware = (get_str(row, "knownRansomwareCampaignUse", ctx) or "").strip()
    if ransomware not in ("", "Known", "Unknown"):
        raise ctx.error(f"expected Known or Unknown, got {ransomware[:40]!r}", "knownRansomwareCampaignUse")
    return KevEntry(
        cve_id=cve_id,
        vendor=(get_str(row, "vendorProject", ctx) or "").strip(),
        product=(get_str(row, "product", ctx) or "").strip(),
        name=(get_str(row, "vulnerabilityName", ctx) or "").strip(),
        date_added=added,
        short_description=get_str(row, "shortDescription", ctx) or "",
        required_action=get_str(row, "requiredAction", ctx) or "",
        due_date=parse_date(get_str(row, "dueDate", ctx), ctx, "dueDate"),
        known_ransomware=ransomware == "Known",
        notes=get_str(row, "notes", ctx) or "",
        cwes=cwes,
    )


def _add(entries: dict[str, KevEntry], entry: KevEntry, ctx: Ctx) -> None:
    """Refuse a catalog that lists one CVE twice with different claims."""
    seen = entries.get(entry.cve_id)
    if seen is not None and seen != entry:
        raise ctx.error(f"{entry.cve_id} is listed twice with different details", "cveID")
    entries[entry.cve_id] = entry


def _split_cwes(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(",") if c.strip())


def _strings(values: Iterable[Any], ctx: Ctx, field: str) -> list[str]:
    out = []
    for v in values:
        if not isinstance(v, str):
            raise ctx.error(f"expected a string, got {type(v).__name__}", field)
        out.append(v)
    return out
