"""`make demo`: bring up the lab fleet and run patchbrain's main job on it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def run(*argv: str) -> None:
    print(f"\n$ {' '.join(argv)}", flush=True)
    subprocess.run([str(BIN / argv[0]), *argv[1:]], check=True)


def main() -> int:
    run("patchbrain", "lab", "up", "4")
    run("patchbrain", "lab", "status")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
