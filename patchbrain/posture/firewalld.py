"""Parse firewalld's `firewall-cmd --state` and `firewall-cmd --list-all-zones` (documented text format)."""

from __future__ import annotations

import dataclasses
import re

from patchbrain.errors import BadInput
from patchbrain.posture.models import FirewalldState, FirewalldZone

_HEADER = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)(?P<flags>(?:\s+\((?:active|default)\))*)\s*$")
LIST_KEYS = {
    "interfaces": "interfaces",
    "sources": "sources",
    "services": "services",
    "ports": "ports",
    "protocols": "protocols",
    "forward-ports": "forward_ports",
    "source-ports": "source_ports",
    "icmp-blocks": "icmp_blocks",
}
BOOL_KEYS = {"masquerade": "masquerade", "forward": "forward", "icmp-block-inversion": "icmp_block_inversion"}


def parse_state(text: str, *, host: str) -> bool:
    """`firewall-cmd --state`: True when it prints `running`."""
    return text.strip() == "running"


def parse_zones(text: str, *, host: str) -> tuple[FirewalldZone, ...]:
    """Every zone block of `firewall-cmd --list-all-zones`."""
    source = f"{host}: firewall-cmd --list-all-zones"
    if "\0" in text:
        raise BadInput("binary data where firewall-cmd output was expected", source=source)
    zones: list[FirewalldZone] = []
    current: dict[str, object] | None = None
    in_rich = False
    for lineno, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            in_rich = False
            continue
        if not raw[0].isspace():
            m = _HEADER.match(raw)
            if m is None:
                raise BadInput(f"line {lineno}: expected a zone name, got {raw[:60]!r}", source=source)
            if current is not None:
                zones.append(FirewalldZone(**current))  # type: ignore[arg-type]
            flags = m.group("flags")
            current = {
                "name": m.group("name"),
                "active": "(active)" in flags,
                "default": "(default)" in flags,
            }
            in_rich = False
            continue
        if current is None:
            raise BadInput(f"line {lineno}: zone content before any zone name", source=source)
        line = raw.strip()
        if in_rich and (raw.startswith("\t\t") or line.startswith("rule ")):
            current["rich_rules"] = (*current.get("rich_rules", ()), line)  # type: ignore[misc]
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise BadInput(f"line {lineno}: expected 'key: value', got {line[:60]!r}", source=source)
        key, value = key.strip(), value.strip()
        if key == "rich rules":
            in_rich = True
            if value:
                current["rich_rules"] = (value,)
        elif key == "target":
            current["target"] = value
        elif key in LIST_KEYS:
            current[LIST_KEYS[key]] = tuple(sorted(value.split()))
        elif key in BOOL_KEYS:
            if value not in ("yes", "no"):
                raise BadInput(
                    f"line {lineno}: {key} must be yes or no, got {value!r}", source=source, field=key
                )
            current[BOOL_KEYS[key]] = value == "yes"
        # other keys (ingress-priority, egress-priority, summary ...) do not change what is admitted
    if current is not None:
        zones.append(FirewalldZone(**current))  # type: ignore[arg-type]
    return tuple(zones)


def build(raw: dict[str, str], *, host: str) -> FirewalldState | None:
    """A FirewalldState from the host's firewall-cmd outputs (None when firewalld is absent)."""
    if "state" not in raw:
        return None
    running = parse_state(raw["state"], host=host)
    zones = parse_zones(raw["zones"], host=host) if running and "zones" in raw else ()
    return FirewalldState(running=running, zones=tuple(sorted(zones, key=lambda z: z.name)))


def zone_dict(zone: FirewalldZone) -> dict[str, object]:
    """A zone as a plain dict (for reports)."""
    return dataclasses.asdict(zone)
