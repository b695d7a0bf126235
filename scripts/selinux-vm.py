#!/usr/bin/env python3
"""The real SELinux guest (patchbrain.lab.selinux_vm) by hand, as root.

scripts/selinux-vm.py build            # build and cache the image (about 5 minutes the first time)
scripts/selinux-vm.py boot [--inventory FILE] [--hold SECONDS]
                                       # boot a throwaway overlay, print sestatus, stop
scripts/selinux-vm.py path             # print the cached image folder (exit 1 when not built)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

from patchbrain.errors import PatchbrainError
from patchbrain.lab import selinux_vm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build and cache the guest image")
    boot = sub.add_parser("boot", help="boot a throwaway overlay, print sestatus, stop")
    boot.add_argument("--inventory", type=Path, help="write an Ansible inventory for the guest here")
    boot.add_argument("--hold", type=float, default=0, help="keep the guest up this many seconds")
    sub.add_parser("path", help="print the cached image folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    recipe = selinux_vm.Recipe()
    try:
        if args.cmd == "path":
            folder = selinux_vm.image_dir(recipe)
            print(folder)
            return 0 if selinux_vm.is_complete(folder, recipe) else 1
        started = time.monotonic()
        image = selinux_vm.ensure_image(recipe)
        print(f"image {image.path} ready after {time.monotonic() - started:.1f} s")
        print(json.dumps(image.build_info().get("seconds", {}), indent=2))
        if args.cmd == "boot":
            with (
                tempfile.TemporaryDirectory(prefix="pb-selinux-") as tmp,
                selinux_vm.Guest(image, Path(tmp)) as guest,
            ):
                print(f"guest answered SSH on 127.0.0.1:{guest.port} after {guest.boot_seconds:.1f} s")
                print(guest.ssh(["sestatus"]).stdout)
                if args.inventory:
                    guest.write_inventory(args.inventory)
                    print(f"inventory written to {args.inventory}")
                if args.hold:
                    time.sleep(args.hold)
    except PatchbrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
