"""Resume: the interrupted wave's hosts are re-verified and judged; only the not-yet-patched ones run."""

from __future__ import annotations

from pathlib import Path

import pytest

from patchbrain.errors import BadInput, RefusedByPolicy
from patchbrain.executor.resume import Reading, judge, prepare_resume
from patchbrain.journal import Journal
from patchbrain.models import PendingUpdate
from patchbrain.plans import make_plan
from patchbrain.store import Store


@pytest.fixture
def plan():
    pending = [PendingUpdate(f"h0{i}", "labdemo", "1.0", "1.1", "apt") for i in range(1, 6)]
    return make_plan(pending, inventory="", spec="1,2,100%")


@pytest.fixture
def journal(tmp_path, plan):
    j = Journal(Store(tmp_path / "r.db"))
    j.add_plan(plan.plan_id, inventory="", document={}, waves=[list(w) for w in plan.waves])
    return j


def reader(versions, unreachable=()):
    seen = []

    def read(plan, hosts, inventory):
        seen.append(tuple(hosts))
        return {
            h: Reading(h, False, error="timed out")
            if h in unreachable
            else Reading(h, True, {"labdemo": versions[h]})
            for h in hosts
        }

    read.seen = seen
    return read


def test_judge(plan):
    h = plan.waves[0][0]
    assert judge(plan, Reading(h, True, {"labdemo": "1.1"}), "running").state == "patched"
    assert judge(plan, Reading(h, True, {"labdemo": "1.1"}), "unchanged").state == "unchanged"
    assert judge(plan, Reading(h, True, {"labdemo": "1.0"}), "running").state == "pending"
    assert judge(plan, Reading(h, True, {"labdemo": None}), "failed").state == "pending"
    v = judge(plan, Reading(h, True, {"labdemo": "1.2"}), "patched")
    assert v.state == "mismatch" and "found 1.2, planned 1.1" in v.detail
    v = judge(plan, Reading(h, False, error="Connection refused"), "running")
    assert v.state == "unreachable" and "Connection refused" in v.detail


def test_crash_mid_wave(plan, journal):
    w1, w2 = plan.waves[0], plan.waves[1]
    for h in w1:
        journal.transition(plan.plan_id, h, "running")
        journal.transition(plan.plan_id, h, "patched")
    journal.set_wave(plan.plan_id, 0, "running")
    journal.set_wave(plan.plan_id, 0, "done")
    journal.set_wave(plan.plan_id, 1, "running")
    a, b = w2
    for h in w2:
        journal.transition(plan.plan_id, h, "running")
    # the controller died: a was patched already, b not yet
    read = reader({a: "1.1", b: "1.0"})
    point = prepare_resume(plan, journal, Path("inv"), read)
    assert read.seen == [(a, b)]  # only the interrupted wave, never wave 1's patched hosts
    assert point.wave == 1 and point.to_run == (b,) and point.previous_state == "planned"
    assert point.verdicts[a].state == "patched" and point.verdicts[b].state == "pending"
    states = journal.host_states(plan.plan_id)
    assert states[a] == "patched" and states[b] == "pending" and states[w1[0]] == "patched"
    assert [t.state for t in journal.history(plan.plan_id, a)] == [
        "pending",
        "running",
        "verifying",
        "patched",
    ]


def test_halted_wave_with_an_unreachable_host(plan, journal):
    [canary] = plan.waves[0]
    journal.transition(plan.plan_id, canary, "running")
    journal.transition(plan.plan_id, canary, "unreachable", detail="ssh: connection reset")
    journal.set_wave(plan.plan_id, 0, "running")
    journal.set_wave(plan.plan_id, 0, "halted", summary={"halt": {"kind": "failures"}})
    for h in plan.waves[1] + plan.waves[2]:
        journal.transition(plan.plan_id, h, "skipped")
    # still down: stays unreachable, nothing to run in this wave
    point = prepare_resume(plan, journal, Path("inv"), reader({}, unreachable=(canary,)))
    assert point.to_run == () and point.verdicts[canary].state == "unreachable"
    # back, untouched: it runs
    point = prepare_resume(plan, journal, Path("inv"), reader({canary: "1.0"}))
    assert point.to_run == (canary,)


def test_refusals(plan, journal, tmp_path):
    other = Journal(Store(tmp_path / "other.db"))
    with pytest.raises(BadInput, match="never rolled out"):
        prepare_resume(plan, other, Path("inv"), reader({}))
    journal.set_wave(plan.plan_id, 0, "halted", summary={"halt": {"kind": "drift"}})
    with pytest.raises(RefusedByPolicy, match="drift gate"):
        prepare_resume(plan, journal, Path("inv"), reader({}))
    journal.set_plan_state(plan.plan_id, "done")
    with pytest.raises(BadInput, match="nothing to resume"):
        prepare_resume(plan, journal, Path("inv"), reader({}))


def test_a_resumed_rollout_rebuilds_the_baked_wave_from_the_journal(plan, journal, tmp_path):
    """The bake re-check before the resumed wave needs the previous wave's outcome, which this process
    never ran: host states and Ansible's pre/post snapshots come from the journal."""
    from patchbrain.executor.rollout import RolloutOptions, _journal_outcome

    [canary] = plan.waves[0]
    for state in ("running", "patched"):
        journal.transition(plan.plan_id, canary, state)
    journal.save_snapshot(plan.plan_id, 0, canary, "pre", {"schema": 1, "host": canary})
    out = _journal_outcome(plan, 0, journal, RolloutOptions(artifacts_root=tmp_path))
    assert out.index == 0 and out.artifacts == tmp_path / f"{plan.plan_id}-w1"
    assert [(h.host, h.state, dict(h.requested)) for h in out.hosts] == [
        (canary, "patched", {"labdemo": "1.1"})
    ]
    assert out.posture_pre == {canary: {"schema": 1, "host": canary}} and out.posture_post == {}
