"""The red-team scenarios against the safety loop and faults (3 orchestration-sabotage, 5
fake-failure-telemetry, 9 faults) on a lab of their own (3 apt hosts, `rtsafety-<pid>`) attacked with
`--lab`: each passes, and each FAILS when its defence is switched off through the test-only hook
(drift-gate, signal-distrust, rollout-lock). The fleet is reset after every run."""

from __future__ import annotations

import json
import os
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
    yield from own_fleet(tmp_path_factory, "rtsafety", 3, ("apt",))


@pytest.fixture
def lab(fleet):
    yield fleet
    fleet.reset()  # a run with a defence off leaves hosts sabotaged or at other versions


def redteam(lab, scenario, env=None):
    proc = subprocess.run(
        [sys.executable, "-m", "patchbrain", "redteam", "run", "--scenario", scenario, "--lab", lab.instance,
         "--json"],
        capture_output=True, text=True, timeout=3600, check=False, env={**os.environ, **(env or {})},
    )  # fmt: skip
    (result,) = json.loads(proc.stdout)["scenarios"]
    return proc, result


def _texts(result):
    return [e["text"] for c in result["checks"] for e in c["evidence"]]


def test_sabotage_is_halted_at_the_canary(lab):
    proc, result = redteam(lab, "orchestration-sabotage")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert result["status"] == "passed" and len(result["checks"]) >= 2
    texts = _texts(result)
    assert any("firewall" in t for t in texts) and any("selinux.runtime_mode" in t for t in texts)
    assert sum("blast radius: 1 of 3" in t and "0 host(s) left changed" in t for t in texts) == len(
        result["checks"]
    )
    assert any(
        e["kind"] == "audit" and "safety.drift" in e["text"] for c in result["checks"] for e in c["evidence"]
    )


def test_sabotage_scenario_fails_without_the_drift_gate(lab):
    proc, result = redteam(lab, "orchestration-sabotage", {"PATCHBRAIN_REDTEAM_DISABLE": "drift-gate"})
    assert proc.returncode == 4, proc.stderr[-3000:]
    assert result["status"] == "failed" and result["disabled_defences"] == ["drift-gate"]
    assert result["checks"] and not any(c["passed"] for c in result["checks"])
    assert all("got past the canary" in c["outcome"] for c in result["checks"])


def test_fake_failure_signals_trigger_no_rollback(lab):
    proc, result = redteam(lab, "fake-failure-telemetry")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    fake, control = result["checks"]
    assert fake["passed"] and control["passed"]
    assert sum("safety.signal.suspicious" in e["text"] for e in fake["evidence"]) == 3


def test_fake_failure_telemetry_fails_when_signals_are_believed(lab):
    proc, result = redteam(lab, "fake-failure-telemetry", {"PATCHBRAIN_REDTEAM_DISABLE": "signal-distrust"})
    assert proc.returncode == 4, proc.stderr[-3000:]
    assert result["status"] == "failed" and result["disabled_defences"] == ["signal-distrust"]
    fake, control = result["checks"]
    assert not fake["passed"] and "rolled back on fake signals" in fake["outcome"]
    assert control["passed"]  # a real failure is still rolled back: the scenario tells the two apart


def test_faults_second_rollout_refused_and_package_lock_bounded(lab):
    proc, result = redteam(lab, "faults")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lock, pmlock = result["checks"]
    assert lock["passed"] and "naming its plan and pid" in lock["outcome"]
    assert any(
        e["kind"] == "refusal" and "held by the rollout of plan" in e["text"] for e in lock["evidence"]
    )
    assert pmlock["passed"] and "bounded wait" in pmlock["outcome"]


def test_faults_scenario_fails_without_the_rollout_lock(lab):
    proc, result = redteam(lab, "faults", {"PATCHBRAIN_REDTEAM_DISABLE": "rollout-lock"})
    assert proc.returncode == 4, proc.stderr[-3000:]
    assert result["status"] == "failed" and result["disabled_defences"] == ["rollout-lock"]
    lock, _pmlock = result["checks"]
    assert not lock["passed"] and "the second rollout ran" in lock["outcome"]
