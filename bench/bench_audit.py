"""Audit log benchmark: append rate and `audit verify` time for 1,000,000 records.

Measures, in one process and side by side with a plain-SQLite baseline on the same disk and pragmas:
  1. `AuditLog.append()` (the real API: one durable BEGIN IMMEDIATE transaction per record), for a bounded
     time; the rate is measured, the time for 1,000,000 single appends is extrapolated (and labelled so);
  2. `AuditLog.append_many()` (the real API, batches of --batch records per transaction) building the full
     --records log; baseline: executemany of the same rows without hashing;
  3. `AuditLog.verify()` over the full log, and `patchbrain audit verify` as a subprocess (CLI start-up
     included); baseline: a plain full-table scan reading every column.

Usage: python bench/bench_audit.py [--records 1000000] [--batch 10000] [--single-seconds 5] [--dir DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from patchbrain.audit import AuditLog
from patchbrain.keys import KeyStore
from patchbrain.store import Store

PAYLOAD = {"host": "web-017", "package": "openssl", "from": "3.0.13-1~deb12u1", "to": "3.0.15-1~deb12u1"}


def _entry(i: int) -> tuple[str, str, str, dict[str, object]]:
    return ("bench@localhost", "bench.append", f"wave-{i // 1000}", {**PAYLOAD, "i": i})


def _baseline_conn(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE t (seq INTEGER PRIMARY KEY, time TEXT, actor TEXT, action TEXT, subject TEXT, "
        "payload TEXT, payload_hash TEXT, prev_hash TEXT, record_hash TEXT)"
    )
    conn.execute("CREATE INDEX t_action ON t(action)")
    conn.execute("CREATE INDEX t_time ON t(time)")
    return conn


def _baseline_row(i: int) -> tuple[object, ...]:
    actor, action, subject, payload = _entry(i)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return (i, now, actor, action, subject, json.dumps(payload), "", "", "")


def bench_single(workdir: Path, seconds: float) -> tuple[float, float]:
    """(audit appends/s, baseline inserts/s), each one durable transaction per record."""
    log = AuditLog(Store(workdir / "single.db"))
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        log.append(*_entry(n))
        n += 1
    audit_rate = n / (time.perf_counter() - start)

    conn = _baseline_conn(workdir / "single-base.db")
    m, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", _baseline_row(m + 1))
        conn.execute("COMMIT")
        m += 1
    base_rate = m / (time.perf_counter() - start)
    conn.close()
    return audit_rate, base_rate


def bench_batched(workdir: Path, records: int, batch: int) -> tuple[float, float, Path]:
    """(audit build seconds, baseline build seconds, audit db path)."""
    path = workdir / "full.db"
    log = AuditLog(Store(path))
    start = time.perf_counter()
    for first in range(0, records, batch):
        log.append_many(_entry(i) for i in range(first, min(first + batch, records)))
    audit_s = time.perf_counter() - start
    log.store.close()

    conn = _baseline_conn(workdir / "full-base.db")
    start = time.perf_counter()
    for first in range(0, records, batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (_baseline_row(i + 1) for i in range(first, min(first + batch, records))),
        )
        conn.execute("COMMIT")
    base_s = time.perf_counter() - start
    conn.close()
    return audit_s, base_s, path


def bench_verify(workdir: Path, path: Path, records: int) -> tuple[float, float, float]:
    """(AuditLog.verify seconds, CLI seconds, baseline scan seconds)."""
    keys = KeyStore(workdir / "keys")
    start = time.perf_counter()
    result = AuditLog(Store(path)).verify(keys)
    api_s = time.perf_counter() - start
    if not result.ok or result.records != records:
        raise SystemExit(f"verify did not pass on the benchmark log: {result}")

    env = {**os.environ, "PATCHBRAIN_DB": str(path), "PATCHBRAIN_KEYS": str(workdir / "keys")}
    cli = [sys.executable, "-m", "patchbrain", "audit", "verify", "--json"]
    start = time.perf_counter()
    out = subprocess.run(cli, env=env, capture_output=True, text=True, check=False)
    cli_s = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"`patchbrain audit verify` exited {out.returncode}: {out.stderr}")

    conn = sqlite3.connect(path)
    start = time.perf_counter()
    digest = hashlib.sha256()
    for row in conn.execute("SELECT * FROM audit_log ORDER BY seq"):
        digest.update(row[8].encode())
    base_s = time.perf_counter() - start
    conn.close()
    return api_s, cli_s, base_s


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--single-seconds", type=float, default=5.0)
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-audit-") as tmp:
        workdir = Path(tmp)
        print(f"audit benchmark: {args.records:,} records, work dir {workdir} (WAL, synchronous=FULL)")

        a_rate, b_rate = bench_single(workdir, args.single_seconds)
        print(
            f"append() one durable transaction per record: {a_rate:,.0f} records/s "
            f"(baseline plain INSERT+COMMIT: {b_rate:,.0f}/s; ratio {a_rate / b_rate:.2f}) "
            f"-> {args.records:,} single appends would take ~{args.records / a_rate:,.0f} s (extrapolated)"
        )

        audit_s, base_s, path = bench_batched(workdir, args.records, args.batch)
        print(
            f"append_many() batches of {args.batch:,}: {args.records:,} records in {audit_s:.1f} s = "
            f"{args.records / audit_s:,.0f} records/s (baseline executemany without hashing: {base_s:.1f} s; "
            f"ratio {audit_s / base_s:.2f}x the baseline's time)"
        )
        size_mb = sum(p.stat().st_size for p in workdir.glob("full.db*")) / 1e6
        print(f"store size: {size_mb:,.0f} MB for {args.records:,} records")

        api_s, cli_s, scan_s = bench_verify(workdir, path, args.records)
        print(
            f"verify {args.records:,} records: AuditLog.verify() {api_s:.1f} s "
            f"({args.records / api_s:,.0f} records/s); `patchbrain audit verify` {cli_s:.1f} s wall; "
            f"baseline full scan {scan_s:.1f} s (ratio {api_s / scan_s:.2f}x)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
