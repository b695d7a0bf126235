"""`patchbrain posture`: snapshot SELinux/firewall/sockets, compare snapshots, pre-scan packages."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

from patchbrain.cli.common import add_inventory, add_json, print_json, resolve_inventory


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("posture", help="SELinux and firewall snapshots, and the drift gate")
    psub = p.add_subparsers(dest="posture_command", metavar="ACTION", required=True)

    snap = psub.add_parser("snapshot", help="snapshot every host (read-only) into a JSON file")
    add_inventory(snap)
    snap.add_argument("--limit", metavar="HOSTS", help="Ansible host pattern to restrict the run to")
    snap.add_argument(
        "-o", "--output", type=Path, help="snapshot file to write (default: under PATCHBRAIN_HOME)"
    )
    add_json(snap)
    snap.set_defaults(func=_snapshot)

    dif = psub.add_parser(
        "diff",
        help="classify every change between two snapshots",
        description="Exit 0: no weakening; 3: a weakening or an unknown change; 2: bad input.",
    )
    dif.add_argument("before", type=Path, metavar="BEFORE", help="snapshot file or directory of <host>.json")
    dif.add_argument("after", type=Path, metavar="AFTER", help="snapshot file or directory of <host>.json")
    dif.add_argument("--policy", type=Path, help="drift policy file (YAML allow-lists)")
    dif.add_argument(
        "--package", action="append", default=[], metavar="NAME", help="package in the update (repeatable)"
    )
    dif.add_argument("--all", action="store_true", help="also list neutral changes")
    add_json(dif)
    dif.set_defaults(func=_diff)

    pre = psub.add_parser("prescan", help="report maintainer-script commands that touch security controls")
    pre.add_argument("packages", nargs="+", type=Path, metavar="PKG", help=".deb or .rpm files")
    pre.add_argument("--strict", action="store_true", help="exit 3 when any finding is reported")
    add_json(pre)
    pre.set_defaults(func=_prescan)


def _summary(doc: dict[str, Any], host: str) -> dict[str, Any]:
    from patchbrain.posture.snapshot import parse_document

    s = parse_document(doc, host=host)
    return {
        "sources": list(s.sources),
        "tables": [t.key for t in s.ruleset.tables],
        "selinux": s.selinux.runtime_mode if s.selinux else None,
        # read from the host: /etc/selinux/SIMULATED present, SELinux there is the lab's stand-in
        "selinux_simulated": bool(s.selinux and s.selinux.simulated),
        "firewalld": None if s.firewalld is None else s.firewalld.running,
        "ufw": None if s.ufw is None else s.ufw.active,
        "listening": None if s.sockets is None else len(s.sockets),
    }


def _snapshot(args: argparse.Namespace) -> int:
    from patchbrain import config
    from patchbrain.errors import ExitCode
    from patchbrain.posture.collect import run_role
    from patchbrain.posture.snapshot import file_document

    inventory = resolve_inventory(args)
    result = run_role(inventory, limit=args.limit)
    out = args.output
    if out is None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        out = config.state_dir() / "posture" / f"snapshot-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(file_document(result.documents), fh, indent=1, sort_keys=True)
    os.replace(tmp, out)
    summaries = {h: _summary(d, h) for h, d in sorted(result.documents.items())}
    if args.json:
        print_json(
            {"file": str(out), "hosts": summaries, "failed": result.failed, "artifacts": result.artifacts}
        )
    else:
        for host, s in summaries.items():
            sim = " (simulated)" if s["selinux_simulated"] else ""
            print(
                f"{host}: selinux={s['selinux'] or '-'}{sim} tables={len(s['tables'])} "
                f"firewalld={_onoff(s['firewalld'])} ufw={_onoff(s['ufw'])} listening={s['listening']}"
            )
        for host, why in sorted(result.failed.items()):
            print(f"{host}: FAILED: {why}", file=sys.stderr)
        print(f"snapshot written to {out}")
    return int(ExitCode.FAILURES) if result.failed else 0


def _onoff(value: bool | None) -> str:
    return "-" if value is None else ("on" if value else "off")


def _diff(args: argparse.Namespace) -> int:
    from patchbrain.errors import ExitCode
    from patchbrain.posture import gate, policy, snapshot

    pol = policy.load(args.policy) if args.policy else policy.Policy()
    report = gate.compare(
        snapshot.load_file(args.before), snapshot.load_file(args.after), policy=pol, packages=args.package
    )
    if args.json:
        print_json(
            {
                "ok": report.ok,
                "counts": report.counts(),
                "hosts": list(report.hosts),
                "selinux_simulated": list(report.simulated),
                "changes": [dataclasses_asdict(c) for c in report.changes],
                "blocking": [dataclasses_asdict(c) for c in report.blocking],
            }
        )
    else:
        shown = [c for c in report.changes if args.all or c.effect != "neutral"]
        for c in shown:
            mark = " (allowed by " + c.allowed_by + ")" if c.allowed_by else ""
            print(f"{c.host}: {c.effect.upper()}{mark}: {c.reason}")
        if report.simulated:
            from patchbrain.posture.labels import SIMULATED_NOTE

            print(f"SELinux simulated on {', '.join(report.simulated)}: {SIMULATED_NOTE}")
        counts = report.counts()
        print(
            f"{len(report.hosts)} hosts: {counts['weakens']} weakening, {counts['unknown']} unknown, "
            f"{counts['strengthens']} strengthening, {counts['neutral']} neutral; "
            + ("no drift" if report.ok else f"DRIFT: {len(report.blocking)} blocking change(s)")
        )
    return 0 if report.ok else int(ExitCode.DRIFT)


def dataclasses_asdict(obj: Any) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(obj)


def _prescan(args: argparse.Namespace) -> int:
    from patchbrain.errors import ExitCode
    from patchbrain.posture.prescan import scan_file

    reports = [scan_file(p) for p in args.packages]
    if args.json:
        print_json([dataclasses_asdict(r) for r in reports])
    else:
        for r in reports:
            print(f"{r.package} ({r.path}): {len(r.findings)} finding(s)")
            for f in r.findings:
                print(f"  {f.script}:{f.line}: {f.category}: {f.text}")
    found = any(r.findings for r in reports)
    return int(ExitCode.DRIFT) if (found and args.strict) else 0
