"""`patchbrain tui`: start the terminal UI (a separate program, `patchbrain-tui`)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("tui", help="start the terminal UI (patchbrain-tui)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    exe = shutil.which("patchbrain-tui")
    if exe is None:
        print("patchbrain: patchbrain-tui is not installed", file=sys.stderr)
        return 1
    os.execv(exe, [exe])  # noqa: S606 - replaces this process with the TUI, no shell involved
    return 0  # pragma: no cover
