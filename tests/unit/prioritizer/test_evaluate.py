"""Ranking metrics: hand-computed values, deterministic ties, the CVSS baseline and the slices."""

from __future__ import annotations

import numpy as np
import pytest

from patchbrain.prioritizer import evaluate as E
from patchbrain.prioritizer import features as F


def test_average_precision_by_hand():
    y = np.array([1, 0, 1, 0, 0], dtype=float)
    s = np.array([0.9, 0.8, 0.7, 0.2, 0.1])
    assert E.average_precision(y, s) == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert E.precision_at_k(y, s, 2) == 0.5
    assert E.recall_at_fraction(y, s, 0.2) == 0.5  # top 1 of 5 holds one of the two positives
    assert E.average_precision(np.zeros(3), s[:3]) == 0.0


def test_ties_keep_input_order():
    y = np.array([0, 1], dtype=float)
    assert E.average_precision(y, np.array([0.5, 0.5])) == 0.5
    assert E.average_precision(y[::-1], np.array([0.5, 0.5])) == 1.0


def test_cvss_baseline_prefers_v3_and_slices_partition():
    rows = [
        {"cvss3_score": 9.8, "cvss2_score": 7.5, "vendor": "debian", "product": "debian:debian_linux"},
        {"cvss3_score": None, "cvss2_score": 5.0, "vendor": "microsoft", "product": "microsoft:windows_10"},
        {"cvss3_score": None, "cvss2_score": None, "vendor": None, "product": None},
    ]
    vocab = F.Vocabularies({"vendor": {}, "product": {}, "cwe": {}, "assigner": {}}, 0.0)
    x = F.encode(rows, vocab)
    base = E.cvss_baseline(x)
    assert base[0] > 9.8 and base[1] == 5.0 and base[2] == 0.0
    sl = E.slice_names(x, rows)
    assert list(np.flatnonzero(sl["severity:critical"])) == [0]
    assert list(np.flatnonzero(sl["severity:medium"])) == [1]
    assert list(np.flatnonzero(sl["severity:none"])) == [2]
    assert list(np.flatnonzero(sl["linux:yes"])) == [0]
    severities = sum(sl[k].astype(int) for k in sl if k.startswith("severity:"))
    assert np.all(severities == 1)
