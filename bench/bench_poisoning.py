"""Poisoning on the full data: retrain on the real window + 500 injected records and run the promotion gate.

Usage: bench/bench_poisoning.py [DATA_DIR] [--fakes 500]

Trains, in one process and with the same settings: (a) an honest retrain (another seed) and (b) a retrain on
the real NVD records plus patchbrain.redteam.poisoning's attack (inflated-severity fakes, and fakes listed as
known-exploited in a poisoned KEV copy); runs `governance.validate` on both against the packaged default
model and prints the gate's figures and reasons. The gate must pass (a) and refuse (b) for metric or shift
reasons. Without DATA_DIR, the `shared/data` folder beside the repository is used when present.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    n_fakes = int(argv[argv.index("--fakes") + 1]) if "--fakes" in argv else 500
    args = [a for a in args if a != str(n_fakes)]
    base = Path(args[0]) if args else REPO.parent / "shared" / "data"
    kev_csv = base / "kev" / "known_exploited_vulnerabilities.csv"
    if not (base / "nvd").is_dir() or not kev_csv.is_file():
        print(f"bench_poisoning: no nvd/ and kev/known_exploited_vulnerabilities.csv under {base}; skipped.")
        return 2 if args else 0

    import tempfile

    from patchbrain.feeds.kev import load_kev
    from patchbrain.feeds.nvd import iter_nvd11
    from patchbrain.prioritizer import governance as G
    from patchbrain.prioritizer import train as T
    from patchbrain.prioritizer.bundle import load_bundle, load_default, save_bundle
    from patchbrain.redteam.poisoning import poison

    kev = set(load_kev(kev_csv))
    records = [r for f in sorted((base / "nvd").glob("nvdcve-1.1-*.json*")) for r in iter_nvd11(f)]
    held_out = G.golden_ids()
    golden = G.load_golden()
    current = load_default()
    window = [r for r in records if r.published is not None and r.published.year >= 2015]
    fakes, poisoned_kev = poison(window, kev, n=n_fakes, seed=7)
    print(
        f"{len(records)} real records, {len(fakes)} fakes, "
        f"poisoned KEV {len(poisoned_kev)} ids (real {len(kev)})"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for label, recs, labels, seed in (
            ("honest retrain (seed 7)", records, kev, 7),
            (f"poisoned retrain (+{len(fakes)} records)", [*records, *fakes], poisoned_kev, T.SEED),
        ):
            config = T.TrainConfig(seed=seed)
            t0 = time.perf_counter()
            examples = T.collect(recs, labels, config, exclude=held_out)
            result = T.train(examples, config, held_out=len(held_out))
            out = Path(tmp) / label.split()[0]
            save_bundle(out, result.booster, result.metadata)
            gate = G.validate(load_bundle(out), current, golden)
            took = time.perf_counter() - t0
            print(f"{label}: trained in {took:.1f} s; gate {'PASSED' if gate.passed else 'REFUSED'}")
            for key in ("average_precision", "recall_top5pct", "precision_at_100"):
                print(
                    f"  golden {key:<18} candidate {gate.candidate_metrics[key]:.4f}  "
                    f"current {gate.current_metrics[key]:.4f}"
                )
            print(
                f"  rank correlation {gate.shift['rank_correlation']:.3f}, KEV median percentile drop "
                f"{gate.shift['kev_median_percentile_drop']:+.3f}"
            )
            for r in gate.reasons:
                print(f"  refused: {r.code}: {r.message}")
            v = result.validation
            print(
                f"  internal 2019 validation AP {v['model']['average_precision']:.4f} "
                f"(CVSS sort {v['cvss_baseline']['average_precision']:.4f})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
