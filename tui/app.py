"""The Textual application shell."""

from __future__ import annotations

from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import BindingType
from textual.widgets import Footer, Header, Static


class PatchbrainApp(App[None]):
    """patchbrain's terminal UI."""

    TITLE = "patchbrain"
    BINDINGS: ClassVar[list[BindingType]] = [("q", "quit", "Quit")]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("patchbrain: fleet, plans, approvals and rollouts", id="welcome")
        yield Footer()
