"""Entry point of `patchbrain-tui`."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

from tui.app import PatchbrainApp
from tui.backend import Backend


def make_app(backend: Backend | None = None, keymap: Mapping[str, str] | None = None) -> PatchbrainApp:
    """Build the app; the CLI and the tests share this factory (tests pass a fake backend)."""
    if backend is None:
        from tui.real import RealBackend

        backend = RealBackend()
    return PatchbrainApp(backend, keymap=keymap)


def main(argv: list[str] | None = None) -> int:
    """Run the TUI until the user quits."""
    parser = argparse.ArgumentParser(prog="patchbrain-tui", description="patchbrain's terminal UI")
    parser.add_argument("-i", "--inventory", type=Path, help="inventory file (default: the running lab's)")
    parser.add_argument("--demo", action="store_true", help="show deterministic demo data, touch nothing")
    args = parser.parse_args(argv)
    from patchbrain import config
    from tui.bindings import load_keymap

    keymap = load_keymap(config.state_dir() / "tui-keymap.yaml")
    backend: Backend
    if args.demo:
        from tui.fake import FakeBackend

        backend = FakeBackend()
    else:
        from tui.real import RealBackend

        backend = RealBackend(inventory=args.inventory)
    make_app(backend, keymap).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
