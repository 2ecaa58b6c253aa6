"""Close what is already resolved: a missed caller got through later, or staff reached them.

When an external call with a number is answered — the client calling in again and anyone picking
up, or staff calling the number and the client answering — that number's open missed calls from
before it are closed: «Перезвонили», a result saying what happened and when, the abonent who talked
as the user (by a staff name when known), closed_by 'auto'. The status and result rules are the
call card's (card.auto_close); the write is the card's optimistic save, so a card a person saved
meanwhile is left as they saved it.

Only a conversation closes a case: a callback that voicemail or an instant hang-up "answered"
lasted less than `auto_close_min_talk` seconds (answer to release). Such a call leaves the case
open and is recorded on it as an attempt («Перезванивали 14:05, 4 с — не дозвонились»), which
the card shows and reports count. The processor hands a call over only once its person's leg is
released; a release never heard (release_wait) hands it over with the talk time unknown, and an
unknown talk time is recorded as an attempt too (a wrong close would lose a client).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import tzinfo
from typing import TYPE_CHECKING

from beeline_missed import phones, timefmt
from beeline_missed.errors import ConflictError
from beeline_missed.rules import card
from beeline_missed.rules.detection import PLAIN, AnsweredCall, LegState, Targets, abonent_name
from beeline_missed.store import Abonent, Call, Register
from beeline_missed.vocabulary import Direction

if TYPE_CHECKING:
    from beeline_missed.config import Settings

log = logging.getLogger("beeline_missed.autoclose")

INCOMING = Direction.INCOMING
OUTGOING = Direction.OUTGOING
# Seconds of talk that make an answered call a conversation (the auto_close_min_talk default).
DEFAULT_MIN_TALK = 10.0


@dataclass
class StaffNames:
    """Abonent → the name staff know: the configured mapping first, then the PBX's abonent list
    (last name, else first name), else the abonent's id as the PBX gives it."""

    mapping: Mapping[str, str]
    abonents: list[Abonent]

    @classmethod
    def load(cls, register: Register, mapping: Mapping[str, str] | None = None) -> StaffNames:
        return cls(dict(mapping or {}), register.abonents.rows())

    def _abonent(self, who: str) -> Abonent | None:
        for abonent in self.abonents:
            user_id = abonent.user_id
            if who in (user_id, abonent_name(user_id), abonent.phone, abonent.extension):
                return abonent
        return None

    def name(self, who: str) -> str:
        who = abonent_name(who)
        abonent = self._abonent(who)
        keys = [who]
        if abonent:
            keys += [k for k in (abonent.user_id, abonent.phone, abonent.extension) if k]
        for key in keys:
            if self.mapping.get(key):
                return self.mapping[key]
        if abonent:
            return abonent.last_name or abonent.first_name or who
        return who


def when_text(epoch_ms: int, zone: tzinfo) -> str:
    """'27.11 14:05' as the result says it."""
    return timefmt.from_ms(epoch_ms).astimezone(zone).strftime("%d.%m %H:%M")


def reason(call: AnsweredCall, who: str, zone: tzinfo, now_ms: int) -> str:
    when = when_text(call.answer_ms or now_ms, zone)
    if call.direction == INCOMING:
        return f"Клиент дозвонился сам {when}, ответил {who}"
    return f"Перезвонили {when}"


def is_conversation(call: AnsweredCall, min_talk: float) -> bool:
    """Did the answered call last long enough to close a case? Unknown talk time: no, unless
    the threshold is off (0)."""
    if min_talk <= 0:
        return True
    talk = call.talk_seconds
    return talk is not None and talk >= min_talk


def record_attempt(
    register: Register, call: AnsweredCall, rows: list[Call], who: str, now_ms: int
) -> list[int]:
    """Record the short call on each open call of the number; returns the ids newly recorded."""
    talk = call.talk_seconds
    recorded = [
        row.id
        for row in rows
        if register.attempts.add(
            row.id,
            session_key=call.ext_tracking_id,
            direction=call.direction,
            attempted_at=timefmt.ms_to_stored(call.answer_ms or now_ms),
            talk_seconds=None if talk is None else int(talk),
            who=who,
        )
    ]
    if recorded:
        shown = "unknown" if talk is None else f"{talk:.0f} s"
        log.info(
            "not auto-closed %s: %s call answered by %s lasted %s; recorded as an attempt",
            ", ".join(map(str, recorded)),
            call.direction,
            who,
            shown,
        )
    return recorded


def close_resolved(
    register: Register,
    call: AnsweredCall,
    *,
    names: StaffNames,
    zone: tzinfo,
    now_ms: int,
    min_talk: float = 0.0,
) -> list[int]:
    """Close the number's open missed calls that came in before the answered call — if it was
    a conversation (`min_talk` seconds or more); else record it on them as an attempt.

    Returns the ids closed. A card changed since it was read is skipped (a person won)."""
    until = timefmt.ms_to_stored(call.answer_ms or now_ms)
    rows = register.calls.open_of(call.phone, until)
    if not rows:
        return []
    who = names.name(call.answered_by)
    if not is_conversation(call, min_talk):
        record_attempt(register, call, rows, who, now_ms)
        return []
    text = reason(call, who, zone, now_ms)
    now = timefmt.ms_to_stored(now_ms)
    closed = []
    for row in rows:
        current = card.Card.from_row(row)
        # Notes a person left on a still-open card are kept above the automatic line.
        full = f"{current.result.rstrip()}\n{text}" if current.result.strip() else text
        decision = card.auto_close(current, full, now)
        if not isinstance(decision, card.Save):
            continue
        save = replace(decision, user=who)
        try:
            register.calls.save(
                save.call_id,
                save.expected_version,
                status=save.status,
                result=save.result,
                user=save.user,
                handled_at=save.handled_at,
                closed_by=save.closed_by,
            )
        except ConflictError:
            log.info("call %s was saved by someone meanwhile; not auto-closed", save.call_id)
            continue
        closed.append(save.call_id)
    if closed:
        log.info(
            "auto-closed %s: %s (%s call answered by %s)",
            ", ".join(map(str, closed)),
            text,
            call.direction,
            who,
        )
    return closed


def answered_from_leg(leg: LegState) -> AnsweredCall | None:
    """The answered call a stored external leg (`register.sessions.answered_after`) was: the
    client calling in (the leg terminates at us) or a call out to them."""
    phone = phones.normalise(leg.remote_raw)
    if phone is None:
        return None
    return AnsweredCall(
        ext_tracking_id=leg.ext_tracking_id,
        phone=phone,
        direction=INCOMING if leg.personality == "Terminator" else OUTGOING,
        answered_by=abonent_name(leg.target_id),
        answer_ms=leg.answer_ms,
        release_ms=leg.release_ms if leg.released else None,
        ended=leg.released,
    )


def close_if_reached(
    register: Register,
    call_row: Call,
    *,
    names: StaffNames,
    zone: tzinfo,
    now_ms: int,
    targets: Targets = PLAIN,
    min_talk: float = 0.0,
) -> list[int]:
    """For a call registered late (by reconciliation, or after its settle period): if a person
    took the number's call after it already, close it now; the answered call came before the
    row existed. A voice menu's or queue's answer, or one of the call's own legs, does not.
    Calls too short to be a conversation are recorded as attempts, in order, until one closes;
    a call still going on is left to the processor, which hands it over when it ends."""
    phone = call_row.phone
    if not phone:
        return []
    since = timefmt.stored_to_ms(call_row.called_at)
    legs = register.sessions.answered_after(phone, since, other_than=call_row.session_key)
    for leg in legs:
        if not targets.is_person(leg):
            continue
        answered = answered_from_leg(leg)
        if answered is None or not answered.ended:
            continue
        closed = close_resolved(
            register, answered, names=names, zone=zone, now_ms=now_ms, min_talk=min_talk
        )
        if closed:
            return closed
    return []


class AutoCloser:
    """The daemon's hook: one per thread (it holds that thread's register)."""

    def __init__(self, register: Register, settings: Settings) -> None:
        from beeline_missed.daemon.processing import targets_from_settings

        self.register = register
        self.mapping = dict(settings.staff_names)
        self.zone = timefmt.local_zone(settings.timezone)
        self.min_talk = float(settings.auto_close_min_talk)
        # Who is a person: the configured patterns over the cached abonent list.
        self.targets_from = targets_from_settings(settings)

    def targets(self) -> Targets:
        return self.targets_from(self.register.abonents.rows())

    def names(self) -> StaffNames:
        # Re-read each time: the keeper refreshes the abonents cache in another thread.
        return StaffNames.load(self.register, self.mapping)

    def __call__(self, call: AnsweredCall) -> list[int]:
        return close_resolved(
            self.register,
            call,
            names=self.names(),
            zone=self.zone,
            now_ms=timefmt.now_ms(),
            min_talk=self.min_talk,
        )

    def check_row(self, call_row: Call) -> list[int]:
        return close_if_reached(
            self.register,
            call_row,
            names=self.names(),
            zone=self.zone,
            now_ms=timefmt.now_ms(),
            targets=self.targets(),
            min_talk=self.min_talk,
        )


def settle_new_rows(
    register: Register,
    settings: Settings,
    call_ids: Iterable[int],
    closer: AutoCloser | None = None,
) -> tuple[list[int], list[int]]:
    """What follows new register rows, the processor's or reconciliation's: each is closed at
    once when its caller was answered after it came in (a late row). Returns the calls closed
    and the new rows left open (those to notify about). The one sequence the daemon and the
    `reconcile` command both run."""
    call_ids = list(call_ids)
    if not settings.auto_close:
        return [], call_ids
    closer = closer or AutoCloser(register, settings)
    closed: list[int] = []
    left_open: list[int] = []
    for call_id in call_ids:
        done = closer.check_row(register.calls.get(call_id))
        if done:
            closed += done
        else:
            left_open.append(call_id)
    return closed, left_open
