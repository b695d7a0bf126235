"""Scenario 4, plan tampering: every attack goes through the real rollout entry point
(`patchbrain.executor.rollout.rollout`, what `patchbrain rollout` calls) with a plan file, its approval
sidecar and the store's approvals. A `before_wave` hook of the red-team stops any rollout that gets past
the approval gate before a single host is touched, and that counts as the defence FAILING. The hosts of
the generated inventory are never contacted."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from patchbrain.redteam.base import Check, Context, Evidence, Scenario
from patchbrain.redteam.common import Outcome, attempt, audit_evidence, audit_head, audit_since

AUTHOR, APPROVER_1, APPROVER_2 = "rt-author", "rt-approver-1", "rt-approver-2"


class _Stopped(Exception):
    """Raised by the red-team's before_wave hook: the rollout got past every approval check."""


def _stop(_ctx: Any) -> None:
    raise _Stopped("stopped by the red-team harness before wave 1: the approval gate let this plan through")


def _inventory(path: Path, n_hosts: int) -> Path:
    import yaml

    hosts = {f"h{i:04d}": {"ansible_host": "192.0.2.1", "patchbrain_pkg_mgr": "apt"} for i in range(n_hosts)}
    path.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    return path


def _plan_file(ctx: Context, keys: Any, n_hosts: int, name: str) -> Path:
    from patchbrain.approvals import sign_authorship
    from patchbrain.models import PendingUpdate
    from patchbrain.plans import dump_plan, make_plan

    inv = _inventory(ctx.workdir / f"{name}-inventory.yml", n_hosts)
    pending = [
        PendingUpdate(
            f"h{i:04d}", "openssl", "3.0.11-1~deb12u1", "3.0.11-1~deb12u2", "apt", ("CVE-2023-5678",)
        )
        for i in range(n_hosts)
    ]
    author = keys.load_private(AUTHOR)
    plan = make_plan(
        pending, inventory=str(inv), spec="1,10%,100%", author=author.public.fingerprint, author_name=AUTHOR
    )
    path = ctx.workdir / f"{name}.yaml"
    path.write_text(dump_plan(sign_authorship(plan, author)))
    return path


def run(ctx: Context) -> list[Check]:
    from patchbrain.approvals import Approval, append_sidecar, policy_from_env, record_approval, sidecar_path
    from patchbrain.errors import RefusedByPolicy
    from patchbrain.executor.rollout import WaveHooks, rollout
    from patchbrain.keys import KeyStore, sign
    from patchbrain.plans import canonical_json, load_plan
    from patchbrain.store import Store

    store = Store()
    keys = KeyStore()
    for name in (AUTHOR, APPROVER_1, APPROVER_2):
        keys.new(name)
    policy = policy_from_env()
    ttl = dt.timedelta(hours=1)

    def approve(path: Path, key: str) -> None:
        record_approval(
            load_plan(path),
            keys.load_private(key),
            keystore=keys,
            store=store,
            plan_file=path,
            ttl=ttl,
            policy=policy,
        )

    def try_rollout(path: Path, *, expect_refusal: bool = True) -> Outcome:
        seq = audit_head(store)
        try:
            plan = load_plan(path)
            result = rollout(
                plan,
                inventory=Path(plan.inventory),
                store=store,
                hooks=WaveHooks(before_wave=_stop),
                plan_file=path,
                keystore=keys,
            )
        except RefusedByPolicy as exc:
            ev = [Evidence("refusal", str(exc)[:600])] + [audit_evidence(r) for r in audit_since(store, seq)]
            return expect_refusal, f"refused before anything ran (exit 5, {type(exc).__name__})", ev
        ev = [audit_evidence(r, ("approvals", "author")) for r in audit_since(store, seq, "rollout.*")]
        halt = result.halt.reason if result.halt else "none"
        return not expect_refusal, f"the rollout STARTED: it passed the approval gate (halt: {halt})", ev

    checks: list[Check] = []
    small = _plan_file(ctx, keys, 3, "plan")
    approve(small, APPROVER_1)
    checks.append(
        attempt(
            "control: a 3-host plan signed by its author and approved by another key",
            lambda: try_rollout(small, expect_refusal=False),
        )
    )

    def edited(mutate: Any, name: str) -> Outcome:
        path = ctx.workdir / f"{name}.yaml"
        path.write_bytes(mutate(small.read_bytes()))
        sidecar_path(path).write_bytes(sidecar_path(small).read_bytes())
        return try_rollout(path)

    checks.append(
        attempt(
            "plan edited after approval: one byte (a trailing newline) added to the approved file",
            lambda: edited(lambda b: b + b"\n", "edited-byte"),
        )
    )
    checks.append(
        attempt(
            "plan edited after approval: the candidate version changed, approvals copied along",
            lambda: edited(lambda b: b.replace(b"3.0.11-1~deb12u2", b"3.0.11-1~deb12u9"), "edited-version"),
        )
    )

    big = _plan_file(ctx, keys, 500, "plan-500")
    approve(big, APPROVER_1)
    checks.append(attempt("a 500-host plan with a single approval (quorum is 2)", lambda: try_rollout(big)))

    def self_approval() -> Outcome:
        path = ctx.workdir / "self.yaml"
        path.write_bytes(small.read_bytes())
        seq = audit_head(store)
        refused_at_approve = ""
        try:
            approve(path, AUTHOR)
        except RefusedByPolicy as exc:
            refused_at_approve = str(exc)
        # the author signs an approval statement by hand, bypassing `approve`, and plants it beside the plan
        plan = load_plan(path)
        author = keys.load_private(AUTHOR)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        statement = canonical_json(
            {
                "type": "patchbrain.plan-approval/1",
                "plan_id": plan.plan_id,
                "plan_file_sha256": plan.file_sha256,
                "hosts": len(plan.hosts),
                "approver": AUTHOR,
                "key": author.public.fingerprint,
                "approved_at": now.isoformat(),
                "expires_at": (now + ttl).isoformat(),
            }
        )
        sidecar_path(path).unlink(missing_ok=True)
        append_sidecar(sidecar_path(path), Approval(statement, sign(author, statement.encode()).decode()))
        ok, outcome, ev = try_rollout(path)
        first = (
            [Evidence("refusal", f"approve --key {AUTHOR}: {refused_at_approve}"[:500])]
            if refused_at_approve
            else []
        )
        first += [audit_evidence(r) for r in audit_since(store, seq, "plan.approve*")]
        return (
            ok and bool(refused_at_approve),
            f"approve refused: {bool(refused_at_approve)}; forged sidecar: {outcome}",
            first + ev,
        )

    checks.append(
        attempt(
            "self-approval: the plan's author approves it (through `approve`, then forged by hand)",
            self_approval,
        )
    )
    return checks


SCENARIO = Scenario(
    name="plan-tampering",
    number=4,
    title="Plan tampering",
    attacked="the rollout approval gate (approvals.py: signatures, quorum, self-approval; plans.py: plan id)",
    defences=("approvals",),
    needs_hosts=False,
    run=run,
)
