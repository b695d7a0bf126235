"""Rollout: start an approved plan, watch waves and hosts live, drill down to raw events, cancel."""

from __future__ import annotations

import json
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.widgets import DataTable, Footer, Header, Static
from textual.worker import Worker, get_current_worker

from tui import bindings
from tui.backend import (
    DriftFinding,
    HostState,
    PlanView,
    Refused,
    RolloutEnd,
    RolloutEvent,
    TaskEvent,
    Unavailable,
    WaveState,
)
from tui.messages import RolloutFinished, RolloutProgress
from tui.screens.base import BaseScreen
from tui.widgets.confirm import ConfirmModal

_BAD = {"failed", "unreachable", "mismatch", "halted", "not_restored", "rolling_back", "unknown"}
_GOOD = {"done", "patched", "unchanged", "restored"}


def _state(text: str) -> Text:
    style = "bold red" if text in _BAD else ("green" if text in _GOOD else "")
    return Text(text, style=style)


class RolloutScreen(BaseScreen):
    """`s` starts the approved plan; Enter: wave -> its hosts -> a host's events; `x` cancels."""

    BINDINGS: ClassVar[list[BindingType]] = list(bindings.ROLLOUT)

    def __init__(self) -> None:
        super().__init__()
        self.plan: PlanView | None = None
        self.wave_of: dict[str, int] = {}
        self.waves: dict[int, str] = {}
        self.hosts: dict[str, str] = {}
        self.events: dict[str, list[TaskEvent]] = {}
        self.findings: list[DriftFinding] = []
        self.end: RolloutEnd | None = None
        self.wave_filter: int | None = None
        self.worker: Worker[None] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="notice")
        yield Static("No rollout running. Press s to start the approved plan.", id="title", classes="status")
        yield DataTable(id="waves", cursor_type="row")
        yield DataTable(id="hosts", cursor_type="row", zebra_stripes=True)
        yield Static("", id="findings")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Rollout"
        waves = self.query_one("#waves", DataTable)
        waves.add_column("Wave", key="wave")
        waves.add_column("State", key="state", width=12)
        waves.add_column("Hosts done", key="done")
        hosts = self.query_one("#hosts", DataTable)
        hosts.add_column("Host", key="host")
        hosts.add_column("Wave", key="wave")
        hosts.add_column("State", key="state", width=12)
        hosts.add_column("Last task", key="task", width=34)
        self.query_one("#findings", Static).display = False
        waves.focus()

    @property
    def running(self) -> bool:
        return self.worker is not None and self.worker.is_running

    # starting

    def action_start(self) -> None:
        if self.running:
            self.notify("A rollout is already running.", severity="warning")
            return
        try:
            ready = [v for v in self.backend.approvals() if v.approved]
            plan = self.backend.current_plan()
        except Unavailable as exc:
            self.notice(str(exc), error=True)
            return
        if not ready or plan is None or plan.plan_id != ready[0].plan_id:
            self.notify("No approved plan: approve one on the Approvals screen (3).", severity="warning")
            return
        size = sum(len(w.hosts) for w in plan.waves)
        question = f"Start rollout of plan {plan.plan_id}: {size} hosts in {len(plan.waves)} waves?"

        def done(yes: bool | None) -> None:
            if yes and plan is not None:
                self.start(plan)

        self.app.push_screen(ConfirmModal(question, yes="Start"), done)

    def start(self, plan: PlanView) -> None:
        self.plan, self.end, self.findings, self.wave_filter = plan, None, [], None
        self.waves = {w.index: "pending" for w in plan.waves}
        self.wave_of = {h: w.index for w in plan.waves for h in w.hosts}
        self.hosts = dict.fromkeys(self.wave_of, "pending")
        self.events = {}
        self.query_one("#findings", Static).display = False
        self.query_one("#title", Static).update(f"Rollout of {plan.plan_id}: running")
        self.fill_waves()
        self.fill_hosts()
        self.worker = self.run_rollout(plan.plan_id)

    @work(thread=True, exclusive=True, group="rollout", description="rollout")
    def run_rollout(self, plan_id: str) -> None:
        """Runs in a thread; only posts messages. Ansible's output stays in the artifacts (quiet)."""
        worker = get_current_worker()

        def emit(event: RolloutEvent) -> None:
            self.post_message(RolloutProgress(event))

        try:
            end = self.backend.rollout(plan_id, emit=emit, cancel=lambda: worker.is_cancelled)
        except (Refused, Unavailable) as exc:
            end = RolloutEnd(plan_id, "failed", str(exc))
        self.post_message(RolloutFinished(end))

    # live progress

    def on_rollout_progress(self, message: RolloutProgress) -> None:
        event = message.event
        hosts = self.query_one("#hosts", DataTable)
        if isinstance(event, WaveState):
            self.waves[event.wave] = event.state
            self.update_wave(event.wave)
        elif isinstance(event, HostState):
            self.hosts[event.host] = event.state
            if self.shown(event.host):
                hosts.update_cell(event.host, "state", _state(event.state))
            self.update_wave(event.wave)
        elif isinstance(event, TaskEvent):
            self.events.setdefault(event.host, []).append(event)
            if self.shown(event.host):
                hosts.update_cell(event.host, "task", f"{event.task} ({event.status})")
        elif isinstance(event, DriftFinding):
            self.findings.append(event)
            self.show_findings()

    def on_rollout_finished(self, message: RolloutFinished) -> None:
        self.end = message.end
        end = message.end
        title = f"Rollout of {end.plan_id}: {end.state.upper()}"
        if end.reason:
            title += f" — {end.reason}"
        self.query_one("#title", Static).update(
            Text(title, style="bold red" if end.state != "done" else "green")
        )
        self.show_findings()

    def show_findings(self) -> None:
        text = Text()
        for f in self.findings:
            text.append(f"DRIFT wave {f.wave} {f.host}: {f.setting}: {f.detail}\n", style="bold red")
        end = self.end
        if end is not None and end.state == "halted":
            text.append(f"HALTED: {end.reason}\n", style="bold red")
            restored = ", ".join(end.restored) or "none"
            text.append(f"Restored: {restored}")
            if end.not_restored:
                text.append(f"   NOT restored: {', '.join(end.not_restored)}", style="bold red")
            text.append("\nLater waves did not start.")
        panel = self.query_one("#findings", Static)
        panel.update(text)
        panel.display = bool(text.plain)

    def shown(self, host: str) -> bool:
        return self.wave_filter is None or self.wave_of.get(host) == self.wave_filter

    def update_wave(self, wave: int) -> None:
        members = [h for h, w in self.wave_of.items() if w == wave]
        done = sum(1 for h in members if self.hosts.get(h) in _GOOD | {"failed", "unreachable", "restored"})
        table = self.query_one("#waves", DataTable)
        table.update_cell(str(wave), "state", _state(self.waves.get(wave, "pending")))
        table.update_cell(str(wave), "done", f"{done}/{len(members)}")

    def fill_waves(self) -> None:
        table = self.query_one("#waves", DataTable)
        table.clear()
        for wave, state in self.waves.items():
            size = sum(1 for w in self.wave_of.values() if w == wave)
            table.add_row(str(wave), _state(state), f"0/{size}", key=str(wave))

    def fill_hosts(self) -> None:
        table = self.query_one("#hosts", DataTable)
        table.clear()
        for host, wave in self.wave_of.items():
            if self.shown(host):
                last = self.events.get(host, [])
                task = f"{last[-1].task} ({last[-1].status})" if last else "-"
                table.add_row(host, str(wave), _state(self.hosts[host]), task, key=host)

    # drill-down

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value
        if key is None:
            return
        if event.data_table.id == "waves":
            self.wave_filter = int(key)
            self.fill_hosts()
            self.query_one("#hosts", DataTable).focus()
        elif event.data_table.id == "hosts":
            self.app.push_screen(HostEventsScreen(key, list(self.events.get(key, []))))

    # cancel

    def action_cancel(self) -> None:
        worker = self.worker
        if worker is None or not worker.is_running:
            self.notify("No rollout is running.", severity="warning")
            return

        def done(yes: bool | None) -> None:
            if yes:
                worker.cancel()
                self.query_one("#title", Static).update(
                    "Canceling: the running play stops, later waves will not start…"
                )

        plan_id = self.plan.plan_id if self.plan else "?"
        self.app.push_screen(
            ConfirmModal(f"Cancel the rollout of {plan_id}?", yes="Cancel rollout", no="Keep going"), done
        )


class HostEventsScreen(BaseScreen):
    """One host's events in a rollout; Enter shows the raw event."""

    BINDINGS: ClassVar[list[BindingType]] = list(bindings.BACK)

    def __init__(self, host: str, events: list[TaskEvent]) -> None:
        super().__init__()
        self.host = host
        self.events = events

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="notice")
        yield Static(
            f"{self.host}: {len(self.events)} events (Enter: raw event, Esc: back)", classes="status"
        )
        yield DataTable(id="events", cursor_type="row", zebra_stripes=True)
        yield Static("", id="raw")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"Events of {self.host}"
        table = self.query_one("#events", DataTable)
        table.add_columns("#", "Wave", "Task", "Status")
        for i, e in enumerate(self.events):
            table.add_row(str(e.raw.get("counter", i + 1)), str(e.wave), e.task, _state(e.status), key=str(i))
        table.focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is None:
            return
        raw = self.events[int(event.row_key.value)].raw
        self.query_one("#raw", Static).update(json.dumps(dict(raw), indent=2, sort_keys=True, default=str))

    def action_back(self) -> None:
        self.app.pop_screen()
