"""firewalld and ufw (documented formats): parsing and classification of every weakening kind."""

from __future__ import annotations

import pytest
from posture_helpers import document, fixture

from patchbrain.errors import BadInput
from patchbrain.posture import diff, firewalld, snapshot, ufw


def fw(zones: str = "base", state: str = "state_running"):
    return snapshot.parse_document(
        document(
            "rh2",
            firewalld_state=fixture(f"firewalld/{state}.txt"),
            firewalld_zones=fixture(f"firewalld/{zones}.txt"),
        )
    )


def test_zones_parse():
    zones = {z.name: z for z in firewalld.parse_zones(fixture("firewalld/base.txt"), host="rh2")}
    assert set(zones) == {"block", "drop", "public", "trusted"}
    pub = zones["public"]
    assert pub.active and pub.target == "default" and pub.interfaces == ("eth0",)
    assert pub.services == ("cockpit", "dhcpv6-client", "ssh")
    assert pub.rich_rules == ('rule family="ipv4" source address="203.0.113.0/24" drop',)
    assert pub.icmp_blocks == ("timestamp-request",) and not pub.masquerade
    assert zones["block"].target == "%%REJECT%%"


FIREWALLD = [
    ("target_accept", "firewalld.target", "target changed default -> ACCEPT"),
    ("service_added", "firewalld.services", "now admits service http"),
    ("port_added", "firewalld.ports", "now admits port 8080/tcp"),
    ("source_added", "firewalld.sources", "now admits source 198.51.100.0/24"),
    ("masquerade_on", "firewalld.masquerade", "masquerade turned on"),
    ("rich_accept_added", "firewalld.rich_rule", 'port="3306"'),
    ("rich_drop_removed", "firewalld.rich_rule", "rich rule removed"),
    ("icmp_block_removed", "firewalld.icmp_blocks", "no longer blocks icmp timestamp-request"),
]


@pytest.mark.parametrize(("variant", "kind", "named"), FIREWALLD, ids=[f[0] for f in FIREWALLD])
def test_firewalld_weakenings(variant, kind, named):
    changes = diff.diff(fw(), fw(variant))
    assert [(c.effect, c.kind) for c in changes] == [("weakens", kind)]
    assert named in changes[0].reason and "zone public" in changes[0].reason


def test_firewalld_stopped_is_weakening():
    (change,) = diff.diff(fw(), fw(state="state_not_running"))
    assert (change.effect, change.kind) == ("weakens", "firewalld.state")


def test_firewalld_service_removed_strengthens_and_reorder_is_nothing():
    assert {c.effect for c in diff.diff(fw(), fw("service_removed"))} == {"strengthens"}
    assert diff.diff(fw(), fw("reordered_services")) == []


def test_port_added_carries_the_port_for_allow_lists():
    (change,) = diff.diff(fw(), fw("port_added"))
    assert change.admitted == (("tcp", 8080, 8080),)


def u(name: str):
    return snapshot.parse_document(document("deb2", ufw_status=fixture(f"ufw/{name}.txt")))


def test_ufw_parses():
    state = ufw.parse_status(fixture("ufw/base.txt"), host="deb2")
    assert state.active and dict(state.defaults) == {
        "incoming": "deny",
        "outgoing": "allow",
        "routed": "disabled",
    }
    assert [r.text for r in state.rules][:4] == [
        "22/tcp ALLOW IN Anywhere",
        "80,443/tcp ALLOW IN 10.0.0.0/8",
        "23/tcp DENY IN Anywhere",
        "25/tcp REJECT OUT Anywhere",
    ]


UFW = [
    ("inactive", "ufw.state", "ufw disabled"),
    ("default_allow_incoming", "ufw.default", "default incoming policy changed deny -> allow"),
    ("default_allow_routed", "ufw.default", "default routed policy changed disabled -> allow"),
    ("rule_added", "ufw.rule", "rule added: 8080/tcp ALLOW IN Anywhere"),
    ("deny_removed", "ufw.rule", "rule removed: 23/tcp DENY IN Anywhere"),
    ("reject_out_removed", "ufw.rule", "rule removed: 25/tcp REJECT OUT Anywhere"),
]


@pytest.mark.parametrize(("variant", "kind", "named"), UFW, ids=[x[0] for x in UFW])
def test_ufw_weakenings(variant, kind, named):
    changes = diff.diff(u("base"), u(variant))
    assert [(c.effect, c.kind) for c in changes] == [("weakens", kind)]
    assert named in changes[0].reason


def test_ufw_deny_added_strengthens():
    assert [c.effect for c in diff.diff(u("base"), u("deny_added"))] == ["strengthens"]


def test_ufw_bad_input():
    with pytest.raises(BadInput, match="deb2: ufw status verbose"):
        ufw.parse_status("To  Action  From\n", host="deb2")


def test_firewalld_bad_input():
    with pytest.raises(BadInput, match="rh2: firewall-cmd --list-all-zones"):
        firewalld.parse_zones("public (active)\n  target default\n", host="rh2")
