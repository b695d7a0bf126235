"""Plan: ranked entries with risk bars, CVEs and KEV; the explanation of the highlighted entry; waves."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Header, Static

from tui import bindings
from tui.backend import PlanEntry, PlanView, Refused, Unavailable
from tui.screens.base import BaseScreen
from tui.widgets.risk import risk_bar


def explain(entry: PlanEntry) -> Text:
    """The prioritizer's reasons for one entry, in words."""
    text = Text.assemble((f"#{entry.rank} {entry.package} {entry.candidate}\n", "bold"))
    risk = "not scored" if entry.risk is None else f"risk {entry.risk:.2f}"
    text.append(f"{risk} on {entry.hosts} hosts")
    if entry.kev:
        text.append("  KEV: known exploited", style="bold red")
    text.append("\nCVEs: " + (", ".join(entry.cves) or "none") + "\n")
    for line in entry.explanation:
        text.append(f"• {line}\n")
    return text


class PlanScreen(BaseScreen):
    """The current plan; `c` creates one from the current discovery."""

    BINDINGS: ClassVar[list[BindingType]] = list(bindings.PLAN)

    def __init__(self) -> None:
        super().__init__()
        self.plan: PlanView | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="notice")
        yield Static("", id="plan-title", classes="status")
        with Horizontal(id="plan-body"):
            yield DataTable(id="entries", cursor_type="row", zebra_stripes=True)
            yield Static("", id="explain")
        yield DataTable(id="waves", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Plan"
        entries = self.query_one("#entries", DataTable)
        entries.add_column("#", key="rank")
        entries.add_column("Risk", key="risk")
        entries.add_column("Package", key="package")
        entries.add_column("Hosts", key="hosts")
        entries.add_column("KEV", key="kev")
        entries.add_column("CVEs", key="cves")
        self.query_one("#waves", DataTable).add_columns("Wave", "Hosts", "Window", "Members")
        try:
            self.show(self.backend.current_plan())
        except Unavailable as exc:
            self.notice(str(exc))
        entries.focus()

    def on_screen_resume(self) -> None:
        try:
            current = self.backend.current_plan()
        except Unavailable:
            return
        if current != self.plan:
            self.show(current)

    def show(self, plan: PlanView | None) -> None:
        self.plan = plan
        entries = self.query_one("#entries", DataTable)
        waves = self.query_one("#waves", DataTable)
        entries.clear()
        waves.clear()
        title = self.query_one("#plan-title", Static)
        if plan is None:
            title.update("No plan yet. Press c to create one from the current discovery.")
            self.query_one("#explain", Static).update("")
            return
        title.update(
            f"{plan.plan_id}  created {plan.created}  state {plan.state}  ({len(plan.entries)} entries)"
        )
        for e in plan.entries:
            kev = Text("KEV", style="bold red") if e.kev else Text("-")
            cves = ", ".join(e.cves[:2]) + (f" +{len(e.cves) - 2}" if len(e.cves) > 2 else "") or "-"
            entries.add_row(
                str(e.rank), risk_bar(e.risk, 8), e.package, str(e.hosts), kev, cves, key=str(e.rank)
            )
        for w in plan.waves:
            members = ", ".join(w.hosts[:4]) + (f" +{len(w.hosts) - 4}" if len(w.hosts) > 4 else "")
            waves.add_row(str(w.index), str(len(w.hosts)), w.window, members)
        if plan.entries:
            self.query_one("#explain", Static).update(explain(plan.entries[0]))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id != "entries" or self.plan is None or event.row_key.value is None:
            return
        rank = int(event.row_key.value)
        for e in self.plan.entries:
            if e.rank == rank:
                self.query_one("#explain", Static).update(explain(e))

    def action_toggle_waves(self) -> None:
        waves = self.query_one("#waves", DataTable)
        waves.display = not waves.display

    def action_create(self) -> None:
        self.query_one("#plan-title", Static).update("Creating a plan from the current discovery…")
        self._create()

    @work(thread=True, exclusive=True, group="plan", description="create plan")
    def _create(self) -> None:
        try:
            plan = self.backend.create_plan()
        except (Unavailable, Refused) as exc:
            self.app.call_from_thread(self._failed, str(exc))
            return
        self.app.call_from_thread(self._created, plan)

    def _failed(self, text: str) -> None:
        self.notice(text, error=True)
        self.show(self.plan)

    def _created(self, plan: PlanView) -> None:
        self.notice("")
        self.show(plan)
        self.notify(f"Plan {plan.plan_id} created; it needs approval before it can run.")
