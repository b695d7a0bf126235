"""Minimal plans: canaries first, exact versions, and a plan file re-validated in full on load."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from pathlib import Path

import pytest
import yaml

from patchbrain.errors import BadInput
from patchbrain.executor.rollout import decode_prescan, host_result
from patchbrain.models import FixClaim, Host, PendingUpdate
from patchbrain.plans import (
    PlanChanged,
    PlannedHost,
    PlannedPackage,
    canonical_json,
    dump_plan,
    load_plan,
    make_plan,
    parse_plan,
    plan_content,
)

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)


def _pending(n):
    mgrs = ("apt", "dnf", "zypper")
    out = []
    for i in range(1, n + 1):
        mgr = mgrs[(i - 1) % 3]
        out.append(
            PendingUpdate(
                f"h{i:02d}",
                "labdemo",
                "1.0" if mgr == "apt" else "1.0-1",
                "1.1" if mgr == "apt" else "1.1-1",
                mgr,
                ("CVE-2019-14287",),
            )
        )
    return out


def test_canaries_cover_each_group_never_marked_false_ones_then_by_criticality():
    hosts = [
        Host("h01", "a", canary=False, criticality=1),
        Host("h02", "a", criticality=5),
        Host("h03", "a", canary=True, criticality=4),
        Host("h04", "a", criticality=2),
        Host("h05", "a", criticality=2, exposure=1),
        Host("h06", "a"),
    ]
    plan = make_plan(_pending(6), inventory="inv", hosts=hosts, spec="1,2,100%", now=NOW)
    # groups: apt (h01, h04), dnf (h02, h05), zypper (h03, h06); h01 may never be a canary
    assert plan.waves[0] == ("h04", "h05", "h03")
    assert plan.schedule[0].kind == "canary" and plan.schedule[0].max_failures == 0
    assert sorted(h for w in plan.waves[1:] for h in w) == ["h01", "h02", "h06"]
    [pkg] = plan.hosts["h02"].packages
    assert (pkg.name, pkg.version, pkg.cves) == ("labdemo", "1.1-1", ("CVE-2019-14287",))
    assert len(plan.plan_id) == 64 and plan.ranking.startswith("fallback")


def test_round_trip_through_yaml(tmp_path):
    plan = make_plan(_pending(4), inventory="inv", spec="1,100%", reboot_ok=False, now=NOW)
    path = tmp_path / "plan.yaml"
    path.write_text(dump_plan(plan))
    again = load_plan(path)
    assert again == plan
    assert again.file_sha256 == plan.file_sha256  # the file is exactly what dump_plan writes
    assert again.packages_by_host(["h02"]) == {"h02": [{"name": "labdemo", "version": "1.1-1"}]}


def test_the_plan_id_is_the_sha256_of_the_canonical_content(tmp_path):
    plan = make_plan(_pending(3), inventory="inv", spec="1,100%", now=NOW)
    assert plan.plan_id == hashlib.sha256(canonical_json(plan_content(plan)).encode()).hexdigest()
    # any change to what the plan does is another plan: loading the edited file is refused (exit 5)
    doc = yaml.safe_load(dump_plan(plan))
    doc["waves"][0][0]["packages"][0]["version"] = "1.2"
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(PlanChanged, match="changed after it was made"):
        load_plan(path)
    assert PlanChanged.exit_code == 5


def test_versions_stay_strings():
    plan = make_plan([PendingUpdate("h1", "xx", "1.0", "1.10", "apt")], inventory="", spec="1", now=NOW)
    doc = yaml.safe_load(dump_plan(plan))
    assert doc["waves"][0][0]["packages"][0]["version"] == "1.10"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["waves"][0][0]["packages"][0].update(name="{{ lookup('pipe','id') }}"), ".name"),
        (lambda d: d["waves"][0][0]["packages"][0].update(version="; touch /tmp/pwned"), ".version"),
        (lambda d: d["waves"][0][0]["packages"][0].update(version=1.1), ".version"),
        (lambda d: d["waves"][0][0].update(host="h1;id"), ".host"),
        (lambda d: d["waves"][0][0].update(pkg_mgr="pip"), ".pkg_mgr"),
        (lambda d: d["waves"][0][0]["packages"][0].update(cves=["CVE-1; id"]), ".cves"),
        (lambda d: d["waves"].append([dict(d["waves"][0][0])]), "appears twice"),
        (lambda d: d.update(plan_id="../../etc"), "plan_id"),
        (lambda d: d["waves"][0][0]["packages"][0].update(risk=101), ".risk"),
        (lambda d: d["waves"][0][0]["packages"][0].update(explanation=["x"]), ".explanation"),
        (lambda d: d["schedule"][0].update(max_failures=-1), "max_failures"),
        (lambda d: d.update(author="me"), "author"),
        (lambda d: d.update(schema="other"), "schema"),
        (lambda d: d.update(reboot_ok="yes"), "reboot_ok"),
    ],
)
def test_hostile_or_broken_plans_name_the_field(mutate, field):
    doc = yaml.safe_load(dump_plan(make_plan(_pending(1), inventory="", spec="1", now=NOW)))
    mutate(doc)
    with pytest.raises(BadInput, match=r"plan\.yaml") as exc:
        parse_plan(doc, source="plan.yaml")
    assert field in str(exc.value)


def test_host_result_judges_exact_versions():
    planned = PlannedHost("h1", "dnf", (PlannedPackage("labdemo", "1.1-1"),))
    doc = {"before": "labdemo\t0:1.0-1\tii", "after": "labdemo\t0:1.1-1\tii", "reboot_required": False}
    assert host_result(planned, doc).state == "patched"
    assert host_result(planned, {**doc, "after": "labdemo\t0:1.2-1\tii"}).state == "mismatch"
    assert host_result(planned, {**doc, "before": doc["after"]}).state == "unchanged"
    assert host_result(planned, {**doc, "after": ""}).message == "labdemo: wanted 1.1-1, found nothing"
    assert host_result(planned, None).state == "mismatch"
    deb = PlannedHost("h2", "apt", (PlannedPackage("labdemo", "1.1"),))
    assert host_result(deb, {"before": "labdemo\t1.0\tii ", "after": "labdemo\t1.1\tii "}).state == "patched"
    # a package dpkg knows but that is not installed ("un") does not count
    assert host_result(deb, {"before": "", "after": "labdemo\t1.1\tun "}).state == "mismatch"


def test_decode_prescan_keeps_only_well_formed_lines():
    text = "labdemo postinst IyEvYmluL3NoCmVjaG8gaGkK\nlabdemo bad!name eA==\nlabdemo x notbase64!!\n"
    assert decode_prescan(text) == {"labdemo": {"postinst": "#!/bin/sh\necho hi\n"}}


_CHANGELOG = FixClaim("CVE-2023-38545", "fixed", "changelog", "changelog entry 7.88.1-10+deb12u3")
_OSV_NO = FixClaim("CVE-2023-38545", "not-fixed", "osv:DSA-5523-1", "7.88.1-10+deb12u3 is still affected")
_OSV_YES = FixClaim("CVE-2023-38546", "fixed", "osv:DSA-5523-1", "fixed in 7.88.1-10+deb12u3")


def _claimed(claims):
    update = PendingUpdate(
        "web1", "curl", "7.88.1-10+deb12u2", "7.88.1-10+deb12u3", "apt", ("CVE-2023-38545",)
    )
    return make_plan([dataclasses.replace(update, claims=claims)], inventory="", spec="1", now=NOW)


def test_each_cve_in_a_plan_carries_its_sources_and_disputes(tmp_path):
    plan = _claimed((_CHANGELOG, _OSV_NO, _OSV_YES))
    [pkg] = plan.hosts["web1"].packages
    assert pkg.cves == ("CVE-2023-38545",)  # what ranking used, unchanged
    assert pkg.disputed_cves == ("CVE-2023-38545",)
    assert pkg.fix_summary() == [
        "CVE-2023-38545 DISPUTED (fixed: changelog; not fixed: osv:DSA-5523-1)",
        "CVE-2023-38546 (osv:DSA-5523-1)",
    ]
    doc = yaml.safe_load(dump_plan(plan))
    [fix45, fix46] = doc["waves"][0][0]["packages"][0]["fixes"]
    assert (fix45["cve"], fix45["disputed"], fix46["disputed"]) == ("CVE-2023-38545", True, False)
    assert [(c["source"], c["says"]) for c in fix45["claims"]] == [
        ("changelog", "fixed"),
        ("osv:DSA-5523-1", "not-fixed"),
    ]
    path = tmp_path / "plan.yaml"
    path.write_text(dump_plan(plan))
    assert load_plan(path) == plan
    # The order claims arrive in does not change the plan (its id is a hash of the content).
    assert _claimed((_OSV_YES, _OSV_NO, _CHANGELOG, _OSV_NO)).plan_id == plan.plan_id
    # A dispute cannot be edited away, nor a claim dropped.
    fix45["disputed"] = False
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(BadInput, match=r"fixes\[0\]\.disputed': does not match its claims"):
        load_plan(path)
    fix45["disputed"] = True
    fix45["claims"].pop()
    fix45["disputed"] = False
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(PlanChanged):
        load_plan(path)


def test_a_plan_made_before_claims_were_kept_still_loads():
    """tests/fixtures/plans/before-claims.yaml was written by the code before this change: same id, and a
    plan without claims is still exactly that file."""
    path = Path(__file__).parents[1] / "fixtures" / "plans" / "before-claims.yaml"
    plan = load_plan(path)
    assert plan.plan_id == "af39fd2d1e9c805f830666d6619d0127ae14fda4cd761257e1a19d8cd1cb4926"
    assert plan.hosts["h01"].packages[0].fix_summary() == ["CVE-2019-14287"]
    assert dump_plan(plan) == path.read_text()


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda f: f.update(cve="CVE-1; id"), "fixes[0].cve"),
        (lambda f: f.update(claims=[]), "fixes[0].claims"),
        (lambda f: f.pop("disputed"), "fixes[0].disputed"),
        (lambda f: f["claims"][0].update(says="maybe"), "fixes[0].claims[0].says"),
        (lambda f: f["claims"][1].update(source=["x"]), "fixes[0].claims[1].source"),
        (lambda f: f["claims"][0].update(detail="x" * 3000), "fixes[0].claims[0].detail"),
    ],
)
def test_broken_fixes_name_the_field(mutate, field):
    doc = yaml.safe_load(dump_plan(_claimed((_CHANGELOG, _OSV_NO))))
    mutate(doc["waves"][0][0]["packages"][0]["fixes"][0])
    with pytest.raises(BadInput, match=r"plan\.yaml") as exc:
        parse_plan(doc, source="plan.yaml")
    assert f"packages[0].{field}" in str(exc.value)


def test_a_plan_with_an_overlong_claim_detail_still_loads(tmp_path):
    long = dataclasses.replace(_OSV_YES, detail="from /feeds/" + "x" * 5000)
    plan = _claimed((_CHANGELOG, long))
    path = tmp_path / "plan.yaml"
    path.write_text(dump_plan(plan))
    assert load_plan(path) == plan
