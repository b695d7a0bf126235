"""Parse `ufw status verbose`: whether ufw is active, its default policies and its rule table."""

from __future__ import annotations

import re

from patchbrain.errors import BadInput
from patchbrain.posture.models import UfwRule, UfwState

_DEFAULT = re.compile(r"(\w+) \((incoming|outgoing|routed)\)")
_ACTION = re.compile(r"\s{2,}((?:ALLOW|DENY|REJECT|LIMIT)(?: (?:IN|OUT|FWD))?)\s{2,}")


def parse_status(text: str, *, host: str) -> UfwState:
    """One `ufw status verbose` output."""
    source = f"{host}: ufw status verbose"
    if "\0" in text:
        raise BadInput("binary data where ufw output was expected", source=source)
    lines = text.splitlines()
    status = next((line for line in lines if line.startswith("Status:")), None)
    if status is None:
        raise BadInput("no 'Status:' line", source=source, field="Status")
    active = status.split(":", 1)[1].strip() == "active"
    defaults: dict[str, str] = {}
    rules: list[UfwRule] = []
    in_table = False
    for lineno, line in enumerate(lines, 1):
        if line.startswith("Default:"):
            defaults.update({d: p for p, d in _DEFAULT.findall(line)})
            continue
        if line.startswith("--"):
            in_table = True
            continue
        if not in_table or not line.strip():
            continue
        m = _ACTION.search(line)
        if m is None:
            raise BadInput(
                f"line {lineno}: no ALLOW/DENY/REJECT/LIMIT column in {line[:60]!r}", source=source
            )
        to = line[: m.start()].strip()
        src = line[m.end() :].split("#", 1)[0].strip()
        rules.append(
            UfwRule(to=to, action=m.group(1) if " " in m.group(1) else f"{m.group(1)} IN", source=src)
        )
    if active and not defaults:
        raise BadInput(
            "active but no 'Default:' line (use `ufw status verbose`)", source=source, field="Default"
        )
    return UfwState(active=active, defaults=tuple(sorted(defaults.items())), rules=tuple(rules))
