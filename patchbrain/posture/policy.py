"""The drift policy file: what an update is expected to open, so that those weakenings do not abort.

    version: 1
    unknown: abort            # or "warn": an `unknown` change does not stop the rollout
    allow:
      - package: labdemo      # optional: the entry applies only when this package is in the update
        ports: ["8080/tcp", "9000-9010/udp"]
        selinux_booleans: [httpd_can_network_connect]
        permissive_domains: []
        firewalld_services: [http]

Errors name the file, the line and the field.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml

from patchbrain.errors import BadInput
from patchbrain.posture.models import Change

_PORT = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?/(tcp|udp|sctp)$")
_NAME = re.compile(r"^[A-Za-z0-9_.+\-]{1,128}$")
ENTRY_KEYS = {"package", "ports", "selinux_booleans", "permissive_domains", "firewalld_services"}
TOP_KEYS = {"version", "unknown", "allow"}


@dataclasses.dataclass(frozen=True, slots=True)
class AllowEntry:
    """One allow-list entry, with where it was written."""

    where: str  # file:line
    package: str | None = None
    ports: tuple[tuple[str, int, int], ...] = ()
    selinux_booleans: frozenset[str] = frozenset()
    permissive_domains: frozenset[str] = frozenset()
    firewalld_services: frozenset[str] = frozenset()

    def covers(self, change: Change) -> bool:
        """Whether this entry expects `change` (a weakening of a kind it names)."""
        if change.kind == "selinux.boolean":
            return change.subject in self.selinux_booleans
        if change.kind == "selinux.permissive_domain":
            return change.subject in self.permissive_domains
        if change.kind == "firewalld.services":
            return change.after in self.firewalld_services
        if (
            change.kind in ("firewall.admits", "firewalld.ports", "ufw.rule", "sockets.listen")
            and change.admitted
        ):
            return all(
                any(proto == p and lo <= plo and phi <= hi for p, lo, hi in self.ports)
                for proto, plo, phi in change.admitted
            )
        return False


@dataclasses.dataclass(frozen=True, slots=True)
class Policy:
    """A validated policy file."""

    source: str = "<default>"
    unknown_aborts: bool = True
    allow: tuple[AllowEntry, ...] = ()

    def apply(self, changes: Iterable[Change], packages: Sequence[str] = ()) -> list[Change]:
        """The changes, with expected weakenings marked `allowed_by` the entry that expects them."""
        active = [e for e in self.allow if e.package is None or e.package in packages]
        out: list[Change] = []
        for change in changes:
            if change.effect == "weakens":
                entry = next((e for e in active if e.covers(change)), None)
                if entry is not None:
                    change = dataclasses.replace(change, allowed_by=entry.where)
            out.append(change)
        return out

    def blocking(self, changes: Iterable[Change]) -> list[Change]:
        """The changes that stop a rollout under this policy."""
        return [
            c
            for c in changes
            if c.allowed_by is None
            and (c.effect == "weakens" or (c.effect == "unknown" and self.unknown_aborts))
        ]


def _err(source: str, node: yaml.Node, field: str, msg: str) -> BadInput:
    return BadInput(msg, source=f"{source}:{node.start_mark.line + 1}", field=field)


def _strings(
    source: str, node: yaml.Node, field: str, pattern: re.Pattern[str]
) -> list[tuple[str, yaml.Node]]:
    if not isinstance(node, yaml.SequenceNode):
        raise _err(source, node, field, "must be a list")
    out: list[tuple[str, yaml.Node]] = []
    for item in node.value:
        if not isinstance(item, yaml.ScalarNode) or item.tag != "tag:yaml.org,2002:str":
            raise _err(source, item, field, "every item must be a string")
        if not pattern.match(item.value):
            raise _err(source, item, field, f"invalid value {item.value[:60]!r}")
        out.append((item.value, item))
    return out


def parse(text: str, source: str) -> Policy:
    """A Policy from YAML text; BadInput names `source:line` and the field on any mistake."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise BadInput(f"not valid YAML: {getattr(exc, 'problem', exc)}", source=where) from exc
    if root is None:
        return Policy(source=source)
    if not isinstance(root, yaml.MappingNode):
        raise _err(source, root, "(top level)", "must be a mapping")
    unknown_aborts = True
    entries: list[AllowEntry] = []
    seen_version = False
    for key_node, value in root.value:
        key = key_node.value
        if key not in TOP_KEYS:
            raise _err(source, key_node, key, f"unknown key (expected one of {', '.join(sorted(TOP_KEYS))})")
        if key == "version":
            seen_version = True
            if value.value != "1":
                raise _err(source, value, "version", "only version 1 is supported")
        elif key == "unknown":
            if value.value not in ("abort", "warn"):
                raise _err(source, value, "unknown", "must be abort or warn")
            unknown_aborts = value.value == "abort"
        else:
            if not isinstance(value, yaml.SequenceNode):
                raise _err(source, value, "allow", "must be a list of entries")
            entries.extend(_entry(source, item) for item in value.value)
    if not seen_version:
        raise _err(source, root, "version", "missing (write `version: 1`)")
    return Policy(source=source, unknown_aborts=unknown_aborts, allow=tuple(entries))


def _entry(source: str, node: yaml.Node) -> AllowEntry:
    if not isinstance(node, yaml.MappingNode):
        raise _err(source, node, "allow[]", "each entry must be a mapping")
    fields: dict[str, object] = {}
    for key_node, value in node.value:
        key = key_node.value
        if key not in ENTRY_KEYS:
            raise _err(
                source,
                key_node,
                f"allow[].{key}",
                f"unknown key (expected one of {', '.join(sorted(ENTRY_KEYS))})",
            )
        if key == "package":
            if not isinstance(value, yaml.ScalarNode) or not _NAME.match(value.value):
                raise _err(source, value, "allow[].package", "must be a package name")
            fields["package"] = value.value
        elif key == "ports":
            ports = []
            for text, item in _strings(source, value, "allow[].ports", _PORT):
                m = _PORT.match(text)
                assert m is not None
                lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
                if not 0 <= lo <= hi <= 65535:
                    raise _err(source, item, "allow[].ports", f"bad port range {text!r}")
                ports.append((m.group(3), lo, hi))
            fields["ports"] = tuple(ports)
        else:
            fields[key] = frozenset(v for v, _n in _strings(source, value, f"allow[].{key}", _NAME))
    return AllowEntry(where=f"{source}:{node.start_mark.line + 1}", **fields)  # type: ignore[arg-type]


def load(path: Path) -> Policy:
    """Read and validate a policy file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read: {exc}", source=str(path)) from exc
    return parse(text, str(path))
