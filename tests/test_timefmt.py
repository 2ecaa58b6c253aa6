"""Times: stored UTC text, epoch milliseconds, local display, and which zone wins."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from beeline_missed import timefmt
from beeline_missed.errors import UserError

MOSCOW = ZoneInfo("Europe/Moscow")
# 27.11.2026 11:00:05 in Moscow, 08:00:05 UTC.
MS = 1795766405000


def test_to_stored_converts_any_offset_to_utc_text() -> None:
    moment = datetime(2026, 11, 27, 11, 0, 5, tzinfo=MOSCOW)
    assert timefmt.to_stored(moment) == "2026-11-27T08:00:05Z"
    plus5 = datetime(2026, 11, 27, 13, 0, 5, tzinfo=timezone(timedelta(hours=5)))
    assert timefmt.to_stored(plus5) == "2026-11-27T08:00:05Z"


def test_to_stored_refuses_a_naive_time() -> None:
    with pytest.raises(ValueError) as caught:
        timefmt.to_stored(datetime(2026, 11, 27, 11, 0))
    assert str(caught.value) == "naive datetime"


def test_milliseconds_round_trip_through_stored_text() -> None:
    assert timefmt.from_ms(MS) == datetime(2026, 11, 27, 8, 0, 5, tzinfo=UTC)
    assert timefmt.from_ms(MS + 999).microsecond == 999_000
    assert timefmt.ms_to_stored(MS) == "2026-11-27T08:00:05Z"
    assert timefmt.stored_to_ms("2026-11-27T08:00:05Z") == MS
    parsed = timefmt.parse_stored("2026-11-27T08:00:05Z")
    assert parsed == datetime(2026, 11, 27, 8, 0, 5, tzinfo=UTC)
    assert parsed.utcoffset() == timedelta(0)
    assert int(parsed.timestamp() * 1000) == MS


def test_now_is_aware_and_utc() -> None:
    before = datetime.now(UTC)
    now = timefmt.now_utc()
    assert now.utcoffset() == timedelta(0)
    assert before <= now <= datetime.now(UTC)


def test_local_display_in_the_given_zone() -> None:
    stored = "2026-11-27T21:30:00Z"  # 28.11 00:30 in Moscow: another day
    assert timefmt.show_local(stored, MOSCOW) == "28.11.2026 00:30"
    assert timefmt.show_local(stored, UTC) == "27.11.2026 21:30"
    assert timefmt.iso_local(stored, MOSCOW) == "2026-11-28T00:30:00+03:00"
    assert timefmt.to_local(stored, MOSCOW) == datetime(2026, 11, 28, 0, 30, tzinfo=MOSCOW)
    assert (timefmt.show_local(None, MOSCOW), timefmt.iso_local(None, MOSCOW)) == ("", None)
    assert timefmt.to_local("", MOSCOW) is None
    # A zone other than the machine's (TZ=Europe/Moscow in the tests) must be the one used.
    vladivostok = ZoneInfo("Asia/Vladivostok")
    assert timefmt.iso_local(stored, vladivostok) == "2026-11-28T07:30:00+10:00"
    assert timefmt.show_local(stored, vladivostok) == "28.11.2026 07:30"
    assert timefmt.iso_local(stored, UTC) == "2026-11-27T21:30:00+00:00"


def test_configured_zone_wins_over_the_machines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    assert timefmt.local_zone("Europe/Moscow") == MOSCOW
    monkeypatch.setenv("TZ", "Europe/Moscow")
    assert timefmt.local_zone("UTC") == ZoneInfo("UTC")


def test_without_a_setting_the_machines_tz_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", ":Asia/Yekaterinburg")
    assert timefmt.local_zone(None) == ZoneInfo("Asia/Yekaterinburg")
    monkeypatch.setenv("TZ", "UTC")
    assert timefmt.local_zone("") == ZoneInfo("UTC")


def test_without_a_setting_the_zone_is_the_machines_real_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", ":Asia/Vladivostok")
    assert timefmt.local_zone(None) == ZoneInfo("Asia/Vladivostok")
    monkeypatch.setenv("TZ", "Asia/Vladivostok")
    assert timefmt.local_zone("") == ZoneInfo("Asia/Vladivostok")
    for tz in ("Not/AZone", None):
        if tz is None:
            monkeypatch.delenv("TZ")
        else:
            monkeypatch.setenv("TZ", tz)
        zone = timefmt.local_zone(None)
        if Path("/etc/localtime").exists():
            # A real zone read from the file (its offsets may change), not a fixed offset.
            assert getattr(zone, "key", None) == "localtime"
            with open("/etc/localtime", "rb") as handle:
                machine = ZoneInfo.from_file(handle)
            moment = datetime(2026, 7, 1, tzinfo=UTC)
            assert zone.utcoffset(moment) == machine.utcoffset(moment)


@pytest.mark.parametrize("name", ["Moscow", "Europe/Nowhere", "../etc/passwd"])
def test_an_unknown_configured_zone_is_one_sentence(name: str) -> None:
    with pytest.raises(UserError, match=f"Unknown time zone '{name}'; use a name like"):
        timefmt.local_zone(name)


@pytest.mark.parametrize(
    ("seconds", "russian", "english"),
    [
        (None, "—", "—"),
        (-5, "0 с", "0 s"),
        (0, "0 с", "0 s"),
        (59.4, "59 с", "59 s"),
        (59.6, "1 мин", "1 min"),  # rounded first
        (3599, "59 мин", "59 min"),
        (3600, "1 ч 00 мин", "1 h 00 min"),
        (2 * 3600 + 5 * 60 + 59, "2 ч 05 мин", "2 h 05 min"),
        (86399, "23 ч 59 мин", "23 h 59 min"),
        (86400, "1 д 0 ч", "1 d 0 h"),
        (3 * 86400 + 4 * 3600 + 59 * 60, "3 д 4 ч", "3 d 4 h"),
    ],
)
def test_durations_read_in_the_largest_units_that_fit(
    seconds: float | None, russian: str, english: str
) -> None:
    assert timefmt.duration(seconds) == russian
    assert timefmt.duration(seconds, "en") == english


def test_years_outside_the_range_are_one_sentence() -> None:
    timefmt.check_year(datetime(timefmt.FIRST_YEAR, 1, 1).date(), "first")
    timefmt.check_year(datetime(timefmt.LAST_YEAR, 12, 31).date(), "last")
    for year in (timefmt.FIRST_YEAR - 1, timefmt.LAST_YEAR + 1):
        with pytest.raises(UserError, match=rf"'{year}-01-01' is out of range: give a date from"):
            timefmt.check_year(datetime(2000, 1, 1).date().replace(year=year), f"{year}-01-01")


def test_now_ms_is_the_wall_clock_in_milliseconds() -> None:
    before = time.time() * 1000
    now = timefmt.now_ms()
    after = time.time() * 1000
    assert before - 1 <= now <= after


def test_without_a_zone_file_the_current_offset_is_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TZ", "Not/AZone")
    monkeypatch.setattr(timefmt, "MACHINE_ZONE_FILE", str(tmp_path / "no-such-file"))
    zone = timefmt.local_zone(None)
    assert zone is not None
    assert datetime.now(zone).utcoffset() == datetime.now().astimezone().utcoffset()
