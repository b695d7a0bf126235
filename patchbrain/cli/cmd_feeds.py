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
        print(f"  {fmt:8} {when}")
    print("files:")
    for f in status["files"]:
        print(f"  {f['format']:8} {f['records']:>8}  {f['feed_time'] or '-':32} {f['path']}")
    return 0
