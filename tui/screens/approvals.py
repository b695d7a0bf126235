"""Approvals: plans waiting, their size and quorum; approve with a key after a confirmation."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.widgets import DataTable, Footer, Header, Static

from tui import bindings
from tui.backend import ApprovalView, Refused, Unavailable
from tui.screens.base import BaseScreen
from tui.widgets.confirm import ConfirmModal


class ApprovalsScreen(BaseScreen):
    """`k` picks the signing key, `a` approves the highlighted plan (after a confirmation)."""

    BINDINGS: ClassVar[list[BindingType]] = list(bindings.APPROVALS)

    def __init__(self) -> None:
        super().__init__()
        self.views: list[ApprovalView] = []
        self.keys: list[str] = []
        self.key_index = 0

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="notice")
        yield Static("", id="key", classes="status")
        yield DataTable(id="plans", cursor_type="row", zebra_stripes=True)
        yield Static("", id="refusals")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Approvals"
        self.query_one("#plans", DataTable).add_columns("Plan", "Hosts", "Entries", "Approvals", "State")
        try:
            self.keys = self.backend.key_names()
        except Unavailable as exc:
            self.notice(str(exc))
        self.show_key()
        self.reload()
        self.query_one("#plans", DataTable).focus()

    def on_screen_resume(self) -> None:
        self.reload()

    @property
    def key(self) -> str | None:
        return self.keys[self.key_index] if self.keys else None

    def show_key(self) -> None:
        text = f"Signing key: {self.key}  (k: next of {len(self.keys)})" if self.keys else "No signing keys"
        self.query_one("#key", Static).update(text)

    def reload(self) -> None:
        try:
            self.views = self.backend.approvals()
        except Unavailable as exc:
            self.notice(str(exc))
            self.views = []
        table = self.query_one("#plans", DataTable)
        row = table.cursor_row
        table.clear()
        for v in self.views:
            count = f"{len(v.approvals)}/{v.quorum}" + (f" ({', '.join(v.approvals)})" if v.approvals else "")
            state = Text(v.state.upper(), style="bold green") if v.approved else Text(v.state)
            table.add_row(v.plan_id, str(v.hosts), str(v.entries), count, state, key=v.plan_id)
        if self.views:
            table.move_cursor(row=min(row, len(self.views) - 1))
        lines = Text()
        for v in self.views:
            for who, why in v.refusals:
                lines.append(f"REFUSED {v.plan_id} for {who}: {why}\n", style="bold red")
        if not self.views:
            lines.append("No plans waiting. Create one on the Plan screen (2, then c).")
        self.query_one("#refusals", Static).update(lines)

    def action_next_key(self) -> None:
        if self.keys:
            self.key_index = (self.key_index + 1) % len(self.keys)
        self.show_key()

    def selected(self) -> ApprovalView | None:
        table = self.query_one("#plans", DataTable)
        if not self.views or table.cursor_row < 0:
            return None
        return self.views[min(table.cursor_row, len(self.views) - 1)]

    def action_approve(self) -> None:
        view, key = self.selected(), self.key
        if view is None or key is None:
            self.notify("Nothing to approve (no plan or no key).", severity="warning")
            return
        question = (
            f"Approve plan {view.plan_id} with key '{key}'?\n"
            f"{view.entries} updates on {view.hosts} hosts; approvals {len(view.approvals)}/{view.quorum}."
        )

        def done(yes: bool | None) -> None:
            if yes:
                self.approve(view.plan_id, key)

        self.app.push_screen(ConfirmModal(question, yes="Approve"), done)

    def approve(self, plan_id: str, key: str) -> None:
        try:
            view = self.backend.approve(plan_id, key)
        except Refused as exc:
            self.notify(f"Refused: {exc.reason}", severity="error")
        except Unavailable as exc:
            self.notice(str(exc), error=True)
        else:
            self.notify(f"{key} approved {plan_id} ({len(view.approvals)}/{view.quorum})")
        self.reload()
