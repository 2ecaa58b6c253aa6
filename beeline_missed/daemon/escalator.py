"""The daemon's escalation thread around the rule of `rules/escalation.py`: finds the overdue
cases, records them as escalated before the message goes out (so a restart or a second daemon
never sends it again), and sends it to the managers' channels with retries.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from beeline_missed import timefmt
from beeline_missed.daemon import notify
from beeline_missed.rules.deadlines import Deadlines
from beeline_missed.rules.escalation import SUBJECT, message, overdue
from beeline_missed.store import Register

if TYPE_CHECKING:
    from beeline_missed.config import Settings
    from beeline_missed.store import Call

log = logging.getLogger("beeline_missed.escalation")


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
