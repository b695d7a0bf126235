"""Prioritizer benchmark on the real data, each figure beside its baseline, measured in one process.

Usage: bench/bench_prioritizer.py [DATA_DIR] [--pairs 1000000]

DATA_DIR is the shared data folder (holding nvd/ and kev/); without it, the `shared/data` folder beside the
repository is used when present, else the benchmark says so and stops.
  1. Training time on the full window (parse, features, validation model, final model).
  2. The internal temporal validation (train 2015-2018, validate 2019): average precision, KEV recall in
     the top 5% and precision@100 of the model and of a CVSS sort, with the ratio (goal AP >= 4x); then
     the held-out check the recipe was selected on (train 2014-2017, validate 2018).
  3. Score and rank 1,000,000 (host, update) pairs (1-4 real 2019 CVEs each, random host context) with
     `priority.pair_risk` + `priority.rank` (goal <= 2 s), vs a numpy sort of the pairs by their max CVSS.
  4. Explanations (pred_contrib, in words) for the top 1,000 CVEs (goal <= 1 s), vs plain prediction.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _data_dir(arg: str | None) -> Path | None:
    base = Path(arg) if arg else REPO.parent / "shared" / "data"
    if (base / "nvd").is_dir() and (base / "kev" / "known_exploited_vulnerabilities.csv").is_file():
        return base
    return None


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    n_pairs = 1_000_000
    if "--pairs" in argv:
        n_pairs = int(argv[argv.index("--pairs") + 1])
        args = [a for a in args if a != str(n_pairs)]
    data = _data_dir(args[0] if args else None)
    if data is None:
        where = args[0] if args else f"{REPO.parent / 'shared' / 'data'} (default)"
        print(
            f"bench_prioritizer: no nvd/ and kev/known_exploited_vulnerabilities.csv under {where}; skipped."
        )
        print("usage: bench/bench_prioritizer.py DATA_DIR [--pairs N]")
        return 2 if args else 0

    from patchbrain.feeds.kev import load_kev
    from patchbrain.feeds.nvd import iter_nvd11
    from patchbrain.prioritizer import evaluate, explain, priority
    from patchbrain.prioritizer import features as F
    from patchbrain.prioritizer import train as T
    from patchbrain.prioritizer.bundle import Bundle, sha256_bytes

    files = sorted((data / "nvd").glob("nvdcve-1.1-*.json*"))
    kev = load_kev(data / "kev" / "known_exploited_vulnerabilities.csv")
    config = T.TrainConfig()

    # 1 + 2: training time and the temporal validation
    t0 = time.perf_counter()
    records = [r for f in files for r in iter_nvd11(f)]
    t1 = time.perf_counter()
    examples = T.collect(records, set(kev), config)
    t2 = time.perf_counter()
    result = T.train(examples, config)
    t3 = time.perf_counter()
    print(f"data: {len(files)} NVD feeds ({len(records)} records), KEV {len(kev)} entries, in {data}")
    print(
        f"training on the full window {config.train_from}..{config.until} ({len(examples.cve_ids)} CVEs, "
        f"{int(examples.labels.sum())} in KEV):"
    )
    print(
        f"  parse {t1 - t0:7.2f} s | features {t2 - t1:7.2f} s | validation + final model {t3 - t2:7.2f} s "
        f"| total {t3 - t0:7.2f} s"
    )
    v = result.validation
    print(
        f"temporal validation: train {v['train_window']}, validate {v['validate_window']} "
        f"({v['model']['n']} CVEs, {v['model']['positives']} in KEV)"
    )
    print(f"  {'metric':<24}{'model':>10}{'CVSS sort':>12}{'ratio':>10}")
    for key in ("average_precision", "recall_top5pct", "precision_at_100"):
        m, b = v["model"][key], v["cvss_baseline"][key]
        print(f"  {key:<24}{m:>10.4f}{b:>12.4f}{_ratio(m, b):>10}")
    print(
        f"  per slice (validation year): {'slice':<18}{'CVEs':>7}{'KEV':>5}{'AP model':>10}{'AP CVSS':>9}"
        f"{'recall5% model':>16}{'recall5% CVSS':>15}"
    )
    for name, sm in v["slices"].items():
        m, b = sm["model"], sm["cvss_baseline"]
        print(
            f"  {'':<29}{name:<18}{m['n']:>7}{m['positives']:>5}{m['average_precision']:>10.4f}"
            f"{b['average_precision']:>9.4f}{m['recall_top5pct']:>16.3f}{b['recall_top5pct']:>15.3f}"
        )
    ap_ratio = v["model"]["average_precision"] / v["cvss_baseline"]["average_precision"]
    print(
        f"  AP ratio to the CVSS sort: {ap_ratio:.2f}x (goal >= 4x: {'met' if ap_ratio >= 4 else 'NOT met'})"
    )
    # The held-out check the recipe was selected on: the same procedure one year earlier.
    import datetime as dt

    early = T.TrainConfig(
        train_from=dt.date(2014, 1, 1), validate_from=dt.date(2018, 1, 1), until=dt.date(2019, 1, 1)
    )
    ve = T.train(T.collect(records, set(kev), early), early).validation
    print(
        f"held-out check (recipe selection): train {ve['train_window']}, validate {ve['validate_window']} "
        f"({ve['model']['n']} CVEs, {ve['model']['positives']} in KEV)"
    )
    for key in ("average_precision", "recall_top5pct", "precision_at_100"):
        m, b = ve["model"][key], ve["cvss_baseline"][key]
        print(f"  {key:<24}{m:>10.4f}{b:>12.4f}{_ratio(m, b):>10}")

    model_text = result.booster.model_to_string()
    bundle = Bundle(
        "bench", result.booster, result.metadata, result.vocab, sha256_bytes(model_text.encode()), ""
    )

    # 3: one million (host, update) pairs
    pub2019 = [i for i, d in enumerate(examples.published) if d.year == 2019]
    rows = [examples.rows[i] for i in pub2019]
    ids = [examples.cve_ids[i] for i in pub2019]
    x = F.encode(rows, bundle.vocab)
    p = bundle.booster.predict(x, num_threads=1)
    cvss = evaluate.cvss_baseline(x)
    kev_flag = np.array([c in kev for c in ids], dtype=bool)
    rng = np.random.default_rng(T.SEED)
    counts = rng.integers(1, 5, size=n_pairs)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    cve_idx = rng.integers(0, len(ids), size=int(offsets[-1]))
    n_hosts = 10_000
    host_of_pair = rng.integers(0, n_hosts, size=n_pairs)
    crit_h = rng.integers(1, 6, size=n_hosts)
    expo_h = rng.integers(1, 6, size=n_hosts)
    print(f"ranking {n_pairs:,} (host, update) pairs ({int(offsets[-1]):,} CVE links, {n_hosts:,} hosts):")
    t0 = time.perf_counter()
    risk = priority.pair_risk(
        p[cve_idx], kev_flag[cve_idx], offsets, crit_h[host_of_pair], expo_h[host_of_pair]
    )
    order = priority.rank(risk.risk)
    t1 = time.perf_counter()
    max_cvss = np.maximum.reduceat(cvss[cve_idx], offsets[:-1])
    base_order = np.argsort(-max_cvss, kind="stable")
    t2 = time.perf_counter()
    ours, base = t1 - t0, t2 - t1
    print(
        f"  patchbrain risk + rank {ours:7.3f} s (goal <= 2 s: {'met' if ours <= 2 else 'NOT met'}) | "
        f"numpy sort by max CVSS {base:7.3f} s | ratio {_ratio(ours, base)}"
    )
    assert len(order) == len(base_order) == n_pairs

    # 4: explanations for the top 1,000 CVEs
    top = np.argsort(-p, kind="stable")[:1000]
    xt = x[top]
    rt = [rows[i] for i in top]
    it = [ids[i] for i in top]
    t0, c0 = time.perf_counter(), time.process_time()
    exps = explain.explain_rows(bundle, it, rt, xt, top=5)
    t1, c1 = time.perf_counter(), time.process_time()
    bundle.booster.predict(xt, num_threads=1)
    t2, c2 = time.perf_counter(), time.process_time()
    explain.contributions(bundle, xt)
    t3, c3 = time.perf_counter(), time.process_time()
    ours, base, shap = t1 - t0, t2 - t1, t3 - t2
    print(
        f"explanations for the top {len(exps)} CVEs: {ours:7.3f} s wall, {c1 - c0:.3f} s CPU "
        f"(goal <= 1 s: {'met' if ours <= 1 else 'NOT met'})"
        f" | plain predict {base:7.3f} s | ratio {_ratio(ours, base)}"
        f" | of which pred_contrib alone {shap:.3f} s wall, {c3 - c2:.3f} s CPU"
    )
    print(f"  (load average: {' '.join(f'{v:.1f}' for v in os.getloadavg())} on {os.cpu_count()} cores)")
    print(f"  e.g. {exps[0].summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
