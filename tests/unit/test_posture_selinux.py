"""SELinux posture: how every change is classified, over what the posture probe recorded on a real SELinux
guest (tests/fixtures/posture/selinux/recorded: Debian 12 kernel, Debian's `default` policy, each state made
for real by scripts/record-selinux-fixtures.py), plus RHEL-shaped output written from documented formats
where the Debian guest cannot produce it (the `targeted` policy, builtin permissive types)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from posture_helpers import SELINUX_RECORDED, document, fixture, recorded_document

from patchbrain.errors import BadInput
from patchbrain.posture import diff, gate, policy, selinux, snapshot


def rec(state: str):
    return snapshot.parse_document(recorded_document(state))


def test_the_recorded_states_are_the_ones_the_manifest_describes():
    manifest = json.loads((SELINUX_RECORDED / "manifest.json").read_text())
    on_disk = {p.name for p in SELINUX_RECORDED.iterdir() if p.is_dir()}
    assert on_disk == set(manifest["states"]) and "baseline" in on_disk
    assert manifest["guest"]["packages"]["selinux-policy-default"]
    probes = {p["name"] for p in manifest["probe_spec"]["commands"] + manifest["probe_spec"]["files"]}
    for state in on_disk:  # every state holds every SELinux probe of the role
        assert set(json.loads((SELINUX_RECORDED / state / "probes.json").read_text())) == probes


def test_recorded_baseline_is_read_from_every_source():
    doc = recorded_document("baseline")
    s = snapshot.parse_document(doc).selinux
    assert s is not None
    assert (s.runtime_mode, s.config_mode, s.policy_type, s.loaded_policy) == (
        "enforcing",
        "enforcing",
        "default",
        "default",
    )
    booleans = dict(s.booleans)
    assert len(booleans) > 200 and booleans["allow_execmem"] is False
    assert booleans["httpd_can_network_connect"] is False
    assert any(booleans.values())  # Debian's default policy ships some booleans on
    assert s.permissive_domains == ()  # `semanage permissive -l` printed nothing
    assert s.modules_hash and len(s.modules) > 300 and {"games", "apache", "ssh"} <= set(s.modules)
    assert doc["probes"]["selinux_enforce"]["stdout"].strip() == "1"


# state recorded on the guest -> the exact (kind, effect) set against the baseline, and a reason it must give
RECORDED = [
    (
        "runtime_permissive",
        {("selinux.runtime_mode", "weakens")},
        "SELinux runtime mode changed enforcing -> permissive",
    ),
    (
        "config_permissive",
        {("selinux.config_mode", "weakens")},
        "SELinux configured mode (/etc/selinux/config) changed enforcing -> permissive",
    ),
    (
        "config_disabled",
        {("selinux.config_mode", "weakens")},
        "SELinux configured mode (/etc/selinux/config) changed enforcing -> disabled",
    ),
    ("boolean_on", {("selinux.boolean", "weakens")}, "SELinux boolean allow_execmem turned on (was off)"),
    (
        "boolean_httpd_on",
        {("selinux.boolean", "weakens")},
        "SELinux boolean httpd_can_network_connect turned on (was off)",
    ),
    # `semanage permissive -a` also installs the policy module permissive_httpd_t: that module is the
    # permissive-domain change, not a separate unknown one
    (
        "permissive_domain",
        {("selinux.permissive_domain", "weakens")},
        "SELinux domain httpd_t became permissive",
    ),
    (
        "module_disabled",
        {("selinux.modules", "unknown")},
        "SELinux policy modules changed (added: none; removed: games)",
    ),
    (
        "module_added",
        {("selinux.modules", "unknown")},
        "SELinux policy modules changed (added: labdemo; removed: none)",
    ),
    (
        "runtime_disabled",
        {
            ("selinux.runtime_mode", "weakens"),
            ("selinux.config_mode", "weakens"),
            ("selinux.loaded_policy", "weakens"),
            # getsebool now fails ("SELinux is disabled") and /sys/fs/selinux/enforce is gone
            ("sources.vanished", "unknown"),
        },
        "SELinux runtime mode changed enforcing -> disabled",
    ),
]


@pytest.mark.parametrize(("state", "kinds", "reason"), RECORDED, ids=[c[0] for c in RECORDED])
def test_every_recorded_weakening_is_classified_with_its_reason(state, kinds, reason):
    changes = diff.diff(rec("baseline"), rec(state))
    assert {(c.kind, c.effect) for c in changes} == kinds, [c.reason for c in changes]
    assert any(c.reason.startswith(reason) for c in changes), [c.reason for c in changes]
    report = gate.compare({"g": recorded_document("baseline", "g")}, {"g": recorded_document(state, "g")})
    assert not report.ok and {c.kind for c in report.blocking} == {k for k, _ in kinds}


def test_the_recorded_reboot_into_disabled_names_what_vanished():
    changes = diff.diff(rec("baseline"), rec("runtime_disabled"))
    assert "SELinux loaded policy changed default -> none" in {c.reason.split(":")[0] for c in changes}
    assert sorted(c.subject for c in changes if c.kind == "sources.vanished") == [
        "getsebool",
        "selinux_enforce",
    ]


def test_recorded_policy_type_change_breaks_the_management_tools_and_is_refused():
    """SELINUXTYPE=mls with no mls policy installed: semanage fails and semodule finds an empty store (all
    recorded). The gate refuses the snapshot as bad input naming the host and the probe, never "no drift"."""
    doc = recorded_document("config_policy_type")
    assert doc["probes"]["semanage_permissive"]["rc"] == 1
    assert selinux.parse_modules(doc["probes"]["semodule"]["stdout"], host="g")[1] == ()  # "No modules."
    with pytest.raises(BadInput, match="selinux_guest: semanage_permissive"):
        gate.compare({"selinux_guest": recorded_document("baseline")}, {"selinux_guest": doc})
    # The probes that answered, on both sides (as on a host without semanage and semodule): a weakening.
    before, after = recorded_document("baseline"), doc
    for d in (before, after):
        for name in ("semanage_permissive", "semodule"):
            d["probes"][name] = {"rc": 2, "stdout": "", "stderr": "", "missing": True}
    changes = diff.diff(snapshot.parse_document(before), snapshot.parse_document(after))
    # sestatus's "Loaded policy name" follows the config file too (recorded: it said mls)
    assert {(c.kind, c.effect) for c in changes} == {
        ("selinux.policy_type", "weakens"),
        ("selinux.loaded_policy", "weakens"),
    }
    assert any(
        c.reason.startswith("SELinux policy type (SELINUXTYPE) changed default -> mls") for c in changes
    )


def test_the_recorded_permissive_domain_module_is_part_of_the_domain_change():
    before, after = rec("baseline"), rec("permissive_domain")
    assert before.selinux is not None and after.selinux is not None
    added = set(after.selinux.modules) - set(before.selinux.modules)
    assert added == {"permissive_httpd_t"}  # what semanage installed
    assert [c.kind for c in diff.diff(before, after)] == ["selinux.permissive_domain"]
    # any other module change beside it is still unknown
    mods = dataclasses.replace(
        after.selinux, modules=(*after.selinux.modules, "labdemo"), modules_hash="x" * 64
    )
    other = dataclasses.replace(after, selinux=mods)
    (mod,) = [c for c in diff.diff(before, other) if c.kind == "selinux.modules"]
    assert mod.effect == "unknown" and "added: labdemo, permissive_httpd_t;" in mod.reason


@pytest.mark.parametrize(
    ("state", "effects"),
    [
        ("runtime_permissive", {"strengthens"}),
        ("config_disabled", {"strengthens"}),
        ("boolean_on", {"strengthens"}),
        ("permissive_domain", {"strengthens"}),  # its permissive_httpd_t module goes away with it
    ],
)
def test_undoing_a_recorded_weakening_is_a_strengthening(state, effects):
    assert {c.effect for c in diff.diff(rec(state), rec("baseline"))} == effects


def test_recorded_baseline_against_itself_and_the_restored_guest_is_no_change():
    assert diff.diff(rec("baseline"), rec("baseline")) == []
    # recorded after every change above was undone on the guest (setenforce, sed, setsebool, semanage, ...)
    assert diff.diff(rec("baseline"), rec("restored")) == []
    report = gate.compare(
        {"g": recorded_document("baseline", "g")}, {"g": recorded_document("restored", "g")}
    )
    assert report.ok and report.counts() == {"weakens": 0, "strengthens": 0, "neutral": 0, "unknown": 0}


def test_policy_allow_list_over_recorded_changes():
    pol = policy.parse(
        "version: 1\nallow:\n  - selinux_booleans: [httpd_can_network_connect]\n"
        "    permissive_domains: [httpd_t]\n",
        "drift.yml",
    )
    before = {"g": recorded_document("baseline", "g")}

    def after(state):
        return {"g": recorded_document(state, "g")}

    assert gate.compare(before, after("boolean_httpd_on"), policy=pol).ok
    assert not gate.compare(before, after("boolean_on"), policy=pol).ok  # allow_execmem is not listed
    # an allow-listed permissive domain passes, module and all
    assert gate.compare(before, after("permissive_domain"), policy=pol).ok
    assert not gate.compare(before, after("permissive_domain")).ok


def test_recorded_disabled_host_fails_its_management_tools_and_that_is_accepted():
    doc = recorded_document("runtime_disabled")
    assert doc["probes"]["getsebool"]["rc"] != 0  # real: "getsebool:  SELinux is disabled"
    s = snapshot.parse_document(doc).selinux
    assert s is not None and (s.runtime_mode, s.config_mode, s.loaded_policy) == (
        "disabled",
        "disabled",
        None,
    )
    # the same failure on a host that says it is enforcing is bad input, never "no drift"
    doc["probes"]["getenforce"]["stdout"] = recorded_document("baseline")["probes"]["getenforce"]["stdout"]
    doc["probes"]["sestatus"]["stdout"] = recorded_document("baseline")["probes"]["sestatus"]["stdout"]
    with pytest.raises(BadInput) as exc:
        snapshot.parse_document(doc)
    assert "selinux_guest: getsebool" in str(exc.value)


# -- RHEL-shaped output, written from documented formats (no RHEL-family host or image is reachable here) --


def rhel(**over: str):
    probes = {
        "getenforce": "Enforcing\n",
        "sestatus": fixture("selinux/documented/sestatus_enforcing.txt"),
        "selinux_config": fixture("selinux/documented/config_enforcing.txt"),
        "getsebool": fixture("selinux/documented/getsebool.txt"),
        "semanage_permissive": fixture("selinux/documented/permissive.txt"),
        "semodule": fixture("selinux/documented/semodule.txt"),
    }
    probes.update({k: fixture(f"selinux/documented/{v}") for k, v in over.items()})
    return snapshot.parse_document(document("rh1", **probes))


def test_rhel_targeted_state_is_read_from_documented_formats():
    s = rhel().selinux
    assert s is not None
    assert (s.runtime_mode, s.config_mode, s.policy_type, s.loaded_policy) == (
        "enforcing",
        "enforcing",
        "targeted",
        "targeted",
    )
    assert dict(s.booleans)["selinuxuser_execmod"] is True
    assert s.permissive_domains == ("sanlk_resetd_t", "systemd_hwdb_t")  # RHEL's builtin permissive types
    assert s.modules_hash and len(s.modules) == 7


def test_rhel_targeted_to_minimum_is_a_policy_type_weakening():
    (change,) = diff.diff(rhel(), rhel(selinux_config="config_minimum.txt"))
    assert (change.kind, change.effect) == ("selinux.policy_type", "weakens")
    assert "targeted -> minimum" in change.reason


@pytest.mark.parametrize(
    ("func", "text"),
    [
        (selinux.parse_getenforce, "Enforcingg\n"),
        (selinux.parse_getsebool, "httpd_can_network_connect = on\n"),
        (selinux.parse_config, "SELINUX=sometimes\n"),
        (selinux.parse_sestatus, "\x00\x01ELF"),
    ],
)
def test_bad_selinux_output_is_bad_input_naming_the_host(func, text):
    with pytest.raises(BadInput, match="rh1"):
        func(text, host="rh1")
