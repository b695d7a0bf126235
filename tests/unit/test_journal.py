"""The journal: plans, waves and per-host transitions with times, checked against the allowed moves."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patchbrain.journal import ALLOWED, HOST_STATES, IllegalTransition, Journal
from patchbrain.store import Store


@pytest.fixture
def journal(tmp_path):
    j = Journal(Store(tmp_path / "j.db"))
    j.add_plan("p1", inventory="inv.yml", document={"x": 1}, waves=[["a"], ["b", "c"]])
    return j


def test_hosts_start_pending_and_move_with_timestamps(journal):
    assert journal.host_states("p1") == {"a": "pending", "b": "pending", "c": "pending"}
    journal.transition("p1", "a", "running")
    journal.transition("p1", "a", "patched", detail="labdemo 1.0 -> 1.1")
    history = journal.history("p1", "a")
    assert [t.state for t in history] == ["pending", "running", "patched"]
    assert history[0].at <= history[1].at <= history[2].at
    assert history[-1].detail == "labdemo 1.0 -> 1.1" and history[-1].wave == 0
    assert journal.history("p1", "b")[0].wave == 1


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        ((), "patched"),
        (("running", "failed"), "patched"),
        (("running", "unreachable"), "running"),
        (("skipped",), "patched"),
        (("running", "verifying"), "running"),
        (("running", "failed", "verifying"), "restored"),
        (("running", "patched"), "pending"),
    ],
)
def test_illegal_moves_are_refused(journal, path, bad):
    for state in path:
        journal.transition("p1", "a", state)
    with pytest.raises(IllegalTransition, match=f"-> {bad}"):
        journal.transition("p1", "a", bad)
    assert journal.host_states("p1")["a"] == (path[-1] if path else "pending")


def test_unknown_hosts_plans_and_states(journal):
    with pytest.raises(IllegalTransition):
        journal.transition("p1", "zz", "running")
    with pytest.raises(ValueError):
        journal.transition("p1", "a", "exploded")
    with pytest.raises(IllegalTransition):
        journal.add_plan("p1", inventory="", document={}, waves=[])
    with pytest.raises(IllegalTransition):
        journal.set_plan_state("nope", "done")


def test_waves_plans_snapshots_and_discoveries(journal):
    journal.set_plan_state("p1", "running")
    journal.set_wave("p1", 0, "running", artifacts="/a/p1-w1")
    journal.set_wave("p1", 0, "done", summary={"states": {"patched": 1}})
    journal.save_snapshot("p1", 0, "a", "pre", {"probes": {"nft": 1}})
    journal.save_snapshot("p1", 0, "a", "post", {"probes": {"nft": 2}})
    rec = journal.plan("p1")
    assert rec is not None and rec.state == "running"
    w = rec.waves[0]
    assert (w.state, w.artifacts, w.summary) == ("done", "/a/p1-w1", {"states": {"patched": 1}})
    assert w.started is not None and w.ended is not None and w.started <= w.ended
    assert rec.waves[1].state == "pending" and rec.waves[1].started is None
    assert journal.snapshots("p1", 0, "pre") == {"a": {"probes": {"nft": 1}}}
    assert journal.snapshots("p1", 0, "post") == {"a": {"probes": {"nft": 2}}}
    assert journal.plan_ids() == ["p1"] and journal.plan("nope") is None
    assert journal.latest_discovery() is None
    journal.add_discovery(inventory="i", artifacts="a", document={"hosts": []})
    assert journal.latest_discovery()[1:] == ("i", {"hosts": []})


@settings(max_examples=60)
@given(st.lists(st.sampled_from(HOST_STATES), max_size=8))
def test_recorded_history_only_holds_allowed_moves(tmp_path_factory, moves):
    j = Journal(Store(tmp_path_factory.mktemp("j") / "j.db"))
    j.add_plan("p", inventory="", document={}, waves=[["h"]])
    current = "pending"
    for state in moves:
        if state in ALLOWED[current]:
            j.transition("p", "h", state)
            current = state
        else:
            with pytest.raises(IllegalTransition):
                j.transition("p", "h", state)
    states = [t.state for t in j.history("p", "h")]
    assert all(b in ALLOWED[a] for a, b in itertools.pairwise(states))
    assert j.host_states("p")["h"] == current
