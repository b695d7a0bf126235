"""Training: real NVD records labelled with CISA KEV membership, a temporal validation, then the final model.

Every random choice flows from `SEED` (the one place seeds are set) and LightGBM runs with
`deterministic=True` and `force_row_wise=True` (LightGBM's advice for reproducible results), so the same
inputs give a byte-identical `model.txt`. The recipe (features, hyper-parameters, rounds) is fixed
here: it was selected on a held-out check (train 2014-2017, validate 2018) and confirmed on the 2019
validation year (docs/prioritizer.md); `train` does not tune.

Procedure (`train`):
1. Keep the non-rejected records published in [train_from, until) (default 2015-01-01 .. 2020-01-01), minus
   the golden set's ids (`exclude`: held out so the promotion gate measures generalisation; the shipped
   golden set predates the default window anyway), label = CVE id in the KEV file.
2. Validation: vocabularies and model fitted on [train_from, validate_from) only, scored on
   [validate_from, until) beside the CVSS-sort baseline.
3. Final model: vocabularies and model fitted on the whole window, same parameters and rounds.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from patchbrain import __version__
from patchbrain.errors import BadInput
from patchbrain.feeds.records import CveRecord
from patchbrain.prioritizer import evaluate
from patchbrain.prioritizer import features as F

log = logging.getLogger(__name__)

SEED = 20_191_231
NUM_ROUNDS = 150

Progress = Callable[[str, int, int | None], None]


def lgb_params(seed: int = SEED, *, num_threads: int = 2) -> dict[str, Any]:
    """LightGBM parameters: deterministic, seeded, monotone in every severity feature."""
    return {
        "objective": "binary",
        "learning_rate": 0.05,
        "num_leaves": 15,
        "max_depth": 5,
        "min_data_in_leaf": 100,
        "feature_fraction": 0.8,
        "lambda_l2": 1.0,
        "monotone_constraints": list(F.MONOTONE),
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": num_threads,
        "seed": seed,
        "bagging_seed": seed,
        "feature_fraction_seed": seed,
        "data_random_seed": seed,
        "verbose": -1,
    }


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The training window and the model's size."""

    train_from: dt.date = dt.date(2015, 1, 1)
    validate_from: dt.date = dt.date(2019, 1, 1)
    until: dt.date = dt.date(2020, 1, 1)
    num_rounds: int = NUM_ROUNDS
    seed: int = SEED
    num_threads: int = 1

    def __post_init__(self) -> None:
        if not self.train_from < self.validate_from < self.until:
            raise BadInput("need train_from < validate_from < until", field="training window")
        if self.num_rounds < 1:
            raise BadInput("must be at least 1", field="num_rounds")


@dataclasses.dataclass
class Examples:
    """Training rows: ids, publication dates, raw features, labels."""

    cve_ids: list[str]
    published: list[dt.date]
    rows: list[dict[str, F.RawValue]]
    labels: npt.NDArray[np.float64]

    def select(self, mask: npt.NDArray[np.bool_]) -> Examples:
        idx = np.flatnonzero(mask)
        return Examples(
            [self.cve_ids[i] for i in idx],
            [self.published[i] for i in idx],
            [self.rows[i] for i in idx],
            self.labels[idx],
        )


def collect(
    records: Iterable[CveRecord],
    kev_ids: set[str] | frozenset[str],
    config: TrainConfig,
    *,
    exclude: set[str] | frozenset[str] = frozenset(),
    progress: Progress | None = None,
) -> Examples:
    """The labelled examples of the window (one per CVE id; the last record of an id wins)."""
    by_id: dict[str, tuple[dt.date, dict[str, F.RawValue]]] = {}
    seen = 0
    for rec in records:
        seen += 1
        if progress is not None and seen % 5000 == 0:
            progress("read", seen, None)
        if rec.rejected or rec.published is None or rec.cve_id in exclude:
            by_id.pop(rec.cve_id, None)
            continue
        day = rec.published.date()
        if not config.train_from <= day < config.until:
            continue
        by_id[rec.cve_id] = (day, F.extract(rec))
    ids = sorted(by_id)
    return Examples(
        cve_ids=ids,
        published=[by_id[i][0] for i in ids],
        rows=[by_id[i][1] for i in ids],
        labels=np.array([1.0 if i in kev_ids else 0.0 for i in ids], dtype=np.float64),
    )


def fit(
    rows: Sequence[Mapping[str, F.RawValue]],
    labels: npt.NDArray[np.float64],
    config: TrainConfig,
    *,
    progress: Progress | None = None,
    stage: str = "train",
) -> tuple[Any, F.Vocabularies]:
    """Fit vocabularies and a booster on `rows`; returns (booster, vocabularies)."""
    import lightgbm as lgb

    if labels.sum() == 0 or labels.sum() == len(labels):
        raise BadInput("training needs both KEV-listed and unlisted CVEs in the window", field="labels")
    x, vocab = F.encode_training(rows, labels)
    data = lgb.Dataset(
        x,
        labels,
        feature_name=list(F.FEATURE_NAMES),
        categorical_feature=list(F.CATEGORICAL_INDICES),
        params={"verbose": -1, "data_random_seed": config.seed},
        free_raw_data=True,
    )
    callbacks = []
    if progress is not None:

        def _cb(env: Any) -> None:
            progress(stage, env.iteration + 1, config.num_rounds)

        callbacks.append(_cb)
    booster = lgb.train(
        lgb_params(config.seed, num_threads=config.num_threads),
        data,
        num_boost_round=config.num_rounds,
        callbacks=callbacks,
    )
    return booster, vocab


def predict_rows(booster: Any, vocab: F.Vocabularies, rows: Sequence[Mapping[str, F.RawValue]]) -> Any:
    return booster.predict(F.encode(rows, vocab))


@dataclasses.dataclass
class TrainResult:
    """The final booster, its vocabularies, and everything the bundle's metadata records."""

    booster: Any
    vocab: F.Vocabularies
    metadata: dict[str, Any]

    @property
    def validation(self) -> dict[str, Any]:
        v: dict[str, Any] = self.metadata["validation"]
        return v


def train(
    examples: Examples,
    config: TrainConfig,
    *,
    inputs: Mapping[str, str] | None = None,
    held_out: int = 0,
    progress: Progress | None = None,
) -> TrainResult:
    """Validate on the last year of the window, then fit the final model on the whole window."""
    started = time.monotonic()
    pub = np.array([d.toordinal() for d in examples.published])
    is_val = pub >= config.validate_from.toordinal()
    train_part, val_part = examples.select(~is_val), examples.select(is_val)
    if val_part.labels.sum() == 0:
        raise BadInput(
            f"no KEV-listed CVE published in [{config.validate_from}, {config.until}): cannot validate",
            field="training window",
        )
    booster_v, vocab_v = fit(train_part.rows, train_part.labels, config, progress=progress, stage="validate")
    x_val = F.encode(val_part.rows, vocab_v)
    model_m = evaluate.metrics(val_part.labels, booster_v.predict(x_val))
    base_m = evaluate.metrics(val_part.labels, evaluate.cvss_baseline(x_val))
    slices = evaluate.sliced_metrics(val_part.labels, booster_v.predict(x_val), x_val, val_part.rows)
    validation = {
        "train_window": [config.train_from.isoformat(), config.validate_from.isoformat()],
        "validate_window": [config.validate_from.isoformat(), config.until.isoformat()],
        "train_rows": len(train_part.cve_ids),
        "train_positives": int(train_part.labels.sum()),
        "model": model_m.as_dict(),
        "cvss_baseline": base_m.as_dict(),
        "slices": slices,
        "ap_ratio_to_cvss": (
            model_m.average_precision / base_m.average_precision if base_m.average_precision else None
        ),
    }
    booster, vocab = fit(examples.rows, examples.labels, config, progress=progress, stage="final")
    metadata: dict[str, Any] = {
        "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "patchbrain_version": __version__,
        "seed": config.seed,
        "params": lgb_params(config.seed, num_threads=config.num_threads),
        "num_rounds": config.num_rounds,
        "label": "CVE id listed in the CISA Known Exploited Vulnerabilities catalog",
        "training": {
            "window": [config.train_from.isoformat(), config.until.isoformat()],
            "rows": len(examples.cve_ids),
            "positives": int(examples.labels.sum()),
            "positive_rate": float(examples.labels.mean()),
            "golden_held_out": held_out,
            "inputs": dict(sorted((inputs or {}).items())),
            "seconds": round(time.monotonic() - started, 2),
        },
        "validation": validation,
        "vocabularies": vocab.to_json(),
    }
    return TrainResult(booster=booster, vocab=vocab, metadata=metadata)


def input_hashes(paths: Iterable[Path]) -> dict[str, str]:
    """SHA-256 of every training input, keyed by file name (the path's last two parts)."""
    from patchbrain.prioritizer.bundle import sha256_file

    out: dict[str, str] = {}
    for p in paths:
        p = Path(p)
        key = "/".join(p.parts[-2:])
        out[key] = sha256_file(p)
    return out
