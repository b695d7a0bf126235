"""The executor's seam for execution nodes: merged slice results and the controller's own judgement."""

from __future__ import annotations

from pathlib import Path

from patchbrain.executor.rollout import HostResult, verified_result
from patchbrain.executor.runner import RunResult, merge_results
from patchbrain.journal import ALLOWED
from patchbrain.plans import PlannedHost, PlannedPackage

HOST = PlannedHost("h01", "apt", (PlannedPackage("labdemo", "1.1"),))


def _part(status, stats, data, **kw):
    return RunResult("x", Path("/nowhere"), status, 0 if status == "successful" else 2, stats, data, (), **kw)


def test_merge_keeps_every_slice_per_host_and_the_worst_status():
    a = _part("successful", {"processed": {"h01": 1}}, {"patchbrain_patch": {"h01": {"after": "1"}}})
    b = _part(
        "failed",
        {"processed": {"h02": 1}, "failures": {"h02": 1}},
        {"patchbrain_patch": {"h03": {"after": "2"}}},
        remote=frozenset({"h02", "h03"}),
        unknown=frozenset({"h04"}),
    )
    m = merge_results("w1-patch", Path("/w1"), [a, b])
    assert m.status == "failed" and m.rc == 2
    assert m.stats["processed"] == {"h01": 1, "h02": 1}
    assert m.data["patchbrain_patch"] == {"h01": {"after": "1"}, "h03": {"after": "2"}}
    assert m.remote == {"h02", "h03"} and m.unknown == {"h04"}
    assert m.host_outcome("h01") == "ok" and m.host_outcome("h02") == "failed"
    assert m.host_outcome("h04") == "unknown"
    canceled = merge_results("c", Path("/c"), [a, _part("canceled", {}, {}), b])
    assert canceled.status == "canceled"


def _reported(state, after):
    return HostResult("h01", state, {"labdemo": "1.1"}, {"labdemo": "1.0"}, after, False, "node says so")


def test_a_node_report_counts_only_when_the_controller_reads_the_same():
    honest = _reported("patched", {"labdemo": "1.1"})
    assert verified_result(HOST, {"labdemo": "1.1"}, honest) is honest
    lie = verified_result(HOST, {"labdemo": "1.0"}, _reported("patched", {"labdemo": "1.1"}))
    assert lie.state == "mismatch" and "controller read labdemo 1.0" in lie.message
    unread = verified_result(HOST, None, honest)
    assert unread.state == "mismatch" and "could not re-read" in unread.message


def test_a_lost_host_is_recorded_as_the_controller_finds_it():
    assert verified_result(HOST, {"labdemo": "1.1"}, None).state == "patched"
    assert verified_result(HOST, {"labdemo": "1.0"}, None).state == "failed"
    assert verified_result(HOST, {}, None).state == "failed"


def test_unknown_is_a_journal_state_left_only_after_a_reading():
    assert "unknown" in ALLOWED["running"]
    # left once the controller has read the host (or, after a crash, by `rollout --resume`'s re-read)
    assert ALLOWED["unknown"] == {"patched", "unchanged", "failed", "mismatch", "verifying"}
