"""`patchbrain keys` and `patchbrain audit`: output shapes and exit codes, through the real CLI."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from patchbrain import cli
from patchbrain.audit import AuditLog
from patchbrain.store import Store


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_keys_new_list_export(pb_home, capsys):
    code, out, _ = run(capsys, "keys", "new", "ops", "--json")
    assert code == 0
    created = json.loads(out)
    assert created["name"] == "ops"
    assert created["fingerprint"].startswith("sha256:")
    code, out, _ = run(capsys, "keys", "list", "--json")
    listed = json.loads(out)
    assert listed["dir"] == str(pb_home / "keys")
    (key,) = listed["keys"]
    assert key["fingerprint"] == created["fingerprint"]
    assert (key["has_private"], key["encrypted"], key["problem"]) == (True, False, None)
    code, out, _ = run(capsys, "keys", "export-public", "ops")
    assert code == 0
    assert json.loads(out)["fingerprint"] == created["fingerprint"]
    assert "PRIVATE" not in out


def test_keys_new_twice_is_bad_input(pb_home, capsys):
    assert run(capsys, "keys", "new", "ops")[0] == 0
    code, _, err = run(capsys, "keys", "new", "ops")
    assert code == 2
    assert "already exists" in err


def test_keys_passphrase_file(pb_home, capsys, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    assert run(capsys, "keys", "new", "sealed", "--passphrase-file", str(pw))[0] == 0
    listed = json.loads(run(capsys, "keys", "list", "--json")[1])
    assert listed["keys"][0]["encrypted"] is True
    empty = tmp_path / "empty"
    empty.write_text("\n")
    code, _, err = run(capsys, "keys", "new", "other", "--passphrase-file", str(empty))
    assert code == 2
    assert "empty" in err


def test_keys_import_public(pb_home, capsys, tmp_path):
    run(capsys, "keys", "new", "ops")
    exported = run(capsys, "keys", "export-public", "ops")[1]
    (pb_home / "keys" / "ops.pub").unlink()
    (pb_home / "keys" / "ops.key").unlink()
    f = tmp_path / "ops.pub.json"
    f.write_text(exported)
    code, out, _ = run(capsys, "keys", "import-public", str(f), "--json")
    assert code == 0
    assert json.loads(out)["name"] == "ops"
    assert json.loads(run(capsys, "keys", "list", "--json")[1])["keys"][0]["has_private"] is False


def _seed(n=6):
    log = AuditLog(Store())
    for i in range(n):
        log.append("alice", "plan.approve" if i % 2 else "wave.start", f"s{i}", {"i": i})
    return log


def test_audit_verify_ok_and_json_shape(pb_home, capsys):
    _seed()
    run(capsys, "keys", "new", "auditor")
    assert run(capsys, "audit", "checkpoint", "--key", "auditor")[0] == 0
    code, out, _ = run(capsys, "audit", "verify", "--json")
    assert code == 0
    result = json.loads(out)
    assert set(result) == {
        "ok",
        "records",
        "last_seq",
        "last_hash",
        "checkpoints",
        "checkpoints_verified",
        "last_checkpoint_seq",
        "unproven_tail",
        "problem",
        "notes",
    }
    assert (result["ok"], result["records"], result["last_checkpoint_seq"], result["problem"]) == (
        True,
        6,
        6,
        None,
    )
    code, out, _ = run(capsys, "audit", "verify")
    assert code == 0
    assert "intact" in out


def test_audit_verify_exit_3_names_the_record(pb_home, capsys):
    _seed()
    conn = sqlite3.connect(pb_home / "patchbrain.db", isolation_level=None)
    conn.execute("DROP TRIGGER audit_log_no_delete")
    conn.execute("DELETE FROM audit_log WHERE seq = 3")
    code, out, _ = run(capsys, "audit", "verify")
    assert code == 3
    assert "deleted at seq 3" in out
    code, out, _ = run(capsys, "audit", "verify", "--json")
    assert code == 3
    assert json.loads(out)["problem"] == {
        "kind": "deleted",
        "seq": 3,
        "last_seq": 3,
        "detail": "record 3 is missing: the log jumps from seq 2 to 4",
    }


def test_audit_verify_help_mentions_exit_3(capsys):
    with pytest.raises(SystemExit):
        cli.main(["audit", "verify", "--help"])
    assert "3 drift found" in capsys.readouterr().out.replace("\n", " ")


def test_audit_show_filters(pb_home, capsys):
    _seed()
    code, out, _ = run(capsys, "audit", "show", "--action", "plan.*", "--json")
    assert code == 0
    assert [r["seq"] for r in json.loads(out)] == [2, 4, 6]
    code, out, _ = run(capsys, "audit", "show", "--since", "1h", "--after-seq", "4")
    assert [line.split()[0] for line in out.splitlines()] == ["5", "6"]
    code, _, err = run(capsys, "audit", "show", "--since", "yesterday-ish")
    assert code == 2
    assert "--since" in err


def test_audit_show_escapes_control_characters(pb_home, capsys):
    AuditLog(Store()).append("alice", "test.op", "s", {"x": "\x1b]0;pwned\x07", "y": "\x9b31m"})
    out = run(capsys, "audit", "show")[1]
    assert "\x1b" not in out
    assert "\x07" not in out
    assert "\x9b" not in out


def test_audit_export_jsonl_and_anchor(pb_home, capsys, tmp_path):
    _seed(6)
    run(capsys, "keys", "new", "auditor")
    run(capsys, "audit", "checkpoint", "--key", "auditor")
    code, out, _ = run(capsys, "audit", "export", "--format", "jsonl")
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["type"] for line in lines] == ["record"] * 6 + ["checkpoint"]
    assert [line["seq"] for line in lines[:6]] == [1, 2, 3, 4, 5, 6]
    anchor = tmp_path / "siem.jsonl"
    anchor.write_text(out)
    # the attacker truncates the log and removes the store's own checkpoint
    conn = sqlite3.connect(pb_home / "patchbrain.db", isolation_level=None)
    for t in ("audit_log_no_delete", "audit_checkpoint_no_delete"):
        conn.execute(f"DROP TRIGGER {t}")
    conn.execute("DELETE FROM audit_log WHERE seq > 4")
    conn.execute("DELETE FROM audit_checkpoint")
    assert run(capsys, "audit", "verify")[0] == 0  # the store alone cannot tell ...
    code, out, _ = run(capsys, "audit", "verify", "--anchor", str(anchor), "--json")
    assert code == 3  # ... the exported checkpoint can
    assert json.loads(out)["problem"]["kind"] == "truncated"
    code, out, _ = run(capsys, "audit", "export", "--after-seq", "2", "--no-checkpoints")
    assert [json.loads(line)["seq"] for line in out.splitlines()] == [3, 4]


def test_audit_checkpoint_refuses_insecure_key(pb_home, capsys):
    _seed(1)
    run(capsys, "keys", "new", "auditor")
    os.chmod(pb_home / "keys" / "auditor.key", 0o644)
    code, _, err = run(capsys, "audit", "checkpoint", "--key", "auditor")
    assert code == 5
    assert "0644" in err


def test_keys_sign_and_verify(pb_home, capsys, tmp_path):
    run(capsys, "keys", "new", "ops")
    run(capsys, "keys", "new", "other")
    doc = tmp_path / "plan.json"
    doc.write_text('{"plan": 1}\n')
    sig = tmp_path / "plan.sig"
    assert run(capsys, "keys", "sign", "ops", str(doc), "--out", str(sig))[0] == 0
    code, out, _ = run(capsys, "keys", "verify", "ops", str(doc), str(sig), "--json")
    assert code == 0
    assert json.loads(out)["ok"] is True
    assert run(capsys, "keys", "verify", "other", str(doc), str(sig))[0] == 5
    doc.write_text('{"plan": 2}\n')
    assert run(capsys, "keys", "verify", "ops", str(doc), str(sig))[0] == 5
    sig.write_bytes(sig.read_bytes()[:100])
    code, _, err = run(capsys, "keys", "verify", "ops", str(doc), str(sig))
    assert code == 2
    assert "truncated or garbled" in err
