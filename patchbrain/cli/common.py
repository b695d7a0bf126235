"""Options and helpers shared by command modules."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from patchbrain import output


def add_json(parser: argparse.ArgumentParser) -> None:
    """`--json`: machine-readable output on stdout."""
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")


def add_inventory(parser: argparse.ArgumentParser) -> None:
    """`-i INVENTORY`: without it, commands use the running lab's inventory."""
    parser.add_argument(
        "-i",
        "--inventory",
        type=Path,
        default=None,
        metavar="INVENTORY",
        help="Ansible inventory (default: the running lab's inventory)",
    )


def resolve_inventory(args: argparse.Namespace) -> Path:
    """The inventory named with -i, else the running lab's (BadInput if there is none)."""
    from patchbrain.errors import BadInput

    if args.inventory is not None:
        if not args.inventory.exists():
            raise BadInput("no such file", source=str(args.inventory), field="-i")
        return Path(args.inventory)
    from patchbrain.lab import running_inventory  # lazy: the lab is only one source of inventories

    inv = running_inventory()
    if inv is None:
        raise BadInput("no -i INVENTORY given and no lab is running (start one with `patchbrain lab up N`)")
    return inv


def print_json(obj: Any) -> None:
    """Write `obj` as JSON on stdout."""
    output.emit(obj, sys.stdout)
