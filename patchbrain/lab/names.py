"""How lab instances and everything they create are named: one fixed marker, one token per instance.

Every interface and network namespace the lab creates is named `pbl-<token>-<kind><n>`, at most 15
characters (the kernel's limit for interface names). `<token>` is the instance name itself when it is short
and plain (`[a-z][a-z0-9]{0,5}`, starting with a letter), else a digit followed by five hex digits of its
hash, so the two forms never collide. `lab down --all` recognises leftovers by this pattern and nothing else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import os
import re

from patchbrain.errors import BadInput

MARKER = "pbl-"
DEFAULT_INSTANCE = "pb"
INSTANCE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
_PLAIN_TOKEN = re.compile(r"^[a-z][a-z0-9]{0,5}$")
# Anything the lab ever creates matches this; nothing else should.
RESOURCE_RE = re.compile(r"^pbl-(?P<token>[a-z0-9]{1,6})-(?P<kind>br|[vph][0-9]{1,2})$")
MAX_HOSTS = 64
HOST_OFFSET = 10  # host i (1-based) gets address .(10 + i); the bridge is .1
SUBNET_POOL = ipaddress.IPv4Network("10.213.0.0/16")


def instance_from_env() -> str:
    """The lab instance named by $PATCHBRAIN_LAB (default `pb`), validated."""
    return check_instance(os.environ.get("PATCHBRAIN_LAB") or DEFAULT_INSTANCE)


def check_instance(name: str) -> str:
    """`name` if it is a valid instance name, else BadInput."""
    if not INSTANCE_RE.match(name):
        raise BadInput(
            "must be 1-40 letters, digits, '.', '_' or '-', starting with a letter or digit",
            source="PATCHBRAIN_LAB",
            field=name,
        )
    return name


def token(instance: str) -> str:
    """The short token used in resource names: the instance itself if short and plain, else a hash."""
    if _PLAIN_TOKEN.match(instance):
        return instance
    digest = hashlib.sha256(instance.encode()).hexdigest()
    return str(int(digest[:8], 16) % 10) + digest[8:13]


def host_name(index: int) -> str:
    """The inventory (and UTS) name of host `index` (1-based): h01, h02, ..."""
    return f"h{index:02d}"


def host_index(name: str) -> int:
    """The 1-based index of a host named by `host_name`, else BadInput."""
    m = re.fullmatch(r"h(\d{2})", name)
    if not m or not 1 <= int(m.group(1)) <= MAX_HOSTS:
        raise BadInput(f"no such lab host (hosts are named h01..h{MAX_HOSTS:02d})", source=name)
    return int(m.group(1))


@dataclasses.dataclass(frozen=True)
class Names:
    """The names of every resource of one instance."""

    instance: str

    @property
    def token(self) -> str:
        return token(self.instance)

    @property
    def bridge(self) -> str:
        return f"{MARKER}{self.token}-br"

    def veth(self, index: int) -> str:
        """The root-namespace end of host `index`'s veth pair (on the bridge)."""
        return f"{MARKER}{self.token}-v{index}"

    def peer(self, index: int) -> str:
        """The host end of the veth pair before it moves into the namespace and becomes eth0."""
        return f"{MARKER}{self.token}-p{index}"

    def netns(self, index: int) -> str:
        return f"{MARKER}{self.token}-h{index}"

    def owns(self, resource: str) -> bool:
        """True if `resource` (an interface or netns name) belongs to this instance."""
        m = RESOURCE_RE.match(resource)
        return bool(m and m.group("token") == self.token)


def preferred_subnet(instance: str) -> ipaddress.IPv4Network:
    """The first /24 to try for `instance`: spread over 10.213.0.0/16 by a hash of its name."""
    n = int(hashlib.sha256(instance.encode()).hexdigest()[:8], 16) % 254 + 1
    return ipaddress.IPv4Network(f"10.213.{n}.0/24")


def candidate_subnets(instance: str) -> list[ipaddress.IPv4Network]:
    """Every /24 of the pool, starting with the instance's preferred one."""
    first = preferred_subnet(instance)
    pool = [s for s in SUBNET_POOL.subnets(new_prefix=24) if 0 < int(s.network_address.packed[2]) < 255]
    i = pool.index(first)
    return pool[i:] + pool[:i]


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    """A subnet given in $PATCHBRAIN_LAB_SUBNET: a private IPv4 /24."""
    try:
        net = ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        raise BadInput(str(exc), source="PATCHBRAIN_LAB_SUBNET", field=text) from exc
    if net.prefixlen != 24 or not net.is_private:
        raise BadInput("must be a private IPv4 /24", source="PATCHBRAIN_LAB_SUBNET", field=text)
    return net


def host_address(subnet: ipaddress.IPv4Network, index: int) -> ipaddress.IPv4Address:
    """The address of host `index` (1-based) in the instance's subnet."""
    if not 1 <= index <= MAX_HOSTS:
        raise BadInput(f"host index must be 1..{MAX_HOSTS}", field=str(index))
    return subnet.network_address + HOST_OFFSET + index


def bridge_address(subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    return subnet.network_address + 1
