"""`patchbrain redteam list|run`: the seed's attacks on patchbrain as scored exercises (docs/redteam.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from patchbrain.cli.common import add_json, print_json


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("redteam", help="red-team exercises: attack patchbrain and score its defences")
    rsub = p.add_subparsers(dest="redteam_command", metavar="SUBCOMMAND", required=True)
    lp = rsub.add_parser("list", help="the scenarios, what each attacks, and whether it can run here")
    add_json(lp)
    lp.set_defaults(func=_list)
    rp = rsub.add_parser(
        "run", help="run scenarios (all by default) and score them; exit 0 only if all passed"
    )
    rp.add_argument(
        "--scenario", action="append", default=[], metavar="NAME", help="run only NAME (repeatable)"
    )
    add_json(rp)
    rp.add_argument("--report", type=Path, default=None, metavar="FILE.md", help="write the Markdown report")
    rp.add_argument("--lab", default=None, metavar="NAME", help="attack hosts of this RUNNING lab instance")
    rp.add_argument(
        "--no-own-lab",
        action="store_true",
        help="never bring up a lab instance of its own (scenarios needing hosts are then not available)",
    )
    rp.add_argument(
        "--own-lab-name",
        default="redteam",
        metavar="NAME",
        help="instance name of its own lab (default redteam)",
    )
    rp.add_argument(
        "--staging",
        type=Path,
        default=None,
        metavar="INVENTORY",
        help="attack a staging inventory instead of a lab: only the scenarios that need no lab powers run "
        "on its hosts (see docs/redteam.md)",
    )
    rp.add_argument(
        "--i-understand-this-attacks-staging",
        action="store_true",
        dest="confirm_staging",
        help="required with --staging",
    )
    rp.add_argument(
        "--staging-host",
        default=None,
        metavar="HOST",
        help="the staging host the attacks aim at (default: the first by name)",
    )
    rp.add_argument(
        "--require-all",
        action="store_true",
        help="fail when any scenario is not available (scenarios named with --scenario always must be)",
    )
    rp.add_argument("--workdir", type=Path, default=None, help="keep scratch folders here (default: removed)")
    rp.set_defaults(func=_run)


def _list(args: argparse.Namespace) -> int:
    from patchbrain.redteam.registry import scenarios

    every = scenarios()
    if args.json:
        print_json(
            [
                {"number": s.number, "name": s.name, "title": s.title, "attacked": s.attacked,
                 "needs_hosts": s.needs_hosts, "defences": list(s.defences)}
                for s in every
            ]
        )  # fmt: skip
        return 0
    for s in every:
        hosts = " (needs a lab host)" if s.needs_hosts else ""
        print(f"{s.number}. {s.name}{hosts}\n   {s.attacked}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from patchbrain.errors import BadInput, ExitCode
    from patchbrain.redteam import report
    from patchbrain.redteam.defences import ENV, disabled_from_env
    from patchbrain.redteam.registry import select
    from patchbrain.redteam.runner import RunOptions, run

    if args.staging is not None:
        if not args.confirm_staging:
            raise BadInput(
                "attacking a staging inventory needs --i-understand-this-attacks-staging", field="--staging"
            )
        if args.lab:
            raise BadInput("--staging and --lab name two targets: choose one", field="--staging")
        if not args.staging.is_file():
            raise BadInput("no such inventory file", source=str(args.staging), field="--staging")
    elif args.staging_host is not None:
        raise BadInput("--staging-host needs --staging", field="--staging-host")
    try:
        disabled = disabled_from_env()
    except ValueError as exc:
        raise BadInput(str(exc), source="environment", field=ENV) from exc
    chosen = select(args.scenario)
    if disabled:
        print(
            f"patchbrain: WARNING: {ENV} switches off {', '.join(disabled)}: this run cannot pass",
            file=sys.stderr,
        )
    opts = RunOptions(
        lab_instance=args.lab,
        own_lab=not args.no_own_lab,
        own_lab_instance=args.own_lab_name,
        staging_inventory=args.staging.resolve() if args.staging is not None else None,
        staging_target=args.staging_host,
        workdir=args.workdir,
        disabled=disabled,
    )
    quiet = args.json
    if not args.verbose:  # the attacks make patchbrain log hundreds of expected warnings; the report has them
        import logging

        logging.getLogger("patchbrain").setLevel(logging.ERROR)
    results = run(
        chosen, opts, progress=(lambda _m: None) if quiet else (lambda m: print(m, file=sys.stderr))
    )
    if args.staging is not None:
        target = f"staging inventory {args.staging} (scratch state for the scenarios that need no hosts)"
    elif args.lab:
        target = f"lab instance {args.lab}"
    else:
        target = "scratch state and, for host scenarios, a lab of its own"
    strict = args.require_all or bool(args.scenario)
    if args.report is not None:
        text = report.markdown(results, target=target, disabled=disabled, strict=strict)
        args.report.write_text(text, encoding="utf-8")
    if args.json:
        print_json(report.document(results, target=target, disabled=disabled, strict=strict))
    else:
        for r in results:
            ok = sum(c.passed for c in r.checks)
            print(
                f"{r.status.upper():12} {r.name}: {ok}/{len(r.checks)} checks"
                + (f" - {r.detail}" if r.detail else "")
            )
            for c in r.checks:
                if not c.passed:
                    print(f"             FAIL {c.attack}: {c.outcome}")
    if report.suite_passed(results, disabled, strict=strict):
        return 0
    if all(r.status in ("passed", "unavailable") for r in results) and not disabled:
        return int(ExitCode.BAD_INPUT)  # only unavailable ones stand in the way: nothing was refuted
    return int(ExitCode.FAILURES)  # a defence did not hold (or was switched off)
