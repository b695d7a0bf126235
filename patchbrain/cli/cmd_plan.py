"""`patchbrain plan`: a minimal plan from the latest discovery, split into waves by the wave rule."""

from __future__ import annotations

import argparse
from pathlib import Path

from patchbrain.cli.common import add_json, print_json


def _tristate(value: str) -> bool | None:
    v = value.lower()
    if v in ("true", "yes"):
        return True
    if v in ("false", "no"):
        return False
    if v in ("null", "none", "ask"):
        return None
    raise argparse.ArgumentTypeError("true, false or null")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "plan",
        help="plan the latest discovery's updates in waves",
        description="Waves: the first number is the canary size (count or %% of all hosts); later numbers "
        "are cumulative shares of the REMAINING hosts and must end at 100%%.",
    )
    p.add_argument("--waves", default="1,10%,50%,100%", metavar="SPEC", help="default 1,10%%,50%%,100%%")
    p.add_argument("--out", type=Path, default=None, metavar="FILE", help="write the plan YAML here")
    p.add_argument("--package", action="append", default=[], metavar="NAME", help="only these packages")
    p.add_argument(
        "--reboot-ok",
        type=_tristate,
        default=None,
        metavar="BOOL",
        help="true: reboot when needed; false: leave pending; null (default): stop if a reboot is needed",
    )
    add_json(p)
    p.set_defaults(func=_plan)


def _plan(args: argparse.Namespace) -> int:
    from patchbrain.errors import BadInput
    from patchbrain.inventory import load_hosts
    from patchbrain.journal import Journal
    from patchbrain.models import PendingUpdate
    from patchbrain.plans import dump_plan, make_plan, plan_document
    from patchbrain.store import Store

    latest = Journal(Store()).latest_discovery()
    if latest is None:
        raise BadInput("no discovery on record: run `patchbrain discover` first")
    _taken, inventory, document = latest
    pending = [
        PendingUpdate(**{**p, "cves": tuple(p.get("cves", ()))})
        for host in document.get("hosts", [])
        for p in host.get("pending", [])
    ]
    if not pending:
        raise BadInput("the latest discovery found nothing pending; nothing to plan")
    hosts = load_hosts(Path(inventory)) if Path(inventory).exists() else []
    plan = make_plan(
        pending,
        inventory=inventory,
        hosts=hosts,
        spec=args.waves,
        reboot_ok=args.reboot_ok,
        packages=args.package,
    )
    if not plan.hosts:
        raise BadInput(
            f"no pending update of {', '.join(args.package)} in the latest discovery", field="--package"
        )
    text = dump_plan(plan)
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    if args.json:
        print_json({**plan_document(plan), "file": str(args.out) if args.out else None})
    elif args.out is None:
        print(text, end="")
    else:
        sizes = ", ".join(str(len(w)) for w in plan.waves)
        print(f"plan {plan.plan_id}: {len(plan.hosts)} hosts in waves of {sizes or 'nothing'} -> {args.out}")
    return 0
