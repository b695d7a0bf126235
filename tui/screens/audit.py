"""Audit: the log's records and whether its hash chain verifies."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.widgets import DataTable, Footer, Header, Static

from tui import bindings
from tui.backend import Unavailable
from tui.screens.base import BaseScreen


class AuditScreen(BaseScreen):
    """`r` reloads and verifies the chain again."""

    BINDINGS: ClassVar[list[BindingType]] = list(bindings.AUDIT)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="notice")
        yield Static("", id="chain", classes="status")
        yield DataTable(id="records", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Audit"
        self.query_one("#records", DataTable).add_columns("#", "Time", "Actor", "Action", "Subject")
        self.action_reload()
        self.query_one("#records", DataTable).focus()

    def on_screen_resume(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        table = self.query_one("#records", DataTable)
        table.clear()
        try:
            rows, status = self.backend.audit()
        except Unavailable as exc:
            self.notice(str(exc))
            return
        if status.ok:
            chain = Text(f"Chain OK: {status.records} records, head {status.head[:12]}", style="green")
        else:
            chain = Text(
                f"CHAIN BROKEN ({status.records} records): " + "; ".join(status.problems), style="bold red"
            )
        self.query_one("#chain", Static).update(chain)
        for r in reversed(rows):
            table.add_row(str(r.seq), r.time, r.actor, r.action, r.subject)
