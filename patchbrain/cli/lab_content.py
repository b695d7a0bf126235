"""`patchbrain lab publish` and `patchbrain lab build-packages`: the lab's package content (issue 3).

Kept apart from cmd_lab.py so the fleet and its content evolve separately. Standard library only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from patchbrain.cli.common import add_json, print_json


def register(lab: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the content subcommands to `patchbrain lab`."""
    pub = lab.add_parser(
        "publish",
        help="add .deb/.rpm files (or a built labdemo variant) to the running lab's signed repository",
        description="Copy packages into the lab instance's repository, re-index and re-sign it. Old versions "
        "stay published, so downgrades remain possible; a different file under a published name and version "
        "is refused.",
    )
    pub.add_argument("files", nargs="*", type=Path, metavar="FILE", help=".deb or .rpm files")
    pub.add_argument(
        "--variant",
        metavar="NAME",
        help="build and publish this labdemo variant at the next version (e.g. benign, open-port)",
    )
    add_json(pub)
    pub.set_defaults(func=_publish)

    build = lab.add_parser(
        "build-packages",
        help="build the labdemo test packages (.deb and .rpm, benign and sabotaged) into a folder",
    )
    build.add_argument("--out", type=Path, default=Path("labdemo-packages"), metavar="DIR")
    build.add_argument("--variant", action="append", metavar="NAME", help="only this variant (repeatable)")
    build.add_argument("--version", metavar="V", help="build at this version (dotted numbers)")
    build.add_argument("--list", action="store_true", help="list the variants and what each really does")
    add_json(build)
    build.set_defaults(func=_build)


def _publish(args: argparse.Namespace) -> int:
    from patchbrain.errors import BadInput
    from patchbrain.lab import Lab
    from patchbrain.lab.content import LabContent

    if not args.files and not args.variant:
        raise BadInput("name FILE... or --variant NAME", field="publish")
    lab = Lab()
    lab.inventory_path()  # refuses when the instance is not up
    lc = LabContent(lab.dir)
    added = lc.publish(args.files) if args.files else []
    version = None
    if args.variant:
        version, more = lc.publish_variant(args.variant)
        added += more
    rows = [{"format": p.fmt, "name": p.name, "version": p.version, "file": p.path.name} for p in added]
    if args.json:
        print_json({"published": rows, "variant_version": version})
    else:
        for r in rows:
            print(f"published {r['file']}")
        if not rows:
            print("nothing new to publish (already there)")
    return 0


def _build(args: argparse.Namespace) -> int:
    from patchbrain.lab import packages

    if args.list:
        listing = [
            {
                "variant": v.name,
                "version": v.default_version,
                "sabotaged": v.sabotaged,
                "claims": list(v.cves),
                "really": v.weakens or "nothing harmful",
            }
            for v in packages.VARIANTS.values()
        ]
        if args.json:
            print_json(listing)
        else:
            for item in listing:
                print(f"{item['variant']:<24} {item['version']:<5} {item['really']}")
        return 0
    names = args.variant or list(packages.VARIANTS)
    built: dict[str, list[str]] = {}
    for name in names:
        out = args.out / name
        built[name] = [str(p) for p in packages.build(name, out, version=args.version)]
    provides = packages.build_provides_rpm(args.out / packages.PROVIDES_PACKAGE)
    built[packages.PROVIDES_PACKAGE] = [str(provides)]
    if args.json:
        print_json(built)
    else:
        for paths in built.values():
            for path in paths:
                print(path)
    return 0
