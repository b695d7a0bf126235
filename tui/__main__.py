"""Entry point of `patchbrain-tui`."""

from __future__ import annotations

from tui.app import PatchbrainApp


def make_app() -> PatchbrainApp:
    """Build the app; the CLI and the tests share this factory."""
    return PatchbrainApp()


def main() -> int:
    """Run the TUI until the user quits."""
    make_app().run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
