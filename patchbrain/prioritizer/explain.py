"""Explanations in words, from LightGBM's own per-feature contributions (`predict(pred_contrib=True)`).

For a binary model the contributions are in log-odds: they and the last column (the model's expected
value) add up to the raw score, so each sentence says how much one feature moved this CVE's odds of
exploitation up or down. Host explanations say which updates and which CVEs carry a host's risk.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from patchbrain.feeds.records import CveRecord
from patchbrain.prioritizer import features as F
from patchbrain.prioritizer.bundle import Bundle

FloatArray = npt.NDArray[np.float64]


@dataclasses.dataclass(frozen=True, slots=True)
class Contribution:
    """One feature's push on the log-odds of exploitation, with its value and a sentence."""

    feature: str
    value: str
    log_odds: float
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class CveExplanation:
    """Why one CVE got its score."""

    cve_id: str
    score: float
    base_log_odds: float
    contributions: tuple[Contribution, ...]
    summary: str


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _sentence(name: str, value: str, c: float) -> str:
    words = F.FEATURES[F.FEATURE_INDEX[name]].words
    direction = "raises" if c > 0 else "lowers"
    factor = math.exp(abs(c))
    return f"{words} = {value} {direction} the odds of exploitation {factor:.2f}x"


@functools.lru_cache(maxsize=65_536)
def _value_words(name: str, raw: F.RawValue) -> str:
    """`describe_value`, cached: the same (feature, value) pairs recur across a batch's rows."""
    return F.describe_value(name, raw)


def contributions(bundle: Bundle, x: FloatArray) -> FloatArray:
    """The (rows x (features + 1)) contribution matrix; the last column is the expected value."""
    if x.shape[0] == 0:
        return np.zeros((0, len(F.FEATURES) + 1), dtype=np.float64)
    threads = 2 if x.shape[0] >= 256 else 1  # TreeSHAP is the slow part: both cores for big batches
    return np.asarray(bundle.booster.predict(x, pred_contrib=True, num_threads=threads), dtype=np.float64)


def explain_rows(
    bundle: Bundle,
    cve_ids: Sequence[str],
    raw_rows: Sequence[Mapping[str, F.RawValue]],
    x: FloatArray,
    *,
    top: int = 5,
) -> list[CveExplanation]:
    """Explanations for already-encoded rows (vectorised: one pred_contrib call for all rows)."""
    contrib = contributions(bundle, x)
    out: list[CveExplanation] = []
    if contrib.shape[0] == 0:
        return out
    feats = contrib[:, :-1]
    base = contrib[:, -1]
    raw_scores = contrib.sum(axis=1)
    scores = 1.0 / (1.0 + np.exp(-raw_scores))
    k = min(top, feats.shape[1])
    # The k largest |contributions| per row, ordered by size (ties by feature position), all rows at once:
    # argpartition keeps this O(n), then a stable sort of only k columns per row.
    mag = np.abs(feats)
    part = np.argpartition(-mag, k - 1, axis=1)[:, :k]
    part.sort(axis=1)
    order = np.argsort(-np.take_along_axis(mag, part, axis=1), axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1)
    vals = np.take_along_axis(feats, idx, axis=1)
    names = F.FEATURE_NAMES
    for r in range(feats.shape[0]):
        items = []
        raw = raw_rows[r]
        for j, c in zip(idx[r].tolist(), vals[r].tolist(), strict=True):
            if c == 0.0:
                continue
            name = names[j]
            value = _value_words(name, raw.get(name))
            items.append(Contribution(name, value, c, _sentence(name, value, c)))
        score = float(scores[r])
        lead = "; ".join(i.text for i in items[:3]) or "no feature moved the score"
        out.append(
            CveExplanation(
                cve_id=cve_ids[r],
                score=score,
                base_log_odds=float(base[r]),
                contributions=tuple(items),
                summary=f"{cve_ids[r]}: P(exploited) {score:.3f} "
                f"(typical CVE {_sigmoid(float(base[r])):.3f}). {lead}.",
            )
        )
    return out


def explain_records(bundle: Bundle, records: Sequence[CveRecord], *, top: int = 5) -> list[CveExplanation]:
    """Explanations for CVE records, in order."""
    raw = [F.extract(r) for r in records]
    return explain_rows(bundle, [r.cve_id for r in records], raw, F.encode(raw, bundle.vocab), top=top)
