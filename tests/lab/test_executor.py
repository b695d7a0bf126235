"""The executor on real lab hosts: discovery on apt, dnf and zypper hosts, a benign rollout in waves, the
journal and the audit log, and hostile package names, versions and host variables that must never run.

One fleet of 6 hosts (apt, dnf, zypper in turn) for the module, in a private PATCHBRAIN_HOME. Every test
drives the real `patchbrain` CLI or the real playbooks through ansible-runner; versions are checked over
SSH, outside Ansible.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from lab_helpers import own_fleet
from rollout_helpers import approve, cli, make_plan, remake
from rollout_helpers import installed as _installed

pytestmark = [
    pytest.mark.lab,
    pytest.mark.slow,
    # the lab's long-lived helper processes (Popen objects owned by patchbrain.lab) outlive their handles
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

FLAVORS = ("apt", "dnf", "zypper")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    # the executor's own behaviour without the canary bake; tests/lab/test_safety_lab.py bakes
    env = {"PATCHBRAIN_CANARY_BAKE": "0s"}
    for lab in own_fleet(tmp_path_factory, "exec", 6, FLAVORS, lab_keys=True, env=env):
        lab.fresh = True
        yield lab


@pytest.fixture
def lab(fleet):
    if not fleet.fresh:
        fleet.reset()
    fleet.fresh = False
    return fleet


def mgr(lab, host):
    return FLAVORS[(int(host[1:]) - 1) % 3]


def installed(lab, host):
    """labdemo's installed version, read over SSH (not through Ansible)."""
    version = _installed(lab, host, mgr(lab, host))
    assert version, f"labdemo is not installed on {host}"
    return version


def test_discovery_finds_labdemo_and_its_cves_on_apt_dnf_and_zypper(lab):
    proc = cli("discover", "--json", "--limit", "h01,h02,h03")
    doc = json.loads(proc.stdout)
    assert proc.stderr == ""  # no progress bars off a terminal, nothing on stdout but JSON
    by_host = {h["host"]: h for h in doc["hosts"]}
    assert sorted(by_host) == ["h01", "h02", "h03"]
    for host, (old, new) in {
        "h01": ("1.0", "1.1"),
        "h02": ("1.0-1", "1.1-1"),
        "h03": ("1.0-1", "1.1-1"),
    }.items():
        found = by_host[host]
        assert found["pkg_mgr"] == mgr(lab, host)
        assert found["problems"] == []
        [update] = [p for p in found["pending"] if p["package"] == "labdemo"]
        assert (update["installed"], update["candidate"]) == (old, new)
        # 1.1 fixes CVE-2019-14287; 1.0's own CVE-2018-15473 is not "between" installed and candidate
        assert update["cves"] == ["CVE-2019-14287"]
    assert Path(doc["artifacts"], "job_events").is_dir()


def test_benign_rollout_in_waves_installs_exactly_the_planned_versions(lab, tmp_path):
    from patchbrain.audit import AuditLog
    from patchbrain.journal import Journal
    from patchbrain.lab.content import LabContent
    from patchbrain.store import Store

    cli("discover")
    plan_file = tmp_path / "plan.yaml"
    cli("plan", "--waves", "1,2,100%", "--out", str(plan_file), "--author-key", "lab-signing")
    plan = yaml.safe_load(plan_file.read_text())
    # only h01 (apt) and h02 (dnf) may be canaries in the lab: the canary covers those two groups and the
    # plan says the zypper group is not covered; then the wave rule on the remaining 4 hosts
    assert [len(w) for w in plan["waves"]] == [2, 2, 2]
    assert sorted(e["host"] for e in plan["waves"][0]) == ["h01", "h02"]
    assert any("canary does not cover group" in w and "zypper" in w for w in plan["warnings"])
    # unapproved: refused with exit 5 before anything runs
    proc = cli("rollout", str(plan_file), check=False)
    assert proc.returncode == 5 and "unapproved" in proc.stderr, proc.stdout + proc.stderr
    # the author cannot approve its own plan
    assert cli("approve", str(plan_file), "--key", "lab-signing", check=False).returncode == 5
    approve(plan_file)
    lab.reset()  # fresh hosts, index never refreshed: the rollout must not depend on discovery
    # A newer version appears after planning: the rollout must still install exactly 1.1, never "latest".
    version, _ = LabContent(lab.dir).publish_variant("benign")
    assert version == "1.2"

    proc = cli("rollout", str(plan_file), "--json", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["state"] == "done" and result["halt"] is None
    assert [[h["host"] for h in w["hosts"]] for w in result["waves"]] == [
        [e["host"] for e in wave] for wave in plan["waves"]
    ]
    for wave in result["waves"]:
        for h in wave["hosts"]:
            assert h["state"] == "patched", h
    for host in (f"h0{i}" for i in range(1, 7)):
        assert installed(lab, host) == ("1.1" if mgr(lab, host) == "apt" else "1.1-1")

    store = Store()
    journal = Journal(store)
    record = journal.plan(plan["plan_id"])
    assert record is not None and record.state == "done"
    assert [w.state for w in record.waves] == ["done", "done", "done"]
    assert all(w.started and w.ended and w.started <= w.ended for w in record.waves)
    assert set(record.hosts.values()) == {"patched"}
    assert [t.state for t in journal.history(plan["plan_id"], "h04")] == ["pending", "running", "patched"]
    audit = list(AuditLog(store).records(action="rollout.*"))
    actions = [(r.action, r.subject) for r in audit]
    pid = plan["plan_id"]
    for i in (1, 2, 3):
        assert (("rollout.wave.start", f"{pid}/w{i}")) in actions
        assert (("rollout.wave.end", f"{pid}/w{i}")) in actions
    # the unapproved attempt is on record before the approved rollout
    assert actions[:2] == [("rollout.refused", pid), ("rollout.start", pid)]
    assert actions[-1] == ("rollout.end", pid)
    [start] = [r for r in audit if r.action == "rollout.start"]
    assert [a["approver"] for a in start.payload["approvals"]] == ["lab-approver-1"]
    assert start.payload["author"] == "lab-signing"
    # one artifacts folder per wave, holding both runs and their inputs
    for i, wave in enumerate(result["waves"], start=1):
        folder = Path(wave["artifacts"])
        assert folder.name == f"{pid}-w{i}"
        assert sorted(p.name for p in folder.iterdir()) == [f"{pid}-w{i}-patch", f"{pid}-w{i}-preflight"]
        assert (folder / f"{pid}-w{i}-patch" / "input" / "vars.yml").read_text().count("!unsafe") >= 1

    # posture before and after each wave, stored per host
    for i, wave in enumerate(result["waves"]):
        hosts = [h["host"] for h in wave["hosts"]]
        assert wave["posture_pre_hosts"] == sorted(hosts) == wave["posture_post_hosts"]
        for phase in ("pre", "post"):
            docs = journal.snapshots(pid, i, phase)
            assert sorted(docs) == sorted(hosts)
            assert all(d["schema"] == 1 and "nft_ruleset" in d["probes"] for d in docs.values())
        assert all(
            wave["prescan"][h] == {"labdemo": ["postinst"]} or wave["prescan"][h] == {"labdemo": ["scripts"]}
            for h in hosts
        )

    out = json.loads(cli("status", "--json").stdout)
    assert out["plan"]["plan_id"] == pid and out["plan"]["state"] == "done"

    # the report and the evidence bundle of the real rollout
    report = json.loads(cli("report", pid, "--format", "json").stdout)
    assert report["cves_closed"]["closed"] == {"CVE-2019-14287": [f"h0{i}" for i in range(1, 7)]}
    assert report["halt"] is None and [a["approver"] for a in report["approvals"]] == ["lab-approver-1"]
    bundle = tmp_path / "evidence.tar.gz"
    cli("forensics", pid, "--out", str(bundle))
    import tarfile

    with tarfile.open(bundle) as tar:
        names = [m.name.split("/", 1)[1] for m in tar.getmembers()]
    assert any(n.startswith("artifacts/") and n.endswith("-w1-patch/status") for n in names)
    assert "posture/w1/h01-post.json" in names and "MANIFEST.sha256" in names


PAYLOADS = ("{{ lookup('pipe','touch /tmp/pwned-ctl') }}", "; touch /tmp/pwned")


def _no_marker(lab, host):
    assert not Path("/tmp/pwned-ctl").exists(), "a payload ran on the controller"
    assert not Path("/tmp/pwned").exists(), "a payload ran on the controller"
    for marker in ("/tmp/pwned", "/tmp/pwned-ctl"):
        proc = lab.exec(host, ["test", "-e", marker], timeout=60)
        assert proc.returncode == 1, f"{marker} exists on {host}"


def test_hostile_plan_values_are_refused_before_anything_runs(lab, tmp_path):
    from patchbrain.models import PendingUpdate
    from patchbrain.plans import make_plan, plan_document

    base = plan_document(
        make_plan([PendingUpdate("h01", "labdemo", "1.0", "1.1", "apt")], inventory="", spec="1")
    )
    for name, version in (
        (PAYLOADS[0], "1.1"),
        ("labdemo", PAYLOADS[0]),
        (PAYLOADS[1], "1.1"),
        ("labdemo", PAYLOADS[1]),
    ):
        plan = yaml.safe_load(yaml.safe_dump(base))
        plan["waves"][0][0]["packages"][0].update(name=name, version=version)
        path = tmp_path / "hostile.yaml"
        path.write_text(yaml.safe_dump(plan))
        proc = cli("rollout", str(path), check=False)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "packages[0]" in proc.stderr
    _no_marker(lab, "h01")


def test_hostile_values_given_straight_to_the_playbooks_never_run(lab):
    """Skip patchbrain's own validation: the roles' grammar checks and `!unsafe` must hold on their own."""
    from patchbrain.executor.request import RunRequest
    from patchbrain.executor.runner import run

    inventory = lab.inventory_path()
    cases = [
        ("h01", PAYLOADS[0], "1.1"),
        ("h01", "labdemo", PAYLOADS[0]),
        ("h02", "labdemo", PAYLOADS[1]),
        ("h03", PAYLOADS[1], "1.1-1"),
    ]
    for i, (host, name, version) in enumerate(cases):
        for step, tags in (("pre", ("preflight",)), ("patch", ())):
            result = run(
                RunRequest(
                    playbook="rollout.yml",
                    inventory=inventory,
                    ident=f"hostile-{i}-{step}",
                    limit=(host,),
                    tags=tags,
                    skip_tags=() if tags else ("preflight",),
                    extravars={"patchbrain_plan_packages": {host: [{"name": name, "version": version}]}},
                )
            )
            assert result.host_outcome(host) == "failed"
            fails = [e for e in result.events if type(e).__name__ == "TaskFailed" and not e.ignored]
            assert fails and fails[-1].task == "Refuse names and versions outside the package grammar"
        _no_marker(lab, host)
        assert installed(lab, host) in ("1.0", "1.0-1")


def test_hostile_host_variables(lab, tmp_path):
    inventory = yaml.safe_load(lab.inventory_path().read_text())
    hosts = inventory["all"]["children"]["lab"]["children"]["vm"]["hosts"]
    # a variable patchbrain reads is validated before anything runs
    bad = yaml.safe_load(yaml.safe_dump(inventory))
    bad["all"]["children"]["lab"]["children"]["vm"]["hosts"]["h01"]["patchbrain_pkg_mgr"] = PAYLOADS[0]
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump(bad))
    proc = cli("discover", "-i", str(path), "--limit", "h01", check=False)
    assert proc.returncode == 2 and "patchbrain_pkg_mgr" in proc.stderr
    # a variable nothing reads is never templated: discovery runs normally and nothing is touched
    for name in hosts:
        hosts[name]["labdemo_note"] = PAYLOADS[0]
        hosts[name]["motd"] = PAYLOADS[1]
    path.write_text(yaml.safe_dump(inventory))
    doc = json.loads(cli("discover", "-i", str(path), "--limit", "h01", "--json").stdout)
    assert [h["host"] for h in doc["hosts"]] == ["h01"]
    _no_marker(lab, "h01")


def _plan(tmp_path, spec, limit, *, approved=True):
    return make_plan(tmp_path, spec, limit, approved=approved)


def test_a_failed_canary_halts_the_rollout_and_later_waves_never_start(lab, tmp_path):
    from patchbrain.journal import Journal
    from patchbrain.store import Store

    path = _plan(tmp_path, "1,1,100%", "h01,h02,h03,h04", approved=False)

    def break_canary(doc):
        canary = doc["waves"][0][0]
        canary["packages"][0]["version"] = "9.9" if canary["pkg_mgr"] == "apt" else "9.9-1"  # unpublished

    plan = remake(path, break_canary)
    approve(path)
    canary = plan["waves"][0][0]
    proc = cli("rollout", str(path), "--json", check=False)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["state"] == "halted" and result["halt"]["kind"] == "failures"
    assert result["halt"]["hosts"] == [canary["host"]]
    assert len(result["waves"]) == 1
    record = Journal(Store()).plan(plan["plan_id"])
    assert record.waves[0].state == "halted"
    assert all(w.state == "skipped" for w in record.waves[1:])
    assert record.hosts[canary["host"]] == "failed"
    others = [e["host"] for w in plan["waves"][1:] for e in w]
    assert all(record.hosts[h] == "skipped" for h in others)
    # Canary hosts other than the broken one hold exactly the version the plan names (the newest
    # published build: earlier tests may have published more); every other host is untouched.
    planned = {e["host"]: e["packages"][0]["version"] for e in plan["waves"][0]}
    for host in ("h01", "h02", "h03", "h04"):
        if host in planned and host != canary["host"]:
            assert installed(lab, host) == planned[host]
        else:
            assert installed(lab, host) in ("1.0", "1.0-1")


def test_prescan_findings_reach_the_gate_before_anything_is_installed(lab, tmp_path):
    from patchbrain.executor.rollout import Halt, WaveHooks, rollout
    from patchbrain.lab.content import LabContent
    from patchbrain.plans import load_plan

    version, _ = LabContent(lab.dir).publish_variant("accept-all")
    path = _plan(tmp_path, "1,100%", "h01,h02,h03")
    plan = load_plan(path)
    # the sabotaged build is the candidate everywhere
    assert {p.version for h in plan.hosts.values() for p in h.packages} == {version, f"{version}-1"}
    seen = {}

    def gate(ctx, findings):
        seen.update(findings)
        hits = [h for h, fs in findings.items() if any(f.category == "firewall" for f in fs)]
        return Halt("prescan", "maintainer script touches the firewall", tuple(hits)) if hits else None

    result = rollout(plan, inventory=lab.inventory_path(), hooks=WaveHooks(prescan_gate=gate), plan_file=path)
    assert result.state == "halted" and result.halt.kind == "prescan"
    canaries = plan.waves[0]  # one per package manager
    assert set(result.halt.hosts) == set(canaries)
    assert all(any(f.category == "firewall" and "nft" in f.text for f in seen[c]) for c in canaries)
    assert [h.state for h in result.waves[0].hosts] == ["skipped"] * len(canaries)
    for host in ("h01", "h02", "h03"):
        assert installed(lab, host) in ("1.0", "1.0-1")


def test_cancel_callback_stops_the_run(lab, tmp_path):
    import threading

    from patchbrain.executor.events import TaskStarted
    from patchbrain.executor.rollout import WaveHooks, rollout
    from patchbrain.plans import load_plan

    path = _plan(tmp_path, "1,100%", "h01,h02")
    plan = load_plan(path)
    stop = threading.Event()

    def on_event(event):
        if isinstance(event, TaskStarted):
            stop.set()

    result = rollout(
        plan,
        inventory=lab.inventory_path(),
        hooks=WaveHooks(on_event=on_event, cancel=stop.is_set),
        plan_file=path,
    )
    assert result.state == "canceled" and result.halt.kind == "canceled"
    assert {h.state for h in result.waves[0].hosts} == {"canceled"}
    status = (result.waves[0].artifacts / f"{plan.plan_id}-w1-preflight" / "status").read_text()
    assert status == "canceled"
    for host in ("h01", "h02"):
        assert installed(lab, host) in ("1.0", "1.0-1")


def _patch_run(lab, host, ident, version, **kw):
    from patchbrain.executor.request import RunRequest
    from patchbrain.executor.runner import run

    extravars = {"patchbrain_plan_packages": {host: [{"name": "labdemo", "version": version}]}}
    extravars.update(kw.pop("extravars", {}))
    return run(
        RunRequest(
            playbook="rollout.yml",
            inventory=lab.inventory_path(),
            ident=ident,
            limit=(host,),
            skip_tags=("preflight",),
            extravars=extravars,
            **kw,
        )
    )


def test_check_mode_reports_the_change_and_changes_nothing(lab):
    from patchbrain.executor.events import TaskChanged

    for host, version in (("h01", "1.1"), ("h02", "1.1-1")):
        result = _patch_run(lab, host, f"check-{host}", version, check=True)
        assert result.host_outcome(host) == "ok", result.status
        changed = [e.task for e in result.events if isinstance(e, TaskChanged)]
        assert (
            "Install the named versions with apt" in changed
            or "Install the named versions with dnf" in changed
        )
        assert result.data["patchbrain_patch"][host]["check_mode"] is True
        assert installed(lab, host) in ("1.0", "1.0-1")


def test_a_needed_reboot_stops_the_host_unless_patch_reboot_ok_says_otherwise(lab):
    from patchbrain.executor.events import TaskFailed

    assert lab.exec("h01", ["touch", "/run/reboot-required"]).returncode == 0
    result = _patch_run(lab, "h01", "reboot-null", "1.1")
    assert result.host_outcome("h01") == "failed"
    [fail] = [e for e in result.events if isinstance(e, TaskFailed) and not e.ignored]
    assert "patch_reboot_ok" in fail.message
    assert installed(lab, "h01") == "1.1"  # installed, then stopped loudly instead of rebooting

    assert lab.exec("h04", ["touch", "/run/reboot-required"]).returncode == 0
    result = _patch_run(lab, "h04", "reboot-false", "1.1", extravars={"patchbrain_reboot_ok": False})
    assert result.host_outcome("h04") == "ok"
    doc = result.data["patchbrain_patch"]["h04"]
    assert doc["reboot_required"] is True and doc["rebooted"] is False
    assert lab.exec("h04", ["test", "-e", "/run/reboot-required"]).returncode == 0


def test_playbooks_run_with_plain_ansible_playbook_and_limit_in_check_mode(lab):
    root = Path(__file__).resolve().parents[2]
    exe = Path(sys.executable).parent / "ansible-playbook"
    for playbook, extra in (
        ("discover.yml", []),
        ("rollout.yml", ["-e", '{"patchbrain_plan_packages": {}}']),
    ):
        proc = subprocess.run(
            [
                str(exe),
                "-i",
                str(lab.inventory_path()),
                f"playbooks/{playbook}",
                "--limit",
                "h01",
                "--check",
                *extra,
            ],
            cwd=root,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            text=True,
            timeout=600,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        assert "h01" in proc.stdout and "failed=0" in proc.stdout
    assert installed(lab, "h01") == "1.0"
