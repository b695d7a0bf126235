"""The audit log: appends chain, and every kind of tampering is named at the right record."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patchbrain.audit import (
    GENESIS_HASH,
    AuditLog,
    Checkpoint,
)
from patchbrain.errors import BadInput
from patchbrain.keys import KeyStore
from patchbrain.redteam.audit_tamper import (
    TAMPERING,
    attacker,
    edit_actor,
    insert_naive,
    rewrite_rechained,
)
from patchbrain.store import Store


@pytest.fixture(scope="module")
def keystore(tmp_path_factory):
    ks = KeyStore(tmp_path_factory.mktemp("auditkeys") / "keys")
    ks.new("auditor")
    ks.new("stranger")
    return ks


@pytest.fixture(scope="module")
def signer(keystore):
    return keystore.load_private("auditor")


def make_log(path, n, signer=None, every=1000):
    log = AuditLog(Store(path), signer=signer, every=every)
    entries = [("alice", "test.op", f"host{i}", {"i": i, "note": "ünïcode"}) for i in range(1, n + 1)]
    if signer is None:
        log.append_many(entries)
    else:  # one by one, so the automatic checkpoints land every `every` records
        for entry in entries:
            log.append(*entry)
    return log


@pytest.mark.parametrize(
    ("kind", "tamper"),
    [(kind, fn) for kind, fns in TAMPERING.items() for fn in fns],
    ids=[fn.__name__ for fns in TAMPERING.values() for fn in fns],
)
@pytest.mark.parametrize("k", [1, 7, 19])
def test_tampering_is_named_at_the_right_record(tmp_path, keystore, kind, tamper, k):
    path = tmp_path / "a.db"
    log = make_log(path, 20)
    assert log.verify(keystore).ok
    tamper(attacker(path), k)
    result = log.verify(keystore)
    assert not result.ok
    assert result.problem is not None
    assert (result.problem.kind, result.problem.seq) == (kind, k), result.problem


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.data(),
    n=st.integers(min_value=2, max_value=40),
    kind=st.sampled_from(sorted(TAMPERING)),
)
def test_tampering_anywhere_is_named(tmp_path_factory, keystore, data, n, kind):
    path = tmp_path_factory.mktemp("h") / "a.db"
    log = make_log(path, n)
    # deleting the last record is a truncation, which needs a checkpoint (tested below)
    last = n - 1 if kind in ("reordered", "deleted") else n
    k = data.draw(st.integers(min_value=1, max_value=last), label="k")
    tamper = data.draw(st.sampled_from(TAMPERING[kind]), label="tamper")
    tamper(attacker(path), k)
    result = log.verify(keystore)
    assert result.problem is not None
    assert (result.problem.kind, result.problem.seq) == (kind, k), result.problem


def test_truncation_below_a_checkpoint_is_named(tmp_path, keystore, signer):
    path = tmp_path / "a.db"
    log = make_log(path, 20, signer=signer, every=5)
    assert [cp.seq for cp in log.checkpoints()] == [5, 10, 15, 20]
    attacker(path).execute("DELETE FROM audit_log WHERE seq > 12")
    result = log.verify(keystore)
    assert result.problem is not None
    assert (result.problem.kind, result.problem.seq, result.problem.last_seq) == ("truncated", 13, 15)


def test_truncation_of_log_and_checkpoints_is_reported_as_unproven_tail(tmp_path, keystore, signer):
    """Honest limit: with the later checkpoints removed too, the store alone cannot show the truncation."""
    path = tmp_path / "a.db"
    log = make_log(path, 20, signer=signer, every=5)
    conn = attacker(path)
    conn.execute("DELETE FROM audit_log WHERE seq > 12")
    conn.execute("DELETE FROM audit_checkpoint WHERE seq > 12")
    result = log.verify(keystore)
    assert result.ok
    assert (result.last_checkpoint_seq, result.unproven_tail) == (10, 2)
    assert any("cannot be detected" in n for n in result.notes)


def test_an_exported_checkpoint_anchor_catches_that_truncation(tmp_path, keystore, signer):
    path = tmp_path / "a.db"
    log = make_log(path, 20, signer=signer, every=5)
    anchor = Checkpoint.from_dict(log.checkpoints()[-1].to_dict())
    conn = attacker(path)
    conn.execute("DELETE FROM audit_log WHERE seq > 12")
    conn.execute("DELETE FROM audit_checkpoint WHERE seq > 12")
    result = log.verify(keystore, anchors=[anchor])
    assert result.problem is not None
    assert (result.problem.kind, result.problem.seq) == ("truncated", 13)


def test_a_rechained_rewrite_is_caught_by_the_next_checkpoint(tmp_path, keystore, signer):
    path = tmp_path / "a.db"
    log = make_log(path, 20, signer=signer, every=5)
    rewrite_rechained(attacker(path), 7)
    result = log.verify(keystore)
    assert result.problem is not None
    assert result.problem.kind == "rewritten"
    assert result.problem.seq <= 7 <= (result.problem.last_seq or 0)
    assert (result.problem.seq, result.problem.last_seq) == (6, 10)


def test_no_checkpoint_means_the_whole_log_is_unproven(tmp_path, keystore):
    result = make_log(tmp_path / "a.db", 3).verify(keystore)
    assert result.ok
    assert (result.last_checkpoint_seq, result.unproven_tail) == (0, 3)
    assert any("no signed checkpoints" in n for n in result.notes)


def test_checkpoint_with_a_flipped_signature_is_refused(tmp_path, keystore, signer):
    path = tmp_path / "a.db"
    log = make_log(path, 10, signer=signer, every=5)
    sig = log.checkpoints()[0].signature
    bad = sig.replace(sig[40], "A" if sig[40] != "A" else "B", 1)
    attacker(path).execute("UPDATE audit_checkpoint SET signature = ? WHERE n = 1", (bad,))
    result = log.verify(keystore)
    assert result.problem is not None
    assert (result.problem.kind, result.problem.seq) == ("bad-checkpoint", 5)


def test_checkpoint_by_an_unknown_key_proves_nothing(tmp_path, keystore):
    other = KeyStore(tmp_path / "otherkeys")
    other.new("rogue")
    log = make_log(tmp_path / "a.db", 4)
    log.checkpoint(other.load_private("rogue"))
    result = log.verify(keystore)
    assert result.problem is not None
    assert result.problem.kind == "bad-checkpoint"
    assert "not in the key store" in result.problem.detail


def test_deleted_middle_checkpoint_is_named(tmp_path, keystore, signer):
    path = tmp_path / "a.db"
    log = make_log(path, 15, signer=signer, every=5)
    attacker(path).execute("DELETE FROM audit_checkpoint WHERE n = 2")
    result = log.verify(keystore)
    assert result.problem is not None
    assert result.problem.kind == "bad-checkpoint"
    assert "#2 is missing" in result.problem.detail


def test_append_chains_and_reads_back(tmp_path, keystore):
    log = AuditLog(Store(tmp_path / "a.db"))
    assert log.head() == (0, GENESIS_HASH)
    s1 = log.append("alice", "plan.approve", "plan-1", {"b": 2, "a": [1, "x"]})
    s2 = log.append("bob", "wave.start", "wave-1", {})
    assert (s1, s2) == (1, 2)
    r1, r2 = log.records()
    assert r1.payload == {"a": [1, "x"], "b": 2}
    assert r1.prev_hash == GENESIS_HASH
    assert r2.prev_hash == r1.record_hash
    assert log.head() == (2, r2.record_hash)
    assert log.verify(keystore).ok


def test_records_filters(tmp_path):
    times = iter(dt.datetime(2026, 11, 1, tzinfo=dt.UTC) + dt.timedelta(days=d) for d in range(10))
    log = AuditLog(Store(tmp_path / "a.db"), clock=lambda: next(times))
    for action in ["plan.create", "plan.approve", "wave.start", "plan.approve", "wave.end"]:
        log.append("alice", action, "s", {})
    assert [r.seq for r in log.records(action="plan.*")] == [1, 2, 4]
    assert [r.seq for r in log.records(action="plan.approve")] == [2, 4]
    assert [r.seq for r in log.records(since=dt.datetime(2026, 11, 3, tzinfo=dt.UTC))] == [3, 4, 5]
    assert [r.seq for r in log.records(after_seq=3)] == [4, 5]
    assert [r.seq for r in log.records(since=dt.datetime(2026, 11, 2, tzinfo=dt.UTC), action="wave.*")] == [
        3,
        5,
    ]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("", "a.b", "s", {}), "actor"),
        (("al\x1bice", "a.b", "s", {}), "actor"),
        (("alice", "Plan Approve", "s", {}), "action"),
        (("alice", "a.b", "s\n", {}), "subject"),
        (("alice", "a.b", "s", {"x": float("nan")}), "payload"),
        (("alice", "a.b", "s", {"x": object()}), "payload"),
        (("alice", "a.b", "s", {1: 2}), "payload"),
        (("alice", "a.b", "s", [1]), "payload"),
    ],
)
def test_invalid_records_are_refused(tmp_path, args, field):
    log = AuditLog(Store(tmp_path / "a.db"))
    with pytest.raises(BadInput) as exc:
        log.append(*args)
    assert exc.value.field == field
    assert list(log.records()) == []


def test_the_store_refuses_update_and_delete(tmp_path):
    log = make_log(tmp_path / "a.db", 3)
    conn = log.store.connection()
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit_log SET actor = 'x' WHERE seq = 1")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit_log")


def test_automatic_checkpoints(tmp_path, keystore, signer):
    log = AuditLog(Store(tmp_path / "a.db"), signer=signer, every=5)
    for i in range(12):
        log.append("alice", "test.op", "s", {"i": i})
    assert [(cp.n, cp.seq) for cp in log.checkpoints()] == [(1, 5), (2, 10)]
    log.append_many([("alice", "test.op", "s", {})] * 4)  # 13..16 crosses 15: one checkpoint at the batch end
    assert [cp.seq for cp in log.checkpoints()] == [5, 10, 16]
    result = log.verify(keystore)
    assert result.ok
    assert (result.checkpoints_verified, result.last_checkpoint_seq, result.unproven_tail) == (3, 16, 0)


def test_on_demand_checkpoint(tmp_path, keystore, signer):
    log = AuditLog(Store(tmp_path / "a.db"))
    with pytest.raises(BadInput, match="empty"):
        log.checkpoint(signer)
    log.append("alice", "test.op", "s", {})
    cp = log.checkpoint(signer)
    assert (cp.n, cp.seq, cp.key_name) == (1, 1, "auditor")
    assert log.checkpoint(signer) == cp  # nothing new to sign: the same checkpoint
    log.append("alice", "test.op", "s", {})
    assert log.checkpoint(signer).n == 2


def test_checkpoint_from_dict_refuses_bad_fields():
    with pytest.raises(BadInput, match="seq"):
        Checkpoint.from_dict(
            {
                "type": "checkpoint",
                "n": 1,
                "seq": "1",
                "record_hash": "x",
                "time": "t",
                "key_name": "k",
                "key_fingerprint": "f",
                "signature": "s",
            }
        )


@pytest.mark.parametrize("k", [1, 4095, 4096, 4097, 5000])
def test_break_across_fetch_chunks_counts_the_good_prefix(tmp_path, keystore, k):
    """The verifier reads in chunks; a break at any position, chunk edges included, is named exactly."""
    path = tmp_path / "a.db"
    log = make_log(path, 5000)
    edit_actor(attacker(path), k)
    result = log.verify(keystore)
    assert result.problem is not None
    assert (result.problem.kind, result.problem.seq, result.records, result.last_seq) == (
        "edited",
        k,
        k - 1,
        k - 1,
    )


@pytest.mark.parametrize("k", [4096, 4097])
def test_insert_at_a_chunk_edge_is_named(tmp_path, keystore, k):
    path = tmp_path / "a.db"
    log = make_log(path, 5000)
    insert_naive(attacker(path), k)
    result = log.verify(keystore)
    assert result.problem is not None
    assert (result.problem.kind, result.problem.seq) == ("inserted", k)


def test_open_audit_log_uses_the_configured_key(pb_home, monkeypatch, tmp_path):
    from patchbrain.audit import open_audit_log

    ks = KeyStore()
    ks.new("audit-signer", passphrase=b"pw")
    pw = tmp_path / "pw"
    pw.write_text("pw\n")
    monkeypatch.setenv("PATCHBRAIN_AUDIT_KEY", "audit-signer")
    monkeypatch.setenv("PATCHBRAIN_AUDIT_KEY_PASSPHRASE_FILE", str(pw))
    monkeypatch.setenv("PATCHBRAIN_AUDIT_EVERY", "3")
    log = open_audit_log()
    for i in range(7):
        log.append("alice", "test.op", "s", {"i": i})
    assert [(cp.seq, cp.key_name) for cp in log.checkpoints()] == [(3, "audit-signer"), (6, "audit-signer")]
    result = log.verify()
    assert result.ok
    assert (result.last_checkpoint_seq, result.unproven_tail) == (6, 1)


def test_open_audit_log_without_a_key_signs_nothing(pb_home):
    from patchbrain.audit import open_audit_log

    log = open_audit_log()
    log.append("alice", "test.op", "s", {})
    assert log.checkpoints() == []


@pytest.mark.parametrize("value", ["0", "-5", "many"])
def test_bad_checkpoint_interval_is_bad_input(pb_home, monkeypatch, value):
    from patchbrain.audit import open_audit_log

    monkeypatch.setenv("PATCHBRAIN_AUDIT_EVERY", value)
    with pytest.raises(BadInput, match="PATCHBRAIN_AUDIT_EVERY"):
        open_audit_log()


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payloads=st.lists(st.dictionaries(st.text(max_size=8), _json, max_size=5), min_size=1, max_size=5))
def test_any_json_payload_round_trips_and_verifies(tmp_path_factory, keystore, payloads):
    log = AuditLog(Store(tmp_path_factory.mktemp("p") / "a.db"))
    log.append_many(("alice", "test.op", "s", p) for p in payloads)
    assert [r.payload for r in log.records()] == payloads
    assert log.verify(keystore).ok
