"""The «Подписки» tab: what `status` shows, from the register (live), and a PBX check on demand.

The table is read from the register's subscriptions table and the keeper's error note, so it
costs nothing to keep current; asking the PBX whether each subscription is alive is a network
round trip per subscription, so it happens only when staff press «Проверить на АТС».
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Static

from beeline_missed import timefmt
from beeline_missed.config import Settings
from beeline_missed.errors import UserError
from beeline_missed.pbx import subscriptions
from beeline_missed.store import Register
from beeline_missed.vocabulary import LIVE_STATE_LABELS, LiveState

COLUMNS = ("Абонент", "Состояние", "Осталось", "Действует до", "Проверена", "Подписка")


def left_text(seconds: int) -> str:
    """Time left as staff read it: «52 мин 10 с», «1 ч 05 мин», «2 д 3 ч»."""
    if seconds <= 0:
        return "0 с"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours >= 24:
        return f"{hours // 24} д {hours % 24} ч"
    if hours:
        return f"{hours} ч {minutes:02d} мин"
    return f"{minutes} мин {secs:02d} с" if minutes else f"{secs} с"


class SubscriptionsPane(Vertical):
    def __init__(
        self,
        settings: Settings,
        zone: tzinfo,
        clock: Callable[[], datetime] = timefmt.now_utc,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.zone = zone
        self.clock = clock
        # subscription id -> what the last PBX check said
        self.checked: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Static("", id="subs-summary")
        table: DataTable[str] = DataTable(id="subs-table", cursor_type="row", zebra_stripes=True)
        for label in COLUMNS:
            table.add_column(label, key=label)
        yield table
        yield Static("", id="subs-events")
        yield Static("", id="subs-error", classes="hidden")
        with Horizontal(id="subs-buttons"):
            yield Button("Проверить на АТС", id="subs-check", variant="primary")

    def show(self, register: Register) -> None:
        """Redraw from the register (cheap: a handful of rows)."""
        now = self.clock()
        rows = register.subscriptions.rows()
        table = self.query_one("#subs-table", DataTable)
        keep = table.cursor_row
        table.clear()
        for sub in rows:
            left = subscriptions.seconds_left(sub, now)
            state = (
                self.checked.get(sub.id)
                or LIVE_STATE_LABELS[LiveState.ACTIVE if left > 0 else LiveState.EXPIRED]
            )
            table.add_row(
                (sub.pattern or "вся АТС").split("@", 1)[0],
                state,
                left_text(left) if left > 0 else "",
                timefmt.show_local(sub.expires_at, self.zone),
                timefmt.show_local(sub.last_checked_at, self.zone),
                sub.id,
                key=sub.id,
            )
        if rows:
            table.move_cursor(row=min(max(keep, 0), len(rows) - 1), animate=False)
        summary = (
            f"Подписок на события АТС: {len(rows)}"
            if rows
            else "Подписок нет: события о звонках не приходят (beeline-missed subscribe)."
        )
        self.query_one("#subs-summary", Static).update(summary)
        last = subscriptions.last_event_at(register)
        self.query_one("#subs-events", Static).update(
            f"Последнее событие от АТС: {timefmt.show_local(last, self.zone)}"
            if last
            else "Событий от АТС ещё не было."
        )
        keeper_error = register.meta.get("keeper_error")
        self.show_error(f"Демон не смог обновить подписки: {keeper_error}" if keeper_error else "")

    def show_error(self, text: str) -> None:
        error = self.query_one("#subs-error", Static)
        error.update(text)
        error.set_class(not text, "hidden")

    @on(Button.Pressed, "#subs-check")
    def action_check(self) -> None:
        self.query_one("#subs-check", Button).disabled = True
        self.notify("Проверяю подписки на АТС…")
        self.check_live()

    @work(thread=True, exclusive=True, group="subs-check")
    def check_live(self) -> None:
        """Ask the PBX about each subscription, in a thread with its own connections."""
        from beeline_missed.pbx.api import PbxClient

        message = ""
        checked: dict[str, str] = {}
        try:
            register = Register.open(self.settings.db)
            try:
                if register.subscriptions.rows():
                    with PbxClient.from_settings(self.settings) as pbx:
                        for found in subscriptions.status(register, pbx, now=self.clock()):
                            checked[found.subscription.id] = LIVE_STATE_LABELS[found.live_state]
            finally:
                register.close()
        except UserError as exc:
            message = exc.text(russian=True)
        self.app.call_from_thread(self._checked, checked, message)

    def _checked(self, checked: dict[str, str], message: str) -> None:
        self.query_one("#subs-check", Button).disabled = False
        if message:
            self.notify(message, title="Проверка не удалась", severity="error", timeout=10)
            return
        self.checked = checked
        gone = sum(1 for state in checked.values() if state != LIVE_STATE_LABELS[LiveState.ACTIVE])
        self.notify(
            f"Проверено подписок: {len(checked)}, не действуют: {gone}.",
            severity="warning" if gone else "information",
        )
        refresh = getattr(self.app, "refresh_data", None)
        if refresh:
            refresh(force=True)
