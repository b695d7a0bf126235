"""`patchbrain nodes check FILE`: reach each execution node and ask its ansible-runner what it has."""

from __future__ import annotations

import argparse
from pathlib import Path

from patchbrain.cli.common import add_json, print_json


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("nodes", help="execution nodes (docs/nodes.md)")
    nodes = p.add_subparsers(dest="nodes_command", required=True, metavar="COMMAND")
    check = nodes.add_parser(
        "check",
        help="SSH to each node (strict host keys) and run `ansible-runner worker --worker-info` there",
    )
    check.add_argument("file", type=Path, metavar="FILE", help="a nodes file (the lab writes nodes.yml)")
    add_json(check)
    check.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    from patchbrain.errors import EnvironmentProblem
    from patchbrain.executor.nodes import load_config, worker_info
    from patchbrain.lab.nodeimage import versions

    cfg = load_config(args.file)
    want = versions()
    rows = []
    for node in cfg.nodes:
        try:
            info = dict(worker_info(node))
            ok = str(info.get("runner_version")) == want["ansible-runner"] and not info.get("errors")
            rows.append(
                {"node": node.name, "address": node.address, "capacity": node.capacity, "ok": ok, **info}
            )
        except EnvironmentProblem as exc:
            rows.append({"node": node.name, "address": node.address, "capacity": node.capacity, "ok": False,
                         "error": str(exc)})  # fmt: skip
    if args.json:
        print_json({"controller_capacity": cfg.controller_capacity, "controller": want, "nodes": rows})
    else:
        print(f"controller: {cfg.controller_capacity} forks, ansible-runner {want['ansible-runner']}")
        for r in rows:
            detail = r.get("error") or (
                f"ansible-runner {r.get('runner_version')}, {r.get('cpu_count')} CPUs, "
                f"{int(r.get('mem_in_bytes', 0)) // 2**20} MiB"
            )
            mark = "ok " if r["ok"] else "BAD"
            print(f"{r['node']:12s} {r['address']:16s} {r['capacity']:4d} forks  {mark}  {detail}")
    # a node that cannot be reached or runs another ansible-runner is an environment problem (exit 2)
    return 0 if all(r["ok"] for r in rows) else int(EnvironmentProblem.exit_code)
