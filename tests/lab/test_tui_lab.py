"""A whole rollout driven through the TUI with the pilot, on real lab hosts (own instance `tui`).

discover (CLI) -> Plan screen: create (authored by lab-signing) -> Approvals: approve with lab-approver-1
through the confirmation -> Rollout: start, confirm, live events
from the executor's hooks -> every host patched, checked over SSH outside Ansible.
The safety loop (drift gate, restore) is not on main yet: the sabotaged-canary half of the issue's lab test
is left until it lands (the fake backend's sabotage path covers the screens meanwhile).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from lab_helpers import own_fleet

pytestmark = [
    pytest.mark.lab,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    yield from own_fleet(tmp_path_factory, "tui", 3, ("apt",), lab_keys=True)


def test_benign_rollout_through_the_tui(fleet):
    from textual.widgets import DataTable, Static

    from tui.__main__ import make_app
    from tui.real import RealBackend
    from tui.screens.approvals import ApprovalsScreen
    from tui.screens.plan import PlanScreen
    from tui.screens.rollout import RolloutScreen

    proc = subprocess.run(
        [sys.executable, "-m", "patchbrain", "discover"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    backend = RealBackend(author_key="lab-signing")  # the plan's author: it cannot approve its own plan

    async def drive() -> RolloutScreen:
        app = make_app(backend)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            rows = backend.fleet()
            assert sorted(r.name for r in rows) == ["h01", "h02", "h03"]
            assert all(r.pending and r.pending >= 1 for r in rows)
            await pilot.press("2", "c")
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert isinstance(app.screen, PlanScreen) and app.screen.plan is not None
            assert any(e.package == "labdemo" for e in app.screen.plan.entries)
            await pilot.press("3")
            await pilot.pause()
            assert isinstance(app.screen, ApprovalsScreen)
            assert app.screen.query_one("#plans", DataTable).row_count == 1
            assert not backend.approvals()[0].approved  # nothing is auto-approved
            await pilot.press("a")  # approve with the first key, lab-approver-1, through the confirmation
            await pilot.pause()
            await pilot.press("y")
            await pilot.pause()
            assert backend.approvals()[0].approvals == ("lab-approver-1",)
            await pilot.press("4", "s")
            await pilot.pause()
            await pilot.press("y")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, RolloutScreen)
            for _ in range(900):
                if screen.end is not None:
                    break
                await pilot.pause(1)
            assert screen.end is not None, "the rollout did not finish in 15 minutes"
            assert "DONE" in str(screen.query_one("#title", Static).content)
            return screen

    screen = asyncio.run(drive())
    assert screen.end is not None and screen.end.state == "done", screen.end
    assert set(screen.hosts.values()) == {"patched"}
    assert set(screen.waves.values()) == {"done"}
    assert all(screen.events.get(h) for h in ("h01", "h02", "h03"))  # live task events per host
    assert plan_versions_installed(fleet, backend)
    # the fleet screen's data now carries the last outcome and the posture snapshots of the rollout
    rows = {r.name: r for r in backend.fleet()}
    for row in rows.values():
        assert row.last_outcome == "patched", row
        assert row.posture_source == "simulated" and row.firewall == "fw drop", row
        assert row.selinux not in ("?", ""), row


def plan_versions_installed(lab, backend) -> bool:
    plan = backend.plan
    for host, planned in plan.hosts.items():
        for pkg in planned.packages:
            proc = lab.exec(host, ["dpkg-query", "-W", "-f", "${Version}", pkg.name], timeout=60)
            assert proc.returncode == 0 and proc.stdout.strip() == pkg.version, (host, pkg, proc.stdout)
    return True
