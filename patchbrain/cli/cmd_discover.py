"""`patchbrain discover`: what is pending on each host, with candidate versions and the CVEs fixed."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING

from patchbrain.cli.common import add_inventory, add_json, print_json, resolve_inventory

if TYPE_CHECKING:
    from patchbrain.executor.discovery import HostDiscovery


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("discover", help="find pending updates and the CVEs each one fixes (read-only)")
    add_inventory(p)
    add_json(p)
    p.add_argument("--limit", default=None, metavar="HOSTS", help="comma-separated host names")
    p.add_argument("--forks", type=int, default=10, help="parallel hosts (default 10)")
    p.set_defaults(func=_discover)


def _discover(args: argparse.Namespace) -> int:
    from patchbrain.cli.progress import Progress
    from patchbrain.errors import ExitCode
    from patchbrain.executor import discovery, runner
    from patchbrain.executor.events import HostEvent, TaskOk
    from patchbrain.executor.request import RunHooks, RunRequest
    from patchbrain.inventory import load_hosts
    from patchbrain.journal import Journal
    from patchbrain.store import Store

    inventory = resolve_inventory(args)
    hosts = load_hosts(inventory)  # refuses bad patchbrain_* variables before anything runs
    limit = tuple(h for h in (args.limit or "").split(",") if h)
    names = [h.name for h in hosts if not limit or h.name in limit]
    ident = f"discover-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(2)}"
    progress = Progress(enabled=None if not args.json else False)

    def on_event(event: HostEvent) -> None:
        if isinstance(event, TaskOk) and event.action == "ansible.builtin.set_stats":
            progress.host_done(event.host)

    with progress.session("discover", hosts=len(names)):
        result = runner.run(
            RunRequest(
                playbook="discover.yml", inventory=inventory, ident=ident, limit=limit, forks=args.forks
            ),
            RunHooks(on_event=on_event),
        )
    found = discovery.parse_run_data(result.data)
    seen = {d.host for d in found}
    problems: dict[str, str] = {h: result.host_outcome(h) for h in names if h not in seen}
    if not found and problems and all(v == "not_run" for v in problems.values()):
        raise runner.RunError(f"discovery did not run ({result.status}); see {result.artifact_dir}/stdout")
    Journal(Store()).add_discovery(
        inventory=str(inventory),
        artifacts=str(result.artifact_dir),
        document={"hosts": [dataclasses.asdict(d) for d in found], "problems": problems},
    )
    if args.json:
        print_json(
            {
                "inventory": str(inventory),
                "artifacts": str(result.artifact_dir),
                "hosts": found,
                "unreachable_or_failed": problems,
            }
        )
    else:
        _table(found, problems)
    return int(ExitCode.FAILURES) if problems else 0


def _table(found: Sequence[HostDiscovery], problems: dict[str, str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Pending updates")
    for col in ("host", "pkg mgr", "package", "installed", "candidate", "CVEs fixed"):
        table.add_column(col)
    for d in found:
        if not d.pending:
            table.add_row(d.host, d.pkg_mgr, "-", "", "", "up to date")
        for p in d.pending:
            table.add_row(
                d.host, d.pkg_mgr, p.package, p.installed or "-", p.candidate, " ".join(p.cves) or "-"
            )
    console = Console()
    console.print(table)
    for host, outcome in sorted(problems.items()):
        console.print(f"[red]{host}: {outcome}[/red]")
