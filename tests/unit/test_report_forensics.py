"""Reports and forensics bundles from a recorded rollout (journal, approvals, audit log, artifacts)."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import tarfile

import pytest

from patchbrain import cli
from patchbrain.approvals import ApprovalStore, approve, policy_from_env, sign_authorship
from patchbrain.audit import open_audit_log
from patchbrain.journal import Journal
from patchbrain.keys import KeyStore, ensure_lab_keys
from patchbrain.models import PendingUpdate
from patchbrain.planner import UpdateScore
from patchbrain.plans import make_plan, plan_document
from patchbrain.store import Store


@pytest.fixture
def recorded(pb_home, tmp_path):
    """A halted two-host rollout as the executor records it: h1 patched, h2 failed."""
    ks = KeyStore()
    ensure_lab_keys(ks)
    signer = ks.load_private("lab-signing")
    pending = [
        PendingUpdate("h1", "openssl", "3.0.1", "3.0.2", "apt", ("CVE-2024-0001",)),
        PendingUpdate("h2", "sudo", "1.9.1", "1.9.2", "apt", ("CVE-2024-0002", "CVE-2024-0003")),
    ]
    scores = {
        ("h1", "openssl"): UpdateScore(0.8, "KEV-listed | <b>pipe</b>"),
        ("h2", "sudo"): UpdateScore(0.3, "P(exploited) 0.3"),
    }
    plan = make_plan(
        pending,
        inventory="inv",
        spec="1,100%",
        scores=scores,
        ranking="test scores",
        author=signer.public.fingerprint,
        author_name=signer.name,
        releases={"h1": "debian 12", "h2": "debian 12"},
    )
    plan = sign_authorship(plan, signer)
    store = Store()
    approval = approve(
        plan,
        ks.load_private("lab-approver-1"),
        keystore=ks,
        ttl=dt.timedelta(hours=1),
        policy=policy_from_env(),
    )
    ApprovalStore(store).add(approval)
    journal = Journal(store)
    pid = plan.plan_id
    journal.add_plan(pid, inventory="inv", document=plan_document(plan), waves=[list(w) for w in plan.waves])
    audit = open_audit_log(store)
    audit.append("t@x", "plan.create", pid, {"hosts": 2})
    audit.append("t@x", "unrelated.thing", "other", {"n": 1})
    audit.append("t@x", "rollout.start", pid, {"plan_file_sha256": plan.file_sha256})
    art = tmp_path / "artifacts" / f"{pid}-w1"
    (art / f"{pid}-w1-patch").mkdir(parents=True)
    (art / f"{pid}-w1-patch" / "stdout").write_text("PLAY [all]\n")
    (art / f"{pid}-w1-patch" / "ssh_key").write_text("PRIVATE")
    halt = {"kind": "failures", "reason": "1 host(s) of wave 1 did not patch cleanly", "hosts": ["h2"]}
    for i, wave in enumerate(plan.waves):
        journal.set_wave(pid, i, "running", artifacts=str(art))
        for h in wave:
            journal.transition(pid, h, "running")
            ok = h == "h1"
            journal.transition(
                pid, h, "patched" if ok else "failed", detail="openssl 3.0.1 -> 3.0.2" if ok else "x"
            )
            journal.save_snapshot(pid, i, h, "pre", {"schema": 1, "probes": {}})
        # the safety loop's record: the verifier read h1 over its own channel and found the planned version
        verify = {"h1": {"verdict": "ok", "lied": False, "detail": "ok", "differences": []}}
        summary = {"states": {"patched": 1, "failed": 1}, "halt": halt, "safety": {"verify": verify}}
        journal.set_wave(pid, i, "halted", summary=summary)
    journal.set_plan_state(pid, "halted")
    audit.append("t@x", "rollout.end", pid, {"state": "halted", "halt": halt})
    return pid


def test_report_json_and_markdown(recorded, capsys):
    assert cli.main(["report", recorded[:12], "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["plan_id"] == recorded and doc["state"] == "halted"
    assert doc["halt"]["kind"] == "failures" and doc["halt"]["hosts"] == ["h2"]
    assert doc["cves_closed"]["closed"] == {"CVE-2024-0001": ["h1"]}
    assert doc["cves_closed"]["still_open"] == {"CVE-2024-0002": ["h2"], "CVE-2024-0003": ["h2"]}
    assert doc["cves_closed"]["unverified"] == {}
    assert doc["cves_closed"]["source"].startswith("independent verifier")
    assert {h["host"]: h["verifier"] for h in doc["hosts"]} == {"h1": "ok", "h2": None}
    assert [a["approver"] for a in doc["approvals"]] == ["lab-approver-1"]
    assert doc["author"] == "lab-signing"
    assert [r["action"] for r in doc["audit"]] == ["plan.create", "rollout.start", "rollout.end"]
    h1 = next(h for h in doc["hosts"] if h["host"] == "h1")
    assert h1["packages"][0]["explanation"].startswith("KEV-listed") and h1["risk"] == 80.0

    assert cli.main(["report", recorded]) == 0
    md = capsys.readouterr().out
    assert "halted (failures)" in md and "CVE-2024-0001 on 1 host(s)" in md
    assert (
        "KEV-listed \\| \\<b\\>pipe\\</b\\>" in md
    )  # untrusted text cannot break the table or inject markup
    assert cli.main(["report", "nosuchrollout"]) == 2


def test_forensics_bundle(recorded, tmp_path, capsys):
    out = tmp_path / "bundle.tar.gz"
    assert cli.main(["forensics", recorded, "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    with tarfile.open(out) as tar:
        files = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    # every file is in the manifest with its hash
    listed = dict(reversed(line.split("  ", 1)) for line in files["MANIFEST.sha256"].decode().splitlines())
    assert set(listed) == set(files) - {"MANIFEST.sha256"}
    assert all(hashlib.sha256(files[n]).hexdigest() == h for n, h in listed.items())
    for name in (
        "plan/plan.json",
        "plan/plan.yaml",
        "plan/approvals.jsonl",
        "keys/lab-approver-1.pub",
        "keys/lab-signing.pub",
        "audit/slice.jsonl",
        "audit/chain.jsonl",
        "audit/verify.json",
        "journal/history.json",
        "posture/w1/h1-pre.json",
    ):
        assert name in files, name
    assert json.loads(files["plan/plan-file.json"])["matches_approved_file"] is True
    assert json.loads(files["plan/approvals-check.json"])["ok_now"] is True
    assert any(n.endswith("-w1-patch/stdout") for n in files)
    assert not any(n.endswith("ssh_key") for n in files)  # never ship key material
    slice_ = [json.loads(line) for line in files["audit/slice.jsonl"].decode().splitlines()]
    assert [r["action"] for r in slice_] == ["plan.create", "rollout.start", "rollout.end"]
    # the chain covers the gap (the unrelated record: hash only, no payload) and links up
    chain = [json.loads(line) for line in files["audit/chain.jsonl"].decode().splitlines()]
    assert [c["seq"] for c in chain] == list(range(chain[0]["seq"], chain[-1]["seq"] + 1))
    assert all(b["prev_hash"] == a["record_hash"] for a, b in itertools.pairwise(chain))
    assert all(c["hash_ok"] and "payload" not in c for c in chain)
    # evidence is never overwritten
    assert cli.main(["forensics", recorded, "--out", str(out)]) == 2


def test_patched_hosts_count_as_closed_only_when_the_verifier_agrees(recorded):
    """The journal says patched; a CVE is closed only on the verifier's reading, never on the self-report."""
    from patchbrain.journal import Journal
    from patchbrain.report import build_report
    from patchbrain.store import Store

    store = Store()
    journal = Journal(store)
    record = journal.plan(recorded)
    assert record is not None
    for verdict, bucket in (("disagrees", "still_open"), (None, "unverified"), ("ok", "closed")):
        verify = {"h1": {"verdict": verdict}} if verdict else {}
        journal.set_wave(recorded, 0, "halted", summary={"states": {}, "safety": {"verify": verify}})
        doc = build_report(store, recorded)["cves_closed"]
        assert doc[bucket].get("CVE-2024-0001") == ["h1"], (verdict, doc)
        others = {"closed", "unverified", "still_open"} - {bucket}
        assert all("CVE-2024-0001" not in doc[b] for b in others), (verdict, doc)


def _selinux_doc(host: str, *, marker: bool) -> dict:
    from posture_helpers import document, recorded_getenforce

    from patchbrain.lab.shim import MARKER_TEXT

    probes = {"getenforce": recorded_getenforce("enforcing")}
    if marker:
        probes["selinux_simulated"] = MARKER_TEXT
    return document(host, **probes)


@pytest.fixture
def simulated(recorded):
    """The recorded rollout, with h1's verifier reading carrying the simulated-SELinux marker and h2's
    post-flight snapshot not."""
    journal = Journal(Store())
    journal.save_snapshot(recorded, 0, "h1", "verify", _selinux_doc("h1", marker=True))
    journal.save_snapshot(recorded, 0, "h2", "post", _selinux_doc("h2", marker=False))
    return recorded


def test_report_labels_hosts_whose_selinux_was_read_as_simulated(simulated, capsys):
    assert cli.main(["report", simulated, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["selinux_simulated"] == ["h1"]
    by_host = {h["host"]: h["selinux"] for h in doc["hosts"]}
    assert by_host["h1"] == {"mode": "enforcing", "config_mode": None, "simulated": True}
    assert by_host["h2"]["simulated"] is False and by_host["h2"]["mode"] == "enforcing"
    assert cli.main(["report", simulated]) == 0
    md = capsys.readouterr().out
    top = md.split("## Waves")[0]
    assert "**SELinux is simulated on 1 host(s)** (h1)" in top
    assert "| 1 | h1 | patched | enforcing (simulated) |" in md
    assert "| 1 | h2 | failed | enforcing |" in md


def test_report_without_simulated_hosts_has_no_simulated_line(recorded, capsys):
    assert cli.main(["report", recorded, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["selinux_simulated"] == [] and all(h["selinux"]["simulated"] is False for h in doc["hosts"])
    assert cli.main(["report", recorded]) == 0
    assert "simulated" not in capsys.readouterr().out


def test_forensics_bundle_says_which_hosts_were_simulated(simulated, tmp_path, capsys):
    out = tmp_path / "bundle.tar.gz"
    assert cli.main(["forensics", simulated, "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["selinux_simulated"] == ["h1"]
    with tarfile.open(out) as tar:
        files = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    label = json.loads(files["posture/selinux.json"])
    assert label["simulated_hosts"] == ["h1"] and label["hosts"]["h1"]["simulated"] is True
    assert "/etc/selinux/SIMULATED" in label["note"]
    assert "posture/selinux.json" in files["MANIFEST.sha256"].decode()
    assert cli.main(["forensics", simulated, "--out", str(tmp_path / "b2.tar.gz")]) == 0
    assert "SELinux simulated on h1" in capsys.readouterr().out


def test_plan_snapshots_can_pick_out_only_the_selinux_probes(simulated):
    from patchbrain.posture.snapshot import SELINUX_PROBES

    journal = Journal(Store())
    journal.save_snapshot(simulated, 0, "h2", "bake", {"schema": 1, "host": "h2", "probes": "not an object"})
    full = journal.plan_snapshots(simulated)
    picked = journal.plan_snapshots(simulated, probes=tuple(SELINUX_PROBES))
    assert [k[:3] for k in full] == [k[:3] for k in picked]
    for (*_, doc), (*_, small) in zip(full, picked, strict=True):
        want = {k: doc.get(k) for k in ("schema", "host", "collected_at")}
        if isinstance(doc.get("probes"), dict):
            want["probes"] = {n: p for n, p in doc["probes"].items() if n in SELINUX_PROBES}
        assert small == want
    assert any(doc["probes"].get("selinux_simulated") for *_, doc in picked if "probes" in doc)
