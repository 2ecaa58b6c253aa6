"""The «Автосервис» panel: missed calls, reports and subscriptions in one Textual app.

One poll drives every tab: each tick asks SQLite for `PRAGMA data_version` (a counter that
moves only when another connection commits), so an idle panel reads nothing; when the daemon
registers a call, the list is read again and the new call appears at the top with the
selection kept. Saves made here go through the same connection and do not move the counter,
so after a save the list is reloaded explicitly.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any, ClassVar

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Footer, Header, TabbedContent, TabPane

from beeline_missed import phones, timefmt
from beeline_missed.cases import calling_back, card_service
from beeline_missed.config import Settings
from beeline_missed.errors import UserError
from beeline_missed.onec import booking as onec_booking
from beeline_missed.panel import call_list
from beeline_missed.panel.card_screen import CardScreen
from beeline_missed.panel.missed_calls import MissedCalls
from beeline_missed.panel.reports_pane import ReportsPane
from beeline_missed.panel.subscriptions_pane import SubscriptionsPane
from beeline_missed.rules import card
from beeline_missed.rules.deadlines import Deadlines
from beeline_missed.store import Call, FileState, Register
from beeline_missed.views import calls as calls_view

TABS = {"calls": "Пропущенные звонки", "reports": "Отчёты", "subs": "Подписки"}


class PanelApp(App[None]):
    """`PanelApp(settings).run()`; tests drive it with `run_test()`."""

    TITLE = "Автосервис"
    SUB_TITLE = "пропущенные звонки"
    CSS_PATH = "panel.tcss"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("f1", "show_tab('calls')", "Звонки"),
        Binding("f2", "show_tab('reports')", "Отчёты"),
        Binding("f3", "show_tab('subs')", "Подписки"),
        Binding("f5", "reload", "Обновить"),
        Binding("f6", "toggle_sort", "Сортировка"),
        Binding("f9", "toggle_theme", "Светлая/тёмная"),
        Binding("ctrl+q", "quit", "Выход", priority=True),
    ]

    def __init__(
        self,
        settings: Settings,
        *,
        zone: tzinfo | None = None,
        user: str | None = None,
        interval: float = 1.0,
        clock: Callable[[], datetime] = timefmt.now_utc,
        limit: int | None = call_list.DEFAULT_LIMIT,
        duration: float | None = None,
        note: str | None = None,
    ) -> None:
        super().__init__()
        if note:
            self.sub_title = f"{self.SUB_TITLE} · {note}"
        self.duration = duration  # close by itself after this many seconds (demo, screenshots)
        self.settings = settings
        self.zone = zone or timefmt.local_zone(settings.timezone)
        self.user = card.current_user(user, settings.user)
        self.interval = interval
        self.clock = clock
        self.limit = limit
        self.register: Register | None = None
        self._version: int | None = None
        self._file_state = FileState.SAME  # a change is said once
        self._unavailable: str | None = None  # why the register cannot be read now
        self._baseline_id = 0  # calls above this id arrived while the panel was open
        self._seen_max_id = 0
        self.loads = 0  # how many times the list was read (tests check idle costs nothing)
        self.deadlines = Deadlines.from_settings(settings)
        self.sort = "time"  # F6: 'age', the longest waiting case first

    def compose(self) -> ComposeResult:
        # Kept as attributes: App.query_one searches the active screen, which is the card
        # while one is open, and the poll must reach these all the same.
        self.missed = MissedCalls(deadlines=self.deadlines, id="missed")
        self.subs = SubscriptionsPane(self.settings, self.zone, clock=self.clock, id="subs-pane")
        self.tabs = TabbedContent(initial="calls")
        yield Header(show_clock=False, icon="☎")
        with self.tabs:
            with TabPane(TABS["calls"], id="calls"):
                yield self.missed
            with TabPane(TABS["reports"], id="reports"):
                yield ReportsPane(self.settings, self.zone, clock=self.clock, id="reports-pane")
            with TabPane(TABS["subs"], id="subs"):
                yield self.subs
        yield Footer()

    def on_mount(self) -> None:
        self.register = Register.open(self.settings.db)
        self._baseline_id = self.register.calls.max_id()
        self._seen_max_id = self._baseline_id
        self.refresh_data(force=True)
        self.missed.table.focus()
        self.set_interval(self.interval, self.refresh_data, name="poll")
        if self.duration is not None:
            self.set_timer(self.duration, self.exit, name="duration")

    def on_unmount(self) -> None:
        if self.register is not None:
            self.register.close()
            self.register = None

    # -- the poll -----------------------------------------------------------------------

    def refresh_data(self, force: bool = False) -> bool:
        """Re-read the register when it changed (or when forced); True when it was read."""
        register = self.register
        # The poll may fire while the app is shutting down and removing the widgets.
        if register is None or not self.is_running or not self.missed.is_attached:
            return False
        # Moved, deleted or replaced under the panel: the list stays as last read, and says so
        # once (a card saved meanwhile is refused: card_service, require_file).
        state = register.file_state()
        if state is not self._file_state:
            if self._file_state is not FileState.SAME:
                self.clear_notifications()  # the toast about the earlier state
            self._file_state = state
            if state is not FileState.SAME:
                text = calls_view.file_lost_text(register, state, "панель")
                self.notify(text, title="Реестр звонков", severity="error", timeout=3600)
            else:
                self.notify("Файл реестра звонков на месте: список снова обновляется.")
        if state is not FileState.SAME:
            return False
        try:
            read = self._read(register, force or self._unavailable is not None)
        except sqlite3.Error as exc:
            # The database server restarting, say: the panel stays, shows the last list read,
            # says so once, and reads again on the next ticks.
            if self._unavailable is None:
                self.notify(
                    calls_view.unavailable_text(str(exc)),
                    title="Реестр звонков",
                    severity="error",
                    timeout=3600,
                )
            self._unavailable = str(exc)
            return False
        if self._unavailable is not None:
            self._unavailable = None
            self.clear_notifications()
            self.notify("Реестр звонков снова доступен: список обновлён.")
        return read

    def _read(self, register: Register, force: bool) -> bool:
        version = register.data_version()
        subs = self.subs
        if version == self._version and not force:
            # Nothing new; only the subscriptions' «time left» and the cases' deadline colours
            # move with the clock (judged again in memory, the register is not read).
            if self.tabs.active == "subs":
                subs.show(register)
            judged = call_list.rejudge(self.missed.entries, self.deadlines, self._now_ms())
            if judged is not None:
                self.missed.recolour(judged)
            return False
        self._version = version
        listing = call_list.load(
            register,
            self.zone,
            self.limit,
            self._with_claims,
            deadlines=self.deadlines,
            now_ms=self._now_ms(),
            sort=self.sort,
        )
        entries = listing.entries
        ids = [cid for e in entries for cid in e.call_ids]
        new_keys = {e.key for e in entries if max(e.call_ids) > self._baseline_id}
        self.missed.show(entries, listing.open_count, new_keys, listing.capped)
        self._announce([e for e in entries if max(e.call_ids) > self._seen_max_id])
        self._seen_max_id = max([self._seen_max_id, *ids])
        subs.show(register)
        self.loads += 1
        return True

    def _with_claims(self, register: Register, rows: list[dict]) -> list[dict]:
        return calling_back.with_claims(register, self.settings, rows, self.clock())

    def _now_ms(self) -> int:
        return int(self.clock().timestamp() * 1000)

    def action_toggle_sort(self) -> None:
        self.sort = "time" if self.sort == "age" else "age"
        self.notify("Сначала ждущие дольше всех" if self.sort == "age" else "Сначала новые")
        self.refresh_data(force=True)

    def _announce(self, arrived: list[call_list.Entry]) -> None:
        if not arrived:
            return
        if len(arrived) == 1:
            who = arrived[0].client or phones.display(arrived[0].phone)
            self.notify(f"Новый пропущенный звонок: {who}", title="Пропущенный звонок")
        else:
            self.notify(f"Новых пропущенных звонков: {len(arrived)}", title="Пропущенные звонки")
        self.bell()

    # -- actions ------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Tabs and reload belong to the main screen, not to an open card.
        return not (action in {"show_tab", "reload"} and isinstance(self.screen, ModalScreen))

    def action_show_tab(self, tab: str) -> None:
        self.tabs.active = tab
        if tab == "calls":
            self.missed.table.focus()

    def action_toggle_theme(self) -> None:
        # The panel paints its own background, so either theme reads well in any terminal;
        # the choice is the person's (a bright room, a dark one).
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"

    def action_reload(self) -> None:
        self.refresh_data(force=True)
        if self.tabs.active == "reports":
            self.query_one(ReportsPane).run_report()

    @on(MissedCalls.OpenCard)
    def open_card(self, message: MissedCalls.OpenCard) -> None:
        assert self.register is not None
        try:
            screen = CardScreen(
                self.register,
                message.entry.call_id,
                zone=self.zone,
                user=self.user,
                journal=self.settings.journal,
                booker=onec_booking.booker_for(self.register, self.settings, self.zone),
                workshop=self._workshop(),
                settings=self.settings,
                clock=self.clock,
                on_claimed=lambda: self.refresh_data(force=True),
            )
        except UserError as exc:  # the call vanished (register replaced): say so, stay up
            self.notify(exc.text(russian=True), severity="error")
            self.refresh_data(force=True)
            return
        self.push_screen(screen, self._card_closed)

    def _workshop(self) -> Any:
        """The card's 1C lines (cars, open orders) when 1C is configured, else None."""
        if not onec_booking.configured(self.settings):
            return None
        from beeline_missed.onec import card_info as onec_card

        register_path, settings = self.settings.db, self.settings

        def lines(row: Call) -> list[tuple[str, str]]:
            # Its own connection: the worker thread must not share the panel's.
            from beeline_missed.store import Register

            register = Register.open(register_path)
            try:
                return onec_card.card_lines(onec_card.for_call(register, settings, row.phone))
            finally:
                register.close()

        return lines

    def _card_closed(self, outcome: card_service.Outcome | None) -> None:
        if outcome is not None:
            self.notify(
                outcome.message,
                title="Карточка звонка",
                severity="warning" if outcome.refused else "information",
            )
            if outcome.booking_message:
                self.notify(outcome.booking_message, title="Заявка в 1С", timeout=15)
            if outcome.journal:
                self.notify(outcome.journal, title="Журнал записи", timeout=15)
        # Our own save does not move data_version: reload explicitly.
        self.refresh_data(force=True)
        self.missed.table.focus()


def run(settings: Settings, **options: object) -> None:
    PanelApp(settings, **options).run()  # type: ignore[arg-type]
