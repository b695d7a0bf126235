"""`patchbrain report ROLLOUT` and `patchbrain forensics ROLLOUT --out FILE.tar.gz`."""

from __future__ import annotations

import argparse
from pathlib import Path

from patchbrain.cli.common import add_json, print_json


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report",
        help="what a rollout patched where, CVEs closed, what halted and why, explanations, audit records",
    )
    p.add_argument("rollout", metavar="ROLLOUT", help="the plan id (or a unique prefix of 8+ characters)")
    p.add_argument("--format", choices=["md", "json"], default="md", help="Markdown (default) or JSON")
    p.set_defaults(func=_report)

    f = sub.add_parser(
        "forensics",
        help="a tar.gz evidence bundle of a rollout (plan, approvals, audit slice + chain proof, artifacts, "
        "posture snapshots, SHA-256 manifest)",
    )
    f.add_argument("rollout", metavar="ROLLOUT", help="the plan id (or a unique prefix of 8+ characters)")
    f.add_argument("--out", type=Path, required=True, metavar="FILE.tar.gz", help="the bundle to write")
    add_json(f)
    f.set_defaults(func=_forensics)


def _report(args: argparse.Namespace) -> int:
    from patchbrain.report import build_report, render_markdown
    from patchbrain.store import Store

    report = build_report(Store(), args.rollout)
    if args.format == "json":
        print_json(report)
    else:
        print(render_markdown(report), end="")
    return 0


def _forensics(args: argparse.Namespace) -> int:
    from patchbrain.audit import default_actor, open_audit_log
    from patchbrain.forensics import write_bundle
    from patchbrain.store import Store

    store = Store()
    summary = write_bundle(store, args.rollout, args.out)
    open_audit_log(store).append(default_actor(), "forensics.bundle", summary["root"], summary)
    if args.json:
        print_json(summary)
    else:
        print(f"{summary['bundle']}: {summary['files']} files, sha256 {summary['sha256']}")
        if summary["selinux_simulated"]:
            print(
                f"SELinux simulated on {', '.join(summary['selinux_simulated'])} "
                "(the lab's stand-in; see posture/selinux.json in the bundle)"
            )
    return 0
