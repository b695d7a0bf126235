"""The quarantine: feed items the poisoning screens held back, with their reasons, until an operator decides.

A quarantined item is kept whole (the record as the feed gave it, the file it came from and the sync that
brought it). `release` needs an operator key from the patchbrain key store: the operator signs a release
statement, the item goes into the CVE store, and both the statement and the release are audited.
Nothing is ever deleted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import sqlite3
from typing import Any

from patchbrain.errors import BadInput, RefusedByPolicy
from patchbrain.feeds.kev import KevEntry
from patchbrain.feeds.records import CveRecord, Provenance, Reference
from patchbrain.feeds.screening import Flag
from patchbrain.store import Store

MIGRATIONS = [
    """
    CREATE TABLE quarantine (
        id INTEGER PRIMARY KEY,
        cve_id TEXT NOT NULL,
        source TEXT NOT NULL,
        kind TEXT NOT NULL,
        file TEXT NOT NULL,
        file_id INTEGER,
        sync_id TEXT NOT NULL,
        reasons TEXT NOT NULL,
        item TEXT NOT NULL,
        item_sha256 TEXT NOT NULL,
        quarantined_at TEXT NOT NULL,
        released_at TEXT,
        released_by TEXT,
        release_signature TEXT
    );
    CREATE INDEX quarantine_by_cve ON quarantine(cve_id);
    CREATE TRIGGER quarantine_no_delete BEFORE DELETE ON quarantine
    BEGIN SELECT RAISE(ABORT, 'quarantined items are never deleted'); END;
    """,
]
RELEASE_DOMAIN = "patchbrain-quarantine-release-v1"


def _iso(value: dt.datetime | dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


def record_to_dict(rec: CveRecord) -> dict[str, Any]:
    """A CVE record as JSON-ready data (every field, incl. the scores the feed stated)."""
    prov = next(iter(rec.provenance.values()), None)
    return {
        "cve_id": rec.cve_id,
        "published": _iso(rec.published),
        "last_modified": _iso(rec.last_modified),
        "description": rec.description,
        "assigner": rec.assigner,
        "cvss3_vector": rec.cvss3_vector,
        "cvss3_score": rec.cvss3_score,
        "cvss2_vector": rec.cvss2_vector,
        "cvss2_score": rec.cvss2_score,
        "cvss4_vector": rec.cvss4_vector,
        "cvss4_score": rec.cvss4_score,
        "cwes": list(rec.cwes),
        "cpes": list(rec.cpes),
        "references": [[r.url, list(r.tags), r.source] for r in rec.references],
        "rejected": rec.rejected,
        "stated_scores": [list(s) for s in rec.stated_scores],
        "provenance": [prov.feed, prov.version, _iso(prov.time)] if prov else None,
    }


def record_from_dict(d: dict[str, Any]) -> CveRecord:
    """The inverse of `record_to_dict`."""

    def t(v: str | None) -> dt.datetime | None:
        return dt.datetime.fromisoformat(v) if v else None

    p = d.get("provenance")
    prov = Provenance(p[0], p[1], t(p[2])) if p else None
    values: dict[str, Any] = {
        "published": t(d["published"]),
        "last_modified": t(d["last_modified"]),
        "description": d["description"],
        "assigner": d["assigner"],
        "cvss3_vector": d["cvss3_vector"],
        "cvss3_score": d["cvss3_score"],
        "cvss2_vector": d["cvss2_vector"],
        "cvss2_score": d["cvss2_score"],
        "cvss4_vector": d["cvss4_vector"],
        "cvss4_score": d["cvss4_score"],
        "cwes": tuple(d["cwes"]),
        "cpes": tuple(d["cpes"]),
        "references": tuple(Reference(u, tuple(tg), s) for u, tg, s in d["references"]),
    }
    provenance = {k: prov for k, v in values.items() if v not in (None, "", ())} if prov else {}
    if prov:
        provenance["rejected"] = prov
    return CveRecord(
        cve_id=d["cve_id"],
        rejected=bool(d["rejected"]),
        provenance=provenance,
        stated_scores=tuple((k, float(v)) for k, v in d.get("stated_scores", [])),
        **values,
    )


def kev_to_dict(e: KevEntry) -> dict[str, Any]:
    """A KEV entry as JSON-ready data."""
    d = dataclasses.asdict(e)
    d["date_added"] = _iso(e.date_added)
    d["due_date"] = _iso(e.due_date)
    d["cwes"] = list(e.cwes)
    return d


def kev_from_dict(d: dict[str, Any]) -> KevEntry:
    """The inverse of `kev_to_dict`."""
    return KevEntry(
        **{
            **d,
            "date_added": dt.date.fromisoformat(d["date_added"]),
            "due_date": dt.date.fromisoformat(d["due_date"]) if d["due_date"] else None,
            "cwes": tuple(d["cwes"]),
        }
    )


@dataclasses.dataclass(frozen=True, slots=True)
class QuarantineEntry:
    """One quarantined item."""

    id: int
    cve_id: str
    source: str
    kind: str
    file: str
    sync_id: str
    reasons: tuple[Flag, ...]
    item: dict[str, Any]
    item_sha256: str
    quarantined_at: str
    released_at: str | None = None
    released_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["reasons"] = [f.to_dict() for f in self.reasons]
        return d


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class Quarantine:
    """The quarantine table of the patchbrain store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.migrate("quarantine", MIGRATIONS)

    def add(
        self,
        tx: sqlite3.Connection,
        *,
        cve_id: str,
        source: str,
        kind: str,
        file: str,
        file_id: int | None,
        sync_id: str,
        reasons: list[Flag],
        item: dict[str, Any],
    ) -> int:
        """Hold one item back (inside the caller's transaction); returns its quarantine id."""
        text = _canonical(item)
        cur = tx.execute(
            "INSERT INTO quarantine(cve_id, source, kind, file, file_id, sync_id, reasons, item, "
            "item_sha256, quarantined_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                cve_id,
                source,
                kind,
                file,
                file_id,
                sync_id,
                _canonical([f.to_dict() for f in reasons]),
                text,
                hashlib.sha256(text.encode()).hexdigest(),
                dt.datetime.now(dt.UTC).isoformat(),
            ),
        )
        return int(cur.lastrowid or 0)

    def entries(self, *, include_released: bool = False, cve_id: str | None = None) -> list[QuarantineEntry]:
        """Quarantined items, oldest first (released ones only when asked)."""
        sql = "SELECT * FROM quarantine WHERE 1=1"
        params: list[Any] = []
        if not include_released:
            sql += " AND released_at IS NULL"
        if cve_id:
            sql += " AND cve_id = ?"
            params.append(cve_id)
        rows = self.store.connection().execute(sql + " ORDER BY id", params).fetchall()
        return [_entry(r) for r in rows]

    def get(self, qid: int) -> QuarantineEntry:
        row = self.store.connection().execute("SELECT * FROM quarantine WHERE id = ?", (qid,)).fetchone()
        if row is None:
            raise BadInput(f"no quarantined item {qid}", source="quarantine", field="ID")
        return _entry(row)

    def release(
        self, qid: int, key_name: str, *, passphrase: bytes | None = None, note: str = ""
    ) -> QuarantineEntry:
        """An operator releases item `qid` into the CVE store, signing the decision with key `key_name`.

        The signed statement names the item's SHA-256, so a release covers exactly what was reviewed.
        Audited as `feeds.quarantine.release`.
        """
        from patchbrain.audit import open_audit_log
        from patchbrain.feeds.cvestore import CveStore
        from patchbrain.keys import KeyStore, sign

        entry = self.get(qid)
        if entry.released_at is not None:
            raise RefusedByPolicy(f"quarantined item {qid} was already released by {entry.released_by}")
        key = KeyStore().load_private(key_name, passphrase)
        statement = _canonical(
            {
                "domain": RELEASE_DOMAIN,
                "id": qid,
                "cve_id": entry.cve_id,
                "source": entry.source,
                "item_sha256": entry.item_sha256,
                "note": note,
            }
        ).encode()
        signature = sign(key, statement).hex()
        cves = CveStore(self.store)
        now = dt.datetime.now(dt.UTC).isoformat()
        row = (
            self.store.connection().execute("SELECT file_id FROM quarantine WHERE id = ?", (qid,)).fetchone()
        )
        file_id = row["file_id"]
        if file_id is None:
            raise RefusedByPolicy(f"quarantined item {qid} has no loaded feed file to attach it to")
        with self.store.transaction() as tx:
            if entry.kind == "kev":
                cves.put_kev(tx, kev_from_dict(entry.item), file_id)
            else:
                cves.put_claim(tx, record_from_dict(entry.item), entry.source, file_id, {})
            tx.execute(
                "UPDATE quarantine SET released_at = ?, released_by = ?, release_signature = ? WHERE id = ?",
                (now, f"{key_name} {key.public.fingerprint}", signature, qid),
            )
        open_audit_log(self.store).append(
            key_name,
            "feeds.quarantine.release",
            entry.cve_id,
            {
                "id": qid,
                "source": entry.source,
                "item_sha256": entry.item_sha256,
                "reasons": [f.to_dict() for f in entry.reasons],
                "key_fingerprint": key.public.fingerprint,
                "signature": signature,
                "note": note,
            },
        )
        return self.get(qid)

    def counts(self) -> dict[str, int]:
        conn = self.store.connection()
        held = conn.execute("SELECT COUNT(*) FROM quarantine WHERE released_at IS NULL").fetchone()[0]
        released = conn.execute("SELECT COUNT(*) FROM quarantine WHERE released_at IS NOT NULL").fetchone()[0]
        return {"held": int(held), "released": int(released)}


def _entry(r: sqlite3.Row) -> QuarantineEntry:
    return QuarantineEntry(
        id=r["id"],
        cve_id=r["cve_id"],
        source=r["source"],
        kind=r["kind"],
        file=r["file"],
        sync_id=r["sync_id"],
        reasons=tuple(Flag(f["screen"], f["detail"]) for f in json.loads(r["reasons"])),
        item=json.loads(r["item"]),
        item_sha256=r["item_sha256"],
        quarantined_at=r["quarantined_at"],
        released_at=r["released_at"],
        released_by=r["released_by"],
    )
