"""Model: the active prioritizer's version, metrics and top features."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Footer, Header, Static

from tui.backend import Unavailable
from tui.screens.base import BaseScreen


class ModelScreen(BaseScreen):
    """Read-only: what ranks the updates, and how well it did on held-out data."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="notice")
        yield Static("", id="model")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Model"
        try:
            info = self.backend.model()
        except Unavailable as exc:
            self.notice(str(exc))
            return
        grid = Table.grid(padding=(0, 2))
        grid.add_column()
        grid.add_column()
        grid.add_row(Text("version", style="bold"), info.version)
        grid.add_row(Text("trained", style="bold"), info.trained)
        grid.add_row(Text("LightGBM", style="bold"), info.lightgbm)
        for name, value in info.metrics:
            grid.add_row(Text(name, style="bold"), value)
        feats = Table(title="Top features (share of importance)", title_justify="left", expand=False)
        feats.add_column("Feature")
        feats.add_column("Share", justify="right")
        feats.add_column("")
        top = max((v for _n, v in info.top_features), default=1.0) or 1.0
        for feature, share in info.top_features:
            feats.add_row(feature, f"{share:.2f}", "█" * max(1, round(20 * share / top)))
        outer = Table.grid()
        outer.add_row(grid)
        outer.add_row("")
        outer.add_row(feats)
        self.query_one("#model", Static).update(outer)
