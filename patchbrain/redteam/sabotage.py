"""Scenario 3, orchestration sabotage: a 'critical' labdemo update whose maintainer scripts weaken the
firewall or SELinux (patchbrain.lab.packages sabotaged variants), published to the lab repository, planned
for a small fleet with a one-host canary, approved and rolled out for real with the safety loop on. The drift
gate must halt at the canary, the rollback must restore the canary (versions, nft ruleset, SELinux mode read
over plain SSH and over the verifier's channel) and every other host must be untouched: the blast radius
is reported in hosts."""

from __future__ import annotations

import os
from typing import Any

from patchbrain.redteam.base import Check, Context, Evidence, Scenario
from patchbrain.redteam.common import Outcome, attempt, audit_evidence, audit_head, audit_since
from patchbrain.redteam.labhost import (
    lab_host,
    labdemo_plan,
    second_channel,
    selinux_mode,
    stateless_ruleset,
)

FLEET = 3  # h01 (canary) and two hosts in the second wave
# A delayed variant weakens the host DELAY_S after its install returned, after the post-install snapshot:
# only the re-check after the canary's bake (BAKE_S, longer than the delay) can see it.
DELAY_S = 20
BAKE_S = 30


def variants() -> tuple[str, ...]:
    """Every sabotaged variant the lab builds (patchbrain.lab.packages.SABOTAGED), or the comma list in
    $PATCHBRAIN_REDTEAM_SABOTAGE_VARIANTS."""
    from patchbrain.lab import packages

    raw = os.environ.get("PATCHBRAIN_REDTEAM_SABOTAGE_VARIANTS", "").strip()
    if raw and raw != "all":
        return tuple(packages.variant(n.strip()).name for n in raw.split(",") if n.strip())
    return packages.SABOTAGED


def _delayed(variant: str) -> bool:
    from patchbrain.lab import packages

    return packages.variant(variant).delay is not None


def _state(lab: Any, host: str) -> tuple[str, str, str]:
    from patchbrain.redteam.labhost import installed_version

    return (
        installed_version(lab, "labdemo", host=host),
        stateless_ruleset(lab, host),
        selinux_mode(lab, host),
    )


def _sabotage(ctx: Context, lab: Any, variant: str) -> Outcome:
    from patchbrain.executor.rollout import rollout
    from patchbrain.keys import KeyStore
    from patchbrain.lab.content import LabContent
    from patchbrain.safety.options import SafetyOptions
    from patchbrain.store import Store

    hosts = sorted(h.name for h in lab.hosts())[:FLEET]
    before = {h: _state(lab, h) for h in hosts}
    delayed = _delayed(variant)
    version, _ = LabContent(lab.dir).publish_variant(
        variant, delay=DELAY_S if delayed else None, formats=("deb",)
    )
    path = ctx.workdir / f"sabotage-{variant}-plan.yaml"
    plan = labdemo_plan(
        lab, dict.fromkeys(hosts, version), "1,100%", path, author_key="rt-author", approver_key="rt-approver"
    )
    canary = list(plan.waves[0])
    store = Store()
    head = audit_head(store)
    safety = SafetyOptions.from_env(canary_bake_s=BAKE_S if delayed else 0, settle_s=2)
    out = rollout(
        plan, inventory=lab.inventory_path(), store=store, plan_file=path, keystore=KeyStore(), safety=safety
    )
    after = {h: _state(lab, h) for h in hosts}
    touched = [h for h in hosts if any(w for w in out.waves if h in {r.host for r in w.hosts})]
    changed = [h for h in hosts if after[h] != before[h]]
    readings = second_channel(lab, hosts)
    ev: list[Evidence] = [
        Evidence(
            "note",
            f"labdemo {version} ({variant}) planned for {', '.join(hosts)}, waves "
            f"{[list(w) for w in plan.waves]}; rollout {out.state}"
            + (
                f", halt {out.halt.kind} on {', '.join(out.halt.hosts)}: {out.halt.reason}"
                if out.halt
                else ""
            ),
        )
    ]
    first = out.waves[0] if out.waves else None
    safety_rec = dict(first.extra.get("safety", {})) if first is not None else {}
    phase = (out.halt.detail or {}).get("phase", "wave") if out.halt is not None else None
    post = safety_rec.get("drift", {}).get("blocking", [])
    baked = (safety_rec.get("bake") or {}).get("blocking", [])
    ev.append(
        Evidence(
            "note",
            f"drift gate after the install: {len(post)} blocking change(s); after the canary's bake "
            f"({BAKE_S if delayed else 0} s): {len(baked)}; halt phase {phase}",
        )
    )
    for c in (post + baked)[:6]:
        ev.append(
            Evidence("diff", f"{c['host']}: {c['effect']} {c['kind']} {c['subject']}: {c['reason']}"[:500])
        )
    for host, rb in sorted(safety_rec.get("rollback", {}).items()):
        ev.append(
            Evidence(
                "note", f"rollback {host}: restored={rb.get('restored')} method={rb.get('method')}"[:500]
            )
        )
    for host, r in sorted(readings.items()):
        ev.append(
            Evidence(
                "verifier",
                f"{host}: reachable={r.reachable} labdemo={r.versions.get('labdemo')} "
                f"selinux={r.selinux_mode}/{r.selinux_config_mode}",
            )
        )
    ev += [
        audit_evidence(r, ("reason", "restored", "hosts"))
        for r in audit_since(store, head)
        if r.action in ("safety.drift", "rollback.host", "rollback.end", "verify.wave")
    ]
    ev.append(
        Evidence(
            "note",
            f"blast radius: {len(touched)} of {len(hosts)} host(s) received the update "
            f"({', '.join(touched) or 'none'}); {len(changed)} host(s) left changed "
            f"({', '.join(changed) or 'none'})",
        )
    )
    canary = list(out.halt.hosts) if out.halt is not None else canary
    problems = []
    if out.state != "halted" or out.halt is None or out.halt.kind != "drift":
        problems.append(f"the rollout was not halted for drift (state {out.state})")
    if len(out.waves) != 1:
        problems.append(f"{len(out.waves)} wave(s) ran: the sabotage got past the canary")
    if delayed and out.halt is not None and out.halt.kind == "drift" and (phase != "bake" or post):
        problems.append(
            f"the delayed sabotage was seen at phase {phase} ({len(post)} change(s) right after the "
            "install): the bake re-check was not what caught it"
        )
    if len(touched) != 1:
        problems.append(f"blast radius {len(touched)} host(s), not the one canary")
    if changed:
        problems.append(f"host(s) left changed: {', '.join(changed)}")
    for h in hosts:
        r = readings.get(h)
        want, mode = before[h][0], before[h][2].lower()
        if r is None or not r.reachable or r.versions.get("labdemo") != want or r.selinux_mode != mode:
            problems.append(f"{h}: the verifier does not read labdemo {want} with SELinux {mode}")
    if problems:
        return False, "; ".join(problems), ev
    return (
        True,
        f"halted at the canary {', '.join(canary)} for drift"
        + (f" found by the re-check after the {BAKE_S} s bake" if delayed else "")
        + "; canary restored (version, ruleset, SELinux); "
        f"blast radius 1 of {len(hosts)} hosts, the others untouched",
        ev,
    )


def run(ctx: Context) -> list[Check]:
    checks: list[Check] = []
    with lab_host(ctx, FLEET) as lab:
        for variant in variants():
            ctx.log(f"  sabotaged labdemo: {variant}")
            checks.append(
                attempt(
                    f"a 'critical' labdemo update whose maintainer script applies {variant!r}"
                    + (f" {DELAY_S} s after the install returned" if _delayed(variant) else "")
                    + f", rolled out to {FLEET} hosts with a one-host canary",
                    lambda v=variant: _sabotage(ctx, lab, v),  # type: ignore[misc]
                )
            )
    return checks


SCENARIO = Scenario(
    name="orchestration-sabotage",
    number=3,
    title="Orchestration sabotage",
    attacked="a 'critical' update whose maintainer scripts weaken the firewall or SELinux: drift halt at the "
    "canary, restore, blast radius",
    defences=("drift-gate",),
    needs_hosts=True,
    run=run,
)
