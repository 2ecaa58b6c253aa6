"""Applies acknowledged events from the inbox to the call legs, and turns quiet sessions into
register rows. Idempotent: any order, any number of deliveries, and a replay give one result."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from beeline_missed import detection, phones, timefmt, xsi
from beeline_missed.detection import AnsweredCall, LegState
from beeline_missed.register import Register

log = logging.getLogger("beeline_missed.processing")

DAY_MS = 86_400_000
LEG_FIELDS = (
    "personality",
    "call_type",
    "remote_raw",
    "start_ms",
    "answer_ms",
    "release_ms",
    "huntgroup",
)


def now_ms() -> int:
    return int(time.time() * 1000)


def _leg_from_row(row: dict[str, Any]) -> LegState:
    return LegState(
        target_id=row["target_id"],
        call_id=row["call_id"],
        ext_tracking_id=row["ext_tracking_id"],
        answered=bool(row["answered"]),
        released=bool(row["released"]),
        **{name: row[name] for name in LEG_FIELDS},
    )


def _leg_to_row(leg: LegState) -> dict[str, Any]:
    row = {name: getattr(leg, name) for name in LEG_FIELDS}
    row.update(
        target_id=leg.target_id,
        call_id=leg.call_id,
        ext_tracking_id=leg.ext_tracking_id,
        answered=int(leg.answered),
        released=int(leg.released),
        # E.164, so that reconciliation and auto-closing can find a number's calls.
        remote_phone=phones.normalise(leg.remote_raw),
    )
    return row


def leg_update(event: xsi.Event, call: xsi.Call) -> LegState:
    """What one event says about one leg."""
    return LegState(
        target_id=event.target_id or "",
        call_id=call.call_id,
        ext_tracking_id=call.ext_tracking_id,
        personality=call.personality,
        call_type=call.call_type,
        remote_raw=call.remote_address or call.remote_user_dn,
        start_ms=call.start_ms,
        answer_ms=call.answer_ms,
        release_ms=call.release_ms,
        answered=event.event_type == "CallAnsweredEvent" or call.answer_ms is not None,
        released=event.event_type == "CallReleasedEvent" or call.state == "Released",
        huntgroup=call.huntgroup_user_id,
    )


def sane_called_at(start_ms: int | None, heard_ms: int) -> int:
    """The call's startTime, unless the PBX clock is absurd (then when we heard of it)."""
    if start_ms is None or not (heard_ms - 30 * DAY_MS <= start_ms <= heard_ms + DAY_MS):
        return heard_ms
    return start_ms


@dataclass
class Processor:
    register: Register
    settle: float
    stale_after: float = 3600.0
    # Called after commit with the new register row id (notifications, working hours...).
    on_missed: list[Callable[[int], None]] = field(default_factory=list)
    # Called after commit with the subscription id of a SubscriptionTerminatedEvent.
    on_terminated: list[Callable[[str], None]] = field(default_factory=list)
    # Called after commit for each answered external call (auto-closing).
    on_answered: list[Callable[[AnsweredCall], None]] = field(default_factory=list)
    # Is a call starting at this epoch ms outside working hours? (None: never.)
    outside_hours: Callable[[int], bool] | None = None
    # A row reconciliation registered for the same number this close in time is this call.
    merge_tolerance: float = 120.0
    # Answered calls learnt from late answers, for on_answered once their transaction commits.
    _late: list[AnsweredCall] = field(default_factory=list, repr=False)

    def process_inbox(self, limit: int = 500) -> int:
        """Apply up to `limit` new inbox rows, oldest first; returns how many were handled."""
        rows = self.register.new_inbox(limit)
        latest = 0
        for row in rows:
            self._apply(int(row["id"]), int(row["received_ms"]), bytes(row["body"]))
            latest = max(latest, int(row["received_ms"]))
        if latest:
            self.register.set_meta("last_event_at", timefmt.ms_to_stored(latest))
        return len(rows)

    def _apply(self, inbox_id: int, received_ms: int, body: bytes) -> None:
        reg = self.register
        try:
            event = xsi.parse_event(body)
        except xsi.BadDocument as exc:
            with reg.transaction() as conn:
                reg.mark_inbox(conn, inbox_id, "rejected", exc.reason)
            return
        terminated = None
        self._late = []
        with reg.transaction() as conn:
            keys = [(event.target_id or "", c.call_id, event.event_type) for c in event.calls]
            if not reg.claim_event_keys(conn, event.event_id, keys):
                reg.mark_inbox(conn, inbox_id, "duplicate")
                return
            if event.event_type == xsi.TERMINATED:
                terminated = event.subscription_id
                reg.mark_inbox(conn, inbox_id, "processed")
            elif event.is_call_event:
                for call in event.calls:
                    self._apply_call(conn, event, call, received_ms)
                reg.mark_inbox(conn, inbox_id, "processed")
            else:
                reg.mark_inbox(conn, inbox_id, "ignored", f"event type {event.event_type}")
        if terminated:
            for callback in self.on_terminated:
                callback(terminated)
        late, self._late = self._late, []
        self._run_answered(late)

    def _apply_call(self, conn: Any, event: xsi.Event, call: xsi.Call, received_ms: int) -> None:
        reg = self.register
        update = leg_update(event, call)
        stored = reg.get_leg(conn, update.target_id, update.call_id)
        leg = detection.merge(_leg_from_row(stored), update) if stored else update
        reg.put_leg(conn, _leg_to_row(leg))
        state = reg.touch_session(conn, leg.ext_tracking_id, received_ms)
        if state == detection.MISSED and update.answered:
            self._late_answer(conn, leg)

    def _late_answer(self, conn: Any, leg: LegState) -> None:
        """An answer heard after the session was declared missed: the call was not missed."""
        reg = self.register
        call = reg.call_by_session(conn, leg.ext_tracking_id)
        reg.decide_session(conn, leg.ext_tracking_id, detection.ANSWERED, None)
        if call and call["status"] == "missed":
            who = detection.abonent_name(leg.target_id)
            reg.close_call_automatically(
                conn,
                call["id"],
                result=f"Звонок был принят (ответил {who}); событие пришло с опозданием",
                user=who,
            )
            log.warning("call %s was answered after it was registered as missed", call["id"])
        if self.on_answered:
            # The caller got through after all: their other open calls are resolved too.
            legs = [_leg_from_row(row) for row in reg.session_legs(conn, leg.ext_tracking_id)]
            answered = detection.answered_call(legs)
            if answered is not None:
                self._late.append(answered)

    def _run_answered(self, calls: list[AnsweredCall]) -> None:
        for call in calls:
            for answered_hook in self.on_answered:
                try:
                    answered_hook(call)
                except Exception:  # auto-closing must never stop intake
                    log.exception("an answered-call hook failed for %s", call.ext_tracking_id)

    def decide_due(self, at_ms: int | None = None) -> list[int]:
        """Decide every pending session that has been quiet for the settle period.

        Returns the ids of the register rows written.
        """
        at_ms = now_ms() if at_ms is None else at_ms
        written = []
        answered: list[AnsweredCall] = []
        for tracking_id, last_ms in self.register.pending_sessions(at_ms - int(self.settle * 1000)):
            row, call = self._decide(tracking_id, (at_ms - last_ms) / 1000, last_ms)
            if row is not None:
                written.append(row)
            if call is not None:
                answered.append(call)
        self._run_answered(answered)
        for row in written:
            for callback in self.on_missed:
                try:
                    callback(row)
                except Exception:  # a notifier must never stop intake
                    log.exception("a missed-call hook failed for call %s", row)
        return written

    def _decide(
        self, tracking_id: str, since: float, last_ms: int
    ) -> tuple[int | None, AnsweredCall | None]:
        """Returns the new register row (missed) and the answered call (answered), if any."""
        reg = self.register
        with reg.transaction() as conn:
            session = reg.session(conn, tracking_id)
            if session is None or session["state"] != detection.PENDING:
                return None, None
            legs = [_leg_from_row(row) for row in reg.session_legs(conn, tracking_id)]
            decision = detection.decide(
                legs, seconds_since_last_event=since, settle=self.settle,
                stale_after=self.stale_after,
            )
            if decision.state == detection.PENDING:
                return None, None
            row = None
            linked = None
            if decision.state == detection.MISSED:
                called_ms = sane_called_at(decision.start_ms, last_ms)
                # Reconciliation may have registered this call first (events late): one row.
                reconciled = reg.call_near(
                    conn,
                    decision.phone,
                    called_ms,
                    int(self.merge_tolerance * 1000),
                    source="reconcile",
                )
                if reconciled is not None:
                    linked = int(reconciled["id"])
                else:
                    row = reg.insert_call(
                        conn,
                        session_key=tracking_id,
                        phone=decision.phone,
                        phone_raw=decision.phone_raw,
                        called_at=timefmt.ms_to_stored(called_ms),
                        line=decision.line,
                        outside_hours=bool(self.outside_hours and self.outside_hours(called_ms)),
                    )
            reg.decide_session(conn, tracking_id, decision.state, row or linked)
            answered = None
            if decision.state == detection.ANSWERED and self.on_answered:
                answered = detection.answered_call(legs)
            return row, answered

    def run_once(self, at_ms: int | None = None) -> list[int]:
        while self.process_inbox():
            pass
        return self.decide_due(at_ms)


def replay(register: Register, settle: float) -> dict[str, int]:
    """Rebuild every call decision from the inbox; staff's handling of existing rows is kept."""
    before = register.count_calls()
    requeued = register.reset_decisions()
    processor = Processor(register, settle=settle)
    while processor.process_inbox(1000):
        pass
    processor.decide_due()
    return {
        "events": requeued,
        "calls_before": before,
        "calls_after": register.count_calls(),
        "added": register.count_calls() - before,
    }
