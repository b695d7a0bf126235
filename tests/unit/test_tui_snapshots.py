"""Snapshot tests of every screen at 80x24 and 160x48 on deterministic fake data.

Update after an intended change with `pytest tests/unit/test_tui_snapshots.py --snapshot-update`, then
look at the SVGs. Textual is pinned (pyproject.toml) because its rendering moves the snapshots.
"""

from __future__ import annotations

from typing import Any

import pytest

from tui.__main__ import make_app
from tui.fake import FakeBackend

APPROVE = ("2", "c", "3", "a", "y", "k", "a", "y")
SCREENS: dict[str, tuple[str, ...]] = {
    "fleet": (),
    "host_detail": ("down", "enter"),
    "plan": ("2", "c"),
    "approvals": ("2", "c", "3", "a", "y", "k", "k", "a", "y"),
    "confirm": ("2", "c", "3", "a"),
    "rollout_halted": (*APPROVE, "4", "s", "y"),
    "host_events": (*APPROVE, "4", "s", "y", "enter", "enter", "enter"),
    "audit": ("5",),
    "model": ("6",),
}


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
@pytest.mark.parametrize("screen", sorted(SCREENS))
def test_screen(snap_compare: Any, screen: str, size: tuple[int, int]) -> None:
    keys = SCREENS[screen]

    async def run_before(pilot: Any) -> None:
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
            await pilot.app.workers.wait_for_complete()
            await pilot.pause()
        pilot.app.clear_notifications()  # toasts expire on a timer: keep them out of the snapshots
        await pilot.pause()

    assert snap_compare(make_app(FakeBackend(sabotage=True)), terminal_size=size, run_before=run_before)
