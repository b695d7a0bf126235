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
RESTORE = Path(__file__).with_name("restore_selinux.yml")
# Booleans that are off in Debian's default policy and only widen what a domain may do when turned on.
CANDIDATE_BOOLEANS = ("ssh_sysadm_login", "allow_execmem", "deny_ptrace", "httpd_can_network_connect")


def snapshot(guest: selinux_vm.Guest, dest: Path, *, selinux_only: bool = True) -> dict[str, dict]:
    """Run the posture role on the guest and return {host: document}.

    The change tests collect SELinux only: every probe is a module run on an emulated CPU, and the firewall
    and socket sides of the gate are proven on the lab hosts.
    """
    extra: dict[str, object] = {"posture_dest_dir": str(dest)}
    if selinux_only:
        extra |= {"posture_collect_firewall": False, "posture_collect_sockets": False}
    ansible_playbook(guest, ROOT / "playbooks/posture.yml", "-e", json.dumps(extra))
    return load_file(dest)


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


def test_ansible_sees_the_real_selinux_fact(selinux_guest):
    proc = ansible_playbook(selinux_guest, Path(__file__).with_name("selinux_fact.yml"))
    fact = json.loads(proc.stdout.split("SELINUX_FACT=", 1)[1].splitlines()[0])
    wanted = {"status": "enabled", "mode": "enforcing", "config_mode": "enforcing", "type": "default"}
    assert {k: fact.get(k) for k in wanted} == wanted


def test_full_posture_role_runs_on_the_selinux_guest(selinux_guest, tmp_path):
    docs = snapshot(selinux_guest, tmp_path / "full", selinux_only=False)
    snap = parse_document(docs[HOST], host=HOST)
    assert snap.selinux is not None and snap.selinux.runtime_mode == "enforcing"
    assert snap.sockets is not None and any(s.port == 22 for s in snap.sockets)


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


def test_unchanged_guest_is_neutral(selinux_guest, baseline, tmp_path):
    _, before = baseline
    report = gate(before, snapshot(selinux_guest, tmp_path / "again"))
    assert selinux_changes(report) == []
    assert report.ok, [c.reason for c in report.blocking]


def test_setenforce_0_weakens_and_restoring_is_neutral(selinux_guest, baseline, tmp_path):
    base_dir, before = baseline
    selinux_guest.ssh(["setenforce", "0"])
    try:
        assert selinux_guest.ssh(["getenforce"]).stdout.strip() == "Permissive"
        report = gate(before, snapshot(selinux_guest, tmp_path / "permissive"))
        assert ("selinux.runtime_mode", "weakens", "runtime mode") in selinux_changes(report)
        assert not report.ok
    finally:
        ansible_playbook(selinux_guest, RESTORE, "-e", json.dumps({"restore_snapshot_dir": str(base_dir)}))
    assert selinux_guest.ssh(["getenforce"]).stdout.strip() == "Enforcing"
    restored = gate(before, snapshot(selinux_guest, tmp_path / "restored"))
    assert selinux_changes(restored) == []
    assert restored.ok


@pytest.mark.parametrize("mode", ["permissive", "disabled"])
def test_config_file_change_weakens_and_restoring_is_neutral(selinux_guest, baseline, tmp_path, mode):
    base_dir, before = baseline
    selinux_guest.ssh(["sed", "-i", f"s/^SELINUX=.*/SELINUX={mode}/", "/etc/selinux/config"])
    try:
        assert f"SELINUX={mode}" in selinux_guest.ssh(["cat", "/etc/selinux/config"]).stdout
        report = gate(before, snapshot(selinux_guest, tmp_path / mode))
        changes = selinux_changes(report)
        assert ("selinux.config_mode", "weakens", "configured mode (/etc/selinux/config)") in changes
        assert not report.ok
    finally:
        ansible_playbook(selinux_guest, RESTORE, "-e", json.dumps({"restore_snapshot_dir": str(base_dir)}))
    assert "SELINUX=enforcing" in selinux_guest.ssh(["cat", "/etc/selinux/config"]).stdout
    restored = gate(before, snapshot(selinux_guest, tmp_path / "restored"))
    assert selinux_changes(restored) == []


def test_boolean_turned_on_is_flagged_and_restoring_is_neutral(selinux_guest, baseline, tmp_path):
    base_dir, before = baseline
    se = parse_document(before[HOST], host=HOST).selinux
    assert se is not None
    off = {name for name, on in se.booleans if not on}
    name = next((b for b in CANDIDATE_BOOLEANS if b in off), None) or sorted(off)[0]
    selinux_guest.ssh(["setsebool", name, "on"])
    try:
        assert selinux_guest.ssh(["getsebool", name]).stdout.strip() == f"{name} --> on"
        report = gate(before, snapshot(selinux_guest, tmp_path / "boolean"))
        assert ("selinux.boolean", "weakens", name) in selinux_changes(report)
        assert not report.ok
    finally:
        ansible_playbook(selinux_guest, RESTORE, "-e", json.dumps({"restore_snapshot_dir": str(base_dir)}))
    assert selinux_guest.ssh(["getsebool", name]).stdout.strip() == f"{name} --> off"
    restored = gate(before, snapshot(selinux_guest, tmp_path / "restored"))
    assert selinux_changes(restored) == []
