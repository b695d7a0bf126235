"""`patchbrain keys`: create, list and export hybrid (Ed25519 + ML-DSA-65) signing keys."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from patchbrain.cli.common import add_json, print_json


def read_passphrase_file(path: Path | None) -> bytes | None:
    """The passphrase in `path` (one trailing newline removed), or None without a file."""
    from patchbrain.errors import BadInput

    if path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read the passphrase file ({exc.strerror})", source=str(path)) from exc
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    if not data:
        raise BadInput("the passphrase file is empty", source=str(path))
    return data


def add_passphrase_file(parser: argparse.ArgumentParser) -> None:
    """`--passphrase-file F`: the key's passphrase is read from F (never from argv)."""
    parser.add_argument(
        "--passphrase-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="read the key's passphrase from FILE (first line); without it the key is not encrypted",
    )


def _new(args: argparse.Namespace) -> int:
    from patchbrain.keys import KeyStore

    store = KeyStore()
    public = store.new(args.name, passphrase=read_passphrase_file(args.passphrase_file))
    if args.json:
        print_json({"name": public.name, "fingerprint": public.fingerprint, "dir": str(store.dir)})
    else:
        print(f"created key {public.name} {public.fingerprint} in {store.dir}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from patchbrain.keys import KeyStore

    store = KeyStore()
    infos = store.list()
    if args.json:
        print_json({"dir": str(store.dir), "keys": [dataclasses.asdict(i) for i in infos]})
        return 0
    if not infos:
        print(f"no keys in {store.dir}")
        return 0
    for i in infos:
        kind = "public only" if not i.has_private else "encrypted" if i.encrypted else "private"
        print(f"{i.name:24} {i.fingerprint}  {kind}" + (f"  PROBLEM: {i.problem}" if i.problem else ""))
    return 0


def _export_public(args: argparse.Namespace) -> int:
    from patchbrain.keys import KeyStore

    sys.stdout.write(KeyStore().export_public(args.name))
    return 0


def _import_public(args: argparse.Namespace) -> int:
    from patchbrain.errors import BadInput
    from patchbrain.keys import KeyStore

    try:
        text = args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read the public key ({exc})", source=str(args.file)) from exc
    public = KeyStore().import_public(text, source=str(args.file))
    if args.json:
        print_json({"name": public.name, "fingerprint": public.fingerprint})
    else:
        print(f"imported public key {public.name} {public.fingerprint}")
    return 0


def _read(path: Path, field: str) -> bytes:
    from patchbrain.errors import BadInput

    try:
        return path.read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read ({exc.strerror})", source=str(path), field=field) from exc


def _sign(args: argparse.Namespace) -> int:
    from patchbrain.keys import KeyStore, sign

    key = KeyStore().load_private(args.name, read_passphrase_file(args.passphrase_file))
    signature = sign(key, _read(args.file, "FILE"))
    if args.out is None:
        sys.stdout.write(signature.decode("ascii") + "\n")
    else:
        args.out.write_bytes(signature + b"\n")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from patchbrain.keys import KeyStore, verify

    public = KeyStore().public(args.name)
    verify(public, _read(args.file, "FILE"), _read(args.signature, "SIGNATURE").rstrip(b"\r\n"))
    if args.json:
        print_json({"ok": True, "name": public.name, "fingerprint": public.fingerprint})
    else:
        print(f"signature OK: both Ed25519 and ML-DSA-65 parts verify for {public.name} {public.fingerprint}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `keys` and its subcommands."""
    parser = sub.add_parser(
        "keys",
        help="hybrid Ed25519 + ML-DSA-65 signing keys",
        description="Signing keys live in $PATCHBRAIN_KEYS (default: <state dir>/keys); "
        "private keys are 0600.",
    )
    ksub = parser.add_subparsers(dest="keys_command", metavar="SUBCOMMAND", required=True)

    p = ksub.add_parser("new", help="create a key pair NAME")
    p.add_argument("name", metavar="NAME")
    add_passphrase_file(p)
    add_json(p)
    p.set_defaults(func=_new)

    p = ksub.add_parser("list", help="list keys with their fingerprints")
    add_json(p)
    p.set_defaults(func=_list)

    p = ksub.add_parser("export-public", help="print the public key NAME (JSON) for verifiers")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=_export_public)

    p = ksub.add_parser("sign", help="sign FILE with key NAME (prints the signature, JSON)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--out", type=Path, default=None, metavar="SIG", help="write the signature to SIG")
    add_passphrase_file(p)
    p.set_defaults(func=_sign)

    p = ksub.add_parser(
        "verify",
        help="check SIG over FILE against public key NAME",
        epilog="Exit codes: 0 valid (both parts), 5 invalid signature, "
        "2 malformed signature or missing file.",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("signature", type=Path, metavar="SIG")
    add_json(p)
    p.set_defaults(func=_verify)

    p = ksub.add_parser("import-public", help="add a verify-only public key from FILE (export-public output)")
    p.add_argument("file", type=Path, metavar="FILE")
    add_json(p)
    p.set_defaults(func=_import_public)
