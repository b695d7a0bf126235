"""The CVE store: CVE claims per source, KEV, EPSS, advisories, and the files they came from.

Every source's claim about a CVE is kept as its own row (`cve_claims`, keyed by CVE and source): NVD, a CVE
record's CNA container, CISA's ADP container. Within one source the claim with the newer modification time
wins; across sources nothing is merged silently: `record()` picks by a fixed source priority and
`conflicts()` lists every field on which sources disagree. Each file loads in one transaction: a file that
fails to parse leaves the store as it was.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from patchbrain.feeds.common import FeedError
from patchbrain.feeds.detect import detect_format
from patchbrain.feeds.epss import EpssScore
from patchbrain.feeds.kev import KevEntry
from patchbrain.feeds.osv import ECOSYSTEM_ORDERING, OsvAdvisory
from patchbrain.feeds.records import CveRecord, Provenance, Reference
from patchbrain.store import Store

log = logging.getLogger(__name__)

MIGRATIONS = [
    """
    CREATE TABLE feed_files (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL,
        sha256 TEXT,
        format TEXT NOT NULL,
        feed_version TEXT,
        feed_time TEXT,
        records INTEGER NOT NULL,
        loaded_at TEXT NOT NULL
    );
    CREATE TABLE cve_claims (
        cve_id TEXT NOT NULL,
        source TEXT NOT NULL,
        feed TEXT NOT NULL,
        feed_version TEXT NOT NULL,
        claimed_at TEXT,
        file_id INTEGER NOT NULL REFERENCES feed_files(id),
        published TEXT,
        last_modified TEXT,
        description TEXT NOT NULL,
        assigner TEXT,
        cvss3_vector TEXT,
        cvss3_score REAL,
        cvss2_vector TEXT,
        cvss2_score REAL,
        cvss4_vector TEXT,
        cvss4_score REAL,
        cwes TEXT NOT NULL,
        cpes TEXT NOT NULL,
        refs TEXT NOT NULL,
        rejected INTEGER NOT NULL,
        extra TEXT NOT NULL,
        PRIMARY KEY (cve_id, source)
    );
    CREATE TABLE kev (
        cve_id TEXT PRIMARY KEY,
        vendor TEXT NOT NULL,
        product TEXT NOT NULL,
        name TEXT NOT NULL,
        date_added TEXT NOT NULL,
        due_date TEXT,
        known_ransomware INTEGER NOT NULL,
        short_description TEXT NOT NULL,
        required_action TEXT NOT NULL,
        notes TEXT NOT NULL,
        cwes TEXT NOT NULL,
        file_id INTEGER NOT NULL REFERENCES feed_files(id)
    );
    CREATE TABLE epss (
        cve_id TEXT PRIMARY KEY,
        epss REAL NOT NULL,
        percentile REAL NOT NULL,
        model_version TEXT,
        score_date TEXT,
        file_id INTEGER NOT NULL REFERENCES feed_files(id)
    );
    CREATE TABLE advisories (
        source TEXT NOT NULL,
        id TEXT NOT NULL,
        modified TEXT NOT NULL,
        published TEXT,
        withdrawn TEXT,
        summary TEXT NOT NULL,
        severity TEXT NOT NULL,
        file_id INTEGER NOT NULL REFERENCES feed_files(id),
        PRIMARY KEY (source, id)
    );
    CREATE TABLE advisory_cves (
        source TEXT NOT NULL,
        advisory_id TEXT NOT NULL,
        cve_id TEXT NOT NULL,
        PRIMARY KEY (source, advisory_id, cve_id)
    );
    CREATE INDEX advisory_cves_by_cve ON advisory_cves(cve_id);
    CREATE TABLE advisory_packages (
        source TEXT NOT NULL,
        advisory_id TEXT NOT NULL,
        ecosystem TEXT NOT NULL,
        distro TEXT NOT NULL,
        release TEXT,
        package TEXT NOT NULL,
        ordering TEXT,
        ranges TEXT NOT NULL,
        versions TEXT NOT NULL
    );
    CREATE INDEX advisory_packages_by_pkg ON advisory_packages(distro, package)
    """,
]

# Which source a merged record takes a field from first (lower wins). Conflicts are reported regardless.
SOURCE_PRIORITY = ("nvd", "cve5/cna:", "cve5/adp:CISA-ADP", "cve5/adp:")
_CONFLICT_FIELDS = (
    "cvss3_vector",
    "cvss3_score",
    "cvss2_vector",
    "cvss2_score",
    "cvss4_vector",
    "cvss4_score",
    "cwes",
    "rejected",
)
_BATCH = 2000
Keep = Callable[[str, str], bool]


@dataclasses.dataclass(frozen=True, slots=True)
class LoadResult:
    """What one `load()` did: `skipped` when the identical file was loaded before."""

    path: str
    format: str
    records: int
    feed_time: dt.datetime | None
    skipped: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Claim:
    """One source's claim about one CVE."""

    source: str
    record: CveRecord
    file: str
    extra: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Conflict:
    """Sources that disagree on one field of one CVE: value per source."""

    cve_id: str
    field: str
    values: dict[str, Any]


def _iso(value: dt.datetime | dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _source_rank(source: str) -> int:
    for rank, prefix in enumerate(SOURCE_PRIORITY):
        if source == prefix or (prefix.endswith(":") and source.startswith(prefix)):
            return rank
    return len(SOURCE_PRIORITY)


class CveStore:
    """The CVE tables of the patchbrain store."""

    def __init__(self, store: Store | None = None) -> None:
        self.store = store if store is not None else Store()
        self.store.migrate("cves", MIGRATIONS)

    # --- loading -------------------------------------------------------------------------------------------

    def load(
        self,
        path: Path,
        *,
        fmt: str | None = None,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> LoadResult:
        """Parse and store one feed file (or cvelistV5/OSV folder) in one transaction."""
        path = Path(path)
        fmt = fmt or detect_format(path)
        digest = _sha256(path) if path.is_file() else None
        if digest is not None and (done := self.loaded(digest, fmt)) is not None:
            return LoadResult(str(path), fmt, done[0], done[1], skipped=True)
        with self.store.transaction() as tx:
            result, _ = self.load_in(tx, path, fmt=fmt, digest=digest, progress=progress)
        return result

    def loaded(self, digest: str, fmt: str) -> tuple[int, dt.datetime | None] | None:
        """(records, feed time) when a file with this SHA-256 was loaded before as `fmt`, else None."""
        row = (
            self.store.connection()
            .execute(
                "SELECT records, feed_time FROM feed_files WHERE sha256 = ? AND format = ?", (digest, fmt)
            )
            .fetchone()
        )
        return (int(row["records"]), _time(row["feed_time"])) if row is not None else None

    def load_in(
        self,
        tx: sqlite3.Connection,
        path: Path,
        *,
        fmt: str,
        digest: str | None = None,
        label: str | None = None,
        progress: Callable[[int, int | None], None] | None = None,
        keep: Keep | None = None,
    ) -> tuple[LoadResult, int]:
        """Parse and store one file inside the caller's transaction; returns (result, file id).

        `keep(cve_id, source)` filters CVE claims and KEV entries (source "kev"): what it refuses is not
        stored (the sync pipeline holds it in quarantine instead). `label` is the path recorded.
        """
        path = Path(path)
        loader = _LOADERS[fmt]
        cur = tx.execute(
            "INSERT INTO feed_files(path, sha256, format, records, loaded_at) VALUES (?, ?, ?, 0, ?)",
            (label or str(path.resolve()), digest, fmt, _iso(dt.datetime.now(dt.UTC))),
        )
        file_id = int(cur.lastrowid or 0)
        count, version, feed_time = loader(_LoadJob(self, tx, path, file_id, progress, keep))
        tx.execute(
            "UPDATE feed_files SET records = ?, feed_version = ?, feed_time = ? WHERE id = ?",
            (count, version, _iso(feed_time), file_id),
        )
        log.info("loaded %s records of %s from %s", count, fmt, path)
        return LoadResult(label or str(path), fmt, count, feed_time), file_id

    def put_claim(
        self, tx: sqlite3.Connection, rec: CveRecord, source: str, file_id: int, extra: dict[str, Any]
    ) -> None:
        """Store one claim (newer-wins within its source) inside the caller's transaction."""
        self._put_claims(tx, [_claim_row(rec, source, file_id, extra)])

    def put_kev(self, tx: sqlite3.Connection, e: KevEntry, file_id: int) -> None:
        """Store one KEV entry inside the caller's transaction."""
        tx.execute("INSERT OR REPLACE INTO kev VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", _kev_row(e, file_id))

    def _put_claims(self, tx: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
        # Within one source the newer claim wins; an older file loaded later changes nothing.
        tx.executemany(
            """
            INSERT INTO cve_claims VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
            ON CONFLICT(cve_id, source) DO UPDATE SET
                feed=excluded.feed, feed_version=excluded.feed_version, claimed_at=excluded.claimed_at,
                file_id=excluded.file_id, published=excluded.published, last_modified=excluded.last_modified,
                description=excluded.description, assigner=excluded.assigner,
                cvss3_vector=excluded.cvss3_vector, cvss3_score=excluded.cvss3_score,
                cvss2_vector=excluded.cvss2_vector, cvss2_score=excluded.cvss2_score,
                cvss4_vector=excluded.cvss4_vector, cvss4_score=excluded.cvss4_score,
                cwes=excluded.cwes, cpes=excluded.cpes, refs=excluded.refs, rejected=excluded.rejected,
                extra=excluded.extra
            WHERE cve_claims.last_modified IS NULL OR excluded.last_modified IS NULL
               OR excluded.last_modified >= cve_claims.last_modified
            """,
            rows,
        )

    # --- reading -------------------------------------------------------------------------------------------

    def claims(self, cve_id: str) -> list[Claim]:
        """Every source's claim about `cve_id`, in source-priority order."""
        rows = (
            self.store.connection()
            .execute(
                "SELECT c.*, f.path AS file FROM cve_claims c JOIN feed_files f ON f.id = c.file_id "
                "WHERE c.cve_id = ?",
                (cve_id,),
            )
            .fetchall()
        )
        out = [Claim(r["source"], _row_record(r), r["file"], json.loads(r["extra"])) for r in rows]
        return sorted(out, key=lambda c: (_source_rank(c.source), c.source))

    def record(self, cve_id: str) -> CveRecord | None:
        """One merged record: each field from the highest-priority source that has it (see `conflicts`)."""
        return _merge(self.claims(cve_id))

    def conflicts(self, cve_id: str) -> list[Conflict]:
        """The fields on which sources disagree about `cve_id`."""
        return _conflicts(cve_id, self.claims(cve_id))

    def iter_records(self) -> Iterator[CveRecord]:
        """Every CVE in the store, merged, in CVE-id order (streamed)."""
        conn = self.store.connection()
        cur = conn.execute(
            "SELECT c.*, f.path AS file FROM cve_claims c JOIN feed_files f ON f.id = c.file_id "
            "ORDER BY c.cve_id"
        )
        group: list[Claim] = []
        for r in cur:
            if group and group[0].record.cve_id != r["cve_id"]:
                merged = _merge(sorted(group, key=lambda c: _source_rank(c.source)))
                if merged is not None:
                    yield merged
                group = []
            group.append(Claim(r["source"], _row_record(r), r["file"], json.loads(r["extra"])))
        if group:
            merged = _merge(sorted(group, key=lambda c: _source_rank(c.source)))
            if merged is not None:
                yield merged

    def kev(self, cve_id: str) -> KevEntry | None:
        """The KEV entry for `cve_id`, if it is listed."""
        r = self.store.connection().execute("SELECT * FROM kev WHERE cve_id = ?", (cve_id,)).fetchone()
        if r is None:
            return None
        return KevEntry(
            cve_id=r["cve_id"],
            vendor=r["vendor"],
            product=r["product"],
            name=r["name"],
            date_added=dt.date.fromisoformat(r["date_added"]),
            short_description=r["short_description"],
            required_action=r["required_action"],
            due_date=dt.date.fromisoformat(r["due_date"]) if r["due_date"] else None,
            known_ransomware=bool(r["known_ransomware"]),
            notes=r["notes"],
            cwes=tuple(json.loads(r["cwes"])),
        )

    def kev_ids(self) -> set[str]:
        """Every CVE id in the KEV catalog."""
        return {r[0] for r in self.store.connection().execute("SELECT cve_id FROM kev")}

    def epss(self, cve_id: str) -> tuple[EpssScore, str | None, dt.datetime | None] | None:
        """(score, model version, score date) for `cve_id`, if scored."""
        r = self.store.connection().execute("SELECT * FROM epss WHERE cve_id = ?", (cve_id,)).fetchone()
        if r is None:
            return None
        return EpssScore(r["cve_id"], r["epss"], r["percentile"]), r["model_version"], _time(r["score_date"])

    def advisory_ranges(self, distro: str, package: str) -> list[dict[str, Any]]:
        """OSV affected entries for one distro ("Debian", "Ubuntu", "AlmaLinux", ...) and package."""
        conn = self.store.connection()
        rows = conn.execute(
            "SELECT p.*, a.withdrawn, a.modified, f.path AS file FROM advisory_packages p "
            "JOIN advisories a ON a.source = p.source AND a.id = p.advisory_id "
            "JOIN feed_files f ON f.id = a.file_id WHERE p.distro = ? AND p.package = ?",
            (distro, package),
        ).fetchall()
        out = []
        for r in rows:
            cves = [
                c[0]
                for c in conn.execute(
                    "SELECT cve_id FROM advisory_cves WHERE source = ? AND advisory_id = ? ORDER BY cve_id",
                    (r["source"], r["advisory_id"]),
                )
            ]
            out.append(
                {
                    "source": r["source"],
                    "advisory_id": r["advisory_id"],
                    "ecosystem": r["ecosystem"],
                    "release": r["release"],
                    "ordering": r["ordering"],
                    "ranges": [[tuple(e) for e in rng["events"]] for rng in json.loads(r["ranges"])],
                    "versions": json.loads(r["versions"]),
                    "cve_ids": cves,
                    "withdrawn": r["withdrawn"],
                    "modified": r["modified"],
                    "file": r["file"],
                }
            )
        return out

    def advisories_for_cve(self, cve_id: str) -> list[dict[str, Any]]:
        """The advisories (OSV) that name `cve_id`, with the packages and ecosystems they cover."""
        conn = self.store.connection()
        rows = conn.execute(
            "SELECT a.source, a.id, a.modified, a.withdrawn, a.summary FROM advisory_cves c "
            "JOIN advisories a ON a.source = c.source AND a.id = c.advisory_id WHERE c.cve_id = ? "
            "ORDER BY a.id",
            (cve_id,),
        ).fetchall()
        out = []
        for r in rows:
            pkgs = conn.execute(
                "SELECT ecosystem, package FROM advisory_packages WHERE source = ? AND advisory_id = ? "
                "ORDER BY ecosystem, package",
                (r["source"], r["id"]),
            ).fetchall()
            out.append(
                {
                    "source": r["source"],
                    "id": r["id"],
                    "modified": r["modified"],
                    "withdrawn": r["withdrawn"],
                    "summary": r["summary"],
                    "packages": [f"{p['ecosystem']}/{p['package']}" for p in pkgs],
                }
            )
        return out

    def status(self) -> dict[str, Any]:
        """What is loaded, from which files, and how fresh."""
        conn = self.store.connection()
        files = [
            {
                "path": r["path"],
                "format": r["format"],
                "records": r["records"],
                "feed_version": r["feed_version"],
                "feed_time": r["feed_time"],
                "loaded_at": r["loaded_at"],
                "sha256": r["sha256"],
            }
            for r in conn.execute("SELECT * FROM feed_files ORDER BY id")
        ]
        counts = {
            "cves": conn.execute("SELECT COUNT(DISTINCT cve_id) FROM cve_claims").fetchone()[0],
            "cve_claims": conn.execute("SELECT COUNT(*) FROM cve_claims").fetchone()[0],
            "rejected": conn.execute(
                "SELECT COUNT(DISTINCT cve_id) FROM cve_claims WHERE rejected = 1"
            ).fetchone()[0],
            "kev": conn.execute("SELECT COUNT(*) FROM kev").fetchone()[0],
            "epss": conn.execute("SELECT COUNT(*) FROM epss").fetchone()[0],
            "advisories": conn.execute("SELECT COUNT(*) FROM advisories").fetchone()[0],
        }
        newest: dict[str, str | None] = {}
        age_days: dict[str, float | None] = {}
        now = dt.datetime.now(dt.UTC)
        for fmt, latest in conn.execute(
            "SELECT format, MAX(COALESCE(feed_time, loaded_at)) FROM feed_files GROUP BY format"
        ):
            newest[fmt] = latest
            when = _time(latest)
            age_days[fmt] = round((now - when).total_seconds() / 86400, 1) if when else None
        return {"counts": counts, "newest_by_format": newest, "age_days": age_days, "files": files}


# --- per-format loaders: one file into the caller's transaction -> (records, version, feed time)

_Loaded = tuple[int, str | None, dt.datetime | None]


@dataclasses.dataclass(frozen=True, slots=True)
class _LoadJob:
    """What every per-format loader gets: the store, its transaction, the file and its feed_files id."""

    store: CveStore
    tx: sqlite3.Connection
    path: Path
    file_id: int
    progress: Callable[[int, int | None], None] | None
    keep: Keep | None

    def report(self, done: int, total: int | None) -> None:
        if self.progress:
            self.progress(done, total)


_Loader = Callable[[_LoadJob], _Loaded]


def _claim_row(rec: CveRecord, source: str, file_id: int, extra: dict[str, Any]) -> tuple[Any, ...]:
    prov = next(iter(rec.provenance.values()), None)
    return (
        rec.cve_id,
        source,
        prov.feed if prov else source,
        prov.version if prov else "",
        _iso(prov.time) if prov else None,
        file_id,
        _iso(rec.published),
        _iso(rec.last_modified),
        rec.description,
        rec.assigner,
        rec.cvss3_vector,
        rec.cvss3_score,
        rec.cvss2_vector,
        rec.cvss2_score,
        rec.cvss4_vector,
        rec.cvss4_score,
        json.dumps(list(rec.cwes)),
        json.dumps(list(rec.cpes)),
        json.dumps([[r.url, list(r.tags), r.source] for r in rec.references]),
        int(rec.rejected),
        json.dumps(extra, sort_keys=True),
    )


def _row_record(r: sqlite3.Row) -> CveRecord:
    prov = Provenance(r["feed"], r["feed_version"], _time(r["claimed_at"]))
    values: dict[str, Any] = {
        "published": _time(r["published"]),
        "last_modified": _time(r["last_modified"]),
        "description": r["description"],
        "assigner": r["assigner"],
        "cvss3_vector": r["cvss3_vector"],
        "cvss3_score": r["cvss3_score"],
        "cvss2_vector": r["cvss2_vector"],
        "cvss2_score": r["cvss2_score"],
        "cvss4_vector": r["cvss4_vector"],
        "cvss4_score": r["cvss4_score"],
        "cwes": tuple(json.loads(r["cwes"])),
        "cpes": tuple(json.loads(r["cpes"])),
        "references": tuple(Reference(u, tuple(t), s) for u, t, s in json.loads(r["refs"])),
    }
    provenance = {k: prov for k, v in values.items() if v not in (None, "", ())}
    provenance["rejected"] = prov
    return CveRecord(cve_id=r["cve_id"], rejected=bool(r["rejected"]), provenance=provenance, **values)


_MERGE_FIELDS = (
    "published",
    "last_modified",
    "description",
    "assigner",
    "cvss3_vector",
    "cvss3_score",
    "cvss2_vector",
    "cvss2_score",
    "cvss4_vector",
    "cvss4_score",
    "cwes",
    "cpes",
    "references",
)


def _merge(claims: list[Claim]) -> CveRecord | None:
    """Each field from the first claim (in priority order) that has it; vectors and scores stay paired."""
    if not claims:
        return None
    values: dict[str, Any] = {}
    provenance: dict[str, Provenance] = {}
    for claim in claims:
        rec = claim.record
        for name in _MERGE_FIELDS:
            if name in values or name.endswith("_score"):
                continue
            value = getattr(rec, name)
            if value in (None, "", ()):
                continue
            values[name] = value
            provenance[name] = rec.provenance.get(name, Provenance(claim.source, ""))
            if name.endswith("_vector"):
                score = name.replace("_vector", "_score")
                values[score] = getattr(rec, score)
                provenance[score] = provenance[name]
    # A CVE is rejected when its authority (the CNA's record, else NVD) says so.
    rejected = any(c.record.rejected for c in claims if c.source.startswith(("cve5/cna:", "nvd")))
    provenance["rejected"] = claims[0].record.provenance.get("rejected", Provenance(claims[0].source, ""))
    return CveRecord(cve_id=claims[0].record.cve_id, rejected=rejected, provenance=provenance, **values)


def _conflicts(cve_id: str, claims: list[Claim]) -> list[Conflict]:
    out = []
    for name in _CONFLICT_FIELDS:
        values = {c.source: getattr(c.record, name) for c in claims}
        present = {s: v for s, v in values.items() if v not in (None, "", (), False) or name == "rejected"}
        if len({json.dumps(v, default=str) for v in present.values()}) > 1:
            out.append(Conflict(cve_id, name, present))
    return out


def _batched_claims(
    job: _LoadJob, items: Iterable[tuple[CveRecord, str, dict[str, Any]]], total: int | None
) -> int:
    batch: list[tuple[Any, ...]] = []
    count = 0
    for rec, source, extra in items:
        if job.keep is not None and not job.keep(rec.cve_id, source):
            continue
        batch.append(_claim_row(rec, source, job.file_id, extra))
        count += 1
        if len(batch) >= _BATCH:
            job.store._put_claims(job.tx, batch)
            batch.clear()
            job.report(count, total)
    job.store._put_claims(job.tx, batch)
    job.report(count, total)
    return count


def _load_nvd11(job: _LoadJob) -> _Loaded:
    from patchbrain.feeds.nvd import iter_nvd11, read_nvd11_header

    header = read_nvd11_header(job.path)
    empty: dict[str, Any] = {}
    items = ((r, "nvd", empty) for r in iter_nvd11(job.path))
    count = _batched_claims(job, items, header.count)
    return count, "1.1", header.timestamp


def _load_nvd20(job: _LoadJob) -> _Loaded:
    from patchbrain.feeds.nvd import iter_nvd20

    newest: list[dt.datetime] = []

    def items() -> Iterator[tuple[CveRecord, str, dict[str, Any]]]:
        for r in iter_nvd20(job.path):
            if r.last_modified:
                newest[:] = [max([r.last_modified, *newest])]
            yield r, "nvd", {}

    count = _batched_claims(job, items(), None)
    return count, "2.0", newest[0] if newest else None


def _load_cve5(job: _LoadJob) -> _Loaded:
    from patchbrain.feeds.cve5 import iter_cve5

    newest: list[dt.datetime] = []
    version: list[str] = []

    def items() -> Iterator[tuple[CveRecord, str, dict[str, Any]]]:
        for claim in iter_cve5(job.path):
            if claim.record.last_modified:
                newest[:] = [max([claim.record.last_modified, *newest])]
            prov = claim.record.provenance.get("rejected")
            if prov and not version:
                version.append(prov.version)
            extra: dict[str, Any] = {}
            if claim.ssvc:
                extra["ssvc"] = dict(claim.ssvc)
            if claim.kev_date_added:
                extra["kev_date_added"] = claim.kev_date_added
            yield claim.record, f"cve5/{claim.source}", extra

    count = _batched_claims(job, items(), None)
    return count, (version[0] if version else "5"), newest[0] if newest else None


def _kev_row(e: KevEntry, file_id: int) -> tuple[Any, ...]:
    return (
        e.cve_id,
        e.vendor,
        e.product,
        e.name,
        _iso(e.date_added),
        _iso(e.due_date),
        int(e.known_ransomware),
        e.short_description,
        e.required_action,
        e.notes,
        json.dumps(list(e.cwes)),
        file_id,
    )


def _load_kev(job: _LoadJob) -> _Loaded:
    from patchbrain.feeds.kev import load_kev_catalog

    cat = load_kev_catalog(job.path)
    rows = [
        _kev_row(e, job.file_id)
        for e in cat.entries.values()
        if job.keep is None or job.keep(e.cve_id, "kev")
    ]
    job.tx.executemany("INSERT OR REPLACE INTO kev VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    job.report(len(rows), len(rows))
    newest_added = max((e.date_added for e in cat.entries.values()), default=None)
    feed_time = cat.released or (
        dt.datetime.combine(newest_added, dt.time(), dt.UTC) if newest_added is not None else None
    )
    return len(rows), cat.version, feed_time


def _load_epss(job: _LoadJob) -> _Loaded:
    from patchbrain.feeds.epss import iter_epss, read_epss_header

    header = read_epss_header(job.path)
    date = _iso(header.score_date)
    sql = (
        "INSERT INTO epss VALUES (?,?,?,?,?,?) ON CONFLICT(cve_id) DO UPDATE SET epss=excluded.epss, "
        "percentile=excluded.percentile, model_version=excluded.model_version, "
        "score_date=excluded.score_date, file_id=excluded.file_id "
        "WHERE epss.score_date IS NULL OR excluded.score_date >= epss.score_date"
    )
    batch: list[tuple[Any, ...]] = []
    count = 0
    for s in iter_epss(job.path):
        batch.append((s.cve_id, s.epss, s.percentile, header.model_version, date, job.file_id))
        count += 1
        if len(batch) >= _BATCH * 5:
            job.tx.executemany(sql, batch)
            batch.clear()
            job.report(count, None)
    job.tx.executemany(sql, batch)
    job.report(count, count)
    return count, header.model_version, header.score_date


def _load_osv(job: _LoadJob) -> _Loaded:
    from patchbrain.feeds.osv import iter_osv

    count = 0
    newest: dt.datetime | None = None
    for adv in iter_osv(job.path):
        _put_advisory(job.tx, adv, job.file_id)
        count += 1
        newest = max(adv.modified, newest) if newest else adv.modified
        if count % 500 == 0:
            job.report(count, None)
    job.report(count, count)
    return count, "osv", newest


def _put_advisory(tx: sqlite3.Connection, adv: OsvAdvisory, file_id: int) -> None:
    source = "osv"
    row = tx.execute(
        "SELECT modified FROM advisories WHERE source = ? AND id = ?", (source, adv.id)
    ).fetchone()
    if row is not None and row["modified"] > _iso(adv.modified):
        return  # a newer version of this advisory is already loaded
    tx.execute("DELETE FROM advisory_cves WHERE source = ? AND advisory_id = ?", (source, adv.id))
    tx.execute("DELETE FROM advisory_packages WHERE source = ? AND advisory_id = ?", (source, adv.id))
    tx.execute(
        "INSERT OR REPLACE INTO advisories VALUES (?,?,?,?,?,?,?,?)",
        (
            source,
            adv.id,
            _iso(adv.modified),
            _iso(adv.published),
            _iso(adv.withdrawn),
            adv.summary,
            json.dumps([list(s) for s in adv.severity]),
            file_id,
        ),
    )
    tx.executemany(
        "INSERT OR IGNORE INTO advisory_cves VALUES (?,?,?)", [(source, adv.id, c) for c in adv.cve_ids]
    )
    tx.executemany(
        "INSERT INTO advisory_packages VALUES (?,?,?,?,?,?,?,?,?)",
        [
            (
                source,
                adv.id,
                a.ecosystem,
                a.distro,
                a.release,
                a.name,
                ECOSYSTEM_ORDERING.get(a.distro),
                json.dumps([{"type": r.type, "events": [list(e) for e in r.events]} for r in a.ranges]),
                json.dumps(list(a.versions)),
            )
            for a in adv.affected
        ],
    )


_LOADERS: dict[str, _Loader] = {
    "nvd-1.1": _load_nvd11,
    "nvd-2.0": _load_nvd20,
    "cve5": _load_cve5,
    "kev": _load_kev,
    "epss": _load_epss,
    "osv": _load_osv,
}

__all__ = ["Claim", "Conflict", "CveStore", "FeedError", "LoadResult"]
