"""Shared prioritizer fixtures: the real NVD/KEV sample (patchbrain/redteam/data), a bundle trained on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from patchbrain.feeds.kev import load_kev
from patchbrain.feeds.nvd import iter_nvd11
from patchbrain.prioritizer import train as T
from patchbrain.prioritizer.bundle import load_bundle
from patchbrain.redteam.model import train_bundle  # shared with `patchbrain redteam`

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "patchbrain" / "redteam" / "data"  # shipped: `patchbrain redteam` trains on it too
NVD_SAMPLE = FIXTURES / "nvd-sample.json.gz"
KEV_SAMPLE = FIXTURES / "kev-sample.csv"


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
    """patchbrain.redteam.poisoning, the attack shared with the full-data benchmark and `redteam run`."""
    from patchbrain.redteam import poisoning as module

    return module
