"""CVE JSON 5 records (the cvelistV5 layout): one `CveRecord` per container, CNA and each ADP.

Each container is a separate claim: the CNA's and, say, CISA-ADP's CVSS vectors may disagree, and the store
keeps both rather than merging them silently. A REJECTED record yields one rejected claim.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from patchbrain.feeds.common import (
    Ctx,
    as_map,
    check_cve_id,
    cvss,
    get_float,
    get_list,
    get_map,
    get_str,
    iter_files,
    parse_time,
    read_json_file,
)
from patchbrain.feeds.records import CveRecord, Provenance, Reference

FEED_CVE5 = "cve5"
_MAX_BYTES = 16 * 1024 * 1024  # the largest real records are a few MB


@dataclasses.dataclass(frozen=True, slots=True)
class Cve5Claim:
    """One container's view of a CVE: `source` is "cna:<shortName>" or "adp:<shortName>"."""

    source: str
    record: CveRecord
    ssvc: Mapping[str, str] = dataclasses.field(default_factory=dict)
    kev_date_added: str | None = None


def iter_cve5(path: Path) -> Iterator[Cve5Claim]:
    """The claims of one CVE JSON 5 record file, or of every *.json file under a cvelistV5 folder."""
    return iter_files(path, "CVE-*.json", load_cve5_file)


def load_cve5_file(path: Path) -> list[Cve5Claim]:
    """The claims of one record file."""
    ctx = Ctx(str(path))
    return parse_cve5(read_json_file(path, ctx, _MAX_BYTES, ": not a single CVE record"), ctx)


def parse_cve5(doc: Any, ctx: Ctx) -> list[Cve5Claim]:
    """The claims of one parsed CVE JSON 5 record."""
    doc = as_map(doc, ctx, "record")
    if get_str(doc, "dataType", ctx) != "CVE_RECORD":
        raise ctx.error("not a CVE JSON 5 record", "dataType")
    meta = get_map(doc, "cveMetadata", ctx, required=True)
    cve_id = check_cve_id(get_str(meta, "cveId", ctx, required=True), ctx, "cveMetadata.cveId")
    ctx.record = cve_id
    version = get_str(doc, "dataVersion", ctx) or "5"
    state = get_str(meta, "state", ctx, required=True)
    if state not in ("PUBLISHED", "REJECTED"):
        raise ctx.error(f"unknown state {str(state)[:20]!r}", "cveMetadata.state")
    published = parse_time(get_str(meta, "datePublished", ctx), ctx, "cveMetadata.datePublished")
    updated = parse_time(get_str(meta, "dateUpdated", ctx), ctx, "cveMetadata.dateUpdated")
    assigner = get_str(meta, "assignerShortName", ctx)
    containers = get_map(doc, "containers", ctx, required=True)
    cna = get_map(containers, "cna", ctx, required=True)

    if state == "REJECTED":
        prov = Provenance(FEED_CVE5, version, updated)
        reasons = get_list(cna, "rejectedReasons", ctx)
        record = CveRecord(
            cve_id=cve_id,
            published=published,
            last_modified=updated,
            description=_english(reasons, ctx, "containers.cna.rejectedReasons"),
            assigner=assigner,
            rejected=True,
            provenance={"rejected": prov, "last_modified": prov},
        )
        return [Cve5Claim(source=f"cna:{assigner or 'unknown'}", record=record)]

    claims = [_container(cna, "cna", cve_id, version, published, updated, assigner, ctx)]
    for i, adp in enumerate(get_list(containers, "adp", ctx)):
        adp = as_map(adp, ctx, f"containers.adp[{i}]")
        claims.append(_container(adp, "adp", cve_id, version, published, updated, None, ctx))
    return claims


_METRIC_KEYS = (("cvssV4_0", 4), ("cvssV3_1", 3), ("cvssV3_0", 3), ("cvssV2_0", 2))


def _container(
    c: Mapping[str, Any],
    kind: str,
    cve_id: str,
    version: str,
    published: Any,
    record_updated: Any,
    assigner: str | None,
    ctx: Ctx,
) -> Cve5Claim:
    where = f"containers.{kind}"
    pm = get_map(c, "providerMetadata", ctx, required=True)
    short = get_str(pm, "shortName", ctx) or get_str(pm, "orgId", ctx, required=True) or ""
    updated = parse_time(get_str(pm, "dateUpdated", ctx), ctx, f"{where}.providerMetadata.dateUpdated")
    source = f"{kind}:{short}"
    prov = Provenance(f"{FEED_CVE5}/{source}", version, updated or record_updated)

    description = _english(get_list(c, "descriptions", ctx), ctx, f"{where}.descriptions")
    cwes: list[str] = []
    for pt in get_list(c, "problemTypes", ctx):
        for d in get_list(as_map(pt, ctx, f"{where}.problemTypes"), "descriptions", ctx):
            cwe = get_str(as_map(d, ctx, f"{where}.problemTypes"), "cweId", ctx)
            if cwe and cwe not in cwes:
                cwes.append(cwe)
    refs = []
    for r in get_list(c, "references", ctx):
        r = as_map(r, ctx, f"{where}.references")
        tags = []
        for t in get_list(r, "tags", ctx):
            if not isinstance(t, str):
                raise ctx.error("expected a string", f"{where}.references.tags")
            tags.append(t)
        refs.append(Reference(url=get_str(r, "url", ctx, required=True) or "", tags=tuple(tags)))
    cpes: list[str] = []
    for a in get_list(c, "affected", ctx):
        for cpe in get_list(as_map(a, ctx, f"{where}.affected"), "cpes", ctx):
            if isinstance(cpe, str) and cpe not in cpes:
                cpes.append(cpe)

    fields: dict[str, Any] = {}
    ssvc: dict[str, str] = {}
    kev_date: str | None = None
    for m in get_list(c, "metrics", ctx):
        m = as_map(m, ctx, f"{where}.metrics")
        for key, v in _METRIC_KEYS:
            data = get_map(m, key, ctx)
            vec = get_str(data, "vectorString", ctx)
            target = {4: "cvss4", 3: "cvss3", 2: "cvss2"}[v]
            if vec and f"{target}_vector" not in fields:
                fields[f"{target}_vector"], fields[f"{target}_score"] = cvss(
                    v, vec, ctx, f"{where}.metrics.{key}", get_float(data, "baseScore", ctx)
                )
        other = get_map(m, "other", ctx)
        kind_other = get_str(other, "type", ctx)
        content = get_map(other, "content", ctx)
        if kind_other == "ssvc":
            for opt in get_list(content, "options", ctx):
                for k, val in as_map(opt, ctx, f"{where}.metrics.other.options").items():
                    if isinstance(val, str):
                        ssvc[str(k)] = val
        elif kind_other == "kev":
            kev_date = get_str(content, "dateAdded", ctx)

    values: dict[str, Any] = {
        "published": published,
        "last_modified": updated or record_updated,
        "description": description,
        "assigner": assigner if kind == "cna" else short,
        "cwes": tuple(cwes),
        "cpes": tuple(cpes),
        "references": tuple(refs),
        **fields,
    }
    provenance = {k: prov for k, val in values.items() if val not in (None, "", ())}
    provenance["rejected"] = prov
    record = CveRecord(cve_id=cve_id, provenance=provenance, **values)
    return Cve5Claim(source=source, record=record, ssvc=ssvc, kev_date_added=kev_date)


def _english(entries: Any, ctx: Ctx, field: str) -> str:
    first = ""
    for e in entries:
        e = as_map(e, ctx, field)
        value = get_str(e, "value", ctx) or ""
        if (get_str(e, "lang", ctx) or "").lower().startswith("en"):
            return value
        first = first or value
    return first
