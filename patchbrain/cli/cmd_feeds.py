"""`patchbrain feeds`: load vulnerability feed files into the store and show what is loaded."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from patchbrain.cli.common import add_json, print_json

_BIG_FILE = 2 * 1024 * 1024  # show a progress bar from this size on (when stderr is a terminal)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("feeds", help="vulnerability feeds: load files, show what is loaded")
    fsub = p.add_subparsers(dest="feeds_command", metavar="SUBCOMMAND", required=True)

    load = fsub.add_parser(
        "load",
        help="load NVD 1.1/2.0, CVE JSON 5, CISA KEV, FIRST EPSS or OSV files (format detected)",
    )
    load.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="feed file, or cvelistV5/OSV folder"
    )
    add_json(load)
    load.set_defaults(func=_load)

    show = fsub.add_parser(
        "show", help="every source's claims about one CVE, conflicts, KEV, EPSS, advisories"
    )
    show.add_argument("cve_id", metavar="CVE-ID")
    add_json(show)
    show.set_defaults(func=_show)

    status = fsub.add_parser("status", help="what is loaded, from where, how fresh")
    add_json(status)
    status.set_defaults(func=_status)


def _load(args: argparse.Namespace) -> int:
    from patchbrain.feeds.cvestore import CveStore
    from patchbrain.feeds.detect import detect_format

    store = CveStore()
    # Detect every format first, so a typo in the last path fails before anything is loaded.
    plan = [(path, detect_format(path)) for path in args.paths]
    results: list[dict[str, Any]] = []
    show_bar = not args.json and sys.stderr.isatty()
    for path, fmt in plan:
        big = path.is_dir() or path.stat().st_size >= _BIG_FILE
        result = _load_with_progress(store, path, fmt) if show_bar and big else store.load(path, fmt=fmt)
        results.append(
            {
                "path": result.path,
                "format": result.format,
                "records": result.records,
                "feed_time": result.feed_time.isoformat() if result.feed_time else None,
                "skipped": result.skipped,
            }
        )
        if not args.json:
            what = "already loaded" if result.skipped else "loaded"
            when = f", feed time {result.feed_time:%Y-%m-%d %H:%M}" if result.feed_time else ""
            print(f"{result.path}: {what} {result.records} {result.format} records{when}")
    if args.json:
        print_json({"loaded": results})
    return 0


def _load_with_progress(store: Any, path: Path, fmt: str) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task(f"{path.name} ({fmt})", total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        return store.load(path, fmt=fmt, progress=progress)


def _status(args: argparse.Namespace) -> int:
    from patchbrain.feeds.cvestore import CveStore

    status = CveStore().status()
    if args.json:
        print_json(status)
        return 0
    counts = status["counts"]
    print(
        f"CVEs: {counts['cves']} ({counts['cve_claims']} claims, {counts['rejected']} rejected)  "
        f"KEV: {counts['kev']}  EPSS: {counts['epss']}  advisories: {counts['advisories']}"
    )
    if not status["files"]:
        print("nothing loaded yet: patchbrain feeds load PATH...")
        return 0
    print("newest data by format:")
    for fmt, when in sorted(status["newest_by_format"].items()):
        age = status["age_days"].get(fmt)
        print(f"  {fmt:8} {when}  ({age if age is not None else '?'} days old)")
    print("files:")
    for f in status["files"]:
        print(f"  {f['format']:8} {f['records']:>8}  {f['feed_time'] or '-':32} {f['path']}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from patchbrain.errors import BadInput
    from patchbrain.feeds.common import CVE_ID_RE
    from patchbrain.feeds.cvestore import CveStore

    cve_id = str(args.cve_id).strip().upper()
    if not CVE_ID_RE.fullmatch(cve_id):
        raise BadInput(f"not a CVE identifier: {args.cve_id[:60]!r}", field="CVE-ID")
    store = CveStore()
    claims = store.claims(cve_id)
    kev = store.kev(cve_id)
    epss = store.epss(cve_id)
    advisories = store.advisories_for_cve(cve_id)
    if not (claims or kev or epss or advisories):
        raise BadInput(f"{cve_id} is not in any loaded feed", field="CVE-ID")
    doc: dict[str, Any] = {
        "cve_id": cve_id,
        "claims": [
            {
                "source": c.source,
                "file": c.file,
                "feed": c.record.provenance["rejected"].feed,
                "feed_version": c.record.provenance["rejected"].version,
                "time": _iso(c.record.provenance["rejected"].time),
                "rejected": c.record.rejected,
                "published": _iso(c.record.published),
                "cvss3": [c.record.cvss3_vector, c.record.cvss3_score],
                "cvss2": [c.record.cvss2_vector, c.record.cvss2_score],
                "cvss4": [c.record.cvss4_vector, c.record.cvss4_score],
                "cwes": list(c.record.cwes),
                "extra": c.extra,
            }
            for c in claims
        ],
        "conflicts": [{"field": c.field, "values": c.values} for c in store.conflicts(cve_id)],
        "kev": None
        if kev is None
        else {
            "date_added": kev.date_added.isoformat(),
            "due_date": kev.due_date.isoformat() if kev.due_date else None,
            "known_ransomware": kev.known_ransomware,
            "vendor": kev.vendor,
            "product": kev.product,
        },
        "epss": None
        if epss is None
        else {
            "epss": epss[0].epss,
            "percentile": epss[0].percentile,
            "model": epss[1],
            "date": _iso(epss[2]),
        },
        "advisories": advisories,
    }
    if args.json:
        print_json(doc)
        return 0
    print(cve_id)
    for c in doc["claims"]:
        flag = " REJECTED" if c["rejected"] else ""
        print(f"  {c['source']}{flag}  ({c['feed']} {c['feed_version']}, {c['time'] or 'no time'})")
        for kind in ("cvss4", "cvss3", "cvss2"):
            if c[kind][0]:
                print(f"    {kind}: {c[kind][1]} {c[kind][0]}")
        if c["cwes"]:
            print(f"    cwes: {', '.join(c['cwes'])}")
        if c["extra"].get("ssvc"):
            print(f"    ssvc: {c['extra']['ssvc']}")
    for conflict in doc["conflicts"]:
        values = "; ".join(f"{s}={v}" for s, v in conflict["values"].items())
        print(f"  CONFLICT {conflict['field']}: {values}")
    if kev:
        print(f"  KEV: added {kev.date_added}, due {kev.due_date}, ransomware: {kev.known_ransomware}")
    if epss:
        print(f"  EPSS: {epss[0].epss} (percentile {epss[0].percentile}, {epss[1]}, {_iso(epss[2])})")
    for a in advisories:
        print(f"  advisory {a['id']}: {', '.join(a['packages'])}")
    return 0


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
