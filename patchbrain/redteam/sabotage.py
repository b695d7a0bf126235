"""Scenario 3, orchestration sabotage: 'critical' labdemo updates whose maintainer scripts weaken the
firewall or SELinux (every sabotaged variant of patchbrain.lab.packages), published to the lab repository,
planned with one canary per variant in the canary wave and two more hosts after it, approved and rolled out
for real with the safety loop on. The drift gate must halt at the canary wave (for the delayed variant: the
re-check after the canary's bake), the rollback must restore every canary (versions, nft ruleset, SELinux
mode read over plain SSH and over the verifier's channel) and the second wave must be untouched: the blast
radius is reported in hosts. The immediate variants share one rollout; each delayed one has its own."""

from __future__ import annotations

import os
from typing import Any

from patchbrain.redteam.base import Check, Context, Evidence, Scenario
from patchbrain.redteam.common import audit_evidence, audit_head, audit_since
from patchbrain.redteam.labhost import (
    lab_host,
    labdemo_plan,
    second_channel,
    selinux_mode,
    stateless_ruleset,
)

OTHERS = 2  # hosts in the second wave, after the canaries (one canary per variant)
MOST_HOSTS = 7 + OTHERS  # the seven immediate variants of patchbrain.lab.packages on their canaries
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


def _states(lab: Any, hosts: list[str]) -> dict[str, tuple[str, str, str]]:
    """`_state` of every host, read over SSH a few hosts at a time."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(hosts, pool.map(lambda h: _state(lab, h), hosts), strict=True))


def _attack(variant: str, hosts: int) -> str:
    return (
        f"a 'critical' labdemo update whose maintainer script {_what(variant)}"
        + (f" ({DELAY_S} s after the install returned)" if _delayed(variant) else "")
        + f" ({variant}), on its own canary of a rollout to {hosts} hosts"
    )


def _what(variant: str) -> str:
    from patchbrain.lab import packages

    return packages.variant(variant).weakens or variant


def groups(names: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The rollouts to run: every immediate variant together (one canary each, one canary wave), each
    delayed variant alone (its canary's bake must outlast the delay)."""
    immediate = tuple(n for n in names if not _delayed(n))
    return ([immediate] if immediate else []) + [(n,) for n in names if _delayed(n)]


def _sabotage(ctx: Context, lab: Any, group: tuple[str, ...]) -> list[Check]:
    """One rollout: each variant of `group` on its own canary (the canary wave holds one host per variant),
    then OTHERS more hosts in the second wave; one check per variant."""
    from patchbrain.executor.rollout import rollout
    from patchbrain.keys import KeyStore
    from patchbrain.lab.content import LabContent
    from patchbrain.safety.options import SafetyOptions
    from patchbrain.store import Store

    hosts = sorted(h.name for h in lab.hosts())[: len(group) + OTHERS]
    before = _states(lab, hosts)
    delayed = any(_delayed(v) for v in group)
    lc = LabContent(lab.dir)
    versions = {
        v: lc.publish_variant(v, delay=DELAY_S if _delayed(v) else None, formats=("deb",))[0] for v in group
    }
    spec = f"{len(group)},100%"
    name = "-".join(group) if len(group) == 1 else f"{len(group)}-variants"
    path = ctx.workdir / f"sabotage-{name}-plan.yaml"
    keys: dict[str, Any] = {"author_key": "rt-author", "approver_key": "rt-approver"}
    # one canary per variant, flagged so in the plan; the second wave's hosts get the first variant
    canary_of = dict(zip(group, hosts, strict=False))
    candidates = {
        **dict.fromkeys(hosts, versions[group[0]]),
        **{c: versions[v] for v, c in canary_of.items()},
    }
    plan = labdemo_plan(lab, candidates, spec, path, canaries=list(canary_of.values()), **keys)
    if sorted(plan.waves[0]) != sorted(canary_of.values()):
        raise RuntimeError(f"the canary wave is {list(plan.waves[0])}, not {list(canary_of.values())}")
    store = Store()
    head = audit_head(store)
    safety = SafetyOptions.from_env(canary_bake_s=BAKE_S if delayed else 0, settle_s=2)
    out = rollout(
        plan, inventory=lab.inventory_path(), store=store, plan_file=path, keystore=KeyStore(), safety=safety
    )
    after = _states(lab, hosts)
    touched = [h for h in hosts if any(w for w in out.waves if h in {r.host for r in w.hosts})]
    changed = [h for h in hosts if after[h] != before[h]]
    readings = second_channel(lab, hosts)
    first = out.waves[0] if out.waves else None
    safety_rec = dict(first.extra.get("safety", {})) if first is not None else {}
    phase = (out.halt.detail or {}).get("phase", "wave") if out.halt is not None else None
    post = list(safety_rec.get("drift", {}).get("blocking", []))
    baked = list((safety_rec.get("bake") or {}).get("blocking", []))
    halt = f", halt {out.halt.kind} on {', '.join(out.halt.hosts)}" if out.halt else ""
    shared: list[Evidence] = [
        Evidence(
            "note",
            f"{len(group)} sabotaged version(s) planned for {len(hosts)} hosts, waves "
            f"{[list(w) for w in plan.waves]}; rollout {out.state}{halt}; drift gate after the install: "
            f"{len(post)} blocking change(s), after the canary's bake ({BAKE_S if delayed else 0} s): "
            f"{len(baked)}; halt phase {phase}",
        ),
        Evidence(
            "note",
            f"blast radius of the rollout: {len(touched)} of {len(hosts)} host(s) received an update "
            f"({', '.join(touched) or 'none'}); {len(changed)} host(s) left changed "
            f"({', '.join(changed) or 'none'})",
        ),
    ]
    common: list[str] = []
    if out.state != "halted" or out.halt is None or out.halt.kind != "drift":
        common.append(f"the rollout was not halted for drift (state {out.state})")
    if len(out.waves) != 1:
        common.append(f"{len(out.waves)} wave(s) ran: the sabotage got past the canary")
    later = [h for h in touched if h not in canary_of.values()]
    if later:
        common.append(f"blast radius beyond the canaries: {', '.join(later)} received the update")
    records = [
        r for r in audit_since(store, head) if r.action in ("safety.drift", "safety.bake", "rollback.host",
                                                           "rollback.end", "verify.wave")
    ]  # fmt: skip
    checks = []
    for variant, canary in canary_of.items():
        mine = [c for c in post + baked if c.get("host") == canary]
        ev = [Evidence("note", f"{canary} got labdemo {versions[variant]} ({variant})"), *shared]
        ev += [
            Evidence("diff", f"{c['host']}: {c['effect']} {c['kind']} {c['subject']}: {c['reason']}"[:500])
            for c in mine[:4]
        ]
        rb = dict(safety_rec.get("rollback", {})).get(canary)
        if rb is not None:
            ev.append(
                Evidence(
                    "note", f"rollback {canary}: restored={rb.get('restored')} method={rb.get('method')}"
                )
            )
        simulated = tuple(
            h for h in [canary, *plan.waves[1]] if (r := readings.get(h)) is not None and r.selinux_simulated
        )
        for h in [canary, *plan.waves[1]]:
            r = readings.get(h)
            if r is not None:
                ev.append(
                    Evidence(
                        "verifier",
                        f"{h}: reachable={r.reachable} labdemo={r.versions.get('labdemo')} "
                        f"selinux={r.selinux_mode}/{r.selinux_config_mode}"
                        + (" (simulated)" if r.selinux_simulated else ""),
                    )
                )
        ev += [
            audit_evidence(r, ("reason", "restored", "hosts")) for r in records if canary in str(r.payload)
        ]
        ev.append(
            Evidence(
                "note",
                f"blast radius of {variant}: 1 canary host ({canary}) received it; "
                f"{int(canary in changed)} left changed; second wave {list(plan.waves[1])} "
                f"{'untouched' if not later else 'REACHED'}",
            )
        )
        problems = list(common)
        if not mine:
            problems.append(f"no blocking drift found on {canary}")
        if _delayed(variant) and (phase != "bake" or [c for c in post if c.get("host") == canary]):
            problems.append(
                f"the delayed sabotage was seen at phase {phase} (right after the install: "
                f"{len([c for c in post if c.get('host') == canary])} change(s)): the bake re-check was not "
                "what caught it"
            )
        for h in [canary, *plan.waves[1]]:
            r = readings.get(h)
            want, mode = before[h][0], before[h][2].lower()
            if h in changed:
                problems.append(f"{h} left changed (version, ruleset or SELinux)")
            if r is None or not r.reachable or r.versions.get("labdemo") != want or r.selinux_mode != mode:
                problems.append(f"{h}: the verifier does not read labdemo {want} with SELinux {mode}")
        if problems:
            checks.append(
                Check(_attack(variant, len(hosts)), False, "; ".join(problems), tuple(ev), simulated)
            )
            continue
        checks.append(
            Check(
                _attack(variant, len(hosts)),
                True,
                f"halted at the canary wave for drift on {canary}"
                + (f" found by the re-check after the {BAKE_S} s bake" if _delayed(variant) else "")
                + f"; {canary} restored (version, ruleset, SELinux); blast radius 1 host, the second wave "
                f"({len(plan.waves[1])} hosts) untouched"
                + (" (SELinux simulated)" if canary in simulated else ""),
                tuple(ev),
                simulated,
            )
        )
    return checks


def run(ctx: Context) -> list[Check]:
    names = variants()
    plan = groups(names)
    checks: list[Check] = []
    with lab_host(ctx, max(len(g) for g in plan) + OTHERS) as lab:
        for group in plan:
            ctx.log(f"  sabotaged labdemo: {', '.join(group)}")
            try:
                checks += _sabotage(ctx, lab, group)
            except Exception as exc:
                checks += [
                    Check(_attack(v, len(group) + OTHERS), False,
                          f"error while attacking: {type(exc).__name__}: {exc}"[:800])
                    for v in group
                ]  # fmt: skip
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
    hosts=MOST_HOSTS,
)
