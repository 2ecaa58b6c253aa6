"""The call card as a modal screen. Every rule is card.py's (through card_service.apply), and
claims' and click-to-call's are claims.py's and callback.py's (through cases/calling_back.py);
this screen only collects the status and result, and shows what the rules answered."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Label, Select, Static, TextArea

from beeline_missed import config, timefmt
from beeline_missed.cases import calling_back, card_service
from beeline_missed.config import Settings
from beeline_missed.errors import UserError
from beeline_missed.rules import card
from beeline_missed.store import Register
from beeline_missed.views import calls as calls_view

STATUS_OPTIONS = [(card.STATUS_LABELS[s], s) for s in (card.MISSED, card.CALLED_BACK)]


class CardScreen(ModalScreen[card_service.Outcome | None]):
    """Dismissed with the Outcome of a save, or None when closed without saving."""

    BINDINGS: ClassVar[list[Binding]] = [
        Binding("escape", "close", "Закрыть"),
        Binding("ctrl+s", "save", "Сохранить"),
        Binding("ctrl+b", "book", "Записаться"),
        Binding("ctrl+t", "call", "Позвонить"),
        Binding("ctrl+r", "claim", "Взять в работу"),
    ]
    CLAIM = "Взять в работу"
    TAKE_OVER = "Забрать себе"

    def __init__(
        self,
        register: Register,
        call_id: int,
        *,
        zone: tzinfo,
        user: str,
        journal: str | None,
        booker: Any = None,
        workshop: Any = None,
        settings: Settings | None = None,
        clock: Callable[[], datetime] = timefmt.now_utc,
        pbx: Callable[[], Any] | None = None,
        on_claimed: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.booker = booker  # creates the booking in 1C after «Записаться» (onec_booking)
        # The client's cars and open orders from 1C (onec_card), asked in a worker thread.
        self.workshop = workshop
        self.register = register
        self.settings = settings or config.load()
        self.clock = clock
        self.pbx = pbx or self._pbx
        self.on_claimed = on_claimed
        # The next «Взять в работу» takes someone else's claim (after they were named).
        self.take_over = False
        # With the caller's open attempts: saving handles all of them.
        row = card_service.case_row(register, call_id)
        self.row = calling_back.card_row(register, self.settings, row, clock())
        # What the save will check: someone else saving after this moment is a conflict.
        self.opened = card.Card.from_row(self.row)
        self.zone = zone
        self.user = user  # the login: claims and the [staff] abonent are by it
        # Who called back as the register keeps it: the [staff] name (as auto-close writes).
        self.user_name = config.display_name(self.settings, user) or user
        self.journal = journal

    def _pbx(self) -> Any:
        from beeline_missed.pbx.api import PbxClient

        return PbxClient.from_settings(self.settings)

    def compose(self) -> ComposeResult:
        fields = dict(calls_view.card_lines(self.row, self.zone))
        with Vertical(id="card"):
            yield Static(f"Карточка звонка № {self.opened.id}", id="card-title")
            with Grid(id="card-fields"):
                yield Label("Номер", classes="field-label")
                yield Static(fields["Номер"], id="card-number", classes="field-value")
                yield Label("Дата и время", classes="field-label")
                yield Static(fields["Дата и время"], id="card-when", classes="field-value")
                if self.row.attempts > 1:
                    yield Label("Попыток", classes="field-label")
                    yield Static(fields["Попыток"], id="card-attempts", classes="field-value")
                yield Label("Линия", classes="field-label")
                yield Static(fields["Линия"] or "—", id="card-line", classes="field-value")
                for (label, value), key in zip(
                    calls_view.where_lost_lines(self.row), ("lost-at", "forwarded"), strict=False
                ):
                    yield Label(label, classes="field-label")
                    yield Static(value, id=f"card-{key}", classes="field-value")
                if fields.get(calls_view.ATTEMPTS_LABEL):
                    # One line: the latest attempt, and how many there were.
                    tried = fields[calls_view.ATTEMPTS_LABEL].splitlines()
                    shown = tried[-1] + (f" (всего: {len(tried)})" if len(tried) > 1 else "")
                    yield Label(calls_view.ATTEMPTS_LABEL, classes="field-label")
                    yield Static(shown, id="card-tried", classes="field-value")
                yield Label("Статус", id="card-status-label", classes="field-label")
                yield Select(
                    STATUS_OPTIONS, value=self.opened.status, allow_blank=False, id="card-status"
                )
                yield Label("Пользователь", classes="field-label")
                yield Static(self.opened.user or "", id="card-user", classes="field-value readonly")
                yield Label("В работе", classes="field-label")
                yield Static(self.row.claim_label or "—", id="card-claim", classes="field-value")
            if self.workshop is not None:
                yield Static("1С: запрашиваю автомобили и заказ-наряды…", id="card-onec")
            yield Label("Результат", classes="field-label")
            yield TextArea(self.opened.result, id="card-result", tab_behavior="focus")
            yield Static("", id="card-error", classes="hidden")
            yield Static("", id="card-info", classes="hidden")
            with Horizontal(id="card-actions"):
                yield Button("Позвонить", id="call", variant="warning")
                yield Button(self.CLAIM, id="claim")
            with Horizontal(id="card-buttons"):
                yield Button("Записаться", id="book", variant="success")
                yield Button("Сохранить", id="save", variant="primary")
                yield Button("Закрыть", id="close")
        yield Footer()

    def on_mount(self) -> None:
        # One line a field, three for the status selector: as many rows as this card has fields.
        fields = self.query_one("#card-fields", Grid)
        before_status = len(fields.query(".field-label")) - 3
        fields.styles.grid_rows = " ".join(["1"] * before_status + ["3", "1", "1"])
        self.query_one("#card-result", TextArea).focus()
        if self.workshop is not None:
            self.run_worker(self._load_workshop, thread=True, exclusive=True)

    def _load_workshop(self) -> None:
        """In a thread: the card is usable at once, whatever 1C takes (onec_card_timeout)."""
        lines = self.workshop(self.row)
        text = "\n".join(f"{label}: {value}" for label, value in lines)
        self.app.call_from_thread(self._show_workshop, text)

    def _show_workshop(self, text: str) -> None:
        if self.is_attached:
            widget = self.query_one("#card-onec", Static)
            widget.update(text or "")
            widget.set_class(not text, "hidden")

    # -- what the person chose ----------------------------------------------------------

    @property
    def status(self) -> str:
        value = self.query_one("#card-status", Select).value
        return str(value) if value is not Select.NULL else self.opened.status

    @property
    def result(self) -> str:
        return self.query_one("#card-result", TextArea).text

    def show_error(self, message: str) -> None:
        self.query_one("#card-info", Static).add_class("hidden")
        error = self.query_one("#card-error", Static)
        error.update(message)
        error.remove_class("hidden")

    def show_info(self, message: str) -> None:
        """What is happening («Звоним: возьмите трубку…»): the card stays open."""
        self.query_one("#card-error", Static).add_class("hidden")
        info = self.query_one("#card-info", Static)
        info.update(message)
        info.remove_class("hidden")

    def _claimed(self, messages: list[str]) -> None:
        """After a claim was written: the card's line, the list behind it, the message."""
        self.take_over = False
        self.query_one("#claim", Button).label = self.CLAIM
        self.query_one("#call", Button).disabled = False
        now = self.clock()
        row = calling_back.with_claims(self.register, self.settings, [self.row], now)[0]
        self.row = row
        self.query_one("#card-claim", Static).update(row.claim_label or "—")
        self.show_info(" ".join(messages))
        if self.on_claimed is not None:
            self.on_claimed()

    def _refused(self, message: str) -> None:
        self.show_error(message)
        if "уже перезванивает" in message:
            # Named who holds it; pressing again takes it over, on purpose.
            self.take_over = True
            self.query_one("#claim", Button).label = self.TAKE_OVER

    def _apply(self, *, book: bool) -> card_service.Outcome | None:
        """Run the rules; None (and the reason shown in the card) when nothing was saved."""
        status = card.CALLED_BACK if book else self.status
        edit = card.Edit(user=self.user_name, status=status, result=self.result, book=book)
        try:
            outcome = card_service.apply(
                self.register, self.opened, edit, self.journal, booker=self.booker
            )
        except UserError as exc:  # no result, a conflict: the card stays open
            self.show_error(exc.text(russian=True))
            return None
        if outcome.refused:
            self.show_error(outcome.message)
            return None
        return outcome

    # -- buttons and keys ---------------------------------------------------------------

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        outcome = self._apply(book=False)
        if outcome is not None:
            self.dismiss(outcome)

    @on(Button.Pressed, "#book")
    def action_book(self) -> None:
        outcome = self._apply(book=True)
        if outcome is not None:
            self.dismiss(outcome)

    @on(Button.Pressed, "#claim")
    def action_claim(self) -> None:
        try:
            message = calling_back.claim(
                self.register,
                self.settings,
                self.opened.id,
                self.user,
                self.clock(),
                force=self.take_over,
                hint=f"Чтобы взять звонок себе, нажмите «{self.TAKE_OVER}».",
            )
        except UserError as exc:
            self._refused(exc.text(russian=True))
            return
        self._claimed([message])

    @on(Button.Pressed, "#call")
    def action_call(self) -> None:
        self.show_info("Соединяюсь с АТС…")
        self.query_one("#call", Button).disabled = True
        self._place_call(self.take_over)

    @work(thread=True, exclusive=True, group="call")
    def _place_call(self, force: bool) -> None:
        # The PBX may take seconds to answer: never in the UI's thread. A register connection
        # is not shared across threads, so this one opens its own.
        from beeline_missed.store import Register

        register = Register.open(self.settings.db)
        try:
            messages = calling_back.call_client(
                register,
                self.settings,
                self.opened.id,
                self.user,
                self.clock(),
                self.pbx,
                force=force,
                hint=f"Чтобы позвонить самому, нажмите «{self.TAKE_OVER}», затем «Позвонить».",
            )
        except UserError as exc:
            self.app.call_from_thread(self._call_failed, exc.text(russian=True))
        else:
            self.app.call_from_thread(self._claimed, messages)
        finally:
            register.close()

    def _call_failed(self, message: str) -> None:
        self.query_one("#call", Button).disabled = False
        self._refused(message)

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        # Closing while the status is «Пропущен» discards the changes (the card's rule);
        # with «Перезвонили» it saves, and a missing result keeps the card open.
        if self.status == card.MISSED:
            changed = self.result.strip() != self.opened.result.strip()
            discarded = card_service.Outcome(None, card.NOT_SAVED_MISSED, refused=True)
            self.dismiss(discarded if changed else None)
            return
        outcome = self._apply(book=False)
        if outcome is not None:
            self.dismiss(outcome)

    @on(Select.Changed, "#card-status")
    @on(TextArea.Changed, "#card-result")
    def _clear_error(self) -> None:
        self.query_one("#card-error", Static).add_class("hidden")
