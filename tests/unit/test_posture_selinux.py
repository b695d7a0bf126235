"""SELinux sources (documented formats) and how their changes are classified."""

from __future__ import annotations

import pytest
from posture_helpers import document, fixture

from patchbrain.errors import BadInput
from patchbrain.posture import diff, selinux, snapshot


def snap(**over: str):
    probes = {
        "getenforce": fixture("selinux/getenforce_enforcing.txt"),
        "sestatus": fixture("selinux/sestatus_enforcing.txt"),
        "selinux_config": fixture("selinux/config_enforcing.txt"),
        "getsebool": fixture("selinux/getsebool.txt"),
        "semanage_permissive": fixture("selinux/permissive.txt"),
        "semodule": fixture("selinux/semodule.txt"),
    }
    probes.update({k: fixture(f"selinux/{v}") for k, v in over.items()})
    return snapshot.parse_document(document("rh1", **probes))


def test_state_is_read_from_every_source():
    s = snap().selinux
    assert s is not None
    assert (s.runtime_mode, s.config_mode, s.policy_type, s.loaded_policy) == (
        "enforcing",
        "enforcing",
        "targeted",
        "targeted",
    )
    assert dict(s.booleans)["selinuxuser_execmod"] is True
    assert s.permissive_domains == ("sanlk_resetd_t", "systemd_hwdb_t")
    assert s.modules_hash and len(s.modules) == 7


CASES = [
    (
        {"getenforce": "getenforce_permissive.txt", "sestatus": "sestatus_permissive.txt"},
        "selinux.runtime_mode",
        "runtime mode changed enforcing -> permissive",
    ),
    (
        {"getenforce": "getenforce_disabled.txt", "sestatus": "sestatus_disabled.txt"},
        "selinux.runtime_mode",
        "enforcing -> disabled",
    ),
    (
        {"selinux_config": "config_permissive.txt"},
        "selinux.config_mode",
        "/etc/selinux/config) changed enforcing -> permissive",
    ),
    ({"selinux_config": "config_disabled.txt"}, "selinux.config_mode", "enforcing -> disabled"),
    ({"selinux_config": "config_minimum.txt"}, "selinux.policy_type", "targeted -> minimum"),
    ({"getsebool": "getsebool_httpd_on.txt"}, "selinux.boolean", "httpd_can_network_connect turned on"),
    (
        {"semanage_permissive": "permissive_httpd.txt"},
        "selinux.permissive_domain",
        "httpd_t became permissive",
    ),
]


@pytest.mark.parametrize(
    ("over", "kind", "named"), CASES, ids=[c[1] + "-" + str(i) for i, c in enumerate(CASES)]
)
def test_selinux_weakenings(over, kind, named):
    changes = diff.diff(snap(), snap(**over))
    match = [c for c in changes if c.kind == kind]
    assert match and all(c.effect == "weakens" for c in match)
    assert any(named in c.reason for c in match), [c.reason for c in match]


def test_back_to_enforcing_is_a_strengthening():
    changes = diff.diff(
        snap(getenforce="getenforce_permissive.txt", sestatus="sestatus_permissive.txt"), snap()
    )
    assert {c.effect for c in changes} == {"strengthens"}


def test_new_policy_module_is_unknown():
    (change,) = diff.diff(snap(), snap(semodule="semodule_labdemo.txt"))
    assert change.effect == "unknown" and "labdemo" in change.reason


def test_no_change_gives_nothing():
    assert diff.diff(snap(), snap()) == []


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


def test_management_tools_may_fail_only_when_selinux_is_disabled():
    probes = {
        "getenforce": fixture("selinux/getenforce_disabled.txt"),
        "sestatus": fixture("selinux/sestatus_disabled.txt"),
    }
    doc = document("deb1", **probes)
    doc["probes"]["getsebool"] = {"rc": 1, "stdout": "getsebool:  SELinux is disabled\n", "stderr": ""}
    doc["probes"]["semodule"] = {"rc": 1, "stdout": "", "stderr": "SELinux policy is not managed"}
    assert snapshot.parse_document(doc).selinux.runtime_mode == "disabled"
    doc["probes"]["getenforce"]["stdout"] = "Enforcing\n"
    doc["probes"]["sestatus"]["stdout"] = fixture("selinux/sestatus_enforcing.txt")
    with pytest.raises(BadInput) as exc:
        snapshot.parse_document(doc)
    assert "deb1: getsebool" in str(exc.value)
