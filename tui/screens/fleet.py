"""Fleet: hosts by group with OS, package manager, pending updates, risk and posture; host detail."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.widgets import DataTable, Footer, Header, Input, Static

from tui import bindings
from tui.backend import HostDetail, HostRow, Unavailable
from tui.screens.base import BaseScreen
from tui.widgets.hosttable import Column, HostTable
from tui.widgets.risk import risk_label

SORTS = ("group", "name", "risk", "pending")


_SELINUX_SHORT = {"enforcing": "enforce", "permissive": "permis", "disabled": "off"}


def _posture(row: HostRow) -> Text:
    """`enforce|fw drop` then `sim` when the SELinux side is a shim; a weak firewall in red and capitals."""
    tag = {"real": "", "simulated": " sim", "unknown": " ?"}[row.posture_source]
    weak = "accept" in row.firewall.lower()  # "fw accept", "fw accept (rule accepts all)"
    selinux = _SELINUX_SHORT.get(row.selinux, row.selinux)
    firewall = Text(row.firewall.upper() if weak else row.firewall, style="bold red" if weak else "")
    return Text(f"{selinux}|") + firewall + Text(tag, style="dim")


def matches(row: HostRow, needle: str) -> bool:
    """Case-insensitive match on name, group, address, OS, manager and posture."""
    hay = " ".join((row.name, row.group, row.address, row.os_release, row.pkg_mgr, row.selinux, row.firewall))
    return needle.lower() in hay.lower()


def sort_rows(rows: list[HostRow], key: str) -> list[HostRow]:
    if key == "name":
        return sorted(rows, key=lambda r: r.name)
    if key == "risk":
        return sorted(rows, key=lambda r: (-(r.highest_risk or -1.0), r.name))
    if key == "pending":
        return sorted(rows, key=lambda r: (-(r.pending or -1), r.name))
    return sorted(rows, key=lambda r: (r.group, r.name))


COLUMNS = (
    Column("Host", lambda r: r.name, max_width=20),
    Column("Group", lambda r: r.group, max_width=12),
    Column("OS", lambda r: r.os_release, max_width=18),
    Column("Mgr", lambda r: r.pkg_mgr, max_width=6),
    Column("Pend", lambda r: "?" if r.pending is None else str(r.pending), max_width=4),
    Column("Risk", lambda r: risk_label(r.highest_risk), max_width=9),
    Column("Posture", _posture, max_width=24),
    Column("Last", lambda r: r.last_outcome or "-", max_width=10),
)


class FleetScreen(BaseScreen):
    """Every host, grouped; `/` filters, `s` sorts, Enter opens the host."""

    BINDINGS: ClassVar[list[BindingType]] = list(bindings.FLEET)

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[HostRow] = []
        self.shown: list[HostRow] = []
        self.sort_key = "group"
        self.needle = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="notice")
        yield Input(placeholder="filter: name, group, OS, posture…  (Enter keeps, Esc clears)", id="filter")
        yield HostTable(COLUMNS, id="fleet")
        yield Static("", id="status", classes="status")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Fleet"
        self.query_one("#filter", Input).display = False
        self.action_reload()
        self.query_one("#fleet", HostTable).focus()

    def action_reload(self) -> None:
        try:
            self.rows = self.backend.fleet()
        except Unavailable as exc:
            self.rows = []
            self.notice(str(exc))
        else:
            self.notice("")
        self.refill()

    def visible_rows(self) -> list[HostRow]:
        rows = [r for r in self.rows if matches(r, self.needle)] if self.needle else self.rows
        return sort_rows(rows, self.sort_key)

    def refill(self) -> None:
        self.shown = self.visible_rows()
        self.query_one("#fleet", HostTable).set_rows(self.shown)
        filt = f"  filter '{self.needle}'" if self.needle else ""
        self.query_one("#status", Static).update(
            f"{len(self.shown)} of {len(self.rows)} hosts  sort: {self.sort_key}{filt}"
        )

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.needle = event.value.strip()
        self.refill()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one("#fleet", HostTable).focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.needle = ""
        self.refill()
        self.query_one("#fleet", HostTable).focus()

    def action_sort(self) -> None:
        self.sort_key = SORTS[(SORTS.index(self.sort_key) + 1) % len(SORTS)]
        self.refill()

    def on_host_table_selected(self, event: HostTable.Selected) -> None:
        try:
            detail = self.backend.host_detail(event.host)
        except Unavailable as exc:
            self.notify(str(exc), severity="error")
            return
        self.app.push_screen(HostDetailScreen(detail))


class HostDetailScreen(BaseScreen):
    """One host: inventory facts, posture and pending updates; Esc goes back."""

    BINDINGS: ClassVar[list[BindingType]] = list(bindings.BACK)

    def __init__(self, detail: HostDetail) -> None:
        super().__init__()
        self.detail = detail

    def compose(self) -> ComposeResult:
        d, r = self.detail, self.detail.row
        yield Header()
        yield Static("", id="notice")
        canary = {True: "yes", False: "no", None: "auto"}[d.canary]
        facts = Text.assemble(
            (f"{r.name}", "bold"),
            f"  {r.address}  {r.os_release}  ({r.pkg_mgr})\n",
            f"groups: {', '.join(d.groups)}   criticality {d.criticality}   exposure {d.exposure}",
            f"   canary {canary}\n",
            f"windows: {', '.join(d.windows) or 'none'}\n",
            "posture: ",
            _posture(r),
            f"   [{r.posture_source}]",
        )
        yield Static(facts, id="facts")
        yield DataTable(id="pending", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"Host {self.detail.row.name}"
        table = self.query_one("#pending", DataTable)
        table.add_columns("Package", "Installed", "Candidate", "Risk", "CVEs")
        for p in self.detail.pending:
            table.add_row(p.package, p.installed, p.candidate, risk_label(p.risk), ", ".join(p.cves) or "-")
        table.focus()

    def action_back(self) -> None:
        self.app.pop_screen()
