"""Scenario 1, feed injection: a real TUF repository (python-tuf, patchbrain's publisher) served from a
mirror folder, attacked the ways the seed describes: a tampered feed file, a replay of old metadata, a
frozen mirror whose timestamp expired, and a publisher (stolen keys, or a compromised upstream) that signs
500 fake CVEs with inflated severity. Each must be refused (store untouched, audited) or quarantined."""

from __future__ import annotations

import copy
import datetime as dt
import gzip
import json
from pathlib import Path
from typing import Any

from patchbrain.redteam.base import Check, Context, Evidence, Scenario
from patchbrain.redteam.common import Outcome, attempt, audit_evidence, audit_head, audit_since, data_file

N_FAKES = 500


def _nvd_items() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    doc = json.loads(gzip.decompress(data_file("nvd-sample.json.gz").read_bytes()))
    return doc, list(doc["CVE_Items"])


def _write_nvd(path: Path, header: dict[str, Any], items: list[dict[str, Any]]) -> Path:
    doc = {k: v for k, v in header.items() if k != "CVE_Items"}
    doc["CVE_Items"] = items
    doc["CVE_data_numberOfCVEs"] = str(len(items))
    path.write_bytes(gzip.compress(json.dumps(doc).encode(), mtime=0))
    return path


def inflated_fakes(items: list[dict[str, Any]], n: int = N_FAKES) -> list[dict[str, Any]]:
    """`n` fake CVEs: clones of real medium/low records under new ids, all from one assigner within one
    week, each stating a 9.8 base score its own vector does not support (the seed's inflated entries)."""
    low = [
        it
        for it in items
        if (v3 := it.get("impact", {}).get("baseMetricV3", {}).get("cvssV3")) and v3.get("baseScore", 10) < 7
    ]
    fakes = []
    for i in range(n):
        fake = copy.deepcopy(low[i % len(low)])
        fake["cve"]["CVE_data_meta"]["ID"] = f"CVE-2019-9{i:05d}"
        fake["cve"]["CVE_data_meta"]["ASSIGNER"] = "cve@mitre.org"
        day = 2 + i % 7
        fake["publishedDate"] = f"2019-09-{day:02d}T15:29Z"
        fake["lastModifiedDate"] = f"2019-09-{day:02d}T15:29Z"
        fake["impact"]["baseMetricV3"]["cvssV3"]["baseScore"] = 9.8
        fake["impact"]["baseMetricV3"]["cvssV3"]["baseSeverity"] = "CRITICAL"
        fakes.append(fake)
    return fakes


def _claims(store: Any) -> int:
    from patchbrain.feeds.cvestore import CveStore

    conn = CveStore(store).store.connection()
    return int(conn.execute("SELECT COUNT(*) FROM cve_claims").fetchone()[0]) + int(
        conn.execute("SELECT COUNT(*) FROM kev").fetchone()[0]
    )


def run(ctx: Context) -> list[Check]:
    from patchbrain.feeds import sync as feed_sync
    from patchbrain.feeds.tufrepo import FeedRepository
    from patchbrain.store import Store

    store = Store()
    keys = ctx.workdir / "feed-keys"
    repo = FeedRepository(ctx.workdir / "feed-repo")
    header, items = _nvd_items()
    files = ctx.workdir / "feed-files"
    files.mkdir()
    honest = _write_nvd(files / "nvdcve-1.1-2019.json.gz", header, items[:300])
    kev = data_file("kev-sample.csv")
    repo.init(keys)
    repo.add([honest])
    repo.publish(keys)
    feed_sync.trust(repo.path / "metadata" / "1.root.json", store=store)
    source = str(repo.path)
    checks: list[Check] = []

    def refused(kind: str) -> Outcome:
        before, seq = _claims(store), audit_head(store)
        try:
            res = feed_sync.sync(source, store=store)
        except feed_sync.FeedRefused as exc:
            after = _claims(store)
            recs = audit_since(store, seq, "feeds.sync.refused")
            ok = exc.kind == kind and after == before and bool(recs)
            ev = [Evidence("refusal", str(exc)[:500])] + [audit_evidence(r) for r in recs]
            ev.append(Evidence("note", f"CVE store rows before/after: {before}/{after}"))
            return ok, f"sync refused ({exc.kind}), exit 5; store unchanged: {after == before}", ev
        loaded = sum(f.records for f in res.files)
        return (
            False,
            f"sync ACCEPTED the repository: {loaded} records loaded",
            [Evidence("note", f"CVE store rows before/after: {before}/{_claims(store)}")],
        )

    def baseline() -> Outcome:
        seq = audit_head(store)
        res = feed_sync.sync(source, store=store)
        recs = audit_since(store, seq, "feeds.sync")
        n = sum(f.records for f in res.files)
        return (
            n > 0,
            f"control: the honest repository synced ({n} records loaded, "
            f"{sum(res.quarantined.values())} held)",
            [audit_evidence(r) for r in recs],
        )

    checks.append(attempt("control: honest signed repository (300 real NVD records)", baseline))

    old_timestamp = (repo.path / "metadata" / "timestamp.json").read_bytes()
    repo.add([kev])
    repo.publish(keys)
    target = next(p for p in (repo.path / "targets").iterdir() if p.name.endswith(kev.name))
    original = target.read_bytes()
    target.write_bytes(original.replace(b"Microsoft", b"Microsofu", 1))
    checks.append(
        attempt(
            "tampered feed file on the mirror (one vendor name changed in the KEV CSV)",
            lambda: refused("tampered"),
        )
    )
    target.write_bytes(original)
    feed_sync.sync(source, store=store)  # the honest v3, so the replay below is older than what is trusted

    current = (repo.path / "metadata" / "timestamp.json").read_bytes()
    (repo.path / "metadata" / "timestamp.json").write_bytes(old_timestamp)
    checks.append(
        attempt(
            "rollback: the mirror replays an older, validly signed timestamp", lambda: refused("rollback")
        )
    )
    (repo.path / "metadata" / "timestamp.json").write_bytes(current)

    repo.publish(keys, now=dt.datetime.now(dt.UTC) - dt.timedelta(days=2))
    checks.append(attempt("frozen mirror: a timestamp that expired a day ago", lambda: refused("expired")))

    fakes = inflated_fakes(items)
    fake_file = _write_nvd(files / "nvdcve-1.1-2019-extra.json.gz", header, fakes)
    repo.add([fake_file])
    repo.publish(keys)

    def inflated() -> Outcome:
        from patchbrain.feeds.cvestore import CveStore
        from patchbrain.feeds.quarantine import Quarantine

        seq = audit_head(store)
        res = feed_sync.sync(source, store=store)
        ids = {f["cve"]["CVE_data_meta"]["ID"] for f in fakes}
        held = {e.cve_id for e in Quarantine(store).entries() if e.cve_id in ids}
        cves = CveStore(store)
        loaded = [i for i in sorted(ids) if cves.claims(i)]
        recs = audit_since(store, seq, "feeds.sync")
        ev = [Evidence("quarantine", f"held by screen: {dict(sorted(res.quarantined.items()))}")]
        ev += [audit_evidence(r, ("quarantined",)) for r in recs]
        if loaded:
            ev.append(Evidence("note", f"loaded fakes: {', '.join(loaded[:10])}"))
        ok = len(held) == len(ids) and not loaded
        return (
            ok,
            f"sync accepted the signed file; {len(held)} of {len(ids)} fakes quarantined, "
            f"{len(loaded)} loaded",
            ev,
        )

    checks.append(
        attempt(
            f"{N_FAKES} fake CVEs with inflated severity, validly signed (stolen publisher keys)", inflated
        )
    )
    return checks


SCENARIO = Scenario(
    name="feed-injection",
    number=1,
    title="Feed injection",
    attacked="feed sync: TUF verification (feeds/sync.py) and the poisoning screens (feeds/screening.py)",
    defences=("tuf", "screening"),
    needs_hosts=False,
    run=run,
)
