"""What every top-level screen shares: the backend and a notice line for what cannot be shown."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.screen import Screen
from textual.widgets import Static

if TYPE_CHECKING:
    from tui.app import PatchbrainApp
    from tui.backend import Backend


class BaseScreen(Screen[None]):
    """A screen that reads from the app's backend."""

    @property
    def backend(self) -> Backend:
        return cast("PatchbrainApp", self.app).backend

    def notice(self, text: str, *, error: bool = False) -> None:
        """Show a line under the header (e.g. 'the planner has not landed'); empty text hides it."""
        widget = self.query_one("#notice", Static)
        widget.update(("ERROR: " if error else "") + text)
        widget.set_class(error, "error")
        widget.display = bool(text)
