"""Per-host SELinux labels in rollout output (`rollout --json`, the summary table), from the posture
documents the hosts returned: simulated where the marker /etc/selinux/SIMULATED was read."""

from __future__ import annotations

import json
from pathlib import Path

from posture_helpers import document, recorded_getenforce

from patchbrain.cli.cmd_rollout import _summary, result_document
from patchbrain.executor.rollout import HostResult, RolloutResult, WaveOutcome
from patchbrain.lab.shim import MARKER_TEXT
from patchbrain.posture import labels


def doc(host: str, *, marker: bool, mode: str = "enforcing") -> dict:
    probes = {"getenforce": recorded_getenforce(mode)}
    if marker:
        probes["selinux_simulated"] = MARKER_TEXT
    return document(host, **probes)


def test_host_label_is_simulated_when_any_document_carried_the_marker():
    label = labels.host_label([doc("h", marker=False), doc("h", marker=True, mode="permissive")], host="h")
    assert label == {"mode": "permissive", "config_mode": None, "simulated": True}
    assert labels.host_label([doc("h", marker=False)], host="h")["simulated"] is False
    assert labels.host_label([{"schema": 7}], host="h") == {
        "mode": None,
        "config_mode": None,
        "simulated": None,
    }
    assert labels.text(label) == "permissive (simulated)"
    assert labels.text({"mode": "enforcing", "simulated": False}) == "enforcing"
    assert labels.text({"mode": None, "simulated": None}) == "-"
    assert labels.simulated_hosts({"b": label, "a": label, "c": {"simulated": False}}) == ["a", "b"]


def _result() -> RolloutResult:
    hosts = tuple(HostResult(h, "patched", {"labdemo": "1.1"}, {}, {}, False) for h in ("lab1", "web1"))
    wave = WaveOutcome(
        "p1",
        0,
        Path("/nonexistent"),
        hosts,
        posture_pre={"lab1": doc("lab1", marker=True), "web1": doc("web1", marker=False)},
        posture_post={"lab1": doc("lab1", marker=True), "web1": doc("web1", marker=False)},
        prescan={},
    )
    return RolloutResult("p1", "done", (wave,), None)


def test_rollout_json_labels_each_host_and_lists_the_simulated_ones():
    out = json.loads(json.dumps(result_document(_result())))
    assert out["selinux_simulated"] == ["lab1"]
    assert out["waves"][0]["selinux"] == {
        "lab1": {"mode": "enforcing", "config_mode": None, "simulated": True},
        "web1": {"mode": "enforcing", "config_mode": None, "simulated": False},
    }


def test_rollout_summary_shows_the_label(capsys):
    _summary(_result())
    out = capsys.readouterr().out
    assert out.startswith("SELinux simulated on 1 host(s) (lab1): SELinux there is simulated")
    assert "enforcing (simulated)" in out
