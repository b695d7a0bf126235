"""Plain text for the bounded firewall model: rules, value sets and example packets."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from patchbrain.posture.models import (
    ADDR_MAX,
    CT_STATES,
    PORT_PROTOCOLS,
    PROTO_NAMES,
    Constraint,
    Field,
    IntervalSet,
    decode_ifname,
    field_domain,
    subtract,
)

FIELD_NAMES = {
    Field.FAMILY: "family",
    Field.L4: "l4proto",
    Field.SADDR: "saddr",
    Field.DADDR: "daddr",
    Field.SPORT: "sport",
    Field.DPORT: "dport",
    Field.ICMPTYPE: "icmp type",
    Field.IIF: "iifname",
    Field.OIF: "oifname",
    Field.CT: "ct state",
}


def _addr_family(values: IntervalSet, hint: int | None) -> int:
    if hint is not None:
        return hint
    return 4 if values and values[-1][1] <= ADDR_MAX[4] else 6


def _ifname_range(lo: int, hi: int) -> str:
    if lo == hi:
        return decode_ifname(lo) or '""'
    lo_b = lo.to_bytes(16, "big")
    hi_b = hi.to_bytes(16, "big")
    common = 0
    while common < 16 and lo_b[common] == hi_b[common]:
        common += 1
    if lo_b[common:] == b"\0" * (16 - common) and hi_b[common:] == b"\xff" * (16 - common):
        return lo_b[:common].decode("utf-8", "replace") + "*"
    return f"{decode_ifname(lo)}..{decode_ifname(hi)}"


def format_values(field: Field, values: IntervalSet, family: int | None = None) -> str:
    """A value set of one field in nft-like notation: `22`, `{ 80, 8000-8100 }`, `10.0.0.0/8`."""
    parts: list[str] = []
    for lo, hi in values:
        if field in (Field.SADDR, Field.DADDR):
            fam = _addr_family(values, family)
            if fam == 4:
                start4, end4 = ipaddress.IPv4Address(lo), ipaddress.IPv4Address(hi)
                parts.extend(str(n) for n in ipaddress.summarize_address_range(start4, end4))
            else:
                start6, end6 = ipaddress.IPv6Address(lo), ipaddress.IPv6Address(hi)
                parts.extend(str(n) for n in ipaddress.summarize_address_range(start6, end6))
            continue
        if field is Field.L4:
            if hi - lo < 8:
                parts.extend(PROTO_NAMES.get(v, str(v)) for v in range(lo, hi + 1))
            else:
                parts.append(f"{lo}-{hi}")
            continue
        if field is Field.CT:
            parts.extend(CT_STATES[v] for v in range(lo, hi + 1))
            continue
        if field is Field.FAMILY:
            parts.extend({4: "ipv4", 6: "ipv6"}.get(v, str(v)) for v in range(lo, hi + 1) if v in (4, 6))
            continue
        if field in (Field.IIF, Field.OIF):
            parts.append(_ifname_range(lo, hi))
            continue
        parts.append(str(lo) if lo == hi else f"{lo}-{hi}")
    if len(parts) > 6:
        parts = [*parts[:5], f"... ({len(parts) - 5} more)"]
    return parts[0] if len(parts) == 1 else "{ " + ", ".join(parts) + " }"


def set_text(field: Field, values: IntervalSet, family: int) -> str:
    """A value set, written as `!= complement` when the complement is the shorter one."""
    rest = subtract((field_domain(field, family),), values)
    single = len(rest) == 1 and rest[0][0] == rest[0][1]
    if (rest and len(rest) < len(values)) or (single and len(values) > 1):
        return "!= " + format_values(field, rest, family)
    return format_values(field, values, family)


def constraint_text(c: Constraint, family: int | None = None) -> str:
    """One constraint as `field value` (with `!=` when negated)."""
    op = "!= " if c.negate else ""
    return f"{FIELD_NAMES[c.field]} {op}{format_values(c.field, c.values, family)}"


def _singleton(c: Constraint) -> int | None:
    if not c.negate and len(c.values) == 1 and c.values[0][0] == c.values[0][1]:
        return c.values[0][0]
    return None


def _rule_family(constraints: Sequence[Constraint]) -> int | None:
    for c in constraints:
        if (
            c.field is Field.FAMILY
            and not c.negate
            and len(c.values) == 1
            and c.values[0][0] == c.values[0][1]
        ):
            return c.values[0][0]
    return None


def rule_text(constraints: Sequence[Constraint], verdict: str, target: str | None = None) -> str:
    """A canonical one-line rendering of a rule (no handles, counters or comments)."""
    family = _rule_family(constraints)
    words: list[str] = []
    i = 0
    while i < len(constraints):
        c = constraints[i]
        nxt = constraints[i + 1] if i + 1 < len(constraints) else None
        value = _singleton(c)
        # `l4proto tcp` + `dport 22` read as `tcp dport 22`, `family ipv4` + `saddr` as `ip saddr`
        if nxt is not None and value is not None:
            if c.field is Field.L4 and nxt.field in (Field.SPORT, Field.DPORT, Field.ICMPTYPE):
                proto = PROTO_NAMES.get(value, str(value))
                name = "type" if nxt.field is Field.ICMPTYPE else FIELD_NAMES[nxt.field]
                op = "!= " if nxt.negate else ""
                words.append(f"{proto} {name} {op}{format_values(nxt.field, nxt.values, family)}")
                i += 2
                continue
            if (
                c.field is Field.FAMILY
                and nxt.field in (Field.SADDR, Field.DADDR, Field.L4)
                and value in (4, 6)
            ):
                proto = "ip" if value == 4 else "ip6"
                name = {Field.SADDR: "saddr", Field.DADDR: "daddr", Field.L4: "protocol"}[nxt.field]
                op = "!= " if nxt.negate else ""
                words.append(f"{proto} {name} {op}{format_values(nxt.field, nxt.values, value)}")
                i += 2
                continue
        words.append(constraint_text(c, family))
        i += 1
    words.append(f"{verdict} {target}" if target else verdict)
    return " ".join(words)


def box_text(box: Sequence[IntervalSet], family: int) -> str:
    """The packets of a box, naming only the fields that are narrower than their full domain."""
    words = ["ipv4" if family == 4 else "ipv6"]
    l4 = box[Field.L4]
    full = {f: (field_domain(f, family),) for f in Field}
    if l4 != full[Field.L4]:
        text = set_text(Field.L4, l4, family)
        words.append(text if len(l4) == 1 and l4[0][0] == l4[0][1] else f"l4proto {text}")
    ports_apply = any(v in PORT_PROTOCOLS for lo, hi in l4 for v in range(lo, min(hi, lo + 300) + 1))
    icmp_applies = any(lo <= p <= hi for lo, hi in l4 for p in (1, 58))
    for f in (
        Field.SADDR,
        Field.DADDR,
        Field.SPORT,
        Field.DPORT,
        Field.ICMPTYPE,
        Field.IIF,
        Field.OIF,
        Field.CT,
    ):
        if f in (Field.SPORT, Field.DPORT) and not ports_apply:
            continue
        if f is Field.ICMPTYPE and not icmp_applies:
            continue
        if f in (Field.IIF, Field.OIF) and box[f] == ((0, 0),):
            continue  # the hook has no such interface
        if box[f] != full[f]:
            words.append(f"{FIELD_NAMES[f]} {set_text(f, box[f], family)}")
    if len(words) == 1:
        words.append("(any packet)")
    return " ".join(words)
