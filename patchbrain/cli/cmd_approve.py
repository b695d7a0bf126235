"""`patchbrain approve PLAN --key NAME`: sign an approval of a plan file (both signature kinds)."""

from __future__ import annotations

import argparse
from pathlib import Path

from patchbrain.cli.common import add_json, print_json


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "approve",
        help="approve a plan file with a signing key (kept in the store and beside the plan)",
        description="Signs the plan id and the plan file's SHA-256 with the key's Ed25519 and ML-DSA-65 "
        "halves. Plans touching $PATCHBRAIN_APPROVAL_QUORUM_HOSTS (500) hosts or more need "
        "$PATCHBRAIN_APPROVAL_QUORUM (2) distinct approvers; the plan's author cannot approve it; "
        "approvals expire (--ttl, at most $PATCHBRAIN_APPROVAL_MAX_TTL, default 24h).",
        epilog="Exit codes: 0 approved, 2 bad input, 5 refused (self-approval, no signed author, a changed "
        "plan).",
    )
    p.add_argument("plan", type=Path, metavar="PLAN", help="plan file from `patchbrain plan --out`")
    p.add_argument("--key", required=True, metavar="NAME", help="the approver's key")
    p.add_argument("--passphrase-file", type=Path, default=None, metavar="FILE", help="the key's passphrase")
    p.add_argument("--ttl", default="8h", metavar="DURATION", help="how long the approval holds (default 8h)")
    add_json(p)
    p.set_defaults(func=_approve)


def _approve(args: argparse.Namespace) -> int:
    from patchbrain.approvals import check_approvals, gather, policy_from_env, record_approval, sidecar_path
    from patchbrain.cli.cmd_keys import read_passphrase_file
    from patchbrain.keys import KeyStore
    from patchbrain.plans import load_plan
    from patchbrain.store import Store
    from patchbrain.windows import parse_duration

    plan = load_plan(args.plan)
    keystore = KeyStore()
    key = keystore.load_private(args.key, read_passphrase_file(args.passphrase_file))
    policy = policy_from_env()
    ttl = parse_duration(args.ttl, source="command line", field="--ttl")
    store = Store()
    approval = record_approval(
        plan, key, keystore=keystore, store=store, plan_file=args.plan, ttl=ttl, policy=policy
    )
    fields = approval.fields()
    verdict = check_approvals(plan, gather(plan, store, args.plan), keystore=keystore, policy=policy)
    if args.json:
        print_json(
            {
                "plan_id": plan.plan_id,
                "approval": fields,
                "valid_approvers": [v["approver"] for v in verdict.valid],
                "required": verdict.required,
                "ready": verdict.ok,
                "sidecar": str(sidecar_path(args.plan)),
            }
        )
    else:
        state = "ready to roll out" if verdict.ok else f"needs {verdict.required - len(verdict.valid)} more"
        print(
            f"approved plan {plan.plan_id[:16]}... as {key.name} until {fields['expires_at']}: "
            f"{len(verdict.valid)}/{verdict.required} approvals, {state}"
        )
    return 0
