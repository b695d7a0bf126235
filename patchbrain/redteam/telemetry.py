"""Scenario 5, fake failure telemetry: during a real approved rollout of a benign labdemo update to two lab
hosts (health check: `labdemo` runs), a signals file claims the healthy canary is failing, that a host not
patched yet is down, and that a host outside the rollout is down. None of it may trigger a rollback; every
signal must be audited as `safety.signal.suspicious`. Control: a real health failure (a check that only
passes on the old version), with a signal naming the host, must be confirmed and rolled back, so the
scenario cannot pass by ignoring every signal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from patchbrain.redteam.base import Check, Context, Evidence, Scenario
from patchbrain.redteam.common import Outcome, attempt, audit_evidence, audit_head, audit_since
from patchbrain.redteam.labhost import installed_version, lab_host, labdemo_plan

FLEET = 2
BASE = "1.0"


def inventory_with_checks(lab: Any, path: Path, checks: list[dict[str, Any]]) -> Path:
    """The lab inventory plus health checks for every host (group variables of `all`)."""
    doc = yaml.safe_load(lab.inventory_path().read_text())
    doc["all"].setdefault("vars", {})["patchbrain_health_checks"] = checks
    path.write_text(yaml.safe_dump(doc))
    return path


def _roll(ctx: Context, lab: Any, name: str, checks: list[dict[str, Any]], signals: Any) -> tuple[Any, ...]:
    """Publish a benign labdemo, plan it canary-first for the fleet, approve, roll out with `signals`."""
    from patchbrain.executor.rollout import rollout
    from patchbrain.keys import KeyStore
    from patchbrain.lab.content import LabContent
    from patchbrain.safety.options import SafetyOptions
    from patchbrain.store import Store

    hosts = sorted(h.name for h in lab.hosts())[:FLEET]
    version, _ = LabContent(lab.dir).publish_variant("benign", formats=("deb",))
    path = ctx.workdir / f"{name}-plan.yaml"
    plan = labdemo_plan(
        lab, dict.fromkeys(hosts, version), "1,100%", path, author_key="rt-author", approver_key="rt-approver"
    )
    canary, other = plan.waves[0][0], plan.waves[1][0]
    sig_file = ctx.workdir / f"{name}-signals.json"
    sig_file.write_text(json.dumps({"signals": signals(canary, other)}))
    inv = inventory_with_checks(lab, ctx.workdir / f"{name}-inventory.yml", checks)
    store = Store()
    head = audit_head(store)
    opts = SafetyOptions.from_env(canary_bake_s=0, settle_s=2, health_confirm_s=2, signals_file=sig_file)
    out = rollout(plan, inventory=inv, store=store, plan_file=path, keystore=KeyStore(), safety=opts)
    return out, version, canary, other, audit_since(store, head), plan.plan_id


def _safety(out: Any) -> list[dict[str, Any]]:
    return [dict(w.extra.get("safety", {})) for w in out.waves]


def _fake(ctx: Context, lab: Any) -> Outcome:
    def signals(canary: str, other: str) -> list[dict[str, str]]:
        return [
            {
                "host": canary,
                "status": "critical",
                "source": "monitor",
                "message": "HTTP 500 since the update",
            },
            {"host": other, "status": "failed", "source": "monitor", "message": "down"},
            {"host": "db9", "status": "failed", "source": "monitor", "message": "down"},
        ]

    checks = [{"name": "labdemo runs", "command": ["labdemo"]}]
    out, version, canary, other, records, _pid = _roll(ctx, lab, "fake", checks, signals)
    safety = _safety(out)
    seen = [e for s in safety for e in s.get("signals", [])]
    rollbacks = {h: rb for s in safety for h, rb in s.get("rollback", {}).items()}
    versions = {h: installed_version(lab, "labdemo", host=h) for h in (canary, other)}
    suspicious = [r for r in records if r.action == "safety.signal.suspicious"]
    ev = [
        Evidence(
            "note",
            f"rollout {out.state}"
            + (f", halt {out.halt.kind}: {out.halt.reason}" if out.halt else "")
            + f"; hosts: {[(h.host, h.state) for w in out.waves for h in w.hosts]}",
        ),
        *(
            Evidence(
                "note", f"signal {e['signal']['host']} {e['signal']['status']}: {e['verdict']} ({e['why']})"
            )
            for e in seen
        ),
        Evidence("verifier", f"labdemo read over SSH: {versions} (planned {version})"),
        *(audit_evidence(r, ("verdict", "why")) for r in suspicious),
    ]
    problems = []
    if out.state != "done":
        problems.append(f"the rollout did not finish (state {out.state})")
    if rollbacks:
        problems.append(f"rolled back on fake signals: {', '.join(sorted(rollbacks))}")
    if any(v != version for v in versions.values()):
        problems.append(f"a healthy host does not keep the update: {versions}")
    if len(seen) != 3 or any(e["verdict"] != "suspicious" for e in seen):
        problems.append(
            f"signals not all judged suspicious: {[(e['signal']['host'], e['verdict']) for e in seen]}"
        )
    if sorted(r.subject for r in suspicious) != sorted([canary, other, "db9"]):
        problems.append(f"suspicious signals audited for {[r.subject for r in suspicious]}")
    if problems:
        return False, "; ".join(problems), ev
    return (
        True,
        f"3 fake failure signals (healthy canary {canary}, pending {other}, unknown db9): no rollback, "
        f"both hosts keep labdemo {version}, each signal audited as suspicious",
        ev,
    )


def _control(ctx: Context, lab: Any) -> Outcome:
    """A real failure (the service only works with the base version) with a signal: confirmed, rolled back."""
    before = installed_version(lab, "labdemo", host=sorted(h.name for h in lab.hosts())[0])
    check = {
        "name": f"works with {before}",
        "command": ["grep", "-qx", before, "/var/lib/labdemo/installed-version"],
    }
    out, version, canary, _other, records, _pid = _roll(
        ctx, lab, "real", [check], lambda c, o: [{"host": c, "status": "failed", "source": "monitor"}]
    )
    safety = _safety(out)
    seen = [e for s in safety for e in s.get("signals", [])]
    rb = safety[0].get("rollback", {}).get(canary, {}) if safety else {}
    now = installed_version(lab, "labdemo", host=canary)
    ev = [
        Evidence(
            "note",
            f"rollout {out.state}" + (f", halt {out.halt.kind}: {out.halt.reason}" if out.halt else ""),
        ),
        *(Evidence("note", f"signal {e['signal']['host']}: {e['verdict']} ({e['why']})"[:500]) for e in seen),
        Evidence("verifier", f"{canary} labdemo {now} after the rollback (was {before}, planned {version})"),
        *(
            audit_evidence(r, ("verdict", "restored"))
            for r in records
            if r.action in ("safety.signal.confirmed", "safety.health.failed", "rollback.host")
        ),
    ]
    ok = (
        out.halt is not None
        and out.halt.kind == "failures"
        and [e["verdict"] for e in seen] == ["confirmed"]
        and rb.get("restored") is True
        and now == before
    )
    return (
        ok,
        f"control: a real failure on {canary}, confirmed by its health check, was rolled back to {now}"
        if ok
        else "control: a real, confirmed failure was NOT rolled back",
        ev,
    )


def run(ctx: Context) -> list[Check]:
    with lab_host(ctx, FLEET) as lab:
        return [
            attempt(
                "fake failure signals for a healthy canary, a pending host and an unknown host",
                lambda: _fake(ctx, lab),
            ),
            attempt("control: a real health failure, reported by a signal", lambda: _control(ctx, lab)),
        ]


SCENARIO = Scenario(
    name="fake-failure-telemetry",
    number=5,
    title="Fake failure telemetry",
    attacked="the failure-signal intake: synthetic failures for healthy hosts must trigger no rollback",
    defences=("signal-distrust",),
    needs_hosts=True,
    run=run,
    hosts=FLEET,
)
