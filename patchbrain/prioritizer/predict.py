"""Scoring CVE records with a verified bundle: one probability per CVE, higher = more urgent.

The score is the model's probability that the CVE will be (or is) exploited in the wild, as the KEV
catalog records it. With an EPSS file (an organisation's current scores, optional input only), the two
are combined as independent evidence: score = 1 - (1 - p_model) * (1 - p_epss).
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from patchbrain.errors import BadInput
from patchbrain.feeds.records import CveRecord
from patchbrain.prioritizer import features as F
from patchbrain.prioritizer.bundle import Bundle

FloatArray = npt.NDArray[np.float64]

# Which source fills a field first when several describe the same CVE (lower wins), as the CVE store does.
_SOURCE_RANK = {"nvd": 0, "cna": 1, "adp:CISA-ADP": 2, "adp": 3}
_MERGE_FIELDS = (
    "published",
    "last_modified",
    "description",
    "assigner",
    "cvss3_vector",
    "cvss2_vector",
    "cvss4_vector",
    "cwes",
    "cpes",
    "references",
)


def expand_feed_paths(paths: Iterable[Path], *, what: str) -> list[Path]:
    """Files named on the command line; a folder stands for its *.json and *.json.gz files (sorted)."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and q.name.endswith((".json", ".json.gz")))
            if not found:
                raise BadInput("folder holds no .json or .json.gz file", source=str(p), field=what)
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise BadInput("no such file or folder", source=str(p), field=what)
    return out


def _rank(source: str) -> int:
    if source in _SOURCE_RANK:
        return _SOURCE_RANK[source]
    return _SOURCE_RANK["adp"] if source.startswith("adp:") else len(_SOURCE_RANK)


def merge_claims(claims: Sequence[tuple[str, CveRecord]]) -> CveRecord:
    """One record from several sources' records of one CVE: each field from the best-ranked source that
    has it (a vector always with its own score). Rejected when NVD or the CNA says so."""
    ordered = sorted(claims, key=lambda c: _rank(c[0]))
    first = ordered[0][1]
    if len(ordered) == 1:
        return first
    values: dict[str, object] = {}
    for _, rec in ordered:
        for name in _MERGE_FIELDS:
            if name in values:
                continue
            value = getattr(rec, name)
            if value in (None, "", ()):
                continue
            values[name] = value
            if name.endswith("_vector"):
                score = name.replace("_vector", "_score")
                values[score] = getattr(rec, score)
    rejected = any(rec.rejected for src, rec in ordered if src in ("nvd", "cna"))
    return dataclasses.replace(first, rejected=rejected, **values)  # type: ignore[arg-type]


def read_records(nvd: Sequence[Path] = (), cve5: Sequence[Path] = ()) -> dict[str, CveRecord]:
    """Every CVE in the NVD 1.1 feeds and CVE 5 records given, merged per CVE id (rejected ones included)."""
    from patchbrain.feeds.cve5 import iter_cve5
    from patchbrain.feeds.nvd import iter_nvd11

    claims: dict[str, list[tuple[str, CveRecord]]] = {}
    for path in expand_feed_paths(nvd, what="--nvd"):
        for rec in iter_nvd11(path):
            claims.setdefault(rec.cve_id, []).append(("nvd", rec))
    for path in cve5:
        path = Path(path)
        if not path.exists():
            raise BadInput("no such file or folder", source=str(path), field="--cve5")
        for claim in iter_cve5(path):
            src = "cna" if claim.source.startswith("cna:") else claim.source
            claims.setdefault(claim.record.cve_id, []).append((src, claim.record))
    return {cve_id: merge_claims(c) for cve_id, c in claims.items()}


def read_epss(path: Path) -> dict[str, float]:
    """CVE id -> EPSS probability from a FIRST EPSS CSV."""
    from patchbrain.feeds.epss import iter_epss

    return {s.cve_id: float(s.epss) for s in iter_epss(Path(path))}


def score_matrix(bundle: Bundle, x: FloatArray) -> FloatArray:
    """P(exploited) for each row of an encoded feature matrix."""
    if x.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    return np.asarray(bundle.booster.predict(x, num_threads=1), dtype=np.float64)


def score_records(bundle: Bundle, records: Sequence[CveRecord]) -> FloatArray:
    """P(exploited) for each record, in order."""
    return score_matrix(bundle, F.matrix(records, bundle.vocab))


def with_epss(scores: FloatArray, epss: FloatArray) -> FloatArray:
    """Combine model scores with EPSS probabilities (NaN = no EPSS score) as independent evidence."""
    e = np.clip(np.nan_to_num(epss, nan=0.0), 0.0, 1.0)
    return np.asarray(1.0 - (1.0 - scores) * (1.0 - e), dtype=np.float64)


@dataclasses.dataclass(frozen=True, slots=True)
class ScoredCve:
    cve_id: str
    score: float


def score_cves(
    bundle: Bundle, records: Mapping[str, CveRecord], epss: Mapping[str, float] | None = None
) -> list[ScoredCve]:
    """Every non-rejected CVE with its score, most urgent first (ties: CVE id order)."""
    kept = [records[k] for k in sorted(records) if not records[k].rejected]
    scores = score_records(bundle, kept)
    if epss:
        scores = with_epss(scores, np.array([epss.get(r.cve_id, math.nan) for r in kept], dtype=np.float64))
    order = np.argsort(-scores, kind="stable")
    return [ScoredCve(kept[i].cve_id, float(scores[i])) for i in order]


def write_scores_csv(path: Path, scored: Iterable[ScoredCve]) -> int:
    """Write `cve_id,score` rows (header first); returns the number of rows."""
    n = 0
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["cve_id", "score"])
        for s in scored:
            w.writerow([s.cve_id, f"{s.score:.6g}"])
            n += 1
    tmp.replace(path)
    return n
