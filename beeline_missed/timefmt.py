"""Times: stored in UTC as 'YYYY-MM-DDTHH:MM:SSZ', shown in the shop's local time."""

from __future__ import annotations

import os
import time
from datetime import UTC, date, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from beeline_missed.errors import SettingsError, UserError

STORED = "%Y-%m-%dT%H:%M:%SZ"
# Dates a user may give (reports, reconciliation): a register holds calls from this side of
# 1970, and the day after the last one must still be a date (year 9999 is Python's last).
FIRST_YEAR = 1970
LAST_YEAR = 9998
# The machine's zone when TZ names none (a real zone: its offsets change with the seasons).
MACHINE_ZONE_FILE = "/etc/localtime"


def check_year(moment: date, text: str) -> None:
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        raise UserError(f"{text!r} is out of range: give a date from {FIRST_YEAR} to {LAST_YEAR}.")


def now_utc() -> datetime:
    return datetime.now(UTC)


def now_ms() -> int:
    """The wall clock in epoch milliseconds (the unit of the PBX's times)."""
    return int(time.time() * 1000)


# Units of `duration`: staff and managers read Russian, admins' commands speak English.
DURATION_UNITS = {
    "ru": ("с", "мин", "ч", "д"),
    "en": ("s", "min", "h", "d"),
}


def duration(seconds: float | None, language: str = "ru") -> str:
    """'45 с', '42 мин', '2 ч 05 мин', '3 д 4 ч' (or in English for admins); '—' when unknown."""
    if seconds is None:
        return "—"
    sec, minute, hour, day = DURATION_UNITS[language]
    total = max(0, round(seconds))
    if total < 60:
        return f"{total} {sec}"
    minutes = total // 60
    if minutes < 60:
        return f"{minutes} {minute}"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} {hour} {minutes:02d} {minute}"
    days, hours = divmod(hours, 24)
    return f"{days} {day} {hours} {hour}"


def to_stored(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(UTC).strftime(STORED)


def from_ms(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC)


def ms_to_stored(epoch_ms: int) -> str:
    return to_stored(from_ms(epoch_ms))


def parse_stored(text: str) -> datetime:
    return datetime.strptime(text, STORED).replace(tzinfo=UTC)


def stored_to_ms(text: str) -> int:
    """A stored time as epoch ms: the inverse of `ms_to_stored` (to the second)."""
    return int(parse_stored(text).timestamp() * 1000)


def local_zone(name: str | None = None) -> tzinfo:
    """The configured zone, else this machine's as a real zone (so a period that crosses a
    change of offset is right): TZ when it names one, else /etc/localtime, else the current
    offset. The one place the product resolves a time zone."""
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(
                f"Unknown time zone {name!r}; use a name like Europe/Moscow."
            ) from None
    # TZ read now, not at interpreter start (the C library caches it until tzset()).
    env = os.environ.get("TZ", "").lstrip(":")
    if env:
        try:
            return ZoneInfo(env)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    try:
        with open(MACHINE_ZONE_FILE, "rb") as handle:
            return ZoneInfo.from_file(handle, key="localtime")
    except (OSError, ValueError):
        pass
    local = datetime.now().astimezone().tzinfo
    assert local is not None
    return local


def to_local(text: str | None, zone: tzinfo) -> datetime | None:
    return parse_stored(text).astimezone(zone) if text else None


def iso_local(text: str | None, zone: tzinfo) -> str | None:
    """ISO 8601 with the local offset, as `--json` prints it."""
    moment = to_local(text, zone)
    return moment.isoformat() if moment else None


def show_local(text: str | None, zone: tzinfo) -> str:
    """'27.11.2026 14:05' as staff read it."""
    moment = to_local(text, zone)
    return moment.strftime("%d.%m.%Y %H:%M") if moment else ""
