"""The red-team report labels SELinux results as simulated where the verifier read the lab stand-in's
marker on the host (`Check.selinux_simulated`), in Markdown and JSON."""

from __future__ import annotations

import json

from patchbrain.redteam import report
from patchbrain.redteam.base import Check, Evidence, ScenarioResult


def _results(simulated: tuple[str, ...]) -> list[ScenarioResult]:
    check = Check(
        "a 'critical' labdemo update whose maintainer script sets SELinux permissive",
        True,
        "halted at the canary wave for drift on h01; h01 restored",
        (Evidence("verifier", "h01: reachable=True labdemo=1.0 selinux=enforcing/enforcing (simulated)"),),
        simulated,
    )
    return [ScenarioResult("orchestration-sabotage", "passed", "the drift gate", (check,), seconds=1.0)]


def test_markdown_and_json_say_which_hosts_had_simulated_selinux():
    results = _results(("h01", "h03"))
    md = report.markdown(results, target="lab", disabled=[])
    head = md.split("| # | scenario |")[0]
    assert "**SELinux is simulated on 2 host(s)** (h01, h03)" in head
    assert "  - SELinux: simulated on h01, h03" in md
    doc = json.loads(json.dumps(report.document(results, target="lab", disabled=[])))
    assert doc["selinux_simulated"] == ["h01", "h03"]
    assert doc["scenarios"][0]["selinux_simulated"] == ["h01", "h03"]
    assert doc["scenarios"][0]["checks"][0]["selinux_simulated"] == ["h01", "h03"]


def test_no_simulated_host_no_label():
    results = _results(())
    md = report.markdown(results, target="staging", disabled=[])
    assert "SELinux is simulated" not in md and "SELinux: simulated" not in md
    assert report.document(results, target="staging", disabled=[])["selinux_simulated"] == []
