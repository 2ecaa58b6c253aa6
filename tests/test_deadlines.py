"""Callback deadlines: the age of a case (working time when hours are set), its colour, the sort,
`list --json`'s waiting_s, and the report's deadline measures on a known register."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from beeline_missed import config, timefmt
from beeline_missed.cli import app
from beeline_missed.reports import engine as reports
from beeline_missed.reports import spec as report_spec
from beeline_missed.rules import deadlines, hours
from beeline_missed.store import Register
from beeline_missed.vocabulary import CallStatus
from tests.support import clock
from tests.support.factories import add_call, call_row

pytestmark = pytest.mark.both_engines

MOSCOW = ZoneInfo("Europe/Moscow")
runner = CliRunner()
# A Monday 12:00 in Moscow (09:00 UTC); the rules take the clock as a parameter.
MONDAY = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def shop_hours(**days: str) -> hours.WorkingHours:
    return hours.parse(days, ["2026-12-31"], MOSCOW)


# -- working time ----------------------------------------------------------------------------


def test_without_hours_a_wait_is_wall_clock_time() -> None:
    plain = hours.parse({}, [], MOSCOW)
    start = MONDAY - timedelta(hours=20)
    assert deadlines.working_seconds(plain, ms(start), ms(MONDAY)) == 20 * 3600
    assert deadlines.working_seconds(plain, ms(MONDAY), ms(start)) == 0


def test_with_hours_only_the_shops_time_counts() -> None:
    week = shop_hours(mon="09:00-19:00", tue="09:00-13:00, 14:00-18:00")
    # Called Monday 18:55 Moscow, judged Tuesday 09:05: 5 + 5 minutes of working time.
    called = datetime(2026, 11, 30, 18, 55, tzinfo=MOSCOW)
    judged = datetime(2026, 12, 1, 9, 5, tzinfo=MOSCOW)
    assert deadlines.working_seconds(week, ms(called), ms(judged)) == 600
    # Tuesday's lunch hour does not count; 12:30 → 14:30 is 30 + 30 minutes.
    lunch = datetime(2026, 12, 1, 12, 30, tzinfo=MOSCOW)
    assert deadlines.working_seconds(week, ms(lunch), ms(lunch + timedelta(hours=2))) == 3600
    # Wednesday is a day off: Tuesday 17:50 → Thursday 10:00 counts only Tuesday's 10 minutes.
    late = datetime(2026, 12, 1, 17, 50, tzinfo=MOSCOW)
    thursday = datetime(2026, 12, 3, 10, 0, tzinfo=MOSCOW)
    assert deadlines.working_seconds(week, ms(late), ms(thursday)) == 600


def test_a_holiday_counts_nothing_and_midnight_closing_counts_to_the_end_of_day() -> None:
    always = shop_hours(thu="00:00-24:00", fri="00:00-24:00")
    eve = datetime(2026, 12, 31, 10, 0, tzinfo=MOSCOW)  # Thursday, a holiday
    assert deadlines.working_seconds(always, ms(eve), ms(eve + timedelta(hours=5))) == 0
    night = datetime(2027, 1, 1, 23, 0, tzinfo=MOSCOW)  # Friday 23:00 → Saturday 02:00
    assert deadlines.working_seconds(always, ms(night), ms(night + timedelta(hours=3))) == 3600


# -- levels, colours, sort ---------------------------------------------------------------


def limits(*minutes: float, hours_: hours.WorkingHours | None = None) -> deadlines.Deadlines:
    return deadlines.Deadlines(
        tuple(m * 60 for m in minutes), hours_ or hours.parse({}, [], MOSCOW)
    )


@pytest.mark.parametrize(
    ("waited", "level", "style"),
    [(0, 0, "green"), (899, 0, "green"), (900, 1, "yellow"), (3599, 1, "yellow"),
     (3600, 2, "bold red"), (10**6, 2, "bold red")],
)  # fmt: skip
def test_levels_and_colours_by_the_deadlines(waited: int, level: int, style: str) -> None:
    judged = limits(15, 60)
    assert judged.level(waited) == level
    assert judged.style(level) == style


def test_from_settings_reads_minutes_and_hours() -> None:
    settings = replace(
        config.load(), callback_deadlines=(5.0, 30.0, 120.0),
        working_hours={"mon": "09:00-19:00"}, holidays=(), timezone="Europe/Moscow",
    )  # fmt: skip
    judged = deadlines.Deadlines.from_settings(settings)
    assert judged.thresholds == (300, 1800, 7200)
    assert judged.hours.configured
    assert judged.style(1) == judged.style(2) == "yellow"
    defaults = replace(config.load(), callback_deadlines=config.Settings.callback_deadlines)
    assert deadlines.Deadlines.from_settings(defaults).thresholds == (900, 3600)


def test_annotate_ages_open_cases_from_their_first_attempt_and_sort_by_age() -> None:
    now = ms(MONDAY)
    stored = timefmt.ms_to_stored
    rows = [
        call_row(id=3, status=CallStatus.MISSED, called_at=stored(now - 60_000),
                 first_called_at=stored(now - 1_800_000)),
        call_row(id=2, status=CallStatus.MISSED, called_at=stored(now - 300_000)),
        call_row(id=1, status=CallStatus.CALLED_BACK, called_at=stored(now - 9_000_000)),
        call_row(id=4, status=CallStatus.MISSED, called_at=stored(now - 7_200_000)),
    ]  # fmt: skip
    rows = limits(15, 60).annotate(rows, now)
    assert [(r.id, r.waiting_s, r.deadline_level) for r in rows] == [
        (3, 1800, 1),  # the caller's first open attempt counts, not the latest
        (2, 300, 0),
        (1, None, None),  # handled: no age
        (4, 7200, 2),
    ]
    assert [r.id for r in deadlines.sort_rows(rows, "age")] == [4, 3, 2, 1]
    assert [r.id for r in deadlines.sort_rows(rows, "time")] == [3, 2, 1, 4]


# -- the list --------------------------------------------------------------------------------


@pytest.fixture
def moscow(home: Path) -> None:
    (home / "config.toml").write_text(
        'timezone = "Europe/Moscow"\ncallback_deadlines = [15, 60]\n', encoding="utf-8"
    )


def test_list_json_has_waiting_s_and_sorts_by_age(register: Register, moscow: None) -> None:
    now = clock.now()
    stored = timefmt.to_stored
    fresh = add_call(register, "a", "+79161234567", stored(now - timedelta(minutes=5)))
    old = add_call(register, "b", "+79035550011", stored(now - timedelta(hours=3)))
    middle = add_call(register, "c", "+79035550022", stored(now - timedelta(minutes=30)))
    data = json.loads(runner.invoke(app, ["list", "--json"]).output)
    assert [d["id"] for d in data] == [fresh, middle, old]
    waits = {d["id"]: (d["waiting_s"], d["deadline_level"]) for d in data}
    # The CLI reads the clock a moment after the rows were written: allow a minute.
    assert 300 <= waits[fresh][0] < 360 and waits[fresh][1] == 0
    assert 1800 <= waits[middle][0] < 1860 and waits[middle][1] == 1
    assert 10800 <= waits[old][0] < 10860 and waits[old][1] == 2
    by_age = json.loads(runner.invoke(app, ["list", "--json", "--sort", "age"]).output)
    assert [d["id"] for d in by_age] == [old, middle, fresh]
    bad = runner.invoke(app, ["list", "--sort", "oldest"])
    assert bad.exit_code == 2 and "use time or age" in bad.output


def test_the_table_is_coloured_by_deadline_on_a_terminal(register: Register, moscow: None) -> None:
    from rich.console import Console

    from beeline_missed.views import calls as calls_view

    now = ms(MONDAY)
    add_call(register, "a", "+79161234567", timefmt.ms_to_stored(now - 4 * 3600_000))
    rows = register.calls.rows()
    judged = limits(15, 60)
    rows = judged.annotate(rows, now)
    console = Console(width=160, force_terminal=True, color_system="standard")
    with console.capture() as capture:
        table = calls_view.CallTable(
            rows, MOSCOW, style=lambda row: deadlines.row_style(row, judged)
        )
        console.print(table)
    assert "\x1b[1;31m" in capture.get()  # bold red: past the last deadline


# -- the report's measures on a known register ----------------------------------------------

# Callback times (seconds) of the called-back calls, and what the report must count.
CALLBACKS = [60, 300, 900, 901, 1800, 3600, 3601, 5400, 7200, 86400]
PERIOD_DAY = "2026-11-10"


def fill_known(register: Register) -> None:
    """Ten calls called back after CALLBACKS seconds, two still open, one handled only after
    the period ended, and two short attempts recorded on one of the open calls."""
    start = datetime(2026, 11, 10, 6, 0, tzinfo=UTC)  # 09:00 Moscow
    for i, delay in enumerate(CALLBACKS):
        called = start + timedelta(minutes=10 * i)
        call_id = add_call(register, f"b{i}", f"+7916000000{i}", timefmt.to_stored(called))
        register.calls.save(
            call_id, 1, status="called_back", result="ok", user="Анна",
            handled_at=timefmt.to_stored(called + timedelta(seconds=delay)),
        )  # fmt: skip
    open_id = add_call(register, "m1", "+79035550011", "2026-11-10T12:00:00Z")
    add_call(register, "m2", "+79035550022", "2026-11-10T13:00:00Z")
    for session, talk in (("s1", 3), ("s2", None)):
        register.attempts.add(
            open_id, session_key=session, direction="outgoing",
            attempted_at="2026-11-10T12:30:00Z", talk_seconds=talk, who="Анна",
        )  # fmt: skip


def build(db: Path, minutes: tuple[float, ...] = (15, 60)) -> reports.Report:
    day = datetime.fromisoformat(PERIOD_DAY).date()
    spec = report_spec.Spec(
        report_spec.Period(day, day, MOSCOW), deadlines=tuple(m * 60 for m in minutes)
    )
    return reports.build_report(db, spec)


def test_deadline_measures_are_exact_on_a_known_register(register: Register, db_path: Path):
    fill_known(register)
    total = build(db_path).total.as_dict()
    assert {k: total[k] for k in total if k not in ("callers", "share_called_back")} == {
        "calls": 12,
        "called_back": 10,
        "missed": 2,
        "callback_median_seconds": 2700,  # (1800 + 3600) / 2
        "callback_max_seconds": 86400,
        "returned_within_15_min": 3,  # 60, 300, 900: the deadline itself is within
        "returned_within_60_min": 6,  # and 901, 1800, 3600
        "returned_later": 4,  # 3601, 5400, 7200, 86400
        "never_returned": 2,
        # The two open calls, and the one called back the next day (after the period's end).
        "backlog": 3,
        "callback_p90_seconds": 7200,  # nearest rank: the 9th of 10
        "attempts": 2,
    }


def test_other_deadlines_give_other_buckets(register: Register, db_path: Path) -> None:
    fill_known(register)
    total = build(db_path, (5, 30, 120)).total.as_dict()
    keys = ("returned_within_5_min", "returned_within_30_min", "returned_within_120_min")
    assert [total[k] for k in (*keys, "returned_later")] == [2, 5, 9, 1]


def test_the_distribution_puts_each_call_in_one_bucket(register: Register, db_path: Path):
    from beeline_missed.reports import formats as report_formats

    fill_known(register)
    assert report_formats.distribution(build(db_path).total) == [
        ("до 15 мин", 3),
        ("15–60 мин", 3),
        ("позже 60 мин", 4),
        ("не перезвонили", 2),
    ]
    line = report_formats.deadline_summary(build(db_path))
    assert line == (
        "Перезвонили ≤ 15 мин: 3 · ≤ 60 мин: 6 · позже: 4 · не перезвонили: 2 · "
        "открыты на конец периода: 3 · 90-й перцентиль: 2 ч 00 мин · попыток без разговора: 2"
    )


def test_equal_ages_and_handled_rows_sort_oldest_first_then_by_id() -> None:
    # Shop opens at 09:00 Moscow; judged at 09:00, two callers of 08:30 and 08:50 have both
    # waited no working time: the earlier caller still comes first, ahead of handled rows.
    shop = shop_hours(mon="09:00-19:00")
    now = ms(datetime(2026, 11, 30, 9, 0, tzinfo=MOSCOW))
    at = lambda minutes: timefmt.ms_to_stored(now - minutes * 60_000)  # noqa: E731
    rows = [
        call_row(id=1, status=CallStatus.CALLED_BACK, called_at=at(60)),
        call_row(id=2, status=CallStatus.CALLED_BACK, called_at=at(180)),
        # Handled, last called 10 minutes ago, but the caller first called 2 hours ago.
        call_row(id=3, status=CallStatus.CALLED_BACK, called_at=at(10),
                 first_called_at=at(120)),
        call_row(id=4, status=CallStatus.MISSED, called_at=at(10)),
        call_row(id=5, status=CallStatus.MISSED, called_at=at(30)),
        call_row(id=7, status=CallStatus.MISSED, called_at=at(30)),
        call_row(id=6, status=CallStatus.MISSED, called_at=at(30)),
    ]  # fmt: skip
    rows = limits(15, 60, hours_=shop).annotate(rows, now)
    waits = {r.id: r.waiting_s for r in rows if r.waiting_s is not None}
    assert waits == {4: 0, 5: 0, 6: 0, 7: 0}
    assert [r.id for r in deadlines.sort_rows(rows, "age")] == [5, 6, 7, 4, 2, 3, 1]


def test_a_handled_or_unannotated_row_has_no_style() -> None:
    judged = limits(15, 60)
    assert deadlines.row_style(call_row(id=1, deadline_level=None), judged) is None
    assert deadlines.row_style(call_row(id=1, deadline_level=1), judged) == "yellow"


def test_a_case_handled_since_it_was_annotated_loses_its_wait_and_level() -> None:
    now = ms(MONDAY)
    waiting = call_row(
        id=1, status=CallStatus.MISSED, called_at=timefmt.ms_to_stored(now - 7_200_000)
    )
    judged = limits(15, 60)
    aged = judged.annotate_one(waiting, now)
    assert (aged.waiting_s, aged.deadline_level) == (7200, 2)
    # The panel keeps its rows between refreshes: the same row, now called back.
    handled = judged.annotate_one(replace(aged, status=CallStatus.CALLED_BACK), now)
    assert (handled.waiting_s, handled.deadline_level) == (None, None)
