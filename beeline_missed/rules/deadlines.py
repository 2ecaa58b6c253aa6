"""Callback deadlines: how long an open case has waited, and how late that is.

Pure: built once from the settings, then asked about epoch milliseconds with the clock passed
in. A case waits from its caller's first open attempt; when working hours are set only the time
inside them counts (a call at 18:55 returned at 09:05 next morning waited 10 minutes of the
shop's time, not 14 hours). `callback_deadlines` (minutes, ascending) split the waits into
levels: 0 is within the first deadline, len(deadlines) is past the last. The list, `watch`, the
panel and escalation all ask this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING

from beeline_missed import timefmt
from beeline_missed.rules.hours import WorkingHours
from beeline_missed.vocabulary import CallStatus

if TYPE_CHECKING:
    from beeline_missed.config import Settings
    from beeline_missed.store.rows import Call

DEFAULT_DEADLINES_MIN = (15.0, 60.0)
# Rich styles by level: within the first deadline, between deadlines, past the last.
ON_TIME, DUE, OVERDUE = "green", "yellow", "bold red"
# Past this many days a wait is not walked day by day (a year of a neglected register).
MAX_DAYS = 400


def working_seconds(hours: WorkingHours, start_ms: int, end_ms: int) -> float:
    """Seconds of [start, end) inside working hours; all of it when no hours are set."""
    if end_ms <= start_ms:
        return 0.0
    if not hours.configured:
        return (end_ms - start_ms) / 1000
    zone = hours.zone
    start = timefmt.from_ms(start_ms).astimezone(zone)
    end = timefmt.from_ms(end_ms).astimezone(zone)
    total = 0.0
    day = start.date()
    for _ in range(MAX_DAYS):
        if day > end.date():
            break
        if day not in hours.holidays:
            for opens, closes in hours.days[day.weekday()]:
                low = datetime.combine(day, opens, tzinfo=zone)
                high = (
                    datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone)
                    if closes is None
                    else datetime.combine(day, closes, tzinfo=zone)
                )
                overlap = (min(high, end) - max(low, start)).total_seconds()
                total += max(0.0, overlap)
        day += timedelta(days=1)
    return total


@dataclass(frozen=True)
class Deadlines:
    """The thresholds (seconds, ascending) and the hours a wait is counted in."""

    thresholds: tuple[float, ...]
    hours: WorkingHours

    @classmethod
    def from_settings(cls, settings: Settings) -> Deadlines:
        from beeline_missed.rules import hours

        minutes = settings.callback_deadlines or DEFAULT_DEADLINES_MIN
        return cls(tuple(float(m) * 60 for m in minutes), hours.from_settings(settings))

    def waiting(self, since_stored: str, now_ms: int) -> float:
        """Seconds a case first called at `since_stored` (stored UTC) has waited by now."""
        since = timefmt.stored_to_ms(since_stored)
        return working_seconds(self.hours, since, now_ms)

    def level(self, waiting_s: float) -> int:
        """How many deadlines a wait has passed (reached counts as passed)."""
        return sum(waiting_s >= limit for limit in self.thresholds)

    def style(self, level: int) -> str:
        if level == 0:
            return ON_TIME
        return OVERDUE if level >= len(self.thresholds) else DUE

    def annotate(self, rows: Iterable[Call], now_ms: int) -> list[Call]:
        """The rows with `waiting_s` and `deadline_level` of each open row (None for handled
        rows)."""
        return [self.annotate_one(row, now_ms) for row in rows]

    def annotate_one(self, row: Call, now_ms: int) -> Call:
        if row.status != CallStatus.MISSED:
            return row.replaced(waiting_s=None, deadline_level=None)
        waiting = self.waiting(row.first_called_at or row.called_at, now_ms)
        return row.replaced(waiting_s=int(waiting), deadline_level=self.level(waiting))


def row_style(row: Call, deadlines: Deadlines) -> str | None:
    """The style of an annotated row (None: handled, or not annotated)."""
    level = row.deadline_level
    return None if level is None else deadlines.style(level)


SORTS = ("time", "age")


def sort_rows(rows: list[Call], how: str) -> list[Call]:
    """'time': as read (newest first); 'age': the longest waiting first (annotated rows)."""
    if how == "time":
        return rows
    return sorted(
        rows,
        key=lambda r: (
            r.waiting_s is None,
            -(r.waiting_s or 0),
            r.first_called_at or r.called_at,
            r.id,
        ),
    )
