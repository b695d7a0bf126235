"""`patchbrain inventory check`: load an inventory and validate patchbrain's host variables."""

from __future__ import annotations

import argparse

from patchbrain.cli.common import add_inventory, add_json, print_json, resolve_inventory


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("inventory", help="validate an inventory's hosts and patchbrain variables")
    isub = p.add_subparsers(dest="inventory_command", metavar="ACTION", required=True)
    check = isub.add_parser("check", help="load the inventory and list its hosts, or name the bad variable")
    add_inventory(check)
    add_json(check)
    check.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    from patchbrain.inventory import load_hosts

    path = resolve_inventory(args)
    hosts = load_hosts(path)
    if args.json:
        print_json({"inventory": str(path), "hosts": hosts})
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(hosts)} hosts in {path}")
    for col in ("host", "address", "platform", "criticality", "exposure", "canary", "pkg mgr", "windows"):
        table.add_column(col)
    for h in hosts:
        table.add_row(
            h.name,
            h.address,
            h.platform,
            str(h.criticality),
            str(h.exposure),
            "-" if h.canary is None else str(h.canary).lower(),
            h.pkg_mgr or "discover",
            "; ".join(f"{w.rule} for {w.duration}" for w in h.windows) or "always",
        )
    Console().print(table)
    return 0
