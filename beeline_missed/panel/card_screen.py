"""The call card as a modal screen. Every rule is card.py's (through card_session.apply);
this screen only collects the status and result and shows what the rules answered."""

from __future__ import annotations

from datetime import tzinfo
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Label, Select, Static, TextArea

from beeline_missed import calls_view, card, card_session
from beeline_missed.errors import UserError
from beeline_missed.register import Register

STATUS_OPTIONS = [(card.STATUS_LABELS[s], s) for s in (card.MISSED, card.CALLED_BACK)]


class CardScreen(ModalScreen[card_session.Outcome | None]):
    """Dismissed with the Outcome of a save, or None when closed without saving."""

    BINDINGS: ClassVar[list[Binding]] = [
        Binding("escape", "close", "Закрыть"),
        Binding("ctrl+s", "save", "Сохранить"),
        Binding("ctrl+b", "book", "Записаться"),
    ]

    def __init__(
        self,
        register: Register,
        call_id: int,
        *,
        zone: tzinfo,
        user: str,
        journal: str | None,
    ) -> None:
        super().__init__()
        self.register = register
        # With the caller's open attempts: saving handles all of them.
        self.row = card_session.case_row(register, call_id)
        # What the save will check: someone else saving after this moment is a conflict.
        self.opened = card.Card.from_row(self.row)
        self.zone = zone
        self.user = user
        self.journal = journal

    def compose(self) -> ComposeResult:
        fields = dict(calls_view.card_lines(self.row, self.zone))
        with Vertical(id="card"):
            yield Static(f"Карточка звонка № {self.opened.id}", id="card-title")
            with Grid(id="card-fields"):
                yield Label("Номер", classes="field-label")
                yield Static(fields["Номер"], id="card-number", classes="field-value")
                yield Label("Дата и время", classes="field-label")
                yield Static(fields["Дата и время"], id="card-when", classes="field-value")
                if int(self.row["attempts"]) > 1:
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
            yield Label("Результат", classes="field-label")
            yield TextArea(self.opened.result, id="card-result", tab_behavior="focus")
            yield Static("", id="card-error", classes="hidden")
            with Horizontal(id="card-buttons"):
                yield Button("Записаться", id="book", variant="success")
                yield Button("Сохранить", id="save", variant="primary")
                yield Button("Закрыть", id="close")
        yield Footer()

    def on_mount(self) -> None:
        # One line a field, three for the status selector: as many rows as this card has fields.
        fields = self.query_one("#card-fields", Grid)
        before_status = len(fields.query(".field-label")) - 2
        fields.styles.grid_rows = " ".join(["1"] * before_status + ["3", "1"])
        self.query_one("#card-result", TextArea).focus()

    # -- what the person chose ----------------------------------------------------------

    @property
    def status(self) -> str:
        value = self.query_one("#card-status", Select).value
        return str(value) if value is not Select.NULL else self.opened.status

    @property
    def result(self) -> str:
        return self.query_one("#card-result", TextArea).text

    def show_error(self, message: str) -> None:
        error = self.query_one("#card-error", Static)
        error.update(message)
        error.remove_class("hidden")

    def _apply(self, *, book: bool) -> card_session.Outcome | None:
        """Run the rules; None (and the reason shown in the card) when nothing was saved."""
        status = card.CALLED_BACK if book else self.status
        edit = card.Edit(user=self.user, status=status, result=self.result, book=book)
        try:
            outcome = card_session.apply(self.register, self.opened, edit, self.journal)
        except UserError as exc:  # no result, a conflict: the card stays open
            self.show_error(str(exc))
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

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        # Closing while the status is «Пропущен» discards the changes (the card's rule);
        # with «Перезвонили» it saves, and a missing result keeps the card open.
        if self.status == card.MISSED:
            changed = self.result.strip() != self.opened.result.strip()
            discarded = card_session.Outcome(None, card.NOT_SAVED_MISSED, refused=True)
            self.dismiss(discarded if changed else None)
            return
        outcome = self._apply(book=False)
        if outcome is not None:
            self.dismiss(outcome)

    @on(Select.Changed, "#card-status")
    @on(TextArea.Changed, "#card-result")
    def _clear_error(self) -> None:
        self.query_one("#card-error", Static).add_class("hidden")
