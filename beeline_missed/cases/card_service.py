"""The case service: open a call's card, apply card.py's rules to an edit, save it with the
caller's other open calls, book in 1C and open the journal after «Записаться».

The CLI's flags (`card ID --status …`), its terminal dialog (cli/card_dialog.py) and the panel's
card all go through `open_card` and `apply`, so they decide and store exactly alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from beeline_missed import timefmt
from beeline_missed.cases import journal
from beeline_missed.errors import UserError
from beeline_missed.rules import card
from beeline_missed.store import Register

if TYPE_CHECKING:
    from beeline_missed.store import Call


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
        [card.Card.from_row(row) for row in register.calls.case(opened.id) if row.id != opened.id]
        if opened.status == card.MISSED
        else []
    )
    saves = [decision] + [
        other for other in card.decide_many(others, edit, now) if isinstance(other, card.Save)
    ]
    # A card may stay open for minutes: the register may have been restored from a backup or
    # moved meanwhile, and a save into the file opened would be lost with it.
    register.require_file()
    saved = card.store(register.calls, saves)[0]
    who = f", {saved.user}" if saved.user else ""
    also = f" (и ещё {len(saves) - 1} звонка этого номера)" if len(saves) > 1 else ""
    message = f"Сохранено: звонок {saved.id}{also} — «{card.status_label(saved.status)}»{who}."
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
