"""The tests' "today": the real date, or the one BEELINE_MISSED_TEST_NOW moves the whole suite to.

`BEELINE_MISSED_TEST_NOW=2027-01-01` (a date, or an ISO date-time with an offset) shifts the wall
clock of the test process and of every Python subprocess it starts (the daemon, the CLI, the
simulator) with time-machine: `time.time()`, `datetime.now()` and friends move, `time.monotonic()`
does not, so sleeps, timeouts and asyncio keep working. libfaketime cannot be used here: it also
shifts the monotonic clock and breaks the simulator's sleeps and the daemon tests.

Test data that the product compares with its clock (call start times the daemon judges plausible,
"today" reports, working hours) is built from `today()` / `moment()`, never from fixed dates.
"""

from __future__ import annotations

import os
import time as _time
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

ENV = "BEELINE_MISSED_TEST_NOW"
MOSCOW = ZoneInfo("Europe/Moscow")


def travel_target(value: str, real_now: datetime) -> datetime:
    """Where BEELINE_MISSED_TEST_NOW sends the clock: a date keeps the real time of day (UTC)."""
    value = value.strip()
    if "T" in value or " " in value:
        moment = datetime.fromisoformat(value)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    day = date.fromisoformat(value)
    return datetime.combine(day, real_now.astimezone(UTC).time(), tzinfo=UTC)


def start_travel() -> None:
    """Shift this process's wall clock when the suite is moved in time (no-op otherwise)."""
    value = os.environ.get(ENV)
    if not value:
        return
    import time_machine

    # The destination is computed once per process from the real clock, so parent and children
    # agree to within their start-up time.
    anchor = os.environ.get(ENV + "_ANCHOR")
    if anchor is None:
        real_now = datetime.now(UTC)
        target = travel_target(value, real_now)
        offset = (target - real_now).total_seconds()
        os.environ[ENV + "_ANCHOR"] = repr(offset)
    else:
        offset = float(anchor)
    # A timestamp, not an aware datetime: time-machine would also switch the process's time zone
    # to the datetime's (UTC), and the suite runs with the machine's TZ.
    time_machine.travel(_time.time() + offset, tick=True).start()


def now() -> datetime:
    return datetime.now(UTC)


def today() -> date:
    """Today in Moscow (every test runs with TZ=Europe/Moscow and a Moscow shop)."""
    return datetime.now(MOSCOW).date()


def moment(day: date, hour: int, minute: int = 0) -> datetime:
    """`day` at hour:minute in Moscow, as an aware datetime."""
    return datetime.combine(day, time(hour, minute), tzinfo=MOSCOW)


def ms(moment_: datetime) -> int:
    return int(moment_.timestamp() * 1000)


def stored(moment_: datetime) -> str:
    """The register's stored form: ISO 8601 UTC with a Z."""
    return moment_.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def last_weekday(weekday: int, *, before: date | None = None, at_least: int = 1) -> date:
    """The latest `weekday` (Monday 0) at least `at_least` days before `before` (today)."""
    day = (before or today()) - timedelta(days=at_least)
    return day - timedelta(days=(day.weekday() - weekday) % 7)


def stored_ms(epoch_ms: int) -> str:
    return stored(datetime.fromtimestamp(epoch_ms / 1000, UTC))


def yesterday_at(hour: int, minute: int = 0) -> datetime:
    """Yesterday at hour:minute in Moscow: a call start the daemon finds plausible on any day."""
    return moment(today() - timedelta(days=1), hour, minute)
