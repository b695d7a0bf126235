"""The canonical posture model: every source (nft, iptables, firewalld, ufw, SELinux, ss) parses into these.

The firewall part is bounded and explicit. A packet is a point in a finite space of fields (`Field`);
a rule is a conjunction of per-field constraints (each a union of integer intervals) plus one verdict.
Anything a parser cannot express this way is kept as text in `Rule.unsupported`, and any comparison
that touches such a rule is reported as `unknown`, never as safe.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
from typing import Literal


class Field(enum.IntEnum):
    """The packet fields the bounded firewall model knows. A packet has one value per field."""

    FAMILY = 0  # 4 or 6
    L4 = 1  # IP protocol number (tcp 6, udp 17, icmp 1, ipv6-icmp 58, ...)
    SADDR = 2  # IPv4 or IPv6 address as an integer (domain depends on FAMILY)
    DADDR = 3
    SPORT = 4  # 0..65535, meaningful for port protocols only
    DPORT = 5
    ICMPTYPE = 6  # 0..255, meaningful for icmp / ipv6-icmp only
    IIF = 7  # input interface name, encoded by `encode_ifname` ("" = none)
    OIF = 8  # output interface name
    CT = 9  # conntrack state, index into CT_STATES


CT_STATES: tuple[str, ...] = ("invalid", "established", "related", "new", "untracked")
PORT_PROTOCOLS: frozenset[int] = frozenset({6, 17, 33, 132, 136})  # tcp udp dccp sctp udplite
PROTO_NUMBERS: dict[str, int] = {
    "icmp": 1,
    "igmp": 2,
    "tcp": 6,
    "udp": 17,
    "dccp": 33,
    "gre": 47,
    "esp": 50,
    "ah": 51,
    "ipv6-icmp": 58,
    "icmpv6": 58,
    "sctp": 132,
    "udplite": 136,
}
PROTO_NAMES: dict[int, str] = {
    1: "icmp",
    2: "igmp",
    6: "tcp",
    17: "udp",
    33: "dccp",
    47: "gre",
    50: "esp",
    51: "ah",
    58: "ipv6-icmp",
    132: "sctp",
    136: "udplite",
}
IFNAME_BYTES = 16
ADDR_MAX = {4: (1 << 32) - 1, 6: (1 << 128) - 1}

Interval = tuple[int, int]
IntervalSet = tuple[Interval, ...]  # sorted, disjoint, non-adjacent, inclusive bounds


def encode_ifname(name: str) -> int:
    """An interface name as an integer that keeps lexicographic order ("" is 0)."""
    raw = name.encode("utf-8")[:IFNAME_BYTES]
    return int.from_bytes(raw.ljust(IFNAME_BYTES, b"\0"), "big")


def decode_ifname(value: int) -> str:
    """The interface name an `encode_ifname` value stands for (trailing NULs dropped)."""
    return value.to_bytes(IFNAME_BYTES, "big").rstrip(b"\0").decode("utf-8", "replace")


def ifname_interval(pattern: str) -> Interval:
    """The names a pattern matches: exact, or a prefix when it ends in `*` (nft) or `+` (iptables)."""
    if pattern.endswith(("*", "+")) and not pattern.endswith("\\*"):
        prefix = pattern[:-1].encode("utf-8")[:IFNAME_BYTES]
        lo = int.from_bytes(prefix.ljust(IFNAME_BYTES, b"\0"), "big")
        hi = int.from_bytes(prefix.ljust(IFNAME_BYTES, b"\xff"), "big")
        return (lo, hi)
    value = encode_ifname(pattern.replace("\\*", "*"))
    return (value, value)


def field_domain(field: Field, family: int) -> Interval:
    """The full range of values a field can take for a packet of the given family."""
    if field is Field.FAMILY:
        return (4, 6)
    if field is Field.L4 or field is Field.ICMPTYPE:
        return (0, 255)
    if field in (Field.SADDR, Field.DADDR):
        return (0, ADDR_MAX[family])
    if field in (Field.SPORT, Field.DPORT):
        return (0, 65535)
    if field in (Field.IIF, Field.OIF):
        return (0, (1 << (8 * IFNAME_BYTES)) - 1)
    return (0, len(CT_STATES) - 1)


def normalize(intervals: list[Interval] | tuple[Interval, ...]) -> IntervalSet:
    """Sort and merge intervals into canonical form."""
    out: list[Interval] = []
    for lo, hi in sorted(i for i in intervals if i[0] <= i[1]):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return tuple(out)


def intersect(a: IntervalSet, b: IntervalSet) -> IntervalSet:
    """The intervals in both `a` and `b`."""
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo = max(a[i][0], b[j][0])
        hi = min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def subtract(a: IntervalSet, b: IntervalSet) -> IntervalSet:
    """The intervals in `a` and not in `b`."""
    out: list[Interval] = []
    for lo, hi in a:
        cur = lo
        for blo, bhi in b:
            if bhi < cur or blo > hi:
                continue
            if blo > cur:
                out.append((cur, blo - 1))
            cur = max(cur, bhi + 1)
            if cur > hi:
                break
        if cur <= hi:
            out.append((cur, hi))
    return tuple(out)


def prefix_interval(network: str) -> tuple[int, Interval]:
    """(family, interval) of an address or CIDR prefix such as `10.0.0.0/8` or `fd00::1`."""
    net = ipaddress.ip_network(network, strict=False)
    return net.version, (int(net.network_address), int(net.broadcast_address))


@dataclasses.dataclass(frozen=True, slots=True)
class Constraint:
    """One match of a rule: the packet's `field` lies in `values` (or outside it when `negate`)."""

    field: Field
    values: IntervalSet
    negate: bool = False

    def allowed(self, family: int) -> IntervalSet:
        """The values this constraint admits for a packet of `family`."""
        if not self.negate:
            return self.values
        return subtract((field_domain(self.field, family),), self.values)


Verdict = Literal["accept", "drop", "reject", "jump", "goto", "return", "continue"]
DENY: frozenset[str] = frozenset({"drop", "reject"})


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    """One firewall rule in the bounded model. `text` is a canonical rendering (no handles or counters)."""

    constraints: tuple[Constraint, ...]
    verdict: Verdict
    text: str
    target: str | None = None  # chain name for jump/goto
    handle: int | None = None
    comment: str | None = None
    unsupported: str | None = None  # why this rule is outside the model; None when it is inside


ChainType = Literal["filter", "nat", "route", "other"]


@dataclasses.dataclass(frozen=True, slots=True)
class Chain:
    """A chain: a base chain when `hook` is set (with its policy and priority), else a regular chain."""

    name: str
    rules: tuple[Rule, ...] = ()
    hook: str | None = None
    type: ChainType = "filter"
    priority: int = 0
    policy: Literal["accept", "drop"] | None = None

    @property
    def is_base(self) -> bool:
        return self.hook is not None


@dataclasses.dataclass(frozen=True, slots=True)
class Table:
    """A table of one family. `source` says which tool it came from (nft, iptables-nft, iptables-legacy)."""

    family: str  # ip, ip6, inet, arp, bridge, netdev
    name: str
    chains: tuple[Chain, ...]
    source: str = "nft"
    unsupported: str | None = None  # a whole table outside the model (family, sets, maps...)
    raw: str = ""  # canonical text of an out-of-model table, to tell whether it changed

    @property
    def key(self) -> str:
        return f"{self.source}:{self.family} {self.name}"

    def chain(self, name: str) -> Chain | None:
        for chain in self.chains:
            if chain.name == name:
                return chain
        return None


@dataclasses.dataclass(frozen=True, slots=True)
class Ruleset:
    """Every packet-filter table on a host, from all the tools that were present."""

    tables: tuple[Table, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class SelinuxState:
    """SELinux as the host's tools report it (a shim on lab hosts reports the same way)."""

    runtime_mode: str | None = None  # enforcing | permissive | disabled
    config_mode: str | None = None
    policy_type: str | None = None  # from /etc/selinux/config SELINUXTYPE
    loaded_policy: str | None = None  # from sestatus "Loaded policy name"
    booleans: tuple[tuple[str, bool], ...] = ()
    permissive_domains: tuple[str, ...] = ()
    modules_hash: str | None = None
    modules: tuple[str, ...] = ()
    # /etc/selinux/SIMULATED was present: SELinux here is patchbrain's lab stand-in (a shim), not a kernel's
    simulated: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class FirewalldZone:
    """One firewalld zone as `firewall-cmd --list-all-zones` prints it."""

    name: str
    active: bool = False
    default: bool = False
    target: str = "default"
    icmp_block_inversion: bool = False
    interfaces: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    ports: tuple[str, ...] = ()
    protocols: tuple[str, ...] = ()
    forward: bool = False
    masquerade: bool = False
    forward_ports: tuple[str, ...] = ()
    source_ports: tuple[str, ...] = ()
    icmp_blocks: tuple[str, ...] = ()
    rich_rules: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class FirewalldState:
    """firewalld: running or not, and its zones."""

    running: bool
    zones: tuple[FirewalldZone, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class UfwRule:
    """One line of `ufw status verbose`'s rule table."""

    to: str
    action: str  # ALLOW IN, DENY IN, REJECT OUT, LIMIT IN, ...
    source: str

    @property
    def text(self) -> str:
        return f"{self.to} {self.action} {self.source}"


@dataclasses.dataclass(frozen=True, slots=True)
class UfwState:
    """ufw: active or not, its defaults per direction and its rules."""

    active: bool
    defaults: tuple[tuple[str, str], ...] = ()  # (incoming|outgoing|routed, allow|deny|reject|disabled)
    rules: tuple[UfwRule, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Socket:
    """A listening socket from `ss -H -tulpn`."""

    proto: str  # tcp | udp
    address: str  # as printed, without brackets; "*" for any
    port: int
    process: str = ""

    @property
    def loopback(self) -> bool:
        addr = self.address.split("%", 1)[0]
        if addr in ("*", ""):
            return False
        try:
            return ipaddress.ip_address(addr).is_loopback
        except ValueError:
            return False

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.proto, self.address, self.port)


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """One host's posture at one moment. A None part means the tool was absent on the host."""

    host: str
    taken_at: str = ""
    ruleset: Ruleset = Ruleset()
    firewalld: FirewalldState | None = None
    ufw: UfwState | None = None
    selinux: SelinuxState | None = None
    sockets: tuple[Socket, ...] | None = None
    sources: tuple[str, ...] = ()  # which raw sources were present


Effect = Literal["weakens", "strengthens", "neutral", "unknown"]


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    """One classified difference between two snapshots of a host."""

    host: str
    area: str  # selinux | firewall | firewalld | ufw | sockets
    kind: str  # machine-readable kind, e.g. "selinux.runtime_mode", "firewall.admits"
    effect: Effect
    subject: str  # the exact rule or setting
    reason: str  # plain English
    before: str | None = None
    after: str | None = None
    allowed_by: str | None = None  # policy entry (file:line) that expects this weakening
    admitted: tuple[tuple[str, int, int], ...] = ()  # (proto, port_lo, port_hi) a firewall change admits

    @property
    def blocks(self) -> bool:
        """Whether this change, on its own, stops a rollout by default."""
        return self.allowed_by is None and self.effect in ("weakens", "unknown")
