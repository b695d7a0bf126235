"""Shared prioritizer fixtures: the real NVD/KEV sample in tests/fixtures/model and a bundle trained on it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from patchbrain.feeds.kev import load_kev
from patchbrain.feeds.nvd import iter_nvd11
from patchbrain.prioritizer import train as T
from patchbrain.prioritizer.bundle import load_bundle, save_bundle
from patchbrain.prioritizer.governance import golden_ids

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "model"
NVD_SAMPLE = FIXTURES / "nvd-sample.json.gz"
KEV_SAMPLE = FIXTURES / "kev-sample.csv"


def train_bundle(records, kev_ids, out: Path, *, seed: int = T.SEED, inputs=None):
    """Train on `records` with the standard window and write a bundle to `out`; returns the loaded bundle."""
    config = T.TrainConfig(seed=seed, num_threads=1)
    held_out = golden_ids()
    examples = T.collect(records, kev_ids, config, exclude=held_out)
    result = T.train(examples, config, inputs=inputs or {}, held_out=len(held_out))
    save_bundle(out, result.booster, result.metadata)
    return load_bundle(out)


@pytest.fixture(scope="session")
def sample_records():
    return list(iter_nvd11(NVD_SAMPLE))


@pytest.fixture(scope="session")
def sample_kev():
    return set(load_kev(KEV_SAMPLE))


@pytest.fixture(scope="session")
def sample_bundle_dir(tmp_path_factory, sample_records, sample_kev):
    out = tmp_path_factory.mktemp("bundle") / "sample"
    train_bundle(sample_records, sample_kev, out, inputs=T.input_hashes([NVD_SAMPLE, KEV_SAMPLE]))
    return out


@pytest.fixture(scope="session")
def sample_bundle(sample_bundle_dir):
    return load_bundle(sample_bundle_dir)


@pytest.fixture(scope="session")
def poisoning():
    """bench/poisoning.py, the attack shared with the full-data benchmark."""
    spec = importlib.util.spec_from_file_location("pb_bench_poisoning", ROOT / "bench" / "poisoning.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
