"""Per-host SELinux labels for reports: the mode, and whether SELinux there is simulated, as read from the
hosts' own posture documents (the marker file /etc/selinux/SIMULATED is one of the probes; nothing here
guesses it from where the host runs)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from patchbrain.posture.snapshot import selinux_label

SIMULATED_NOTE = (
    "SELinux there is simulated: the lab's stand-in (a shim; /etc/selinux/SIMULATED read from the host), "
    "not a kernel enforcing a policy"
)


def host_label(documents: Iterable[Any], *, host: str) -> dict[str, Any]:
    """One host's label from its raw posture documents, oldest first: `simulated` is True when any of them
    carried the marker (results built on any simulated reading are simulated), False when every readable
    one lacked it, None when none could be read; `mode`/`config_mode` are the latest readable document's."""
    out: dict[str, Any] = {"mode": None, "config_mode": None, "simulated": None}
    for doc in documents:
        label = selinux_label(doc, host=host)
        if label["simulated"] is None:
            continue
        out["mode"], out["config_mode"] = label["mode"], label["config_mode"]
        out["simulated"] = bool(out["simulated"]) or label["simulated"]
    return out


def labels(documents: Mapping[str, Iterable[Any]]) -> dict[str, dict[str, Any]]:
    """`host_label` of every host of `{host: [documents, oldest first]}`, sorted by host."""
    return {host: host_label(docs, host=host) for host, docs in sorted(documents.items())}


def simulated_hosts(by_host: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The hosts whose label says simulated, sorted."""
    return sorted(h for h, label in by_host.items() if label.get("simulated"))


def text(label: Mapping[str, Any]) -> str:
    """A label for people: `enforcing (simulated)`, `permissive`, `-` when nothing was read."""
    mode = label.get("mode") or "-"
    if label.get("simulated"):
        return f"{mode} (simulated)"
    return mode if label.get("simulated") is not None else "-"
