"""The real backend on patchbrain's own state: inventory, audit chain, model; what it will not invent."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from patchbrain.audit import open_audit_log
from patchbrain.store import Store
from tui.__main__ import make_app
from tui.backend import Unavailable
from tui.real import RealBackend

REPO = Path(__file__).resolve().parents[2]


def test_fleet_from_inventory(pb_home: Path) -> None:
    backend = RealBackend(inventory=REPO / "inventory" / "example-fleet.yml")
    rows = backend.fleet()
    assert rows and all(r.posture_source == "unknown" and r.pending is None for r in rows)
    detail = backend.host_detail(rows[0].name)
    assert detail.row.name == rows[0].name and detail.pending == ()


def test_missing_inventory_is_said(pb_home: Path) -> None:
    with pytest.raises(Unavailable, match=r"no inventory|inventory"):
        RealBackend(inventory=pb_home / "nope.yml").fleet()


def test_not_landed_parts_refuse_instead_of_inventing(pb_home: Path) -> None:
    backend = RealBackend(inventory=REPO / "inventory" / "example-fleet.yml")
    assert backend.current_plan() is None and backend.approvals() == []
    with pytest.raises(Unavailable, match="planner"):
        backend.create_plan()


def test_audit_screen_shows_chain_and_its_break(pb_home: Path) -> None:
    store = Store()
    log = open_audit_log(store)
    for i in range(3):
        log.append("root@test", "plan.create", f"plan-{i}", {"i": i})
    store.close()

    async def look() -> tuple[str, int]:
        app = make_app(RealBackend(inventory=REPO / "inventory" / "example-fleet.yml"))
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("5")
            await pilot.pause()
            chain = str(app.screen.query_one("#chain", Static).content)
            return chain, app.screen.query_one("#records", DataTable).row_count

    chain, n = asyncio.run(look())
    assert chain.startswith("Chain OK: 3 records") and n == 3

    conn = sqlite3.connect(pb_home / "patchbrain.db", isolation_level=None)
    triggers = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")]
    for t in triggers:
        conn.execute(f"DROP TRIGGER {t}")
    conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    conn.close()
    chain, _ = asyncio.run(look())
    assert chain.startswith("CHAIN BROKEN")


def test_model_screen_shows_the_active_bundle(pb_home: Path) -> None:
    info = RealBackend().model()
    shares = [v for _n, v in info.top_features]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1.0 + 1e-9
    assert any(name == "AP ratio to CVSS" for name, _v in info.metrics)
