"""The configured `timezone` wins over the machine's TZ, both ways round.

Every other test runs with TZ=Europe/Moscow and a Moscow config, so the setting never has to
win there. Here the machine and the setting disagree: reports' day and hour boundaries,
working hours and the auto-close result text must follow the setting; with no setting,
the machine's zone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from beeline_missed import config, timefmt
from beeline_missed.cli import app
from beeline_missed.reports import spec as report_spec
from beeline_missed.rules import autoclose, deadlines, hours
from beeline_missed.rules.detection import AnsweredCall
from beeline_missed.store import Register
from tests.support.report_data import A, B, fill

MOSCOW = ZoneInfo("Europe/Moscow")
# (machine TZ, configured timezone, the zone that must win)
DISAGREEING = [
    pytest.param("UTC", "Europe/Moscow", "Europe/Moscow", id="machine-utc-setting-moscow"),
    pytest.param("Europe/Moscow", "UTC", "UTC", id="machine-moscow-setting-utc"),
    pytest.param("Asia/Vladivostok", None, "Asia/Vladivostok", id="no-setting-machine-wins"),
]


def configure(home: Path, monkeypatch: pytest.MonkeyPatch, machine: str, setting: str | None):
    monkeypatch.setenv("TZ", machine)
    text = f'timezone = "{setting}"\n' if setting else ""
    (home / "config.toml").write_text(text, encoding="utf-8")


# -- reports ------------------------------------------------------------------------------


@pytest.mark.parametrize(("machine", "setting", "wins"), DISAGREEING)
def test_report_zone_is_the_setting_else_the_machines(
    monkeypatch: pytest.MonkeyPatch, machine: str, setting: str | None, wins: str
) -> None:
    monkeypatch.setenv("TZ", machine)
    assert timefmt.local_zone(setting) == ZoneInfo(wins)


# 1 November, by the zone that wins: the calls (report_data) and their local hours.
NOVEMBER_1 = {
    # Moscow: 31.10 21:00Z (k3, B, 00:00) to 01.11 21:00Z (k1, A, 23:30 local).
    "Europe/Moscow": {"phones": {A: 1, B: 1}, "hours": {0: 1, 23: 1}},
    # UTC: k1 (20:30) and k2 (21:30), both A; k3 is still 31 October.
    "UTC": {"phones": {A: 2}, "hours": {20: 1, 21: 1}},
    # Vladivostok (UTC+10): 31.10 14:00Z to 01.11 14:00Z holds k4, k3 (B, 06:59 and 07:00).
    "Asia/Vladivostok": {"phones": {B: 2}, "hours": {6: 1, 7: 1}},
}


@pytest.mark.parametrize(("machine", "setting", "wins"), DISAGREEING)
def test_report_days_and_hours_follow_the_configured_zone(
    register: Register,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    machine: str,
    setting: str | None,
    wins: str,
) -> None:
    fill(register)
    configure(home, monkeypatch, machine, setting)
    expected = NOVEMBER_1[wins]
    day = ["report", "--from", "2026-11-01", "--to", "2026-11-01", "--json"]
    result = CliRunner().invoke(app, [*day, "--group-by", "phone"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["period"]["timezone"] == wins
    assert {r["phone"]: r["calls"] for r in data["rows"]} == expected["phones"]
    result = CliRunner().invoke(app, [*day, "--group-by", "hour"])
    assert result.exit_code == 0, result.output
    assert {r["hour"]: r["calls"] for r in json.loads(result.stdout)["rows"]} == expected["hours"]


@pytest.mark.parametrize(("machine", "setting", "wins"), DISAGREEING)
def test_named_periods_start_at_local_midnight_of_the_configured_zone(
    monkeypatch: pytest.MonkeyPatch, machine: str, setting: str | None, wins: str
) -> None:
    monkeypatch.setenv("TZ", machine)
    zone = timefmt.local_zone(setting)
    period = report_spec.resolve_period("yesterday", None, None, zone, datetime(2026, 11, 2).date())
    start = datetime(2026, 11, 1, tzinfo=ZoneInfo(wins)).astimezone(UTC)
    assert (period.start_utc, (period.end_utc - period.start_utc).days) == (start, 1)


# -- working hours ------------------------------------------------------------------------

HOURS = 'working_hours.mon = "09:00-18:00"\nholidays = ["2026-12-31"]\n'


@pytest.mark.parametrize(("machine", "setting", "wins"), DISAGREEING)
def test_working_hours_are_the_configured_zones_hours(
    home: Path, monkeypatch: pytest.MonkeyPatch, machine: str, setting: str | None, wins: str
) -> None:
    configure(home, monkeypatch, machine, setting)
    with (home / "config.toml").open("a", encoding="utf-8") as handle:
        handle.write(HOURS)
    shop = hours.from_settings(config.load())
    zone = ZoneInfo(wins)
    for hour in range(24):  # Monday 30 November, every hour of the winning zone's day
        moment = datetime(2026, 11, 30, hour, 30, tzinfo=zone)
        epoch_ms = int(moment.timestamp() * 1000)
        assert shop.is_outside(epoch_ms) == (not 9 <= hour < 18), moment
        stored = timefmt.to_stored(moment)
        assert shop.is_outside_stored(stored) == (not 9 <= hour < 18), stored
    # A holiday is a local date: its first minute in the winning zone is already a holiday.
    eve = datetime(2026, 12, 31, 0, 1, tzinfo=zone)
    assert shop.is_outside(int(eve.timestamp() * 1000))
    assert not hours.parse({}, ["2026-12-31"], zone).is_outside(
        int(datetime(2026, 12, 30, 23, 59, tzinfo=zone).timestamp() * 1000)
    )


# -- auto-close ---------------------------------------------------------------------------

T0 = 1795766400000  # 27.11.2026 08:00 UTC, 11:00 in Moscow, 18:00 in Vladivostok
ANSWERED_AT = {"Europe/Moscow": "11:05", "UTC": "08:05", "Asia/Vladivostok": "18:05"}


@pytest.mark.parametrize(("machine", "setting", "wins"), DISAGREEING)
def test_auto_close_result_tells_the_time_in_the_configured_zone(
    register: Register,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    machine: str,
    setting: str | None,
    wins: str,
) -> None:
    configure(home, monkeypatch, machine, setting)
    with register.transaction():
        call_id = register.calls.insert(
            session_key="a",
            phone=A,
            phone_raw=A,
            called_at=timefmt.ms_to_stored(T0),
            line="201",
        )
    closer = autoclose.AutoCloser(register, config.load())
    # A minute's talk: a conversation (auto_close_min_talk).
    closed = closer(AnsweredCall("s1", A, "outgoing", "9001112204", T0 + 300_000, T0 + 360_000))
    assert closed == [call_id]
    assert register.calls.get(call_id).result == f"Перезвонили 27.11 {ANSWERED_AT[wins]}"


# -- callback deadlines -------------------------------------------------------------------


@pytest.fixture
def machine_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local times computed in-process (astimezone()) must re-read TZ, and restore it after."""
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("machine", ["UTC", "Asia/Vladivostok"])
def test_working_time_of_a_wait_is_counted_on_the_configured_zones_days(
    home: Path, monkeypatch: pytest.MonkeyPatch, machine_zone: None, machine: str
) -> None:
    configure(home, monkeypatch, machine, "Europe/Moscow")
    time.tzset()
    with (home / "config.toml").open("a", encoding="utf-8") as handle:
        handle.write('[working_hours]\nmon = "20:00-24:00"\ntue = "00:00-03:00"\n')
    judged = deadlines.Deadlines.from_settings(config.load())
    # Monday 21:00 → Tuesday 02:00 in Moscow: 3 hours on Monday, 2 on Tuesday. On the machine
    # the two moments fall on one day (Monday in UTC, Tuesday in Vladivostok).
    start = datetime(2026, 11, 30, 21, 0, tzinfo=MOSCOW)
    end = datetime(2026, 12, 1, 2, 0, tzinfo=MOSCOW)
    waited = judged.waiting(timefmt.to_stored(start), int(end.timestamp() * 1000))
    assert waited == 5 * 3600
