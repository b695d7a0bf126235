"""iptables-save parsing (nf_tables and legacy backends) over output recorded in scratch namespaces."""

from __future__ import annotations

import pytest
from posture_helpers import document, fixture

from patchbrain.errors import BadInput
from patchbrain.posture import diff, iptables, snapshot


def doc(name: str):
    return document(
        "app3",
        nft_ruleset=fixture(f"iptables/{name}.nft.json"),
        iptables_save=fixture(f"iptables/{name}.iptables-save"),
        ip6tables_save=fixture(f"iptables/{name}.ip6tables-save"),
        iptables_legacy_save=fixture(f"iptables/{name}.iptables-legacy-save"),
    )


def snap(name: str):
    return snapshot.parse_document(doc(name))


def test_nft_backend_rules_parse_with_user_chains():
    tables = iptables.parse_save(fixture("iptables/base.iptables-save"), host="app3")
    (filt,) = tables
    assert filt.source == "iptables-nft" and filt.family == "ip"
    inp = filt.chain("INPUT")
    assert inp is not None and inp.policy == "drop" and inp.hook == "input"
    texts = [r.text for r in inp.rules]
    assert "saddr 192.168.10.0/24 tcp dport { 80, 443, 8000-8100 } accept" in texts
    assert "saddr != 10.0.0.0/8 udp dport 53 accept" in texts
    assert "iifname eth* tcp dport 23 reject" in texts
    assert texts[-1] == "jump LOGDROP"
    assert all(r.unsupported is None for r in inp.rules)


def test_iptables_nft_tables_are_not_counted_twice():
    # nft -j shows the same tables with xt expressions; iptables-save's view replaces them
    s = snap("base")
    keys = [t.key for t in s.ruleset.tables]
    assert keys == sorted(set(keys))
    assert "nft:ip filter" not in keys and "iptables-nft:ip filter" in keys
    assert all(r.unsupported is None for t in s.ruleset.tables for c in t.chains for r in c.rules)


def test_same_rules_give_no_change():
    assert diff.diff(snap("base"), snap("base")) == []


def test_inserted_accept_is_weakening():
    changes = diff.diff(snap("base"), snap("open_port"))
    weak = [c for c in changes if c.effect == "weakens"]
    assert weak and all(c.kind == "firewall.admits" for c in weak)
    assert weak[0].admitted == (("tcp", 8080, 8080),)
    assert "tcp dport 8080 accept" in weak[0].reason


def test_user_chain_drop_removed_and_policy_accept():
    changes = diff.diff(snap("base"), snap("logdrop_gutted"))
    kinds = {(c.effect, c.kind) for c in changes}
    assert ("weakens", "firewall.policy") in kinds
    assert any(c.effect == "weakens" and "LOGDROP" in c.reason for c in changes)


def test_output_drop_removed_is_weakening_on_the_output_path():
    changes = diff.diff(snap("base"), snap("output_drop_removed"))
    weak = {c.kind: c for c in changes if c.effect == "weakens"}
    assert set(weak) == {"firewall.rule_removed", "firewall.chain_flushed"}
    assert "chain iptables-nft ip filter OUTPUT was flushed" in weak["firewall.chain_flushed"].reason
    weak = weak["firewall.rule_removed"]
    assert "output path" in weak.reason and "oifname eth0 tcp dport 25 drop" in weak.reason


def test_legacy_tables_are_kept_beside_nft_ones():
    s = snap("with_legacy")
    assert "iptables-legacy:ip filter" in [t.key for t in s.ruleset.tables]
    changes = diff.diff(s, snap("legacy_open"))
    (weak,) = [c for c in changes if c.effect == "weakens"]
    assert "iptables-legacy" in weak.reason and weak.admitted == (("tcp", 6000, 6100),)


def test_nat_change_is_unknown():
    changes = diff.diff(snap("base"), snap("nat_redirect"))
    assert any(c.effect == "unknown" for c in changes), changes


def test_truncated_save_output_is_bad_input():
    text = fixture("iptables/base.iptables-save")
    with pytest.raises(BadInput) as exc:
        iptables.parse_save(text[: text.index("COMMIT")], host="app3")
    assert "app3: iptables-save" in str(exc.value) and "COMMIT" in str(exc.value)


def test_binary_garbage_is_bad_input():
    with pytest.raises(BadInput, match="app3: iptables-save"):
        iptables.parse_save("\x00\x01\x02*filter", host="app3")


def test_unknown_match_module_is_outside_the_model():
    text = "*filter\n:INPUT DROP [0:0]\n-A INPUT -m recent --rcheck -j ACCEPT\nCOMMIT\n"
    (table,) = iptables.parse_save(text, host="h")
    chain = table.chain("INPUT")
    assert chain is not None and chain.rules[0].unsupported == "match module 'recent'"
