#!/usr/bin/env python3
"""Write an SVG screenshot of each TUI screen to docs/screenshots/ (deterministic demo data).

Usage: .venv/bin/python scripts/tui_screenshots.py [OUT_DIR] [--size 100x30]
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from tui.__main__ import make_app
from tui.fake import FakeBackend

# (file name, keys pressed from the fleet screen to reach the state shown)
SHOTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("fleet", ()),
    ("host-detail", ("down", "enter")),
    ("plan", ("2", "c")),
    ("approvals", ("2", "c", "3", "a", "y")),
    ("confirm-approve", ("2", "c", "3", "k", "a")),
    ("rollout-halted", ("2", "c", "3", "a", "y", "k", "a", "y", "4", "s", "y")),
    ("rollout-events", ("2", "c", "3", "a", "y", "k", "a", "y", "4", "s", "y", "enter", "enter", "enter")),
    ("audit", ("5",)),
    ("model", ("6",)),
)


async def shoot(name: str, keys: tuple[str, ...], out: Path, size: tuple[int, int]) -> Path:
    app = make_app(FakeBackend(sabotage=True))
    async with app.run_test(size=size) as pilot:
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
            await app.workers.wait_for_complete()
            await pilot.pause()
        app.clear_notifications()  # toasts expire on a timer; keep screenshots reproducible
        await pilot.pause()
        path = out / f"{name}.svg"
        app.save_screenshot(filename=path.name, path=str(out))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--size", default="100x30", help="COLUMNSxROWS")
    args = parser.parse_args()
    cols, rows = (int(v) for v in args.size.split("x"))
    args.out.mkdir(parents=True, exist_ok=True)
    for name, keys in SHOTS:
        print(asyncio.run(shoot(name, keys, args.out, (cols, rows))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
