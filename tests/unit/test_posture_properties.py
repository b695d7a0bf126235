"""Property tests of the bounded model: the box evaluation agrees with a brute-force packet evaluator."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from patchbrain.posture import diff
from patchbrain.posture.fwtext import rule_text
from patchbrain.posture.models import Chain, Constraint, Field, Rule, Ruleset, Table, field_domain

PROTOS = (6, 17)
ADDRS = [
    (0x0A000000, 0x0AFFFFFF),
    (0x0A420000, 0x0A42FFFF),
    (0xC0000200, 0xC00002FF),
    (0x08080808, 0x08080808),
]


@st.composite
def rules(draw: st.DrawFn) -> Rule:
    constraints: list[Constraint] = [Constraint(Field.FAMILY, ((4, 4),))]
    if draw(st.booleans()):
        proto = draw(st.sampled_from(PROTOS))
        constraints.append(Constraint(Field.L4, ((proto, proto),)))
        if draw(st.booleans()):
            lo = draw(st.integers(0, 65535))
            hi = draw(st.integers(lo, min(65535, lo + draw(st.sampled_from([0, 3, 100, 40000])))))
            constraints.append(Constraint(Field.DPORT, ((lo, hi),), negate=draw(st.booleans())))
    if draw(st.booleans()):
        constraints.append(
            Constraint(Field.SADDR, (draw(st.sampled_from(ADDRS)),), negate=draw(st.booleans()))
        )
    verdict = draw(st.sampled_from(["accept", "drop", "reject"]))
    return Rule(tuple(constraints), verdict, rule_text(constraints[1:], verdict))


def ruleset_of(rule_list: list[Rule], policy: str = "drop") -> Ruleset:
    chain = Chain("input", tuple(rule_list), hook="input", policy=policy)  # type: ignore[arg-type]
    return Ruleset((Table("inet", "filter", (chain,)),))


def _points(rule_lists: list[list[Rule]], field: Field) -> list[int]:
    lo_dom, hi_dom = field_domain(field, 4)
    pts = {lo_dom, hi_dom}
    for c in (c for rl in rule_lists for r in rl for c in r.constraints if c.field is field):
        for lo, hi in c.values:
            pts.update(v for v in (lo - 1, lo, hi, hi + 1) if lo_dom <= v <= hi_dom)
    return sorted(pts)


def verdict(rule_list: list[Rule], policy: str, packet: dict[Field, int]) -> str:
    """First-match evaluation of one concrete packet, written independently of the box code."""
    for r in rule_list:
        if all(any(lo <= packet[c.field] <= hi for lo, hi in c.allowed(4)) for c in r.constraints):
            return "accept" if r.verdict == "accept" else "deny"
    return "accept" if policy == "accept" else "deny"


def brute_force(a: list[Rule], b: list[Rule]) -> set[str]:
    """'weakens' if a packet goes deny -> accept, 'strengthens' for accept -> deny (exhaustive grid)."""
    effects: set[str] = set()
    lists = [a, b]
    for l4, dport, saddr in itertools.product(
        [6, 17, 1], _points(lists, Field.DPORT), _points(lists, Field.SADDR)
    ):
        pkt = {Field.FAMILY: 4, Field.L4: l4, Field.DPORT: dport, Field.SADDR: saddr}
        va, vb = verdict(a, "drop", pkt), verdict(b, "drop", pkt)
        if va != vb:
            effects.add("weakens" if vb == "accept" else "strengthens")
    return effects


def model_effects(a: list[Rule], b: list[Rule]) -> set[str]:
    return {c.effect for c in diff.diff_ruleset("h", ruleset_of(a), ruleset_of(b))} - {"neutral"}


@given(st.lists(rules(), max_size=6), st.sampled_from(PROTOS), st.integers(0, 65535), st.sampled_from(ADDRS))
def test_adding_an_accept_for_a_dropped_port_always_weakens(rule_list, proto, port, addr):
    pkt = {Field.FAMILY: 4, Field.L4: proto, Field.DPORT: port, Field.SADDR: addr[0]}
    if verdict(rule_list, "drop", pkt) != "deny":
        return
    c = [
        Constraint(Field.FAMILY, ((4, 4),)),
        Constraint(Field.L4, ((proto, proto),)),
        Constraint(Field.DPORT, ((port, port),)),
    ]
    opened = [Rule(tuple(c), "accept", rule_text(c[1:], "accept")), *rule_list]
    changes = diff.diff_ruleset("h", ruleset_of(rule_list), ruleset_of(opened))
    weak = [ch for ch in changes if ch.effect == "weakens"]
    assert weak, changes
    name = {6: "tcp", 17: "udp"}[proto]
    assert any((name, port, port) in ch.admitted for ch in weak)
    assert not any(ch.effect == "strengthens" for ch in changes)


@given(st.lists(rules(), min_size=2, max_size=7), st.data())
def test_a_permutation_is_neutral_exactly_when_no_packet_changes_verdict(rule_list, data):
    permuted = data.draw(st.permutations(rule_list))
    assert model_effects(rule_list, permuted) == brute_force(rule_list, permuted)


@given(st.lists(rules(), min_size=2, max_size=7), st.data())
def test_swapping_adjacent_rules_with_the_same_verdict_is_neutral(rule_list, data):
    i = data.draw(st.integers(0, len(rule_list) - 2))
    a, b = rule_list[i], rule_list[i + 1]
    if (a.verdict == "accept") != (b.verdict == "accept"):
        return
    swapped = [*rule_list[:i], b, a, *rule_list[i + 2 :]]
    changes = diff.diff_ruleset("h", ruleset_of(rule_list), ruleset_of(swapped))
    assert {c.effect for c in changes} <= {"neutral"}


@given(st.lists(rules(), max_size=6), st.lists(rules(), max_size=6))
def test_any_two_rulesets_are_classified_as_the_brute_force_grid_says(a, b):
    assert model_effects(a, b) == brute_force(a, b)
