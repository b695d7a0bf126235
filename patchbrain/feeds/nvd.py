"""NVD feeds: the JSON 1.1 year feeds (streamed) and NVD API 2.0 responses, into `CveRecord`s."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from patchbrain.feeds.common import (
    READ_ERRORS,
    Ctx,
    as_map,
    check_cve_id,
    cvss,
    get_float,
    get_list,
    get_map,
    get_str,
    open_text,
    parse_time,
)
from patchbrain.feeds.jsonstream import iter_array
from patchbrain.feeds.records import CveRecord, Provenance, Reference

log = logging.getLogger(__name__)

FEED_NVD11 = "nvd-1.1"
FEED_NVD20 = "nvd-api-2.0"
_REJECT_PREFIX = "** REJECT **"


@dataclasses.dataclass(frozen=True, slots=True)
class FeedHeader:
    """What a feed file says about itself (format, version, timestamp, record count)."""

    format: str
    version: str
    timestamp: dt.datetime | None
    count: int | None


def read_nvd11_header(path: Path) -> FeedHeader:
    """The header fields that precede CVE_Items in an NVD 1.1 feed (reading stops where CVE_Items begins)."""
    ctx = Ctx(str(path))
    header: dict[str, Any] = {}
    try:
        with open_text(path) as fh:
            for _ in iter_array(fh, "CVE_Items", ctx, on_header=header.__setitem__, stop_at_array=True):
                pass
    except READ_ERRORS as exc:
        raise ctx.error(f"cannot read: {exc}") from exc
    if header.get("CVE_data_type") not in (None, "CVE"):
        raise ctx.error("not an NVD CVE feed", "CVE_data_type")
    count = header.get("CVE_data_numberOfCVEs")
    stamp = header.get("CVE_data_timestamp")
    return FeedHeader(
        format=str(header.get("CVE_data_format", "")),
        version=str(header.get("CVE_data_version", "")),
        timestamp=parse_time(stamp if isinstance(stamp, str) else None, ctx, "CVE_data_timestamp"),
        count=int(count) if isinstance(count, str) and count.isascii() and count.isdigit() else None,
    )


def iter_nvd11(path: Path) -> Iterator[CveRecord]:
    """Stream the CVEs of an NVD JSON 1.1 feed (.json or .json.gz) with bounded memory.

    Raises `FeedError` (a `BadInput`) naming the file and the record for anything malformed.
    """
    path = Path(path)
    header = read_nvd11_header(path)
    ctx = Ctx(str(path))
    try:
        with open_text(path) as fh:
            for item in iter_array(fh, "CVE_Items", ctx):
                yield parse_nvd11_item(item, ctx, header.timestamp)
    except READ_ERRORS as exc:
        raise ctx.error(f"cannot read: {exc}") from exc


def parse_nvd11_item(item: Any, ctx: Ctx, feed_time: dt.datetime | None = None) -> CveRecord:
    """One CVE_Items element of an NVD 1.1 feed."""
    item = as_map(item, ctx, "CVE_Items[]")
    cve = get_map(item, "cve", ctx, required=True)
    meta = get_map(cve, "CVE_data_meta", ctx, required=True)
    cve_id = check_cve_id(get_str(meta, "ID", ctx, required=True), ctx, "cve.CVE_data_meta.ID")
    ctx.record = f"{ctx.record} {cve_id}".strip() if not ctx.record.endswith(cve_id) else ctx.record
    published = parse_time(get_str(item, "publishedDate", ctx), ctx, "publishedDate")
    modified = parse_time(get_str(item, "lastModifiedDate", ctx), ctx, "lastModifiedDate")
    prov = Provenance(FEED_NVD11, "1.1", modified or feed_time)

    description = _english(
        get_list(get_map(cve, "description", ctx), "description_data", ctx), ctx, "description"
    )
    cwes: list[str] = []
    for pt in get_list(get_map(cve, "problemtype", ctx), "problemtype_data", ctx):
        for d in get_list(as_map(pt, ctx, "problemtype"), "description", ctx):
            value = get_str(as_map(d, ctx, "problemtype"), "value", ctx)
            if value and value not in cwes:
                cwes.append(value)
    refs: list[Reference] = []
    for r in get_list(get_map(cve, "references", ctx), "reference_data", ctx):
        r = as_map(r, ctx, "references")
        url = get_str(r, "url", ctx, required=True) or ""
        tags = tuple(_str_items(get_list(r, "tags", ctx), ctx, "references.tags"))
        refs.append(Reference(url=url, tags=tags, source=get_str(r, "refsource", ctx)))
    cpes: list[str] = []
    _collect_cpes11(get_list(get_map(item, "configurations", ctx), "nodes", ctx), ctx, cpes, 0)

    impact = get_map(item, "impact", ctx)
    fields: dict[str, Any] = {}
    stated: list[tuple[str, float]] = []
    v3 = get_map(get_map(impact, "baseMetricV3", ctx), "cvssV3", ctx)
    if vec := get_str(v3, "vectorString", ctx):
        claimed = get_float(v3, "baseScore", ctx)
        fields["cvss3_vector"], fields["cvss3_score"] = cvss(3, vec, ctx, "impact.baseMetricV3", claimed)
        if claimed is not None:
            stated.append(("cvss3", claimed))
    v2 = get_map(get_map(impact, "baseMetricV2", ctx), "cvssV2", ctx)
    if vec := get_str(v2, "vectorString", ctx):
        claimed = get_float(v2, "baseScore", ctx)
        fields["cvss2_vector"], fields["cvss2_score"] = cvss(2, vec, ctx, "impact.baseMetricV2", claimed)
        if claimed is not None:
            stated.append(("cvss2", claimed))

    rejected = description.startswith(_REJECT_PREFIX)
    assigner = get_str(meta, "ASSIGNER", ctx)
    values: dict[str, Any] = {
        "published": published,
        "last_modified": modified,
        "description": description,
        "assigner": assigner,
        "cwes": tuple(cwes),
        "cpes": tuple(cpes),
        "references": tuple(refs),
        **fields,
    }
    provenance = {k: prov for k, v in values.items() if v not in (None, "", ())}
    provenance["rejected"] = prov
    return CveRecord(
        cve_id=cve_id, rejected=rejected, provenance=provenance, stated_scores=tuple(stated), **values
    )


def _english(entries: Sequence[Any], ctx: Ctx, field: str) -> str:
    """The English text of a [{lang, value}] list (the first entry when none is English)."""
    first = ""
    for e in entries:
        e = as_map(e, ctx, field)
        value = get_str(e, "value", ctx) or ""
        if (get_str(e, "lang", ctx) or "").lower().startswith("en"):
            return value
        first = first or value
    return first


def _str_items(values: Sequence[Any], ctx: Ctx, field: str) -> Iterator[str]:
    for v in values:
        if not isinstance(v, str):
            raise ctx.error(f"expected a string, got {type(v).__name__}", field)
        yield v


_MAX_DEPTH = 32


def _collect_cpes11(nodes: Sequence[Any], ctx: Ctx, out: list[str], depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise ctx.error("configurations nested too deeply", "configurations")
    for node in nodes:
        node = as_map(node, ctx, "configurations.nodes")
        for m in get_list(node, "cpe_match", ctx):
            m = as_map(m, ctx, "configurations.cpe_match")
            uri = get_str(m, "cpe23Uri", ctx)
            if uri and m.get("vulnerable", True) is True and uri not in out:
                out.append(uri)
        _collect_cpes11(get_list(node, "children", ctx), ctx, out, depth + 1)


# --- NVD API 2.0 -------------------------------------------------------------------------------------------


def iter_nvd20(path: Path) -> Iterator[CveRecord]:
    """Stream the CVEs of an NVD API 2.0 response (`{"vulnerabilities": [{"cve": {...}}], ...}`)."""
    path = Path(path)
    ctx = Ctx(str(path))
    header: dict[str, Any] = {}
    try:
        with open_text(path) as fh:
            for item in iter_array(fh, "vulnerabilities", ctx, on_header=header.__setitem__):
                stamp = header.get("timestamp")
                feed_time = parse_time(stamp, ctx, "timestamp") if isinstance(stamp, str) else None
                wrapper = as_map(item, ctx, "vulnerabilities[]")
                yield parse_nvd20_cve(get_map(wrapper, "cve", ctx, required=True), ctx, feed_time)
    except READ_ERRORS as exc:
        raise ctx.error(f"cannot read: {exc}") from exc


_NVD20_METRICS = (
    ("cvssMetricV40", 4),
    ("cvssMetricV31", 3),
    ("cvssMetricV30", 3),
    ("cvssMetricV2", 2),
)


def parse_nvd20_cve(cve: Mapping[str, Any], ctx: Ctx, feed_time: dt.datetime | None = None) -> CveRecord:
    """One `cve` object of an NVD API 2.0 response."""
    cve_id = check_cve_id(get_str(cve, "id", ctx, required=True), ctx, "cve.id")
    ctx.record = f"{ctx.record} {cve_id}".strip()
    published = parse_time(get_str(cve, "published", ctx), ctx, "published")
    modified = parse_time(get_str(cve, "lastModified", ctx), ctx, "lastModified")
    prov = Provenance(FEED_NVD20, "2.0", modified or feed_time)
    description = _english(get_list(cve, "descriptions", ctx), ctx, "descriptions")
    status = get_str(cve, "vulnStatus", ctx) or ""

    cwes: list[str] = []
    for w in get_list(cve, "weaknesses", ctx):
        for d in get_list(as_map(w, ctx, "weaknesses"), "description", ctx):
            value = get_str(as_map(d, ctx, "weaknesses"), "value", ctx)
            if value and value not in cwes:
                cwes.append(value)
    refs: list[Reference] = []
    for r in get_list(cve, "references", ctx):
        r = as_map(r, ctx, "references")
        url = get_str(r, "url", ctx, required=True) or ""
        tags = tuple(_str_items(get_list(r, "tags", ctx), ctx, "references.tags"))
        refs.append(Reference(url=url, tags=tags, source=get_str(r, "source", ctx)))
    cpes: list[str] = []
    for conf in get_list(cve, "configurations", ctx):
        for node in get_list(as_map(conf, ctx, "configurations"), "nodes", ctx):
            for m in get_list(as_map(node, ctx, "configurations.nodes"), "cpeMatch", ctx):
                m = as_map(m, ctx, "configurations.cpeMatch")
                uri = get_str(m, "criteria", ctx)
                if uri and m.get("vulnerable", True) is True and uri not in cpes:
                    cpes.append(uri)

    fields: dict[str, Any] = {}
    stated: list[tuple[str, float]] = []
    metrics = get_map(cve, "metrics", ctx)
    for key, version in _NVD20_METRICS:
        target = {4: "cvss4", 3: "cvss3", 2: "cvss2"}[version]
        if f"{target}_vector" in fields:
            continue
        entries = [as_map(m, ctx, f"metrics.{key}") for m in get_list(metrics, key, ctx)]
        # NVD's own ("Primary") assessment first, then the CNA's ("Secondary").
        entries.sort(key=lambda m: 0 if m.get("type") == "Primary" else 1)
        for m in entries:
            data = get_map(m, "cvssData", ctx, required=True)
            if vec := get_str(data, "vectorString", ctx):
                if version == 2 and vec.startswith("CVSS:2.0/"):
                    vec = vec[len("CVSS:2.0/") :]
                claimed = get_float(data, "baseScore", ctx)
                fields[f"{target}_vector"], fields[f"{target}_score"] = cvss(
                    version, vec, ctx, f"metrics.{key}", claimed
                )
                if claimed is not None:
                    stated.append((target, claimed))
                break

    values: dict[str, Any] = {
        "published": published,
        "last_modified": modified,
        "description": description,
        "assigner": get_str(cve, "sourceIdentifier", ctx),
        "cwes": tuple(cwes),
        "cpes": tuple(cpes),
        "references": tuple(refs),
        **fields,
    }
    provenance = {k: prov for k, v in values.items() if v not in (None, "", ())}
    provenance["rejected"] = prov
    rejected = status == "Rejected" or description.startswith(_REJECT_PREFIX)
    return CveRecord(
        cve_id=cve_id, rejected=rejected, provenance=provenance, stated_scores=tuple(stated), **values
    )
