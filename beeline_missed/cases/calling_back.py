"""Calling a client back, together: claims and click-to-call between the register, the PBX and
the rules (claims.py, callback.py). The CLI and the panel both call these; they hold no rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from beeline_missed import config, timefmt
from beeline_missed.config import Settings
from beeline_missed.errors import UserError
from beeline_missed.rules import callback, claims
from beeline_missed.store import Call, Register, StoredClaim
from beeline_missed.vocabulary import CallStatus

FORCE_HINT = "Чтобы взять звонок себе, добавьте --force."


def names(settings: Settings) -> claims.Names:
    """A login as people read it: its [staff] table's name, else the login."""

    def name(login: str) -> str:
        return config.display_name(settings, login) or login

    return name


def _open_row(register: Register, call_id: int) -> Call:
    row = register.calls.get(call_id)
    if row.status != CallStatus.MISSED:
        raise UserError(f"Звонок {call_id} уже обработан: брать его в работу не нужно.")
    return row


def claim(
    register: Register,
    settings: Settings,
    call_id: int,
    user: str,
    now: datetime,
    *,
    force: bool = False,
    hint: str = FORCE_HINT,
) -> str:
    """Take the call's case for `user`; the sentence to show. Someone else's live claim is a
    UserError naming them and since when (with `hint`), unless `force`."""
    row = _open_row(register, call_id)
    key = claims.case_key(row.phone, row.id)
    zone = timefmt.local_zone(settings.timezone)
    outcome: list[claims.Take | claims.Refuse] = []

    def decide(current: StoredClaim | None) -> tuple[str, str] | None:
        stored = claims.Claim.from_row(current) if current else None
        chosen = claims.decide(
            stored,
            user,
            now,
            settings.claim_ttl,
            force=force,
            names=names(settings),
            zone=zone,
        )
        outcome.append(chosen)
        if isinstance(chosen, claims.Refuse):
            return None
        return chosen.claim.holder, timefmt.to_stored(chosen.claim.since)

    register.claims.claim(key, decide)
    chosen = outcome[-1]
    if isinstance(chosen, claims.Refuse):
        raise UserError(f"{chosen.message} {hint}".strip())
    return claims.taken_message(chosen, names(settings))


def with_claims(
    register: Register, settings: Settings, rows: Iterable[Call], now: datetime
) -> list[Call]:
    """The rows with `claimed_by`, `claimed_at` and `claim_label` of a live claim on their
    case (None otherwise), and `user_name`: who called back as people read it."""
    stored = register.claims.rows()
    name = names(settings)
    shown = []
    for row in rows:
        found = None
        if row.status == CallStatus.MISSED:
            found = stored.get(claims.case_key(row.phone, row.id))
        live = claims.Claim.from_row(found) if found else None
        if not claims.is_live(live, now, settings.claim_ttl):
            live = None
        shown.append(
            row.replaced(
                claimed_by=live.holder if live else None,
                claimed_at=timefmt.to_stored(live.since) if live else None,
                claim_label=claims.label(live, now, name) if live else None,
                claimed_by_name=name(live.holder) if live else None,
                user_name=name(row.user) if row.user else None,
            )
        )
    return shown


def card_row(register: Register, settings: Settings, row: Call, now: datetime) -> Call:
    """A card's row as people read it: the claim (with_claims), and `line_label`, the abonents
    that rang with the names staff know them by («Смирнова (9001112201)»; the [staff] tables,
    staff_names, else the PBX's list)."""
    from beeline_missed.rules.autoclose import StaffNames

    shown = with_claims(register, settings, [row], now)[0]
    abonents = [a.strip() for a in row.line.split(",") if a.strip()]
    if abonents:
        staff_names = StaffNames.load(register, settings.staff_names)
        named = []
        for abonent in abonents:
            name = staff_names.name(abonent)
            named.append(
                abonent if name in (abonent, abonent.partition("@")[0]) else f"{name} ({abonent})"
            )
        shown = replace(shown, line_label=", ".join(named))
    return shown


def call_client(
    register: Register,
    settings: Settings,
    call_id: int,
    user: str,
    now: datetime,
    pbx: Callable[[], Any],
    *,
    force: bool = False,
    hint: str = FORCE_HINT,
) -> list[str]:
    """Take the case for `user` (claim's rules), then ask the PBX to ring their own phone and
    then the call's client; the sentences to show.

    Whatever makes the call impossible (a hidden number, no abonent, no token) is told before
    the case is taken. `pbx` makes the PbxClient."""
    from beeline_missed.pbx.api import PbxError

    row = _open_row(register, call_id)
    number = callback.dial_number(row.phone, settings.call_number_format)
    abonent = callback.staff_abonent(config.staff_member(settings, user), user)
    if not settings.api_token:
        raise UserError(
            "Не задан API-токен АТС (BEELINE_API_TOKEN или api_token в config.toml): "
            "позвонить из карточки нельзя."
        )
    taken = claim(register, settings, call_id, user, now, force=force, hint=hint)
    try:
        with pbx() as client:
            client.call(abonent, number)
    except PbxError as exc:
        raise UserError(refused_text(exc, abonent)) from None
    return [taken, callback.RINGING]


def refused_text(exc: Any, abonent: str) -> str:
    """A PBX error as one Russian sentence for staff (the PBX's own code kept for admins)."""
    code = f" ({exc.error_code})" if getattr(exc, "error_code", None) else ""
    status = getattr(exc, "status", None)
    if status in (401, 403):
        return "АТС не приняла API-токен: звонок не начат, сообщите администратору."
    if status is None:
        return f"АТС недоступна, звонок не начат: {exc}"
    return f"АТС отказалась звонить с абонента {abonent}: HTTP {status}{code}."
