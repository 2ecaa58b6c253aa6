"""Which call sessions were really missed: a pure function of the legs seen and the clock.

Per-leg decisions are wrong for hunt groups (every member who did not pick up gets an unanswered
release even when a colleague answered), so legs are merged by extTrackingId and a session is
missed only when no leg of it was answered.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from beeline_missed import phones

PENDING = "pending"
MISSED = "missed"
ANSWERED = "answered"
IGNORED = "ignored"

HIDDEN = "номер скрыт"


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

    @property
    def is_incoming_external(self) -> bool:
        return self.personality == "Terminator" and self.call_type == "Network"


def merge(leg: LegState, update: LegState) -> LegState:
    """Merge two views of one leg, whatever order their events came in.

    Flags only ever turn on, and a known value is never replaced by an unknown one, so applying the
    same events in any order, any number of times, gives the same leg.
    """

    def earliest(a: int | None, b: int | None) -> int | None:
        known = [x for x in (a, b) if x is not None]
        return min(known) if known else None

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
        release_ms=max(leg.release_ms or 0, update.release_ms or 0) or None,
        answered=leg.answered or update.answered,
        released=leg.released or update.released,
        huntgroup=known(leg.huntgroup, update.huntgroup),
    )


@dataclass(frozen=True)
class Decision:
    state: str
    # For a missed session: what the register row says.
    phone: str | None = None
    phone_raw: str = ""
    start_ms: int | None = None
    line: str = ""
    answered_by: str | None = None


def abonent_name(target_id: str) -> str:
    """'9001112201@ip.beeline.ru' → '9001112201'."""
    return target_id.split("@", 1)[0]


def decide(
    legs: Iterable[LegState],
    *,
    seconds_since_last_event: float,
    settle: float,
    stale_after: float,
) -> Decision:
    """Decide one session.

    - answered by any leg → answered (final);
    - no incoming external leg → ignored (internal or outgoing), once all legs are released;
    - all legs released and `settle` seconds of quiet → missed;
    - legs still ringing but nothing heard for `stale_after` seconds (a lost release event) →
      missed too: a false alarm costs a call back, a lost call costs a client.
    """
    legs = list(legs)
    if not legs:
        return Decision(PENDING)
    for leg in legs:
        if leg.answered or leg.answer_ms is not None:
            return Decision(ANSWERED, answered_by=abonent_name(leg.target_id))
    all_released = all(leg.released for leg in legs)
    quiet_enough = (all_released and seconds_since_last_event >= settle) or (
        seconds_since_last_event >= stale_after
    )
    if not quiet_enough:
        return Decision(PENDING)
    incoming = [leg for leg in legs if leg.is_incoming_external]
    if not incoming:
        return Decision(IGNORED)
    raw = next((leg.remote_raw for leg in incoming if leg.remote_raw), None)
    starts = [leg.start_ms for leg in legs if leg.start_ms is not None]
    line = ", ".join(sorted({abonent_name(leg.target_id) for leg in incoming}))
    return Decision(
        MISSED,
        phone=phones.normalise(raw),
        phone_raw=raw or HIDDEN,
        start_ms=min(starts) if starts else None,
        line=line,
    )


@dataclass(frozen=True)
class AnsweredCall:
    """An answered external call, as auto-closing needs it (issue 8)."""

    ext_tracking_id: str
    phone: str
    direction: str  # 'incoming' (the client got through) | 'outgoing' (staff reached them)
    answered_by: str  # the abonent who talked, e.g. '9001112201'
    answer_ms: int | None


def answered_call(legs: Iterable[LegState]) -> AnsweredCall | None:
    """The answered external call a session was, or None (unanswered, internal, hidden number)."""
    legs = list(legs)
    answered = [leg for leg in legs if leg.answered or leg.answer_ms is not None]
    if not answered:
        return None
    leg = min(answered, key=lambda x: (x.answer_ms is None, x.answer_ms or 0, x.target_id))
    if leg.is_incoming_external:
        direction = "incoming"
    elif leg.personality == "Originator" and leg.call_type != "Group":
        direction = "outgoing"
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
    )
