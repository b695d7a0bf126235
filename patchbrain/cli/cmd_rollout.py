"""`patchbrain rollout PLAN`: apply a plan wave by wave, journaled and audited."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from patchbrain.cli.common import add_inventory, add_json, print_json

if TYPE_CHECKING:
    from patchbrain.executor.rollout import RolloutResult


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("rollout", help="apply a plan in waves (Ctrl-C cancels the running wave)")
    p.add_argument("plan", type=Path, metavar="PLAN", help="plan file from `patchbrain plan --out`")
    add_inventory(p)
    add_json(p)
    p.add_argument("--forks", type=int, default=10, help="parallel hosts (default 10)")
    p.add_argument("--timeout", type=int, default=None, metavar="S", help="cancel a run after S seconds")
    p.add_argument(
        "--lock-timeout",
        type=int,
        default=60,
        metavar="S",
        help="longest wait for another package manager's lock on a host, then it fails (default 60)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted rollout of PLAN from the journal (re-verifies the interrupted wave)",
    )
    g = p.add_argument_group("safety loop (docs/safety.md)")
    g.add_argument(
        "--canary-bake",
        metavar="DURATION",
        help="wait after the canary, then re-check it (default 2m, $PATCHBRAIN_CANARY_BAKE; e.g. 30s)",
    )
    g.add_argument(
        "--baremetal-bake",
        metavar="DURATION",
        help="the canary's bake when it holds bare metal (default 10m, $PATCHBRAIN_BAREMETAL_BAKE)",
    )
    g.add_argument(
        "--settle", metavar="DURATION", help="wait after a rollback before re-reading (default 3s)"
    )
    g.add_argument("--policy", type=Path, metavar="FILE", help="posture policy file (allow-lists, unknown)")
    g.add_argument("--signals-file", type=Path, metavar="FILE", help="JSON file of external failure signals")
    g.add_argument("--signals-socket", type=Path, metavar="PATH", help="Unix socket taking failure signals")
    p.add_argument(
        "--nodes",
        type=Path,
        default=None,
        metavar="FILE",
        help="slice each run over the execution nodes of FILE (docs/nodes.md; the lab writes nodes.yml)",
    )
    p.set_defaults(func=_rollout)


def selinux_labels(result: RolloutResult) -> list[dict[str, dict[str, Any]]]:
    """Per wave, each snapshotted host's SELinux label (mode, simulated) from its pre- and post-flight
    posture documents (`patchbrain.posture.labels`)."""
    from patchbrain.posture.labels import labels

    return [
        labels(
            {
                h: [d for d in (w.posture_pre.get(h), w.posture_post.get(h)) if d is not None]
                for h in {*w.posture_pre, *w.posture_post}
            }
        )
        for w in result.waves
    ]


def result_document(result: RolloutResult) -> dict[str, Any]:
    """The rollout as JSON-ready data (maintainer scripts stay in the journal and artifacts). Each wave's
    `selinux` is {host: {mode, config_mode, simulated}}; `selinux_simulated` lists every host whose
    SELinux was read as the lab's simulated stand-in."""
    from patchbrain.posture.labels import simulated_hosts

    selinux = selinux_labels(result)
    return {
        "plan_id": result.plan_id,
        "state": result.state,
        "halt": dataclasses.asdict(result.halt) if result.halt else None,
        "resumed": result.resumed,
        "lock_taken_over": list(result.lock_taken_over),
        "selinux_simulated": sorted({h for s in selinux for h in simulated_hosts(s)}),
        "waves": [
            {
                "wave": w.index + 1,
                "artifacts": str(w.artifacts),
                "hosts": [dataclasses.asdict(h) for h in w.hosts],
                "selinux": selinux[i],
                "posture_pre_hosts": sorted(w.posture_pre),
                "posture_post_hosts": sorted(w.posture_post),
                "prescan": {h: {p: sorted(s) for p, s in pk.items()} for h, pk in w.prescan.items()},
                "prescan_findings": {
                    h: [dataclasses.asdict(f) for f in fs] for h, fs in w.prescan_findings.items()
                },
                "halt": dataclasses.asdict(w.halt) if w.halt else None,
                **w.extra,
            }
            for i, w in enumerate(result.waves)
        ],
    }


def _rollout(args: argparse.Namespace) -> int:
    from patchbrain.cli.common import resolve_inventory
    from patchbrain.cli.progress import Progress
    from patchbrain.errors import BadInput, ExitCode
    from patchbrain.executor.rollout import RolloutOptions, WaveHooks, rollout
    from patchbrain.inventory import load_hosts
    from patchbrain.plans import load_plan
    from patchbrain.safety.options import SafetyOptions, parse_seconds

    plan = load_plan(args.plan)
    if args.inventory is None and plan.inventory and Path(plan.inventory).exists():
        inventory = Path(plan.inventory)
    else:
        inventory = resolve_inventory(args)
    listed = load_hosts(inventory)
    known = {h.name for h in listed}
    missing = sorted(set(plan.hosts) - known)
    if missing:
        raise BadInput(f"hosts not in the inventory {inventory}: {', '.join(missing)}", source=str(args.plan))

    def seconds(value: str | None, flag: str) -> int | None:
        return None if value is None else parse_seconds(value, source="command line", field=flag)

    policy = None
    if args.policy is not None:
        from patchbrain.posture.policy import load as load_policy

        policy = load_policy(args.policy)
    safety = SafetyOptions.from_env(
        canary_bake_s=seconds(args.canary_bake, "--canary-bake"),
        baremetal_bake_s=seconds(args.baremetal_bake, "--baremetal-bake"),
        settle_s=seconds(args.settle, "--settle"),
        policy=policy,
        signals_file=args.signals_file,
        signals_socket=args.signals_socket,
    )
    options = RolloutOptions(forks=args.forks, timeout_s=args.timeout, lock_timeout_s=args.lock_timeout)
    cancel = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set())
    progress = Progress(enabled=None if not args.json else False)
    try:
        with (
            contextlib.ExitStack() as stack,
            progress.session("rollout", waves=len(plan.waves), hosts=len(plan.hosts)),
        ):
            if args.nodes is not None:
                from patchbrain.executor.nodes import NodePool, controller_reader, load_config

                pool = stack.enter_context(NodePool(load_config(args.nodes)))
                options = dataclasses.replace(
                    options, run=pool.run, read_installed=controller_reader(inventory)
                )
            result = rollout(
                plan,
                inventory=inventory,
                hooks=WaveHooks(
                    on_host_state=progress.host_state,
                    on_wave_state=progress.wave_state,
                    cancel=cancel.is_set,
                ),
                options=options,
                plan_file=args.plan,
                resume=args.resume,
                safety=safety,
                hosts=listed,
            )
    finally:
        signal.signal(signal.SIGINT, previous)
    if args.json:
        print_json(result_document(result))
    else:
        _summary(result)
    if result.halt is None:
        return 0
    return {
        "drift": int(ExitCode.DRIFT),
        "failures": int(ExitCode.FAILURES),
        "prescan": int(ExitCode.REFUSED),
        "policy": int(ExitCode.REFUSED),
        "canceled": 130,
    }[result.halt.kind]


def _summary(result: RolloutResult) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from patchbrain.posture.labels import SIMULATED_NOTE, simulated_hosts, text

    selinux = selinux_labels(result)
    table = Table(title=f"Rollout {result.plan_id}: {result.state}")
    for col in ("wave", "host", "state", "SELinux", "detail"):
        table.add_column(col)
    for i, w in enumerate(result.waves):
        for h in w.hosts:
            label = text(selinux[i].get(h.host, {}))
            table.add_row(str(w.index + 1), h.host, h.state, label, escape(h.message))
    console = Console()
    simulated = sorted({h for s in selinux for h in simulated_hosts(s)})
    if simulated:
        console.print(
            f"SELinux simulated on {len(simulated)} host(s) ({', '.join(simulated)}): {SIMULATED_NOTE}",
            markup=False,
            highlight=False,
        )
    console.print(table)
    if result.halt:
        console.print(
            f"[red]halted ({result.halt.kind}): {escape(result.halt.reason)}[/red] "
            + " ".join(result.halt.hosts),
            markup=True,
            highlight=False,
        )
    for w in result.waves:
        for host, res in sorted(w.extra.get("safety", {}).get("rollback", {}).items()):
            if res["restored"]:
                console.print(
                    f"[green]{host}: restored[/green] ({res['method']}, verified over both channels)"
                )
            else:
                console.print(
                    f"[bold red]{host}: NOT RESTORED[/bold red]: {escape(res['reason'])}", highlight=False
                )
