"""The SQLite store: WAL mode, durable commits, per-component migrations applied once and in order."""

from __future__ import annotations

import sqlite3

import pytest

from patchbrain.store import Store, StoreError


def test_store_uses_wal_and_full_sync(tmp_path):
    store = Store(tmp_path / "s.db")
    conn = store.connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_migrations_apply_once_in_order(tmp_path):
    path = tmp_path / "s.db"
    v1 = ["CREATE TABLE t (a INTEGER)"]
    Store(path).migrate("demo", v1)
    Store(path).migrate("demo", [*v1, "ALTER TABLE t ADD COLUMN b TEXT"])
    cols = [r[1] for r in Store(path).connection().execute("PRAGMA table_info(t)")]
    assert cols == ["a", "b"]


def test_newer_schema_than_code_is_refused(tmp_path):
    path = tmp_path / "s.db"
    Store(path).migrate("demo", ["CREATE TABLE t (a INTEGER)", "CREATE TABLE u (a INTEGER)"])
    with pytest.raises(StoreError, match="newer"):
        Store(path).migrate("demo", ["CREATE TABLE t (a INTEGER)"])


def test_transaction_rolls_back_on_error(tmp_path):
    store = Store(tmp_path / "s.db")
    store.migrate("demo", ["CREATE TABLE t (a INTEGER)"])
    with pytest.raises(ZeroDivisionError), store.transaction() as conn:
        conn.execute("INSERT INTO t VALUES (1)")
        _ = 1 / 0
    assert store.connection().execute("SELECT count(*) FROM t").fetchone()[0] == 0


def test_migrations_may_hold_triggers_with_inner_semicolons(tmp_path):
    store = Store(tmp_path / "s.db")
    store.migrate(
        "demo",
        [
            """
            CREATE TABLE t (a INTEGER);
            -- a comment; with a semicolon
            CREATE TRIGGER t_no_delete BEFORE DELETE ON t
            BEGIN SELECT RAISE(ABORT, 'no; never'); END;
            INSERT INTO t VALUES (1)
            """
        ],
    )
    conn = store.connection()
    with pytest.raises(sqlite3.IntegrityError, match="no; never"):
        conn.execute("DELETE FROM t")
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 1


def test_incomplete_migration_statement_is_refused(tmp_path):
    with pytest.raises(StoreError, match="incomplete"):
        Store(tmp_path / "s.db").migrate("demo", ["CREATE TRIGGER x BEFORE DELETE ON t BEGIN SELECT 1"])


def test_store_files_are_private(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        store = Store(tmp_path / "s.db")
        store.migrate("demo", ["CREATE TABLE t (a INTEGER)"])
        with store.transaction() as conn:
            conn.execute("INSERT INTO t VALUES (1)")
        for suffix in ("", "-wal", "-shm"):
            path = tmp_path / f"s.db{suffix}"
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    finally:
        os.umask(old)


def test_nested_transaction_joins_the_outer_one(tmp_path):
    store = Store(tmp_path / "s.db")
    store.migrate("t", ["CREATE TABLE t (x INTEGER)"])
    with store.transaction() as outer:
        for i in range(3):
            with store.transaction() as inner:
                assert inner is outer
                inner.execute("INSERT INTO t VALUES (?)", (i,))
        assert outer.in_transaction  # nothing committed yet: the outer transaction commits once
    assert [r[0] for r in store.connection().execute("SELECT x FROM t ORDER BY x")] == [0, 1, 2]

    with pytest.raises(RuntimeError), store.transaction():
        with store.transaction() as inner:
            inner.execute("INSERT INTO t VALUES (9)")
        raise RuntimeError("boom")
    assert [r[0] for r in store.connection().execute("SELECT x FROM t ORDER BY x")] == [0, 1, 2]
