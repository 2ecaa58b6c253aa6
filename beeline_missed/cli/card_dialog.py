"""The call card as a dialog in the terminal (`card ID` without flags): show the card, ask for
the status and the result, and save through the case service, which applies card.py's rules.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import tzinfo
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from beeline_missed.cases.card_service import Outcome, apply, case_row
from beeline_missed.errors import UserError
from beeline_missed.rules import card
from beeline_missed.store import Register
from beeline_missed.views import calls as calls_view

if TYPE_CHECKING:
    from beeline_missed.store import Call

BOOK = "book"  # the third choice of the status prompt


_CHOICES = {
    "1": card.MISSED,
    "2": card.CALLED_BACK,
    "3": BOOK,
    "записаться": BOOK,
    "записать": BOOK,
    "book": BOOK,
}


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
    is calling back, the line's staff names: calling_back.card_row)."""
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
