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

    _register_tuf(fsub)


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
    from patchbrain.feeds.quarantine import Quarantine

    cves = CveStore()
    status = cves.status()
    status["quarantine"] = Quarantine(cves.store).counts()
    if args.json:
        print_json(status)
        return 0
    counts = status["counts"]
    print(
        f"CVEs: {counts['cves']} ({counts['cve_claims']} claims, {counts['rejected']} rejected)  "
        f"KEV: {counts['kev']}  EPSS: {counts['epss']}  advisories: {counts['advisories']}  "
        f"quarantined: {status['quarantine']['held']} held, {status['quarantine']['released']} released"
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


# --- signed feeds (TUF) and the quarantine ---------------------------------------------------------------


def _register_tuf(fsub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    repo = fsub.add_parser("repo", help="maintain a TUF repository of feed files (publisher side)")
    rsub = repo.add_subparsers(dest="repo_command", metavar="SUBCOMMAND", required=True)

    init = rsub.add_parser(
        "init", help="create a repository: keys (if missing), root, targets, snapshot, timestamp"
    )
    init.add_argument("dir", type=Path, metavar="DIR")
    init.add_argument("--keys", type=Path, required=True, metavar="KEYDIR", help="folder of ROLE-N.pem keys")
    init.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="ROLE=N",
        help="signatures a role needs (default 1)",
    )
    init.add_argument(
        "--key-count", action="append", default=[], metavar="ROLE=N", help="keys to create for a role"
    )
    init.add_argument(
        "--expiry",
        action="append",
        default=[],
        metavar="ROLE=DAYS",
        help="validity of each signing (default root=365 targets=90 snapshot=7 timestamp=1)",
    )
    _add_passphrase(init)
    add_json(init)
    init.set_defaults(func=_repo_init)

    add = rsub.add_parser("add", help="stage feed files for the next publish (format checked now)")
    add.add_argument("dir", type=Path, metavar="DIR")
    add.add_argument("files", nargs="+", type=Path, metavar="FILE")
    add_json(add)
    add.set_defaults(func=_repo_add)

    pub = rsub.add_parser("publish", help="sign new targets, snapshot and timestamp (also refreshes expiry)")
    pub.add_argument("dir", type=Path, metavar="DIR")
    pub.add_argument("--keys", type=Path, required=True, metavar="KEYDIR")
    _add_passphrase(pub)
    add_json(pub)
    pub.set_defaults(func=_repo_publish)

    rot = rsub.add_parser(
        "rotate", help="replace a role's keys in a new root version (old root keys sign it); then publish"
    )
    rot.add_argument("dir", type=Path, metavar="DIR")
    rot.add_argument("role", choices=["root", "targets", "snapshot", "timestamp"])
    rot.add_argument("--keys", type=Path, required=True, metavar="KEYDIR")
    rot.add_argument("--threshold", type=int, default=None, help="new threshold (default: unchanged)")
    rot.add_argument("--key-count", type=int, default=None, help="new keys to create (default: threshold)")
    _add_passphrase(rot)
    add_json(rot)
    rot.set_defaults(func=_repo_rotate)

    trust = fsub.add_parser("trust", help="trust a repository's root.json (once, at setup)")
    trust.add_argument("root", type=Path, metavar="ROOT.json")
    trust.add_argument("--name", default="default", help="repository name (default: default)")
    trust.add_argument("--replace", action="store_true", help="replace an existing trusted root (audited)")
    add_json(trust)
    trust.set_defaults(func=_trust)

    sync = fsub.add_parser(
        "sync",
        help="update from a TUF repository (URL or mirror folder): verify, screen, load or quarantine",
        epilog="Exit 5 when TUF verification refuses the repository (tampered, rollback, expired, "
        "mix-and-match, unsigned); exit 2 when it is unreachable. Nothing is stored in either case.",
    )
    sync.add_argument("source", metavar="URL|DIR")
    sync.add_argument("--name", default="default", help="trusted repository name (default: default)")
    sync.add_argument("--allow-domains", type=Path, metavar="FILE", help="reference domain allow-list")
    sync.add_argument(
        "--no-corroboration",
        action="store_true",
        help="do not hold high-severity records that no second feed knows (when only one feed is mirrored)",
    )
    add_json(sync)
    sync.set_defaults(func=_sync)

    q = fsub.add_parser("quarantine", help="feed items the poisoning screens held back")
    qsub = q.add_subparsers(dest="quarantine_command", metavar="SUBCOMMAND", required=True)
    ql = qsub.add_parser("list", help="held items with their reasons")
    ql.add_argument("--all", action="store_true", help="include released items")
    ql.add_argument("--cve", metavar="CVE-ID")
    add_json(ql)
    ql.set_defaults(func=_quarantine_list)
    qr = qsub.add_parser("release", help="release one item into the CVE store (operator, signed, audited)")
    qr.add_argument("id", type=int, metavar="ID")
    qr.add_argument(
        "--by", required=True, metavar="KEY", help="operator key name in the patchbrain key store"
    )
    qr.add_argument("--note", default="", help="why (recorded in the audit log)")
    _add_passphrase(qr)
    add_json(qr)
    qr.set_defaults(func=_quarantine_release)


def _add_passphrase(p: argparse.ArgumentParser) -> None:
    p.add_argument("--passphrase-file", type=Path, metavar="FILE", help="passphrase of the key file(s)")


def _passphrase(args: argparse.Namespace) -> bytes | None:
    from patchbrain.errors import BadInput

    if args.passphrase_file is None:
        return None
    try:
        return bytes(args.passphrase_file.read_bytes().rstrip(b"\r\n"))
    except OSError as exc:
        raise BadInput(f"cannot read ({exc.strerror})", source=str(args.passphrase_file)) from exc


def _role_ints(items: list[str], what: str) -> dict[str, int]:
    from patchbrain.errors import BadInput
    from patchbrain.feeds.tufrepo import parse_role_values

    out = {}
    for role, value in parse_role_values(items, what=what).items():
        try:
            out[role] = int(value)
        except ValueError:
            raise BadInput("must be an integer", field=f"{what} {role}") from None
    return out


def _repo_init(args: argparse.Namespace) -> int:
    from patchbrain.errors import BadInput
    from patchbrain.feeds.tufrepo import FeedRepository, parse_role_values

    expiry = {}
    for role, value in parse_role_values(args.expiry, what="--expiry").items():
        try:
            expiry[role] = float(value)
        except ValueError:
            raise BadInput("must be a number of days", field=f"--expiry {role}") from None
    keyids = FeedRepository(args.dir).init(
        args.keys,
        thresholds=_role_ints(args.threshold, "--threshold"),
        key_counts=_role_ints(args.key_count, "--key-count"),
        expiry_days=expiry,
        passphrase=_passphrase(args),
    )
    if args.json:
        print_json({"dir": str(args.dir), "keyids": keyids})
    else:
        print(f"feed repository created in {args.dir}; clients trust {args.dir}/metadata/1.root.json")
        for role, ids in keyids.items():
            print(f"  {role:9} {len(ids)} key(s): {', '.join(i[:16] for i in ids)}")
    return 0


def _repo_add(args: argparse.Namespace) -> int:
    from patchbrain.feeds.tufrepo import FeedRepository

    added = FeedRepository(args.dir).add(args.files)
    if args.json:
        print_json({"staged": added})
    else:
        for a in added:
            print(f"staged {a['name']} ({a['format']}, {a['length']} bytes, sha256 {a['sha256'][:16]})")
        print("run `patchbrain feeds repo publish` to sign them")
    return 0


def _repo_publish(args: argparse.Namespace) -> int:
    import dataclasses

    from patchbrain.feeds.tufrepo import FeedRepository

    res = FeedRepository(args.dir).publish(args.keys, passphrase=_passphrase(args))
    if args.json:
        print_json(dataclasses.asdict(res))
    else:
        print(
            f"published targets v{res.targets_version}, snapshot v{res.snapshot_version}, "
            f"timestamp v{res.timestamp_version}: {len(res.targets)} feed file(s)"
        )
    return 0


def _repo_rotate(args: argparse.Namespace) -> int:
    from patchbrain.feeds.tufrepo import FeedRepository

    res = FeedRepository(args.dir).rotate(
        args.keys, args.role, threshold=args.threshold, count=args.key_count, passphrase=_passphrase(args)
    )
    if args.json:
        print_json(res)
    else:
        print(
            f"root v{res['root_version']}: {args.role} now has {len(res['keyids'])} new key(s); run publish"
        )
    return 0


def _trust(args: argparse.Namespace) -> int:
    from patchbrain.feeds.sync import trust

    info = trust(args.root, args.name, replace=args.replace)
    if args.json:
        print_json(info)
    else:
        print(
            f"trusting {args.root} (root v{info['root_version']}, "
            f"sha256 {info['root_sha256'][:16]}) as {args.name!r}"
        )
    return 0


def _sync(args: argparse.Namespace) -> int:
    import dataclasses

    from patchbrain.feeds.screening import load_allow_domains
    from patchbrain.feeds.sync import default_screen_config, sync

    cfg = default_screen_config()
    if args.allow_domains is not None:
        cfg = dataclasses.replace(cfg, allow_domains=load_allow_domains(args.allow_domains))
    if args.no_corroboration:
        cfg = dataclasses.replace(cfg, require_corroboration=False)
    res = sync(args.source, args.name, screen_config=cfg)
    if args.json:
        print_json(res.to_dict())
        return 0
    print(
        f"synced {args.source}: timestamp v{res.timestamp_version}, snapshot v{res.snapshot_version}, "
        f"targets v{res.targets_version}"
    )
    for f in res.files:
        state = "unchanged" if f.skipped else f"{f.records} loaded, {f.quarantined} quarantined"
        print(f"  {f.name} ({f.format}): {state}")
    if res.quarantined:
        print("quarantined by screen: " + ", ".join(f"{k} {v}" for k, v in sorted(res.quarantined.items())))
        print("review with `patchbrain feeds quarantine list`")
    return 0


def _quarantine_list(args: argparse.Namespace) -> int:
    from patchbrain.feeds.quarantine import Quarantine
    from patchbrain.store import Store

    entries = Quarantine(Store()).entries(include_released=args.all, cve_id=args.cve)
    if args.json:
        print_json({"quarantine": [e.to_dict() for e in entries]})
        return 0
    if not entries:
        print("nothing in quarantine")
        return 0
    for e in entries:
        state = f" released by {e.released_by}" if e.released_at else ""
        print(f"{e.id:>6}  {e.cve_id:16} {e.source:14} {e.file}{state}")
        for f in e.reasons:
            print(f"        {f.screen}: {f.detail}")
    return 0


def _quarantine_release(args: argparse.Namespace) -> int:
    from patchbrain.feeds.quarantine import Quarantine
    from patchbrain.store import Store

    e = Quarantine(Store()).release(args.id, args.by, passphrase=_passphrase(args), note=args.note)
    if args.json:
        print_json(e.to_dict())
    else:
        print(f"released {e.cve_id} ({e.source}) from quarantine item {e.id}, signed by {e.released_by}")
    return 0
