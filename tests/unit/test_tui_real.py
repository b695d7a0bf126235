"""The real backend on patchbrain's own state: inventory, audit chain, model; what it will not invent."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from patchbrain.audit import open_audit_log
from patchbrain.store import Store
from tui.__main__ import make_app
from tui.backend import Refused, Unavailable
from tui.real import RealBackend

REPO = Path(__file__).resolve().parents[2]


def test_fleet_from_inventory(pb_home: Path) -> None:
    backend = RealBackend(inventory=REPO / "inventory" / "example-fleet.yml")
    rows = backend.fleet()
    assert rows and all(r.posture_source == "unknown" and r.pending is None for r in rows)
    detail = backend.host_detail(rows[0].name)
    assert detail.row.name == rows[0].name and detail.pending == ()


def test_fleet_posture_source_is_read_from_each_hosts_snapshot(pb_home: Path) -> None:
    """Simulated only where the host's own snapshot carried the lab stand-in's marker: never guessed from
    whether the inventory is the lab's."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from posture_helpers import document, recorded_getenforce
    finally:
        sys.path.pop(0)
    from patchbrain.journal import Journal
    from patchbrain.lab.shim import MARKER_TEXT

    journal = Journal(Store())
    hosts = ["web-01.example.org", "web-02.example.org"]
    journal.add_plan("p1", inventory="inv", document={"waves": [hosts]}, waves=[hosts])
    journal.set_wave("p1", 0, "done")
    enforcing = recorded_getenforce("enforcing")
    journal.save_snapshot(
        "p1", 0, hosts[0], "post", document(hosts[0], getenforce=enforcing, selinux_simulated=MARKER_TEXT)
    )
    journal.save_snapshot("p1", 0, hosts[1], "post", document(hosts[1], getenforce=enforcing))
    rows = {r.name: r for r in RealBackend(inventory=REPO / "inventory" / "example-fleet.yml").fleet()}
    assert (rows[hosts[0]].selinux, rows[hosts[0]].posture_source) == ("enforcing", "simulated")
    assert (rows[hosts[1]].selinux, rows[hosts[1]].posture_source) == ("enforcing", "real")
    assert rows["db-01.example.org"].posture_source == "unknown"


def test_missing_inventory_is_said(pb_home: Path) -> None:
    with pytest.raises(Unavailable, match=r"no inventory|inventory"):
        RealBackend(inventory=pb_home / "nope.yml").fleet()


def test_parts_without_data_refuse_instead_of_inventing(pb_home: Path) -> None:
    backend = RealBackend(inventory=REPO / "inventory" / "example-fleet.yml")
    assert backend.current_plan() is None and backend.approvals() == []
    with pytest.raises(Unavailable, match="no discovery on record"):
        backend.create_plan()
    with pytest.raises(Refused, match="no plan p1"):
        backend.approve("p1", "alice")


def test_approvals_through_the_tui_use_the_real_policy(pb_home: Path) -> None:
    from patchbrain.approvals import gather, policy_from_env, require_approved
    from patchbrain.keys import KeyStore

    keys = KeyStore()
    keys.new("author")
    keys.new("approver")
    _discovery(pb_home)
    backend = RealBackend(inventory=pb_home / "inv.yml", author_key="author")
    plan_id = backend.create_plan().plan_id
    (waiting,) = backend.approvals()
    assert not waiting.approved and waiting.state.startswith("waiting: 0 of 1")
    with pytest.raises(Refused, match="authored this plan"):
        backend.approve(plan_id, "author")
    view = backend.approve(plan_id, "approver")
    assert view.approved and view.approvals == ("approver",) and view.state == "approved"
    plan = backend.plan
    assert plan is not None
    verdict = require_approved(plan, gather(plan, Store()), keystore=keys, policy=policy_from_env())
    assert [v["approver"] for v in verdict.valid] == ["approver"]
    actions = [r.action for r in open_audit_log(Store()).records()]
    assert actions.count("plan.approve.refused") == 1 and actions.count("plan.approve") == 1


def test_audit_screen_shows_chain_and_its_break(pb_home: Path) -> None:
    store = Store()
    log = open_audit_log(store)
    for i in range(3):
        log.append("root@test", "plan.create", f"plan-{i}", {"i": i})
    store.close()

    async def look() -> tuple[str, int]:
        app = make_app(RealBackend(inventory=REPO / "inventory" / "example-fleet.yml"))
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("5")
            await pilot.pause()
            chain = str(app.screen.query_one("#chain", Static).content)
            return chain, app.screen.query_one("#records", DataTable).row_count

    chain, n = asyncio.run(look())
    assert chain.startswith("Chain OK: 3 records") and n == 3

    conn = sqlite3.connect(pb_home / "patchbrain.db", isolation_level=None)
    triggers = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")]
    for t in triggers:
        conn.execute(f"DROP TRIGGER {t}")
    conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    conn.close()
    chain, _ = asyncio.run(look())
    assert chain.startswith("CHAIN BROKEN")


def test_model_screen_shows_the_active_bundle(pb_home: Path) -> None:
    info = RealBackend().model()
    shares = [v for _n, v in info.top_features]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1.0 + 1e-9
    assert any(name == "AP ratio to CVSS" for name, _v in info.metrics)


def _discovery(pb_home: Path) -> None:
    from patchbrain.journal import Journal

    host = {
        "host": "web-01",
        "pkg_mgr": "apt",
        "os_family": "Debian",
        "distribution": "Debian",
        "release": "12",
        "installed": {},
        "reboot_required": False,
        "problems": [],
    }
    docs = []
    for name in ("web-01", "web-02", "db-01"):
        pending = [{"host": name, "package": "openssl", "installed": "3.0.14-1", "candidate": "3.0.15-1"}]
        pending[0]["pkg_mgr"] = "apt"
        pending[0]["cves"] = ["CVE-2024-5535"]
        if name == "db-01":
            pending.append({**pending[0], "package": "tzdata", "candidate": "2024b-0", "cves": []})
        docs.append({**host, "host": name, "pending": pending})
    Journal(Store()).add_discovery(
        inventory=str(pb_home / "inv.yml"), artifacts="-", document={"hosts": docs}
    )


def test_plan_from_the_latest_discovery_and_rollout_hooks(
    pb_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import patchbrain.executor.rollout as ex
    from patchbrain.executor.events import TaskChanged

    _discovery(pb_home)
    backend = RealBackend(inventory=pb_home / "inv.yml")
    view = backend.create_plan()
    plan = backend._plan
    assert [(e.package, e.hosts, e.cves) for e in view.entries] == [
        ("openssl", 3, ("CVE-2024-5535",)),
        ("tzdata", 1, ()),
    ]
    # the plan's own (fallback) risk scores and explanations; the waves say when they may run
    assert 0 < view.entries[0].risk <= 1 and "(fallback)" in view.entries[0].explanation[1]
    assert view.entries[0].explanation[-1].startswith("fallback: no prioritizer scores")
    first, second = (plan.wave_schedule(i).earliest_start for i in (0, 1))
    assert [w.window for w in view.waves] == [
        f"not before {first.isoformat(timespec='minutes')}; canary, 0 may fail",
        f"not before {second.isoformat(timespec='minutes')}; wave, 0 may fail",
    ]
    assert (pb_home / "plans" / f"{view.plan_id}.yaml").is_file()
    # The planner widens the canary to cover each distinct package set: {openssl, tzdata} and {openssl}.
    assert [len(w.hosts) for w in view.waves] == [2, 1]
    (pb_home / "inv.yml").write_text("all:\n  hosts:\n    web-01: {}\n    web-02: {}\n    db-01: {}\n")

    def fake_rollout(plan, *, inventory, store, hooks, options):  # the executor's hook contract
        canary = plan.waves[0][0]
        hooks.on_wave_state(0, "running")
        hooks.on_host_state(canary, "running", "")
        hooks.on_event(TaskChanged("id", 7, canary, "Upgrade planned packages", "apt", "Patch", None))
        hooks.on_host_state(canary, "restored", "rolled back")
        hooks.on_wave_state(0, "halted")
        outcome = ex.WaveOutcome(
            plan.plan_id, 0, pb_home, (ex.HostResult(canary, "restored", {}, {}, {}, None),), {}, {}, {}
        )
        halt = ex.Halt("failures", "canary failed")
        return ex.RolloutResult(plan.plan_id, "halted", (outcome,), halt)

    monkeypatch.setattr(ex, "rollout", fake_rollout)
    seen: list[object] = []
    end = backend.rollout(view.plan_id, seen.append, lambda: False)
    assert (
        end.state == "halted" and end.reason == "canary failed" and end.restored == (view.waves[0].hosts[0],)
    )
    kinds = [type(e).__name__ for e in seen]
    assert kinds == ["WaveState", "HostState", "TaskEvent", "HostState", "WaveState"]
    task = seen[2]
    assert task.wave == 1 and task.status == "changed" and task.raw["counter"] == 7  # type: ignore[attr-defined]


def test_posture_summary_from_recorded_snapshots() -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from posture_helpers import document, fixture, recorded_getenforce
    finally:
        sys.path.pop(0)
    from tui.real import posture_summary

    doc = document(
        "web1",
        nft_ruleset=fixture("nft/base.json"),
        getenforce=recorded_getenforce("enforcing"),
    )
    assert posture_summary("web1", doc) == ("enforcing", "fw drop", "real")
    # the lab stand-in's marker, read from the host, is what makes a reading simulated
    marked = {**doc, "probes": {**doc["probes"], "selinux_simulated": doc["probes"]["getenforce"]}}
    assert posture_summary("web1", marked) == ("enforcing", "fw drop", "simulated")
    opened = document("web1", nft_ruleset=fixture("nft/accept_all.json"))
    assert posture_summary("web1", opened) == ("absent", "fw accept (rule accepts all)", "real")
    assert posture_summary("web1", document("web1", nft_ruleset=fixture("nft/empty.json")))[1] == "fw none"
    assert posture_summary("web1", {"garbage": True}) == ("?", "?", "unknown")


def test_drift_findings_come_from_the_safety_loops_wave_record() -> None:
    from types import SimpleNamespace

    from tui.backend import DriftFinding
    from tui.real import drift_findings

    change = {"host": "h01", "kind": "firewall.admits", "effect": "weakens", "reason": "rule `accept`"}
    late = {"host": "h02", "kind": "firewall.admits", "effect": "weakens", "reason": "tcp dport 4444 accept"}
    waves = [
        SimpleNamespace(index=0, extra={"safety": {"drift": {"blocking": [change]}, "bake": None}}),
        SimpleNamespace(index=1, extra={"safety": {"drift": {"blocking": []}, "bake": {"blocking": [late]}}}),
        SimpleNamespace(index=2, extra={}),
    ]
    assert drift_findings(waves) == [
        DriftFinding(1, "h01", "firewall.admits", "weakens: rule `accept`"),
        DriftFinding(2, "h02", "firewall.admits", "weakens: tcp dport 4444 accept"),
    ]


def test_plan_entries_show_disputed_cve_claims() -> None:
    from patchbrain.models import FixClaim, PendingUpdate
    from patchbrain.plans import make_plan
    from tui.real import plan_view

    claims = (
        FixClaim("CVE-2023-38545", "fixed", "changelog", "changelog entry 7.88.1-10+deb12u3"),
        FixClaim("CVE-2023-38545", "not-fixed", "osv:DSA-5523-1", "still affected"),
    )
    update = PendingUpdate(
        "web1", "curl", "7.88.1-10+deb12u2", "7.88.1-10+deb12u3", "apt", ("CVE-2023-38545",), claims=claims
    )
    [entry] = plan_view(make_plan([update], inventory="", spec="1")).entries
    assert entry.cves == ("CVE-2023-38545",)
    assert "CVE-2023-38545 DISPUTED (fixed: changelog; not fixed: osv:DSA-5523-1)" in entry.explanation
