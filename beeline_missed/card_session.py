"""The call card in the terminal: open, ask or take flags, apply card.py's rules, save, journal.

The rules themselves are in card.py; this module only talks to the person and the register,
so `card ID` with flags and the interactive dialog go through exactly the same decide/store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import tzinfo
from typing import Any

from rich.markup import escape

from beeline_missed import calls_view, card, journal, timefmt
from beeline_missed.errors import UserError
from beeline_missed.store import Call, Register

BOOK = "book"  # the third choice of the status prompt
_CHOICES = {
    "1": card.MISSED,
    "2": card.CALLED_BACK,
    "3": BOOK,
    "записаться": BOOK,
    "записать": BOOK,
    "book": BOOK,
}


@dataclass(frozen=True)
class Outcome:
    """What happened to the card: saved row (or None), the sentence for staff, journal text."""

    saved: Call | None
    message: str
    journal: str | None = None
    refused: bool = False
    # 1C:Альфа-Авто: the booking «Записаться» created in 1C (onec_booking.Booked.booking)
    # and the sentence about it; None when 1C is not configured.
    booking: dict[str, Any] | None = None
    booking_message: str | None = None


def open_card(register: Register, call_id: int, expect_version: int | None = None) -> card.Card:
    """The card as read now; `expect_version` makes the save check an older read instead."""
    opened = card.Card.from_row(register.calls.get(call_id))
    if expect_version is not None:
        opened = replace(opened, version=expect_version)
    return opened


def apply(
    register: Register,
    opened: card.Card,
    edit: card.Edit,
    journal_template: str | None,
    now: str | None = None,
    booker: Callable[[Call], Any] | None = None,
) -> Outcome:
    """Decide with card.py's rules, write, and open the journal after «Записаться»; with a
    `booker` (onec_booking, when 1C is configured) the booking is created in 1C first."""
    now = now or timefmt.to_stored(timefmt.now_utc())
    decision = card.decide(opened, edit, now)
    if isinstance(decision, card.Discard):
        return Outcome(None, decision.reason, refused=decision.refused)
    # One open case per caller: their other open calls are handled with this one.
    others = (
        [
            card.Card.from_row(row)
            for row in register.calls.case(opened.id)
            if row.id != opened.id
        ]
        if opened.status == card.MISSED
        else []
    )
    saves = [decision] + [
        other for other in card.decide_many(others, edit, now) if isinstance(other, card.Save)
    ]
    saved = card.store(register.calls, saves)[0]
    who = f", {saved.user}" if saved.user else ""
    also = f" (и ещё {len(saves) - 1} звонка этого номера)" if len(saves) > 1 else ""
    message = (
        f"Сохранено: звонок {saved.id}{also} — «{card.status_label(saved.status)}»{who}."
    )
    journal_text = None
    booked = None
    if decision.booked and booker is not None:
        # The card is saved already: whatever 1C answers, nothing of it is lost.
        booked = booker(saved)
        saved = booked.row or saved
    if decision.booked:
        try:
            journal_text = journal.open_for_call(
                journal_template,
                saved.phone,
                saved.client,
                booked.booking if booked is not None else None,
            )
        except UserError as exc:
            # The card is saved already; a journal that will not open must not hide that.
            journal_text = f"Карточка сохранена, но журнал записи не открылся: {exc}"
    if booked is not None:
        return Outcome(
            saved, message, journal_text, booking=booked.booking, booking_message=booked.message
        )
    return Outcome(saved, message, journal_text)


def case_row(register: Register, call_id: int) -> Call:
    """The call with its caller's open attempts, as the card shows it."""
    row = register.calls.get(call_id)
    case = register.calls.case(call_id)
    row = replace(
        row,
        attempts=len(case),
        first_called_at=min(c.called_at for c in case),
        call_ids=tuple(sorted(c.id for c in case)),
    )
    return with_attempts(register, row)


def with_attempts(register: Register, row: Call) -> Call:
    """The row with the callback attempts recorded on its case (calls too short to close it)."""
    return replace(row, callback_attempts=tuple(register.attempts.of(row.call_ids)))


def parse_choice(text: str, current: str) -> str:
    """The status prompt's answer: 1/2/3, a status word, «Записаться»; empty keeps it."""
    key = " ".join(text.split()).casefold()
    if not key:
        return current
    if key in _CHOICES:
        return _CHOICES[key]
    return card.parse_status(text)


def interactive(
    register: Register,
    call_id: int,
    user: str,
    zone: tzinfo,
    journal_template: str | None,
    ask: Callable[[str, str], str],
    show: Callable[[str], None],
    booker: Callable[[Call], Any] | None = None,
    workshop: Callable[[Call], list[tuple[str, str]]] | None = None,
    decorate: Callable[[Call], Call] | None = None,
) -> Outcome:
    """The card dialog. `ask(question, default)` returns the answer; `show` prints a line
    of rich markup (data in it is escaped). `decorate` adds what the row does not store (who
    is calling back, the line's staff names: casework.card_row)."""
    row = case_row(register, call_id)
    if decorate is not None:
        row = decorate(row)
    opened = card.Card.from_row(row)  # its version is what the save will check
    show(f"[bold]Карточка звонка {row.id}[/bold]")
    for label, value in calls_view.card_lines(row, zone):
        show(f"{label}: {escape(value)}" if value else f"{label}: —")
    # 1C:Альфа-Авто: the client's cars and open repair orders (onec_card; short timeout).
    for label, value in workshop(row) if workshop is not None else []:
        show(f"{label}: {escape(value)}")
    show(
        f"Статус: 1 — {card.status_label(card.MISSED)}, "
        f"2 — {card.status_label(card.CALLED_BACK)}, 3 — Записаться на ремонт"
    )
    while True:
        answer = ask("Статус", card.status_label(opened.status))
        try:
            choice = parse_choice(answer, opened.status)
            break
        except UserError as exc:
            show(escape(str(exc)))
    if choice == card.MISSED:
        return Outcome(None, card.NOT_SAVED_MISSED, refused=True)
    book = choice == BOOK
    question = "Комментарий (Enter — без комментария)" if book else "Результат"
    while True:
        result = ask(question, opened.result)
        edit = card.Edit(user=user, status=card.CALLED_BACK, result=result, book=book)
        try:
            return apply(register, opened, edit, journal_template, booker=booker)
        except UserError as exc:
            if str(exc) != card.NEED_RESULT:
                raise  # a conflict or a broken register: nothing to ask again
            show(escape(str(exc)))
