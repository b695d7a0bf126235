"""The SQLite store: one database for all state, WAL mode, per-component schema migrations.

Each component (audit log, journal, CVE store, ...) owns its tables and declares them as an ordered list of
migrations; `Store.migrate(component, migrations)` applies the ones not applied yet, in one transaction each.
Commits are durable (`synchronous=FULL`): anything that records an action survives a crash once committed.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from patchbrain import config
from patchbrain.errors import PatchbrainError

_BUSY_TIMEOUT_S = 30.0


class StoreError(PatchbrainError):
    """The store cannot be opened or migrated."""


class Store:
    """A handle on the patchbrain database. Thread-safe: one connection per thread."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else config.db_path()
        self._local = threading.local()
        self._migrated: set[str] = set()
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
        return conn

    def _open(self) -> sqlite3.Connection:
        if str(self.path) != ":memory:":
            # Create the file 0600 before SQLite does (it would use the umask); its -wal and -shm
            # files then get the same mode.
            with contextlib.suppress(FileExistsError):
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        try:
            conn = sqlite3.connect(
                str(self.path), timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=True
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the store at {self.path}: {exc}") from exc
        if str(self.path) != ":memory:":
            with contextlib.suppress(OSError):
                os.chmod(self.path, 0o600)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        return conn

    @contextlib.contextmanager
    def transaction(self, *, immediate: bool = True) -> Iterator[sqlite3.Connection]:
        """A transaction that commits on success and rolls back on any exception.

        `immediate` takes the write lock at the start, so two writers never interleave read-then-write.
        Inside another transaction of this thread it joins that one (the outer one commits or rolls back),
        so a caller can batch many writes into one durable commit.
        """
        conn = self.connection()
        if conn.in_transaction:
            yield conn
            return
        conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def migrate(self, component: str, migrations: Sequence[str]) -> None:
        """Apply the not-yet-applied `migrations` (SQL scripts, in order) of `component`."""
        if component in self._migrated:
            return
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT version FROM schema_version WHERE component = ?", (component,)
            ).fetchone()
            current = int(row["version"]) if row else 0
            if current > len(migrations):
                raise StoreError(
                    f"the store at {self.path} has {component} schema version {current}, newer than this "
                    f"patchbrain knows ({len(migrations)}); upgrade patchbrain"
                )
            for version, script in enumerate(migrations[current:], start=current + 1):
                for statement in _split_sql(script):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_version(component, version) VALUES (?, ?) "
                    "ON CONFLICT(component) DO UPDATE SET version = excluded.version",
                    (component, version),
                )
        self._migrated.add(component)

    def close(self) -> None:
        """Close this thread's connection."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _split_sql(script: str) -> list[str]:
    """Split a migration script into complete statements (trigger bodies with inner `;` stay whole)."""
    statements: list[str] = []
    buf = ""
    for piece in script.split(";"):
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \t\n;"):
                statements.append(buf.strip())
            buf = ""
    if buf.strip(" \t\n;"):
        raise StoreError(f"incomplete SQL statement in a migration: {buf.strip()[:80]!r}")
    return statements
