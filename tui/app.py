"""The Textual application shell: modes for the six screens, the command palette, the keymap."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import ClassVar

from textual.app import App
from textual.binding import BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider

from tui import bindings
from tui.backend import Backend
from tui.screens.approvals import ApprovalsScreen
from tui.screens.audit import AuditScreen
from tui.screens.fleet import FleetScreen
from tui.screens.model import ModelScreen
from tui.screens.plan import PlanScreen
from tui.screens.rollout import RolloutScreen

SCREENS_HELP = {
    "fleet": "Fleet: hosts, pending updates, risk, posture",
    "plan": "Plan: ranked updates, explanations, waves",
    "approvals": "Approvals: approve a plan with a key",
    "rollout": "Rollout: start, watch, drill down, cancel",
    "audit": "Audit: the log and its chain status",
    "model": "Model: version, metrics, top features",
}


class PatchbrainCommands(Provider):
    """Command palette entries: go to any screen, and the main action of each."""

    def _commands(self) -> list[tuple[str, str, str]]:
        out = [(f"Go to {name}", help_text, f"mode('{name}')") for name, help_text in SCREENS_HELP.items()]
        out += [
            ("Create plan", "Create a plan from the current discovery", "create_plan"),
            ("Start rollout", "Start the approved plan", "start_rollout"),
        ]
        return out

    async def discover(self) -> Hits:
        for name, help_text, action in self._commands():
            yield DiscoveryHit(name, partial(self.app.run_action, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, action in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(
                    score, matcher.highlight(name), partial(self.app.run_action, action), help=help_text
                )


class PatchbrainApp(App[None]):
    """patchbrain's terminal UI; every screen reads from `backend`."""

    TITLE = "patchbrain"
    CSS_PATH = "app.tcss"
    BINDINGS: ClassVar[list[BindingType]] = list(bindings.APP)
    COMMANDS = App.COMMANDS | {PatchbrainCommands}
    MODES: ClassVar[dict[str, type]] = {  # type: ignore[assignment]
        "fleet": FleetScreen,
        "plan": PlanScreen,
        "approvals": ApprovalsScreen,
        "rollout": RolloutScreen,
        "audit": AuditScreen,
        "model": ModelScreen,
    }
    DEFAULT_MODE = "fleet"

    def __init__(self, backend: Backend, keymap: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.backend = backend
        self._keymap_overrides = dict(keymap or {})

    def on_mount(self) -> None:
        if self._keymap_overrides:
            self.set_keymap(self._keymap_overrides)

    async def action_mode(self, name: str) -> None:
        if name in self.MODES:
            await self.switch_mode(name)

    async def action_create_plan(self) -> None:
        await self.switch_mode("plan")
        await self.screen.run_action("create")

    async def action_start_rollout(self) -> None:
        await self.switch_mode("rollout")
        await self.screen.run_action("start")
