"""nft JSON parsing and classification over rulesets recorded from real `nft -j list ruleset` output."""

from __future__ import annotations

import json

import pytest
from posture_helpers import FIX, fixture

from patchbrain.errors import BadInput
from patchbrain.posture import diff, nft
from patchbrain.posture.models import Ruleset


def ruleset(name: str) -> Ruleset:
    return Ruleset(nft.parse_ruleset(fixture(f"nft/{name}.json"), host="web1"))


def test_base_ruleset_parses_into_the_model():
    (table,) = ruleset("base").tables
    assert (table.family, table.name, table.unsupported) == ("inet", "filter", None)
    chain = table.chain("input")
    assert chain is not None and chain.hook == "input" and chain.policy == "drop"
    texts = [r.text for r in chain.rules]
    assert "tcp dport 22 accept" in texts
    assert "ip saddr 10.0.0.0/8 tcp dport { 80, 443, 8000-8100 } accept" in texts
    assert "ip saddr 192.0.2.0/24 tcp dport 9100 accept" in texts  # named set resolved
    assert all(r.unsupported is None for r in chain.rules)
    assert [r.comment for r in chain.rules if r.comment] == ["ssh", "quarantined lab"]


def test_empty_ruleset_has_no_tables():
    assert ruleset("empty").tables == ()


def test_every_source_file_was_recorded():
    for src in (FIX / "nft").glob("*.nft"):
        assert src.with_suffix(".json").exists(), f"run scripts/record-posture-fixtures.py for {src.name}"


# (variant, expected (effect, kind) pairs that must appear, text the reasons must name)
WEAKENING = [
    ("open_port", {("weakens", "firewall.admits")}, "tcp dport 8080 accept"),
    ("accept_all", {("weakens", "firewall.admits")}, "rule `accept`"),
    ("input_policy_accept", {("weakens", "firewall.policy")}, "policy changed drop -> accept"),
    ("output_policy_accept", {("weakens", "firewall.policy")}, "output chain nft inet filter output"),
    ("output_exfil_rule", {("weakens", "firewall.admits")}, "ip daddr 203.0.113.0/24 tcp dport 4444 accept"),
    ("forward_policy_accept", {("weakens", "firewall.policy")}, "forward path now accepts"),
    ("new_source", {("weakens", "firewall.admits")}, "ip saddr 198.51.100.0/24 accept"),
    ("wide_range", {("weakens", "firewall.admits")}, "dport 1024-65535"),
    ("drop_removed", {("weakens", "firewall.rule_removed")}, "ip saddr 10.66.0.0/16 drop"),
    ("set_element_added", {("weakens", "firewall.admits")}, "198.51.100.7"),
    ("iif_wildcard", {("weakens", "firewall.admits")}, "iifname eth*"),
    ("input_flushed", {("weakens", "firewall.chain_flushed")}, "was flushed"),
    ("input_deleted", {("weakens", "firewall.chain_deleted")}, "chain nft inet filter input was deleted"),
    ("empty", {("weakens", "firewall.table_deleted")}, "table nft:inet filter was deleted"),
    ("jump_chain", {("weakens", "firewall.admits")}, "nft inet filter extra"),
]


@pytest.mark.parametrize(("variant", "kinds", "named"), WEAKENING, ids=[w[0] for w in WEAKENING])
def test_every_weakening_kind_is_caught_with_its_rule_named(variant, kinds, named):
    changes = diff.diff_ruleset("web1", ruleset("base"), ruleset(variant))
    found = {(c.effect, c.kind) for c in changes}
    assert kinds <= found, found
    assert any(named in c.reason for c in changes if c.effect == "weakens"), [c.reason for c in changes]
    assert not any(c.effect == "strengthens" for c in changes)


def test_open_port_admits_exactly_that_port():
    changes = diff.diff_ruleset("web1", ruleset("base"), ruleset("open_port"))
    (admits,) = [c for c in changes if c.kind == "firewall.admits"]
    assert admits.admitted == (("tcp", 8080, 8080),)
    assert "input path" in admits.reason and "policy drop of chain nft inet filter input" in admits.reason


def test_reordering_that_keeps_verdicts_is_neutral():
    changes = diff.diff_ruleset("web1", ruleset("base"), ruleset("reordered"))
    assert [(c.effect, c.kind) for c in changes] == [("neutral", "firewall.reordered")]


def test_identical_rulesets_give_no_change():
    assert diff.diff_ruleset("web1", ruleset("base"), ruleset("base")) == []


def test_strengthening_is_reported_and_never_weakens():
    changes = diff.diff_ruleset("web1", ruleset("base"), ruleset("strengthened"))
    assert changes and {c.effect for c in changes} == {"strengthens"}
    assert any("203.0.113.5" in c.reason for c in changes)
    assert any("fd00::/8" in c.reason for c in changes)


def test_reverse_of_a_weakening_is_a_strengthening():
    changes = diff.diff_ruleset("web1", ruleset("open_port"), ruleset("base"))
    assert {c.effect for c in changes} == {"strengthens"}


def test_rule_outside_the_model_makes_the_path_unknown_never_safe():
    changes = diff.diff_ruleset("web1", ruleset("base"), ruleset("outside_model"))
    assert [(c.effect, c.kind) for c in changes] == [("unknown", "firewall.outside_model")]
    assert "meta mark" in changes[0].reason


def test_unknown_schema_version_is_refused():
    doc = json.loads(fixture("nft/base.json"))
    doc["nftables"][0]["metainfo"]["json_schema_version"] = 2
    with pytest.raises(BadInput) as exc:
        nft.parse_ruleset(json.dumps(doc), host="db7")
    msg = str(exc.value)
    assert "db7" in msg and "nft -j list ruleset" in msg and "json_schema_version" in msg


def test_missing_metainfo_is_refused():
    doc = json.loads(fixture("nft/base.json"))
    doc["nftables"] = doc["nftables"][1:]
    with pytest.raises(BadInput, match="metainfo"):
        nft.parse_ruleset(json.dumps(doc), host="db7")


@pytest.mark.parametrize(
    "payload",
    [
        fixture("nft/base.json")[:-200],  # truncated
        "",
        b"\x7fELF\x02\x01\x01\x00\xff\xfe\x00garbage",
        "[]",
        '{"nftables": {}}',
    ],
    ids=["truncated", "empty", "binary", "list", "wrong-type"],
)
def test_bad_input_names_the_host_and_source(payload):
    with pytest.raises(BadInput) as exc:
        nft.parse_ruleset(payload, host="db7")
    assert "db7: nft -j list ruleset" in str(exc.value)


# The lab's own base ruleset (patchbrain/lab/host.py) and what three labdemo variants do to it.
LAB = [
    ("lab_accept_all", "firewall.admits", "rule `accept`"),
    ("lab_open_port", "firewall.admits", "tcp dport 4444 accept"),
    (
        "lab_open_output",
        "firewall.policy",
        "output chain nft inet filter output policy changed drop -> accept",
    ),
]


def test_lab_base_uses_iif_and_oif_inside_the_model():
    (table,) = ruleset("lab_base").tables
    texts = [r.text for c in table.chains for r in c.rules]
    assert "iifname lo accept" in texts and "oifname lo accept" in texts
    assert all(r.unsupported is None for c in table.chains for r in c.rules)


@pytest.mark.parametrize(("variant", "kind", "named"), LAB, ids=[x[0] for x in LAB])
def test_lab_variants_weaken(variant, kind, named):
    changes = diff.diff_ruleset("h01", ruleset("lab_base"), ruleset(variant))
    assert any(c.kind == kind and c.effect == "weakens" and named in c.reason for c in changes), [
        (c.kind, c.reason) for c in changes
    ]
    assert not any(c.effect == "unknown" for c in changes)


@pytest.mark.parametrize(
    ("before", "after"),
    [("netdev_drop", "netdev_open"), ("inet_ingress", "inet_ingress_open")],
    ids=["netdev-table", "inet-ingress-chain"],
)
def test_drop_removed_outside_the_paths_is_unknown_never_safe(before, after):
    changes = diff.diff_ruleset("h", ruleset(before), ruleset(after))
    effects = {c.effect for c in changes}
    assert "unknown" in effects and effects <= {"unknown", "weakens"}, [(c.effect, c.reason) for c in changes]
