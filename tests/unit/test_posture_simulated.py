"""The simulated-SELinux marker (/etc/selinux/SIMULATED) as data read from the host: probed, parsed into
`SelinuxState.simulated`, and reported by the drift gate (never guessed from "is this the lab")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from posture_helpers import document, recorded_config, recorded_getenforce, recorded_sestatus

from patchbrain.lab import shim
from patchbrain.posture import diff, gate, selinux, snapshot
from patchbrain.verify import commands

ROOT = Path(__file__).resolve().parents[2]


def probes(*, marker: bool, mode: str = "enforcing") -> dict[str, str]:
    out = {
        "getenforce": recorded_getenforce(mode),
        "sestatus": recorded_sestatus(mode),
        "selinux_config": recorded_config("enforcing"),
    }
    if marker:
        out["selinux_simulated"] = shim.MARKER_TEXT
    return out


def doc(*, marker: bool, mode: str = "enforcing", host: str = "lab1") -> dict:
    return document(host, **probes(marker=marker, mode=mode))


def test_the_marker_is_one_more_selinux_file_of_the_role_and_the_verifier():
    spec = yaml.safe_load((ROOT / "roles/posture/vars/main.yml").read_text())
    files = {f["name"]: f["path"] for f in spec["__posture_selinux_files"]}
    assert files["selinux_simulated"] == shim.MARKER == selinux.SIMULATED_MARKER
    assert dict(commands.FILES)["selinux_simulated"] == shim.MARKER
    assert commands.probe_line("selinux_simulated").endswith(shim.MARKER)


def test_the_probe_script_reads_the_marker_in_the_same_single_command(tmp_path):
    marker = tmp_path / "SIMULATED"
    marker.write_text(shim.MARKER_TEXT)
    spec = {
        "commands": [],
        "files": [
            {"name": "selinux_simulated", "path": str(marker)},
            {"name": "absent", "path": str(tmp_path / "nope")},
        ],
    }
    script = ROOT / "roles/posture/files/posture_probe.py"
    out = subprocess.run(
        [sys.executable, str(script), json.dumps(spec)], capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout)
    assert result["selinux_simulated"] == {
        "rc": 0,
        "stdout": shim.MARKER_TEXT,
        "stderr": "",
        "missing": False,
    }
    assert result["absent"]["missing"] is True


def test_marker_present_means_simulated_absent_or_old_documents_mean_not():
    s = snapshot.parse_document(doc(marker=True)).selinux
    assert s is not None and s.simulated and s.runtime_mode == "enforcing"
    assert "selinux_simulated" in snapshot.parse_document(doc(marker=True)).sources
    # a document from before the marker was probed, and one where the file is absent
    old = snapshot.parse_document(doc(marker=False)).selinux
    assert old is not None and old.simulated is False
    absent = doc(marker=False)
    absent["probes"]["selinux_simulated"] = {
        "rc": None,
        "stdout": "",
        "stderr": "File not found: /etc/selinux/SIMULATED",
        "missing": True,
    }
    parsed = snapshot.parse_document(absent).selinux
    assert parsed is not None and parsed.simulated is False


def test_parse_selinux_and_the_report_label_read_only_the_selinux_part():
    d = doc(marker=True)
    d["probes"]["nft_ruleset"] = {"rc": 0, "stdout": "{not json", "stderr": "", "missing": False}
    se = snapshot.parse_selinux(d)
    assert se == snapshot.parse_document(doc(marker=True)).selinux
    assert snapshot.selinux_label(d) == {"mode": "enforcing", "config_mode": "enforcing", "simulated": True}
    assert snapshot.selinux_label(doc(marker=False))["simulated"] is False
    bad = snapshot.selinux_label({"schema": 99})
    assert bad["simulated"] is None and "schema" in bad["error"]


def test_a_change_on_a_simulated_host_says_simulated():
    changes = diff.diff(
        snapshot.parse_document(doc(marker=True)),
        snapshot.parse_document(doc(marker=True, mode="permissive")),
    )
    (mode,) = [c for c in changes if c.kind == "selinux.runtime_mode"]
    assert mode.effect == "weakens"
    assert mode.reason == "SELinux runtime mode changed enforcing -> permissive (simulated SELinux)"
    # the same change on a host without the marker is not labelled
    real = diff.diff(
        snapshot.parse_document(doc(marker=False)),
        snapshot.parse_document(doc(marker=False, mode="permissive")),
    )
    assert all("simulated" not in c.reason for c in real)


def test_removing_the_marker_never_makes_anything_safer():
    """Removed while SELinux still claims enforcing: one `unknown` change that blocks by default, not a
    vanished tool, not a strengthening."""
    report = gate.compare({"lab1": doc(marker=True)}, {"lab1": doc(marker=False)})
    (change,) = report.changes
    assert (change.kind, change.effect, change.before, change.after) == (
        "selinux.simulated",
        "unknown",
        "simulated",
        "unmarked",
    )
    assert "/etc/selinux/SIMULATED was removed" in change.reason
    assert not report.ok and report.blocking == (change,)
    assert report.simulated == ("lab1",)


def test_a_marker_that_appears_is_unknown_too():
    report = gate.compare({"web1": doc(marker=False)}, {"web1": doc(marker=True)})
    (change,) = report.changes
    assert change.effect == "unknown" and "/etc/selinux/SIMULATED appeared" in change.reason
    assert not report.ok


def test_no_change_on_a_simulated_host_gives_nothing_and_is_listed_simulated():
    report = gate.compare(
        {"lab1": doc(marker=True), "web1": doc(marker=False)},
        {
            "lab1": doc(marker=True),
            "web1": doc(marker=False),
        },
    )
    assert report.ok and report.changes == ()
    assert report.simulated == ("lab1",)
