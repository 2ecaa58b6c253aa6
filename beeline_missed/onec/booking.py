"""«Записаться» creates the booking in 1C: a `Document_ЗаявкаНаРемонт` for the caller.

The card is saved first (card.py's rules, as always); then, when 1C is configured and the
caller is a client synced from 1C, the booking is kept in the register and POSTed with the
client's Ref_Key, a comment describing the call and the shop's fixed fields. On success the
card's result reads «Записался на ремонт, заявка № <Number>». When 1C refuses or is down the
booking stays waiting: the daemon retries it (`retry_waiting`), and `status` lists it. A token
in the comment lets a retry find a document 1C created although its answer was lost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import tzinfo
from typing import TYPE_CHECKING, Any

from beeline_missed import phones, timefmt
from beeline_missed.errors import ConflictError
from beeline_missed.onec.client import OnecClient, OnecError
from beeline_missed.rules import card
from beeline_missed.vocabulary import ClosedBy

if TYPE_CHECKING:
    from beeline_missed.config import Settings
    from beeline_missed.store import Call, Register

NOT_A_CLIENT = (
    "Этого клиента нет в справочнике из 1С, поэтому заявку в 1С не создать: запишите его "
    "через журнал записи."
)


@dataclass(frozen=True)
class Booked:
    """What became of the booking: `booking` for `--json` ({number, ref} once created,
    {state: waiting, error} when kept for a retry, {state: not_client}), the sentence for
    staff, and the call row with the number written into its result."""

    booking: dict[str, Any]
    message: str
    row: Call | None = None


def configured(settings: Settings) -> bool:
    return bool(settings.onec_url and settings.onec_user)


def booker_for(register: Register, settings: Settings, zone: tzinfo) -> Any:
    """What card_service.apply calls after «Записаться»; None when 1C is not configured."""
    if not configured(settings):
        return None
    return lambda saved: book(register, settings, saved, zone)


def with_number(result: str, number: str) -> str:
    """«Записался на ремонт» (the last line) becomes «Записался на ремонт, заявка № N»."""
    lines = result.rstrip().splitlines()
    if lines and lines[-1].strip() == card.BOOKED:
        lines[-1] = f"{card.BOOKED}, заявка № {number}"
        return "\n".join(lines)
    return result


def comment(row: Call, zone: tzinfo, token: str) -> str:
    """The booking's comment: the call, who called back and what came of it."""
    phone = phones.display(row.phone) if row.phone else "скрытого номера"
    when = timefmt.show_local(row.called_at, zone)
    result = " ".join(row.result.split())
    who = row.user or "—"
    return (
        f"Пропущенный звонок с {phone} {when}; перезвонил(а): {who}; результат: {result}. [{token}]"
    )


def body(settings: Settings, client_ref: str, text: str, now_local: str) -> dict[str, Any]:
    return {
        "Date": now_local,
        **settings.onec_booking_fields,
        settings.onec_booking_client: client_ref,
        settings.onec_booking_comment: text,
    }


def book(
    register: Register,
    settings: Settings,
    saved: Call,
    zone: tzinfo,
    now: str | None = None,
) -> Booked:
    """Create the booking for a card just saved with «Записаться»."""
    now = now or timefmt.to_stored(timefmt.now_utc())
    holder = register.onec.client_of(saved.phone)
    if holder is None or not holder.onec_ref:
        return Booked({"state": "not_client"}, NOT_A_CLIENT)
    moment = timefmt.to_local(now, zone)
    assert moment is not None
    token = f"beeline-missed {saved.id}-{moment.strftime('%Y%m%d%H%M%S')}"
    made_body = body(
        settings,
        holder.onec_ref,
        comment(saved, zone, token),
        moment.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    booking_id = register.onec.add_booking(
        saved.id, holder.onec_ref, token, json.dumps(made_body, ensure_ascii=False), now
    )
    try:
        with OnecClient.from_settings(settings, timeout=settings.onec_booking_timeout) as client:
            made = client.create(settings.onec_bookings, made_body, "create the booking")
    except OnecError as exc:
        register.onec.booking_failed(booking_id, str(exc), now)
        reason = exc.text(russian=True).rstrip(".")
        return Booked(
            {"state": "waiting", "error": str(exc)},
            f"Заявку в 1С создать пока не удалось ({reason}); карточка сохранена, заявка "
            "будет создана, как только 1С ответит.",
        )
    number, ref = str(made.get("Number") or "").strip(), str(made["Ref_Key"])
    register.onec.booking_created(booking_id, number, ref, now)
    row = note_number(register, saved.id, number)
    return Booked(
        {"state": "created", "number": number, "ref": ref},
        f"Заявка на ремонт № {number} создана в 1С.",
        row,
    )


def note_number(register: Register, call_id: int, number: str) -> Call | None:
    """Write the booking's number into the call's result; None when someone changed the card
    meanwhile (their text stays; the number is still in `status` and 1C)."""
    row = register.calls.get(call_id)
    result = with_number(row.result, number)
    if result == row.result:
        return None
    save = card.Save(
        call_id=call_id,
        expected_version=row.version,
        status=row.status,
        result=result,
        user=row.user,
        handled_at=row.handled_at or "",
        closed_by=row.closed_by or ClosedBy.STAFF,
    )
    try:
        return card.store(register.calls, [save])[0]
    except ConflictError:
        return None


def retry_waiting(
    register: Register, client: OnecClient, settings: Settings, now: str | None = None
) -> list[dict[str, Any]]:
    """Try the waiting bookings again, oldest first; stops at the first 1C that cannot be
    reached. Returns those created now ({id, call_id, number, ref})."""
    now = now or timefmt.to_stored(timefmt.now_utc())
    created = []
    for waiting in register.onec.bookings("waiting"):
        try:
            made = _find(client, settings, waiting.token)
        except OnecError as exc:
            if exc.retryable:
                register.onec.booking_failed(waiting.id, str(exc), now)
                break
            made = None  # the base cannot search comments: create (a lost answer may double)
        try:
            made = made or client.create(
                settings.onec_bookings, json.loads(waiting.body), "create the booking"
            )
        except OnecError as exc:
            register.onec.booking_failed(waiting.id, str(exc), now)
            if exc.retryable:
                break  # 1C is down or slow: the others wait for the next round
            continue
        number, ref = str(made.get("Number") or "").strip(), str(made["Ref_Key"])
        register.onec.booking_created(waiting.id, number, ref, now)
        if waiting.call_id is not None:
            note_number(register, waiting.call_id, number)
        created.append({"id": waiting.id, "call_id": waiting.call_id, "number": number})
    return created


def _find(client: OnecClient, settings: Settings, token: str) -> dict[str, Any] | None:
    """The booking 1C created on an earlier attempt whose answer was lost, by its token."""
    field = settings.onec_booking_comment
    quoted = token.replace("'", "''")
    records, _ = client.page(
        settings.onec_bookings,
        top=1,
        filter=f"substringof('{quoted}', {field})",
        select=["Ref_Key", "Number"],
        what="look for the booking",
    )
    return records[0] if records else None
