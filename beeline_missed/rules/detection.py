"""Which call sessions were really missed: a pure function of the legs seen and the clock.

Per-leg decisions are wrong for hunt groups (every member who did not pick up gets an unanswered
release even when a colleague answered), so legs are merged by extTrackingId and a session is
missed only when no leg of it was answered **by a person**. The PBX's own services — a voice menu
playing its greeting, a call-centre queue playing music, a hunt group's pilot, voicemail — answer
calls too; their answers say nothing about whether a client spoke to anyone. `Targets` tells the
people from the services by the target ids events carry (docs: "Who is a person").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from beeline_missed import phones
from beeline_missed.errors import UserError
from beeline_missed.vocabulary import Direction, LostAt, SessionState

if TYPE_CHECKING:
    from beeline_missed.store.rows import Abonent

PENDING = SessionState.PENDING
MISSED = SessionState.MISSED
ANSWERED = SessionState.ANSWERED
IGNORED = SessionState.IGNORED

HIDDEN = "номер скрыт"

# What a target (the abonent an event is about) is.
PERSON = "person"
VOICE_MENU = "voice_menu"
QUEUE = "queue"
HUNT_GROUP = "hunt_group"
VOICEMAIL = "voicemail"
UNKNOWN = "unknown"  # not a service by its id, but not on the PBX's abonent list either
SERVICE_KINDS = (VOICE_MENU, QUEUE, HUNT_GROUP, VOICEMAIL)

# Where a missed call was lost: the furthest the caller got, as managers need to fix it.
LOST_FORWARDED = LostAt.FORWARDED
LOST_QUEUE = LostAt.QUEUE
LOST_RINGING = LostAt.RINGING
LOST_BUSY = LostAt.BUSY
LOST_VOICE_MENU = LostAt.VOICE_MENU

# releaseCause/internalReleaseCause values that mean the person could not take the call at all
# (compared lower-case, by substring: 'Busy', 'User Busy', 'Do Not Disturb', 'DND' …).
BUSY_CAUSES = ("busy", "do not disturb", "dnd")


@dataclass(frozen=True)
class LegState:
    """What is known of one leg (target abonent + callId), merged over its events."""

    target_id: str
    call_id: str
    ext_tracking_id: str
    personality: str | None = None
    call_type: str | None = None
    remote_raw: str | None = None
    start_ms: int | None = None
    answer_ms: int | None = None
    release_ms: int | None = None
    answered: bool = False
    released: bool = False
    huntgroup: str | None = None
    # releaseCause/internalReleaseCause: set only when the leg failed (e.g. 'Busy').
    release_cause: str | None = None
    # redirect/address: where the PBX forwarded this leg (e.g. 'tel:+79031234567').
    redirect_to: str | None = None
    # The leg was rung as a member of a queue (acdCallInfo) or a hunt group (redirections
    # through a '_hg_' id): whoever it is, it is a person's phone.
    member: bool = False

    @property
    def is_incoming_external(self) -> bool:
        return self.personality == "Terminator" and self.call_type == "Network"

    @property
    def busy(self) -> bool:
        cause = (self.release_cause or "").lower()
        return any(word in cause for word in BUSY_CAUSES)


def merge(leg: LegState, update: LegState) -> LegState:
    """Merge two views of one leg, whatever order their events came in.

    Flags only ever turn on, and a known value is never replaced by an unknown one, so applying the
    same events in any order, any number of times, gives the same leg.
    """

    def earliest(a: int | None, b: int | None) -> int | None:
        known = [x for x in (a, b) if x is not None]
        return min(known) if known else None

    def latest(a: int | None, b: int | None) -> int | None:
        known = [x for x in (a, b) if x is not None]
        return max(known) if known else None

    def known(a: str | None, b: str | None) -> str | None:
        # Two events never disagree in practice; min() keeps the merge order-free if they do.
        values = [x for x in (a, b) if x]
        return min(values) if values else None

    return replace(
        leg,
        personality=known(leg.personality, update.personality),
        call_type=known(leg.call_type, update.call_type),
        remote_raw=known(leg.remote_raw, update.remote_raw),
        start_ms=earliest(leg.start_ms, update.start_ms),
        answer_ms=earliest(leg.answer_ms, update.answer_ms),
        release_ms=latest(leg.release_ms, update.release_ms),
        answered=leg.answered or update.answered,
        released=leg.released or update.released,
        huntgroup=known(leg.huntgroup, update.huntgroup),
        release_cause=known(leg.release_cause, update.release_cause),
        redirect_to=known(leg.redirect_to, update.redirect_to),
        member=leg.member or update.member,
    )


def abonent_name(target_id: str) -> str:
    """'9001112201@ip.beeline.ru' → '9001112201'."""
    return target_id.partition("@")[0]


def _compile(patterns: Iterable[str], what: str) -> tuple[re.Pattern[str], ...]:
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern, re.IGNORECASE))
        except re.error as exc:
            raise UserError(
                f"The {what} pattern {pattern!r} is not a regular expression: {exc}."
            ) from None
    return tuple(compiled)


@dataclass(frozen=True)
class Targets:
    """Tells the PBX's people from its own services by the target id of their legs.

    - a target whose id matches a service pattern is that service (ids are known only from public
      integrations, hence settings: `_vxml` voice menus, `MPBX…` queues, `_hg_` hunt groups);
    - a target on the PBX's abonent list (by userId, its part before '@', phone or extension), or
      matching a person pattern (`SIP…@mpbx.sip.beeline.ru` devices), is a person;
    - with no abonent list at all (no API token) every other target is taken for a person;
    - otherwise it is UNKNOWN, and `unknown_is_person` says how to take it (a new employee
      missing from a stale list, or a service with an id we do not know).
    """

    services: tuple[tuple[str, re.Pattern[str]], ...] = ()
    people: tuple[re.Pattern[str], ...] = ()
    abonents: frozenset[str] = frozenset()
    # E.164 numbers of the abonents: a redirect to one of them is not "forwarded outside".
    abonent_phones: frozenset[str] = frozenset()
    unknown_is_person: bool = False

    @classmethod
    def build(
        cls,
        *,
        service_patterns: Mapping[str, Iterable[str]] | None = None,
        person_patterns: Iterable[str] = (),
        abonents: Iterable[Abonent] = (),
        unknown_is_person: bool = False,
    ) -> Targets:
        services = tuple(
            (kind, pattern)
            for kind, patterns in (
                DEFAULT_SERVICE_PATTERNS if service_patterns is None else service_patterns
            ).items()
            for pattern in _compile(patterns, kind.replace("_", " "))
        )
        keys: set[str] = set()
        numbers: set[str] = set()
        for abonent in abonents:
            for value in (abonent.user_id, abonent.phone, abonent.extension):
                if value:
                    keys.update(_keys(value))
            number = phones.normalise(abonent.phone)
            if number:
                numbers.add(number)
        return cls(
            services=services,
            people=_compile(person_patterns, "person"),
            abonents=frozenset(keys),
            abonent_phones=frozenset(numbers),
            unknown_is_person=unknown_is_person,
        )

    def kind(self, target_id: str) -> str:
        for kind, pattern in self.services:
            if pattern.search(target_id):
                return kind
        if not self.abonents:
            return PERSON
        if _keys(target_id) & self.abonents or any(p.search(target_id) for p in self.people):
            return PERSON
        return UNKNOWN

    def is_person(self, leg: LegState) -> bool:
        if leg.member:
            return True
        kind = self.kind(leg.target_id)
        return kind == PERSON or (kind == UNKNOWN and self.unknown_is_person)

    def is_outside(self, number: str | None) -> bool:
        """Is a redirect target a number outside the PBX (not one of its abonents)?"""
        return bool(number) and number not in self.abonent_phones


def _keys(identifier: str) -> set[str]:
    """An id as compared: lower-case, whole and before its '@' ('201@ip…' is also '201')."""
    text = identifier.strip().lower()
    return {text, text.partition("@")[0]}


DEFAULT_SERVICE_PATTERNS: dict[str, tuple[str, ...]] = {
    VOICE_MENU: ("_vxml",),
    QUEUE: ("^MPBX",),
    HUNT_GROUP: ("_hg_",),
    VOICEMAIL: ("voicemail",),
}
DEFAULT_PERSON_PATTERNS = (r"^SIP[^@]*@mpbx\.sip\.beeline\.ru$",)
# Without settings: the default service patterns, no abonent list.
PLAIN = Targets.build()


@dataclass(frozen=True)
class Decision:
    state: str
    # For a missed session: what the register row says.
    phone: str | None = None
    phone_raw: str = ""
    start_ms: int | None = None
    line: str = ""
    answered_by: str | None = None
    lost_at: str | None = None
    forwarded_to: str | None = None


def person_answer(legs: Iterable[LegState], targets: Targets) -> LegState | None:
    """The earliest leg a person answered, if any (order-free)."""
    answered = [
        leg
        for leg in legs
        if (leg.answered or leg.answer_ms is not None) and targets.is_person(leg)
    ]
    if not answered:
        return None
    return min(answered, key=lambda x: (x.answer_ms is None, x.answer_ms or 0, x.target_id))


def decide(
    legs: Iterable[LegState],
    *,
    seconds_since_last_event: float,
    settle: float,
    stale_after: float,
    targets: Targets = PLAIN,
    answered_elsewhere: str | None = None,
) -> Decision:
    """Decide one session.

    - answered by a person on any leg → answered (final); a service's answer does not count;
    - `answered_elsewhere` (a person took this caller's call in another session: a pickup) →
      answered;
    - any leg still up → pending, however long the silence: a caller waiting in a queue (music,
      agents rung one after another) is not missed yet, until `stale_after` says a release was
      lost;
    - no incoming external leg → ignored (internal or outgoing), once all legs are released;
    - all legs released and `settle` seconds of quiet → missed, with where it was lost;
    - legs still ringing but nothing heard for `stale_after` seconds (a lost release event) →
      missed too: a false alarm costs a call back, a lost call costs a client.
    """
    legs = list(legs)
    if not legs:
        return Decision(PENDING)
    answer = person_answer(legs, targets)
    if answer is not None:
        return Decision(ANSWERED, answered_by=abonent_name(answer.target_id))
    if answered_elsewhere:
        return Decision(ANSWERED, answered_by=answered_elsewhere)
    stale = seconds_since_last_event >= stale_after
    all_released = all(leg.released for leg in legs)
    if not (stale or (all_released and seconds_since_last_event >= settle)):
        return Decision(PENDING)
    incoming = [leg for leg in legs if leg.is_incoming_external]
    if not incoming:
        return Decision(IGNORED)
    # Legs of one session carry the same caller; min() keeps the choice order-free if not.
    raw = min((leg.remote_raw for leg in incoming if leg.remote_raw), default=None)
    starts = [leg.start_ms for leg in legs if leg.start_ms is not None]
    people = [leg for leg in incoming if targets.is_person(leg)]
    # The line is who should have answered: the people rung; else the service that took it.
    shown = people or incoming
    line = ", ".join(sorted({abonent_name(leg.target_id) for leg in shown}))
    lost_at, forwarded_to = lost_where(legs, targets)
    return Decision(
        MISSED,
        phone=phones.normalise(raw),
        phone_raw=raw or HIDDEN,
        start_ms=min(starts) if starts else None,
        line=line,
        lost_at=lost_at,
        forwarded_to=forwarded_to,
    )


def lost_where(legs: Iterable[LegState], targets: Targets) -> tuple[str, str | None]:
    """Where an unanswered session was lost, and the outside number it was forwarded to.

    The furthest stage the caller reached wins: forwarded outside the PBX; waited in a queue;
    a person's phone rang; every person reached was busy; only the voice menu; else ringing.
    """
    legs = list(legs)
    forwards = sorted(
        number
        for number in (phones.normalise(leg.redirect_to) for leg in legs)
        if number and targets.is_outside(number)
    )
    if forwards:
        return LOST_FORWARDED, forwards[0]
    kinds = {targets.kind(leg.target_id) for leg in legs if not leg.member}
    if QUEUE in kinds:
        return LOST_QUEUE, None
    people = [leg for leg in legs if targets.is_person(leg)]
    if any(not leg.busy for leg in people):
        return LOST_RINGING, None
    if people:
        return LOST_BUSY, None
    if VOICE_MENU in kinds:
        return LOST_VOICE_MENU, None
    return LOST_RINGING, None


# Staff calling out: dialled from their phone, or click-to-call (BroadWorks names that leg
# Click-to-Dial; the PBX rings the abonent first, then the number).
OUTGOING_PERSONALITIES = ("Originator", "Click-to-Dial")


@dataclass(frozen=True)
class AnsweredCall:
    """An answered external call, as auto-closing needs it."""

    ext_tracking_id: str
    phone: str
    direction: str  # 'incoming' (the client got through) | 'outgoing' (staff reached them)
    answered_by: str  # the abonent who talked, e.g. '9001112201'
    answer_ms: int | None
    # When the person's leg ended; None while it is up, or when its release was never heard.
    release_ms: int | None = None
    # The person's leg is released: the talk time is as known as it will ever be.
    ended: bool = True

    @property
    def talk_seconds(self) -> float | None:
        """From answer to release: how long the person and the client spoke (None: unknown)."""
        if self.answer_ms is None or self.release_ms is None:
            return None
        return max(0, self.release_ms - self.answer_ms) / 1000


def answered_call(legs: Iterable[LegState], targets: Targets = PLAIN) -> AnsweredCall | None:
    """The external call a person answered in this session, or None (unanswered, answered only by
    a service, internal, hidden number)."""
    legs = list(legs)
    leg = person_answer(legs, targets)
    if leg is None:
        return None
    if leg.is_incoming_external:
        direction = Direction.INCOMING
    elif leg.personality in OUTGOING_PERSONALITIES and leg.call_type != "Group":
        direction = Direction.OUTGOING
    else:
        return None
    raw = leg.remote_raw or next((x.remote_raw for x in legs if x.remote_raw), None)
    phone = phones.normalise(raw)
    if phone is None:
        return None
    return AnsweredCall(
        ext_tracking_id=leg.ext_tracking_id,
        phone=phone,
        direction=direction,
        answered_by=abonent_name(leg.target_id),
        answer_ms=leg.answer_ms,
        release_ms=leg.release_ms if leg.released else None,
        ended=leg.released,
    )
