"""discover / plan / rollout / status on the command line, without hosts: inputs, exit codes, clean JSON.

The discovery is the recorded lab one (tests/fixtures/discovery/lab-discover.json) put in the journal.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from patchbrain import cli
from patchbrain.executor.discovery import parse_run_data
from patchbrain.journal import Journal
from patchbrain.store import Store

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "discovery" / "lab-discover.json"
INVENTORY = Path(__file__).resolve().parents[2] / "inventory" / "example-small.ini"


@pytest.fixture
def discovered(pb_home):
    found = parse_run_data({"patchbrain_facts": json.loads(FIXTURE.read_text())})
    Journal(Store()).add_discovery(
        inventory="/nonexistent/inventory.yml",
        artifacts="a",
        document={"hosts": [dataclasses.asdict(d) for d in found], "problems": {}},
    )
    return pb_home


def test_plan_from_the_latest_discovery(discovered, capsys, tmp_path):
    out = tmp_path / "plan.yaml"
    assert cli.main(["plan", "--waves", "1,100%", "--out", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["file"] == str(out)
    # apt, dnf and zypper hosts: three (OS, package manager, package set) groups, so the canary takes all
    assert [[h["host"] for h in w] for w in doc["waves"]] == [["h01", "h02", "h03"]]
    plan = yaml.safe_load(out.read_text())
    [pkg] = plan["waves"][0][1]["packages"]
    assert (pkg["name"], pkg["version"], pkg["cves"]) == ("labdemo", "1.1-1", ["CVE-2019-14287"])
    assert pkg["explanation"] and 0 < pkg["risk"] <= 100


def test_plan_errors(pb_home, discovered, capsys):
    assert cli.main(["plan", "--waves", "1,10%"]) == 2
    assert "--waves" in capsys.readouterr().err
    assert cli.main(["plan", "--package", "nothere"]) == 2


def test_plan_needs_a_discovery(pb_home, capsys):
    assert cli.main(["plan"]) == 2
    assert "patchbrain discover" in capsys.readouterr().err


def test_status_without_rollouts(pb_home, capsys):
    assert cli.main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"plans": []}
    assert cli.main(["status", "nope"]) == 2


def _plan_doc(host: str, version: str) -> dict:
    from patchbrain.models import PendingUpdate
    from patchbrain.plans import make_plan, plan_document

    plan = make_plan(
        [PendingUpdate(host, "labdemo", "1.0", version, "apt")], inventory=str(INVENTORY), spec="1"
    )
    return plan_document(plan)


def test_rollout_refuses_hostile_or_unknown_before_running(pb_home, capsys, tmp_path):
    plan = _plan_doc("app-01", "1.1")
    plan["waves"][0][0]["packages"][0]["version"] = "{{ lookup('pipe','id') }}"
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(plan))
    assert cli.main(["rollout", str(path)]) == 2
    assert "waves[0][0].packages[0].version" in capsys.readouterr().err
    path.write_text(yaml.safe_dump(_plan_doc("not-in-inventory", "1.1")))
    assert cli.main(["rollout", str(path)]) == 2
    assert "not-in-inventory" in capsys.readouterr().err
    assert not (pb_home / "artifacts").exists()  # nothing ran


def test_rollout_refuses_an_unapproved_plan_with_exit_5(pb_home, capsys, tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(_plan_doc("app-01", "1.1"), sort_keys=False))
    assert cli.main(["rollout", str(path), "-i", str(INVENTORY)]) == 5
    err = capsys.readouterr().err
    assert "no signed author" in err
    assert not (pb_home / "artifacts").exists()


def test_discover_refuses_a_bad_inventory_variable(pb_home, capsys, tmp_path):
    inv = tmp_path / "inv.ini"
    inv.write_text("h1 ansible_host=192.0.2.1 patchbrain_pkg_mgr=\"{{ lookup('pipe','id') }}\"\n")
    assert cli.main(["discover", "-i", str(inv)]) == 2
    assert "patchbrain_pkg_mgr" in capsys.readouterr().err
    assert not (pb_home / "artifacts").exists()
