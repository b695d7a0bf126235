"""Pilot tests: each screen's main actions through keys, as a user drives them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from tui.__main__ import make_app
from tui.app import PatchbrainApp
from tui.backend import Backend
from tui.bindings import load_keymap
from tui.fake import FakeBackend
from tui.screens.approvals import ApprovalsScreen
from tui.screens.audit import AuditScreen
from tui.screens.fleet import FleetScreen, HostDetailScreen
from tui.screens.model import ModelScreen
from tui.screens.plan import PlanScreen
from tui.screens.rollout import HostEventsScreen, RolloutScreen
from tui.widgets.confirm import ConfirmModal
from tui.widgets.hosttable import HostTable

Script = Callable[[PatchbrainApp, Pilot[None]], Awaitable[None]]


def drive(
    script: Script, backend: Backend | None = None, size: tuple[int, int] = (80, 24), **kw: Any
) -> None:
    async def go() -> None:
        app = make_app(backend or FakeBackend(), **kw)
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await script(app, pilot)

    asyncio.run(go())


def text(app: PatchbrainApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).content)


def hosts(table: HostTable) -> list[str]:
    return [r.name for r in table.rows]


def names(table: DataTable[Any]) -> list[str]:
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


async def press(pilot: Pilot[None], *keys: str) -> None:
    for key in keys:
        await pilot.press(key)
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def approve_both(pilot: Pilot[None]) -> None:
    await press(pilot, "2", "c", "3", "a", "y", "k", "a", "y")


def test_fleet_filter_sort_and_detail() -> None:
    async def script(app: PatchbrainApp, pilot: Pilot[None]) -> None:
        assert isinstance(app.screen, FleetScreen)
        table = app.screen.query_one("#fleet", HostTable)
        assert table.row_count == 12
        assert hosts(table)[0].startswith("cache-")  # grouped: groups in order, names within
        await press(pilot, "slash", "d", "b")
        assert hosts(table) == ["db-01", "db-05", "db-09"]
        assert "3 of 12 hosts" in text(app, "#status")
        await press(pilot, "enter", "escape")  # Enter keeps the filter, Esc on the table clears it
        assert table.row_count == 12
        await press(pilot, "s", "s")  # group -> name -> risk
        assert app.screen.sort_key == "risk"
        risks = [app.backend.host_detail(n).row.highest_risk or 0 for n in hosts(table)]
        assert risks == sorted(risks, reverse=True)
        await press(pilot, "down", "enter")
        assert isinstance(app.screen, HostDetailScreen)
        assert app.screen.detail.row.name == hosts(table)[1]
        assert app.screen.query_one("#pending", DataTable).row_count == len(app.screen.detail.pending)
        await press(pilot, "escape")
        assert isinstance(app.screen, FleetScreen)

    drive(script)


def test_fleet_mouse_click_opens_host() -> None:
    async def script(app: PatchbrainApp, pilot: Pilot[None]) -> None:
        table = app.screen.query_one("#fleet", HostTable)
        third = hosts(table)[2]
        await pilot.click("#fleet", offset=(3, 3))  # header line, then rows 0, 1, 2
        await pilot.click("#fleet", offset=(3, 3))
        await pilot.pause()
        assert isinstance(app.screen, HostDetailScreen)
        assert app.screen.detail.row.name == third

    drive(script)


def test_plan_create_explain_and_waves() -> None:
    async def script(app: PatchbrainApp, pilot: Pilot[None]) -> None:
        await press(pilot, "2")
        assert isinstance(app.screen, PlanScreen)
        assert "No plan yet" in text(app, "#plan-title")
        await press(pilot, "c")
        entries = app.screen.query_one("#entries", DataTable)
        assert entries.row_count == 6
        assert "KEV: known exploited" in text(app, "#explain")
        assert "#1 openssl" in text(app, "#explain")
        await press(pilot, "down", "down")
        assert "#3 glibc" in text(app, "#explain")
        assert "KEV" not in text(app, "#explain")
        waves = app.screen.query_one("#waves", DataTable)
        assert [str(waves.get_row_at(i)[1]) for i in range(waves.row_count)] == ["1", "3", "8"]
        await press(pilot, "w")
        assert not waves.display

    drive(script)


def test_approvals_confirm_refuse_and_quorum() -> None:
    async def script(app: PatchbrainApp, pilot: Pilot[None]) -> None:
        await press(pilot, "2", "c", "3")
        assert isinstance(app.screen, ApprovalsScreen)
        await press(pilot, "a")
        assert isinstance(app.screen, ConfirmModal)
        assert "plan-20261126-0001" in app.screen.question and "alice" in app.screen.question
        await press(pilot, "n")  # declining approves nothing
        assert app.backend.approvals()[0].approvals == ()
        await press(pilot, "a", "y")
        assert app.backend.approvals()[0].approvals == ("alice",)
        await press(pilot, "a", "y")  # the same key twice does not make a quorum
        await press(pilot, "k", "k", "a", "y")  # mallory is no approver
        refusals = text(app, "#refusals")
        assert "REFUSED plan-20261126-0001 for alice" in refusals
        assert "mallory" in refusals and "not an approver" in refusals
        await press(pilot, "k", "k", "a", "y")  # back round to bob
        view = app.backend.approvals()[0]
        assert view.approved and view.approvals == ("alice", "bob")
        assert str(app.screen.query_one("#plans", DataTable).get_row_at(0)[4]) == "APPROVED"

    drive(script)


def test_rollout_needs_an_approved_plan() -> None:
    async def script(app: PatchbrainApp, pilot: Pilot[None]) -> None:
        await press(pilot, "2", "c", "4", "s")
        assert isinstance(app.screen, RolloutScreen)  # no confirmation: nothing to start
        assert app.screen.worker is None

    drive(script)


def test_rollout_benign_runs_every_wave() -> None:
    async def script(app: PatchbrainApp, pilot: Pilot[None]) -> None:
        await approve_both(pilot)
        await press(pilot, "4", "s", "y")
        screen = app.screen
        assert isinstance(screen, RolloutScreen)
        assert screen.end is not None and screen.end.state == "done"
        assert set(screen.waves.values()) == {"done"} and set(screen.hosts.values()) == {"patched"}
        assert "DONE" in text(app, "#title")
        assert not screen.query_one("#findings", Static).display

    drive(script)


def test_rollout_sabotage_halts_at_canary_with_drift_and_drills_down() -> None:
    async def script(app: PatchbrainApp, pilot: Pilot[None]) -> None:
        await approve_both(pilot)
        await press(pilot, "4", "s", "y")
        screen = app.screen
        assert isinstance(screen, RolloutScreen)
        assert screen.end is not None and screen.end.state == "halted"
        findings = text(app, "#findings")
        assert "DRIFT wave 1 web-00: nftables inet filter input" in findings
        assert "HALTED" in findings and "Restored: web-00" in findings
        assert screen.waves == {1: "halted", 2: "pending", 3: "pending"}
        await press(pilot, "enter")  # wave 1 -> its hosts
        hosts = screen.query_one("#hosts", DataTable)
        assert names(hosts) == ["web-00"]
        assert str(hosts.get_row_at(0)[2]) == "restored"
        await press(pilot, "enter")  # host -> its events
        assert isinstance(app.screen, HostEventsScreen)
        await press(pilot, "down", "down", "enter")  # third event -> raw
        raw = text(app, "#raw")
        assert '"task": "Upgrade planned packages"' in raw and '"event": "runner_on_changed"' in raw
        await press(pilot, "escape")
        assert app.screen is screen

    drive(script, FakeBackend(sabotage=True))


def test_rollout_cancel_with_confirmation() -> None:
    # a whole rollout would take about 50 s, so a loaded machine still cancels it half way (it stops at the
    # next step, within a second of the confirmation)
    backend = FakeBackend(step_delay=1.0)

    async def script(app: PatchbrainApp, pilot: Pilot[None]) -> None:
        await approve_both(pilot)
        await press(pilot, "4")
        await pilot.press("s")
        await pilot.pause()
        await pilot.press("y")
        screen = app.screen
        assert isinstance(screen, RolloutScreen)
        for _ in range(600):  # until the first host is running (a minute at most, however loaded)
            await pilot.pause(0.1)
            if "running" in screen.hosts.values():
                break
        assert screen.running
        await pilot.press("x")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("y")
        await app.workers.wait_for_complete()
        # a cancelled thread worker is marked done at once; its thread posts the end when it next checks
        for _ in range(600):
            await pilot.pause(0.1)
            if screen.end is not None:
                break
        assert screen.end is not None and screen.end.state == "canceled", screen.end
        assert "canceled" in screen.hosts.values()
        assert screen.waves[3] == "pending"

    drive(script, backend)


def test_audit_and_model_screens_with_fake() -> None:
    async def script(app: PatchbrainApp, pilot: Pilot[None]) -> None:
        await press(pilot, "5")
        assert isinstance(app.screen, AuditScreen)
        assert "Chain OK: 3 records" in text(app, "#chain")
        assert app.screen.query_one("#records", DataTable).row_count == 3
        await press(pilot, "6")
        assert isinstance(app.screen, ModelScreen)
        assert "2026.11.1" in app.export_screenshot()

    drive(script)


def test_command_palette_switches_screen() -> None:
    async def script(app: PatchbrainApp, pilot: Pilot[None]) -> None:
        await press(pilot, "ctrl+p")
        await pilot.press(*"go to audit")
        await pilot.pause(0.5)
        await press(pilot, "enter")
        assert isinstance(app.screen, AuditScreen)

    drive(script)


def test_keymap_remaps_by_binding_id(tmp_path: Path) -> None:
    async def script(app: PatchbrainApp, pilot: Pilot[None]) -> None:
        await press(pilot, "o")
        assert isinstance(app.screen, FleetScreen) and app.screen.sort_key == "name"

    drive(script, keymap={"fleet.sort": "o"})
    path = tmp_path / "keys.yaml"
    path.write_text("fleet.sort: o\n")
    assert load_keymap(path) == {"fleet.sort": "o"}
    path.write_text("fleet.sortt: o\n")
    with pytest.raises(ValueError, match=r"unknown binding ids fleet\.sortt"):
        load_keymap(path)
    assert load_keymap(tmp_path / "missing.yaml") == {}


def test_large_fleet_filters(tmp_path: Path) -> None:
    async def script(app: PatchbrainApp, pilot: Pilot[None]) -> None:
        table = app.screen.query_one("#fleet", HostTable)
        assert table.row_count == 2000
        await press(pilot, "end")
        assert table.cursor == 1999 and table.scroll_offset.y > 1900
        await press(pilot, "slash", *"edge-00199")
        assert hosts(table) == ["edge-00199"]

    drive(script, FakeBackend(hosts=2000))


def test_no_color_keeps_meaning_in_words(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")

    async def script(app: PatchbrainApp, pilot: Pilot[None]) -> None:
        assert app.no_color
        await approve_both(pilot)
        await press(pilot, "4", "s", "y")
        shot = app.export_screenshot()
        assert "DRIFT" in shot and "HALTED" in shot and "Restored" in shot

    drive(script, FakeBackend(sabotage=True), size=(100, 40))
