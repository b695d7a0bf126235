"""`patchbrain model`: train, score, explain, validate, sign, promote, revert, show the prioritizer model."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from patchbrain.cli.common import add_inventory, add_json, print_json, resolve_inventory


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("model", help="the CVE prioritizer model: train, score, explain, validate, promote")
    msub = p.add_subparsers(dest="model_command", metavar="SUBCOMMAND", required=True)

    t = msub.add_parser("train", help="train a bundle on NVD 1.1 feeds labelled with the CISA KEV catalog")
    t.add_argument(
        "--nvd", type=Path, action="append", required=True, metavar="PATH", help="feed file or folder"
    )
    t.add_argument("--kev", type=Path, required=True, metavar="FILE", help="KEV catalog (CSV or JSON)")
    t.add_argument(
        "--out", type=Path, default=Path("prioritizer-bundle"), metavar="DIR", help="bundle folder"
    )
    add_json(t)
    t.set_defaults(func=_train)

    s = msub.add_parser("score", help="write cve_id,score for every non-rejected CVE (higher = more urgent)")
    s.add_argument(
        "--nvd", type=Path, action="append", default=[], metavar="PATH", help="NVD 1.1 feed or folder"
    )
    s.add_argument(
        "--cve5", type=Path, action="append", default=[], metavar="PATH", help="CVE 5 record or folder"
    )
    s.add_argument(
        "--epss", type=Path, default=None, metavar="CSV", help="current EPSS scores (optional input)"
    )
    s.add_argument(
        "--model", type=Path, default=None, metavar="DIR", help="bundle (default: the active model)"
    )
    s.add_argument("--output", type=Path, required=True, metavar="FILE.csv")
    s.set_defaults(func=_score)

    e = msub.add_parser(
        "explain",
        help="why a CVE scores as it does (model contributions), or why a host's updates rank as they do",
    )
    e.add_argument("target", metavar="CVE|HOST", help="a CVE id, or an inventory host name")
    e.add_argument(
        "--nvd", type=Path, action="append", default=[], metavar="PATH", help="where to find the CVE(s)"
    )
    e.add_argument("--cve5", type=Path, action="append", default=[], metavar="PATH")
    add_inventory(e)
    e.add_argument(
        "--discovery",
        type=Path,
        default=None,
        metavar="FILE",
        help="HOST: the pending updates, a `patchbrain discover --json` document "
        "(default: the journal's latest discovery)",
    )
    e.add_argument(
        "--kev",
        type=Path,
        default=None,
        metavar="FILE",
        help="HOST: KEV catalog (default: the one loaded with `patchbrain feeds load`)",
    )
    e.add_argument(
        "--model", type=Path, default=None, metavar="DIR", help="bundle (default: the active model)"
    )
    e.add_argument("--top", type=int, default=5, metavar="N", help="contributions to show (default 5)")
    add_json(e)
    e.set_defaults(func=_explain)

    v = msub.add_parser("validate", help="run the promotion gate on a bundle (exit 0 pass, 5 refused)")
    v.add_argument("bundle", type=Path, metavar="BUNDLE")
    add_json(v)
    v.set_defaults(func=_validate)

    g = msub.add_parser("sign", help="approve a bundle: sign its metadata.json with a key")
    g.add_argument("bundle", type=Path, metavar="BUNDLE")
    g.add_argument("--key", required=True, metavar="NAME")
    g.add_argument("--passphrase-file", type=Path, default=None, metavar="FILE")
    add_json(g)
    g.set_defaults(func=_sign)

    pr = msub.add_parser("promote", help="gate + two approvers' signatures, then make the bundle active")
    pr.add_argument("bundle", type=Path, metavar="BUNDLE")
    pr.add_argument("--signature", type=Path, action="append", default=[], metavar="FILE")
    add_json(pr)
    pr.set_defaults(func=_promote)

    r = msub.add_parser("revert", help="make the previously active model active again")
    add_json(r)
    r.set_defaults(func=_revert)

    st = msub.add_parser("status", help="the active model, its metrics and the promotion history")
    add_json(st)
    st.set_defaults(func=_status)


@contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    """A rich progress display on stderr, as a `progress(stage, done, total)` callback."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int | None) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield progress


def _bundle(path: Path | None) -> Any:
    from patchbrain.prioritizer.bundle import load_bundle
    from patchbrain.prioritizer.governance import active_bundle

    return load_bundle(path) if path is not None else active_bundle()


def _train(args: argparse.Namespace) -> int:
    from patchbrain.feeds.kev import load_kev
    from patchbrain.feeds.nvd import iter_nvd11
    from patchbrain.prioritizer import train as T
    from patchbrain.prioritizer.bundle import save_bundle
    from patchbrain.prioritizer.predict import expand_feed_paths

    if not args.kev.is_file():
        from patchbrain.errors import BadInput

        raise BadInput("no such file", source=str(args.kev), field="--kev")
    files = expand_feed_paths(args.nvd, what="--nvd")
    kev = load_kev(args.kev)
    config = T.TrainConfig()
    show = not args.json and sys.stderr.isatty()
    with _progress(show) as progress:

        def records() -> Iterator[Any]:
            for i, f in enumerate(files):
                if progress is not None:
                    progress("feeds", i, len(files))
                yield from iter_nvd11(f)
            if progress is not None:
                progress("feeds", len(files), len(files))

        from patchbrain.prioritizer.governance import golden_ids

        held_out = golden_ids()
        examples = T.collect(records(), set(kev), config, exclude=held_out)
        inputs = T.input_hashes([*files, args.kev])
        result = T.train(examples, config, inputs=inputs, held_out=len(held_out), progress=progress)
    save_bundle(args.out, result.booster, result.metadata)
    from patchbrain.prioritizer.bundle import load_bundle
    from patchbrain.prioritizer.governance import audit

    bundle = load_bundle(args.out)
    audit(
        "model.train",
        bundle.bundle_id,
        {
            "out": str(args.out),
            "inputs": result.metadata["training"]["inputs"],
            "validation": result.validation,
        },
    )
    if args.json:
        print_json(
            {
                "bundle": str(args.out),
                "bundle_id": bundle.bundle_id,
                "validation": result.validation,
                "training": result.metadata["training"],
            }
        )
        return 0
    _print_validation(result.validation)
    print(f"bundle written to {args.out} (id {bundle.bundle_id}); next: patchbrain model validate {args.out}")
    return 0


def _print_validation(v: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"Temporal validation: train {v['train_window'][0]}..{v['train_window'][1]}, "
        f"validate {v['validate_window'][0]}..{v['validate_window'][1]} "
        f"({v['model']['n']} CVEs, {v['model']['positives']} in KEV)"
    )
    table.add_column("metric")
    table.add_column("model", justify="right")
    table.add_column("CVSS sort", justify="right")
    table.add_column("ratio", justify="right")
    for key, label in (
        ("average_precision", "average precision"),
        ("recall_top5pct", "KEV recall in top 5%"),
        ("precision_at_100", "precision@100"),
    ):
        m, b = v["model"][key], v["cvss_baseline"][key]
        table.add_row(label, f"{m:.4f}", f"{b:.4f}", f"{m / b:.2f}x" if b else "-")
    Console().print(table)
    for name, sm in v.get("slices", {}).items():
        m, b = sm["model"], sm["cvss_baseline"]
        print(
            f"  {name:<16} {m['n']:>6} CVEs, {m['positives']:>3} in KEV: AP {m['average_precision']:.4f} "
            f"(CVSS {b['average_precision']:.4f}), recall top 5% {m['recall_top5pct']:.3f} "
            f"(CVSS {b['recall_top5pct']:.3f})"
        )


def _score(args: argparse.Namespace) -> int:
    from patchbrain.errors import BadInput
    from patchbrain.prioritizer.predict import read_epss, read_records, score_cves, write_scores_csv

    if not args.nvd and not args.cve5:
        raise BadInput("give at least one --nvd or --cve5 input", field="--nvd")
    bundle = _bundle(args.model)
    records = read_records(args.nvd, args.cve5)
    epss = read_epss(args.epss) if args.epss is not None else None
    n = write_scores_csv(args.output, score_cves(bundle, records, epss))
    print(f"{args.output}: {n} CVEs scored with model {bundle.bundle_id}", file=sys.stderr)
    return 0


def _explain(args: argparse.Namespace) -> int:
    from patchbrain.errors import BadInput
    from patchbrain.feeds.common import CVE_ID_RE
    from patchbrain.prioritizer.explain import explain_records

    if not 1 <= args.top <= 50:
        raise BadInput("must be 1..50", field="--top")
    cve = args.target.strip().upper()
    if not CVE_ID_RE.match(cve):
        if cve.startswith("CVE-"):
            raise BadInput(f"not a CVE id: {args.target[:40]!r}", field="CVE")
        return _explain_host(args)
    record = _find_record(cve, args.nvd, args.cve5)
    if record is None:
        raise BadInput(
            "CVE not found (give --nvd/--cve5 files, or load feeds with `patchbrain feeds load`)", source=cve
        )
    if record.rejected:
        raise BadInput("the CVE is rejected: nothing to explain", source=cve)
    bundle = _bundle(args.model)
    exp = explain_records(bundle, [record], top=args.top)[0]
    if args.json:
        print_json({"model": bundle.bundle_id, **_explanation_dict(exp)})
        return 0
    print(f"{exp.cve_id}: P(exploited) = {exp.score:.4f} (model {bundle.bundle_id})")
    for c in exp.contributions:
        sign = "+" if c.log_odds > 0 else "-"
        print(f"  {sign} {c.text}  [{c.log_odds:+.3f} log-odds]")
    return 0


def _explain_host(args: argparse.Namespace) -> int:
    """`model explain HOST`: the host's weight, its riskiest pending updates and the CVEs that carry them."""
    import dataclasses

    from patchbrain.errors import BadInput
    from patchbrain.inventory import load_hosts
    from patchbrain.prioritizer.discovery_input import read_discovery
    from patchbrain.prioritizer.predict import score_records
    from patchbrain.prioritizer.priority import HostContext, explain_host

    name = args.target
    if args.discovery is not None:
        by_host = read_discovery(args.discovery)
        inventory = resolve_inventory(args)
    else:
        by_host, recorded = _latest_discovery()
        inventory = (
            resolve_inventory(args) if args.inventory is not None or not recorded.exists() else recorded
        )
    hosts = {h.name: h for h in load_hosts(inventory)}
    host = hosts.get(name)
    if host is None:
        raise BadInput("no such host in the inventory", source=name, field="HOST")
    pending = by_host.get(name, [])
    cve_ids = sorted({c for u in pending for c in u.cves})
    records, kev_ids = _host_cve_data(cve_ids, args)
    bundle = _bundle(args.model)
    known = [records[c] for c in cve_ids if c in records and not records[c].rejected]
    scores = dict(zip([r.cve_id for r in known], map(float, score_records(bundle, known)), strict=True))
    exp = explain_host(
        HostContext.from_host(host),
        pending,
        cve_scores=scores,
        kev_ids=kev_ids,
        unknown_p=bundle.base_rate,
        top=args.top,
    )
    unknown = [c for c in cve_ids if c not in scores]
    if args.json:
        print_json(
            {
                "model": bundle.bundle_id,
                "unknown_cves": unknown,
                "unknown_p": bundle.base_rate,
                **dataclasses.asdict(exp),
            }
        )
        return 0
    print(f"{exp.host}: combined risk {100 * exp.risk:.1f}/100 (model {bundle.bundle_id})")
    for line in exp.lines:
        print(f"  {line}")
    if unknown:
        print(
            f"  {len(unknown)} CVE(s) unknown to the feeds scored at the base rate {bundle.base_rate:.4f}: "
            + ", ".join(unknown[:10])
            + (" ..." if len(unknown) > 10 else "")
        )
    return 0


def _latest_discovery() -> tuple[dict[str, Any], Path]:
    """The journal's latest discovery (host -> pending updates) and the inventory it ran on."""
    from patchbrain import config
    from patchbrain.errors import BadInput
    from patchbrain.prioritizer.discovery_input import pending_by_host

    latest = None
    if config.db_path().exists():
        from patchbrain.journal import Journal
        from patchbrain.store import Store

        latest = Journal(Store()).latest_discovery()
    if latest is None:
        raise BadInput(
            "no discovery on record: run `patchbrain discover`, or give --discovery FILE "
            "(a `patchbrain discover --json` document)",
            field="--discovery",
        )
    taken, inventory, document = latest
    return pending_by_host(document, source=f"the journal's discovery of {taken}"), Path(inventory)


def _host_cve_data(cve_ids: list[str], args: argparse.Namespace) -> tuple[dict[str, Any], set[str]]:
    """The records of `cve_ids` (from --nvd/--cve5, else the CVE store) and the KEV ids."""
    from patchbrain import config

    records: dict[str, Any] = {}
    kev_ids: set[str] = set()
    store = None
    if config.db_path().exists():
        from patchbrain.feeds.cvestore import CveStore

        store = CveStore()
    if args.nvd or args.cve5:
        from patchbrain.prioritizer.predict import read_records

        every = read_records(args.nvd, args.cve5)
        records = {c: every[c] for c in cve_ids if c in every}
    elif store is not None:
        for c in cve_ids:
            rec = store.record(c)
            if rec is not None:
                records[c] = rec
    if args.kev is not None:
        from patchbrain.errors import BadInput
        from patchbrain.feeds.kev import load_kev

        if not args.kev.is_file():
            raise BadInput("no such file", source=str(args.kev), field="--kev")
        kev_ids = set(load_kev(args.kev))
    elif store is not None:
        kev_ids = store.kev_ids()
    return records, kev_ids


def _explanation_dict(exp: Any) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(exp)


def _find_record(cve: str, nvd: list[Path], cve5: list[Path]) -> Any:
    if nvd or cve5:
        from patchbrain.prioritizer.predict import read_records

        return read_records(nvd, cve5).get(cve)
    from patchbrain import config

    if config.db_path().exists():
        from patchbrain.feeds.cvestore import CveStore

        rec = CveStore().record(cve)
        if rec is not None:
            return rec
    from patchbrain.prioritizer.governance import load_golden

    return next((r for r in load_golden().records if r.cve_id == cve), None)


def _validate(args: argparse.Namespace) -> int:
    from patchbrain.errors import ExitCode
    from patchbrain.prioritizer.governance import validate_bundle

    result = validate_bundle(args.bundle)
    if args.json:
        print_json(result.as_dict())
    else:
        verdict = "PASSED" if result.passed else "REFUSED"
        print(f"{args.bundle} (id {result.candidate}) vs active model {result.current}: {verdict}")
        for key in ("average_precision", "recall_top5pct", "precision_at_100"):
            print(
                f"  golden {key}: candidate {result.candidate_metrics[key]:.4f}, "
                f"current {result.current_metrics[key]:.4f}"
            )
        print(
            f"  rank correlation {result.shift['rank_correlation']:.3f}, "
            f"KEV median percentile drop {result.shift['kev_median_percentile_drop']:+.3f}"
        )
        for r in result.reasons:
            print(f"  refused: {r.code}: {r.message}")
    return 0 if result.passed else int(ExitCode.REFUSED)


def _sign(args: argparse.Namespace) -> int:
    from patchbrain.errors import BadInput
    from patchbrain.prioritizer.governance import audit, sign_bundle

    passphrase = None
    if args.passphrase_file is not None:
        try:
            passphrase = args.passphrase_file.read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            raise BadInput(f"cannot read: {exc.strerror}", source=str(args.passphrase_file)) from exc
    out = sign_bundle(args.bundle, args.key, passphrase)
    audit("model.sign", str(args.bundle), {"key": args.key, "signature": str(out)})
    if args.json:
        print_json({"signature": str(out), "key": args.key})
    else:
        print(f"signed {args.bundle}/metadata.json with {args.key}: {out}")
    return 0


def _promote(args: argparse.Namespace) -> int:
    from patchbrain.prioritizer.governance import promote

    result, row = promote(args.bundle, extra_signatures=args.signature)
    if args.json:
        print_json({"gate": result.as_dict(), "active": row})
    else:
        names = ", ".join(a["key_name"] for a in __import__("json").loads(row["approvers"]))
        print(f"promoted {row['bundle_id']} (approved by {names}); previous model {row['previous']}")
    return 0


def _revert(args: argparse.Namespace) -> int:
    from patchbrain.prioritizer.governance import revert

    row = revert()
    if args.json:
        print_json({"active": row})
    else:
        print(f"active model is now {row['bundle_id']} (was {row['previous']})")
    return 0


def _status(args: argparse.Namespace) -> int:
    from patchbrain.prioritizer.governance import active_bundle, history

    bundle = active_bundle()
    v = bundle.metadata.get("validation", {})
    out = {
        "active": bundle.bundle_id,
        "source": bundle.source,
        "model_sha256": bundle.model_sha256,
        "trained": bundle.metadata.get("created"),
        "training_window": bundle.metadata.get("training", {}).get("window"),
        "validation": v,
        "history": history(),
    }
    if args.json:
        print_json(out)
        return 0
    print(f"active model {bundle.bundle_id} from {bundle.source}")
    print(f"  trained {out['trained']} on {out['training_window']}")
    if v:
        _print_validation(v)
    for h in out["history"]:
        print(f"  {h['time']} {h['action']} -> {h['bundle_id']} (previous {h['previous']})")
    return 0
