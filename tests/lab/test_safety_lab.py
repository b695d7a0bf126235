"""The safety loop on real lab hosts: sabotaged labdemo variants (one per kind of weakening; all of them in
`make redteam`) halted at the canary and the canary restored (versions, firewall, SELinux mode back, read
over patchbrain's own SSH channel), no other host changed; a package manager that lies caught by the
verifier; fake failure signals ignored and audited; a real health-check failure rolled back. The delayed
sabotage (caught by the bake re-check) is scenario 3 of `make redteam`.

One fleet of 4 hosts (h01, h03 apt; h02, h04 dnf; h01 and h02 may be canaries) in a private
PATCHBRAIN_HOME, reset before each case. Every rollout goes through the real CLI with a plan authored by
lab-signing and approved with lab-approver-1.
"""

from __future__ import annotations

import json
import os
import socket

import pytest
import yaml
from rollout_helpers import cli, installed, quick_plan

pytestmark = [
    pytest.mark.lab,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

INSTANCE = os.environ.get("PATCHBRAIN_TEST_SAFETY_LAB") or "sfty"
MGR = {"h01": "apt", "h02": "dnf", "h03": "apt", "h04": "dnf"}
PAIR = {"apt": ("h01", "h03"), "dnf": ("h02", "h04")}  # (canary, the wave-2 host that must stay untouched)
BASE = {"apt": "1.0", "dnf": "1.0-1"}
TIMEOUT = 2400  # generous: several helpers' labs share 2 cores


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    from patchbrain.lab import Lab

    home = tmp_path_factory.mktemp("pbhome")
    mp = pytest.MonkeyPatch()
    mp.setenv("PATCHBRAIN_HOME", str(home))
    mp.setenv("PATCHBRAIN_LAB", INSTANCE)
    mp.delenv("PATCHBRAIN_DB", raising=False)
    mp.delenv("PATCHBRAIN_CANARY_BAKE", raising=False)
    lab = Lab(INSTANCE)
    try:
        lab.up(4, ("apt", "dnf"))
        from patchbrain.keys import KeyStore, ensure_lab_keys

        ensure_lab_keys(KeyStore())
        lab.fresh = True
        yield lab
    finally:
        lab.down()
        mp.undo()


@pytest.fixture
def lab(fleet):
    if not fleet.fresh:
        fleet.reset()
    fleet.fresh = False
    return fleet


def _plan(tmp_path, lab, version, canary, other):
    """Canary, then the other host: labdemo `version` (deb) / `version-1` (rpm), approved."""
    rpm = MGR[canary] == "dnf"
    return quick_plan(
        tmp_path, lab, {h: f"{version}-1" if rpm else version for h in (canary, other)}, "1,100%"
    )


def _rollout(plan, *extra):
    proc = cli("rollout", str(plan), "--json", *extra, check=False, timeout=TIMEOUT)
    return proc.returncode, (json.loads(proc.stdout) if proc.stdout.strip() else {}), proc.stderr


def _stateless_ruleset(lab, host):
    from patchbrain.redteam.labhost import stateless_ruleset

    return stateless_ruleset(lab, host)


def _second_channel(lab, hosts):
    from patchbrain.redteam.labhost import second_channel

    return second_channel(lab, hosts)


def _audit(action):
    from patchbrain.audit import AuditLog
    from patchbrain.store import Store

    return list(AuditLog(Store()).records(action=action))


def _assert_untouched(lab, host, baseline):
    assert installed(lab, host, MGR[host]) == BASE[MGR[host]]
    assert _stateless_ruleset(lab, host) == baseline
    assert lab.exec(host, ["getenforce"]).stdout.strip() == "Enforcing"


# variant -> package manager of its canary: one of each kind of weakening (the firewall opened wide, SELinux
# permissive at runtime, SELinux disabled in its config file), both families. Every variant is halted and
# restored by `make redteam` (scenario 3, orchestration sabotage) and classified on apt and dnf by
# test_posture_lab.py; open-port is proven with a packet below.
VARIANTS = {
    "accept-all": "dnf",
    "selinux-permissive": "dnf",
    "selinux-config-disabled": "apt",
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_sabotage_is_halted_at_the_canary_and_the_canary_restored(lab, tmp_path, variant):
    from patchbrain.journal import Journal
    from patchbrain.lab.content import LabContent
    from patchbrain.store import Store

    canary, other = PAIR[VARIANTS[variant]]
    baseline = _stateless_ruleset(lab, canary)
    assert _stateless_ruleset(lab, other) == baseline  # same flavor, same fresh ruleset
    version, _ = LabContent(lab.dir).publish_variant(variant)
    plan = _plan(tmp_path, lab, version, canary, other)
    doc = yaml.safe_load(plan.read_text())
    assert [[e["host"] for e in w] for w in doc["waves"]] == [[canary], [other]]

    rc, result, err = _rollout(plan, "--canary-bake", "0s")
    assert rc == 3, err
    assert result["state"] == "halted" and result["halt"]["kind"] == "drift"
    assert result["halt"]["hosts"] == [canary]
    assert "labdemo" in result["halt"]["reason"] and canary in result["halt"]["reason"]
    [wave] = result["waves"]  # the second wave never started
    safety = wave["safety"]
    assert safety["drift"]["blocking"] and all(c["host"] == canary for c in safety["drift"]["blocking"])
    assert (
        safety["verify"][canary]["verdict"] == "ok"
    )  # it did install what the plan named: the harm is drift
    rb = safety["rollback"][canary]
    assert rb["restored"] is True and rb["method"] == "packages", rb
    assert "packages" in rb["actions"]
    assert [h["state"] for h in wave["hosts"]] == ["restored"]

    # restored, as read over patchbrain's own channel and by plain SSH
    reading = _second_channel(lab, [canary])[canary]
    assert reading.reachable and reading.versions == {"labdemo": BASE[VARIANTS[variant]]}
    assert (reading.selinux_mode, reading.selinux_config_mode) == ("enforcing", "enforcing")
    assert _stateless_ruleset(lab, canary) == baseline
    listening = lab.exec(canary, ["ss", "-H", "-tlnp"]).stdout
    assert ":4444 " not in listening
    # the other host never saw it
    _assert_untouched(lab, other, baseline)

    pid = doc["plan_id"]
    journal = Journal(Store())
    states = [t.state for t in journal.history(pid, canary)]
    assert states == ["pending", "running", "patched", "rolling_back", "restored"]
    assert [t.state for t in journal.history(pid, other)] == ["pending", "skipped"]
    for phase in ("pre", "post", "verify-pre", "verify", "restore", "restore-verify"):
        assert canary in journal.snapshots(pid, 0, phase), phase
    actions = [r.action for r in _audit("*") if r.subject.startswith(pid) or r.subject == canary]
    for action in ("safety.drift", "rollback.start", "rollback.host", "rollback.end", "verify.wave"):
        assert action in actions, action


def test_open_port_restore_is_proven_with_a_packet(lab, tmp_path):
    """After the rollback, tcp/4444 is filtered again (it answered while the sabotage was in place)."""
    from patchbrain.lab.content import LabContent

    canary, other = PAIR["apt"]
    version, _ = LabContent(lab.dir).publish_variant("open-port")
    plan = _plan(tmp_path, lab, version, canary, other)
    rc, result, err = _rollout(plan, "--canary-bake", "0s")
    assert rc == 3 and result["waves"][0]["safety"]["rollback"][canary]["restored"], err
    from patchbrain.verify import access_from_inventory

    address = access_from_inventory(lab.inventory_path())[canary].address
    with pytest.raises(OSError):
        socket.create_connection((address, 4444), timeout=5).close()


# Long enough that the job fires after the post-wave snapshots even on a loaded machine, and well before the
# bake ends; the bake is measured from the end of the wave.


SHIM_APT = """#!/bin/sh
# A package manager that says yes to installs and installs nothing (it remembers what it was asked for);
# everything else (update, download) is the real apt-get.
case " $* " in
  *" install "*)
    for a in "$@"; do
      case "$a" in labdemo=*) mkdir -p /var/lib/shim; echo "${a#labdemo=}" > /var/lib/shim/labdemo;; esac
    done
    echo "Reading package lists... Done"
    exit 0;;
esac
exec /usr/bin/apt-get "$@"
"""
SHIM_QUERY = """#!/bin/sh
# dpkg-query that reports the version the shim was asked for, once it was asked.
if [ -f /var/lib/shim/labdemo ]; then
  printf 'labdemo\\t%s\\tii \\n' "$(cat /var/lib/shim/labdemo)"; exit 0
fi
exec /usr/bin/dpkg-query "$@"
"""


def test_a_package_manager_that_lies_is_caught_by_the_verifier(lab, tmp_path):
    from patchbrain.lab.content import LabContent

    canary, other = PAIR["apt"]
    # shims in /usr/local/bin, first on the PATH Ansible's modules get
    for name, body in (("apt-get", SHIM_APT), ("dpkg-query", SHIM_QUERY)):
        path = f"/usr/local/bin/{name}"
        proc = lab.exec(canary, ["sh", "-c", 'printf "%s" "$1" > "$2" && chmod 755 "$2"', "sh", body, path])
        assert proc.returncode == 0, proc.stderr
    version, _ = LabContent(lab.dir).publish_variant("benign")
    plan = _plan(tmp_path, lab, version, canary, other)
    rc, result, err = _rollout(plan, "--canary-bake", "0s")
    assert rc == 4, err
    assert result["halt"]["kind"] == "failures" and result["halt"]["hosts"] == [canary]
    [wave] = result["waves"]
    verdict = wave["safety"]["verify"][canary]
    assert verdict["verdict"] == "disagrees" and verdict["lied"] is True
    assert f"Ansible reported {version}, the host has 1.0" in verdict["detail"]
    assert [h["state"] for h in wave["hosts"]] == ["mismatch"]
    assert installed(lab, other, "apt") == "1.0"
    [record] = [r for r in _audit("verify.disagreement") if r.subject == canary][-1:]
    assert record.payload["plan_id"] == yaml.safe_load(plan.read_text())["plan_id"]


def _inventory_with_checks(lab, tmp_path, checks):
    """The lab inventory plus health checks for every host (group variables of `all`)."""
    from patchbrain.redteam.telemetry import inventory_with_checks

    return inventory_with_checks(lab, tmp_path / "inventory.yml", checks)


def test_fake_failure_signals_for_healthy_hosts_trigger_no_rollback(lab, tmp_path):
    from patchbrain.lab.content import LabContent

    canary, other = PAIR["apt"]
    version, _ = LabContent(lab.dir).publish_variant("benign")
    plan = _plan(tmp_path, lab, version, canary, other)
    inv = _inventory_with_checks(lab, tmp_path, [{"name": "labdemo runs", "command": ["labdemo"]}])
    signals = tmp_path / "signals.json"
    fake = [
        {"host": canary, "status": "critical", "source": "monitor", "message": "HTTP 500 since the update"},
        {"host": other, "status": "failed", "source": "monitor", "message": "down"},
        {"host": "db9", "status": "failed", "source": "monitor", "message": "down"},
    ]
    signals.write_text(json.dumps({"signals": fake}))
    rc, result, err = _rollout(plan, "-i", str(inv), "--canary-bake", "0s", "--signals-file", str(signals))
    assert rc == 0, err
    assert result["state"] == "done"
    for wave in result["waves"]:
        assert [h["state"] for h in wave["hosts"]] == ["patched"]
        assert wave["safety"]["rollback"] == {}
    seen = {e["signal"]["host"]: e for e in result["waves"][0]["safety"]["signals"]}
    assert {h: e["verdict"] for h, e in seen.items()} == {
        canary: "suspicious",
        other: "suspicious",
        "db9": "suspicious",
    }
    assert "health checks pass" in seen[canary]["why"]
    assert "pending" in seen[other]["why"] and "not a host of this rollout" in seen["db9"]["why"]
    assert result["waves"][1]["safety"]["signals"] == []  # each signal is judged once
    assert result["waves"][0]["safety"]["health"][canary]["ok"] is True
    for host in (canary, other):
        assert installed(lab, host, "apt") == version
    audited = [r for r in _audit("safety.signal.suspicious") if r.payload.get("plan_id") == result["plan_id"]]
    assert sorted(r.subject for r in audited) == sorted([canary, other, "db9"])


def test_a_real_health_failure_rolls_the_canary_back(lab, tmp_path):
    from patchbrain.lab.content import LabContent

    canary, other = PAIR["dnf"]
    baseline = _stateless_ruleset(lab, canary)
    version, _ = LabContent(lab.dir).publish_variant("benign")
    plan = _plan(tmp_path, lab, version, canary, other)
    # the service only works with 1.0: the update breaks it (the package records its version on install)
    check = {
        "name": "works with 1.0",
        "command": ["grep", "-qx", "1.0", "/var/lib/labdemo/installed-version"],
    }
    inv = _inventory_with_checks(lab, tmp_path, [check])
    signals = tmp_path / "signals.json"
    signals.write_text(json.dumps([{"host": canary, "status": "failed", "source": "monitor"}]))
    rc, result, err = _rollout(plan, "-i", str(inv), "--canary-bake", "0s", "--signals-file", str(signals))
    assert rc == 4, err
    assert result["halt"]["kind"] == "failures" and result["halt"]["hosts"] == [canary]
    [wave] = result["waves"]
    health = wave["safety"]["health"][canary]
    assert health["ok"] is False and any(r.get("recheck") and not r["ok"] for r in health["results"])
    [signal] = wave["safety"]["signals"]
    assert signal["verdict"] == "confirmed"
    rb = wave["safety"]["rollback"][canary]
    assert rb["restored"] is True, rb
    assert [h["state"] for h in wave["hosts"]] == ["restored"]
    assert installed(lab, canary, "dnf") == "1.0-1"
    assert lab.exec(canary, ["grep", "-qx", "1.0", "/var/lib/labdemo/installed-version"]).returncode == 0
    _assert_untouched(lab, other, baseline)
    assert any(r.subject == canary for r in _audit("safety.health.failed"))
