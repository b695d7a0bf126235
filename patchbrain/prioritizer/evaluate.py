"""Ranking metrics for a rare label (KEV membership), and the CVSS-sort baseline they are compared with.

Ties are broken by input position (stable sort), so every metric is deterministic.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from patchbrain.prioritizer import features as F

FloatArray = npt.NDArray[np.float64]


@dataclasses.dataclass(frozen=True, slots=True)
class Metrics:
    """How well a score ranks the positives: average precision, recall in the top 5%, precision at 100."""

    n: int
    positives: int
    average_precision: float
    recall_top5pct: float
    precision_at_100: float

    def as_dict(self) -> dict[str, float | int]:
        return dataclasses.asdict(self)


def _order(scores: FloatArray) -> npt.NDArray[np.intp]:
    return np.argsort(-scores, kind="stable")


def average_precision(labels: FloatArray, scores: FloatArray) -> float:
    """Mean of the precision at each positive's rank (0.0 when there is no positive)."""
    y = np.asarray(labels, dtype=np.float64)[_order(np.asarray(scores, dtype=np.float64))]
    total = float(y.sum())
    if total == 0:
        return 0.0
    precision = np.cumsum(y) / np.arange(1, len(y) + 1)
    return float((precision * y).sum() / total)


def recall_at_fraction(labels: FloatArray, scores: FloatArray, fraction: float = 0.05) -> float:
    """Share of the positives ranked in the top `fraction` of all records."""
    y = np.asarray(labels, dtype=np.float64)
    total = float(y.sum())
    if total == 0 or len(y) == 0:
        return 0.0
    k = max(1, math.ceil(fraction * len(y)))
    return float(y[_order(np.asarray(scores, dtype=np.float64))[:k]].sum() / total)


def precision_at_k(labels: FloatArray, scores: FloatArray, k: int = 100) -> float:
    """Share of positives among the `k` best-ranked records."""
    y = np.asarray(labels, dtype=np.float64)
    if len(y) == 0:
        return 0.0
    k = min(k, len(y))
    return float(y[_order(np.asarray(scores, dtype=np.float64))[:k]].mean())


def metrics(labels: FloatArray, scores: FloatArray) -> Metrics:
    """All ranking metrics of `scores` against 0/1 `labels`."""
    y = np.asarray(labels, dtype=np.float64)
    return Metrics(
        n=len(y),
        positives=int(y.sum()),
        average_precision=average_precision(y, scores),
        recall_top5pct=recall_at_fraction(y, scores, 0.05),
        precision_at_100=precision_at_k(y, scores, 100),
    )


def cvss_baseline(x: FloatArray) -> FloatArray:
    """The score a "sort by CVSS" triage gives: the v3 base score, else v2 (v3 first on ties)."""
    v3 = x[:, F.FEATURE_INDEX["cvss3_score"]]
    v2 = x[:, F.FEATURE_INDEX["cvss2_score"]]
    best = np.where(np.isnan(v3), v2, v3)
    return np.nan_to_num(best, nan=0.0) + np.nan_to_num(v3, nan=0.0) * 1e-3


_LINUX_MARKERS = ("linux", "debian", "ubuntu", "canonical", "redhat", "fedora", "suse", "centos", "gentoo")
SEVERITY_BANDS = (("none", 0.0), ("low", 0.1), ("medium", 4.0), ("high", 7.0), ("critical", 9.0))


def slice_names(x: FloatArray, rows: Sequence[Mapping[str, F.RawValue]]) -> dict[str, npt.NDArray[np.bool_]]:
    """Masks of the slices metrics are reported for: CVSS severity band, and Linux-relevant or not
    (a Linux distribution or the kernel among the vendor/product, or "linux" in the text signals)."""
    sev = cvss_baseline(x)
    out: dict[str, npt.NDArray[np.bool_]] = {}
    bounds = [b for _, b in SEVERITY_BANDS[1:]] + [math.inf]
    out["severity:none"] = sev < SEVERITY_BANDS[1][1]
    for (name, low), high in zip(SEVERITY_BANDS[1:], bounds[1:], strict=True):
        out[f"severity:{name}"] = (sev >= low) & (sev < high)
    linux = np.array(
        [any(m in f"{r.get('vendor') or ''} {r.get('product') or ''}" for m in _LINUX_MARKERS) for r in rows],
        dtype=bool,
    )
    out["linux:yes"] = linux
    out["linux:no"] = ~linux
    return out


def sliced_metrics(
    labels: FloatArray, scores: FloatArray, x: FloatArray, rows: Sequence[Mapping[str, F.RawValue]]
) -> dict[str, dict[str, dict[str, float | int]]]:
    """Per slice: the model's metrics and the CVSS sort's (slices without a positive are left out)."""
    y = np.asarray(labels, dtype=np.float64)
    base = cvss_baseline(x)
    out: dict[str, dict[str, dict[str, float | int]]] = {}
    for name, mask in slice_names(x, rows).items():
        if not mask.any() or y[mask].sum() == 0:
            continue
        out[name] = {
            "model": metrics(y[mask], scores[mask]).as_dict(),
            "cvss_baseline": metrics(y[mask], base[mask]).as_dict(),
        }
    return out
