"""Working hours: the rules, the daemon marking calls at registration, reconciliation too."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from beeline_missed import config
from beeline_missed.cli import app
from beeline_missed.errors import UserError
from beeline_missed.rules import hours, reconcile
from beeline_missed.simulator import xsi_build
from beeline_missed.simulator.pbx import Simulator
from beeline_missed.store import Register
from tests.support import clock
from tests.support.daemon import free_port, wait_for
from tests.support.e2e import GROUP, rows, start_daemon, write_config

MOSCOW = ZoneInfo("Europe/Moscow")
SHOP = {
    "mon": "09:00-18:00",
    "tue": "09:00-18:00",
    "wed": "09:00-18:00",
    "thu": "09:00-18:00",
    "fri": "09:00-13:00, 14:00-18:00",
    "sat": "10:00-24:00",
}
CONFIG = """\
holidays = ["2026-11-20"]
working_hours.mon = "09:00-18:00"
working_hours.tue = "09:00-18:00"
working_hours.wed = "09:00-18:00"
working_hours.thu = "09:00-18:00"
working_hours.fri = "09:00-13:00, 14:00-18:00"
"""


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=MOSCOW).timestamp() * 1000)


def test_weekdays_breaks_weekends_and_holidays() -> None:
    shop = hours.parse(SHOP, ["2026-11-20"], MOSCOW)
    assert not shop.is_outside(ms(2026, 11, 27, 11, 0))  # Friday morning
    assert shop.is_outside(ms(2026, 11, 27, 13, 30))  # lunch break
    assert not shop.is_outside(ms(2026, 11, 27, 17, 59))
    assert shop.is_outside(ms(2026, 11, 27, 18, 0))  # the end is not inside
    assert shop.is_outside(ms(2026, 11, 27, 8, 59))
    assert not shop.is_outside(ms(2026, 11, 28, 23, 59))  # Saturday until midnight
    assert shop.is_outside(ms(2026, 11, 29, 12, 0))  # Sunday is not listed: a day off
    assert shop.is_outside(ms(2026, 11, 20, 11, 0))  # a Friday, but a holiday
    assert shop.is_outside_stored("2026-11-27T15:00:00Z")  # 18:00 in Moscow
    assert "fri 09:00-13:00, 14:00-18:00" in hours.describe(shop)


def test_no_hours_marks_nothing_and_holidays_alone_mark_only_holidays() -> None:
    none = hours.parse({}, [], MOSCOW)
    assert not none.is_outside(ms(2026, 11, 29, 3, 0))
    assert hours.describe(none) == "no working hours configured"
    only = hours.parse({}, ["2026-12-31"], MOSCOW)
    assert not only.is_outside(ms(2026, 11, 29, 3, 0))
    assert only.is_outside(ms(2026, 12, 31, 12, 0))


def test_russian_day_names_and_a_closed_day() -> None:
    shop = hours.parse({"пн": "10:00-12:00", "вт": "выходной"}, [], MOSCOW)
    assert not shop.is_outside(ms(2026, 11, 23, 11, 0))
    assert shop.is_outside(ms(2026, 11, 24, 11, 0))


@pytest.mark.parametrize(
    ("table", "holidays", "message"),
    [
        ({"monday": "09:00-18:00"}, [], "Unknown weekday 'monday'"),
        ({"mon": "9-18"}, [], "must look like 09:00-19:00"),
        ({"mon": "18:00-09:00"}, [], "ends before it starts"),
        ({"mon": "09:00-25:00"}, [], "is not a time of day"),
        ({}, ["31.12.2026"], "is not a date like 2026-12-31"),
    ],
)
def test_bad_tables_are_one_sentence(table: dict, holidays: list, message: str) -> None:
    with pytest.raises(UserError, match=message):
        hours.parse(table, holidays, MOSCOW)


@pytest.mark.e2e
def test_daemon_refuses_to_start_with_bad_hours(home: Path) -> None:
    write_config(home, 'working_hours.mon = "all day"\n')
    env = {
        "BEELINE_MISSED_HOME": str(home),
        "BEELINE_MISSED_PUBLIC_URL": "http://127.0.0.1/beeline/hook/3f9c2a7e5b1d4c8a",
        "TZ": "Europe/Moscow",
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-m", "beeline_missed", "daemon", "--listen", f"127.0.0.1:{free_port()}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("Error: Working hours for mon must look like 09:00-19:00")
    assert "Traceback" not in result.stderr


@pytest.mark.e2e
def test_daemon_marks_calls_outside_hours(home: Path, sim: Simulator) -> None:
    # The daemon judges start times against its clock: the week is a recent one, not a fixed date.
    friday = clock.last_weekday(4)
    holiday = friday - timedelta(days=7)
    sunday = friday - timedelta(days=5)
    write_config(home, CONFIG.replace("2026-11-20", holiday.isoformat()))
    proc = start_daemon(home, sim, token=False)
    try:
        calls = {
            "+79160000001": clock.ms(clock.moment(friday, 11)),  # Friday morning: inside
            "+79160000002": clock.ms(clock.moment(friday, 13, 15)),  # lunch break
            "+79160000003": clock.ms(clock.moment(holiday, 11)),  # a Friday, but a holiday
            "+79160000004": clock.ms(clock.moment(sunday, 11)),  # Sunday
        }
        for phone, start in calls.items():
            sim.play(xsi_build.incoming_call(GROUP[:1], phone, start))
        wait_for(lambda: len(rows(home)) == 4, timeout=30)
        stored = {r["phone"]: r["called_at"] for r in rows(home)}
        # Each row kept its own start time (not re-dated to when the daemon heard of it).
        assert stored == {phone: clock.stored_ms(start) for phone, start in calls.items()}
        marked = {r["phone"]: r["outside_hours"] for r in rows(home)}
        assert marked == {
            "+79160000001": 0,
            "+79160000002": 1,
            "+79160000003": 1,
            "+79160000004": 1,
        }
        shown = {c["phone"]: c["outside_hours"] for c in proc.calls()}
        assert shown["+79160000001"] is False and shown["+79160000004"] is True
    finally:
        proc.stop()
    assert "working hours: mon 09:00-18:00" in proc.log()


def test_reconciled_calls_are_marked_too(register: Register) -> None:
    shop = hours.parse(SHOP, [], MOSCOW)
    summary = reconcile.Summary("", "")
    items = [
        {
            "startDate": start,
            "direction": "INBOUND",
            "status": "MISSED",
            "phone_from": phone,
            "abonent": {"userId": GROUP[0]},
        }
        for phone, start in (
            ("79160000005", ms(2026, 11, 27, 10, 0)),
            ("79160000006", ms(2026, 11, 27, 22, 0)),
        )
    ]
    reconcile.apply_records(
        register,
        items,
        summary,
        statuses=("MISSED",),
        tolerance=120,
        outside_hours=shop.is_outside,
    )
    marked = {c.phone: c.outside_hours for c in register.calls.rows()}
    assert marked == {"+79160000005": False, "+79160000006": True}


def test_config_show_lists_the_hours(home: Path) -> None:
    write_config(home, CONFIG)
    shown = json.loads(CliRunner().invoke(app, ["config", "show", "--json"]).output)
    assert shown["working_hours"]["fri"] == "09:00-13:00, 14:00-18:00"
    assert shown["holidays"] == ["2026-11-20"]


# -- the boundaries of each rule ------------------------------------------------------------


def test_a_range_includes_its_first_minute_and_excludes_its_end() -> None:
    shop = hours.parse({"mon": "09:30-18:15", "tue": "23:00-24:00"}, [], MOSCOW)
    assert shop.is_outside(ms(2026, 11, 30, 9, 29, 59))
    assert not shop.is_outside(ms(2026, 11, 30, 9, 30))
    assert not shop.is_outside(ms(2026, 11, 30, 18, 14, 59))
    assert shop.is_outside(ms(2026, 11, 30, 18, 15))
    assert shop.is_outside(ms(2026, 12, 1, 22, 59, 59))
    assert not shop.is_outside(ms(2026, 12, 1, 23, 0))
    assert not shop.is_outside(ms(2026, 12, 1, 23, 59, 59))
    assert shop.is_outside(ms(2026, 12, 2, 0, 0))  # Wednesday: not listed


def test_times_of_day_at_the_edges() -> None:
    assert hours.parse_day("00:00-09:59", "mon") == ((time(0, 0), time(9, 59)),)
    assert hours.parse_day("23:00-24:00", "mon") == ((time(23, 0), None),)
    # 24:00 as a start is midnight too.
    assert hours.parse_day("24:00-06:00", "mon") == ((time(0, 0), time(6, 0)),)
    assert hours.parse_day(" Выходной ", "sun") == ()
    assert hours.parse_day("", "sun") == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("09:00-24:30", "Working hours for tue: 24:30 is not a time of day."),
        ("09:60-18:00", "Working hours for tue: 09:60 is not a time of day."),
        ("09:00-09:00", "Working hours for tue: 09:00-09:00 ends before it starts."),
        (
            "9-18",
            'Working hours for tue must look like 09:00-19:00 (several comma-separated, "" '
            "for a day off), not '9-18'.",
        ),
    ],
)
def test_a_bad_range_names_the_day_and_the_reason(text: str, message: str) -> None:
    with pytest.raises(UserError) as caught:
        hours.parse({"вт": text}, [], MOSCOW)
    assert str(caught.value) == message


def test_no_hours_at_all_in_the_settings_is_not_configured() -> None:
    settings = config.load()
    shop = hours.from_settings(replace(settings, timezone="Europe/Moscow"))
    assert not shop.configured and shop.zone == MOSCOW
    assert not shop.is_outside(ms(2026, 11, 29, 3, 0))
    shop = hours.from_settings(
        replace(settings, working_hours={}, holidays=("2026-11-29",), timezone="UTC")
    )
    assert shop.configured and shop.zone == ZoneInfo("UTC")
    assert shop.is_outside(ms(2026, 11, 29, 12, 0))
    assert not shop.is_outside(ms(2026, 11, 30, 12, 0))
    # Settings with none of the three: no hours, the machine's zone.
    bare = hours.from_settings(replace(settings, working_hours={}, holidays=(), timezone=None))
    assert not bare.configured and bare.zone == MOSCOW  # TZ=Europe/Moscow in the tests


def test_describe_lists_every_day_and_the_holidays() -> None:
    shop = hours.parse({"mon": "09:00-13:00, 14:00-18:00", "sat": "10:00-24:00"}, [], MOSCOW)
    assert hours.describe(shop) == (
        "mon 09:00-13:00, 14:00-18:00; tue closed; wed closed; thu closed; fri closed; "
        "sat 10:00-24:00; sun closed; 0 holiday(s)"
    )
    only = hours.parse({}, ["2026-12-31", "2027-01-01"], MOSCOW)
    assert hours.describe(only).endswith("sun 00:00-24:00; 2 holiday(s)")
    # A table that is not one entry per weekday is a bug, not something to describe in part.
    with pytest.raises(ValueError):
        hours.describe(replace(shop, days=shop.days[:6]))
