#!/usr/bin/env python3
"""Build the prioritizer's golden set and its test fixtures from the real shared data (selected, not edited).

    scripts/build_model_data.py /work/shared/data

Writes (deterministically: fixed seed, gzip with mtime 0, so re-running gives identical bytes):
- patchbrain/prioritizer/golden/nvd-golden.json.gz + labels.csv: NVD 1.1 items published 2015-2019
  (positives = in the KEV catalog) and prints the SHA-256 values to pin in governance.GOLDEN_SHA256;
- patchbrain/redteam/data/nvd-sample.json.gz + kev-sample.csv: a disjoint sample small enough to train on in
  unit tests, with the KEV rows of its positives.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED = 20191231
WINDOW = ("2015-01-01", "2020-01-01")  # the training window: the fixture's records
GOLDEN_WINDOW = ("2010-01-01", "2015-01-01")  # before the training window: held out by construction
GOLDEN = {"positives": 100, "negatives": 1400}
FIXTURE = {"positives": 160, "negatives": 2240}


def _items(data: Path, window: tuple[str, str]) -> list[dict]:
    out = []
    for path in sorted((data / "nvd").glob("nvdcve-1.1-*.json.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            doc = json.load(fh)
        for item in doc["CVE_Items"]:
            pub = item.get("publishedDate", "")
            desc = " ".join(d["value"] for d in item["cve"]["description"]["description_data"])
            if window[0] <= pub < window[1] and not desc.startswith("** REJECT **"):
                out.append(item)
    return out


def _write_feed(path: Path, items: list[dict]) -> None:
    doc = {
        "CVE_data_type": "CVE",
        "CVE_data_format": "MITRE",
        "CVE_data_version": "4.0",
        "CVE_data_numberOfCVEs": str(len(items)),
        "CVE_data_timestamp": "2021-05-10T08:48Z",
        "CVE_Items": items,
    }
    raw = json.dumps(doc, separators=(",", ":"), sort_keys=False).encode("utf-8")
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(raw)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def _year(item: dict) -> str:
    return str(item["publishedDate"][:4])


def _stratified(items: list[dict], n: int, rng: random.Random) -> list[dict]:
    """n items spread over the publication years in proportion to their counts."""
    by_year: dict[str, list[dict]] = {}
    for it in items:
        by_year.setdefault(_year(it), []).append(it)
    total = len(items)
    chosen: list[dict] = []
    for year in sorted(by_year):
        group = by_year[year]
        k = min(len(group), round(n * len(group) / total))
        chosen.extend(rng.sample(group, k))
    return chosen


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="the shared data folder (with nvd/ and kev/)")
    args = ap.parse_args()
    kev_csv = args.data / "kev" / "known_exploited_vulnerabilities.csv"
    if not (args.data / "nvd").is_dir() or not kev_csv.is_file():
        print(
            f"{args.data}: no nvd/ folder or kev/known_exploited_vulnerabilities.csv: data missing",
            file=sys.stderr,
        )
        return 2
    with kev_csv.open(newline="", encoding="utf-8") as fh:
        kev_rows = {r["cveID"]: r for r in csv.DictReader(fh)}

    def split(items: list[dict]) -> tuple[list[dict], list[dict]]:
        items = sorted(items, key=lambda it: it["cve"]["CVE_data_meta"]["ID"])
        pos = [it for it in items if it["cve"]["CVE_data_meta"]["ID"] in kev_rows]
        return pos, [it for it in items if it["cve"]["CVE_data_meta"]["ID"] not in kev_rows]

    rng = random.Random(SEED)  # noqa: S311 - a reproducible sample, not a secret
    g_pos, g_neg = split(_items(args.data, GOLDEN_WINDOW))
    golden = _stratified(g_pos, GOLDEN["positives"], rng) + _stratified(g_neg, GOLDEN["negatives"], rng)
    f_pos, f_neg = split(_items(args.data, WINDOW))
    fixture = _stratified(f_pos, FIXTURE["positives"], rng) + _stratified(f_neg, FIXTURE["negatives"], rng)

    def key(it: dict) -> str:
        return str(it["cve"]["CVE_data_meta"]["ID"])

    golden.sort(key=key)
    fixture.sort(key=key)
    gdir = ROOT / "patchbrain" / "prioritizer" / "golden"
    _write_feed(gdir / "nvd-golden.json.gz", golden)
    labels = "cve_id,in_kev\n" + "".join(f"{key(it)},{int(key(it) in kev_rows)}\n" for it in golden)
    (gdir / "labels.csv").write_text(labels, encoding="utf-8")

    fdir = ROOT / "patchbrain" / "redteam" / "data"
    _write_feed(fdir / "nvd-sample.json.gz", fixture)
    with (fdir / "kev-sample.csv").open("w", newline="", encoding="utf-8") as fh:
        fields = list(next(iter(kev_rows.values())).keys())
        w = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        for it in fixture:
            if key(it) in kev_rows:
                w.writerow(kev_rows[key(it)])

    for name in ("nvd-golden.json.gz", "labels.csv"):
        digest = hashlib.sha256((gdir / name).read_bytes()).hexdigest()
        print(f'    "{name}": "{digest}",')
    n_gp = sum(int(key(it) in kev_rows) for it in golden)
    n_fp = sum(int(key(it) in kev_rows) for it in fixture)
    print(f"golden: {len(golden)} records, {n_gp} in KEV; fixture: {len(fixture)} records, {n_fp} in KEV")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
