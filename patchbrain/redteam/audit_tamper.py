"""Tampering with the audit log the way an attacker who can write the database file would: drop the guard
triggers, then edit, delete, reorder, insert or re-chain records. Used by the unit tests and by the red-team
scenario `audit-tampering`; every function takes a raw sqlite3 connection from `attacker()` and a seq."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

from patchbrain.audit import GENESIS_HASH, canonical_json, record_hash

TRIGGERS = (
    "audit_log_no_update",
    "audit_log_no_delete",
    "audit_checkpoint_no_update",
    "audit_checkpoint_no_delete",
)
_COLS = "time, actor, action, subject, payload, payload_hash, prev_hash, record_hash"


def attacker(path: Path | str) -> sqlite3.Connection:
    """A raw connection by someone who can write the database file and drops the guard triggers."""
    conn = sqlite3.connect(path, isolation_level=None)
    for t in TRIGGERS:
        conn.execute(f"DROP TRIGGER IF EXISTS {t}")
    return conn


def payload_hash(text: str) -> str:
    """SHA-256 hex of a payload text, as the audit log computes it."""
    return hashlib.sha256(text.encode()).hexdigest()


# -- tampering, one function per kind -------------------------------------------------------------------


def edit_payload(conn: sqlite3.Connection, k: int) -> None:
    conn.execute("UPDATE audit_log SET payload = ? WHERE seq = ?", ('{"i":-1}', k))


def edit_actor(conn: sqlite3.Connection, k: int) -> None:
    conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = ?", (k,))


def edit_payload_and_its_hash(conn: sqlite3.Connection, k: int) -> None:
    text = '{"i":-1}'
    conn.execute(
        "UPDATE audit_log SET payload = ?, payload_hash = ? WHERE seq = ?", (text, payload_hash(text), k)
    )


def delete(conn: sqlite3.Connection, k: int) -> None:
    conn.execute("DELETE FROM audit_log WHERE seq = ?", (k,))


def delete_and_renumber(conn: sqlite3.Connection, k: int) -> None:
    conn.execute("DELETE FROM audit_log WHERE seq = ?", (k,))
    conn.execute("UPDATE audit_log SET seq = -(seq - 1) WHERE seq > ?", (k,))
    conn.execute("UPDATE audit_log SET seq = -seq WHERE seq < 0")


def reorder(conn: sqlite3.Connection, k: int) -> None:
    """Swap records k and k+1 (everything but the seq column)."""
    a = conn.execute(f"SELECT {_COLS} FROM audit_log WHERE seq = ?", (k,)).fetchone()  # noqa: S608
    b = conn.execute(f"SELECT {_COLS} FROM audit_log WHERE seq = ?", (k + 1,)).fetchone()  # noqa: S608
    sql = f"UPDATE audit_log SET ({_COLS}) = (?, ?, ?, ?, ?, ?, ?, ?) WHERE seq = ?"  # noqa: S608
    conn.execute(sql, (*b, k))
    conn.execute(sql, (*a, k + 1))


def _make_room(conn: sqlite3.Connection, k: int) -> None:
    conn.execute("UPDATE audit_log SET seq = -(seq + 1) WHERE seq >= ?", (k,))
    conn.execute("UPDATE audit_log SET seq = -seq WHERE seq < 0")


def insert_chained(conn: sqlite3.Connection, k: int) -> None:
    """Insert a well-formed record at k that links to k-1 (the attacker knows the format)."""
    _make_room(conn, k)
    prev = conn.execute("SELECT record_hash FROM audit_log WHERE seq = ?", (k - 1,)).fetchone()
    prev_hash = prev[0] if prev else GENESIS_HASH
    text = canonical_json({"forged": True})
    t = "2026-01-01T00:00:00.000000Z"
    h = record_hash(k, t, "mallory", "test.op", "x", payload_hash(text), prev_hash)
    conn.execute(
        "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (k, t, "mallory", "test.op", "x", text, payload_hash(text), prev_hash, h),
    )


def insert_naive(conn: sqlite3.Connection, k: int) -> None:
    _make_room(conn, k)
    text = canonical_json({"forged": True})
    conn.execute(
        "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            k,
            "2026-01-01T00:00:00.000000Z",
            "mallory",
            "test.op",
            "x",
            text,
            payload_hash(text),
            "a" * 64,
            "b" * 64,
        ),
    )


TAMPERING: dict[str, list[Callable[[sqlite3.Connection, int], None]]] = {
    "edited": [edit_payload, edit_actor, edit_payload_and_its_hash],
    "deleted": [delete, delete_and_renumber],
    "reordered": [reorder],
    "inserted": [insert_chained, insert_naive],
}


def rewrite_rechained(conn: sqlite3.Connection, k: int) -> None:
    """Change record k's payload and re-hash the chain after it (consistent: only a checkpoint shows it)."""
    prev = GENESIS_HASH
    rows = conn.execute("SELECT * FROM audit_log ORDER BY seq").fetchall()
    for seq, t, actor, action, subject, payload, ph, _p, _h in rows:
        if seq == k:
            payload = canonical_json({"i": "rewritten"})
            ph = payload_hash(payload)
        h = record_hash(seq, t, actor, action, subject, ph, prev)
        conn.execute(
            "UPDATE audit_log SET payload = ?, payload_hash = ?, prev_hash = ?, record_hash = ? "
            "WHERE seq = ?",
            (payload, ph, prev, h, seq),
        )
        prev = h
