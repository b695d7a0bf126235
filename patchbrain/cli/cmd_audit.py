"""`patchbrain audit`: verify, show and export the hash-chained audit log; sign checkpoints."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from patchbrain.cli.common import add_json, print_json

if TYPE_CHECKING:
    from patchbrain.audit import Checkpoint

_RELATIVE = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str) -> dt.datetime:
    """`--since`: an ISO 8601 date or date-time (UTC unless it has an offset), or a relative `30m`,
    `12h`, `7d`, `2w` before now."""
    from patchbrain.errors import BadInput

    if m := _RELATIVE.match(text.strip()):
        return dt.datetime.now(dt.UTC) - dt.timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise BadInput(
            "expected an ISO 8601 date/time (2026-11-26, 2026-11-26T10:00Z) or 30m/12h/7d/2w",
            source=repr(text),
            field="--since",
        ) from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def _read_anchors(paths: list[Path]) -> list[Checkpoint]:
    from patchbrain.audit import Checkpoint
    from patchbrain.errors import BadInput
    from patchbrain.jsonlines import iter_json_lines

    anchors = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInput(f"cannot read ({exc})", source=str(path), field="--anchor") from exc
        for number, doc in iter_json_lines(text, str(path)):
            if isinstance(doc, dict) and doc.get("type") == "checkpoint":
                anchors.append(Checkpoint.from_dict(doc, source=f"{path}:{number}"))
        if not anchors:
            raise BadInput("holds no checkpoint lines", source=str(path), field="--anchor")
    return anchors


def _verify(args: argparse.Namespace) -> int:
    from patchbrain.audit import AuditLog
    from patchbrain.store import Store

    anchors = _read_anchors(args.anchor)
    result = AuditLog(Store()).verify(anchors=anchors)
    if args.json:
        print_json(result)
    else:
        if result.ok:
            print(
                f"audit log intact: {result.records} records (last seq {result.last_seq}), "
                f"{result.checkpoints_verified} signed checkpoint(s) verified, "
                f"proven up to seq {result.last_checkpoint_seq}"
            )
        else:
            assert result.problem is not None
            p = result.problem
            where = f"seq {p.seq}" + (f"..{p.last_seq}" if p.last_seq not in (None, p.seq) else "")
            print(f"DRIFT FOUND: the audit log was tampered with: {p.kind} at {where}: {p.detail}")
        for note in result.notes:
            print(f"note: {note}")
    return 0 if result.ok else 3


def _records(args: argparse.Namespace) -> Any:
    from patchbrain.audit import AuditLog
    from patchbrain.store import Store

    since = parse_since(args.since) if args.since else None
    return AuditLog(Store()), since


def _show(args: argparse.Namespace) -> int:
    from patchbrain.audit import sanitize

    log, since = _records(args)
    records = log.records(since=since, action=args.action, after_seq=args.after_seq)
    if args.json:
        print_json([r for r in records])
        return 0
    count = 0
    for r in records:
        count += 1
        payload = sanitize(json.dumps(r.payload, sort_keys=True, ensure_ascii=False))
        print(
            f"{r.seq:>8} {r.time} {sanitize(r.actor)} {sanitize(r.action)} {sanitize(r.subject)!s} {payload}"
        )
    if count == 0:
        print("no matching audit records", file=sys.stderr)
    return 0


def _export(args: argparse.Namespace) -> int:
    import dataclasses

    from patchbrain.audit import canonical_json

    log, since = _records(args)
    checkpoints = log.checkpoints() if args.checkpoints else []
    if args.after_seq is not None:
        checkpoints = [cp for cp in checkpoints if cp.seq > args.after_seq]
    out = sys.stdout
    i = 0
    for r in log.records(since=since, action=args.action, after_seq=args.after_seq):
        while i < len(checkpoints) and checkpoints[i].seq < r.seq:  # a checkpoint follows what it covers
            out.write(canonical_json(checkpoints[i].to_dict()) + "\n")
            i += 1
        out.write(canonical_json({"type": "record", **dataclasses.asdict(r)}) + "\n")
    for cp in checkpoints[i:]:
        out.write(canonical_json(cp.to_dict()) + "\n")
    return 0


def _checkpoint(args: argparse.Namespace) -> int:
    from patchbrain.audit import AuditLog, canonical_json
    from patchbrain.cli.cmd_keys import read_passphrase_file
    from patchbrain.keys import KeyStore
    from patchbrain.store import Store

    key = KeyStore().load_private(args.key, read_passphrase_file(args.passphrase_file))
    cp = AuditLog(Store()).checkpoint(key)
    if args.json:
        print(canonical_json(cp.to_dict()))
    else:
        print(f"checkpoint #{cp.n} at seq {cp.seq} ({cp.record_hash}) signed by {cp.key_name}")
    return 0


def _add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--since", metavar="WHEN", help="from this time: ISO 8601 date/time, or 30m, 12h, 7d, 2w ago"
    )
    p.add_argument("--action", metavar="GLOB", help="only actions matching GLOB, e.g. 'plan.*'")
    p.add_argument("--after-seq", type=int, default=None, metavar="SEQ", help="only records with seq > SEQ")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `audit` and its subcommands."""
    parser = sub.add_parser(
        "audit",
        help="the hash-chained audit log",
        description="The append-only, hash-chained audit log in the store, with signed checkpoints.",
    )
    asub = parser.add_subparsers(dest="audit_command", metavar="SUBCOMMAND", required=True)

    p = asub.add_parser(
        "verify",
        help="check the chain and the signed checkpoints",
        description="Walk the hash chain and check every signed checkpoint. Names the first edited, "
        "deleted, reordered, inserted or truncated record.",
        epilog="Exit codes: 0 intact, 3 drift found (the chain is broken or a checkpoint does not match), "
        "2 bad input (an unreadable --anchor file).",
    )
    p.add_argument(
        "--anchor",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="checkpoints kept outside the store (`audit export` output, JSON lines); repeatable",
    )
    add_json(p)
    p.set_defaults(func=_verify)

    p = asub.add_parser("show", help="print audit records")
    _add_filters(p)
    add_json(p)
    p.set_defaults(func=_show)

    p = asub.add_parser("export", help="export records (and checkpoints) for a SIEM, as JSON lines")
    p.add_argument("--format", choices=["jsonl"], default="jsonl", help="output format (jsonl)")
    p.add_argument(
        "--no-checkpoints",
        dest="checkpoints",
        action="store_false",
        help="records only, without the signed checkpoint lines",
    )
    _add_filters(p)
    p.set_defaults(func=_export)

    p = asub.add_parser("checkpoint", help="sign a checkpoint of the log's current last record now")
    p.add_argument("--key", required=True, metavar="NAME", help="the signing key's name")
    p.add_argument("--passphrase-file", type=Path, default=None, metavar="FILE", help="the key's passphrase")
    add_json(p)
    p.set_defaults(func=_checkpoint)
