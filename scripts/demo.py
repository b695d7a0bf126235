"""`make demo`: bring up the lab fleet and show it (until the executor lands: then patch it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
HOSTS = "4"


def run(*argv: str, capture: bool = False) -> str:
    print(f"\n$ {' '.join(argv)}", flush=True)
    proc = subprocess.run([str(BIN / argv[0]), *argv[1:]], check=True, text=True, capture_output=capture)
    if capture:
        print(proc.stdout, end="")
    return proc.stdout if capture else ""


def main() -> int:
    run("patchbrain", "lab", "up", HOSTS)
    inventory = run("patchbrain", "lab", "inventory", capture=True).strip()
    run("ansible-inventory", "-i", inventory, "--graph")
    run("patchbrain", "lab", "ping")
    run("patchbrain", "lab", "ssh", "h01", "cat /etc/os-release | head -1; nft list chain inet filter input")
    print(
        "\nThe fleet keeps running: `patchbrain lab ssh h02`, `patchbrain lab status`, "
        "`patchbrain lab down` when done.",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
