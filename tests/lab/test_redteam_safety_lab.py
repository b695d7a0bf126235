"""The red-team scenarios against the safety loop and faults (3 orchestration-sabotage, 5
fake-failure-telemetry, 9 faults) FAIL when their defences are switched off through the test-only hook
(drift-gate, signal-distrust, rollout-lock, resume-reverify, failure-threshold, disk-preflight), on a lab of
their own (4 apt hosts, `rtsafety-<pid>`) attacked with `--lab`; the fleet is reset after every run. That
they pass with every defence on is what `make redteam` proves (each scenario on a lab of its own), so it is
not repeated here: these tests prove the suite cannot pass vacuously."""

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
    yield from own_fleet(tmp_path_factory, "rtsafety", 4, ("apt",))


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


def test_sabotage_scenario_fails_without_the_drift_gate(lab):
    # the two variants the gate sees right after the install, and the delayed one only the bake sees
    env = {
        "PATCHBRAIN_REDTEAM_DISABLE": "drift-gate",
        "PATCHBRAIN_REDTEAM_SABOTAGE_VARIANTS": "accept-all,selinux-permissive,delayed-open-port",
    }
    proc, result = redteam(lab, "orchestration-sabotage", env)
    assert proc.returncode == 4, proc.stderr[-3000:]
    assert result["status"] == "failed" and result["disabled_defences"] == ["drift-gate"]
    assert len(result["checks"]) == 3 and not any(c["passed"] for c in result["checks"])
    assert all("got past the canary" in c["outcome"] for c in result["checks"])


def test_fake_failure_telemetry_fails_when_signals_are_believed(lab):
    proc, result = redteam(lab, "fake-failure-telemetry", {"PATCHBRAIN_REDTEAM_DISABLE": "signal-distrust"})
    assert proc.returncode == 4, proc.stderr[-3000:]
    assert result["status"] == "failed" and result["disabled_defences"] == ["signal-distrust"]
    fake, control = result["checks"]
    assert not fake["passed"] and "rolled back on fake signals" in fake["outcome"]
    assert control["passed"]  # a real failure is still rolled back: the scenario tells the two apart


def _checks(result):
    names = ("lock", "pmlock", "killed", "dies", "ssh", "disk")
    assert len(result["checks"]) == len(names), [c["attack"] for c in result["checks"]]
    return dict(zip(names, result["checks"], strict=True))


def test_faults_scenario_fails_without_the_rollout_lock_or_the_resume_reread(lab):
    env = {"PATCHBRAIN_REDTEAM_DISABLE": "rollout-lock,resume-reverify"}
    proc, result = redteam(lab, "faults", env)
    assert proc.returncode == 4, proc.stderr[-3000:]
    assert result["status"] == "failed" and result["disabled_defences"] == ["rollout-lock", "resume-reverify"]
    checks = _checks(result)
    assert not checks["lock"]["passed"] and "the second rollout ran" in checks["lock"]["outcome"]
    # the host installed before the kill is run again: patched twice
    killed = checks["killed"]
    assert not killed["passed"] and "patched twice" in killed["outcome"], killed["outcome"]
    assert "was not re-read as patched and left alone" in killed["outcome"]
    for name in ("pmlock", "disk"):  # the other defences still hold
        assert checks[name]["passed"], checks[name]["outcome"]


def test_faults_scenario_fails_without_the_failure_threshold_or_the_disk_preflight(lab):
    env = {"PATCHBRAIN_REDTEAM_DISABLE": "failure-threshold,disk-preflight"}
    proc, result = redteam(lab, "faults", env)
    assert proc.returncode == 4, proc.stderr[-3000:]
    assert result["status"] == "failed"
    assert result["disabled_defences"] == ["failure-threshold", "disk-preflight"]
    checks = _checks(result)
    for name in ("lock", "killed"):  # the other defences still hold
        assert checks[name]["passed"], checks[name]["outcome"]
    assert not checks["pmlock"]["passed"] and "NOT halted" in checks["pmlock"]["outcome"]
    for name in ("dies", "ssh", "disk"):
        c = checks[name]
        assert not c["passed"] and "was not halted per its threshold" in c["outcome"], c["outcome"]
    assert "was not refused for disk space" in checks["disk"]["outcome"]
