"""The faults scenario's exact judges (patchbrain.redteam.faults: `bad_wave_problems`, `lock_problems`) on
real recorded runs (tests/fixtures/faults: the `rollout --json` documents, journal histories and audit
records of one `patchbrain redteam run --scenario faults`): the real runs pass, and each way a run can be
wrong (a fault host reported patched, a halt naming the wrong hosts, a missing journal step or audit
record, ...) is a problem for the right hosts."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from patchbrain.redteam import faults

FIXTURES = Path(__file__).parent.parent / "fixtures" / "faults"


def _bad_wave():
    run = json.loads((FIXTURES / "bad-wave-run.json").read_text())
    return {
        "waves": run["waves"],
        "faults": run["faults"],
        "first": run["first"],
        "resumed": run["resumed"],
        "histories": run["histories"],
        "records": faults.pin_records(run["plan_id"], [tuple(r) for r in run["records"]]),
    }


def _lock():
    run = json.loads((FIXTURES / "package-lock-run.json").read_text())
    return {
        "host": run["host"],
        "holder": run["holder"],
        "doc": run["doc"],
        "history": [tuple(t) for t in run["history"]],
        "records": faults.pin_records(run["plan_id"], [tuple(r) for r in run["records"]]),
    }


def test_the_recorded_bad_wave_passes_exactly():
    assert faults.bad_wave_problems(**_bad_wave()) == {"h02": [], "h03": [], "h04": []}


def _set_host(doc, wave, host, **values):
    [entry] = [h for w in doc["waves"] if w["wave"] == wave for h in w["hosts"] if h["host"] == host]
    entry.update(values)


def _set_record(records, index, **values):
    action, subject, payload = records[index]
    records[index] = (action, subject, {**payload, **values})


@pytest.mark.parametrize(
    ("change", "hosts", "expected"),
    [
        (
            lambda r: _set_host(r["first"], 2, "h03", state="patched"),
            {"h03"},
            "rollout --json: h03 patched (before {}, after {}), not unreachable",
        ),
        (
            lambda r: _set_host(r["first"], 2, "h04", after={"labdemo": "1.2"}),
            {"h04"},
            "not failed with nothing reported installed",
        ),
        (
            lambda r: r["first"].update(halt=faults.failures_halt(2, {"h02": "unreachable"})),
            {"h02", "h03", "h04"},
            "rollout --json: state halted, halt",
        ),
        (
            lambda r: r["first"]["waves"][1]["safety"]["verify"].update(h02={"verdict": "ok"}),
            {"h02"},
            "the verifier vouched for h02 in the faulty run",
        ),
        (  # a wave allowed to fail (the failure-threshold defence off): every faulty host says so
            lambda r: r["first"].update(state="done", halt=None),
            {"h02", "h03", "h04"},
            "was not halted per its threshold (0 failures allowed) naming",
        ),
        (lambda r: r["resumed"].update(state="halted"), {"h02", "h03", "h04"}, "the resume's --json: state"),
        (
            lambda r: r["resumed"]["resumed"]["reverified"]["h04"].update(state="patched"),
            {"h04"},
            "--resume re-read h04 as patched, not pending",
        ),
        (
            lambda r: r["resumed"]["resumed"].update(to_run=["h02", "h03"]),
            {"h02", "h03", "h04"},
            "ran ['h02', 'h03'], not wave 2 (was halted) running ['h02', 'h03', 'h04']",
        ),
        (
            lambda r: r["histories"]["h02"].remove("verifying"),
            {"h02"},
            "journal h02: pending > running > unreachable > pending > running > patched, not",
        ),
        (
            lambda r: r["histories"]["h01"].append("rolling_back"),
            {"h02", "h03", "h04"},
            "journal h01",
        ),
        (  # the SSH victim ended unreachable: judged as failed, the halt differs for the whole wave
            lambda r: r["faults"].update(h03="failed"),
            {"h02", "h03", "h04"},
            "h03: failed; h04: failed",
        ),
        (
            lambda r: _set_record(r["records"], 4, state="done"),
            {"h02", "h03", "h04"},
            "rollout audit record #5: got ('rollout.wave.end', '/w2', {'state': 'done'",
        ),
        (
            lambda r: _set_record(r["records"], 6, to_run=["h02"]),
            {"h02", "h03", "h04"},
            "rollout audit record #7",
        ),
        (
            lambda r: r["records"].pop(5),
            {"h02", "h03", "h04"},
            "rollout audit record: 9 record(s), expected 10",
        ),
    ],
)
def test_each_wrong_outcome_of_the_bad_wave_is_a_problem_for_its_hosts(change, hosts, expected):
    run = copy.deepcopy(_bad_wave())
    change(run)
    problems = faults.bad_wave_problems(**run)
    assert {h for h, p in problems.items() if any(expected in x for x in p)} == hosts, problems
    assert {h for h, p in problems.items() if p} == hosts, problems


def test_the_recorded_package_lock_run_passes_exactly():
    assert faults.lock_problems(**_lock()) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: r.update(holder=r["holder"] + 1), "journal h03: "),
        (lambda r: r["doc"].update(halt=None), "rollout --json: state halted, halt None"),
        (
            lambda r: r["doc"].update(state="done", halt=None),
            "rollout done, NOT halted for the failure of h03",
        ),
        (
            lambda r: _set_host(r["doc"], 1, "h03", state="patched"),
            "rollout --json: hosts [('h03', 'patched'",
        ),
        (
            lambda r: r["doc"]["waves"][0]["safety"]["verify"].update(h03={}),
            "the verifier vouched for ['h03']",
        ),
        (lambda r: r["history"].pop(1), "not pending > running > failed"),
        (lambda r: _set_record(r["records"], 3, state="done"), "rollout audit record #4"),
        (lambda r: r["records"].pop(), "rollout audit record: 3 record(s), expected 4"),
    ],
)
def test_each_wrong_outcome_of_the_package_lock_run_is_a_problem(change, expected):
    run = copy.deepcopy(_lock())
    change(run)
    problems = faults.lock_problems(**run)
    assert any(expected in p for p in problems), problems
