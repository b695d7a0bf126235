"""Compare two snapshots of one host and classify every change: weakens, strengthens, neutral or unknown."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence

from patchbrain.posture.fwtext import box_text
from patchbrain.posture.models import (
    DENY,
    PORT_PROTOCOLS,
    PROTO_NAMES,
    Chain,
    Change,
    Effect,
    Field,
    FirewalldState,
    FirewalldZone,
    Ruleset,
    SelinuxState,
    Snapshot,
    Socket,
    Table,
    UfwState,
)
from patchbrain.posture.reach import PATHS, Delta, OutsideModel, chain_signature, compare_path, merge_boxes
from patchbrain.posture.selinux import SIMULATED_LABEL, SIMULATED_MARKER

MARKER_PROBE = "selinux_simulated"  # snapshot.PROBES' name for the simulated-SELinux marker file
MODE_RANK = {"disabled": 0, "permissive": 1, "enforcing": 2}
ZONE_TARGET_RANK = {"ACCEPT": 0, "default": 1, "%%REJECT%%": 2, "REJECT": 2, "DROP": 3}
UFW_RANK = {"allow": 0, "reject": 1, "deny": 1, "disabled": 1}
MAX_EXAMPLES = 3
HOOKS_IN_MODEL = frozenset(h for hooks in PATHS.values() for h in hooks)
FIREWALL_PROBES = frozenset(
    {"nft_ruleset", "iptables_save", "ip6tables_save", "iptables_legacy_save", "ip6tables_legacy_save"}
)


def diff(before: Snapshot, after: Snapshot) -> list[Change]:
    """Every classified change from `before` to `after` (the same host), most severe first."""
    host = after.host
    changes: list[Change] = []
    # the simulated-SELinux marker is not a tool: diff_selinux reports it coming or going on its own
    for probe in sorted(set(before.sources) - set(after.sources) - {MARKER_PROBE}):
        changes.append(
            Change(
                host,
                "sources",
                "sources.vanished",
                "unknown",
                probe,
                f"{probe} answered before the update and not after, so what it reports cannot be compared",
            )
        )
    changes += diff_selinux(host, before.selinux, after.selinux)
    vanished = set(before.sources) - set(after.sources)
    if (
        not vanished & FIREWALL_PROBES
    ):  # else the unknown above says it; a missing tool is not an empty ruleset
        changes += diff_ruleset(host, before.ruleset, after.ruleset)
    changes += diff_firewalld(host, before.firewalld, after.firewalld)
    changes += diff_ufw(host, before.ufw, after.ufw)
    changes += diff_sockets(host, before.sockets, after.sockets)
    order = {"weakens": 0, "unknown": 1, "strengthens": 2, "neutral": 3}
    return sorted(changes, key=lambda c: order[c.effect])


def _c(host: str, area: str, kind: str, effect: Effect, subject: str, reason: str, **kw: object) -> Change:
    return Change(host, area, kind, effect, subject, reason, **kw)  # type: ignore[arg-type]


# --- SELinux -----------------------------------------------------------------------------------------------


def diff_selinux(host: str, b: SelinuxState | None, a: SelinuxState | None) -> list[Change]:
    """SELinux modes, policy, booleans, permissive domains, modules and the simulated marker. Every reason
    on a host whose SELinux is simulated (the marker on either side) ends with "(simulated SELinux)"."""
    if b is None or a is None:
        return []
    out = _diff_selinux(host, b, a)
    if b.simulated or a.simulated:
        out = [dataclasses.replace(c, reason=f"{c.reason} ({SIMULATED_LABEL})") for c in out]
    if b.simulated != a.simulated:
        out.append(_marker_change(host, b, a))
    return out


def _marker_change(host: str, b: SelinuxState, a: SelinuxState) -> Change:
    """The simulated-SELinux marker appeared or disappeared: `unknown`, never safer (docs/posture.md)."""
    if b.simulated:
        why = (
            f"{SIMULATED_MARKER} was removed: SELinux on this host was simulated before the update and "
            f"nothing shows it is real now (the mode reads {a.runtime_mode or 'nothing'}); removing the "
            "marker changes what the SELinux results mean, not how safe the host is"
        )
    else:
        why = (
            f"{SIMULATED_MARKER} appeared: SELinux on this host now says it is simulated (a stand-in) "
            "where it did not before; a marker that makes real SELinux results read as simulated can "
            "hide a weakening"
        )
    return _c(
        host,
        "selinux",
        "selinux.simulated",
        "unknown",
        SIMULATED_MARKER,
        why,
        before="simulated" if b.simulated else "unmarked",
        after="simulated" if a.simulated else "unmarked",
    )


def _diff_selinux(host: str, b: SelinuxState, a: SelinuxState) -> list[Change]:
    out: list[Change] = []
    for attr, label in (
        ("runtime_mode", "runtime mode"),
        ("config_mode", "configured mode (/etc/selinux/config)"),
    ):
        old, new = getattr(b, attr), getattr(a, attr)
        if old == new:
            continue
        if old is not None and new is None:
            out.append(
                _c(
                    host,
                    "selinux",
                    f"selinux.{attr}",
                    "unknown",
                    label,
                    f"SELinux {label} is no longer reported",
                )
            )
            continue
        if old is None:
            out.append(
                _c(
                    host,
                    "selinux",
                    f"selinux.{attr}",
                    "neutral",
                    label,
                    f"SELinux {label} now reported as {new}",
                )
            )
            continue
        effect: Effect = "weakens" if MODE_RANK[new] < MODE_RANK[old] else "strengthens"
        out.append(
            _c(
                host,
                "selinux",
                f"selinux.{attr}",
                effect,
                label,
                f"SELinux {label} changed {old} -> {new}",
                before=old,
                after=new,
            )
        )
    for attr, label in (("policy_type", "policy type (SELINUXTYPE)"), ("loaded_policy", "loaded policy")):
        old, new = getattr(b, attr), getattr(a, attr)
        if old != new and old is not None:
            shown = "none" if new is None else new
            out.append(
                _c(
                    host,
                    "selinux",
                    f"selinux.{attr}",
                    "weakens",
                    label,
                    f"SELinux {label} changed {old} -> {shown}: "
                    "a different policy is not the one that was vetted",
                    before=old,
                    after=shown,
                )
            )
    old_b, new_b = dict(b.booleans), dict(a.booleans)
    for name in sorted(set(old_b) | set(new_b)):
        was, now = old_b.get(name), new_b.get(name)
        if was == now or now is None:
            continue
        if now and not was:
            out.append(
                _c(
                    host,
                    "selinux",
                    "selinux.boolean",
                    "weakens",
                    name,
                    f"SELinux boolean {name} turned on "
                    f"(was {'off' if was is False else 'absent'}): it allows more",
                    before="off" if was is False else None,
                    after="on",
                )
            )
        elif was and not now:
            out.append(
                _c(
                    host,
                    "selinux",
                    "selinux.boolean",
                    "strengthens",
                    name,
                    f"SELinux boolean {name} turned off",
                    before="on",
                    after="off",
                )
            )
    for dom in sorted(set(a.permissive_domains) - set(b.permissive_domains)):
        out.append(
            _c(
                host,
                "selinux",
                "selinux.permissive_domain",
                "weakens",
                dom,
                f"SELinux domain {dom} became permissive: its denials are logged but not enforced",
                after="permissive",
            )
        )
    for dom in sorted(set(b.permissive_domains) - set(a.permissive_domains)):
        out.append(
            _c(
                host,
                "selinux",
                "selinux.permissive_domain",
                "strengthens",
                dom,
                f"SELinux domain {dom} is enforced again",
            )
        )
    if b.modules_hash is not None and a.modules_hash is not None and b.modules_hash != a.modules_hash:
        added = sorted(set(a.modules) - set(b.modules))
        removed = sorted(set(b.modules) - set(a.modules))
        # `semanage permissive -a D` installs the module permissive_D (and `-d` removes it): that module is
        # the permissive-domain change reported above, judged there (and allow-listed there), not unknown
        made = {f"permissive_{d}" for d in set(a.permissive_domains) - set(b.permissive_domains)}
        unmade = {f"permissive_{d}" for d in set(b.permissive_domains) - set(a.permissive_domains)}
        explained = (added or removed) and set(added) <= made and set(removed) <= unmade
        if explained:
            return out
        out.append(
            _c(
                host,
                "selinux",
                "selinux.modules",
                "unknown",
                "policy modules",
                f"SELinux policy modules changed (added: {', '.join(added) or 'none'}; removed: "
                f"{', '.join(removed) or 'none'}); what a module allows is outside the model",
                before=b.modules_hash[:16],
                after=a.modules_hash[:16],
            )
        )
    return out


# --- nftables / iptables -----------------------------------------------------------------------------------


def _denies(chain: Chain) -> bool:
    return chain.policy == "drop" or any(r.verdict in DENY for r in chain.rules)


def _outside(chain: Chain) -> bool:
    """Base chains the paths do not evaluate: NAT/route types and ingress/egress hooks."""
    return chain.is_base and (chain.type != "filter" or chain.hook not in HOOKS_IN_MODEL)


def _chain_text(chain: Chain) -> list[str]:
    return [f"{chain.hook} {chain.priority} {chain.policy}", *(r.text for r in chain.rules)]


def _chain_name(t: Table, c: Chain) -> str:
    return f"{t.source} {t.family} {t.name} {c.name}"


def diff_ruleset(host: str, before: Ruleset, after: Ruleset) -> list[Change]:
    """Structural changes (policies, deleted or flushed chains) plus exact reachability per hook path."""
    out: list[Change] = []
    bt = {t.key: t for t in before.tables}
    at = {t.key: t for t in after.tables}
    for key in sorted(set(bt) | set(at)):
        old, new = bt.get(key), at.get(key)
        if old is not None and new is None:
            deny = any(_denies(c) for c in old.chains) or old.unsupported is not None
            out.append(
                _c(
                    host,
                    "firewall",
                    "firewall.table_deleted",
                    "weakens" if deny else "neutral",
                    f"table {key}",
                    f"table {key} was deleted"
                    + (
                        " with its drop/reject rules and policies" if deny else " (it held no drop or reject)"
                    ),
                )
            )
            continue
        if old is None and new is not None:
            out += _diff_chains(host, Table(new.family, new.name, (), source=new.source), new)
            if new.unsupported is not None:
                out.append(
                    _c(
                        host,
                        "firewall",
                        "firewall.table_outside_model",
                        "unknown",
                        f"table {key}",
                        f"new table {key}: {new.unsupported}",
                    )
                )
            continue
        assert old is not None and new is not None
        if (old.unsupported or new.unsupported) and old.raw != new.raw:
            out.append(
                _c(
                    host,
                    "firewall",
                    "firewall.table_outside_model",
                    "unknown",
                    f"table {key}",
                    f"table {key} changed and {new.unsupported or old.unsupported}",
                )
            )
        out += _diff_chains(host, old, new)
    for path in PATHS:
        out += _diff_path(host, before, after, path)
    return out


def _diff_chains(host: str, old: Table, new: Table) -> list[Change]:
    out: list[Change] = []
    for added in new.chains:
        if old.chain(added.name) is None and _outside(added) and added.rules:
            name = _chain_name(new, added)
            out.append(
                _c(
                    host,
                    "firewall",
                    "firewall.chain_outside_model",
                    "unknown",
                    f"chain {name}",
                    f"new chain {name} ({added.type}, hook {added.hook}) with {len(added.rules)} rules; "
                    "NAT/route chains and ingress/egress hooks are outside the model",
                )
            )
    for oc in old.chains:
        nc = new.chain(oc.name)
        name = _chain_name(old, oc)
        if nc is None:
            out.append(
                _c(
                    host,
                    "firewall",
                    "firewall.chain_deleted",
                    "weakens" if _denies(oc) else "neutral",
                    f"chain {name}",
                    f"chain {name} was deleted"
                    + (" with its drop/reject rules or drop policy" if _denies(oc) else ""),
                )
            )
            continue
        if oc.rules and not nc.rules:
            # a base chain that still drops by policy lost no protection by being flushed
            deny = any(r.verdict in DENY for r in oc.rules) and not (nc.is_base and nc.policy == "drop")
            out.append(
                _c(
                    host,
                    "firewall",
                    "firewall.chain_flushed",
                    "weakens" if deny else "neutral",
                    f"chain {name}",
                    f"chain {name} was flushed ({len(oc.rules)} rules removed"
                    + (", including drop/reject rules)" if deny else ")"),
                )
            )
        if oc.policy != nc.policy and oc.policy is not None and nc.policy is not None:
            effect: Effect = "weakens" if (oc.policy, nc.policy) == ("drop", "accept") else "strengthens"
            out.append(
                _c(
                    host,
                    "firewall",
                    "firewall.policy",
                    effect,
                    f"policy of chain {name}",
                    f"{oc.hook or ''} chain {name} policy changed {oc.policy} -> {nc.policy}".strip(),
                    before=oc.policy,
                    after=nc.policy,
                )
            )
        if (_outside(oc) or _outside(nc)) and _chain_text(oc) != _chain_text(nc):
            out.append(
                _c(
                    host,
                    "firewall",
                    "firewall.chain_outside_model",
                    "unknown",
                    f"chain {name}",
                    f"chain {name} ({nc.type}, hook {nc.hook}) changed; "
                    "NAT/route chains and ingress/egress hooks are outside the model",
                )
            )
    return out


def _admitted(box: tuple[tuple[tuple[int, int], ...], ...]) -> list[tuple[str, int, int]]:
    out: list[tuple[str, int, int]] = []
    for lo, hi in box[Field.L4]:
        if hi - lo > 8:
            return [("*", 0, 65535)]
        for proto in range(lo, hi + 1):
            name = PROTO_NAMES.get(proto, str(proto))
            if proto in PORT_PROTOCOLS:
                out.extend((name, plo, phi) for plo, phi in box[Field.DPORT])
            else:
                out.append((name, 0, 65535))
    return out


def _diff_path(host: str, before: Ruleset, after: Ruleset, path: str) -> list[Change]:
    if chain_signature(before, path) == chain_signature(after, path):  # type: ignore[arg-type]
        return []
    try:
        deltas = compare_path(before, after, path)  # type: ignore[arg-type]
    except OutsideModel as exc:
        return [
            _c(
                host,
                "firewall",
                "firewall.outside_model",
                "unknown",
                f"{path} path",
                f"the {path} path changed and a packet reaches {exc.where}, which uses {exc.why}; "
                "the model cannot prove the change safe",
            )
        ]
    if not deltas:
        return [
            _c(
                host,
                "firewall",
                "firewall.reordered",
                "neutral",
                f"{path} path",
                f"rules on the {path} path changed (order, handles, counters, comments or redundant rules) "
                "but no "
                "packet's verdict changed",
            )
        ]
    groups: dict[tuple[str, str, str], list[Delta]] = {}
    for d in deltas:
        groups.setdefault((d.after.verdict, d.before.by, d.after.by), []).append(d)
    after_rules = {r.text for t in after.tables for c in t.chains for r in c.rules}
    out: list[Change] = []
    for (verdict, by_before, by_after), ds in groups.items():
        boxes = [(fam, b) for fam in (4, 6) for b in merge_boxes([d.box for d in ds if d.family == fam])]
        examples = [box_text(b, fam) for fam, b in boxes[:MAX_EXAMPLES]]
        more = f" (and {len(boxes) - MAX_EXAMPLES} more groups)" if len(boxes) > MAX_EXAMPLES else ""
        gone = ds[0].before.rule is not None and ds[0].before.rule.text not in after_rules
        if verdict == "accept":
            reason = (
                f"the {path} path now accepts {'; '.join(examples)}{more}, which {by_before} denied before; "
                f"now accepted by {by_after}" + ("; that rule was removed" if gone else "")
            )
            kind = "firewall.rule_removed" if gone else "firewall.admits"
            admitted = tuple(sorted({a for _f, b in boxes for a in _admitted(b)}))
            out.append(
                _c(
                    host,
                    "firewall",
                    kind,
                    "weakens",
                    f"{path}: {by_after}",
                    reason,
                    admitted=admitted,
                    before="deny",
                    after="accept",
                )
            )
        else:
            reason = (
                f"the {path} path now denies {'; '.join(examples)}{more} (by {by_after}; before: {by_before})"
            )
            out.append(
                _c(
                    host,
                    "firewall",
                    "firewall.denies",
                    "strengthens",
                    f"{path}: {by_after}",
                    reason,
                    before="accept",
                    after="deny",
                )
            )
    return out


def _state_change(
    host: str, family: str, was_on: bool, is_on: bool, states: tuple[str, str], moves: tuple[str, str]
) -> list[Change]:
    """A firewall service switched off (weakens) or on (strengthens); `states` and `moves` are the words for
    (on, off) and (switched off, switched on)."""
    if was_on == is_on:
        return []
    change = _c(
        host,
        family,
        f"{family}.state",
        "weakens" if was_on else "strengthens",
        family,
        f"{family} {moves[0] if was_on else moves[1]}",
        before=states[0] if was_on else states[1],
        after=states[0] if is_on else states[1],
    )
    return [change]


# --- firewalld ---------------------------------------------------------------------------------------------


def _port_tuple(spec: str) -> tuple[str, int, int] | None:
    port, _, proto = spec.partition("/")
    lo, _, hi = port.partition("-")
    if not lo.isdigit() or (hi and not hi.isdigit()):
        return None
    return (proto or "tcp", int(lo), int(hi or lo))


def diff_firewalld(host: str, b: FirewalldState | None, a: FirewalldState | None) -> list[Change]:
    """firewalld running state and every zone setting that admits more or less."""
    if b is None or a is None:
        return []
    out = _state_change(
        host, "firewalld", b.running, a.running, ("running", "not running"), ("stopped", "started")
    )
    if not (b.running and a.running):
        return out  # a stopped firewalld lists no zones; the state change above says it all
    bz = {z.name: z for z in b.zones}
    az = {z.name: z for z in a.zones}
    b_default = next((z.name for z in b.zones if z.default), None)
    a_default = next((z.name for z in a.zones if z.default), None)
    if b_default != a_default:
        out.append(
            _c(
                host,
                "firewalld",
                "firewalld.default_zone",
                "unknown",
                "default zone",
                f"default zone changed {b_default} -> {a_default}",
                before=b_default,
                after=a_default,
            )
        )
    for name in sorted(set(bz) | set(az)):
        old, new = bz.get(name), az.get(name)
        if old is None:
            old = FirewalldZone(name)
        if new is None:
            out.append(
                _c(
                    host,
                    "firewalld",
                    "firewalld.zone_removed",
                    "unknown",
                    f"zone {name}",
                    f"zone {name} was removed; its interfaces and sources fall to another zone",
                )
            )
            continue
        out += _diff_zone(host, old, new)
    return out


def _diff_zone(host: str, old: FirewalldZone, new: FirewalldZone) -> list[Change]:
    out: list[Change] = []
    z = f"zone {new.name}"
    if old.target != new.target:
        effect: Effect = (
            "weakens"
            if ZONE_TARGET_RANK.get(new.target, -1) < ZONE_TARGET_RANK.get(old.target, 9)
            else "strengthens"
        )
        out.append(
            _c(
                host,
                "firewalld",
                "firewalld.target",
                effect,
                f"{z} target",
                f"firewalld {z} target changed {old.target} -> {new.target}",
                before=old.target,
                after=new.target,
            )
        )
    for attr, label in (
        ("services", "service"),
        ("ports", "port"),
        ("protocols", "protocol"),
        ("source_ports", "source port"),
        ("forward_ports", "forward port"),
        ("sources", "source"),
    ):
        was, now = set(getattr(old, attr)), set(getattr(new, attr))
        for item in sorted(now - was):
            pt = _port_tuple(item) if attr == "ports" else None
            out.append(
                _c(
                    host,
                    "firewalld",
                    f"firewalld.{attr}",
                    "weakens",
                    f"{z} {label} {item}",
                    f"firewalld {z} now admits {label} {item}",
                    after=item,
                    admitted=(pt,) if pt else (),
                )
            )
        for item in sorted(was - now):
            effect = "neutral" if attr == "sources" else "strengthens"
            out.append(
                _c(
                    host,
                    "firewalld",
                    f"firewalld.{attr}",
                    effect,
                    f"{z} {label} {item}",
                    f"firewalld {z} no longer lists {label} {item}",
                    before=item,
                )
            )
    if set(old.interfaces) != set(new.interfaces) and old.interfaces:
        out.append(
            _c(
                host,
                "firewalld",
                "firewalld.interfaces",
                "unknown",
                f"{z} interfaces",
                f"interfaces of {z} changed {' '.join(old.interfaces) or '-'} -> "
                f"{' '.join(new.interfaces) or '-'}",
            )
        )
    for attr, label in (("masquerade", "masquerade"), ("forward", "intra-zone forwarding")):
        was, now = getattr(old, attr), getattr(new, attr)
        if was != now:
            out.append(
                _c(
                    host,
                    "firewalld",
                    f"firewalld.{attr}",
                    "weakens" if now else "strengthens",
                    f"{z} {label}",
                    f"firewalld {z} {label} turned {'on' if now else 'off'}",
                    before="yes" if was else "no",
                    after="yes" if now else "no",
                )
            )
    if old.icmp_block_inversion != new.icmp_block_inversion:
        out.append(
            _c(
                host,
                "firewalld",
                "firewalld.icmp_block_inversion",
                "unknown",
                f"{z} icmp-block-inversion",
                f"firewalld {z} icmp-block-inversion changed; the meaning of its icmp-blocks flipped",
            )
        )
    for item in sorted(set(old.icmp_blocks) - set(new.icmp_blocks)):
        out.append(
            _c(
                host,
                "firewalld",
                "firewalld.icmp_blocks",
                "weakens",
                f"{z} icmp-block {item}",
                f"firewalld {z} no longer blocks icmp {item}",
            )
        )
    for item in sorted(set(new.icmp_blocks) - set(old.icmp_blocks)):
        out.append(
            _c(
                host,
                "firewalld",
                "firewalld.icmp_blocks",
                "strengthens",
                f"{z} icmp-block {item}",
                f"firewalld {z} now blocks icmp {item}",
            )
        )
    for rule in sorted(set(new.rich_rules) - set(old.rich_rules)):
        effect = _rich_effect(rule, added=True)
        out.append(
            _c(
                host,
                "firewalld",
                "firewalld.rich_rule",
                effect,
                f"{z} rich rule",
                f"firewalld {z} rich rule added: {rule}",
                after=rule,
            )
        )
    for rule in sorted(set(old.rich_rules) - set(new.rich_rules)):
        effect = _rich_effect(rule, added=False)
        out.append(
            _c(
                host,
                "firewalld",
                "firewalld.rich_rule",
                effect,
                f"{z} rich rule",
                f"firewalld {z} rich rule removed: {rule}",
                before=rule,
            )
        )
    return out


def _rich_effect(rule: str, *, added: bool) -> Effect:
    words = set(rule.replace('"', " ").split())
    admits = bool(words & {"accept", "masquerade", "forward-port"})
    denies = bool(words & {"drop", "reject"})
    if admits == denies:
        return "neutral" if not admits else "unknown"
    if admits:
        return "weakens" if added else "strengthens"
    return "strengthens" if added else "weakens"


# --- ufw ---------------------------------------------------------------------------------------------------


def diff_ufw(host: str, b: UfwState | None, a: UfwState | None) -> list[Change]:
    """ufw enabled state, default policies and rules."""
    if b is None or a is None:
        return []
    out = _state_change(host, "ufw", b.active, a.active, ("active", "inactive"), ("disabled", "enabled"))
    if not (b.active and a.active):
        return out  # an inactive ufw lists no defaults or rules; the state change above says it all
    bd, ad = dict(b.defaults), dict(a.defaults)
    for direction in sorted(set(bd) | set(ad)):
        old, new = bd.get(direction), ad.get(direction)
        if old == new or old is None or new is None:
            continue
        effect: Effect = "weakens" if UFW_RANK.get(new, 0) < UFW_RANK.get(old, 1) else "strengthens"
        out.append(
            _c(
                host,
                "ufw",
                "ufw.default",
                effect,
                f"default {direction}",
                f"ufw default {direction} policy changed {old} -> {new}",
                before=old,
                after=new,
            )
        )
    old_rules = Counter(r.text for r in b.rules)
    new_rules = Counter(r.text for r in a.rules)
    for rule in a.rules:
        if new_rules[rule.text] > old_rules[rule.text]:
            allows = rule.action.split()[0] in ("ALLOW", "LIMIT")
            pt = _port_tuple(rule.to.split()[0]) if allows else None
            out.append(
                _c(
                    host,
                    "ufw",
                    "ufw.rule",
                    "weakens" if allows else "strengthens",
                    rule.text,
                    f"ufw rule added: {rule.text}",
                    after=rule.text,
                    admitted=(pt,) if pt else (),
                )
            )
            new_rules[rule.text] -= 1
    for rule in b.rules:
        if old_rules[rule.text] > Counter(r.text for r in a.rules)[rule.text]:
            allows = rule.action.split()[0] in ("ALLOW", "LIMIT")
            out.append(
                _c(
                    host,
                    "ufw",
                    "ufw.rule",
                    "strengthens" if allows else "weakens",
                    rule.text,
                    f"ufw rule removed: {rule.text}",
                    before=rule.text,
                )
            )
            old_rules[rule.text] -= 1
    return out


# --- sockets -----------------------------------------------------------------------------------------------


def diff_sockets(host: str, b: Sequence[Socket] | None, a: Sequence[Socket] | None) -> list[Change]:
    """A new socket listening on a non-loopback address weakens; one that closed is neutral."""
    if b is None or a is None:
        return []
    old = {s.key for s in b}
    out: list[Change] = []
    for s in a:
        if s.key in old or s.loopback:
            continue
        where = f"{s.proto} {s.address}:{s.port}"
        out.append(
            _c(
                host,
                "sockets",
                "sockets.listen",
                "weakens",
                where,
                f"new {s.proto} socket listening on {s.address}:{s.port} (not loopback)"
                + (f" by {s.process}" if s.process else ""),
                after=s.process or None,
                admitted=((s.proto, s.port, s.port),),
            )
        )
    return out


def with_allowed(change: Change, allowed_by: str) -> Change:
    """The same change, marked as expected by a policy entry."""
    return dataclasses.replace(change, allowed_by=allowed_by)
