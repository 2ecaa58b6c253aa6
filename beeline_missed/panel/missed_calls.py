"""The «Пропущенные звонки» tab: the open calls, newest first, refreshed by the app's poll."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from beeline_missed.panel.call_list import COLUMNS, Entry
from beeline_missed.rules.deadlines import Deadlines


class CallsTable(DataTable):
    """A DataTable where a single click only selects; Enter or a double click opens."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)  # type: ignore[arg-type]
        self._click_chain = 0

    def _on_click(self, event: events.Click) -> None:
        # Textual calls this before DataTable's own click handler, which posts RowSelected
        # for a click on the highlighted row; staff expect a single click to pick a row and
        # a double click (or Enter) to open it, so remember which click of a chain this is.
        self._click_chain = event.chain

    def action_select_cursor(self) -> None:
        self._click_chain = 0  # Enter
        super().action_select_cursor()

    def _post_selected_message(self) -> None:
        if self._click_chain == 1:
            return
        super()._post_selected_message()


class MissedCalls(Vertical):
    """The list and a one-line summary above it."""

    class OpenCard(Message):
        """Staff asked to open the card of a list entry."""

        def __init__(self, entry: Entry) -> None:
            super().__init__()
            self.entry = entry

    def __init__(self, *, deadlines: Deadlines | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.deadlines = deadlines
        self.open_count = 0
        self.capped = False
        self.entries: list[Entry] = []
        self.by_key: dict[str, Entry] = {}
        self.new_keys: set[str] = set()

    def compose(self) -> ComposeResult:
        yield Static("", id="calls-summary")
        table = CallsTable(id="calls-table")
        for label in COLUMNS:
            table.add_column(label, key=label)
        yield table
        yield Static(
            "Пропущенных звонков нет: все клиенты обработаны.", id="calls-empty", classes="hidden"
        )

    @property
    def table(self) -> CallsTable:
        return self.query_one(CallsTable)

    @property
    def selected(self) -> Entry | None:
        table = self.table
        if not self.entries or table.cursor_row < 0 or table.cursor_row >= table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.by_key.get(str(key))

    def show(
        self, entries: Sequence[Entry], open_count: int, new_keys: set[str], capped: bool = False
    ) -> None:
        """Replace the rows, keeping the selected entry selected (by its key)."""
        table = self.table
        old = self.selected
        old_row = table.cursor_row
        self.entries = list(entries)
        self.by_key = {e.key: e for e in self.entries}
        self.new_keys = set(new_keys)
        self.open_count, self.capped = open_count, capped
        table.clear()
        for item in self.entries:
            # The case's deadline colour, and bold for calls that came since the panel opened.
            parts = []
            if self.deadlines is not None and item.level is not None:
                parts.append(self.deadlines.style(item.level))
            if item.key in self.new_keys:
                parts.append("bold")
            style = " ".join(parts)
            table.add_row(*(Text(cell, style=style) for cell in item.cells), key=item.key)
        if self.entries:
            if old is not None and old.key in self.by_key:
                row = table.get_row_index(old.key)
            else:
                # The selected call left the list (handled): stay at the same height.
                row = min(max(old_row, 0), len(self.entries) - 1)
            table.move_cursor(row=row, animate=False)
        self.query_one("#calls-empty").set_class(bool(self.entries), "hidden")
        table.set_class(not self.entries, "hidden")
        new = len(self.new_keys)
        summary = f"Пропущенных звонков: {open_count}"
        if not capped and open_count > len(self.entries):
            summary += f" от {len(self.entries)} звонивших"  # repeat callers are one line
        if new:
            summary += f" · новых с открытия панели: {new}"
        if capped:
            summary += f" · показаны последние {len(self.entries)}"
        self.query_one("#calls-summary", Static).update(summary)

    def recolour(self, entries: Sequence[Entry]) -> None:
        """The same entries judged again as the clock moved (a case passed a deadline)."""
        self.show(entries, self.open_count, self.new_keys, self.capped)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        item = self.by_key.get(str(event.row_key.value))
        if item is not None:
            self.post_message(self.OpenCard(item))
