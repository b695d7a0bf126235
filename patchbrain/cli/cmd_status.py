"""`patchbrain status`: the journal's view of the latest (or a named) rollout."""

from __future__ import annotations

import argparse
import dataclasses

from patchbrain.cli.common import add_json, print_json


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("status", help="waves and host states of the latest rollout (or PLAN_ID)")
    p.add_argument("plan_id", nargs="?", default=None, metavar="PLAN_ID")
    add_json(p)
    p.set_defaults(func=_status)


def _status(args: argparse.Namespace) -> int:
    from patchbrain.errors import BadInput
    from patchbrain.journal import Journal
    from patchbrain.store import Store

    journal = Journal(Store())
    ids = journal.plan_ids()
    plan_id = args.plan_id or (ids[0] if ids else None)
    if plan_id is None:
        if args.json:
            print_json({"plans": []})
            return 0
        print("no rollout on record")
        return 0
    record = journal.plan(plan_id)
    if record is None:
        raise BadInput("no such plan in the journal", field="PLAN_ID")
    history = journal.history(plan_id)
    if args.json:
        print_json({"plan": dataclasses.asdict(record), "history": history, "recent": ids})
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"plan {record.plan_id}: {record.state} (updated {record.updated:%Y-%m-%d %H:%M:%S} UTC)")
    waves = Table(title="Waves")
    for col in ("wave", "state", "started", "ended", "hosts"):
        waves.add_column(col)
    for w in record.waves:
        states = w.summary.get("states", {}) if isinstance(w.summary, dict) else {}
        waves.add_row(
            str(w.wave + 1),
            w.state,
            f"{w.started:%H:%M:%S}" if w.started else "-",
            f"{w.ended:%H:%M:%S}" if w.ended else "-",
            ", ".join(f"{k} {v}" for k, v in sorted(states.items())),
        )
    console.print(waves)
    hosts = Table(title="Hosts")
    hosts.add_column("host")
    hosts.add_column("state")
    for host, state in sorted(record.hosts.items()):
        hosts.add_row(host, state)
    console.print(hosts)
    return 0
