"""Real processes: concurrent writers serialize, and a writer killed mid-append leaves a log that verifies."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from patchbrain.audit import AuditLog
from patchbrain.keys import KeyStore
from patchbrain.store import Store

WRITER = """
import sys
from patchbrain.audit import AuditLog
from patchbrain.store import Store
log = AuditLog(Store(sys.argv[1]))
name, count = sys.argv[2], int(sys.argv[3])
big = "x" * 4000  # records span several pages, so a kill can land inside a page write
i = 0
while count < 0 or i < count:
    log.append(name, "test.write", f"{name}-{i}", {"i": i, "pad": big})
    i += 1
"""


def _count(path) -> int:
    conn = sqlite3.connect(path, timeout=30)
    try:
        return int(conn.execute("SELECT count(*) FROM audit_log").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def test_concurrent_writer_processes_serialize(tmp_path):
    path = tmp_path / "a.db"
    AuditLog(Store(path))  # create the schema once
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"w{n}", "60"]) for n in range(3)]
    for p in procs:
        assert p.wait(timeout=120) == 0
    log = AuditLog(Store(path))
    result = log.verify(KeyStore(tmp_path / "keys"))
    assert result.ok, result.problem
    assert result.records == 180
    per_writer = {}
    for r in log.records():
        per_writer.setdefault(r.actor, []).append(r.payload["i"])
    assert {k: v for k, v in per_writer.items()} == {f"w{n}": list(range(60)) for n in range(3)}


@pytest.mark.parametrize("round_", range(3))
def test_sigkill_mid_append_leaves_a_log_that_verifies(tmp_path, round_):
    path = tmp_path / "a.db"
    AuditLog(Store(path))
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "victim", "-1"])
    try:
        target = 20 + 15 * round_
        deadline = time.monotonic() + 60
        while _count(path) < target:
            assert proc.poll() is None, "the writer died on its own"
            assert time.monotonic() < deadline, "the writer made no progress"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    log = AuditLog(Store(path))
    before = log.verify(KeyStore(tmp_path / "keys"))
    assert before.ok, before.problem
    assert before.records >= target
    # the log keeps working after the crash
    seq = log.append("survivor", "test.write", "after-crash", {})
    assert seq == before.last_seq + 1
    assert log.verify(KeyStore(tmp_path / "keys")).ok


STUCK_WRITER = """
import sys, time
from patchbrain.audit import AuditLog
from patchbrain.store import Store
log = AuditLog(Store(sys.argv[1]))
for i in range(5):
    log.append("w", "test.write", "before", {"i": i})

def stuck(self, conn, first, last):  # runs inside append's transaction, after the INSERT
    print("inside", flush=True)
    time.sleep(600)

AuditLog._auto_checkpoint = stuck
log.append("w", "test.write", "never-committed", {})
"""


def test_sigkill_inside_the_append_transaction_loses_only_that_record(tmp_path):
    path = tmp_path / "a.db"
    AuditLog(Store(path))
    with subprocess.Popen(
        [sys.executable, "-c", STUCK_WRITER, str(path)], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "inside"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    log = AuditLog(Store(path))
    result = log.verify(KeyStore(tmp_path / "keys"))
    assert result.ok, result.problem
    assert [r.subject for r in log.records()] == ["before"] * 5
    assert log.append("w", "test.write", "after", {}) == 6
