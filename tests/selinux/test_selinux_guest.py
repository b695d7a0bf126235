"""The SELinux side of the drift gate on a real SELinux kernel (a Debian guest under qemu, enforcing).

Every change here is made for real on the guest (setenforce, /etc/selinux/config, setsebool), snapshotted with
the posture role through plain ansible-playbook, and classified by patchbrain's gate. The guest runs Debian's
`default` policy, not RHEL's `targeted` (docs/selinux.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from selinux_helpers import ROOT, ansible_playbook

from patchbrain.lab import selinux_vm
from patchbrain.posture.gate import GateReport, compare
from patchbrain.posture.snapshot import load_file, parse_document

pytestmark = [pytest.mark.selinux, pytest.mark.slow]

HOST = "selinux_guest"
# Booleans that are off in Debian's default policy and only widen what a domain may do when turned on.
CANDIDATE_BOOLEANS = ("ssh_sysadm_login", "allow_execmem", "deny_ptrace", "httpd_can_network_connect")


def snapshot(guest: selinux_vm.Guest, dest: Path) -> dict[str, dict]:
    """Run the posture role on the guest (SELinux probes only) and return {host: document}.

    Every probe is a module run on an emulated CPU; the firewall and socket sides of the posture role and the
    gate are proven on the lab hosts (molecule/posture, tests/lab).
    """
    dest.mkdir(parents=True, exist_ok=True)
    extra = {
        "posture_dest_dir": str(dest),
        "posture_collect_firewall": False,
        "posture_collect_sockets": False,
    }
    ansible_playbook(guest, ROOT / "playbooks/posture.yml", "-e", json.dumps(extra))
    return load_file(dest)


def rollback(guest: selinux_vm.Guest, pre_doc: dict, dest: Path) -> None:
    """Put the guest back to `pre_doc` with the rollback role, as the safety loop does: its vars come from
    `patchbrain.safety.restore.rollback_vars` and reach Ansible as an `!unsafe` vars file."""
    from patchbrain.executor.unsafe_yaml import dump_unsafe
    from patchbrain.safety.restore import rollback_vars

    dest.mkdir(parents=True, exist_ok=True)
    extra = {
        "patchbrain_rollback": rollback_vars([HOST], versions={}, pre_docs={HOST: pre_doc}),
        "patchbrain_rollback_settle_s": 0,
    }
    vars_file = dest / "rollback-vars.yml"
    vars_file.write_text(dump_unsafe(extra), encoding="utf-8")
    ansible_playbook(guest, ROOT / "playbooks/rollback.yml", "-e", f"@{vars_file}")


def gate(before: dict, after: dict) -> GateReport:
    return compare(before, after)


def selinux_changes(report: GateReport) -> list[tuple[str, str, str]]:
    return [(c.kind, c.effect, c.subject) for c in report.changes if c.area == "selinux"]


@pytest.fixture(scope="module")
def baseline(selinux_guest: selinux_vm.Guest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    dest = tmp_path_factory.mktemp("posture-baseline")
    return dest, snapshot(selinux_guest, dest)


def test_guest_runs_selinux_enforcing(selinux_guest):
    out = selinux_guest.ssh(["sestatus"]).stdout
    print(out)  # the guest's own sestatus, kept in the CI log (-rP)
    lines = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    status = {k.strip().lower(): v.strip() for k, v in lines.items()}
    assert status["selinux status"] == "enabled"
    assert status["current mode"] == "enforcing"
    assert status["mode from config file"] == "enforcing"
    assert status["loaded policy name"] == "default"
    assert selinux_guest.ssh(["cat", "/sys/fs/selinux/enforce"]).stdout.strip() == "1"


def test_ansible_sees_the_real_selinux_fact(selinux_guest, tmp_path):
    dest = tmp_path / "selinux_fact.json"
    playbook = Path(__file__).with_name("selinux_fact.yml")
    ansible_playbook(selinux_guest, playbook, "-e", json.dumps({"fact_dest": str(dest)}))
    fact = json.loads(dest.read_text())
    print("ansible_selinux:", fact)
    wanted = {"status": "enabled", "mode": "enforcing", "config_mode": "enforcing", "type": "default"}
    assert {k: fact.get(k) for k in wanted} == wanted


def test_posture_role_reads_the_real_selinux_state(baseline):
    _, docs = baseline
    snap = parse_document(docs[HOST], host=HOST)
    se = snap.selinux
    assert se is not None
    assert (se.runtime_mode, se.config_mode, se.policy_type, se.loaded_policy) == (
        "enforcing",
        "enforcing",
        "default",
        "default",
    )
    assert len(se.booleans) > 50, "getsebool -a should list the policy's booleans"
    assert se.modules, "semodule -l should list the policy modules"
    assert not docs[HOST]["probes"]["semanage_permissive"]["missing"], "semanage is installed in the guest"
    assert docs[HOST]["probes"]["selinux_enforce"]["stdout"].strip() == "1"


def test_real_weakening_changes_are_caught_and_restoring_is_neutral(selinux_guest, baseline, tmp_path):
    """setenforce 0, SELINUX=disabled in /etc/selinux/config and a boolean turned on, all made for real.

    One snapshot holds all three changes (each module run costs seconds on an emulated CPU); each is checked
    on its own. Then the rollback role puts the baseline back and the gate must find nothing.
    """
    _, before = baseline
    se = parse_document(before[HOST], host=HOST).selinux
    assert se is not None
    off = {name for name, on in se.booleans if not on}
    boolean = next((b for b in CANDIDATE_BOOLEANS if b in off), None) or sorted(off)[0]
    try:
        selinux_guest.ssh(["setenforce", "0"])
        selinux_guest.ssh(["sed", "-i", "s/^SELINUX=.*/SELINUX=disabled/", "/etc/selinux/config"])
        selinux_guest.ssh(["setsebool", boolean, "on"])
        assert selinux_guest.ssh(["getenforce"]).stdout.strip() == "Permissive"
        assert "SELINUX=disabled" in selinux_guest.ssh(["cat", "/etc/selinux/config"]).stdout
        assert selinux_guest.ssh(["getsebool", boolean]).stdout.strip() == f"{boolean} --> on"

        report = gate(before, snapshot(selinux_guest, tmp_path / "weakened"))
        changes = selinux_changes(report)
        print("gate on the weakened guest:", *changes, sep="\n  ")
        assert ("selinux.runtime_mode", "weakens", "runtime mode") in changes
        assert ("selinux.config_mode", "weakens", "configured mode (/etc/selinux/config)") in changes
        assert ("selinux.boolean", "weakens", boolean) in changes
        assert len(changes) == 3, changes
        assert not report.ok
        assert {c.kind for c in report.blocking} == {
            "selinux.runtime_mode",
            "selinux.config_mode",
            "selinux.boolean",
        }
    finally:
        rollback(selinux_guest, before[HOST], tmp_path / "rollback")

    assert selinux_guest.ssh(["getenforce"]).stdout.strip() == "Enforcing"
    assert "SELINUX=enforcing" in selinux_guest.ssh(["cat", "/etc/selinux/config"]).stdout
    assert selinux_guest.ssh(["getsebool", boolean]).stdout.strip() == f"{boolean} --> off"
    restored = gate(before, snapshot(selinux_guest, tmp_path / "restored"))
    assert selinux_changes(restored) == []
    assert restored.ok, [c.reason for c in restored.blocking]
    assert restored.counts() == {"weakens": 0, "strengthens": 0, "neutral": 0, "unknown": 0}


def test_a_permissive_config_is_weakens_too(selinux_guest, baseline, tmp_path):
    """`SELINUX=permissive` (not only disabled) in the real config file is caught; restored by hand here."""
    _, before = baseline
    selinux_guest.ssh(["sed", "-i", "s/^SELINUX=.*/SELINUX=permissive/", "/etc/selinux/config"])
    try:
        report = gate(before, snapshot(selinux_guest, tmp_path / "permissive"))
        assert selinux_changes(report) == [
            ("selinux.config_mode", "weakens", "configured mode (/etc/selinux/config)")
        ]
    finally:
        selinux_guest.ssh(["sed", "-i", "s/^SELINUX=.*/SELINUX=enforcing/", "/etc/selinux/config"])
