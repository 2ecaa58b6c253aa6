"""Working hours: is a moment outside the shop's hours (per weekday, holidays)?

Pure: built once from the settings, then asked about epoch milliseconds. With no hours
configured nothing is outside hours, so a shop that never set them sees no marks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, time, tzinfo
from typing import TYPE_CHECKING

from beeline_missed import timefmt
from beeline_missed.errors import SettingsError

if TYPE_CHECKING:
    from beeline_missed.config import Settings

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Russian short names too: the config is written by the shop.
_DAY_WORDS = {
    **{day: i for i, day in enumerate(DAYS)},
    **{day: i for i, day in enumerate(("пн", "вт", "ср", "чт", "пт", "сб", "вс"))},
}
_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_CLOSED = {"", "closed", "off", "выходной", "-"}


@dataclass(frozen=True)
class WorkingHours:
    """Ranges per weekday (0 = Monday) as (start, end) local times; end 24:00 is midnight."""

    days: tuple[tuple[tuple[time, time | None], ...], ...]
    holidays: frozenset[date]
    zone: tzinfo
    configured: bool

    def is_outside(self, epoch_ms: int) -> bool:
        if not self.configured:
            return False
        local = timefmt.from_ms(epoch_ms).astimezone(self.zone)
        if local.date() in self.holidays:
            return True
        moment = local.time().replace(tzinfo=None)
        for start, end in self.days[local.weekday()]:
            if start <= moment and (end is None or moment < end):
                return False
        return True

    def is_outside_stored(self, stored: str) -> bool:
        """The same for a stored 'YYYY-MM-DDTHH:MM:SSZ' time."""
        return self.is_outside(timefmt.stored_to_ms(stored))


def _parse_time(hours: str, minutes: str, where: str) -> time | None:
    h, m = int(hours), int(minutes)
    if (h, m) == (24, 0):
        return None  # until midnight
    if h > 23 or m > 59:
        raise SettingsError(f"Working hours for {where}: {hours}:{minutes} is not a time of day.")
    return time(h, m)


def parse_day(text: str, where: str) -> tuple[tuple[time, time | None], ...]:
    """'09:00-13:00, 14:00-19:00' → ranges; '' / 'closed' / 'выходной' → none."""
    if str(text).strip().casefold() in _CLOSED:
        return ()
    ranges = []
    for part in str(text).split(","):
        match = _RANGE.match(part)
        if not match:
            raise SettingsError(
                f"Working hours for {where} must look like 09:00-19:00 (several comma-separated, "
                f'"" for a day off), not {text!r}.'
            )
        start = _parse_time(match[1], match[2], where) or time.min
        end = _parse_time(match[3], match[4], where)
        if end is not None and end <= start:
            raise SettingsError(f"Working hours for {where}: {part.strip()} ends before it starts.")
        ranges.append((start, end))
    return tuple(ranges)


def parse(working_hours: Mapping[str, str], holidays: Iterable[str], zone: tzinfo) -> WorkingHours:
    """Build from the settings' `working_hours` table and `holidays` list."""
    # Days not listed are days off; with holidays only, every other day is open all day.
    whole_day: tuple[tuple[time, time | None], ...] = ((time.min, None),)
    days: list[tuple[tuple[time, time | None], ...]] = [() if working_hours else whole_day] * 7
    for key, value in working_hours.items():
        index = _DAY_WORDS.get(str(key).strip().casefold())
        if index is None:
            raise SettingsError(
                f"Unknown weekday {key!r} in working_hours; use mon, tue, wed, thu, fri, sat, sun."
            )
        days[index] = parse_day(value, DAYS[index])
    dates = set()
    for text in holidays:
        try:
            dates.add(date.fromisoformat(str(text).strip()))
        except ValueError:
            raise SettingsError(f"Holiday {text!r} is not a date like 2026-12-31.") from None
    return WorkingHours(
        days=tuple(days),
        holidays=frozenset(dates),
        zone=zone,
        configured=bool(working_hours) or bool(dates),
    )


def from_settings(settings: Settings) -> WorkingHours:
    return parse(
        settings.working_hours or {},
        settings.holidays or (),
        timefmt.local_zone(settings.timezone),
    )


def describe(hours: WorkingHours) -> str:
    """One line for logs: 'mon 09:00-19:00; ...; 2 holidays'."""
    if not hours.configured:
        return "no working hours configured"
    parts = []
    for name, ranges in zip(DAYS, hours.days, strict=True):
        shown = ", ".join(
            f"{start:%H:%M}-{end:%H:%M}" if end else f"{start:%H:%M}-24:00" for start, end in ranges
        )
        parts.append(f"{name} {shown or 'closed'}")
    return "; ".join(parts) + f"; {len(hours.holidays)} holiday(s)"
