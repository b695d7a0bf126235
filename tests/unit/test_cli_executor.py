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


def _curl_host(docs, installed, candidate, changelog_cves):
    entry = "".join(f"  * Fix {c}.\n" for c in changelog_cves)
    return dict(
        docs["h01"],
        simulate=f"Inst libcurl4 [{installed}] ({candidate} Debian-Security:12/stable-security [amd64])\n",
        installed=f"libcurl4\t{installed}\tamd64\tii \n",
        changelogs={
            f"libcurl4={candidate}": f"curl ({candidate}) bookworm-security; urgency=high\n\n{entry}\n"
            " -- Security Team <team@security.debian.org>  Sat, 07 Oct 2023 09:00:00 +0000\n"
        },
    )


def test_plan_joins_osv_claims_and_shows_disputes(pb_home, capsys, tmp_path, monkeypatch):
    """Two Debian 12 hosts: on web1 a changelog claims a fix OSV says the candidate lacks (disputed); on
    web2 OSV agrees with the changelog and adds a CVE the changelog is silent on."""
    from patchbrain.feeds.cvestore import CveStore

    docs = json.loads(FIXTURE.read_text())
    facts = {
        "web1": _curl_host(docs, "7.88.1-10+deb12u2", "7.88.1-10+deb12u3", ["CVE-2023-38545"]),
        "web2": _curl_host(docs, "7.88.1-10+deb12u3", "7.88.1-10+deb12u4", ["CVE-2023-38545"]),
    }
    found = parse_run_data({"patchbrain_facts": facts})
    Journal(Store()).add_discovery(
        inventory="/nonexistent/inventory.yml",
        artifacts="a",
        document={"hosts": [dataclasses.asdict(d) for d in found], "problems": {}},
    )
    CveStore(Store()).load(Path(__file__).parents[1] / "fixtures" / "osv")
    out = tmp_path / "plan.yaml"
    assert cli.main(["plan", "--waves", "1,100%", "--out", str(out)]) == 0
    assert f"note: 1 disputed CVE claim(s): see `patchbrain plan show {out}`" in capsys.readouterr().out

    assert cli.main(["plan", "show", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    pkgs = {h["host"]: h["packages"][0] for w in doc["waves"] for h in w}
    assert pkgs["web1"]["cves"] == pkgs["web2"]["cves"] == ["CVE-2023-38545"]  # ranking's input unchanged

    def claims(pkg):
        return {
            f["cve"]: (f["disputed"], {(c["source"], c["says"]) for c in f["claims"]}) for f in pkg["fixes"]
        }

    assert claims(pkgs["web1"]) == {
        "CVE-2023-38545": (True, {("changelog", "fixed"), ("osv:DSA-5523-1", "not-fixed")})
    }
    assert claims(pkgs["web2"]) == {
        "CVE-2023-38545": (False, {("changelog", "fixed"), ("osv:DSA-5523-1", "fixed")}),
        "CVE-2023-38546": (False, {("osv:DSA-5523-1", "fixed")}),
    }

    monkeypatch.setenv("COLUMNS", "400")  # table cells unfolded
    assert cli.main(["plan", "show", str(out)]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "CVE-2023-38546 (osv:DSA-5523-1)" in text
    assert "CVE-2023-38545 (changelog, osv:DSA-5523-1)" in text
    assert (
        "disputed CVE-2023-38545 in libcurl4 7.88.1-10+deb12u3 on web1: changelog says fixed "
        "(changelog entry 7.88.1-10+deb12u3); osv:DSA-5523-1 says not-fixed" in text
    )


def test_plan_says_when_no_osv_advisories_are_loaded(discovered, capsys, tmp_path):
    assert cli.main(["plan", "--waves", "1,100%", "--out", str(tmp_path / "p.yaml")]) == 0
    assert "note: no OSV advisories loaded" in capsys.readouterr().out
