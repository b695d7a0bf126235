"""A virtual table for large fleets: renders only the visible lines (Textual's Line API).

DataTable measures and lays out every row it holds: 10,000 hosts took seconds to first show on this
machine (bench/bench_tui.py). Here rows stay a Python list of `HostRow`; a frame renders height lines.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tui.backend import HostRow

Cell = Callable[[HostRow], Text | str]


@dataclass(frozen=True)
class Column:
    title: str
    cell: Cell
    min_width: int = 3
    max_width: int = 24


class HostTable(ScrollView, can_focus=True):
    """Rows of hosts with a cursor; Enter (or a click on the cursor row) posts `HostTable.Selected`."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", show=False),
        Binding("pagedown", "page(1)", show=False),
        Binding("home", "jump(0)", show=False),
        Binding("end", "jump(-1)", show=False),
        Binding("enter", "select", "Open", id="fleet.open"),
    ]
    DEFAULT_CSS = "HostTable { height: 1fr; }"

    cursor: reactive[int] = reactive(0, always_update=True)

    @dataclass
    class Selected(Message):
        host: str

    def __init__(self, columns: Sequence[Column], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.columns = tuple(columns)
        self.rows: list[HostRow] = []
        self.widths: list[int] = [len(c.title) for c in columns]
        self._cache: dict[int, list[Segment]] = {}

    @property
    def row_count(self) -> int:
        return len(self.rows)

    def set_rows(self, rows: list[HostRow]) -> None:
        """Replace the rows; widths from the header and the first 2,000 rows (cells are short and regular)."""
        self.rows = rows
        sample = rows[:2000]
        self.widths = [
            max(c.min_width, min(c.max_width, max([len(c.title)] + [len(str(c.cell(r))) for r in sample])))
            for c in self.columns
        ]
        self._cache.clear()
        self.virtual_size = Size(sum(self.widths) + 2 * len(self.widths), len(rows) + 1)
        self.cursor = min(self.cursor, max(0, len(rows) - 1))
        self.refresh()

    def _cells(self, cells: Sequence[Text | str]) -> Text:
        line = Text(" ")
        for width, cell in zip(self.widths, cells, strict=True):
            text = cell.copy() if isinstance(cell, Text) else Text(cell)
            text.truncate(width, overflow="ellipsis", pad=True)
            line.append_text(text)
            line.append("  ")
        return line

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        if y == 0:  # the header stays put
            header = self._cells([Text(c.title, style="bold") for c in self.columns])
            return self._fit(Strip(list(header.render(self.app.console))), scroll_x, width)
        index = scroll_y + y - 1
        if index >= len(self.rows):
            return Strip.blank(width, self.rich_style)
        segs: list[Segment] | None = self._cache.get(index)
        if segs is None:
            segs = list(
                self._cells([c.cell(self.rows[index]) for c in self.columns]).render(self.app.console)
            )
            if len(self._cache) > 4000:
                self._cache.clear()
            self._cache[index] = segs
        strip = Strip(segs)
        if index == self.cursor:
            strip = strip.apply_style(Style(reverse=True, bold=self.has_focus))
        return self._fit(strip, scroll_x, width)

    def _fit(self, strip: Strip, scroll_x: int, width: int) -> Strip:
        """Crop to the visible columns, pad, and give every segment a style (NO_COLOR's filter needs one)."""
        base = self.rich_style
        return strip.crop(scroll_x, scroll_x + width).extend_cell_length(width, base).apply_style(base)

    @property
    def page(self) -> int:
        return max(1, self.size.height - 2)

    def watch_cursor(self, old: int, new: int) -> None:
        top = self.scroll_offset.y
        if new < top:
            self.scroll_to(y=new, animate=False)
        elif new >= top + self.page + 1:
            self.scroll_to(y=new - self.page, animate=False)
        self.refresh()

    def action_move(self, delta: int) -> None:
        if self.rows:
            self.cursor = max(0, min(len(self.rows) - 1, self.cursor + delta))

    def action_page(self, direction: int) -> None:
        self.action_move(direction * self.page)

    def action_jump(self, where: int) -> None:
        if self.rows:
            self.cursor = where if where >= 0 else len(self.rows) - 1

    def action_select(self) -> None:
        if self.rows:
            self.post_message(self.Selected(self.rows[self.cursor].name))

    def on_click(self, event: events.Click) -> None:
        index = self.scroll_offset.y + event.y - 1
        if event.y == 0 or not 0 <= index < len(self.rows):
            return
        if index == self.cursor:
            self.action_select()
        else:
            self.cursor = index

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
