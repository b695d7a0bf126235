"""Build patchbrain/feeds/data/reference_domains.txt: domains that real NVD records cite.

Usage: python scripts/build_reference_domains.py DATA_DIR [--before YYYY-MM-DD] [--min-cves N] [--out FILE]

A domain is listed when at least N distinct CVEs (published before the cut-off) cite it: a domain that
several independent records used is an established reference source, a one-off is not.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import sys
from pathlib import Path

from patchbrain.feeds.nvd import iter_nvd11
from patchbrain.feeds.screening import registrable_domain


def count_domains(data: Path, before: dt.datetime) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    for path in sorted((data / "nvd").glob("nvdcve-1.1-*.json.gz")):
        for rec in iter_nvd11(path):
            if rec.published is None or rec.published >= before:
                continue
            doms = {registrable_domain(r.url) for r in rec.references}
            counts.update(d for d in doms if d)
    return counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--before", default="2020-01-01")
    ap.add_argument("--min-cves", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("patchbrain/feeds/data/reference_domains.txt"))
    args = ap.parse_args()
    if not (args.data / "nvd").is_dir():
        print(f"no NVD data under {args.data}/nvd (see /work/shared/data/README.md)", file=sys.stderr)
        return 2
    before = dt.datetime.fromisoformat(args.before).replace(tzinfo=dt.UTC)
    counts = count_domains(args.data, before)
    keep = sorted(d for d, n in counts.items() if n >= args.min_cves)
    header = (
        f"# Registrable domains cited by at least {args.min_cves} distinct CVEs published before "
        f"{args.before}\n"
        "# in the NVD JSON 1.1 feeds (snapshot 2021-05-10). Built by scripts/build_reference_domains.py.\n"
        "# This product uses data from the NVD API but is not endorsed or certified by the NVD.\n"
    )
    args.out.write_text(header + "\n".join(keep) + "\n")
    print(f"{len(keep)} of {len(counts)} domains written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
