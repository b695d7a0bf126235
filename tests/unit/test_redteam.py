"""The red-team suite without hosts: every available host-less scenario passes, each fails when the defence
it relies on is switched off through the test-only hook (so it cannot pass vacuously), unavailable ones are
reported as such and never pass, and production commands ignore the hook."""

from __future__ import annotations

import json

import pytest

from patchbrain import cli
from patchbrain.redteam import registry
from patchbrain.redteam.defences import DEFENCES, ENV, switched_off
from patchbrain.redteam.runner import RunOptions, run

NO_HOSTS = ("feed-injection", "plan-tampering", "audit-tampering")


def _run(name, disabled=()):
    (result,) = run(registry.select([name]), RunOptions(own_lab=False, disabled=disabled))
    return result


def test_list_shows_every_scenario_of_the_issue(capsys):
    assert cli.main(["redteam", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [s["number"] for s in listed] == list(range(1, 10))
    assert len({s["name"] for s in listed}) == 9
    assert all(set(s["defences"]) <= set(DEFENCES) for s in listed if not s["needs_hosts"])


@pytest.mark.parametrize("name", NO_HOSTS)
def test_scenario_passes_with_its_defences_on(name, pb_home):
    result = _run(name)
    assert result.status == "passed", [c.to_dict() for c in result.checks if not c.passed] or result.detail
    assert len(result.checks) >= 4 and result.evidence
    assert not (pb_home / "patchbrain.db").exists(), "a scenario must work in its own home"


@pytest.mark.parametrize(
    ("name", "defence"),
    [
        ("feed-injection", "tuf"),
        ("feed-injection", "screening"),
        ("plan-tampering", "approvals"),
        ("audit-tampering", "audit-chain"),
    ],
)
def test_scenario_fails_loudly_with_its_defence_off(name, defence, pb_home):
    result = _run(name, disabled=(defence,))
    assert result.status == "failed" and not result.passed
    assert result.disabled == (defence,)
    failed = [c for c in result.checks if not c.passed]
    assert failed and all(c.outcome for c in failed)
    # the controls (the honest case) still pass: the scenario tells a working defence from a missing one
    assert all(c.passed for c in result.checks if c.attack.startswith("control"))


def test_model_poisoning_passes_and_each_defence_off_fails_its_own_checks(pb_home):
    result = _run("model-poisoning")
    assert result.status == "passed", [c.to_dict() for c in result.checks]
    assert any("prediction-shift" in e.text or "metric-regression" in e.text for e in result.evidence)
    off = _run("model-poisoning", disabled=("model-gate", "bundle-integrity"))
    assert off.status == "failed"
    by_attack = {c.attack.split(" ")[0]: c.passed for c in off.checks}
    # the gate alone decides the poisoned candidate; integrity alone decides both swapped files
    assert by_attack["candidate"] is False and by_attack["control:"] is True
    assert [c.passed for c in off.checks if "swapped" in c.attack or "replaced" in c.attack] == [False, False]


def test_unavailable_scenarios_never_pass(pb_home, capsys, tmp_path):
    report = tmp_path / "r.md"
    # a scenario that needs hosts, with no lab named and no own lab allowed
    code = cli.main(
        ["redteam", "run", "--scenario", "faults", "--no-own-lab", "--json", "--report", str(report)]
    )
    assert code != 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["passed"] is False and doc["not_available"] == ["faults"]
    assert doc["scenarios"][0]["status"] == "unavailable"
    assert "not available:" in doc["scenarios"][0]["detail"]
    assert "NOT AVAILABLE" in report.read_text()


def test_run_writes_a_report_with_evidence(pb_home, capsys, tmp_path):
    report = tmp_path / "r.md"
    code = cli.main(["redteam", "run", "--scenario", "audit-tampering", "--scenario", "plan-tampering",
                     "--report", str(report)])  # fmt: skip
    assert code == 0
    text = report.read_text()
    assert "## 7. audit-tampering: PASS" in text and "## 4. plan-tampering: PASS" in text
    assert "Suite: **PASSED**" in text
    assert "rollout.refused" in text and "detected as" in text  # audit record ids and verifier output


def test_a_run_with_a_defence_off_never_passes_and_says_so(pb_home, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, "audit-chain")
    report = tmp_path / "r.md"
    assert cli.main(["redteam", "run", "--scenario", "audit-tampering", "--report", str(report)]) == 4
    assert "DEFENCES SWITCHED OFF" in report.read_text()
    assert "switches off audit-chain" in capsys.readouterr().err
    monkeypatch.setenv(ENV, "no-such-defence")
    assert cli.main(["redteam", "run", "--scenario", "audit-tampering"]) == 2


def test_production_commands_ignore_the_hook(pb_home, capsys, monkeypatch):
    """The variable is read by the red-team runner only: `audit verify` still catches tampering."""
    from patchbrain.audit import AuditLog
    from patchbrain.redteam.audit_tamper import attacker, edit_payload
    from patchbrain.store import Store

    log = AuditLog(Store())
    log.append_many([("a", "test.op", f"s{i}", {"i": i}) for i in range(5)])
    edit_payload(attacker(pb_home / "patchbrain.db"), 3)
    monkeypatch.setenv(ENV, ",".join(DEFENCES))
    assert cli.main(["audit", "verify"]) == 3


def test_switched_off_restores_every_original():
    from patchbrain import approvals, audit, pkgspec
    from patchbrain.feeds import sync
    from patchbrain.prioritizer import bundle, governance

    before = [
        sync.sync, sync.screen, governance.validate, governance.load_bundle, bundle.load_bundle,
        governance.Registry.load, approvals.require_approved, audit.AuditLog.verify, pkgspec.check_name,
    ]  # fmt: skip
    with switched_off(tuple(DEFENCES)):
        assert sync.sync is not before[0] and audit.AuditLog.verify is not before[7]
    after = [
        sync.sync, sync.screen, governance.validate, governance.load_bundle, bundle.load_bundle,
        governance.Registry.load, approvals.require_approved, audit.AuditLog.verify, pkgspec.check_name,
    ]  # fmt: skip
    assert after == before


def test_staging_needs_explicit_confirmation(pb_home, tmp_path, capsys):
    inv = tmp_path / "staging.yml"
    inv.write_text("all: {}\n")
    assert cli.main(["redteam", "run", "--staging", str(inv)]) == 2
    assert "--i-understand-this-attacks-staging" in capsys.readouterr().err
    confirmed = ["redteam", "run", "--staging", str(inv), "--i-understand-this-attacks-staging"]
    assert cli.main([*confirmed, "--lab", "lab1"]) == 2  # two targets
    assert cli.main(["redteam", "run", "--staging-host", "web1"]) == 2  # a host without a staging inventory
    assert cli.main([*confirmed[:2], "--staging", str(tmp_path / "missing.yml"), confirmed[-1]]) == 2


def test_on_staging_only_what_needs_no_lab_powers_runs(pb_home, tmp_path):
    """A scenario that needs lab powers is not available on a staging inventory (it never brings up a lab),
    and one that needs no hosts runs as always."""
    from patchbrain.redteam.registry import select
    from patchbrain.redteam.runner import RunOptions, run

    inv = tmp_path / "staging.yml"
    inv.write_text("all: {hosts: {web1: {ansible_host: 127.0.0.1}}}\n")
    opts = RunOptions(staging_inventory=inv, workdir=tmp_path / "work")  # own_lab stays allowed
    lying, audit = run(select(["lying-self-report", "audit-tampering"]), opts)
    assert lying.status == "unavailable" and "lab powers" in lying.detail and not lying.checks
    assert audit.status == "passed"


def test_a_staging_fleet_is_reached_over_patchbrains_own_ssh_channel(tmp_path):
    import shlex

    import yaml
    from verify_sshd import LocalSshd

    from patchbrain.errors import BadInput
    from patchbrain.redteam.staging import StagingHosts

    sshd = LocalSshd(tmp_path, {shlex.join(["ls", "/tmp/x y"]): (0, "/tmp/x y\n", "")})
    try:
        known = tmp_path / "known_hosts"
        known.write_text(sshd.known_hosts_line())
        common = f"-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes"
        host = {
            "ansible_host": "127.0.0.1",
            "ansible_port": sshd.port,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(sshd.client_key_file),
            "ansible_ssh_common_args": common,
        }
        inv = tmp_path / "staging.ini"  # any inventory Ansible reads, not only YAML
        inv.write_text("[web]\n" + " ".join(["web2", *(f"{k}='{v}'" for k, v in host.items())]) + "\nweb1\n")
        fleet = StagingHosts(inv, tmp_path)
        assert fleet.target == "web1" and [h.name for h in fleet.hosts()] == ["web1", "web2"]
        flat = yaml.safe_load(fleet.inventory_path().read_text())
        assert flat["all"]["hosts"]["web2"]["ansible_port"] == sshd.port
        done = fleet.exec("web2", ["ls", "/tmp/x y"])
        assert (done.returncode, done.stdout) == (0, "/tmp/x y\n")
        assert sshd.commands == ["ls '/tmp/x y'"]  # the argument went over as quoted data
        with pytest.raises(BadInput, match="not in the inventory"):
            StagingHosts(inv, tmp_path, "db1")
        assert StagingHosts(inv, tmp_path, "web2").target == "web2"
    finally:
        sshd.close()
