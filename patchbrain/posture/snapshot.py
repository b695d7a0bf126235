"""Raw posture documents (what the `posture` role returns per host) and their parsing into a Snapshot.

A raw document keeps each tool's exact output, so a snapshot file is evidence that can be re-parsed later:

    {"schema": 1, "host": "web1", "collected_at": "...",
     "probes": {"nft_ruleset": {"rc": 0, "stdout": "...", "stderr": "", "missing": false}, ...}}
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

from patchbrain.errors import BadInput
from patchbrain.posture import firewalld, iptables, nft, selinux, sockets, ufw
from patchbrain.posture.models import Ruleset, SelinuxState, Snapshot, Table

RAW_SCHEMA = 1
FILE_SCHEMA = "patchbrain.posture.snapshot/1"
# probe name -> exit codes that still mean "the tool answered" (anything else is bad input)
PROBES: dict[str, frozenset[int]] = {
    "nft_ruleset": frozenset({0}),
    "iptables_save": frozenset({0}),
    "ip6tables_save": frozenset({0}),
    "iptables_legacy_save": frozenset({0}),
    "ip6tables_legacy_save": frozenset({0}),
    "firewalld_state": frozenset({0, 252}),
    "firewalld_zones": frozenset({0, 252}),
    "ufw_status": frozenset({0}),
    "getenforce": frozenset({0}),
    "sestatus": frozenset({0}),
    "selinux_enforce": frozenset({0}),
    "selinux_config": frozenset({0}),
    "selinux_simulated": frozenset({0}),
    "getsebool": frozenset({0}),
    "semanage_permissive": frozenset({0}),
    "semodule": frozenset({0}),
    "ss": frozenset({0}),
}
# SELinux management tools fail when SELinux is disabled; that is fine only if it really is disabled
SELINUX_MANAGEMENT = frozenset({"getsebool", "semanage_permissive", "semodule"})
SELINUX_PROBES = {
    "getenforce": "getenforce",
    "sestatus": "sestatus",
    "selinux_enforce": "enforce_file",
    "selinux_config": "config",
    "selinux_simulated": "simulated",
    "getsebool": "getsebool",
    "semanage_permissive": "permissive",
    "semodule": "modules",
}


def outputs(doc: dict[str, Any], *, host: str, only: Collection[str] | None = None) -> dict[str, str]:
    """The stdout of every probe whose tool was present (of `only`, when given), after checking exit
    codes."""
    probes = doc.get("probes")
    if not isinstance(probes, dict):
        raise BadInput("no 'probes' object", source=f"{host}: posture document", field="probes")
    out: dict[str, str] = {}
    for name, result in probes.items():
        if name not in PROBES or (only is not None and name not in only):
            continue  # a newer role may collect more; unknown probes are not ours to judge
        if not isinstance(result, dict):
            raise BadInput("probe result is not an object", source=f"{host}: {name}", field=name)
        if result.get("missing"):
            continue
        rc = result.get("rc")
        stdout = result.get("stdout", "")
        if not isinstance(stdout, str):
            raise BadInput("stdout is not text", source=f"{host}: {name}", field="stdout")
        if rc not in PROBES[name] and name in SELINUX_MANAGEMENT and rc != 0:
            out[f"failed:{name}"] = str(result.get("stderr", ""))[:200].strip() or f"exit {rc}"
            continue  # acceptable only when SELinux is disabled; parse_document checks that
        if rc not in PROBES[name]:
            err = str(result.get("stderr", ""))[:200].strip()
            raise BadInput(f"exited {rc}: {err or 'no error text'}", source=f"{host}: {name}", field="rc")
        out[name] = stdout
    return out


def _merge(nft_tables: tuple[Table, ...], ipt: list[Table]) -> tuple[Table, ...]:
    """nft tables, with iptables-nft's own tables shown as iptables-save reads them (no duplicates)."""
    managed = {(t.family, t.name) for t in ipt if t.source == "iptables-nft"}
    kept = [t for t in nft_tables if (t.family, t.name) not in managed]
    return tuple(sorted([*kept, *ipt], key=lambda t: t.key))


def _checked(doc: Any, host: str | None) -> str:
    """The document's host name, once it is an object of the raw schema (else BadInput)."""
    if not isinstance(doc, dict):
        raise BadInput("posture document is not an object", source=f"{host or '?'}: posture document")
    name = str(doc.get("host") or host or "?")
    if doc.get("schema") != RAW_SCHEMA:
        raise BadInput(
            f"unsupported document schema {doc.get('schema')!r} (expected {RAW_SCHEMA})",
            source=f"{name}: posture document",
            field="schema",
        )
    return name


def _selinux(out: dict[str, str], failed: dict[str, str], name: str) -> SelinuxState | None:
    se = selinux.build({k: out[p] for p, k in SELINUX_PROBES.items() if p in out}, host=name)
    if failed and (se is None or se.runtime_mode != "disabled"):
        probe, err = sorted(failed.items())[0]
        raise BadInput(
            f"failed while SELinux is not known to be disabled: {err}", source=f"{name}: {probe}", field="rc"
        )
    return se


def _split(out: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    failed = {k.split(":", 1)[1]: v for k, v in out.items() if k.startswith("failed:")}
    return {k: v for k, v in out.items() if not k.startswith("failed:")}, failed


def parse_selinux(doc: Any, *, host: str | None = None) -> SelinuxState | None:
    """Only the SELinux part of a raw document (modes, booleans, the simulated marker...), as
    `parse_document` reads it, without parsing the firewall; None when the host had no SELinux source."""
    name = _checked(doc, host)
    out, failed = _split(outputs(doc, host=name, only=SELINUX_PROBES))
    return _selinux(out, failed, name)


def selinux_label(doc: Any, *, host: str | None = None) -> dict[str, Any]:
    """`{"mode", "config_mode", "simulated"}` of a raw document, for reports: `simulated` is whether the
    host's simulated-SELinux marker was read (False when absent; None, with "error", when the document
    cannot be read)."""
    try:
        se = parse_selinux(doc, host=host)
    except BadInput as exc:
        return {"mode": None, "config_mode": None, "simulated": None, "error": str(exc)}
    if se is None:
        return {"mode": None, "config_mode": None, "simulated": False}
    return {"mode": se.runtime_mode, "config_mode": se.config_mode, "simulated": se.simulated}


def parse_document(doc: Any, *, host: str | None = None) -> Snapshot:
    """One host's raw document as a Snapshot (BadInput names the host and the source on any doubt)."""
    name = _checked(doc, host)
    out, failed = _split(outputs(doc, host=name))
    nft_tables: tuple[Table, ...] = ()
    if "nft_ruleset" in out:
        nft_tables = nft.parse_ruleset(out["nft_ruleset"], host=name)
    ipt: list[Table] = []
    for probe, tool in (
        ("iptables_save", "iptables-save"),
        ("ip6tables_save", "ip6tables-save"),
        ("iptables_legacy_save", "iptables-legacy-save"),
        ("ip6tables_legacy_save", "ip6tables-legacy-save"),
    ):
        if probe in out:
            tables = iptables.parse_save(out[probe], host=name, tool=tool)
            if "legacy" in probe:
                tables = tuple(t for t in tables if t.source == "iptables-legacy")
            ipt.extend(t for t in tables if t.key not in {x.key for x in ipt})
    fw = firewalld.build(
        {k: out[p] for p, k in (("firewalld_state", "state"), ("firewalld_zones", "zones")) if p in out},
        host=name,
    )
    se = _selinux(out, failed, name)
    return Snapshot(
        host=name,
        taken_at=str(doc.get("collected_at", "")),
        ruleset=Ruleset(_merge(nft_tables, ipt)),
        firewalld=fw,
        ufw=ufw.parse_status(out["ufw_status"], host=name) if "ufw_status" in out else None,
        selinux=se,
        sockets=sockets.parse_ss(out["ss"], host=name) if "ss" in out else None,
        sources=tuple(sorted(out)),
    )


def load_file(path: Path) -> dict[str, dict[str, Any]]:
    """A snapshot file: {host: raw document}. Accepts the file format or a bare {host: document} map."""
    source = str(path)
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise BadInput("directory holds no <host>.json documents", source=source)
        docs: dict[str, dict[str, Any]] = {}
        for f in files:
            try:
                docs[f.stem] = json.loads(f.read_bytes())
            except (ValueError, UnicodeDecodeError) as exc:
                raise BadInput(f"not a JSON posture document ({exc})", source=str(f)) from exc
        return docs
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read: {exc.strerror}", source=source) from exc
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"not a JSON snapshot file ({exc})", source=source) from exc
    if not isinstance(doc, dict):
        raise BadInput("top level is not an object", source=source)
    if "schema" in doc:
        if doc.get("schema") != FILE_SCHEMA:
            raise BadInput(
                f"unknown snapshot file schema {doc.get('schema')!r}", source=source, field="schema"
            )
        hosts = doc.get("hosts")
    else:
        hosts = doc
    if not isinstance(hosts, dict) or not hosts:
        raise BadInput("no hosts in the snapshot file", source=source, field="hosts")
    return {str(h): d for h, d in hosts.items()}


def file_document(hosts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The JSON object a snapshot file holds."""
    return {"schema": FILE_SCHEMA, "hosts": hosts}
