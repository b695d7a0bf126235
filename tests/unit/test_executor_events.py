"""Typed host events mapped from real ansible-runner events (tests/fixtures/runner/events.json, recorded
with tests/fixtures/runner/record.py on ansible-runner 2.4.3 / ansible-core 2.19)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from patchbrain.executor.events import (
    HostUnreachable,
    TaskChanged,
    TaskFailed,
    TaskOk,
    TaskSkipped,
    TaskStarted,
    to_host_event,
)
from patchbrain.executor.runner import read_result

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "runner"


def _raw():
    return json.loads((FIXTURES / "events.json").read_text())


def test_every_per_host_event_kind_maps_to_its_type():
    events = [e for e in (to_host_event(r) for r in _raw()) if e is not None]
    by = {(type(e).__name__, e.host, e.task) for e in events}
    assert ("HostUnreachable", "ghost", "Ping the host") in by
    assert ("TaskOk", "local-a", "Ping the host") in by
    assert ("TaskChanged", "local-b", "Change something harmless") in by
    assert ("TaskSkipped", "local-a", "Skip this task") in by
    assert ("TaskFailed", "local-b", "Fail on purpose on the second host") in by
    assert sum(isinstance(e, TaskStarted) for e in events) == 13
    assert all(e.ident == "record-1" and e.counter > 0 and e.created is not None for e in events)


def test_failures_carry_message_and_ignore_flag():
    events = [e for e in (to_host_event(r) for r in _raw()) if isinstance(e, TaskFailed)]
    ignored = {e.host for e in events if e.ignored}
    assert ignored == {"local-a", "local-b"}
    real = [e for e in events if not e.ignored]
    assert [(e.host, e.message) for e in real] == [("local-b", "failing on purpose")]
    unreachable = [e for e in (to_host_event(r) for r in _raw()) if isinstance(e, HostUnreachable)]
    assert "Connection refused" in unreachable[0].message


def test_banners_stats_and_garbage_are_not_host_events():
    for raw in _raw():
        if not raw["event"].startswith("runner_on_"):
            assert to_host_event(raw) is None
    assert to_host_event({}) is None
    assert to_host_event({"event": "runner_on_ok", "event_data": "nope"}) is None
    assert to_host_event({"event": "runner_on_ok", "event_data": {"host": 3}}) is None


def test_changed_only_when_result_says_true():
    raw = {"event": "runner_on_ok", "counter": 1, "event_data": {"host": "h", "res": {"changed": "yes"}}}
    assert isinstance(to_host_event(raw), TaskOk)
    raw["event_data"]["res"]["changed"] = True
    assert isinstance(to_host_event(raw), TaskChanged)
    assert isinstance(to_host_event({"event": "runner_on_skipped", "event_data": {"host": "h"}}), TaskSkipped)


def test_read_result_from_an_artifacts_folder(tmp_path):
    folder = tmp_path / "record-1"
    (folder / "job_events").mkdir(parents=True)
    for raw in _raw():
        (folder / "job_events" / f"{raw['counter']}-{raw['uuid']}.json").write_text(json.dumps(raw))
    (folder / "job_events" / "x-partial.json").write_text("{not json")
    (folder / "status").write_text("failed")
    (folder / "rc").write_text("2")
    result = read_result(folder)
    assert result.status == "failed" and result.rc == 2
    assert result.data == {"recorded": {"local-a": {"value": 1}, "local-b": {"value": 1}}}
    assert result.host_outcome("ghost") == "unreachable"
    assert result.host_outcome("local-b") == "failed"
    assert result.host_outcome("local-a") == "ok"
    assert result.host_outcome("elsewhere") == "not_run"
    assert [e.counter for e in result.events] == sorted(e.counter for e in result.events)
    shutil.rmtree(folder / "job_events")
    assert read_result(folder).events == ()
