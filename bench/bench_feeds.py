"""Parse time and peak memory of the streaming NVD 1.1 parser on the full NVD year-feed set.

Usage: bench/bench_feeds.py [DATA_DIR] [--store]

DATA_DIR is the shared data folder (holding nvd/) or the nvd/ folder itself; without it, the `shared/data`
folder beside the repository is used when present. The baseline, run in the same process after the
streaming parser, is the naive approach: `json.load` of each whole year file. Peak memory is the process's
maximum resident set size after each phase (the streaming phase runs first, so its figure is its own).
`--store` also times loading every file into a fresh CVE store (one transaction per file).
"""

from __future__ import annotations

import gzip
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _nvd_dir(arg: str | None) -> Path | None:
    base = Path(arg) if arg else REPO.parent / "shared" / "data"
    for candidate in (base / "nvd", base):
        if candidate.is_dir() and any(candidate.glob("nvdcve-1.1-*.json*")):
            return candidate
    return None


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    nvd = _nvd_dir(args[0] if args else None)
    if nvd is None:
        where = args[0] if args else f"{REPO.parent / 'shared' / 'data'} (default)"
        print(f"bench_feeds: no NVD 1.1 year feeds (nvdcve-1.1-*.json[.gz]) under {where}; skipped.")
        print("usage: bench/bench_feeds.py DATA_DIR [--store]")
        return 2 if args else 0
    from patchbrain.feeds.nvd import iter_nvd11

    files = sorted(nvd.glob("nvdcve-1.1-*.json*"))
    size = sum(f.stat().st_size for f in files)
    print(f"NVD 1.1 feeds: {len(files)} files, {size / 2**20:.1f} MiB compressed, in {nvd}")
    rss0 = _maxrss_mib()

    t0 = time.perf_counter()
    records = rejected = 0
    for f in files:
        for rec in iter_nvd11(f):
            records += 1
            rejected += rec.rejected
    stream_s = time.perf_counter() - t0
    stream_rss = _maxrss_mib()

    t0 = time.perf_counter()
    base_records = 0
    for f in files:
        opener = gzip.open if f.suffix == ".gz" else open
        with opener(f, "rb") as fh:
            doc = json.load(fh)
        base_records += len(doc["CVE_Items"])
        del doc
    base_s = time.perf_counter() - t0
    base_rss = _maxrss_mib()

    print(f"{'':34}{'patchbrain (streaming)':>24}{'baseline (json.load)':>24}{'ratio':>8}")
    print(f"{'records':34}{records:>24}{base_records:>24}")
    print(f"{'wall time, s':34}{stream_s:>24.2f}{base_s:>24.2f}{stream_s / base_s:>8.2f}")
    print(f"{'records per second':34}{records / stream_s:>24,.0f}{base_records / base_s:>24,.0f}")
    print(
        f"{'peak RSS, MiB (process max)':34}{stream_rss:>24.1f}{base_rss:>24.1f}{stream_rss / base_rss:>8.2f}"
    )
    print(f"(RSS before parsing: {rss0:.1f} MiB; rejected CVEs flagged: {rejected};")
    print(" the baseline builds plain dicts only, patchbrain also validates CVSS vectors, ids and times)")
    if records != base_records:
        print("bench_feeds: record counts differ between the two parsers", file=sys.stderr)
        return 1

    if "--store" in argv:
        from patchbrain.feeds.cvestore import CveStore
        from patchbrain.store import Store

        with tempfile.TemporaryDirectory() as tmp:
            store = CveStore(Store(Path(tmp) / "bench.db"))
            t0 = time.perf_counter()
            for f in files:
                store.load(f)
            load_s = time.perf_counter() - t0
            counts = store.status()["counts"]
            print(f"store load: {counts['cves']} CVEs in {load_s:.2f} s ({counts['cves'] / load_s:,.0f}/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
