"""Reachability on the bounded firewall model: which packets does each hook path admit?

Packets are grouped into boxes (one interval set per `Field`). Evaluating a chain on a box splits it by
each rule's constraints into the part the rule matches and the parts it does not, so every packet of a
resulting box meets exactly the same rules: the answer is exact on the model, not sampled. Comparing two
rulesets evaluates the second one on every box the first one produced, so each final box has one verdict
before and one after.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Literal

from patchbrain.posture.models import (
    DENY,
    Chain,
    Constraint,
    Field,
    IntervalSet,
    Rule,
    Ruleset,
    Table,
    field_domain,
    intersect,
    subtract,
)

Box = tuple[IntervalSet, ...]
PathName = Literal["input", "forward", "output"]
PATHS: dict[PathName, tuple[str, ...]] = {
    "input": ("prerouting", "input"),
    "forward": ("prerouting", "forward", "postrouting"),
    "output": ("output", "postrouting"),
}
HOOK_FIELDS_ABSENT = {"input": Field.OIF, "output": Field.IIF}
MAX_DEPTH = 64  # the kernel's own jump depth limit


class OutsideModel(Exception):
    """A packet reached a rule the model cannot evaluate; `where` names the rule."""

    def __init__(self, where: str, why: str) -> None:
        self.where = where
        self.why = why
        super().__init__(f"{where}: {why}")


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    """The final verdict a path gives a box of packets, and the rule or policy that decided it."""

    box: Box
    family: int
    verdict: Literal["accept", "deny"]
    by: str
    rule: Rule | None = None
    chain: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Delta:
    """A box of packets whose verdict differs between two rulesets."""

    path: PathName
    box: Box
    family: int
    before: Decision
    after: Decision


def full_box(family: int, path: PathName) -> Box:
    """Every packet of one family on one path (the interface a hook cannot see is empty)."""
    box = [(field_domain(f, family),) for f in Field]
    box[Field.FAMILY] = ((family, family),)
    absent = HOOK_FIELDS_ABSENT.get(path)
    if absent is not None:
        box[absent] = ((0, 0),)
    return tuple(box)


def split(box: Box, constraints: tuple[Constraint, ...], family: int) -> tuple[Box | None, list[Box]]:
    """(the part of `box` all constraints match, disjoint boxes covering the rest)."""
    inside = list(box)
    outside: list[Box] = []
    for c in constraints:
        allowed = c.allowed(family)
        current = inside[c.field]
        out = subtract(current, allowed)
        if out:
            piece = list(inside)
            piece[c.field] = out
            outside.append(tuple(piece))
        inn = intersect(current, allowed)
        if not inn:
            return None, outside
        inside[c.field] = inn
    return tuple(inside), outside


def _family_ok(table: Table, family: int) -> bool:
    return (
        table.family == "inet"
        or (table.family == "ip" and family == 4)
        or (table.family == "ip6" and family == 6)
    )


def path_chains(ruleset: Ruleset, path: PathName, family: int) -> list[tuple[Table, Chain]]:
    """The filter base chains a packet of `family` crosses on `path`, in kernel order."""
    order = {hook: i for i, hook in enumerate(PATHS[path])}
    found = [
        (order[c.hook], c.priority, t.key, t, c)
        for t in ruleset.tables
        if t.family in ("ip", "ip6", "inet") and _family_ok(t, family)
        for c in t.chains
        if c.hook in order and c.type == "filter"
    ]
    return [(t, c) for _h, _p, _k, t, c in sorted(found, key=lambda x: (x[0], x[1], x[2]))]


def rule_ref(table: Table, chain: Chain, rule: Rule) -> str:
    """How a report names one rule: its text, table, chain and handle."""
    handle = f", handle {rule.handle}" if rule.handle is not None else ""
    return f"rule `{rule.text}` ({table.source} {table.family} {table.name} {chain.name}{handle})"


Outcome = tuple[Box, str, str, Rule | None, str]  # box, accept|deny|next, by, rule, chain name


def _eval_chain(table: Table, chain: Chain, boxes: list[Box], family: int, depth: int) -> Iterator[Outcome]:
    if depth > MAX_DEPTH:
        raise OutsideModel(f"{table.key} {chain.name}", "jumps nest deeper than 64 chains")
    pending = boxes
    where = f"{table.source} {table.family} {table.name} {chain.name}"
    for rule in chain.rules:
        if not pending:
            return
        if rule.unsupported is not None:
            raise OutsideModel(rule_ref(table, chain, rule), rule.unsupported)
        nxt: list[Box] = []
        for box in pending:
            inside, outside = split(box, rule.constraints, family)
            nxt.extend(outside)
            if inside is None:
                continue
            ref = rule_ref(table, chain, rule)
            if rule.verdict == "accept":
                yield inside, "accept", ref, rule, where
            elif rule.verdict in DENY:
                yield inside, "deny", ref, rule, where
            elif rule.verdict == "continue":
                nxt.append(inside)
            elif rule.verdict == "return":
                yield inside, "next", ref, rule, where
            else:  # jump or goto
                target = table.chain(rule.target or "")
                if target is None:
                    raise OutsideModel(ref, f"{rule.verdict} to missing chain {rule.target!r}")
                for sub in _eval_chain(table, target, [inside], family, depth + 1):
                    if sub[1] != "next":
                        yield sub
                    elif rule.verdict == "jump":
                        nxt.append(sub[0])
                    else:
                        yield sub[0], "next", ref, rule, where
        pending = nxt
    for box in pending:
        yield box, "next", f"end of chain {where}", None, where


def eval_base_chain(table: Table, chain: Chain, box: Box, family: int) -> Iterator[Decision]:
    """The decisions one base chain gives the packets of `box` (its policy for what falls through)."""
    for b, kind, by, rule, where in _eval_chain(table, chain, [box], family, 0):
        if kind == "next":
            policy = chain.policy or "accept"
            verdict: Literal["accept", "deny"] = "accept" if policy == "accept" else "deny"
            yield Decision(b, family, verdict, f"policy {policy} of chain {where}", None, where)
        else:
            yield Decision(b, family, "accept" if kind == "accept" else "deny", by, rule, where)


def eval_path(ruleset: Ruleset, path: PathName, box: Box, family: int) -> list[Decision]:
    """Every base chain on the path in turn: a packet is admitted only if each of them accepts it."""
    chains = path_chains(ruleset, path, family)
    if not chains:
        return [
            Decision(box, family, "accept", f"no filter chain on the {path} path, so it accepts everything")
        ]
    current = [Decision(box, family, "accept", "")]
    for table, chain in chains:
        nxt: list[Decision] = []
        for d in current:
            if d.verdict == "deny":
                nxt.append(d)
            else:
                nxt.extend(eval_base_chain(table, chain, d.box, family))
        current = nxt
    return current


def compare_path(before: Ruleset, after: Ruleset, path: PathName) -> list[Delta]:
    """Every box of packets whose verdict on `path` differs between the two rulesets (exact on the model)."""
    deltas: list[Delta] = []
    for family in (4, 6):
        for d1 in eval_path(before, path, full_box(family, path), family):
            for d2 in eval_path(after, path, d1.box, family):
                if d1.verdict != d2.verdict:
                    deltas.append(Delta(path, d2.box, family, d1, d2))
    return deltas


def merge_boxes(boxes: list[Box]) -> list[Box]:
    """Fewer, larger boxes covering the same packets: boxes equal on all fields but one are united."""
    from patchbrain.posture.models import normalize

    work = list(dict.fromkeys(boxes))
    changed = True
    while changed and len(work) > 1:
        changed = False
        for f in Field:
            groups: dict[Box, list[Box]] = {}
            for b in work:
                key = tuple(v if i != f else () for i, v in enumerate(b))
                groups.setdefault(key, []).append(b)
            if all(len(g) == 1 for g in groups.values()):
                continue
            merged: list[Box] = []
            for key, group in groups.items():
                if len(group) == 1:
                    merged.append(group[0])
                    continue
                united = normalize([iv for b in group for iv in b[f]])
                merged.append(tuple(united if i == f else v for i, v in enumerate(key)))
            work = merged
            changed = True
    return work


def example_packet(box: Box) -> dict[str, int]:
    """One concrete packet of a box (the lowest value of every field, preferring a real port/interface)."""
    out = {f.name.lower(): box[f][0][0] for f in Field}
    for f in (Field.DPORT, Field.SPORT):
        if out[f.name.lower()] == 0 and box[f][0][1] >= 1:
            out[f.name.lower()] = 1
    return out


def chain_signature(ruleset: Ruleset, path: PathName) -> str:
    """Canonical text of every chain a packet on `path` can reach, to tell whether a path changed at all."""
    lines: list[str] = []
    for family in (4, 6):
        lines.append(f"family {family}")
        for table, chain in path_chains(ruleset, path, family):
            seen: set[str] = set()
            _signature(table, chain, lines, seen)
    return "\n".join(lines)


def _signature(table: Table, chain: Chain, lines: list[str], seen: set[str]) -> None:
    if chain.name in seen:
        return
    seen.add(chain.name)
    lines.append(f"{table.key} {chain.name} hook={chain.hook} prio={chain.priority} policy={chain.policy}")
    lines.extend(f"  {r.text}" for r in chain.rules)
    for r in chain.rules:
        if r.target:
            target = table.chain(r.target)
            if target is not None:
                _signature(table, target, lines, seen)
