"""The live list (`watch`): refreshes by itself, marks calls that arrived since it started.

Idle cost is one `PRAGMA data_version` per tick: the list is read again only when another
connection has committed. `Watcher.poll` holds that decision and is tested without sleeping;
`run_live` wraps it in a rich Live loop that stops on Ctrl-C, after `duration` seconds, or
when `stop` is set (the demo runs it for a fixed time).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import datetime, tzinfo
from pathlib import Path

from rich.console import Console, Group
from rich.text import Text

from beeline_missed import timefmt
from beeline_missed.rules.deadlines import Deadlines, row_style, sort_rows
from beeline_missed.store import Call, FileState, Register
from beeline_missed.views import calls as calls_view
from beeline_missed.vocabulary import CallStatus

Decorate = Callable[[Register, list[Call]], list[Call]]


class Watcher:
    """The list's state between ticks."""

    def __init__(
        self,
        register: Register,
        zone: tzinfo,
        include_handled: bool = False,
        limit: int | None = None,
        decorate: Decorate | None = None,
        *,
        deadlines: Deadlines | None = None,
        sort: str = "time",
        clock_ms: Callable[[], int] = timefmt.now_ms,
    ) -> None:
        self.register = register
        # Adds what the rows do not store (who is calling back now: calling_back.with_claims).
        self.decorate = decorate
        self.zone = zone
        self.include_handled = include_handled
        self.limit = limit
        # Cases are coloured by how long they have waited: the colours move with the clock,
        # not only when the register changes.
        self.deadlines = deadlines
        self.sort = sort
        self.clock_ms = clock_ms
        self._levels: tuple[int | None, ...] = ()
        self.started_at = datetime.now(zone)
        # Calls with a higher id arrived after we started watching.
        self.baseline_id = register.calls.max_id()
        self.rows: list[Call] = []
        self.open_count = 0
        self.new_ids: set[int] = set()
        self.loads = 0
        self.file_state = FileState.SAME  # else the rows are the last read, not live
        self.unavailable: str | None = None  # why the register cannot be read now
        self._version: int | None = None
        self._table: calls_view.CallTable | None = None
        self._table_loads = -1

    def poll(self) -> bool:
        """Reload when the register changed since the last poll; True when it did. While the
        register's file is moved, deleted or replaced, the rows stay as last read and the view
        says they are not live (see Register.file_state)."""
        self.file_state = self.register.file_state()
        if self.file_state is not FileState.SAME:
            return False
        try:
            return self._reload()
        except sqlite3.Error as exc:
            # The database server restarting, say: a staff screen left open all day waits for
            # it, showing the last rows read, and reads again once it answers.
            self.unavailable = str(exc)
            return False

    def _reload(self) -> bool:
        version = self.register.data_version()
        if version == self._version and self.unavailable is None:
            return False
        rows = self.register.calls.rows(self.include_handled, self.limit)
        if self.decorate is not None:
            rows = self.decorate(self.register, rows)
        if self.deadlines is not None:
            rows = sort_rows(self.deadlines.annotate(rows, self.clock_ms()), self.sort)
        open_count = self.register.calls.count(CallStatus.MISSED)
        self._version = version
        self.unavailable = None
        self.rows = rows
        self.open_count = open_count
        self.new_ids = {r.id for r in self.rows if r.id > self.baseline_id}
        self.loads += 1
        return True

    @property
    def new_count(self) -> int:
        """Calls still in the list that arrived since watching started."""
        return len(self.new_ids)

    def render(self, now: datetime | None = None) -> Group:
        """The view; the table is rebuilt only after a reload, the clock line every time."""
        now = now or datetime.now(self.zone)
        if self.deadlines is not None and self.rows:
            self.rows = self.deadlines.annotate(self.rows, int(now.timestamp() * 1000))
            levels = tuple(row.deadline_level for row in self.rows)
            if levels != self._levels:
                self._levels = levels
                self._table = None  # a case passed a deadline: recolour
        if self._table is None or self._table_loads != self.loads:
            self._table = self._build_table()
            self._table_loads = self.loads
        since = self.started_at.strftime("%H:%M")
        head = Text(
            f"Пропущенных звонков: {self.open_count} · новых с {since}: {self.new_count}",
            style="bold",
        )
        if self.file_state is not FileState.SAME:
            head = Text(
                calls_view.file_lost_text(self.register, self.file_state, "просмотр"),
                style="bold red",
            )
        elif self.unavailable is not None:
            head = Text(calls_view.unavailable_text(self.unavailable), style="bold red")
        foot = Text(f"Обновлено {now.strftime('%H:%M:%S')} · Ctrl-C — выход", style="dim")
        if not self.rows:
            return Group(head, Text("Пропущенных звонков нет."), foot)
        return Group(head, self._table, foot)

    def _build_table(self) -> calls_view.CallTable:
        columns = (calls_view.new_mark_column(self.new_ids), *calls_view.LIST_COLUMNS)
        return calls_view.CallTable(
            self.rows,
            self.zone,
            columns=columns,
            bold=lambda row: calls_view.is_new(row, self.new_ids),
            style=None if self.deadlines is None else self._style,
        )

    def _style(self, row: Call) -> str | None:
        assert self.deadlines is not None
        return row_style(row, self.deadlines)


def run_live(
    register_path: Path | str,
    interval: float = 2.0,
    duration: float | None = None,
    stop: threading.Event | None = None,
    *,
    zone: tzinfo | None = None,
    include_handled: bool = False,
    limit: int | None = None,
    console: Console | None = None,
    intro: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    decorate: Decorate | None = None,
    deadlines: Deadlines | None = None,
    sort: str = "time",
) -> Watcher | None:
    """Show the live list until Ctrl-C, `duration` seconds, or `stop` is set.

    `zone` defaults to this machine's. `intro` is printed once the view is up (above it),
    so whoever waits for it knows Ctrl-C leaves cleanly from then on. Returns the watcher,
    or None when stopped before it started.
    """
    from rich.live import Live

    zone = zone or timefmt.local_zone()
    stop = stop or threading.Event()
    deadline = None if duration is None else clock() + duration
    watcher: Watcher | None = None
    try:
        register = Register.open(register_path)
        try:
            watcher = Watcher(
                register, zone, include_handled, limit, decorate, deadlines=deadlines, sort=sort
            )
            watcher.poll()
            with Live(watcher.render(), console=console, auto_refresh=False) as live:
                if intro:
                    live.console.print(intro)
                while True:
                    # The clock line moves every tick; the list is re-read only on change.
                    watcher.poll()
                    live.update(watcher.render(), refresh=True)
                    if stop.is_set():
                        break
                    wait = interval
                    if deadline is not None:
                        wait = min(wait, deadline - clock())
                        if wait <= 0:
                            break
                    if stop.wait(wait):
                        # Show the state at the moment of stopping, then leave.
                        watcher.poll()
                        live.update(watcher.render(), refresh=True)
                        break
        finally:
            register.close()
    except KeyboardInterrupt:
        pass  # Ctrl-C is how people leave the view: a clean exit, not an error
    return watcher
