"""Screening report: how much of each attacker tier the poisoning screens quarantine, and how many real
records they flag, on the real NVD records of the shared data set.

Usage: python bench/bench_screening.py [DATA_DIR] [--seed N] [--first-year 2015]

Split by publication date (nothing from the future leaks into the screens):
- history: real NVD records published before 2019-07-01 (what the store knew); its reference domains
  (cited by >= 3 CVEs) make the allow-list used here, so the shipped list (built from all of 2002-2019)
  is not used;
- incoming real: real NVD records published 2019-07-01 .. 2019-12-31 (what a sync brings);
- second source: the CVE ids in FIRST's EPSS file and CISA's KEV catalog (another feed family). EPSS is a
  2024 snapshot, so for real 2019 records it is a kinder second source than a same-day feed would be:
  see docs/feeds-trust.md.

Attacker tiers, each built from REAL records (copied, then changed the way an attacker would):
- a (naive, 500): clones under unused ids (and 100 re-published known ids) with inflated stated scores
  that contradict their vectors; text copied; a third with patch links moved to the attacker's domain;
  plus 50 KEV entries for made-up ids.
- b (careful, 500): vector raised to critical with a consistent score, text paraphrased, CPE versions
  moved, references rebuilt as plausible URLs on allow-listed domains (github.com, securityfocus.com, the
  vendor's own site); 100 of them are known ids re-scored without a new reference.
- c (quiet, 40 over 12 weeks): like b under the busiest assigner, moderate scores; and c+ the same with the
  attacker also able to put its ids into a second feed (defeats corroboration).

Prints, per tier, the share quarantined and per screen, the share of real incoming records flagged, and
side by side the baseline of recomputing CVSS alone (what the parsers already do).
"""

from __future__ import annotations

import argparse
import collections
import csv
import dataclasses
import datetime as dt
import gzip
import random
import re
import sys
import time
from pathlib import Path

from patchbrain.feeds.common import Ctx, cvss
from patchbrain.feeds.kev import KevEntry
from patchbrain.feeds.nvd import iter_nvd11
from patchbrain.feeds.records import CveRecord, Reference
from patchbrain.feeds.screening import SCREENS, History, Item, ScreenConfig, registrable_domain, screen

CUT = dt.datetime(2019, 7, 1, tzinfo=dt.UTC)
END = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)

SYNONYMS = {
    "allows": "lets",
    "allow": "let",
    "remote attackers": "a remote adversary",
    "attackers": "adversaries",
    "attacker": "adversary",
    "execute arbitrary code": "run code of their choosing",
    "arbitrary": "attacker-chosen",
    "via": "by means of",
    "crafted": "specially formed",
    "vulnerability": "flaw",
    "vulnerable": "affected",
    "could": "might",
    "cause a denial of service": "make the service unavailable",
    "denial of service": "service outage",
    "obtain sensitive information": "read confidential data",
    "before": "prior to",
    "earlier": "older",
    "when": "if",
    "which": "that",
    "exists": "is present",
    "issue": "problem",
    "discovered": "found",
    "component": "module",
    "user": "account holder",
    "request": "call",
    "improper": "incorrect",
    "does not": "fails to",
    "successful exploitation": "exploiting this",
    "an issue was found": "a problem was identified",
}
_SYN_RE = re.compile(
    r"\b(" + "|".join(re.escape(k) for k in sorted(SYNONYMS, key=len, reverse=True)) + r")\b"
)


def paraphrase(text: str, rng: random.Random) -> str:
    """What a careful attacker does to copied text: synonyms, reordered sentences, a changed version."""
    out = _SYN_RE.sub(lambda m: SYNONYMS[m.group(1)], text.lower())
    out = re.sub(
        r"\b(\d+)\.(\d+)\.(\d+)\b", lambda m: f"{m.group(1)}.{m.group(2)}.{int(m.group(3)) + 1}", out
    )
    sentences = [s.strip() for s in re.split(r"(?<=\.)\s+", out) if s.strip()]
    rng.shuffle(sentences)
    lead = rng.choice(["", "It was reported that ", "Researchers found that ", "A flaw means that "])
    return (lead + " ".join(sentences)).strip()


def load(data: Path, years: range) -> list[CveRecord]:
    recs = []
    for y in years:
        path = data / "nvd" / f"nvdcve-1.1-{y}.json.gz"
        if not path.exists():
            sys.exit(f"missing {path} (see /work/shared/data/README.md)")
        recs.extend(r for r in iter_nvd11(path) if r.published is not None and not r.rejected)
    return recs


def second_source_ids(data: Path) -> tuple[set[str], dict[str, KevEntry]]:
    epss = set()
    with gzip.open(data / "epss" / "epss_scores-2024-06-30.csv.gz", "rt") as fh:
        for line in fh:
            if line.startswith("CVE-"):
                epss.add(line.split(",", 1)[0])
    kev = {}
    with open(data / "kev" / "known_exploited_vulnerabilities.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            kev[row["cveID"]] = KevEntry(
                row["cveID"],
                row["vendorProject"],
                row["product"],
                row["vulnerabilityName"],
                dt.date.fromisoformat(row["dateAdded"]),
            )
    return epss, kev


def allow_list(data: Path, first_year: int, history: list[CveRecord]) -> frozenset[str]:
    """Domains cited by >= 3 CVEs published before the cut (all years, as the shipped list is built)."""
    counts: collections.Counter[str] = collections.Counter()
    older = (r for y in range(2002, first_year) for r in iter_nvd11(data / "nvd" / f"nvdcve-1.1-{y}.json.gz"))
    for r in (*history, *older):
        if r.published is not None and r.published < CUT:
            counts.update({d for d in (registrable_domain(x.url) for x in r.references) if d})
    return frozenset(d for d, n in counts.items() if n >= 3)


def _random_date(rng: random.Random, start: dt.datetime, days: int) -> dt.datetime:
    return start + dt.timedelta(days=rng.uniform(0, days))


def _fresh_id(rng: random.Random, used: set[str]) -> str:
    while True:
        cve = f"CVE-2019-{rng.randint(1000, 20999)}"
        if cve not in used:
            used.add(cve)
            return cve


CRIT3 = "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
CRIT2 = "AV:N/AC:L/Au:N/C:C/I:C/A:C"


def _raise_vector(rec: CveRecord, rng: random.Random, *, quiet: bool = False) -> dict[str, object]:
    ctx = Ctx("bench")
    if quiet:
        v3 = rng.choice(
            ["CVSS:3.0/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:N", "CVSS:3.0/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H"]
        )
        v2 = "AV:N/AC:M/Au:N/C:P/I:P/A:P"
    else:
        v3, v2 = CRIT3, CRIT2
    vec3, s3 = cvss(3, v3, ctx, "v3")
    vec2, s2 = cvss(2, v2, ctx, "v2")
    return {
        "cvss3_vector": vec3,
        "cvss3_score": s3,
        "cvss2_vector": vec2,
        "cvss2_score": s2,
        "stated_scores": (("cvss3", s3), ("cvss2", s2)),
    }


def _plausible_refs(rec: CveRecord, rng: random.Random) -> tuple[Reference, ...]:
    vendor = rec.cpes[0].split(":")[3] if rec.cpes else "project"
    product = rec.cpes[0].split(":")[4] if rec.cpes else "app"
    sha = "".join(rng.choice("0123456789abcdef") for _ in range(40))
    refs = [
        Reference(f"https://github.com/{vendor}/{product}/commit/{sha}", ("Patch", "Third Party Advisory")),
        Reference(
            f"http://www.securityfocus.com/bid/{rng.randint(100000, 110999)}", ("Third Party Advisory",)
        ),
    ]
    own = [r for r in rec.references if "Vendor Advisory" in r.tags]
    if own:
        base = own[0].url.rsplit("/", 1)[0]
        refs.append(Reference(f"{base}/advisory-{rng.randint(1000, 9999)}", ("Vendor Advisory",)))
    return tuple(refs)


def _move_cpes(rec: CveRecord, rng: random.Random) -> tuple[str, ...]:
    out = []
    for c in rec.cpes:
        parts = c.split(":")
        if len(parts) > 5 and parts[5] not in ("*", "-"):
            parts[5] = re.sub(r"\d+$", lambda m: str(int(m.group(0)) + rng.randint(1, 3)), parts[5])
        out.append(":".join(parts))
    return tuple(out)


def tier_a(
    src: list[CveRecord], known: list[CveRecord], rng: random.Random, used: set[str]
) -> tuple[list[Item], list[Item]]:
    fakes = []
    for i in range(500):
        reuse = i < 100
        r = rng.choice(known if reuse else src)
        stated = []
        if r.cvss3_score is not None:
            stated.append(("cvss3", 9.8 if r.cvss3_score < 9.0 else 10.0))
        if r.cvss2_score is not None:
            stated.append(("cvss2", 10.0 if r.cvss2_score < 9.5 else 9.3))
        refs = r.references
        if i % 3 == 0:
            refs = (
                *refs,
                Reference(f"https://patch-cdn.security-updates.example.net/{r.cve_id}.tar.gz", ("Patch",)),
            )
        fake = dataclasses.replace(
            r,
            cve_id=r.cve_id if reuse else _fresh_id(rng, used),
            published=r.published if reuse else _random_date(rng, CUT, 180),
            stated_scores=tuple(stated),
            references=refs,
        )
        fakes.append(Item(fake.cve_id, "nvd", "fake-a", record=fake))
    kev = []
    for _ in range(50):
        cve = _fresh_id(rng, used)
        kev.append(
            Item(
                cve,
                "kev",
                "fake-a",
                kev=KevEntry(cve, "Acme", "Widget", "Acme Widget RCE", dt.date(2019, 9, 1)),
            )
        )
    return fakes, kev


def tier_b(src: list[CveRecord], known: list[CveRecord], rng: random.Random, used: set[str], n: int = 500,
           quiet: bool = False, days: int = 180, start: dt.datetime = CUT) -> list[Item]:  # fmt: skip
    fakes = []
    for i in range(n):
        reuse = not quiet and i < 100
        r = rng.choice(known if reuse else src)
        if reuse:
            fake = dataclasses.replace(r, **_raise_vector(r, rng))  # type: ignore[arg-type]
        else:
            fake = dataclasses.replace(
                r,
                cve_id=_fresh_id(rng, used),
                published=_random_date(rng, start, days),
                description=paraphrase(r.description, rng),
                cpes=_move_cpes(r, rng),
                references=_plausible_refs(r, rng),
                assigner="cve@mitre.org" if quiet else r.assigner,
                **_raise_vector(r, rng, quiet=quiet),  # type: ignore[arg-type]
            )
        fakes.append(Item(fake.cve_id, "nvd", "fake-b", record=fake))
    return fakes


def run(items: list[Item], history: History, cfg: ScreenConfig) -> tuple[dict[tuple[str, str], list], float]:
    t = time.perf_counter()
    flags = screen(items, history, cfg)
    return flags, time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description="poisoning-screen report on real NVD data")
    ap.add_argument("data", type=Path, nargs="?", help="the shared data folder (default: /work/shared/data)")
    ap.add_argument("--seed", type=int, default=10)
    ap.add_argument("--first-year", type=int, default=2015)
    args = ap.parse_args()
    if args.data is None:
        args.data = Path("/work/shared/data")
        if not (args.data / "nvd").is_dir():
            print(f"bench_screening: skipped, no data at {args.data} (pass DATA_DIR)", file=sys.stderr)
            return 0
    if not (args.data / "nvd").is_dir():
        print(
            f"{args.data}: no nvd/ folder; pass the shared data directory (see its README.md)",
            file=sys.stderr,
        )
        return 2
    rng = random.Random(args.seed)
    t0 = time.perf_counter()
    recs = load(args.data, range(args.first_year, 2020))
    parse_s = time.perf_counter() - t0
    hist_recs = [r for r in recs if r.published < CUT]
    real_new = [r for r in recs if CUT <= r.published < END]
    epss, kev = second_source_ids(args.data)
    cfg = ScreenConfig(allow_domains=allow_list(args.data, args.first_year, hist_recs))
    t = time.perf_counter()
    history = History()
    for r in hist_recs:
        history.add_record(r, "nvd")
    history.add_ids("epss", epss)
    history.prepare()
    index_s = time.perf_counter() - t
    print(f"history: {len(hist_recs)} real records published {args.first_year}-01..2019-06 "
          f"(parse {parse_s:.1f} s, index {index_s:.1f} s); incoming real: {len(real_new)} (2019-07..12); "
          f"allow-list: {len(cfg.allow_domains)} domains; second source: EPSS ids")  # fmt: skip
    used = {r.cve_id for r in recs} | epss | set(kev)
    real_items = [Item(r.cve_id, "nvd", "real", record=r) for r in real_new]
    known_src = [r for r in hist_recs if r.published.year >= 2018]
    src = hist_recs[-20000:] + real_new
    # Real KEV entries for CVEs of the window: a real feed lists them, EPSS knows them.
    real_kev = [Item(c, "kev", "real-kev", kev=e) for c, e in kev.items() if c.startswith("CVE-2019-")]

    fa, fa_kev = tier_a(src, known_src, rng, used)
    fb = tier_b(src, known_src, rng, used)
    quiet_start = CUT + dt.timedelta(days=60)
    fc = tier_b(src, known_src, rng, used, n=40, quiet=True, days=84, start=quiet_start)
    tiers = {"a naive": fa + fa_kev, "b careful": fb, "c quiet": fc, "c+ quiet, 2nd feed": fc}
    baseline = dataclasses.replace(cfg, disabled=frozenset(s for s in SCREENS if s != "score_mismatch"))
    no_corr = dataclasses.replace(cfg, require_corroboration=False)

    cols = f"{'tier':22} {'fakes':>6} {'caught':>8} {'baseline':>9} {'no-corrob.':>11} {'real flagged':>13}"
    print(f"\n{cols}  {'time':>6}  caught per screen")
    for name, fakes in tiers.items():
        h = history
        if name.startswith("c+"):
            h = History()
            for r in hist_recs:
                h.add_record(r, "nvd")
            h.add_ids("epss", epss | {f.cve_id for f in fakes})
            h.prepare()
        batch = real_items + real_kev + fakes
        flags, secs = run(batch, h, cfg)
        base, _ = run(batch, h, baseline)
        nc, _ = run(batch, h, no_corr)
        fake_keys = {f.key for f in fakes}
        caught = sum(1 for k in fake_keys if k in flags)
        real_keys = [it.key for it in real_items]
        real_flagged = sum(1 for k in real_keys if k in flags)
        per_screen = collections.Counter(s for k in fake_keys for s in {f.screen for f in flags.get(k, [])})
        print(
            f"{name:22} {len(fake_keys):>6} {caught / len(fake_keys):>8.1%} "
            f"{sum(1 for k in fake_keys if k in base) / len(fake_keys):>9.1%} "
            f"{sum(1 for k in fake_keys if k in nc) / len(fake_keys):>11.1%} "
            f"{real_flagged / len(real_keys):>13.2%}  {secs:>5.1f}s  "
            + ", ".join(f"{s} {n}" for s, n in per_screen.most_common())
        )
    flags, _ = run(real_items + real_kev, history, cfg)
    why = collections.Counter(s for it in real_items for s in {f.screen for f in flags.get(it.key, [])})
    kev_fp = sum(1 for it in real_kev if it.key in flags)
    print(f"\nreal records flagged by screen (no fakes in the batch): {dict(why.most_common())}; "
          f"real KEV entries flagged: {kev_fp}/{len(real_kev)}")  # fmt: skip
    screen_rate = len(real_items) / max(run(real_items, history, cfg)[1], 1e-9)
    parse_rate = len(recs) / parse_s
    print(
        f"screening throughput: {screen_rate:,.0f} records/s vs parsing {parse_rate:,.0f} records/s "
        f"(baseline; screening costs {parse_rate / screen_rate:.2f}x the parse time per record)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
