"""`patchbrain lab`: the local test fleet (standard library only, so `lab down --all` needs no venv)."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from patchbrain.cli.common import add_json, print_json


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "lab",
        help="a local fleet of real Debian hosts over SSH (root; instance named by $PATCHBRAIN_LAB)",
        description="A local fleet of real Debian hosts (network namespaces, overlay roots, key-only sshd, "
        "nftables). $PATCHBRAIN_LAB names the instance (default pb).",
    )
    lab = p.add_subparsers(dest="lab_command", metavar="ACTION", required=True)

    up = lab.add_parser("up", help="start hosts h01..hN (idempotent: keeps running hosts)")
    up.add_argument("n", type=int, metavar="N", help="number of hosts, 1..64")
    up.add_argument(
        "--nodes",
        type=int,
        default=0,
        metavar="K",
        help="K more hosts after them are execution nodes (listed in nodes.yml, not in the inventory)",
    )
    up.add_argument(
        "--flavors",
        default="apt",
        metavar="LIST",
        help="package managers the hosts take in turn, from apt,dnf,zypper (default apt); dnf and zypper "
        "hosts are the same Debian base managed through rpm (host var patchbrain_pkg_mgr)",
    )
    add_json(up)
    up.set_defaults(func=_up)

    down = lab.add_parser("down", help="remove the instance: processes, namespaces, interfaces, files")
    down.add_argument(
        "--all",
        action="store_true",
        help="remove every recorded instance and any leftover named like a lab resource (pbl-*)",
    )
    down.set_defaults(func=_down)

    status = lab.add_parser("status", help="hosts, addresses, OS, groups, up/down")
    add_json(status)
    status.set_defaults(func=_status)

    inv = lab.add_parser("inventory", help="print the path of the running lab's Ansible inventory")
    inv.set_defaults(func=_inventory)

    ssh = lab.add_parser("ssh", help="SSH to a lab host as root (optionally run COMMAND)")
    ssh.add_argument("host", metavar="HOST")
    ssh.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND")
    ssh.set_defaults(func=_ssh)

    reset = lab.add_parser("reset", help="wipe a host's changes and boot it again (about a second)")
    reset.add_argument("hosts", nargs="+", metavar="HOST")
    reset.set_defaults(func=_reset)

    ping = lab.add_parser("ping", help="run the shipped ping playbook against the lab with ansible-playbook")
    ping.set_defaults(func=_ping)

    from patchbrain.cli import lab_content  # the content subcommands: publish, build-packages

    lab_content.register(lab)


def _up(args: argparse.Namespace) -> int:
    from patchbrain.lab import Lab
    from patchbrain.lab.content import parse_flavors

    hosts = Lab().up(args.n, parse_flavors(args.flavors), nodes=args.nodes)
    _ensure_lab_keys()
    if args.json:
        print_json(hosts)
    else:
        _print_table(hosts)
    return 0


def _ensure_lab_keys() -> None:
    """The lab's approver and signing keys (lab-approver-1, lab-approver-2, lab-signing), made once.

    A lazy import: the trust core needs `cryptography`, and the rest of `lab` runs on the standard library.
    Nothing is approved with them automatically; tests and the demo sign plans explicitly.
    """
    from patchbrain.keys import KeyStore, ensure_lab_keys

    ensure_lab_keys(KeyStore())


def _down(args: argparse.Namespace) -> int:
    from patchbrain.lab import Lab, down_all

    if args.all:
        for item in down_all():
            print(item)
    else:
        Lab().down()
    return 0


def _status(args: argparse.Namespace) -> int:
    from patchbrain.lab import Lab

    hosts = Lab().status()
    if args.json:
        print_json(hosts)
    elif not hosts:
        print("no lab hosts (start some with `patchbrain lab up N`)")
    else:
        _print_table(hosts)
    return 0


def _print_table(hosts: Sequence[object]) -> None:
    rows = [("HOST", "ADDRESS", "STATE", "OS", "PKG", "SELINUX", "GROUPS", "CRIT", "EXPO", "CANARY")]
    for h in hosts:
        d = vars(h)
        rows.append(
            (
                d["name"],
                d["address"],
                "up" if d["up"] else "down",
                d["os_release"],
                d["pkg_mgr"],
                d["selinux"],
                ",".join(d["groups"]),
                str(d["criticality"]),
                str(d["exposure"]),
                "yes" if d["canary"] else "no",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())


def _inventory(args: argparse.Namespace) -> int:
    from patchbrain.lab import Lab

    print(Lab().inventory_path())
    return 0


def _ssh(args: argparse.Namespace) -> int:
    from patchbrain.lab import Lab

    remote = " ".join(args.command) if args.command else None  # like ssh: the user's own shell command
    argv = Lab().ssh_argv(args.host, remote, tty=remote is None and sys.stdin.isatty())
    return subprocess.run(argv, check=False).returncode


def _reset(args: argparse.Namespace) -> int:
    from patchbrain.lab import Lab

    Lab().reset(*args.hosts)
    print(f"reset {' '.join(args.hosts)}")
    return 0


def _ping(args: argparse.Namespace) -> int:
    from patchbrain import resources
    from patchbrain.errors import EnvironmentProblem
    from patchbrain.lab import Lab

    inventory = Lab().inventory_path()
    exe = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or shutil.which(
        "ansible-playbook"
    )
    if exe is None:
        raise EnvironmentProblem("ansible-playbook is not installed (ansible-core)")
    env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="True", ANSIBLE_PIPELINING="True")
    cmd = [exe, "-i", str(inventory), str(resources.playbook("ping.yml"))]
    return subprocess.run(cmd, env=env, check=False).returncode
