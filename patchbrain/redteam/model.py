"""Scenario 2, model poisoning: a candidate retrained on the real 2,400-record sample plus 500 poisoned
records (`patchbrain.redteam.poisoning`) must be refused by the promotion gate (`model validate`), while an
honest retrain with another seed passes; a model file swapped on disk must be refused at load, both for a
candidate and for the active (promoted) model.

The gate compares a candidate with the active model. The packaged default was trained on 57x more data, so
the scenario installs a model trained on the same sample as the active one in its private store first
(setup, not part of the attack)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from patchbrain.redteam.base import Check, Context, Evidence, Scenario
from patchbrain.redteam.common import Outcome, attempt, audit_evidence, audit_head, audit_since, data_file

POISON_N = 500
POISON_SEED = 7
HONEST_SEED = 12345


def sample_paths() -> tuple[Path, Path]:
    """The shipped real NVD sample (2,400 records, 2015-2019) and its 160 KEV rows."""
    return data_file("nvd-sample.json.gz"), data_file("kev-sample.csv")


def train_bundle(
    records: Iterable[Any], kev_ids: set[str], out: Path, *, seed: int | None = None, inputs: Any = None
) -> Any:
    """Train on `records` with the standard window (golden ids left out) and write a bundle to `out`;
    returns the loaded bundle. Shared with the prioritizer unit tests."""
    from patchbrain.prioritizer import train as T
    from patchbrain.prioritizer.bundle import load_bundle, save_bundle
    from patchbrain.prioritizer.governance import golden_ids

    config = T.TrainConfig(seed=T.SEED if seed is None else seed, num_threads=1)
    held_out = golden_ids()
    examples = T.collect(list(records), kev_ids, config, exclude=held_out)
    result = T.train(examples, config, inputs=inputs or {}, held_out=len(held_out))
    save_bundle(out, result.booster, result.metadata)
    return load_bundle(out)


def _gate_evidence(result: Any) -> list[Evidence]:
    ap_c = result.candidate_metrics.get("average_precision", float("nan"))
    ap_a = result.current_metrics.get("average_precision", float("nan"))
    text = (
        f"golden AP candidate {ap_c:.3f} vs active {ap_a:.3f}; rank correlation "
        f"{result.shift.get('rank_correlation', float('nan')):.3f}"
    )
    ev = [Evidence("verifier", text)]
    ev += [Evidence("refusal", f"{r.code}: {r.message}"[:400]) for r in result.reasons]
    return ev


def run(ctx: Context) -> list[Check]:
    from patchbrain.errors import RefusedByPolicy
    from patchbrain.feeds.kev import load_kev
    from patchbrain.feeds.nvd import iter_nvd11
    from patchbrain.prioritizer import bundle as B
    from patchbrain.prioritizer import governance as G
    from patchbrain.prioritizer import train as T
    from patchbrain.redteam.poisoning import poison
    from patchbrain.store import Store

    store = Store()
    nvd, kev_file = sample_paths()
    records = list(iter_nvd11(nvd))
    kev = set(load_kev(kev_file))
    ctx.log("  training the active model on the real sample")
    active_dir = ctx.workdir / "active"
    active = train_bundle(records, kev, active_dir, inputs=T.input_hashes([nvd, kev_file]))
    G.Registry(store).record("promote", active, active.bundle_id, G.DEFAULT_ID)
    golden = G.load_golden()
    checks: list[Check] = []

    ctx.log(f"  training a candidate on the sample + {POISON_N} poisoned records")
    fakes, poisoned_kev = poison(records, kev, n=POISON_N, seed=POISON_SEED)
    poisoned_dir = ctx.workdir / "poisoned"
    train_bundle([*records, *fakes], poisoned_kev, poisoned_dir)

    def gate(candidate: Path, expect_pass: bool) -> Outcome:
        seq = audit_head(store)
        result = G.validate_bundle(candidate, store=store, golden=golden)
        ev = _gate_evidence(result) + [audit_evidence(r) for r in audit_since(store, seq, "model.validate")]
        verdict = (
            "passed" if result.passed else "refused (exit 5): " + ", ".join(r.code for r in result.reasons)
        )
        return result.passed == expect_pass, f"`model validate` {verdict}", ev

    checks.append(
        attempt(
            f"candidate retrained with {POISON_N} poisoned records (inflated clones left out of KEV, "
            "low-severity clones listed in a poisoned KEV copy)",
            lambda: gate(poisoned_dir, expect_pass=False),
        )
    )
    ctx.log("  training an honest retrain (another seed) as the control")
    honest_dir = ctx.workdir / "honest"
    train_bundle(records, kev, honest_dir, seed=HONEST_SEED)
    checks.append(
        attempt("control: honest retrain with another seed", lambda: gate(honest_dir, expect_pass=True))
    )

    def swapped_candidate() -> Outcome:
        swapped = ctx.workdir / "swapped"
        shutil.copytree(honest_dir, swapped)
        shutil.copy2(poisoned_dir / B.MODEL_FILE, swapped / B.MODEL_FILE)
        seq = audit_head(store)
        try:
            result = G.validate_bundle(swapped, store=store, golden=golden)
        except RefusedByPolicy as exc:
            ev = [Evidence("refusal", str(exc)[:500])] + [audit_evidence(r) for r in audit_since(store, seq)]
            return True, "refused at load (exit 5) before the gate ran", ev
        return False, f"the swapped model LOADED (gate passed: {result.passed})", _gate_evidence(result)

    checks.append(attempt("candidate's model.txt swapped for the poisoned model's", swapped_candidate))

    def swapped_active() -> Outcome:
        shutil.copy2(poisoned_dir / B.MODEL_FILE, active_dir / B.MODEL_FILE)
        meta = json.loads((active_dir / B.METADATA_FILE).read_text())
        meta["model_sha256"] = B.sha256_file(active_dir / B.MODEL_FILE)  # the attacker fixes the hash too
        (active_dir / B.METADATA_FILE).write_bytes(B.metadata_bytes(meta))
        try:
            loaded = G.active_bundle(store)
        except RefusedByPolicy as exc:
            return (
                True,
                "refused at load (exit 5): the promotion record's hashes differ",
                [Evidence("refusal", str(exc)[:500])],
            )
        return False, f"the swapped active model LOADED (model sha256 {loaded.model_sha256[:16]}...)", []

    checks.append(
        attempt(
            "active model's files replaced on disk, metadata hash recomputed by the attacker", swapped_active
        )
    )
    return checks


SCENARIO = Scenario(
    name="model-poisoning",
    number=2,
    title="Model poisoning",
    attacked="the prioritizer's promotion gate (prioritizer/governance.py), bundle integrity (bundle.py)",
    defences=("model-gate", "bundle-integrity"),
    needs_hosts=False,
    run=run,
)
