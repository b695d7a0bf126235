"""TUI benchmark: time to first paint, and to load, filter and scroll a 10,000-host fleet.

Headless (`App.run_test`), in one process, side by side with baselines:
  - first paint: patchbrain-tui on the fleet screen (12 hosts, then --hosts) vs a bare Textual app
    showing one Static; measured from building the app to the first rendered frame (`pilot.pause()`);
  - load: FleetScreen filling its virtual HostTable with --hosts rows (sorted, grouped, styled cells) and
    rendering the frame, vs a bare Textual DataTable given the same rows as plain strings;
  - scroll: --pages page-downs then End, per key press, on both tables;
  - filter: typing a 5-character filter on the fleet screen (the table refills on each key).
Goal: first paint <= 1 s (not asserted: printed).

Usage: python bench/bench_tui.py [--hosts 10000] [--pages 50]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from textual.app import App, ComposeResult
from textual.widgets import DataTable, Static

from tui.__main__ import make_app
from tui.fake import FakeBackend
from tui.screens.fleet import FleetScreen


class BareStatic(App[None]):
    def compose(self) -> ComposeResult:
        yield Static("hello")


class BareTable(App[None]):
    def __init__(self, rows: list[tuple[str, ...]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        yield DataTable(cursor_type="row")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("Host", "Group", "OS", "Mgr", "Pend", "Risk", "Posture", "Last")
        table.focus()

    def load(self) -> None:
        self.query_one(DataTable).add_rows(self.rows)


async def first_paint(build: Any) -> float:
    t0 = time.perf_counter()
    app = build()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        return time.perf_counter() - t0


async def scroll(app: App[None], pages: int, loader: Any) -> tuple[float, float]:
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        t0 = time.perf_counter()
        loader(app)
        await pilot.pause()
        load = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(pages):
            await pilot.press("pagedown")
        await pilot.press("end")
        await pilot.pause()
        per_key = (time.perf_counter() - t0) / (pages + 1)
        return load, per_key


async def filter_time(backend: FakeBackend) -> float:
    app = make_app(backend)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        t0 = time.perf_counter()
        await pilot.press("slash", *"db-00")
        await pilot.pause()
        return time.perf_counter() - t0


def fleet_reload(app: App[None]) -> None:
    screen = app.screen
    assert isinstance(screen, FleetScreen)
    screen.action_reload()


async def main_async(hosts: int, pages: int) -> None:
    big = FakeBackend(hosts)
    rows = [
        (r.name, r.group, r.os_release, r.pkg_mgr, str(r.pending), f"{r.highest_risk:.2f}", r.firewall, "-")
        for r in big.fleet()
    ]
    base_paint = await first_paint(BareStatic)
    small_paint = await first_paint(lambda: make_app(FakeBackend(12)))
    big_paint = await first_paint(lambda: make_app(FakeBackend(hosts)))
    base_load, base_key = await scroll(BareTable(rows), pages, lambda app: app.load())
    load, key = await scroll(make_app(big), pages, fleet_reload)
    filt = await filter_time(big)

    def line(what: str, ours: float, base: float | None, unit: str = "s") -> None:
        b = f"{base:9.3f} {unit}" if base is not None else " " * 11
        ratio = f"{ours / base:7.2f}x" if base else ""
        print(f"{what:<44} {ours:9.3f} {unit}   baseline {b}  {ratio}")

    print(f"patchbrain-tui benchmark, headless 120x40, fleet of {hosts} hosts, {pages} page-downs")
    line("first paint, 12 hosts (goal <= 1 s)", small_paint, base_paint)
    line(f"first paint, {hosts} hosts (goal <= 1 s)", big_paint, base_paint)
    line(f"load {hosts} rows into the fleet table", load, base_load)
    line("scroll, per key press", key * 1000, base_key * 1000, "ms")
    line("filter 'db-00' typed (5 keys + refills)", filt, None)
    print("baselines: a bare App with one Static (paint); a bare DataTable with the same rows as strings")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--pages", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main_async(args.hosts, args.pages))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
