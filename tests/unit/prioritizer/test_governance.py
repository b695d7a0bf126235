"""Governance: the golden set, the gate (incl. a real poisoning attack), approvals, promote, revert, audit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from patchbrain.errors import RefusedByPolicy
from patchbrain.prioritizer import governance as G
from patchbrain.prioritizer.bundle import load_bundle, metadata_bytes
from patchbrain.store import Store

from .conftest import train_bundle


@pytest.fixture(scope="module")
def golden():
    return G.load_golden()


@pytest.fixture(scope="module")
def poisoned_bundle(tmp_path_factory, sample_records, sample_kev, poisoning):
    fakes, poisoned_kev = poisoning.poison(sample_records, sample_kev, n=500, seed=7)
    assert len(fakes) == 500 and len(poisoned_kev) == len(sample_kev) + 250
    return train_bundle([*sample_records, *fakes], poisoned_kev, tmp_path_factory.mktemp("poisoned") / "b")


def test_golden_set_is_real_labelled_and_pinned(golden):
    assert len(golden.records) == 1500 and int(golden.labels.sum()) == 101
    assert all(r.published is not None and 2010 <= r.published.year <= 2014 for r in golden.records)
    assert G.golden_ids() == frozenset(golden.cve_ids)
    assert all(r.cve_id.startswith("CVE-") and not r.rejected for r in golden.records)
    assert golden.sha256 == G.GOLDEN_SHA256


def test_a_tampered_golden_set_is_refused(tmp_path):
    src = G._golden_dir()
    for name in (G.GOLDEN_NVD, G.GOLDEN_LABELS):
        shutil.copy(src / name, tmp_path / name)
    labels = (tmp_path / G.GOLDEN_LABELS).read_text().replace(",1\n", ",0\n", 1)
    (tmp_path / G.GOLDEN_LABELS).write_text(labels)
    with pytest.raises(RefusedByPolicy, match="golden set file"):
        G.load_golden(tmp_path)


def test_the_gate_passes_a_model_against_itself(sample_bundle, golden):
    result = G.validate(sample_bundle, sample_bundle, golden)
    assert result.passed and result.reasons == ()
    assert result.shift["rank_correlation"] == pytest.approx(1.0)


def test_the_gate_passes_an_honest_retrain_with_another_seed(
    tmp_path, sample_records, sample_kev, sample_bundle, golden
):
    other = train_bundle(sample_records, sample_kev, tmp_path / "seed2", seed=12345)
    assert other.model_sha256 != sample_bundle.model_sha256
    result = G.validate(other, sample_bundle, golden)
    assert result.passed, result.reasons


def test_the_gate_refuses_a_poisoned_retrain_for_the_right_reason(poisoned_bundle, sample_bundle, golden):
    """Real sample + 500 injected records (inflated-severity fakes, fakes listed in a poisoned KEV copy)."""
    result = G.validate(poisoned_bundle, sample_bundle, golden)
    codes = {r.code for r in result.reasons}
    assert not result.passed
    assert codes and all(c.startswith(("metric-regression:", "prediction-shift:")) for c in codes), codes
    assert result.candidate_metrics["average_precision"] < result.current_metrics["average_precision"]
    assert "behaviour:monotonicity" not in codes  # the attack works through data, not through the model file


def test_the_gate_refuses_a_model_that_breaks_monotonicity(sample_bundle, golden, monkeypatch):
    """A model file crafted outside `model train` (no monotone constraints) fails the behaviour check."""
    import numpy as np

    from patchbrain.prioritizer import features as F

    real = G.score_matrix

    def inverted(bundle, x):
        s = real(bundle, x)
        if bundle is not sample_bundle:
            return s
        return np.asarray(s / (1.0 + np.nan_to_num(x[:, F.FEATURE_INDEX["cvss3_score"]])))

    monkeypatch.setattr(G, "score_matrix", inverted)
    codes = {r.code for r in G.validate(sample_bundle, sample_bundle, golden).reasons}
    assert "behaviour:monotonicity" in codes


# --- promote / revert / audit, with the trust core's real keys --------------------------------------------


def _keys(*names):
    from patchbrain.keys import KeyStore

    ks = KeyStore()
    for n in names:
        ks.new(n)
    return ks


def _audit_actions(store):
    from patchbrain.audit import open_audit_log

    return [r.action for r in open_audit_log(store).records()]


@pytest.fixture
def candidate_dir(tmp_path):
    """A copy of the packaged default bundle: a candidate that passes the gate against the default."""
    cand = tmp_path / "cand"
    shutil.copytree(Path(G.load_default().source), cand)
    return cand


def test_promote_needs_the_gate_and_two_distinct_approvers_then_revert_is_one_step(
    pb_home, candidate_dir, golden
):
    store = Store()
    _keys("alice", "bob")
    cand = candidate_dir
    expected = load_bundle(cand)

    G.sign_bundle(cand, "alice")
    with pytest.raises(RefusedByPolicy, match="2 distinct approvers"):
        G.promote(cand, store=store, golden=golden)
    # the same key twice (a copied signature file) is still one approver
    shutil.copy(G.signature_path(cand, "alice"), cand / "metadata.json.sig.alice-again")
    with pytest.raises(RefusedByPolicy, match="found 1"):
        G.promote(cand, store=store, golden=golden)
    (cand / "metadata.json.sig.alice-again").unlink()

    G.sign_bundle(cand, "bob")
    result, row = G.promote(cand, store=store, golden=golden)
    assert result.passed and row["bundle_id"] == expected.bundle_id and row["previous"] == G.DEFAULT_ID
    assert {a["key_name"] for a in json.loads(row["approvers"])} == {"alice", "bob"}
    active = G.active_bundle(store)
    assert active.model_sha256 == expected.model_sha256
    assert Path(active.source) == G.models_dir() / expected.bundle_id

    back = G.revert(store=store)
    assert back["bundle_id"] == G.DEFAULT_ID and back["previous"] == expected.bundle_id
    assert G.active_bundle(store).source == G.load_default().source

    actions = _audit_actions(store)
    assert actions.count("model.promote.refused") == 2
    assert "model.validate" in actions and "model.promote" in actions and actions[-1] == "model.revert"


def test_a_signature_over_other_metadata_is_refused(pb_home, candidate_dir, golden):
    store = Store()
    _keys("alice", "bob")
    cand = candidate_dir
    G.sign_bundle(cand, "alice")
    G.sign_bundle(cand, "bob")
    meta = json.loads((cand / "metadata.json").read_text())
    meta["validation"]["model"]["average_precision"] = 0.99  # edited after approval
    (cand / "metadata.json").write_bytes(metadata_bytes(meta))
    with pytest.raises(RefusedByPolicy, match="does not verify"):
        G.promote(cand, store=store, golden=golden)


def test_a_promoted_bundle_changed_on_disk_is_refused(pb_home, candidate_dir, golden):
    store = Store()
    _keys("alice", "bob")
    cand = candidate_dir
    G.sign_bundle(cand, "alice")
    G.sign_bundle(cand, "bob")
    _, row = G.promote(cand, store=store, golden=golden)
    stored = G.models_dir() / row["bundle_id"]
    meta = json.loads((stored / "metadata.json").read_text())
    meta["created"] = "2000-01-01T00:00:00+00:00"
    (stored / "metadata.json").write_bytes(metadata_bytes(meta))
    with pytest.raises(RefusedByPolicy, match="changed on disk"):
        G.active_bundle(store)


def test_revert_with_nothing_promoted_is_refused(pb_home):
    with pytest.raises(RefusedByPolicy, match="nothing to revert"):
        G.revert(store=Store())


def test_a_poisoned_candidate_cannot_be_promoted_even_with_signatures(
    pb_home, tmp_path, poisoned_bundle, golden
):
    from patchbrain.errors import ExitCode

    store = Store()
    _keys("alice", "bob")
    cand = tmp_path / "poisoned"
    shutil.copytree(poisoned_bundle.source, cand)
    G.sign_bundle(cand, "alice")
    G.sign_bundle(cand, "bob")
    with pytest.raises(G.GateRefused) as exc:
        G.promote(cand, store=store, golden=golden)
    assert exc.value.exit_code == ExitCode.REFUSED
    assert G.history(store) == []
