"""The red-team scenario that needs hosts (injection) on a real lab host: it passes, and it fails when
patchbrain's own package grammar is switched off through the test-only hook. One lab instance of its own
(`$PATCHBRAIN_TEST_REDTEAM_LAB`, default `rtlab`) in a private PATCHBRAIN_HOME, attacked with `--lab`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = [
    pytest.mark.lab,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

INSTANCE = os.environ.get("PATCHBRAIN_TEST_REDTEAM_LAB") or "rtlab"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from patchbrain.lab import Lab

    home = tmp_path_factory.mktemp("pbhome")
    mp = pytest.MonkeyPatch()
    mp.setenv("PATCHBRAIN_HOME", str(home))
    mp.delenv("PATCHBRAIN_DB", raising=False)
    lab = Lab(INSTANCE)
    try:
        lab.up(1)
        yield lab
    finally:
        lab.down()
        mp.undo()


def redteam(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "patchbrain", "redteam", "run", "--scenario", "injection", "--lab", INSTANCE,
         "--json", *args],
        capture_output=True, text=True, timeout=1800, check=False, env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_injection_scenario_passes_on_a_lab_host(lab, tmp_path):
    report = tmp_path / "report.md"
    proc = redteam("--report", str(report))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (result,) = json.loads(proc.stdout)["scenarios"]
    assert result["status"] == "passed" and len(result["checks"]) >= 10
    assert any("grammar" in e["text"].lower() or "refuse" in e["text"].lower()
               for c in result["checks"] for e in c["evidence"])  # fmt: skip
    assert "## 8. injection: PASS" in report.read_text()
    assert lab.exec("h01", ["sh", "-c", "ls /tmp/pb-redteam-* 2>/dev/null | wc -l"]).stdout.strip() == "0"


def test_injection_scenario_fails_with_the_grammar_off(lab):
    proc = redteam(env={"PATCHBRAIN_REDTEAM_DISABLE": "package-grammar"})
    assert proc.returncode == 4, proc.stderr[-3000:]
    (result,) = json.loads(proc.stdout)["scenarios"]
    assert result["status"] == "failed" and result["disabled_defences"] == ["package-grammar"]
    failed = [c for c in result["checks"] if not c["passed"]]
    assert failed and all("plan with a hostile package" in c["attack"] for c in failed)
    # the second layer (the roles' own grammar) still held: nothing ran on the host
    assert lab.exec("h01", ["sh", "-c", "ls /tmp/pb-redteam-* 2>/dev/null | wc -l"]).stdout.strip() == "0"
