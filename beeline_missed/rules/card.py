"""The call card's rules: one small pure module the CLI, the panel and auto-closing all call.

A card is opened (`Card.from_row`, which remembers the version read), the person edits it
(`Edit`), and `decide` says what to write (`Save`) or why nothing is written (`Discard`):

- while the status stays «Пропущен», nothing is saved;
- «Перезвонили» is not saved without a result (UserError, nothing written);
- «Записаться» sets «Перезвонили», appends «Записался на ремонт» to the result (on a new
  line when there is text already), records the current user, saves, and the caller then
  opens the appointment journal (journal.py);
- a Save carries the version read when the card was opened; the register refuses it with
  ConflictError when someone saved the card since (`store` turns that into a staff sentence).

Messages reach the shop's staff, so they are in Russian. Applying one decision to several
rows (one open case per caller) is `decide_many`; `store` writes a list of saves.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from beeline_missed.errors import ConflictError, UserError
from beeline_missed.vocabulary import CLOSED_BY_LABELS, STATUS_LABELS, CallStatus, ClosedBy

if TYPE_CHECKING:
    from beeline_missed.store.rows import Call

MISSED = CallStatus.MISSED
CALLED_BACK = CallStatus.CALLED_BACK
BOOKED = "Записался на ремонт"

# What people type for a status: stored values, labels, and short forms for the prompt.
_STATUS_WORDS = {
    MISSED.value: MISSED,
    STATUS_LABELS[MISSED].casefold(): MISSED,
    CALLED_BACK.value: CALLED_BACK,
    "called-back": CALLED_BACK,
    "calledback": CALLED_BACK,
    STATUS_LABELS[CALLED_BACK].casefold(): CALLED_BACK,
}

NOT_SAVED_MISSED = "Статус остался «Пропущен», поэтому изменения не сохранены."
NEED_RESULT = "«Перезвонили» нельзя сохранить без результата: напишите, чем закончился звонок."


def parse_status(text: str) -> str:
    """'missed' | 'called_back' from missed, called_back, Пропущен or Перезвонили (any case)."""
    key = str(text).strip().casefold()
    if key in _STATUS_WORDS:
        return _STATUS_WORDS[key]
    raise UserError(
        f"Неизвестный статус «{text}»: укажите Пропущен или Перезвонили (missed или called_back)."
    )


def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status)


def current_user(flag: str | None = None, configured: str | None = None) -> str:
    """--user, else the configured name, else the OS login."""
    for name in (flag, configured):
        if name and name.strip():
            return name.strip()
    with suppress(KeyError, OSError):  # no login name in some containers
        if login := getpass.getuser():
            return login
    raise UserError("Не удалось узнать, кто вы: укажите --user или user в config.toml.")


def add_booking(result: str) -> str:
    """The result with «Записался на ремонт» on its own last line, not repeated."""
    text = result.rstrip()
    if not text:
        return BOOKED
    if text.splitlines()[-1].strip() == BOOKED:
        return text
    return f"{text}\n{BOOKED}"


@dataclass(frozen=True)
class Card:
    """A call as it was when the card was opened; `version` is what the save checks."""

    id: int
    version: int
    status: str
    result: str
    user: str | None
    handled_at: str | None
    phone: str | None = None
    client: str | None = None
    called_at: str | None = None
    line: str = ""

    @classmethod
    def from_row(cls, row: Call) -> Card:
        return cls(
            id=row.id,
            version=row.version,
            status=row.status,
            result=row.result,
            user=row.user,
            handled_at=row.handled_at,
            phone=row.phone,
            client=row.client,
            called_at=row.called_at,
            line=row.line,
        )


@dataclass(frozen=True)
class Edit:
    """What the person chose. None means 'leave as it is'."""

    user: str
    status: str | None = None
    result: str | None = None
    book: bool = False

    @classmethod
    def parse(
        cls, user: str, status: str | None = None, result: str | None = None, book: bool = False
    ) -> Edit:
        """An Edit from raw input (a status word in any accepted spelling)."""
        parsed = parse_status(status) if status is not None else None
        if book and parsed == MISSED:
            raise UserError("«Записаться» ставит статус «Перезвонили»; не указывайте «Пропущен».")
        return cls(user=user, status=parsed, result=result, book=book)


@dataclass(frozen=True)
class Save:
    """A write the rules allow: the register applies it only at `expected_version`."""

    call_id: int
    expected_version: int
    status: str
    result: str
    user: str | None
    handled_at: str
    closed_by: str
    booked: bool = False


@dataclass(frozen=True)
class Discard:
    """Nothing to write. `refused` is True when a rule said no (scripts exit non-zero);
    False when the card simply did not change."""

    call_id: int
    reason: str
    refused: bool = True


Decision = Save | Discard


def decide(card: Card, edit: Edit, now: str) -> Decision:
    """Apply the card's rules to one edit; raises UserError when the edit cannot be saved."""
    if edit.book:  # «Записаться» always means «Перезвонили»
        base = edit.result if edit.result is not None else card.result
        result = add_booking(base)
    elif (edit.status or card.status) == MISSED:
        return Discard(card.id, NOT_SAVED_MISSED)
    else:
        result = (edit.result if edit.result is not None else card.result).strip()
    if not result.strip():
        raise UserError(NEED_RESULT)
    # Re-saving a handled card as it was is not an edit: the user who called back stays.
    if not edit.book and card.status == CALLED_BACK and result == card.result.strip():
        return Discard(card.id, "Ничего не изменилось.", refused=False)
    # Keep the moment the client was first reached; a later correction is not a new call.
    handled_at = card.handled_at if card.status == CALLED_BACK and card.handled_at else now
    return Save(
        call_id=card.id,
        expected_version=card.version,
        status=CALLED_BACK,
        result=result,
        user=edit.user,
        handled_at=handled_at,
        closed_by=ClosedBy.STAFF,
        booked=edit.book,
    )


def decide_many(cards: Sequence[Card], edit: Edit, now: str) -> list[Decision]:
    """One decision for several calls (all open calls of one caller)."""
    return [decide(card, edit, now) for card in cards]


def auto_close(card: Card, reason: str, now: str) -> Decision:
    """The daemon closing a call by itself (the client got through later, or staff reached
    them): «Перезвонили» with `reason` as the result, closed_by 'auto', no user."""
    if card.status != MISSED:
        return Discard(card.id, "Звонок уже обработан.", refused=False)
    if not reason.strip():
        raise UserError(NEED_RESULT)
    return Save(
        call_id=card.id,
        expected_version=card.version,
        status=CALLED_BACK,
        result=reason.strip(),
        user=None,
        handled_at=now,
        closed_by=ClosedBy.AUTO,
    )


class CardStore(Protocol):
    """What `store` needs of the register (its `calls` part satisfies it)."""

    def save_many(self, saves: Sequence[dict[str, Any]]) -> list[Call]: ...

    def get(self, call_id: int) -> Call: ...


def store(calls: CardStore, saves: Iterable[Save]) -> list[Call]:
    """Write saves together, all or nothing (one caller's open calls are one case); a conflict
    becomes a sentence naming who saved first (exit 3). Rows come back in the order given."""
    saves = list(saves)
    try:
        written = calls.save_many(
            [
                {
                    "call_id": save.call_id,
                    "expected_version": save.expected_version,
                    "status": save.status,
                    "result": save.result,
                    "user": save.user,
                    "handled_at": save.handled_at,
                    "closed_by": save.closed_by,
                }
                for save in saves
            ]
        )
    except ConflictError as exc:
        call_id = exc.call_id if exc.call_id is not None else saves[0].call_id
        raise ConflictError(conflict_message(calls.get(call_id))) from None
    by_id = {row.id: row for row in written}
    return [by_id[save.call_id] for save in saves]


def conflict_message(now_row: Call) -> str:
    who = now_row.user or (
        CLOSED_BY_LABELS[ClosedBy.AUTO] if now_row.closed_by == ClosedBy.AUTO else "кто-то другой"
    )
    state = status_label(now_row.status)
    return (
        f"Карточку звонка {now_row.id} уже сохранили ({who}, статус «{state}»), пока вы её "
        "редактировали: ваши изменения не записаны, откройте карточку заново."
    )
