"""Applies acknowledged events from the inbox to the call legs, and turns quiet sessions into
register rows. Idempotent: any order, any number of deliveries, and a replay give one result."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING

from beeline_missed import timefmt
from beeline_missed.errors import UserError
from beeline_missed.pbx import xsi
from beeline_missed.rules import detection
from beeline_missed.rules.detection import AnsweredCall, LegState
from beeline_missed.store import Abonent, Register
from beeline_missed.store.intake import PROCESSING_FAILED
from beeline_missed.timefmt import now_ms
from beeline_missed.vocabulary import CallStatus

if TYPE_CHECKING:
    from beeline_missed.config import Settings

log = logging.getLogger("beeline_missed.processing")

DAY_MS = 86_400_000
# Dedup keys are kept this long: repeats of an event come within minutes. Past it a repeat is
# merged again, which changes nothing.
DEDUPE_WINDOW_MS = 7 * DAY_MS
# How long a cached view of the PBX's people is used before the register is read again.
TARGETS_TTL = 30.0
# How many times one inbox event may fail to be applied before it is set aside.
POISON_TRIES = 3


def leg_update(
    event: xsi.Event, call: xsi.Call, targets: detection.Targets = detection.PLAIN
) -> LegState:
    """What one event says about one leg."""
    via_service = any(
        targets.kind(user_id) in detection.SERVICE_KINDS for user_id in call.redirected_via
    )
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
        release_cause=call.release_cause,
        redirect_to=call.redirect_address,
        member=call.acd_user_id is not None or via_service,
    )


def event_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def update_digest(event_type: str, leg: LegState) -> str:
    """What an event says about one leg, as a key: two deliveries with the same key (overlapping
    subscriptions) say the same thing, so the second may be dropped. Everything that tells calls
    apart — the session included — is in it."""
    return hashlib.sha256(repr((event_type, leg)).encode("utf-8")).hexdigest()


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
    # Who is a person and what is a service: read from the register's cache of the PBX's
    # abonents (refreshed by the daemon) with the configured patterns; None: the defaults.
    targets_from: Callable[[list[Abonent]], detection.Targets] | None = None
    # Called when an event names a target that is neither a known person nor a service (the
    # daemon then refreshes the abonent list before the session is decided).
    on_unknown_target: list[Callable[[str], None]] = field(default_factory=list)
    # An answered call is handed to on_answered once its person's leg is released (auto-close
    # judges the talk time); a release not heard within this many seconds hands it over with
    # the talk time unknown.
    release_wait: float = 3600.0
    # Answered calls learnt from late answers, for on_answered once their transaction commits.
    _late: list[AnsweredCall] = field(default_factory=list, repr=False)
    _targets: detection.Targets | None = field(default=None, repr=False)
    _targets_at: float = field(default=0.0, repr=False)
    _pruned_at: float = field(default=0.0, repr=False)
    # Failures of one inbox row so far (see process_inbox), by inbox id.
    _failures: dict[int, int] = field(default_factory=dict, repr=False)

    def targets(self) -> detection.Targets:
        """The current view of the PBX's people and services (cached for TARGETS_TTL)."""
        if self.targets_from is None:
            return detection.PLAIN
        if self._targets is None or time.monotonic() - self._targets_at > TARGETS_TTL:
            self._targets = self.targets_from(self.register.abonents.rows())
            self._targets_at = time.monotonic()
        return self._targets

    def forget_targets(self) -> None:
        """The abonent list changed: read it again before the next decision."""
        self._targets = None

    def process_inbox(self, limit: int = 500) -> int:
        """Apply up to `limit` new inbox rows, oldest first; returns how many were handled."""
        rows = self.register.inbox.new(limit)
        latest = 0
        for row in rows:
            self._apply_or_set_aside(int(row["id"]), int(row["received_ms"]), bytes(row["body"]))
            latest = max(latest, int(row["received_ms"]))
        if latest:
            self.register.meta.set("last_event_at", timefmt.ms_to_stored(latest))
        return len(rows)

    def _apply_or_set_aside(self, inbox_id: int, received_ms: int, body: bytes) -> None:
        """Apply one row. An event that fails for a reason of its own (a case the code gets
        wrong) would otherwise be retried for ever, with every later event waiting behind it
        and the hook still answering 200: after POISON_TRIES failures it is set aside as
        rejected, with the error, and the events after it go on. The register's own errors
        (disk full, locked, the server away) fail the whole batch, to be retried as it is."""
        try:
            self._apply(inbox_id, received_ms, body)
        except (sqlite3.Error, OSError):
            raise
        except Exception as exc:
            tries = self._failures.get(inbox_id, 0) + 1
            if tries < POISON_TRIES:
                self._failures[inbox_id] = tries
                raise
            self._failures.pop(inbox_id, None)
            reason = f"{PROCESSING_FAILED}: {type(exc).__name__}: {exc}"
            log.exception(
                "inbox event %s failed %s times; set aside as rejected (`inbox --show %s`), "
                "the events after it go on",
                inbox_id,
                tries,
                inbox_id,
            )
            with self.register.transaction():
                self.register.inbox.mark(inbox_id, "rejected", reason[:500])
        else:
            self._failures.pop(inbox_id, None)

    def _apply(self, inbox_id: int, received_ms: int, body: bytes) -> None:
        reg = self.register
        try:
            event = xsi.parse_event(body)
        except xsi.BadDocument as exc:
            with reg.transaction():
                reg.inbox.mark(inbox_id, "rejected", exc.reason)
            return
        terminated = None
        self._late = []
        targets = self.targets()
        updates = [(call, leg_update(event, call, targets)) for call in event.calls]
        unknown: set[str] = set()
        with reg.transaction():
            verdict = reg.sessions.claim_event(
                event.event_id,
                event_digest(body),
                [update_digest(event.event_type, update) for _, update in updates],
                received_ms,
            )
            if verdict == "duplicate":
                reg.inbox.mark(inbox_id, "duplicate")
                return
            if verdict == "conflict":
                log.warning(
                    "event %s repeats an earlier eventID with other content; processed",
                    event.event_id[:80],
                )
            if event.event_type == xsi.TERMINATED:
                terminated = event.subscription_id
                reg.inbox.mark(inbox_id, "processed")
            elif event.is_call_event:
                for _, update in updates:
                    self._apply_call(update, received_ms, targets)
                    if targets.kind(update.target_id) == detection.UNKNOWN:
                        unknown.add(update.target_id)
                reg.inbox.mark(inbox_id, "processed")
            else:
                reg.inbox.mark(inbox_id, "ignored", f"event type {event.event_type}")
        for target in sorted(unknown):
            for callback in self.on_unknown_target:
                callback(target)
        if terminated:
            for callback in self.on_terminated:
                callback(terminated)
        late, self._late = self._late, []
        self._run_answered(late)

    def _apply_call(self, update: LegState, received_ms: int, targets: detection.Targets) -> None:
        reg = self.register
        stored = reg.sessions.leg(update.target_id, update.call_id, update.ext_tracking_id)
        leg = detection.merge(stored, update) if stored else update
        reg.sessions.put_leg(leg)
        state = reg.sessions.touch(leg.ext_tracking_id, received_ms)
        if state == detection.MISSED and update.answered and targets.is_person(leg):
            self._late_answer(leg, targets, received_ms)
        elif state == detection.ANSWERED and leg.released and self.on_answered:
            self._release_heard(leg.ext_tracking_id, targets)

    def _answered_or_wait(
        self,
        tracking_id: str,
        legs: list[LegState],
        targets: detection.Targets,
        at_ms: int,
    ) -> AnsweredCall | None:
        """The answered call for on_answered once its person hung up; until then the session
        waits for the release (the talk time decides whether auto-close closes)."""
        answered = detection.answered_call(legs, targets)
        if answered is None:
            return None
        if answered.ended:
            self.register.attempts.stop_awaiting_release(tracking_id)
            return answered
        self.register.attempts.await_release(tracking_id, at_ms)
        return None

    def _release_heard(self, tracking_id: str, targets: detection.Targets) -> None:
        """A leg of an answered session ended: if auto-close waited for it, it may judge now."""
        if not self.register.attempts.awaits_release(tracking_id):
            return
        legs = self.register.sessions.legs(tracking_id)
        answered = detection.answered_call(legs, targets)
        if answered is not None and answered.ended:
            self.register.attempts.stop_awaiting_release(tracking_id)
            self._late.append(answered)

    def _late_answer(self, leg: LegState, targets: detection.Targets, at_ms: int) -> None:
        """An answer heard after the session was declared missed: the call was not missed."""
        reg = self.register
        call = reg.calls.by_session(leg.ext_tracking_id)
        reg.sessions.decide(leg.ext_tracking_id, detection.ANSWERED, None)
        if call and call.status == CallStatus.MISSED:
            who = detection.abonent_name(leg.target_id)
            reg.calls.close_automatically(
                call.id,
                result=f"Звонок был принят (ответил {who}); событие пришло с опозданием",
                user=who,
            )
            log.warning("call %s was answered after it was registered as missed", call.id)
        if self.on_answered:
            # The caller got through after all: their other open calls are resolved too.
            legs = reg.sessions.legs(leg.ext_tracking_id)
            answered = self._answered_or_wait(leg.ext_tracking_id, legs, targets, at_ms)
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
        self.forget_old_keys(at_ms)
        written = []
        answered: list[AnsweredCall] = []
        for tracking_id, last_ms in self.register.sessions.pending(at_ms - int(self.settle * 1000)):
            row, call = self._decide(tracking_id, (at_ms - last_ms) / 1000, last_ms, at_ms)
            if row is not None:
                written.append(row)
            if call is not None:
                answered.append(call)
        if self.on_answered:
            answered += self._release_not_heard(at_ms)
        self._run_answered(answered)
        for row in written:
            for callback in self.on_missed:
                try:
                    callback(row)
                except Exception:  # a notifier must never stop intake
                    log.exception("a missed-call hook failed for call %s", row)
        return written

    def _release_not_heard(self, at_ms: int) -> list[AnsweredCall]:
        """Answered calls whose release did not come within release_wait: handed over with the
        talk time unknown (auto-close then records an attempt rather than guess)."""
        calls = []
        targets = self.targets()
        overdue = self.register.attempts.awaiting_release_since(
            at_ms - int(self.release_wait * 1000)
        )
        for tracking_id in overdue:
            with self.register.transaction():
                legs = self.register.sessions.legs(tracking_id)
                self.register.attempts.stop_awaiting_release(tracking_id)
            answered = detection.answered_call(legs, targets)
            if answered is not None:
                log.warning(
                    "answered session %s: no release heard in %.0f s; talk time unknown",
                    tracking_id[:80],
                    self.release_wait,
                )
                calls.append(replace(answered, release_ms=None, ended=False))
        return calls

    def _decide(
        self, tracking_id: str, since: float, last_ms: int, at_ms: int
    ) -> tuple[int | None, AnsweredCall | None]:
        """Returns the new register row (missed) and the answered call (answered), if any."""
        reg = self.register
        targets = self.targets()
        with reg.transaction():
            session = reg.sessions.get(tracking_id)
            if session is None or session.state != detection.PENDING:
                return None, None
            legs = reg.sessions.legs(tracking_id)
            decide = partial(
                detection.decide,
                legs,
                seconds_since_last_event=since,
                settle=self.settle,
                stale_after=self.stale_after,
                targets=targets,
            )
            decision = decide()
            if decision.state == detection.MISSED:
                # Only a call that would be missed needs the look for a pickup elsewhere.
                picked_up = self._answered_elsewhere(tracking_id, legs, decision, targets)
                if picked_up is not None:
                    decision = decide(answered_elsewhere=picked_up)
            if decision.state == detection.PENDING:
                return None, None
            row = None
            linked = None
            if decision.state == detection.MISSED:
                called_ms = sane_called_at(decision.start_ms, last_ms)
                # Reconciliation may have registered this call first (events late): one row.
                reconciled = reg.calls.unheard_reconciled_near(
                    decision.phone, called_ms, int(self.merge_tolerance * 1000)
                )
                if reconciled is not None:
                    linked = reconciled.id
                    reg.calls.join_heard(
                        linked,
                        session_key=tracking_id,
                        line=decision.line,
                        lost_at=decision.lost_at,
                        forwarded_to=decision.forwarded_to,
                    )
                else:
                    row = reg.calls.insert(
                        session_key=tracking_id,
                        phone=decision.phone,
                        phone_raw=decision.phone_raw,
                        called_at=timefmt.ms_to_stored(called_ms),
                        line=decision.line,
                        outside_hours=bool(self.outside_hours and self.outside_hours(called_ms)),
                        lost_at=decision.lost_at,
                        forwarded_to=decision.forwarded_to,
                    )
                    if row is None:  # registered before (a replay): keep the link
                        existing = reg.calls.by_session(tracking_id)
                        linked = existing.id if existing else None
            elif decision.state == detection.ANSWERED:
                self._close_if_registered(tracking_id, decision)
            reg.sessions.decide(tracking_id, decision.state, row or linked)
            answered = None
            if decision.state == detection.ANSWERED and self.on_answered:
                answered = self._answered_or_wait(tracking_id, legs, targets, at_ms)
            return row, answered

    def _answered_elsewhere(
        self,
        tracking_id: str,
        legs: list[LegState],
        decision: detection.Decision,
        targets: detection.Targets,
    ) -> str | None:
        """Did a person take this caller's call in another session while it rang, or right after?

        A pickup starts a new session of the colleague's, carrying the client's number
        (shared/beeline: pickup, park and barge-in start a new extTrackingId).
        """
        if decision.phone is None or decision.start_ms is None:
            return None
        releases = [leg.release_ms for leg in legs if leg.release_ms is not None]
        end = max([decision.start_ms, *releases]) + int(self.settle * 1000)
        for leg in self.register.sessions.answered_legs_of(
            decision.phone, decision.start_ms, end, other_than=tracking_id
        ):
            if targets.is_person(leg):
                return detection.abonent_name(leg.target_id)
        return None

    def _close_if_registered(self, tracking_id: str, decision: detection.Decision) -> None:
        """A session registered under an older rule turned out answered (a replay): its row, if
        nobody has handled it yet, is closed as answered; what staff recorded stays."""
        call = self.register.calls.by_session(tracking_id)
        if call and call.status == CallStatus.MISSED:
            who = decision.answered_by or ""
            self.register.calls.close_automatically(
                call.id, result=f"Звонок был принят (ответил {who})", user=who
            )

    def forget_old_keys(self, at_ms: int) -> None:
        """Drop dedup keys past the window, at most once an hour."""
        if time.monotonic() - self._pruned_at < 3600 and self._pruned_at:
            return
        self._pruned_at = time.monotonic()
        with self.register.transaction():
            self.register.sessions.forget_seen(at_ms - DEDUPE_WINDOW_MS)

    def run_once(self, at_ms: int | None = None) -> list[int]:
        while self.process_inbox():
            pass
        return self.decide_due(at_ms)


def targets_from_settings(
    settings: Settings,
) -> Callable[[list[Abonent]], detection.Targets]:
    """How the daemon, `replay` and the CLI tell people from services: the configured patterns
    over the cached abonent list. Bad patterns fail here, at start, in one sentence."""
    services = {
        detection.VOICE_MENU: settings.voice_menu_targets,
        detection.QUEUE: settings.queue_targets,
        detection.HUNT_GROUP: settings.hunt_group_targets,
        detection.VOICEMAIL: settings.voicemail_targets,
    }

    def build(abonents: list[Abonent]) -> detection.Targets:
        return detection.Targets.build(
            service_patterns=services,
            person_patterns=settings.person_targets,
            abonents=abonents,
            unknown_is_person=settings.unknown_targets == "person",
        )

    if settings.unknown_targets not in ("service", "person"):
        raise UserError(
            f'unknown_targets must be "service" or "person", not {settings.unknown_targets!r}.'
        )
    build([])
    return build


def replay(
    register: Register,
    settle: float,
    *,
    targets_from: Callable[[list[Abonent]], detection.Targets] | None = None,
    stale_after: float = 3600.0,
) -> dict[str, int]:
    """Rebuild every call decision from the inbox under the current rules; staff's handling of
    existing rows is kept (rows now judged answered and still untouched are closed as such)."""
    before = register.calls.count()
    open_before = register.calls.count(status=CallStatus.MISSED)
    requeued = register.sessions.reset_decisions()
    processor = Processor(
        register, settle=settle, stale_after=stale_after, targets_from=targets_from
    )
    while processor.process_inbox(1000):
        pass
    processor.decide_due()
    after = register.calls.count()
    open_after = register.calls.count(status=CallStatus.MISSED)
    return {
        "events": requeued,
        "calls_before": before,
        "calls_after": after,
        "added": after - before,
        "closed": max(0, open_before + (after - before) - open_after),
    }
