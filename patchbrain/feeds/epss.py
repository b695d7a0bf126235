"""FIRST EPSS scores: the CSV with its `#model_version:...,score_date:...` header line."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import math
from collections.abc import Iterator
from pathlib import Path

from patchbrain.feeds.common import READ_ERRORS, Ctx, check_cve_id, open_text, parse_time

FEED_EPSS = "first-epss"


@dataclasses.dataclass(frozen=True, slots=True)
class EpssScore:
    """One CVE's exploitation probability (0..1) and its percentile (0..1) on the score date."""

    cve_id: str
    epss: float
    percentile: float


@dataclasses.dataclass(frozen=True, slots=True)
class EpssHeader:
    """The model version and score date the file's first line gives."""

    model_version: str | None
    score_date: dt.datetime | None


def read_epss_header(path: Path) -> EpssHeader:
    """The `#model_version:...,score_date:...` line (fields absent when the file has no such line)."""
    ctx = Ctx(str(path))
    try:
        with open_text(path) as fh:
            first = fh.readline()
    except READ_ERRORS as exc:
        raise ctx.error(f"cannot read: {exc}") from exc
    return _parse_header(first, ctx)


def _parse_header(line: str, ctx: Ctx) -> EpssHeader:
    if not line.startswith("#"):
        return EpssHeader(None, None)
    fields: dict[str, str] = {}
    for part in line[1:].strip().split(","):
        key, sep, value = part.partition(":")
        if not sep:
            raise ctx.error(f"malformed header part {part[:40]!r}", "header")
        fields[key.strip()] = value.strip()
    return EpssHeader(
        model_version=fields.get("model_version") or None,
        score_date=parse_time(fields.get("score_date"), ctx, "score_date"),
    )


def iter_epss(path: Path) -> Iterator[EpssScore]:
    """Stream the scores of an EPSS CSV (gzip or not). Raises `FeedError` naming the file and line."""
    path = Path(path)
    ctx = Ctx(str(path))
    reader = None
    line_no = 1
    try:
        with open_text(path) as fh:
            first = fh.readline()
            if first.startswith("#"):
                _parse_header(first, ctx)
                first = fh.readline()
                line_no = 2
            columns = [c.strip() for c in first.strip().split(",")]
            if columns[:3] != ["cve", "epss", "percentile"]:
                ctx.record = f"line {line_no}"
                raise ctx.error(f"expected the columns cve,epss,percentile, got {first.strip()[:60]!r}")
            reader = csv.reader(fh, strict=True)
            for row in reader:
                ctx.record = f"line {line_no + reader.line_num}"
                if not row:
                    continue
                if len(row) < 3:
                    raise ctx.error(f"expected 3 fields, got {len(row)}")
                cve_id = check_cve_id(row[0].strip(), ctx, "cve")
                yield EpssScore(cve_id, _prob(row[1], ctx, "epss"), _prob(row[2], ctx, "percentile"))
    except csv.Error as exc:
        if reader is not None:  # the line that failed, not the last one that parsed
            ctx.record = f"line {line_no + reader.line_num}"
        raise ctx.error(f"not valid CSV: {exc}") from exc
    except READ_ERRORS as exc:
        raise ctx.error(f"cannot read: {exc}") from exc


def _prob(text: str, ctx: Ctx, field: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ctx.error(f"not a number: {text[:30]!r}", field) from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ctx.error(f"must be between 0 and 1, got {value}", field)
    return value
