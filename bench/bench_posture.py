"""Drift-gate benchmark: classify the change between two large rulesets, exactly, on the bounded model.

Measured: `diff_ruleset` (box splitting) on generated input chains of N rules (ports, port ranges, source
prefixes, protocols, accept/drop mixed) with one extra accept rule inserted in the middle.
Baseline, measured in the same run: the brute-force evaluator the property tests use as an oracle, i.e.
first-match evaluation of every packet on the grid of boundary points (each constant +-1) of both rulesets,
restricted to the three fields the rules use. Both must agree on the verdict; the ratio is printed.
Usage: .venv/bin/python bench/bench_posture.py [N...]   (default 25 50 100)
"""

from __future__ import annotations

import itertools
import random
import sys
import time

from patchbrain.posture import diff
from patchbrain.posture.fwtext import rule_text
from patchbrain.posture.models import Chain, Constraint, Field, Rule, Ruleset, Table, field_domain


def make_rules(n: int, rng: random.Random) -> list[Rule]:
    rules = []
    for _ in range(n):
        cs = [Constraint(Field.FAMILY, ((4, 4),))]
        proto = rng.choice((6, 17))
        cs.append(Constraint(Field.L4, ((proto, proto),)))
        lo = rng.randrange(0, 65535)
        hi = min(65535, lo + rng.choice((0, 0, 0, 10, 1000)))
        cs.append(Constraint(Field.DPORT, ((lo, hi),)))
        if rng.random() < 0.5:
            net = rng.randrange(0, 1 << 16) << 16
            cs.append(Constraint(Field.SADDR, ((net, net + 0xFFFF),), negate=rng.random() < 0.1))
        verdict = "accept" if rng.random() < 0.7 else "drop"
        rules.append(Rule(tuple(cs), verdict, rule_text(cs[1:], verdict)))
    return rules


def ruleset(rules: list[Rule]) -> Ruleset:
    return Ruleset((Table("inet", "filter", (Chain("input", tuple(rules), hook="input", policy="drop"),)),))


def brute_force(a: list[Rule], b: list[Rule]) -> bool:
    """True when some packet goes from deny to accept (exhaustive on the boundary grid)."""

    def points(field: Field) -> list[int]:
        lo_d, hi_d = field_domain(field, 4)
        pts = {lo_d, hi_d}
        for r in (*a, *b):
            for c in r.constraints:
                if c.field is field:
                    for lo, hi in c.values:
                        pts.update(v for v in (lo - 1, lo, hi, hi + 1) if lo_d <= v <= hi_d)
        return sorted(pts)

    def verdict(rules: list[Rule], pkt: dict[Field, int]) -> bool:
        for r in rules:
            if all(any(lo <= pkt[c.field] <= hi for lo, hi in c.allowed(4)) for c in r.constraints):
                return r.verdict == "accept"
        return False

    for l4, port, saddr in itertools.product((6, 17, 1), points(Field.DPORT), points(Field.SADDR)):
        pkt = {Field.FAMILY: 4, Field.L4: l4, Field.DPORT: port, Field.SADDR: saddr}
        if verdict(b, pkt) and not verdict(a, pkt):
            return True
    return False


def main(sizes: list[int]) -> int:
    rng = random.Random(20261126)
    print(f"{'rules':>6} {'model diff s':>13} {'brute force s':>14} {'ratio':>7}  verdict")
    for n in sizes:
        before = make_rules(n, rng)
        extra = Rule(
            (
                Constraint(Field.FAMILY, ((4, 4),)),
                Constraint(Field.L4, ((6, 6),)),
                Constraint(Field.DPORT, ((31337, 31337),)),
            ),
            "accept",
            "tcp dport 31337 accept",
        )
        after = [*before[: n // 2], extra, *before[n // 2 :]]
        t0 = time.perf_counter()
        changes = diff.diff_ruleset("bench", ruleset(before), ruleset(after))
        t_model = time.perf_counter() - t0
        t0 = time.perf_counter()
        weak_bf = brute_force(before, after)
        t_bf = time.perf_counter() - t0
        weak_model = any(c.effect == "weakens" for c in changes)
        if weak_model != weak_bf:
            print(f"MISMATCH at {n} rules: model {weak_model}, brute force {weak_bf}", file=sys.stderr)
            return 1
        label = "weakens" if weak_model else "none"
        print(f"{n:>6} {t_model:>13.3f} {t_bf:>14.3f} {t_bf / t_model:>6.1f}x  {label}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main([int(a) for a in sys.argv[1:]] or [25, 50, 100]))
