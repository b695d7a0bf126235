"""Bundles: text model + metadata, refused when the feature list or a file hash does not match."""

from __future__ import annotations

import json
import shutil

import pytest

from patchbrain.errors import BadInput
from patchbrain.prioritizer import features as F
from patchbrain.prioritizer.bundle import (
    BundleRefused,
    load_bundle,
    load_default,
    metadata_bytes,
    sha256_file,
)


def _copy(src, tmp_path, name="b"):
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


def _edit_metadata(bundle_dir, change):
    meta = json.loads((bundle_dir / "metadata.json").read_text())
    change(meta)
    (bundle_dir / "metadata.json").write_bytes(metadata_bytes(meta))


def test_bundle_holds_a_text_model_and_complete_metadata(sample_bundle_dir, sample_bundle):
    text = (sample_bundle_dir / "model.txt").read_text()
    assert text.startswith("tree\n") and "feature_names=" in text
    meta = sample_bundle.metadata
    assert meta["features"] == list(F.FEATURE_NAMES)
    assert meta["model_sha256"] == sha256_file(sample_bundle_dir / "model.txt")
    assert meta["lightgbm_version"] and meta["seed"] and meta["params"]["deterministic"] is True
    assert set(meta["vocabularies"]["tables"]) == set(F.KEYS) and 0 < meta["vocabularies"]["prior"] < 1
    assert set(meta["training"]["inputs"]) == {"data/nvd-sample.json.gz", "data/kev-sample.csv"}
    assert all(len(h) == 64 for h in meta["training"]["inputs"].values())
    assert meta["training"]["window"] == ["2015-01-01", "2020-01-01"]
    v = meta["validation"]
    assert v["validate_window"] == ["2019-01-01", "2020-01-01"]
    assert {"average_precision", "recall_top5pct", "precision_at_100"} <= set(v["model"]) & set(
        v["cvss_baseline"]
    )
    assert {"severity:critical", "linux:no"} <= set(v["slices"])
    assert all(s["model"]["positives"] > 0 for s in v["slices"].values())
    assert not any(p.suffix in {".pkl", ".pickle", ".joblib"} for p in sample_bundle_dir.iterdir())


def test_a_changed_feature_list_is_refused(sample_bundle_dir, tmp_path):
    d = _copy(sample_bundle_dir, tmp_path)
    _edit_metadata(d, lambda m: m["features"].reverse())
    with pytest.raises(BundleRefused, match="another order"):
        load_bundle(d)
    d2 = _copy(sample_bundle_dir, tmp_path, "b2")
    _edit_metadata(d2, lambda m: m["features"].__setitem__(0, "epss_2024"))
    with pytest.raises(BundleRefused, match="epss_2024"):
        load_bundle(d2)


def test_a_swapped_model_file_is_refused(sample_bundle_dir, tmp_path, sample_records, sample_kev):
    from .conftest import train_bundle

    other = train_bundle(sample_records[::2], sample_kev, tmp_path / "other")
    d = _copy(sample_bundle_dir, tmp_path)
    shutil.copy(tmp_path / "other" / "model.txt", d / "model.txt")  # a valid LightGBM model, not this one
    with pytest.raises(BundleRefused, match="changed or swapped"):
        load_bundle(d)
    assert other.model_sha256 != load_bundle(sample_bundle_dir).model_sha256


def test_a_one_byte_edit_of_the_model_is_refused(sample_bundle_dir, tmp_path):
    d = _copy(sample_bundle_dir, tmp_path)
    text = (d / "model.txt").read_text()
    (d / "model.txt").write_text(text.replace("leaf_value=", "leaf_value=9", 1))
    with pytest.raises(BundleRefused, match="SHA-256"):
        load_bundle(d)


def test_metadata_that_lies_about_the_model_hash_still_cannot_change_features(sample_bundle_dir, tmp_path):
    """Re-hashing after an edit passes the hash check, but the booster's own feature list must match too."""
    d = _copy(sample_bundle_dir, tmp_path)
    text = (d / "model.txt").read_text().replace("feature_names=cvss3_score", "feature_names=epss_score", 1)
    (d / "model.txt").write_text(text)
    _edit_metadata(d, lambda m: m.__setitem__("model_sha256", sha256_file(d / "model.txt")))
    with pytest.raises(BundleRefused, match="features differ"):
        load_bundle(d)


def test_not_a_bundle(tmp_path):
    with pytest.raises(BadInput):
        load_bundle(tmp_path)
    (tmp_path / "model.txt").write_text("tree\n")
    (tmp_path / "metadata.json").write_text("{not json")
    with pytest.raises(BundleRefused):
        load_bundle(tmp_path)


def test_the_packaged_default_model_loads_and_was_trained_on_the_real_window():
    bundle = load_default()
    meta = bundle.metadata
    assert meta["training"]["window"] == ["2015-01-01", "2020-01-01"]
    inputs = meta["training"]["inputs"]
    assert "kev/known_exploited_vulnerabilities.csv" in inputs
    assert sum(k.startswith("nvd/nvdcve-1.1-") for k in inputs) == 18
    assert meta["training"]["rows"] > 50_000 and meta["training"]["positives"] > 300
