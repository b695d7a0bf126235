"""`patchbrain plan`: a minimal plan from the latest discovery, split into waves by the wave rule."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from patchbrain.cli.common import add_json, print_json

if TYPE_CHECKING:
    from patchbrain.models import FixClaim
    from patchbrain.plans import Plan


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
        help="plan the latest discovery's updates in ranked, windowed waves (or `plan show PLAN`)",
        description="Waves: the first number is the canary size (count or % of all hosts), widened to "
        "cover every (OS release, package manager, package set) group; later numbers are cumulative shares "
        "of the REMAINING hosts and must end at 100%. `patchbrain plan show PLAN [--json]` prints a plan.",
    )
    p.add_argument("action", nargs="?", choices=["show"], help="show: print the plan file PLAN")
    p.add_argument("file", nargs="?", type=Path, metavar="PLAN", help="the plan file (with `show`)")
    p.add_argument("--waves", default="1,10%,50%,100%", metavar="SPEC", help="default 1,10%%,50%%,100%%")
    p.add_argument("--out", type=Path, default=None, metavar="FILE", help="write the plan YAML here")
    p.add_argument("--package", action="append", default=[], metavar="NAME", help="only these packages")
    p.add_argument("--exclude", action="append", default=[], metavar="HOST", help="leave HOST out")
    p.add_argument("--max-per-wave", type=int, default=None, metavar="N", help="at most N hosts per wave")
    p.add_argument(
        "--max-failures",
        type=int,
        default=0,
        metavar="PCT",
        help="%% of a later wave's hosts that may fail before the rollout halts (default 0; canary: 0)",
    )
    p.add_argument("--bake", default="0m", metavar="DURATION", help="wait after each wave, e.g. 30m")
    p.add_argument(
        "--wave-runtime", default="30m", metavar="DURATION", help="expected run time per wave (schedule)"
    )
    p.add_argument(
        "--cve-scores",
        type=Path,
        default=None,
        metavar="CSV",
        help="CVE scores from `patchbrain model score` (cve_id,score): rank by the prioritizer's formula",
    )
    p.add_argument(
        "--kev", type=Path, default=None, metavar="CSV", help="the CISA KEV catalog (with --cve-scores)"
    )
    p.add_argument("--author-key", default=None, metavar="NAME", help="sign the plan's authorship")
    p.add_argument("--passphrase-file", type=Path, default=None, metavar="FILE", help="the key's passphrase")
    p.add_argument(
        "--reboot-ok",
        type=_tristate,
        default=None,
        metavar="BOOL",
        help="true: reboot when needed; false: leave pending; null (default): stop if a reboot is needed",
    )
    add_json(p)
    p.set_defaults(func=_plan)


def _duration(text: str, field: str) -> dt.timedelta:
    from patchbrain.windows import parse_duration

    if text.strip() in ("0", "0m", "0s"):
        return dt.timedelta(0)
    return parse_duration(text, source="command line", field=field)


def _plan(args: argparse.Namespace) -> int:
    from patchbrain.errors import BadInput

    if args.action == "show":
        if args.file is None:
            raise BadInput("`plan show` needs the plan file", field="PLAN")
        return _show(args)
    if args.file is not None:
        raise BadInput(f"unexpected argument {args.file}; did you mean `plan show {args.file}`?")
    return _make(args)


def _make(args: argparse.Namespace) -> int:
    from patchbrain.approvals import sign_authorship
    from patchbrain.audit import default_actor, open_audit_log
    from patchbrain.errors import BadInput
    from patchbrain.feeds.cvestore import CveStore
    from patchbrain.feeds.matching import has_advisories
    from patchbrain.inventory import load_hosts
    from patchbrain.journal import Journal
    from patchbrain.keys import KeyStore
    from patchbrain.planner import PlanPolicy
    from patchbrain.plans import dump_plan, make_plan, plan_document, updates_from_discovery
    from patchbrain.store import Store

    key = None
    if args.author_key:
        from patchbrain.cli.cmd_keys import read_passphrase_file

        key = KeyStore().load_private(args.author_key, read_passphrase_file(args.passphrase_file))
    policy = PlanPolicy(
        spec=args.waves,
        max_per_wave=args.max_per_wave,
        excluded=frozenset(args.exclude),
        max_failures_pct=args.max_failures,
        bake=_duration(args.bake, "--bake"),
        wave_runtime=_duration(args.wave_runtime, "--wave-runtime"),
    )
    store = Store()
    latest = Journal(store).latest_discovery()
    if latest is None:
        raise BadInput("no discovery on record: run `patchbrain discover` first")
    _taken, inventory, document = latest
    cves = CveStore(store)
    pending = updates_from_discovery(document.get("hosts", []), cves)
    releases = {
        str(h.get("host")): f"{h.get('distribution', '')} {h.get('release', '')}".strip()
        for h in document.get("hosts", [])
    }
    if not pending:
        raise BadInput("the latest discovery found nothing pending; nothing to plan")
    hosts = load_hosts(Path(inventory)) if Path(inventory).exists() else []
    scores, ranking = None, None
    if args.cve_scores is not None:
        from patchbrain.plan_scores import active_base_rate, prioritizer_scorer, read_cve_scores

        kev: frozenset[str] = frozenset()
        if args.kev is not None:
            from patchbrain.feeds.kev import load_kev

            kev = frozenset(load_kev(args.kev))
        base_rate, model = active_base_rate()
        scores = prioritizer_scorer(
            {h.name: h for h in hosts}, read_cve_scores(args.cve_scores), kev, unknown_p=base_rate
        )
        kev_from = f"from {args.kev.name}" if args.kev else "not given"
        ranking = (
            f"prioritizer: CVE scores from {args.cve_scores.name}, KEV {kev_from}, "
            f"unknown CVEs at the {model}'s base rate {base_rate:.4f}; risk = P_eff x host weight"
        )
    plan = make_plan(
        pending,
        inventory=inventory,
        hosts=hosts,
        reboot_ok=args.reboot_ok,
        packages=args.package,
        releases=releases,
        policy=policy,
        scores=scores,
        ranking=ranking,
        author=key.public.fingerprint if key else None,
        author_name=key.name if key else None,
    )
    if not plan.hosts:
        raise BadInput(
            f"no pending update of {', '.join(args.package)} in the latest discovery", field="--package"
        )
    if key is not None:
        plan = sign_authorship(plan, key)
    text = dump_plan(plan)
    if args.out is not None:
        from patchbrain.approvals import sidecar_path

        stale = sidecar_path(args.out)
        if stale.exists():  # approvals of the plan this file held before: keep them, but not beside this one
            stale.rename(stale.with_name(f"{stale.name}.replaced-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}"))
        args.out.write_text(text, encoding="utf-8")
    open_audit_log(store).append(
        default_actor(),
        "plan.create",
        plan.plan_id,
        {
            "hosts": len(plan.hosts),
            "waves": [len(w) for w in plan.waves],
            "author": plan.author_name,
            "author_key": plan.author,
            "file": str(args.out) if args.out else None,
        },
    )
    if args.json:
        print_json({**plan_document(plan), "file": str(args.out) if args.out else None})
    elif args.out is None:
        print(text, end="")
    else:
        sizes = ", ".join(str(len(w)) for w in plan.waves)
        print(f"plan {plan.plan_id}: {len(plan.hosts)} hosts in waves of {sizes or 'nothing'} -> {args.out}")
        for w in plan.warnings:
            print(f"warning: {w}")
        disputed = sum(len(p.disputed_cves) for h in plan.hosts.values() for p in h.packages)
        if not has_advisories(cves):
            print("note: no OSV advisories loaded (`patchbrain feeds load`): CVE claims are discovery's only")
        elif disputed:
            print(f"note: {disputed} disputed CVE claim(s): see `patchbrain plan show {args.out}`")
    return 0


def _show(args: argparse.Namespace) -> int:
    from patchbrain.audit import sanitize
    from patchbrain.plans import load_plan, plan_document

    plan = load_plan(args.file)
    if args.json:
        print_json(plan_document(plan))
        return 0
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    console.print(f"plan {plan.plan_id}")
    console.print(
        f"created {plan.created:%Y-%m-%d %H:%M:%S %Z}, {len(plan.hosts)} hosts, {len(plan.waves)} waves"
    )
    console.print(f"author: {escape(sanitize(plan.author_name or '-'))} ({plan.author or 'unsigned'})")
    console.print(f"ranking: {escape(sanitize(plan.ranking))}")
    table = Table(title="Waves")
    for col in ("wave", "kind", "earliest start", "max fail", "bake", "host", "os", "risk"):
        table.add_column(col, overflow="fold")
    table.add_column("packages (version, risk: CVEs (sources))", overflow="fold", min_width=24)
    for i, wave in enumerate(plan.waves):
        s = plan.wave_schedule(i)
        for j, host in enumerate(wave):
            h = plan.hosts[host]
            pkgs = "; ".join(
                f"{p.name} {p.version} ({p.risk:.1f}{': ' + ', '.join(fixes) if fixes else ''})"
                for p in h.packages
                for fixes in [p.fix_summary()]
            )
            first = j == 0
            table.add_row(
                str(i + 1) if first else "",
                s.kind if first else "",
                (f"{s.earliest_start:%Y-%m-%d %H:%M}" if s.earliest_start else "any time") if first else "",
                str(s.max_failures) if first else "",
                f"{s.bake_s // 60}m" if first else "",
                host,
                escape(sanitize(h.os_release)),
                f"{h.risk:.1f}",
                escape(sanitize(pkgs)),
            )
    console.print(table)
    for line in _disputes(plan):
        console.print(f"[red]{escape(sanitize(line))}[/red]")
    for host, reason in sorted(plan.excluded.items()):
        console.print(f"excluded {host}: {escape(sanitize(reason))}")
    for w in plan.warnings:
        console.print(f"[yellow]warning: {escape(sanitize(w))}[/yellow]")
    return 0


def _disputes(plan: Plan) -> list[str]:
    """One line per disputed (package, version, CVE), with each source's claim and the hosts it is on."""
    seen: dict[tuple[str, str, str], tuple[list[str], tuple[FixClaim, ...]]] = {}
    for h in plan.hosts.values():
        for p in h.packages:
            fixes = p.fixes()
            for cve in p.disputed_cves:
                seen.setdefault((p.name, p.version, cve), ([], fixes[cve]))[0].append(h.host)
    out = []
    for (name, version, cve), (hosts, claims) in sorted(seen.items()):
        said = "; ".join(f"{c.source} says {c.says} ({c.detail})" for c in claims)
        where = ", ".join(hosts[:5]) + (f" and {len(hosts) - 5} more" if len(hosts) > 5 else "")
        out.append(f"disputed {cve} in {name} {version} on {where}: {said}")
    return out
