"""A whole rollout driven through the TUI with the pilot, on real lab hosts (own instance `tui`).

discover (CLI) -> Plan screen: create (authored by lab-signing) -> Approvals: approve with lab-approver-1
through the confirmation -> Rollout: start, confirm, live events
from the executor's hooks -> every host patched, checked over SSH outside Ansible.
Then a sabotaged "critical" update (its postinst accepts all input) goes the same way through the TUI: the
safety loop halts it at the canary, the Rollout screen shows the drift finding, the canary is restored and
the other hosts never see it.
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
    env = {"PATCHBRAIN_CANARY_BAKE": "5s"}  # the safety loop's canary bake, seconds for the test
    yield from own_fleet(tmp_path_factory, "tui", 3, ("apt",), lab_keys=True, env=env)


def discover() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "patchbrain", "discover"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def drive_rollout(backend, package_hosts: int):
    """Plan (create) -> Approvals (approve with lab-approver-1, confirmed) -> Rollout (start, confirmed);
    waits for the end; returns the Rollout screen and what its title and findings panel showed."""
    from textual.widgets import DataTable, Static

    from tui.__main__ import make_app
    from tui.screens.approvals import ApprovalsScreen
    from tui.screens.plan import PlanScreen
    from tui.screens.rollout import RolloutScreen

    async def drive() -> tuple[RolloutScreen, str, str]:
        app = make_app(backend)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            rows = backend.fleet()
            assert sorted(r.name for r in rows) == ["h01", "h02", "h03"]
            assert sum(1 for r in rows if r.pending) == package_hosts
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
            await pilot.pause()
            title = str(screen.query_one("#title", Static).content)
            return screen, title, str(screen.query_one("#findings", Static).content)

    return asyncio.run(drive())


def test_benign_rollout_through_the_tui(fleet):
    from tui.real import RealBackend

    discover()
    backend = RealBackend(author_key="lab-signing")  # the plan's author: it cannot approve its own plan
    screen, title, _ = drive_rollout(backend, package_hosts=3)
    assert screen.end is not None and screen.end.state == "done", screen.end
    assert "DONE" in title
    assert set(screen.hosts.values()) == {"patched"}
    assert set(screen.waves.values()) == {"done"}
    assert all(screen.events.get(h) for h in ("h01", "h02", "h03"))  # live task events per host
    assert not screen.findings
    assert plan_versions_installed(fleet, backend)
    # the fleet screen's data now carries the last outcome and the posture snapshots of the rollout
    rows = {r.name: r for r in backend.fleet()}
    for row in rows.values():
        assert row.last_outcome == "patched", row
        assert row.posture_source == "simulated" and row.firewall == "fw drop", row
        assert row.selinux not in ("?", ""), row


def test_a_sabotaged_update_halts_at_the_canary_in_the_tui(fleet):
    """Runs after the benign test (same fleet): every host is at the benign version when it starts."""
    from patchbrain.lab.content import LabContent
    from tui.real import RealBackend

    before = {h: installed(fleet, h) for h in ("h01", "h02", "h03")}
    version, _ = LabContent(fleet.dir).publish_variant("accept-all")
    discover()
    backend = RealBackend(author_key="lab-signing")
    screen, title, shown = drive_rollout(backend, package_hosts=3)
    end = screen.end
    assert end is not None and end.state == "halted", end
    [canary] = backend.plan.waves[0]
    assert "weaken security" in end.reason and canary in end.reason, end.reason
    assert end.restored == (canary,) and end.not_restored == ()
    assert screen.findings and {f.host for f in screen.findings} == {canary}
    assert any(f.setting.startswith("firewall.") for f in screen.findings), screen.findings
    assert "HALTED" in title
    assert "DRIFT wave 1" in shown and canary in shown, shown
    # the canary is back at its pre-flight version; the other hosts never saw the sabotaged one
    after = {h: installed(fleet, h) for h in ("h01", "h02", "h03")}
    assert after == before and version not in after.values(), (after, version)
    assert {screen.hosts[h] for h in screen.hosts if h != canary} <= {"pending", "skipped"}


def installed(lab, host: str) -> str:
    proc = lab.exec(host, ["dpkg-query", "-W", "-f", "${Version}", "labdemo"], timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def plan_versions_installed(lab, backend) -> bool:
    plan = backend.plan
    for host, planned in plan.hosts.items():
        for pkg in planned.packages:
            proc = lab.exec(host, ["dpkg-query", "-W", "-f", "${Version}", pkg.name], timeout=60)
            assert proc.returncode == 0 and proc.stdout.strip() == pkg.version, (host, pkg, proc.stdout)
    return True
