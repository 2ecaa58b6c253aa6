"""Escalation: cases still open past `escalate_after` are sent once to the managers' channels.

The rule is pure (`overdue`, `message`: rows, the deadlines, the clock in, cases out); the
`Escalator` is the daemon's thread around it, off the hook and the processor, so a slow channel
never delays intake. A case is told about once: its calls are recorded in the register
(`escalations`) before the message goes out, so a restart, a second daemon or a new attempt of
the same caller never sends it again. Only within working hours (when they are set) — a manager
is not woken at night about a call that came at 18:59; the wait counts working time only, as the
list's colours do.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import tzinfo
from pathlib import Path
from typing import TYPE_CHECKING

from beeline_missed import notify, phones, timefmt
from beeline_missed.deadlines import Deadlines
from beeline_missed.store import Call, Register
from beeline_missed.vocabulary import CallStatus

if TYPE_CHECKING:
    from beeline_missed.config import Settings

log = logging.getLogger("beeline_missed.escalation")

SUBJECT = "Не перезвонили вовремя"
SHOWN = 30  # cases listed by name in one message; the rest are counted


def overdue(
    cases: Sequence[Call],
    deadlines: Deadlines,
    after_s: float,
    now_ms: int,
    escalated: set[int],
) -> list[Call]:
    """The open cases (one row per caller, `Register.list_calls`) that have waited `after_s`
    seconds or more and none of whose calls was escalated before; none outside working hours.
    Each is returned with its `waiting_s`, the longest waiting first."""
    if after_s <= 0 or deadlines.hours.is_outside(now_ms):
        return []
    found = []
    for case in cases:
        if case.status != CallStatus.MISSED:
            continue
        if escalated.intersection(case.call_ids):
            continue
        waiting = int(deadlines.waiting(case.first_called_at or case.called_at, now_ms))
        if waiting >= after_s:
            found.append(replace(case, waiting_s=waiting))
    return sorted(found, key=lambda c: (-(c.waiting_s or 0), c.id))


def message(cases: Sequence[Call], after_s: float, zone: tzinfo) -> str:
    """What managers read: how many callers wait past the limit, then each of them."""
    lines = [f"{SUBJECT}: {len(cases)} (ждут дольше {timefmt.duration(after_s)})"]
    for case in cases[:SHOWN]:
        number = phones.display(case.phone)
        who = f"{number} — {case.client}" if case.client else number
        since = timefmt.show_local(case.first_called_at or case.called_at, zone)
        tried = f", звонил {case.attempts} раз(а)" if case.attempts > 1 else ""
        lines.append(f"{who}: ждёт {timefmt.duration(case.waiting_s or 0)} (с {since}){tried}")
    if len(cases) > SHOWN:
        lines.append(f"… и ещё {len(cases) - SHOWN}")
    return "\n".join(lines)


def escalate(
    register: Register,
    deadlines: Deadlines,
    after_s: float,
    now_ms: int,
) -> list[Call]:
    """Find the overdue cases and record them as escalated; returns those this call recorded
    (another process may have recorded some a moment earlier: those are its to send)."""
    cases = register.calls.rows()
    ids = [i for case in cases for i in case.call_ids]
    found = overdue(cases, deadlines, after_s, now_ms, register.escalations.among(ids))
    if not found:
        return []
    at = timefmt.ms_to_stored(now_ms)
    recorded = set(register.escalations.mark([i for case in found for i in case.call_ids], at))
    return [case for case in found if recorded.intersection(case.call_ids)]


class Escalator:
    """The daemon's escalation thread: checks every `interval` seconds, sends, never raises."""

    def __init__(
        self,
        db_path: Path,
        settings: Settings,
        channels: list[notify.Sender],
        stop: threading.Event,
        *,
        clock_ms: Callable[[], int] = timefmt.now_ms,
        attempts: int = 3,
        retry_delay: float = 2.0,
    ) -> None:
        self.db_path = db_path
        self.deadlines = Deadlines.from_settings(settings)
        self.after_s = float(settings.escalate_after) * 60
        self.interval = float(settings.escalate_interval)
        self.zone = timefmt.local_zone(settings.timezone)
        self.channels = channels
        self.stop = stop
        self.clock_ms = clock_ms
        self.attempts = attempts
        self.retry_delay = retry_delay
        self.thread: threading.Thread | None = None

    def start(self) -> threading.Thread:
        self.thread = threading.Thread(target=self._loop, name="escalation", daemon=True)
        self.thread.start()
        return self.thread

    def _loop(self) -> None:
        register = Register.open(self.db_path)
        try:
            while not self.stop.is_set():
                try:
                    self.check(register)
                except Exception:  # a broken check must not end the thread
                    log.exception("escalation check failed")
                self.stop.wait(self.interval)
        finally:
            register.close()

    def check(self, register: Register) -> list[Call]:
        cases = escalate(register, self.deadlines, self.after_s, self.clock_ms())
        if not cases:
            return []
        text = message(cases, self.after_s, self.zone)
        pending = notify.send_with_retries(
            list(self.channels),
            text,
            SUBJECT,
            attempts=self.attempts,
            retry_delay=self.retry_delay,
            wait=self.stop.wait,
        )
        ids = ", ".join(str(i) for case in cases for i in case.call_ids)
        if pending:
            log.error(
                "escalation of calls %s not sent by %s", ids, ", ".join(c.name for c in pending)
            )
        else:
            log.info("escalated %s overdue case(s) to the managers: calls %s", len(cases), ids)
        return cases
