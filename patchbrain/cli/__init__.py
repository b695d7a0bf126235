"""The `patchbrain` command line. The only place that configures logging and output.

Each command group lives in a module `patchbrain/cli/cmd_<name>.py` exposing `register(subparsers)`;
those modules import heavy dependencies inside their handlers, so `--help` stays fast and
`patchbrain lab down` works with the standard library alone.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Sequence

from patchbrain import __version__
from patchbrain.errors import ExitCode, PatchbrainError

log = logging.getLogger("patchbrain")


def _command_modules() -> list[str]:
    package = importlib.import_module("patchbrain.cli")
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.name.startswith("cmd_"))


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every command group registered."""
    parser = argparse.ArgumentParser(
        prog="patchbrain",
        description="Agentless patching over Ansible that halts any rollout that weakens security controls.",
        epilog="Exit codes: 0 ok, 1 internal error, 2 bad input, 3 drift, 4 failures, 5 refused by policy.",
    )
    parser.add_argument("--version", action="version", version=f"patchbrain {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (repeatable)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _command_modules():
        importlib.import_module(f"patchbrain.cli.{name}").register(sub)
    return parser


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    try:
        code = args.func(args)
    except PatchbrainError as exc:
        print(f"patchbrain: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("patchbrain: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`patchbrain ... | head`): not an error of ours. Silence the final flush.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return int(ExitCode.OK)
    except Exception as exc:
        if args.verbose:
            log.exception("internal error")
        print(f"patchbrain: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return int(ExitCode.INTERNAL)
    return int(code or 0)
