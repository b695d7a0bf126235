"""Faults on real lab hosts: concurrent rollouts, a controller killed mid-wave, a host that dies and a held
package-manager lock (SSH dropped mid-task and a full disk are run by the red-team faults scenario, whose
fault mechanics these tests share: patchbrain.redteam.faults).

Each test drives the real `patchbrain rollout --json` CLI, then checks the exact outcome in its JSON, the
journal and the audit log, that `patchbrain audit verify` passes, and what is really installed (over SSH,
outside Ansible; `/var/log/dpkg.log` shows how many times a host was upgraded). One fleet of 5 hosts (h01-h04
apt, h05 dnf) for the module, in a private PATCHBRAIN_HOME.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml
from lab_helpers import own_fleet

from patchbrain.redteam.faults import (
    HOLD_APT,
    HOLD_DNF,
    INSTALL_TASK,
    LOCK_TASK,
    failures_halt,
    hold_package_lock,
    kill_host,
    kill_tree,
    rollout_records,
    task_event,
    upgrades,
    wait_for,
    wave_dir,
)
from patchbrain.redteam.faults import run_events as events

pytestmark = [
    pytest.mark.lab,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

FLAVORS = ("apt", "apt", "apt", "apt", "dnf")
CLI = [sys.executable, "-m", "patchbrain"]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    # the safety loop runs (it is on by default); a short canary bake keeps the waves moving
    env = {"PATCHBRAIN_CANARY_BAKE": "0s"}
    for lab in own_fleet(tmp_path_factory, "faults", len(FLAVORS), FLAVORS, lab_keys=True, env=env):
        lab.fresh = True
        yield lab


@pytest.fixture
def lab(fleet):
    if not fleet.fresh:
        fleet.up(len(FLAVORS), FLAVORS)  # a test may have stopped a host
        fleet.reset()
    fleet.fresh = False
    return fleet


# -- helpers ---------------------------------------------------------------------------------------------


def cli(*args, check=True, timeout=1800, env=None):
    proc = subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=None if env is None else {**os.environ, **env},
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"patchbrain {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


class Background:
    """`patchbrain ARGS` running in the background, output in files (no pipe can fill up)."""

    def __init__(self, tmp_path, *args):
        self.out, self.err = tmp_path / f"out-{time.monotonic_ns()}", tmp_path / f"err-{time.monotonic_ns()}"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen([*CLI, *args], stdout=out, stderr=err)
        self.pid = self.proc.pid

    def finish(self, timeout=1800):
        rc = self.proc.wait(timeout)
        return rc, self.out.read_text(), self.err.read_text()


def plan_for(tmp_path, name, spec, limit):
    """Discover `limit`, plan it with `spec`, approve with a lab key; returns (path, plan document)."""
    cli("discover", "--limit", limit)
    path = tmp_path / f"{name}.yaml"
    cli("plan", "--waves", spec, "--out", str(path), "--author-key", "lab-signing")
    cli("approve", str(path), "--key", "lab-approver-1")
    return path, yaml.safe_load(path.read_text())


def waves_of(plan):
    return [[e["host"] for e in wave] for wave in plan["waves"]]


def journal():
    from patchbrain.journal import Journal
    from patchbrain.store import Store

    return Journal(Store())


def audit_actions(plan_id):
    from patchbrain.audit import AuditLog
    from patchbrain.store import Store

    return [
        r
        for r in AuditLog(Store()).records()
        if r.action.startswith("rollout.") and (r.subject == plan_id or r.subject.startswith(plan_id + "/"))
    ]


def audit_seq():
    """The audit log's last sequence number (records of a later rollout come after it)."""
    from patchbrain.audit import AuditLog
    from patchbrain.store import Store

    return AuditLog(Store()).head()[0]


def run_audit(plan_id, since):
    """The plan's `rollout.*` audit records after seq `since`, pinned as the red-team judge pins them."""
    from patchbrain.store import Store

    return rollout_records(Store(), plan_id, since)


def resume_record(plan_id, since):
    """The full payload of the plan's one `rollout.resume` record after `since` (what `--json` calls
    `resumed`)."""
    from patchbrain.audit import AuditLog
    from patchbrain.store import Store

    [rec] = [r for r in AuditLog(Store()).records(after_seq=since, action="rollout.resume")
             if r.subject == plan_id]  # fmt: skip
    return rec.payload["resume"]


def audit_verifies():
    proc = cli("audit", "verify", "--json")
    doc = json.loads(proc.stdout)
    assert doc["ok"] is True and doc["problem"] is None, doc
    return doc


def installed(lab, host):
    proc = lab.exec(
        host, ["dpkg-query", "-W", "-f", "${Version} ${db:Status-Abbrev}", "labdemo"], timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    version, status = proc.stdout.split(" ", 1)
    assert status.strip() == "ii", proc.stdout  # never half-installed
    return version


def history(plan_id, host):
    return [t.state for t in journal().history(plan_id, host)]


def wave_hosts(doc, wave):
    """{host: state} of wave `wave` (1-based) in a `rollout --json` document."""
    [w] = [w for w in doc["waves"] if w["wave"] == wave]
    return {h["host"]: h["state"] for h in w["hosts"]}


def clean_wave_records(wave: int, hosts: list[str]) -> list[tuple[str, str, dict]]:
    """The rollout.* audit records of wave `wave` (1-based) that ended done, every host patched, verified."""
    return [
        ("rollout.wave.start", f"/w{wave}", {"hosts": hosts}),
        (
            "rollout.wave.end",
            f"/w{wave}",
            {
                "state": "done",
                "halt": None,
                "hosts": dict.fromkeys(hosts, "patched"),
                "states": {"patched": len(hosts)},
                "verified": dict.fromkeys(hosts, "ok"),
                "rollback": {},
            },
        ),
    ]


def resumed_wave_2_records(reverified: dict, to_run: list[str], w2: list[str]) -> list[tuple[str, str, dict]]:
    """The plan's rollout.* audit records of a resume that re-verified wave 2 and patched all of it."""
    return [
        ("rollout.resume", "", {"reverified": reverified, "to_run": to_run}),
        *clean_wave_records(2, w2),
        ("rollout.end", "", {"state": "done", "halt": None}),
    ]


# -- 1. concurrent rollouts --------------------------------------------------------------------------------


def test_a_second_rollout_on_the_same_hosts_is_refused_naming_the_holder(lab, tmp_path):
    from patchbrain.executor.lock import holders
    from patchbrain.store import Store

    a_path, a = plan_for(tmp_path, "a", "1,100%", "h01,h02")
    b_path, b = plan_for(tmp_path, "b", "1,100%", "h02,h03")
    first = Background(tmp_path, "rollout", str(a_path), "--json")
    holder = wait_for(
        "plan a's rollout lock",
        lambda: next((h for h in holders(Store()) if h.plan_id == a["plan_id"]), None),
    )
    assert (holder.pid, holder.machine, holder.hosts) == (first.pid, socket.gethostname(), ("h01", "h02"))

    second = cli("rollout", str(b_path), "--json", check=False)
    again = cli("rollout", str(a_path), "--json", check=False)  # the same plan, twice at once
    assert first.proc.poll() is None, "plan a ended before the second rollouts were tried"
    for proc, disputed in ((second, "h02"), (again, "h01, h02")):
        assert proc.returncode == 5, proc.stdout + proc.stderr
        assert proc.stdout == ""  # refused before anything ran: no rollout document
        assert f"{disputed} held by the rollout of plan {a['plan_id']}" in proc.stderr
        assert f"(pid {first.pid} on {holder.machine}, since {holder.started})" in proc.stderr

    rc, out, err = first.finish()
    assert rc == 0, out + err
    doc = json.loads(out)
    assert doc["state"] == "done" and doc["lock_taken_over"] == []
    assert {h["host"]: h["state"] for w in doc["waves"] for h in w["hosts"]} == {
        "h01": "patched",
        "h02": "patched",
    }
    assert holders(Store()) == []  # released at the end
    assert journal().plan(b["plan_id"]) is None  # plan b never started
    assert installed(lab, "h03") == "1.0"

    refused_b = [r for r in audit_actions(b["plan_id"]) if r.action == "rollout.refused"]
    assert len(refused_b) == 1 and audit_actions(b["plan_id"]) == refused_b
    [h] = refused_b[0].payload["holders"]
    assert (h["plan_id"], h["pid"], h["machine"], h["hosts"]) == (
        a["plan_id"],
        first.pid,
        holder.machine,
        ["h02"],
    )
    actions = [(r.action, r.subject.split("/")[-1]) for r in audit_actions(a["plan_id"])]
    pid = a["plan_id"]
    assert actions[0] == ("rollout.start", pid) and actions[-1] == ("rollout.end", pid)
    assert actions.count(("rollout.refused", pid)) == 1
    audit_verifies()


# -- 2. controller SIGKILL mid-wave, then --resume ---------------------------------------------------------


def test_controller_killed_mid_wave_then_resume(lab, tmp_path):
    path, plan = plan_for(tmp_path, "crash", "1,100%", "h01,h02,h03,h04")
    pid = plan["plan_id"]
    [w1, w2] = waves_of(plan)
    assert len(w1) == 1 and len(w2) == 3
    # forks 1: wave 2 installs one host after the other, so the kill lands between hosts
    run = Background(tmp_path, "rollout", str(path), "--json", "--forks", "1")
    patch_dir = wave_dir(pid, 2) / f"{pid}-w2-patch"
    first_done = wait_for(
        "the first install of wave 2", lambda: task_event(patch_dir, "runner_on_ok", INSTALL_TASK)
    )
    killed = kill_tree(run.pid)
    assert run.proc.wait(60) == -signal.SIGKILL and len(killed) > 1
    done_first = first_done["event_data"]["host"]

    record = journal().plan(pid)
    assert record.state == "running" and [w.state for w in record.waves] == ["done", "running"]
    assert {h: record.hosts[h] for h in w2} == dict.fromkeys(w2, "running")

    # approvals are checked again before anything else: under a stricter policy the resume is refused
    proc = cli(
        "rollout", str(path), "--resume", "--json", check=False, env={"PATCHBRAIN_APPROVAL_QUORUM_HOSTS": "1"}
    )
    assert proc.returncode == 5 and proc.stdout == "", proc.stderr
    assert "need 2 distinct approvers" in proc.stderr
    assert journal().plan(pid).hosts == record.hosts  # nothing moved

    proc = cli("rollout", str(path), "--resume", "--json", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["state"] == "done" and doc["halt"] is None
    # the dead controller's lock was reported and taken over
    [stale] = doc["lock_taken_over"]
    assert (stale["plan_id"], stale["pid"]) == (pid, run.pid)
    resumed = doc["resumed"]
    assert resumed["wave"] == 2 and resumed["previous_state"] == "running"
    assert sorted(resumed["reverified"]) == sorted(w2)  # the interrupted wave only; wave 1 is never re-read
    assert resumed["reverified"][done_first]["state"] == "patched"
    verified = sorted(h for h, v in resumed["reverified"].items() if v["state"] == "patched")
    pending = sorted(h for h, v in resumed["reverified"].items() if v["state"] == "pending")
    assert sorted(verified + pending) == sorted(w2) and sorted(resumed["to_run"]) == pending
    assert [w["wave"] for w in doc["waves"]] == [2]
    assert {h["host"]: h["state"] for h in doc["waves"][0]["hosts"]} == dict.fromkeys(w2, "patched")

    # hosts already patched were never patched again; everything is at the plan, upgraded exactly once
    for host in w1 + w2:
        assert installed(lab, host) == "1.1"
        assert upgrades(lab, host) == 1, host
    assert history(pid, w1[0]) == ["pending", "running", "patched"]
    for host in verified:
        assert history(pid, host) == ["pending", "running", "verifying", "patched"]
    for host in pending:
        assert history(pid, host) == ["pending", "running", "verifying", "pending", "running", "patched"]
    if pending:  # the resumed run's own artifacts, next to the interrupted ones; only pending hosts in it
        vars_file = wave_dir(pid, 2) / f"{pid}-w2-resume1-patch" / "input" / "vars.yml"
        text = vars_file.read_text()
        assert sorted(h for h in w2 if f"\n  '{h}':" in text) == pending
    assert (patch_dir / "job_events").is_dir()  # the interrupted run's evidence is kept

    record = journal().plan(pid)
    assert record.state == "done" and [w.state for w in record.waves] == ["done", "done"]
    actions = [(r.action, r.subject.removeprefix(pid)) for r in audit_actions(pid)]
    assert actions == [
        ("rollout.start", ""),
        ("rollout.wave.start", "/w1"),
        ("rollout.wave.end", "/w1"),
        ("rollout.wave.start", "/w2"),  # the last record of the killed controller
        ("rollout.refused", ""),
        ("rollout.lock.stale", ""),
        ("rollout.resume", ""),
        ("rollout.wave.start", "/w2"),
        ("rollout.wave.end", "/w2"),
        ("rollout.end", ""),
    ]
    audit_verifies()


# -- 3. a host dies mid-wave ---------------------------------------------------------------------------------


def test_a_host_that_dies_mid_wave_is_unreachable_never_patched_and_resume_reverifies_it(lab, tmp_path):
    path, plan = plan_for(tmp_path, "dies", "1,100%", "h01,h02,h03,h04")
    pid = plan["plan_id"]
    [w1, w2] = waves_of(plan)
    assert len(w1) == 1  # the canary
    victim = w2[1]
    run = Background(tmp_path, "rollout", str(path), "--json")
    pre_dir = wave_dir(pid, 2) / f"{pid}-w2-preflight"
    wait_for(
        "wave 2's preflight", lambda: any(e.get("event") == "playbook_on_task_start" for e in events(pre_dir))
    )
    kill_host(lab, victim)  # every process of the host, its PID 1 included

    rc, out, err = run.finish()
    assert rc == 4, out + err
    doc = json.loads(out)
    others = [h for h in w2 if h != victim]
    halt = failures_halt(2, {victim: "unreachable"})
    w2_states = {**dict.fromkeys(others, "patched"), victim: "unreachable"}
    assert (doc["state"], doc["halt"], doc["resumed"], doc["lock_taken_over"]) == ("halted", halt, None, [])
    assert [(w["wave"], w["halt"]) for w in doc["waves"]] == [(1, None), (2, halt)]
    assert wave_hosts(doc, 1) == dict.fromkeys(w1, "patched") and wave_hosts(doc, 2) == w2_states
    [dead] = [h for h in doc["waves"][1]["hosts"] if h["host"] == victim]
    assert (dead["before"], dead["after"], dead["reboot_required"]) == ({}, {}, None)  # nothing reported
    assert sorted(doc["waves"][1]["safety"]["verify"]) == sorted(others)  # the verifier vouched for them only
    record = journal().plan(pid)
    assert record.state == "halted" and [w.state for w in record.waves] == ["done", "halted"]
    assert record.waves[1].summary["halt"] == halt
    assert [(t.state, t.detail) for t in journal().history(pid, victim)] == [
        ("pending", ""),
        ("running", ""),
        ("unreachable", "unreachable"),
    ]
    for host in w1 + others:
        assert history(pid, host) == ["pending", "running", "patched"], host
    assert run_audit(pid, 0) == [
        ("rollout.start", "", {"waves": [w1, w2]}),
        *clean_wave_records(1, w1),
        ("rollout.wave.start", "/w2", {"hosts": w2}),
        (
            "rollout.wave.end",
            "/w2",
            {
                "state": "halted",
                "halt": halt,
                "hosts": w2_states,
                "states": {"patched": 2, "unreachable": 1},
                "verified": dict.fromkeys(others, "ok"),
                "rollback": {},
            },
        ),
        ("rollout.end", "", {"state": "halted", "halt": halt}),
    ]
    audit_verifies()

    # still down: --resume re-reads it, it stays unreachable, the wave stays halted
    seq = audit_seq()
    proc = cli("rollout", str(path), "--resume", "--json", check=False)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    reverified = {h: v["state"] for h, v in doc["resumed"]["reverified"].items()}
    assert reverified == w2_states and doc["resumed"]["to_run"] == []
    assert (doc["resumed"]["wave"], doc["resumed"]["previous_state"]) == (2, "halted")
    assert doc["resumed"]["reverified"][victim]["detail"].startswith("not reachable over the second channel")
    assert (doc["state"], doc["halt"]) == ("halted", halt)
    assert [w["wave"] for w in doc["waves"]] == [2] and wave_hosts(doc, 2) == w2_states
    assert resume_record(pid, seq) == doc["resumed"]
    wave2_end = {
        "state": "halted",
        "halt": halt,
        "hosts": w2_states,
        "states": {"patched": 2, "unreachable": 1},
        "verified": dict.fromkeys(others, "ok"),
        "rollback": {},
    }
    assert run_audit(pid, seq) == [
        ("rollout.resume", "", {"reverified": w2_states, "to_run": []}),
        ("rollout.wave.start", "/w2", {"hosts": w2}),
        ("rollout.wave.end", "/w2", wave2_end),
        ("rollout.end", "", {"state": "halted", "halt": halt}),
    ]
    audit_verifies()

    lab.up(len(FLAVORS), FLAVORS)  # the host comes back with its disk as it was
    assert installed(lab, victim) == "1.0"
    seq = audit_seq()
    proc = cli("rollout", str(path), "--resume", "--json", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    reverified = {h: v["state"] for h, v in doc["resumed"]["reverified"].items()}
    assert reverified == {**dict.fromkeys(others, "patched"), victim: "pending"}
    assert doc["resumed"]["to_run"] == [victim]
    assert doc["resumed"]["reverified"][victim]["versions"] == {"labdemo": "1.0"}
    assert (doc["state"], doc["halt"], doc["waves"][0]["halt"]) == ("done", None, None)
    assert [w["wave"] for w in doc["waves"]] == [2] and wave_hosts(doc, 2) == dict.fromkeys(w2, "patched")
    assert resume_record(pid, seq) == doc["resumed"]
    assert run_audit(pid, seq) == resumed_wave_2_records(reverified, [victim], w2)
    for host in w1 + w2:
        assert installed(lab, host) == "1.1" and upgrades(lab, host) == 1, host
    assert history(pid, victim) == [
        "pending",
        "running",
        "unreachable",
        "verifying",
        "unreachable",
        "verifying",
        "pending",
        "running",
        "patched",
    ]
    for host in others:  # re-read by both resumes, never run again
        assert history(pid, host) == ["pending", "running", "patched", *["verifying", "patched"] * 2], host
    assert history(pid, w1[0]) == ["pending", "running", "patched"]
    record = journal().plan(pid)
    assert record.state == "done" and [w.state for w in record.waves] == ["done", "done"]
    audit_verifies()


# -- SSH dropped mid-task, a full disk: the red-team faults scenario (patchbrain/redteam/faults.py) runs
# them with this module's mechanics on every `make redteam`; tests/lab/test_redteam_safety_lab.py proves it
# fails with the failure threshold or the disk pre-flight switched off.


# -- 5. a package manager's lock held by another process ----------------------------------------------------

# The lock holders are shared with the red-team faults scenario (patchbrain.redteam.faults).


def _hold(lab, host, code):
    return hold_package_lock(lab, host, code)


def rpm_installed(lab, host):
    proc = lab.exec(host, ["rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}", "labdemo"], timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_a_held_package_manager_lock_fails_that_host_after_a_bounded_wait(lab, tmp_path):
    path, plan = plan_for(tmp_path, "pmlock", "1,100%", "h01,h02,h03,h05")
    pid = plan["plan_id"]
    [w1, w2] = waves_of(plan)
    assert w1 == ["h01"] and sorted(w2) == ["h02", "h03", "h05"]
    apt_holder = _hold(lab, "h03", HOLD_APT)
    dnf_holder = _hold(lab, "h05", HOLD_DNF)

    proc = cli("rollout", str(path), "--json", "--lock-timeout", "20", check=False)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    halt = failures_halt(2, {"h03": "failed", "h05": "failed"})
    w2_states = {"h02": "patched", "h03": "failed", "h05": "failed"}
    assert (doc["state"], doc["halt"], doc["resumed"], doc["lock_taken_over"]) == ("halted", halt, None, [])
    assert [(w["wave"], w["halt"]) for w in doc["waves"]] == [(1, None), (2, halt)]
    assert wave_hosts(doc, 1) == {"h01": "patched"} and wave_hosts(doc, 2) == w2_states
    for h in doc["waves"][1]["hosts"]:
        if h["host"] != "h02":  # nothing reported installed on a host that never got the lock
            assert (h["before"], h["after"], h["reboot_required"]) == ({}, {}, None), h
    assert doc["waves"][1]["safety"]["verify"].keys() == {"h02"}
    record = journal().plan(pid)
    assert record.state == "halted" and [w.state for w in record.waves] == ["done", "halted"]
    assert record.waves[1].summary["halt"] == halt
    detail = {t.host: t.detail for t in journal().history(pid) if t.state == "failed"}
    for host, holder, code, lock in (
        ("h03", apt_holder, HOLD_APT, "/var/lib/dpkg/lock-frontend"),
        ("h05", dnf_holder, HOLD_DNF, "/var/lib/dnf/rpmdb_lock.pid"),
    ):
        assert detail[host] == (
            f"{LOCK_TASK}: non-zero return code: the package database is locked by pid {holder} "
            f"({('python3 -c ' + code)[:120]}) ({lock}); gave up after 20 s"
        )
        assert history(pid, host) == ["pending", "running", "failed"], host
        # the wait was bounded: from the task's start to its failure, at least the timeout, not forever
        patch_dir = wave_dir(pid, 2) / f"{pid}-w2-patch"
        start, end = (
            task_event(patch_dir, kind, LOCK_TASK, host) for kind in ("runner_on_start", "runner_on_failed")
        )
        took = (_when(end) - _when(start)).total_seconds()
        assert 20 <= took <= 20 + 300, (host, took)
    for host in ("h01", "h02"):
        assert history(pid, host) == ["pending", "running", "patched"], host
    assert run_audit(pid, 0) == [
        ("rollout.start", "", {"waves": [w1, w2]}),
        *clean_wave_records(1, w1),  # w1 == ["h01"]
        ("rollout.wave.start", "/w2", {"hosts": w2}),
        (
            "rollout.wave.end",
            "/w2",
            {
                "state": "halted",
                "halt": halt,
                "hosts": w2_states,
                "states": {"failed": 2, "patched": 1},
                "verified": {"h02": "ok"},
                "rollback": {},
            },
        ),
        ("rollout.end", "", {"state": "halted", "halt": halt}),
    ]
    assert installed(lab, "h03") == "1.0" and rpm_installed(lab, "h05") == "1.0-1"
    assert installed(lab, "h02") == "1.1"
    audit_verifies()

    # the holders finish: --resume re-reads the wave and patches the two hosts, and only them
    for host in ("h03", "h05"):
        lab.exec(host, ["sh", "-c", 'kill "$(cat /run/holder.pid)"'], check=True)
    seq = audit_seq()
    proc = cli("rollout", str(path), "--resume", "--json", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    reverified = {"h02": "patched", "h03": "pending", "h05": "pending"}
    assert {h: v["state"] for h, v in doc["resumed"]["reverified"].items()} == reverified
    assert {h: v["versions"] for h, v in doc["resumed"]["reverified"].items()} == {
        "h02": {"labdemo": "1.1"},
        "h03": {"labdemo": "1.0"},
        "h05": {"labdemo": "1.0-1"},
    }
    assert doc["resumed"]["to_run"] == [h for h in w2 if h in ("h03", "h05")]
    assert (doc["state"], doc["halt"], doc["lock_taken_over"]) == ("done", None, [])
    assert [w["wave"] for w in doc["waves"]] == [2] and wave_hosts(doc, 2) == dict.fromkeys(w2, "patched")
    assert resume_record(pid, seq) == doc["resumed"]
    assert run_audit(pid, seq) == resumed_wave_2_records(reverified, doc["resumed"]["to_run"], w2)
    for host in ("h03", "h05"):
        assert history(pid, host) == ["pending", "running", "failed", "verifying", "pending", "running",
                                      "patched"], host  # fmt: skip
    assert history(pid, "h02") == ["pending", "running", "patched", "verifying", "patched"]
    assert journal().plan(pid).state == "done"
    assert installed(lab, "h03") == "1.1" and rpm_installed(lab, "h05") == "1.1-1"
    assert upgrades(lab, "h02") == 1
    audit_verifies()


def _when(event):
    import datetime as dt

    return dt.datetime.fromisoformat(event["created"])
