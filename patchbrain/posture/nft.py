"""Parse `nft -j list ruleset` (libnftables JSON, schema version 1) into the bounded firewall model."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from patchbrain.errors import BadInput
from patchbrain.posture.fwtext import rule_text
from patchbrain.posture.models import (
    CT_STATES,
    PROTO_NUMBERS,
    Chain,
    ChainType,
    Constraint,
    Field,
    Interval,
    IntervalSet,
    Rule,
    Table,
    Verdict,
    ifname_interval,
    normalize,
    prefix_interval,
)

SUPPORTED_SCHEMA_VERSIONS = frozenset({1})
MODEL_FAMILIES = frozenset({"ip", "ip6", "inet"})
MODEL_HOOKS = frozenset({"prerouting", "input", "forward", "output", "postrouting"})
PORT_PROTOS = {"tcp": 6, "udp": 17, "dccp": 33, "sctp": 132, "udplite": 136}
SERVICES = {"ssh": 22, "http": 80, "https": 443, "domain": 53, "smtp": 25, "telnet": 23, "ntp": 123}
ICMP_TYPES = {
    "echo-reply": 0,
    "destination-unreachable": 3,
    "source-quench": 4,
    "redirect": 5,
    "echo-request": 8,
    "router-advertisement": 9,
    "router-solicitation": 10,
    "time-exceeded": 11,
    "parameter-problem": 12,
    "timestamp-request": 13,
    "timestamp-reply": 14,
    "info-request": 15,
    "info-reply": 16,
    "address-mask-request": 17,
    "address-mask-reply": 18,
}
ICMPV6_TYPES = {
    "destination-unreachable": 1,
    "packet-too-big": 2,
    "time-exceeded": 3,
    "parameter-problem": 4,
    "echo-request": 128,
    "echo-reply": 129,
    "mld-listener-query": 130,
    "mld-listener-report": 131,
    "mld-listener-done": 132,
    "mld-listener-reduction": 132,
    "nd-router-solicit": 133,
    "nd-router-advert": 134,
    "nd-neighbor-solicit": 135,
    "nd-neighbor-advert": 136,
    "nd-redirect": 137,
    "router-renumbering": 138,
    "ind-neighbor-solicit": 141,
    "ind-neighbor-advert": 142,
    "mld2-listener-report": 143,
}
IGNORED_STATEMENTS = frozenset({"counter", "log"})
FAMILY_OF_TABLE = {"ip": 4, "ip6": 6}


class Unsupported(Exception):
    """Something outside the bounded model; the message says what."""


def _scalar(field: Field, value: Any, icmp6: bool = False) -> int | Interval:
    """One right-hand value as an integer or an interval, for the given field."""
    if isinstance(value, bool):
        raise Unsupported(f"boolean value {value!r}")
    if field in (Field.SADDR, Field.DADDR):
        if isinstance(value, str):
            return prefix_interval(value)[1]
        if isinstance(value, dict) and "prefix" in value:
            p = value["prefix"]
            return prefix_interval(f"{p['addr']}/{p['len']}")[1]
        if isinstance(value, dict) and "range" in value:
            lo, hi = value["range"]
            return (prefix_interval(str(lo))[1][0], prefix_interval(str(hi))[1][1])
        raise Unsupported(f"address value {json.dumps(value)}")
    if field in (Field.IIF, Field.OIF):
        if isinstance(value, str):
            return ifname_interval(value)
        raise Unsupported(f"interface value {json.dumps(value)}")
    if isinstance(value, dict) and "range" in value:
        lo, hi = value["range"]
        a, b = _scalar(field, lo, icmp6), _scalar(field, hi, icmp6)
        return (a if isinstance(a, int) else a[0], b if isinstance(b, int) else b[1])
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        raise Unsupported(f"value {json.dumps(value)}")
    if value.isdigit():
        return int(value)
    if field is Field.L4 and value in PROTO_NUMBERS:
        return PROTO_NUMBERS[value]
    if field in (Field.SPORT, Field.DPORT) and value in SERVICES:
        return SERVICES[value]
    if field is Field.ICMPTYPE:
        table = ICMPV6_TYPES if icmp6 else ICMP_TYPES
        if value in table:
            return table[value]
    if field is Field.CT and value in CT_STATES:
        return CT_STATES.index(value)
    if field is Field.FAMILY and value in ("ipv4", "ipv6"):
        return 4 if value == "ipv4" else 6
    raise Unsupported(f"value {value!r} for {field.name.lower()}")


def _values(field: Field, right: Any, sets: dict[str, list[Any]], icmp6: bool = False) -> IntervalSet:
    if isinstance(right, str) and right.startswith("@"):
        if right[1:] not in sets:
            raise Unsupported(f"lookup in set {right} that is a map, a concatenation or missing")
        items: list[Any] = sets[right[1:]]
    elif isinstance(right, dict) and "set" in right:
        items = right["set"] if isinstance(right["set"], list) else [right["set"]]
    elif isinstance(right, list):
        items = right
    else:
        items = [right]
    out: list[Interval] = []
    for item in items:
        if isinstance(item, dict) and "elem" in item:
            item = item["elem"]["val"]
        v = _scalar(field, item, icmp6)
        out.append((v, v) if isinstance(v, int) else v)
    return normalize(out)


def _left(left: Any, table_family: str) -> list[tuple[Field, Constraint | None]]:
    """The field a match reads, plus any implied constraint (`tcp dport` implies l4proto tcp)."""
    if not isinstance(left, dict) or len(left) != 1:
        raise Unsupported(f"match on {json.dumps(left)}")
    ((kind, body),) = left.items()
    if kind == "payload" and isinstance(body, dict) and "protocol" in body:
        proto, fld = body["protocol"], body.get("field")
        if proto in ("ip", "ip6") and fld in ("saddr", "daddr"):
            fam = 4 if proto == "ip" else 6
            f = Field.SADDR if fld == "saddr" else Field.DADDR
            return [(f, Constraint(Field.FAMILY, ((fam, fam),)))]
        if (proto, fld) in (("ip", "protocol"), ("ip6", "nexthdr")):
            fam = 4 if proto == "ip" else 6
            return [(Field.L4, Constraint(Field.FAMILY, ((fam, fam),)))]
        if proto in PORT_PROTOS and fld in ("sport", "dport"):
            n = PORT_PROTOS[proto]
            return [(Field.SPORT if fld == "sport" else Field.DPORT, Constraint(Field.L4, ((n, n),)))]
        if proto in ("icmp", "icmpv6") and fld == "type":
            n = 1 if proto == "icmp" else 58
            return [(Field.ICMPTYPE, Constraint(Field.L4, ((n, n),)))]
        raise Unsupported(f"match on {proto} {fld}")
    if kind == "meta" and isinstance(body, dict):
        key = body.get("key")
        mapping = {
            "iifname": Field.IIF,
            "oifname": Field.OIF,
            # iif/oif match an interface index resolved from its name when the rule was loaded; the model
            # reads them as the exact name nft prints (a renamed or re-created interface is not followed)
            "iif": Field.IIF,
            "oif": Field.OIF,
            "l4proto": Field.L4,
            "nfproto": Field.FAMILY,
        }
        if key in mapping:
            return [(mapping[key], None)]
        raise Unsupported(f"match on meta {key}")
    if kind == "ct" and isinstance(body, dict) and body.get("key") == "state" and "dir" not in body:
        return [(Field.CT, None)]
    raise Unsupported(f"match on {kind} {json.dumps(body)}")


_CMP = {"<": (None, -1), "<=": (None, 0), ">": (1, None), ">=": (0, None)}


def _match(m: Any, table_family: str, sets: dict[str, list[Any]]) -> list[Constraint]:
    if not isinstance(m, dict):
        raise Unsupported("malformed match")
    op = m.get("op", "==")
    [(field, implied)] = _left(m.get("left"), table_family)
    icmp6 = implied is not None and implied.values == ((58, 58),)
    out = [implied] if implied is not None else []
    if op in ("==", "in"):
        out.append(Constraint(field, _values(field, m.get("right"), sets, icmp6)))
    elif op == "!=":
        out.append(Constraint(field, _values(field, m.get("right"), sets, icmp6), negate=True))
    elif op in _CMP:
        v = _scalar(field, m.get("right"), icmp6)
        if not isinstance(v, int):
            raise Unsupported(f"comparison {op} with a range")
        low, high = _CMP[op]
        top = 65535 if field in (Field.SPORT, Field.DPORT) else 255
        lo = 0 if low is None else v + low
        hi = top if high is None else v + high
        out.append(Constraint(field, normalize([(lo, hi)])))
    else:
        raise Unsupported(f"match operator {op!r}")
    return out


def parse_rule(expr: list[Any], table_family: str, sets: dict[str, list[Any]]) -> Rule:
    """One rule's expression list as a model Rule (with `unsupported` set when it leaves the model)."""
    constraints: list[Constraint] = []
    verdict: Verdict = "continue"
    target: str | None = None
    fam = FAMILY_OF_TABLE.get(table_family)
    if fam is not None:
        constraints.append(Constraint(Field.FAMILY, ((fam, fam),)))
    try:
        if not isinstance(expr, list):
            raise Unsupported("rule expression is not a list")
        for stmt in expr:
            if not isinstance(stmt, dict) or len(stmt) != 1:
                raise Unsupported(f"statement {json.dumps(stmt)}")
            ((key, body),) = stmt.items()
            if verdict != "continue":
                raise Unsupported(f"statement {key!r} after the verdict")
            if key == "match":
                constraints.extend(_match(body, table_family, sets))
            elif key in ("accept", "drop", "reject", "return"):
                verdict = key
            elif key in ("jump", "goto"):
                verdict = key
                target = str(body["target"]) if isinstance(body, dict) and "target" in body else None
                if target is None:
                    raise Unsupported(f"{key} without a target")
            elif key in IGNORED_STATEMENTS:
                continue
            else:
                raise Unsupported(f"statement {key!r}")
    except Unsupported as exc:
        text = json.dumps(expr, sort_keys=True, separators=(",", ":"))
        return Rule((), "continue", text=f"[outside the model: {exc}] {text}", unsupported=str(exc))
    except (KeyError, ValueError, TypeError) as exc:
        text = json.dumps(expr, sort_keys=True, separators=(",", ":"))
        return Rule((), "continue", text=f"[unreadable: {exc}] {text}", unsupported=f"unreadable rule: {exc}")
    # the implied table family is part of the rule's meaning but not of how a sysadmin reads it
    shown = constraints[1:] if fam is not None else constraints
    return Rule(tuple(constraints), verdict, text=rule_text(shown, verdict, target), target=target)


def _chain_type(value: Any) -> ChainType:
    return value if value in ("filter", "nat", "route") else "other"


def load_json(text: str | bytes, *, host: str) -> list[dict[str, Any]]:
    """The `nftables` list of a `nft -j list ruleset` document, after checking its schema version."""
    source = f"{host}: nft -j list ruleset"
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"not valid JSON ({exc})", source=source) from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("nftables"), list):
        raise BadInput("no top-level 'nftables' list", source=source, field="nftables")
    items: list[dict[str, Any]] = doc["nftables"]
    meta = next((i["metainfo"] for i in items if isinstance(i, dict) and "metainfo" in i), None)
    if not isinstance(meta, dict):
        raise BadInput(
            "no metainfo object, so the schema version is unknown", source=source, field="metainfo"
        )
    version = meta.get("json_schema_version")
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        raise BadInput(
            f"json_schema_version {version!r} is not supported (supported: "
            f"{sorted(SUPPORTED_SCHEMA_VERSIONS)}); refusing to guess what the rules mean",
            source=source,
            field="metainfo.json_schema_version",
        )
    for i, item in enumerate(items):
        if not isinstance(item, dict) or len(item) != 1:
            raise BadInput(f"item {i} is not a one-key object", source=source, field=f"nftables[{i}]")
    return items


def parse_ruleset(text: str | bytes, *, host: str) -> tuple[Table, ...]:
    """All tables of a `nft -j list ruleset` document, in the bounded model."""
    source = f"{host}: nft -j list ruleset"
    items = load_json(text, host=host)
    tables: dict[tuple[str, str], dict[str, Any]] = {}
    chains: dict[tuple[str, str, str], dict[str, Any]] = {}
    rules: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    sets: dict[tuple[str, str], dict[str, list[Any]]] = {}
    unsupported_objs: dict[tuple[str, str], list[str]] = {}
    raw: dict[tuple[str, str], list[Any]] = {}
    try:
        for item in items:
            ((kind, body),) = item.items()
            if kind == "metainfo":
                continue
            tkey = (str(body["family"]), str(body["table"] if kind != "table" else body["name"]))
            if kind == "table":
                tables[tkey] = body
                continue
            raw.setdefault(tkey, []).append({kind: {k: v for k, v in body.items() if k != "handle"}})
            if kind == "chain":
                chains[(*tkey, str(body["name"]))] = body
            elif kind == "rule":
                rules.setdefault((*tkey, str(body["chain"])), []).append(body)
            elif kind == "set":
                elems = body.get("elem", [])
                if isinstance(body.get("type"), str):
                    sets.setdefault(tkey, {})[str(body["name"])] = (
                        elems if isinstance(elems, list) else [elems]
                    )
            elif kind in ("map", "flowtable", "ct helper", "ct timeout", "ct expectation", "synproxy"):
                unsupported_objs.setdefault(tkey, []).append(f"{kind} {body.get('name')}")
            # counters, quotas, limits, secmarks: named objects that only matter if a rule uses them,
            # and a rule that uses one is outside the model by itself.
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInput(f"malformed ruleset object: {exc}", source=source) from exc
    out: list[Table] = []
    for (family, tname), _body in sorted(tables.items()):
        # counters live in rule bodies; drop them from the raw text used to detect change
        table_raw = _strip_counters(raw.get((family, tname), []))
        if family not in MODEL_FAMILIES:
            out.append(
                Table(family, tname, (), unsupported=f"family {family} is outside the model", raw=table_raw)
            )
            continue
        table_chains: list[Chain] = []
        for (cf, ct, cname), cbody in sorted(chains.items(), key=lambda kv: int(kv[1].get("handle", 0))):
            if (cf, ct) != (family, tname):
                continue
            parsed = tuple(
                parse_rule(r.get("expr", []), family, sets.get((family, tname), {}))
                for r in rules.get((cf, ct, cname), [])
            )
            parsed = tuple(
                _with_meta(p, r) for p, r in zip(parsed, rules.get((cf, ct, cname), []), strict=True)
            )
            hook = cbody.get("hook")
            policy = cbody.get("policy", "accept" if hook else None)
            table_chains.append(
                Chain(
                    name=cname,
                    rules=parsed,
                    hook=str(hook) if hook else None,
                    type=_chain_type(cbody.get("type", "filter")) if hook else "filter",
                    priority=int(cbody.get("prio", 0)) if hook else 0,
                    policy=policy if policy in ("accept", "drop") else None,
                )
            )
        note = "; ".join(unsupported_objs.get((family, tname), [])) or None
        out.append(
            Table(family, tname, tuple(table_chains), unsupported=note and f"uses {note}", raw=table_raw)
        )
    return tuple(out)


def _with_meta(rule: Rule, body: dict[str, Any]) -> Rule:
    handle = body.get("handle")
    comment = body.get("comment")
    return dataclasses.replace(
        rule,
        handle=int(handle) if isinstance(handle, int) else None,
        comment=str(comment) if comment is not None else None,
    )


def _strip_counters(items: list[Any]) -> str:
    def clean(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items() if k not in ("counter", "handle", "comment")}
        if isinstance(obj, list):
            return [clean(v) for v in obj if not (isinstance(v, dict) and "counter" in v)]
        return obj

    return json.dumps(clean(items), sort_keys=True)
