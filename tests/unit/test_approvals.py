"""Approvals: quorum for large plans, no self-approval, any changed byte refused, forged or truncated
signatures of either kind refused, expiry; the CLI's approve and plan --author-key."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json

import pytest

from patchbrain import cli
from patchbrain.approvals import (
    Approval,
    ApprovalPolicy,
    ApprovalRefused,
    append_sidecar,
    approve,
    check_approvals,
    read_sidecar,
    require_approved,
    sidecar_path,
    sign_authorship,
)
from patchbrain.keys import KeyStore
from patchbrain.models import PendingUpdate
from patchbrain.plans import PlanChanged, dump_plan, load_plan, make_plan

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
POLICY = ApprovalPolicy()
TTL = dt.timedelta(hours=8)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    ks = KeyStore(tmp_path_factory.mktemp("keys"))
    for name in ("author", "alice", "bob"):
        ks.new(name)
    return ks


def _plan(keys, n_hosts, tmp_path, name="plan.yaml"):
    pending = [
        PendingUpdate(f"h{i:04d}", "openssl", "3.0.1", "3.0.2", "apt", ("CVE-2024-0001",))
        for i in range(n_hosts)
    ]
    author = keys.load_private("author")
    plan = make_plan(
        pending,
        inventory="inv",
        spec="1,10%,100%",
        now=NOW,
        author=author.public.fingerprint,
        author_name="author",
    )
    plan = sign_authorship(plan, author)
    path = tmp_path / name
    path.write_text(dump_plan(plan))
    return load_plan(path), path


def _approve(keys, plan, name, now=NOW, ttl=TTL):
    return approve(plan, keys.load_private(name), keystore=keys, ttl=ttl, policy=POLICY, now=now)


def test_a_small_plan_needs_one_approval(keys, tmp_path):
    plan, _ = _plan(keys, 3, tmp_path)
    with pytest.raises(ApprovalRefused, match="unapproved"):
        require_approved(plan, [], keystore=keys, policy=POLICY, now=NOW)
    verdict = require_approved(plan, [_approve(keys, plan, "alice")], keystore=keys, policy=POLICY, now=NOW)
    assert [v["approver"] for v in verdict.valid] == ["alice"] and verdict.author == "author"
    assert ApprovalRefused.exit_code == 5


def test_a_500_host_plan_with_one_approval_is_refused(keys, tmp_path):
    plan, _ = _plan(keys, 500, tmp_path)
    alice = _approve(keys, plan, "alice")
    with pytest.raises(ApprovalRefused, match=r"1 valid approval\(s\), needs 2.*500 hosts or more"):
        require_approved(plan, [alice], keystore=keys, policy=POLICY, now=NOW)
    # the same approver twice is still one approver
    again = _approve(keys, plan, "alice", now=NOW + dt.timedelta(minutes=1))
    with pytest.raises(ApprovalRefused, match="needs 2"):
        require_approved(
            plan, [alice, again], keystore=keys, policy=POLICY, now=NOW + dt.timedelta(minutes=2)
        )
    bob = _approve(keys, plan, "bob")
    verdict = require_approved(plan, [alice, bob], keystore=keys, policy=POLICY, now=NOW)
    assert sorted(v["approver"] for v in verdict.valid) == ["alice", "bob"]
    # 499 hosts: one is enough; the threshold is configurable
    small, _ = _plan(keys, 499, tmp_path, "small.yaml")
    require_approved(small, [_approve(keys, small, "alice")], keystore=keys, policy=POLICY, now=NOW)
    strict = dataclasses.replace(POLICY, quorum_hosts=10)
    with pytest.raises(ApprovalRefused, match="needs 2"):
        require_approved(small, [_approve(keys, small, "alice")], keystore=keys, policy=strict, now=NOW)


def test_self_approval_is_refused(keys, tmp_path):
    plan, _ = _plan(keys, 3, tmp_path)
    with pytest.raises(ApprovalRefused, match="authored this plan"):
        _approve(keys, plan, "author")
    # an approval the author signs by hand (bypassing approve()) is refused at the check too
    honest = _approve(keys, plan, "alice")
    doc = json.loads(honest.statement)
    author = keys.load_private("author")
    doc.update(approver="author", key=author.public.fingerprint)
    from patchbrain.keys import sign
    from patchbrain.plans import canonical_json

    statement = canonical_json(doc)
    forged = Approval(statement, sign(author, statement.encode()).decode())
    with pytest.raises(ApprovalRefused, match="authored this plan"):
        check_approvals(plan, [honest, forged], keystore=keys, policy=POLICY, now=NOW)


def test_a_plan_without_a_signed_author_is_refused(keys, tmp_path):
    plan, _path = _plan(keys, 3, tmp_path)
    unsigned = dataclasses.replace(plan, authorship=None, source_sha256=None)
    with pytest.raises(ApprovalRefused, match="no authorship signature"):
        _approve(keys, unsigned, "alice")
    anonymous = make_plan([PendingUpdate("h1", "openssl", "1", "2", "apt")], inventory="", spec="1", now=NOW)
    with pytest.raises(ApprovalRefused, match="no signed author"):
        _approve(keys, anonymous, "alice")
    relaxed = dataclasses.replace(POLICY, require_author=False)
    ok = approve(anonymous, keys.load_private("alice"), keystore=keys, ttl=TTL, policy=relaxed, now=NOW)
    require_approved(anonymous, [ok], keystore=keys, policy=relaxed, now=NOW)


def test_a_one_byte_change_after_approval_is_refused(keys, tmp_path):
    plan, path = _plan(keys, 3, tmp_path)
    approval = _approve(keys, plan, "alice")
    append_sidecar(sidecar_path(path), approval)
    original = path.read_bytes()
    require_approved(load_plan(path), read_sidecar(sidecar_path(path)), keystore=keys, policy=POLICY, now=NOW)

    # a byte of content (a version digit): the content no longer hashes to the plan id
    content = original.replace(b'version: "3.0.2"', b'version: "3.0.3"', 1)
    assert len(content) == len(original) and content != original
    path.write_bytes(content)
    with pytest.raises(PlanChanged, match="changed after it was made"):
        load_plan(path)

    # a byte that changes no content (one more newline): the file's bytes no longer match the approval
    path.write_bytes(original + b"\n")
    changed = load_plan(path)
    assert changed.plan_id == plan.plan_id
    with pytest.raises(ApprovalRefused, match="plan file changed since alice approved"):
        require_approved(changed, [approval], keystore=keys, policy=POLICY, now=NOW)

    # a re-made plan (another id) with the old approval beside it
    from patchbrain.plans import with_id

    other = with_id(dataclasses.replace(plan, created=NOW + dt.timedelta(seconds=1)))
    other = sign_authorship(other, keys.load_private("author"))
    with pytest.raises(ApprovalRefused, match="changed since it was approved"):
        require_approved(other, [approval], keystore=keys, policy=POLICY, now=NOW)


def _tamper(signature: str, part: str, how: str) -> str:
    doc = json.loads(signature)
    raw = bytearray(base64.b64decode(doc[part]))
    if how == "flip":
        raw[len(raw) // 2] ^= 0x01
    else:
        raw = raw[:-7]
    doc[part] = base64.b64encode(bytes(raw)).decode()
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


@pytest.mark.parametrize("part", ["ed25519", "ml-dsa-65"])
@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_forged_or_truncated_signatures_of_either_kind_are_refused(keys, tmp_path, part, how):
    plan, _ = _plan(keys, 3, tmp_path)
    good = _approve(keys, plan, "alice")
    bad = Approval(good.statement, _tamper(good.signature, part, how))
    with pytest.raises(ApprovalRefused, match="does not verify" if how == "flip" else "truncated"):
        require_approved(plan, [bad], keystore=keys, policy=POLICY, now=NOW)
    # a bad signature refuses the plan even beside a quorum of good ones
    bob = _approve(keys, plan, "bob")
    with pytest.raises(ApprovalRefused):
        require_approved(plan, [good, bob, bad], keystore=keys, policy=POLICY, now=NOW)
    # the whole signature cut short
    with pytest.raises(ApprovalRefused, match="truncated or garbled"):
        require_approved(
            plan, [Approval(good.statement, good.signature[:-40])], keystore=keys, policy=POLICY, now=NOW
        )
    # and a statement edited after signing (longer expiry) no longer verifies
    doc = json.loads(good.statement)
    doc["expires_at"] = "2099-01-01T00:00:00+00:00"
    from patchbrain.plans import canonical_json

    with pytest.raises(ApprovalRefused, match="does not verify"):
        require_approved(
            plan, [Approval(canonical_json(doc), good.signature)], keystore=keys, policy=POLICY, now=NOW
        )


def test_expired_approvals_do_not_count(keys, tmp_path):
    plan, _ = _plan(keys, 3, tmp_path)
    approval = _approve(keys, plan, "alice", ttl=dt.timedelta(hours=1))
    require_approved(plan, [approval], keystore=keys, policy=POLICY, now=NOW + dt.timedelta(minutes=59))
    with pytest.raises(ApprovalRefused, match="expired at"):
        require_approved(plan, [approval], keystore=keys, policy=POLICY, now=NOW + dt.timedelta(hours=1))
    # the policy caps an approval's life: a shorter max TTL than the one signed makes it not count
    short = dataclasses.replace(POLICY, max_ttl=dt.timedelta(minutes=30))
    with pytest.raises(ApprovalRefused, match="older than the policy"):
        require_approved(plan, [approval], keystore=keys, policy=short, now=NOW + dt.timedelta(minutes=5))
    with pytest.raises(Exception, match="--ttl"):
        _approve(keys, plan, "alice", ttl=dt.timedelta(hours=25))


def _record_lab_discovery() -> None:
    """The lab's recorded discovery (fixture), stored as the last discovery so `patchbrain plan` finds it."""
    from pathlib import Path

    from patchbrain.executor.discovery import parse_run_data
    from patchbrain.journal import Journal
    from patchbrain.store import Store

    fixture = Path(__file__).resolve().parent.parent / "fixtures" / "discovery" / "lab-discover.json"
    found = parse_run_data({"patchbrain_facts": json.loads(fixture.read_text())})
    Journal(Store()).add_discovery(
        inventory="/nonexistent/inventory.yml",
        artifacts="a",
        document={"hosts": [dataclasses.asdict(d) for d in found], "problems": {}},
    )


def test_cli_plan_author_approve_and_self_approval(pb_home, capsys, tmp_path, monkeypatch):
    _record_lab_discovery()
    ks = KeyStore()
    for name in ("lab-signing", "lab-approver-1"):
        ks.new(name)
    out = tmp_path / "plan.yaml"
    assert cli.main(["plan", "--waves", "1,100%", "--out", str(out), "--author-key", "lab-signing"]) == 0
    capsys.readouterr()
    assert cli.main(["plan", "show", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["author_name"] == "lab-signing" and doc["authorship"]
    monkeypatch.setenv("COLUMNS", "250")
    assert cli.main(["plan", "show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "canary" in shown and "CVE-2019-14287" in shown

    assert cli.main(["approve", str(out), "--key", "lab-signing"]) == 5
    assert "cannot approve" in capsys.readouterr().err
    assert cli.main(["approve", str(out), "--key", "lab-approver-1", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["ready"] is True and res["valid_approvers"] == ["lab-approver-1"]
    assert len(read_sidecar(sidecar_path(out))) == 1
    from patchbrain.audit import AuditLog
    from patchbrain.store import Store

    actions = [r.action for r in AuditLog(Store()).records(action="plan.*")]
    assert actions == ["plan.create", "plan.approve.refused", "plan.approve"]


def test_cli_plan_ranks_with_the_prioritizer_scores(pb_home, capsys, tmp_path):
    _record_lab_discovery()
    scores = tmp_path / "scores.csv"
    scores.write_text("cve_id,score\nCVE-2019-14287,0.5\n")
    out = tmp_path / "plan.yaml"
    assert cli.main(["plan", "--waves", "1,100%", "--out", str(out), "--cve-scores", str(scores)]) == 0
    plan = load_plan(out)
    assert plan.ranking.startswith("prioritizer: CVE scores from scores.csv")
    pkg = plan.hosts["h01"].packages[0]
    # p_eff 0.5, host weight (3+1)/6 * (3+1)/6 = 0.444: risk 22.22 of 100
    assert pkg.risk == pytest.approx(22.22, abs=0.01)
    assert "P(any CVE exploited) 0.500" in pkg.explanation and "CVE-2019-14287 0.500" in pkg.explanation
    scores.write_text("cve_id,score\nCVE-2019-14287,1.5\n")
    assert cli.main(["plan", "--cve-scores", str(scores)]) == 2
    assert "scores.csv:2" in capsys.readouterr().err


def test_re_planning_into_the_same_file_moves_the_old_approvals_aside(pb_home, capsys, tmp_path):
    _record_lab_discovery()
    ks = KeyStore()
    ensure = ("lab-signing", "lab-approver-1")
    for name in ensure:
        ks.new(name)
    out = tmp_path / "plan.yaml"
    args = ["plan", "--waves", "1,100%", "--out", str(out), "--author-key", "lab-signing"]
    assert cli.main(args) == 0
    assert cli.main(["approve", str(out), "--key", "lab-approver-1"]) == 0
    assert cli.main(args) == 0  # a new plan (new id) in the same file
    assert not sidecar_path(out).exists()
    assert len(list(tmp_path.glob("plan.yaml.approvals.replaced-*"))) == 1
    assert cli.main(["approve", str(out), "--key", "lab-approver-1"]) == 0
    plan = load_plan(out)
    require_approved(plan, read_sidecar(sidecar_path(out)), keystore=ks, policy=POLICY)
