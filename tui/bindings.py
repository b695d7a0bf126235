"""Every key binding with a stable id, so users can remap keys with a keymap file.

A keymap is a YAML mapping of binding id to key(s), e.g. `{"fleet.filter": "f", "app.mode.audit": "ctrl+a"}`,
read from `$PATCHBRAIN_HOME/tui-keymap.yaml` by `load_keymap` and applied with `App.set_keymap`.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from textual.binding import Binding

APP = [
    Binding("1", "mode('fleet')", "Fleet", id="app.mode.fleet"),
    Binding("2", "mode('plan')", "Plan", id="app.mode.plan"),
    Binding("3", "mode('approvals')", "Approvals", id="app.mode.approvals"),
    Binding("4", "mode('rollout')", "Rollout", id="app.mode.rollout"),
    Binding("5", "mode('audit')", "Audit", id="app.mode.audit"),
    Binding("6", "mode('model')", "Model", id="app.mode.model"),
    Binding("q", "quit", "Quit", id="app.quit"),
]
FLEET = [
    Binding("slash", "filter", "Filter", id="fleet.filter"),
    Binding("s", "sort", "Sort", id="fleet.sort"),
    Binding("r", "reload", "Reload", id="fleet.reload"),
    Binding("escape", "clear_filter", "Clear", show=False, id="fleet.clear"),
]
PLAN = [
    Binding("c", "create", "Create plan", id="plan.create"),
    Binding("w", "toggle_waves", "Waves", id="plan.waves"),
]
APPROVALS = [
    Binding("a", "approve", "Approve", id="approvals.approve"),
    Binding("k", "next_key", "Key", id="approvals.key"),
]
ROLLOUT = [
    Binding("s", "start", "Start", id="rollout.start"),
    Binding("x", "cancel", "Cancel", id="rollout.cancel"),
]
AUDIT = [Binding("r", "reload", "Reload / verify", id="audit.reload")]
BACK = [Binding("escape", "back", "Back", id="detail.back")]
CONFIRM = [
    Binding("y", "yes", "Yes", id="confirm.yes"),
    Binding("n,escape", "no", "No", id="confirm.no"),
]


def load_keymap(path: Path) -> dict[str, str]:
    """Binding id -> keys from a YAML file; missing file means no overrides, anything else is an error."""
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ValueError(f"{path}: a keymap maps binding ids to keys, both strings")
    known = {b.id for group in (APP, FLEET, PLAN, APPROVALS, ROLLOUT, AUDIT, BACK, CONFIRM) for b in group}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown binding ids {', '.join(unknown)}")
    return dict(data)
