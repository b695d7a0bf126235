"""The red-team scenarios injection and lying self-report FAIL on a real lab host when their defence is
switched off through the test-only hook (that they pass with it on against a lab is what `make redteam`
proves); injection passes against the same host named as a staging inventory (`--staging`: reached over
patchbrain's own SSH channel, no lab powers). One lab of its own (`redteam-<pid>`,
tests/lab/lab_helpers.own_fleet) in a private PATCHBRAIN_HOME, attacked with `--lab` or `--staging`."""

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
def lab(tmp_path_factory):
    yield from own_fleet(tmp_path_factory, "redteam", 1, ("apt",))


def redteam(lab, *args, env=None, scenario="injection"):
    target = ["--lab", lab.instance] if "--staging" not in args else []
    argv = [sys.executable, "-m", "patchbrain", "redteam", "run", "--scenario", scenario, *target, "--json"]
    return subprocess.run(
        [*argv, *args],
        capture_output=True, text=True, timeout=1800, check=False, env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_injection_scenario_fails_with_the_grammar_off(lab):
    proc = redteam(lab, env={"PATCHBRAIN_REDTEAM_DISABLE": "package-grammar"})
    assert proc.returncode == 4, proc.stderr[-3000:]
    (result,) = json.loads(proc.stdout)["scenarios"]
    assert result["status"] == "failed" and result["disabled_defences"] == ["package-grammar"]
    failed = [c for c in result["checks"] if not c["passed"]]
    assert failed and all("plan with a hostile package" in c["attack"] for c in failed)
    # the second layer (the roles' own grammar) still held: nothing ran on the host
    assert lab.exec("h01", ["sh", "-c", "ls /tmp/pb-redteam-* 2>/dev/null | wc -l"]).stdout.strip() == "0"


def test_lying_self_report_passes_unnoticed_without_the_verifier(lab):
    proc = redteam(lab, scenario="lying-self-report", env={"PATCHBRAIN_REDTEAM_DISABLE": "verifier"})
    assert proc.returncode == 4, proc.stderr[-3000:]
    (result,) = json.loads(proc.stdout)["scenarios"]
    assert result["status"] == "failed"
    (failed,) = [c for c in result["checks"] if not c["passed"]]
    assert "did NOT catch" in failed["outcome"]


def test_injection_scenario_passes_against_a_staging_inventory(lab, tmp_path):
    report = tmp_path / "report.md"
    staging = ["--staging", str(lab.inventory_path()), "--i-understand-this-attacks-staging"]
    proc = redteam(lab, *staging, "--staging-host", "h01", "--report", str(report))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (result,) = json.loads(proc.stdout)["scenarios"]
    assert result["status"] == "passed" and len(result["checks"]) >= 10
    attacks = [c["attack"] for c in result["checks"]]
    assert not any("changelog" in a for a in attacks)  # publishing a package is a lab power
    assert any("straight to rollout.yml" in a for a in attacks)  # the playbooks did run on the host
    text = report.read_text()
    assert "## 8. injection: PASS" in text and "staging inventory" in text
    assert lab.exec("h01", ["sh", "-c", "ls /tmp/pb-redteam-* 2>/dev/null | wc -l"]).stdout.strip() == "0"
