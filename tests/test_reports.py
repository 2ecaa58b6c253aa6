"""The report engine on a known register: exact figures, local-time buckets, filters, errors."""

from __future__ import annotations

import sqlite3
import statistics
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beeline_missed.errors import UserError
from beeline_missed.reports import engine as reports
from beeline_missed.reports import spec as report_spec
from beeline_missed.store import Register
from tests.support.factories import add_call
from tests.support.report_data import A, B, C, fill

pytestmark = pytest.mark.both_engines

MOSCOW = ZoneInfo("Europe/Moscow")


@pytest.fixture
def filled(register: Register, db_path: Path) -> Path:
    fill(register)
    return db_path


def run(db: Path, first: str, last: str, group_by=(), where=(), zone=MOSCOW) -> reports.Report:
    period = report_spec.Period(date.fromisoformat(first), date.fromisoformat(last), zone)
    filters = tuple(report_spec.parse_where(text) for text in where)
    return reports.build_report(db, report_spec.Spec(period, tuple(group_by), filters, "test"))


def figures(m: reports.Measures) -> tuple:
    return (
        m.calls,
        m.callers,
        m.called_back,
        m.missed,
        m.callback_median_seconds,
        m.callback_max_seconds,
    )


def by_keys(report: reports.Report) -> dict[tuple, tuple]:
    return {g.keys: figures(g.measures) for g in report.walk()}


def test_total_of_the_known_register(filled: Path) -> None:
    report = run(filled, "2026-10-01", "2026-11-30")
    # Callers A, B, C (the hidden number is not a caller); times 600, 1800, 3600, 7200.
    assert figures(report.total) == (6, 3, 4, 2, 2700.0, 7200)
    assert report.total.share_called_back == pytest.approx(4 / 6)
    assert report.groups == []


def test_weeks_nested_with_users_subtotals_in_local_time(filled: Path) -> None:
    report = run(filled, "2026-10-26", "2026-11-08", ["week", "user"])
    assert by_keys(report) == {
        # Mon 26.10 – Sun 01.11 local: k1 (Sun 23:30), k3 (Sun 00:00), k4 (Sat 23:59:59).
        ("2026-10-26",): (3, 2, 2, 1, 2100.0, 3600),
        ("2026-10-26", "Иванов"): (1, 1, 1, 0, 600.0, 600),
        ("2026-10-26", "Петрова"): (1, 1, 1, 0, 3600.0, 3600),
        ("2026-10-26", None): (1, 1, 0, 1, None, None),
        # From Mon 02.11 00:30 local (still Sunday in UTC): k2, k5, k6.
        ("2026-11-02",): (3, 2, 2, 1, 4500.0, 7200),
        ("2026-11-02", "Иванов"): (1, 1, 1, 0, 1800.0, 1800),
        ("2026-11-02", "Петрова"): (1, 0, 1, 0, 7200.0, 7200),
        ("2026-11-02", None): (1, 1, 0, 1, None, None),
    }
    assert [g.keys for g in report.walk()] == [
        ("2026-10-26",),
        ("2026-10-26", "Иванов"),
        ("2026-10-26", "Петрова"),
        ("2026-10-26", None),
        ("2026-11-02",),
        ("2026-11-02", "Иванов"),
        ("2026-11-02", "Петрова"),
        ("2026-11-02", None),
    ]
    assert figures(report.total) == (6, 3, 4, 2, 2700.0, 7200)


def test_distinct_callers_of_a_subtotal_are_not_the_sum_of_its_children(filled: Path) -> None:
    report = run(filled, "2026-10-01", "2026-11-30", ["month", "status"])
    nov = by_keys(report)
    # November: A calls twice (called back both times), B once (missed), C once (missed).
    assert nov[("2026-11",)] == (5, 3, 3, 2, 1800.0, 7200)
    assert nov[("2026-11", "called_back")][1] == 1
    assert nov[("2026-11", "missed")][1] == 2
    # October holds only k4: k3 is October in UTC but 1 November 00:00 in Moscow.
    assert nov[("2026-10",)] == (1, 1, 1, 0, 3600.0, 3600)


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("day", {"2026-10-31": 1, "2026-11-01": 2, "2026-11-02": 2, "2026-11-03": 1}),
        ("weekday", {1: 2, 2: 1, 6: 1, 7: 2}),
        ("hour", {0: 2, 10: 1, 12: 1, 23: 2}),
        ("handled", {"2026-11-01": 2, "2026-11-02": 2, None: 2}),
        ("phone", {A: 2, B: 2, C: 1, None: 1}),
        ("client", {"ООО Ромашка": 1, None: 5}),
        ("line", {"200": 5, "201": 1}),
        ("closed_by", {"auto": 1, "staff": 3, None: 2}),
        ("outside_hours", {0: 2, 1: 4}),
        ("source", {"hook": 6}),
        ("result", {"": 3, "Записан на ремонт": 1, "Консультация": 1, "Отказ": 1}),
    ],
)
def test_every_field_groups(filled: Path, field: str, expected: dict) -> None:
    report = run(filled, "2026-10-01", "2026-11-30", [field])
    assert {g.keys[0]: g.measures.calls for g in report.groups} == expected
    assert report.total.calls == 6


@pytest.mark.parametrize(
    ("where", "calls"),
    [
        (["status = missed"], 2),
        (["status = Пропущен"], 2),
        (["status = перезвонили"], 4),
        (["status != called_back"], 2),
        (["user = Иванов"], 2),
        (["user != Иванов"], 4),  # calls nobody handled are "not Иванов" too
        (["user = ''"], 2),
        (["client ~ ромашка"], 1),  # Cyrillic, any case
        (["client !~ РОМАШКА"], 5),
        (["phone = 8 (916) 123-45-67"], 2),
        (["phone = hidden"], 1),
        (["phone ~ 4951"], 1),
        (["result ~ ЗАП"], 1),
        (["closed_by = автоматически"], 1),
        (["handled = 02.11.2026"], 2),
        (["day >= 2026-11-02"], 3),
        (["week = 2026-11-04"], 3),  # any day names its week
        (["month = 10.2026"], 1),
        (["weekday = Вс"], 2),
        (["hour < 1"], 2),
        (["outside_hours = да"], 4),
        (["status = called_back", "user = Петрова"], 2),
        (["status = called_back", "user = Петрова", "closed_by = staff"], 1),
    ],
)
def test_filters(filled: Path, where: list[str], calls: int) -> None:
    assert run(filled, "2026-10-01", "2026-11-30", where=where).total.calls == calls


def test_period_bounds_are_local_days(filled: Path) -> None:
    # 1 November local starts at 31.10 21:00 UTC: k3 is in, k4 (20:59:59 UTC) is not.
    report = run(filled, "2026-11-01", "2026-11-01", ["phone"])
    assert {g.keys[0]: g.measures.calls for g in report.groups} == {A: 1, B: 1}
    assert run(filled, "2026-10-31", "2026-10-31").total.calls == 1


def test_an_empty_result_is_zeros_not_an_error(filled: Path) -> None:
    report = run(filled, "2026-12-01", "2026-12-31", ["user"])
    assert report.groups == []
    assert figures(report.total) == (0, 0, 0, 0, None, None)
    assert report.total.share_called_back is None


def test_json_shape(filled: Path) -> None:
    data = run(filled, "2026-10-26", "2026-11-08", ["week", "user"]).as_json()
    assert data["period"] == {"from": "2026-10-26", "to": "2026-11-08", "timezone": "test"}
    assert data["group_by"] == ["week", "user"]
    assert len(data["rows"]) == 6
    assert data["rows"][0] == {
        "week": "2026-10-26",
        "user": "Иванов",
        "calls": 1,
        "callers": 1,
        "called_back": 1,
        "missed": 0,
        "share_called_back": 1.0,
        "callback_median_seconds": 600,
        "callback_max_seconds": 600,
        "returned_within_15_min": 1,
        "returned_within_60_min": 1,
        "returned_later": 0,
        "never_returned": 0,
        "backlog": 0,
        "callback_p90_seconds": 600,
        "attempts": 0,
    }
    assert [s["week"] for s in data["subtotals"]] == ["2026-10-26", "2026-11-02"]
    assert data["subtotals"][1]["callback_median_seconds"] == 4500
    assert data["total"]["share_called_back"] == 0.6667


BIG = 2400  # calls, one every 30 minutes from 1 November 00:00 UTC: 50 days


def fill_evenly(register: Register, count: int = BIG) -> dict[str, int]:
    """`count` calls, oldest first (so the newest have the highest rowids); calls per local day."""
    start = datetime(2026, 11, 1, tzinfo=UTC)
    per_day: dict[str, int] = {}
    saves = []
    with register.transaction():
        for i in range(count):
            moment = start + timedelta(minutes=30 * i)
            call_id = register.calls.insert(
                session_key=f"big{i}",
                phone=f"+7916{i % 97:07d}",
                phone_raw="",
                called_at=moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
                line=str(200 + i % 3),
            )
            assert call_id is not None
            day = moment.astimezone(MOSCOW).date().isoformat()
            per_day[day] = per_day.get(day, 0) + 1
            # Every fifth call was called back, id * 10 s after it came in.
            if call_id % 5 == 0:
                handled = moment + timedelta(seconds=call_id * 10)
                saves.append(
                    {
                        "call_id": call_id,
                        "expected_version": 1,
                        "status": "called_back",
                        "result": "ok",
                        "user": "Анна",
                        "handled_at": handled.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "closed_by": "staff",
                    }
                )
        register.calls.save_many(saves)
    return per_day


@pytest.mark.sqlite_only  # rowid slices: SQLite only
@pytest.mark.parametrize("cpus", [None, 1, 2, 3, 4, 64])
def test_parallel_slices_lose_no_call_not_even_the_newest(
    register: Register, db_path: Path, monkeypatch: pytest.MonkeyPatch, cpus: int | None
) -> None:
    per_day = fill_evenly(register)
    serial = run(db_path, "2026-11-01", "2026-12-31", ["day", "line"])
    # The register is over the (lowered) threshold, so the scan is split in slices by rowid:
    # 3 per thread, up to 4 threads. The last slice holds the newest calls.
    monkeypatch.setattr(reports, "PARALLEL_MIN_ROWS", BIG)
    monkeypatch.setattr(reports.os, "cpu_count", lambda: cpus)
    opened: list[Path] = []
    real_open = reports._open

    def counting_open(path: Path) -> sqlite3.Connection:
        opened.append(path)
        return real_open(path)

    monkeypatch.setattr(reports, "_open", counting_open)
    sliced = run(db_path, "2026-11-01", "2026-12-31", ["day", "line"])
    for report in (serial, sliced):
        assert report.total.calls == BIG
        assert report.total.callers == 97
        assert (report.total.called_back, report.total.missed) == (BIG // 5, BIG - BIG // 5)
        assert {g.keys[0]: g.measures.calls for g in report.groups} == per_day
    assert sliced.groups[-1].keys == (max(per_day),)
    assert sliced.as_json() == serial.as_json()
    threads = min(cpus or 1, 4)  # cpu_count() may not know: then one thread
    # The slices really ran, each on its own connection (one thread: one scan, no slices).
    assert len(opened) == (1 if threads == 1 else 1 + 3 * threads)


def test_below_the_threshold_one_scan_reads_everything(
    register: Register, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill_evenly(register)
    monkeypatch.setattr(reports, "PARALLEL_MIN_ROWS", BIG + 1)
    monkeypatch.setattr(reports.os, "cpu_count", lambda: 4)
    opened: list[Path] = []
    real_open = reports._open
    monkeypatch.setattr(reports, "_open", lambda path: opened.append(path) or real_open(path))
    assert run(db_path, "2026-11-01", "2026-12-31").total.calls == BIG
    assert len(opened) == 1


def test_resolve_named_periods() -> None:
    today = date(2026, 1, 14)  # a Wednesday
    resolve = report_spec.resolve_period

    def days(name: str) -> tuple[date, date]:
        period = resolve(name, None, None, MOSCOW, today)
        return period.first, period.last

    assert days("today") == (today, today)
    assert days("yesterday") == (date(2026, 1, 13), date(2026, 1, 13))
    assert days("week") == (date(2026, 1, 12), date(2026, 1, 18))
    assert days("last-week") == (date(2026, 1, 5), date(2026, 1, 11))
    assert days("month") == (date(2026, 1, 1), date(2026, 1, 31))
    assert days("last-month") == (date(2025, 12, 1), date(2025, 12, 31))
    feb = resolve("month", None, None, MOSCOW, date(2028, 2, 10))
    assert (feb.first, feb.last) == (date(2028, 2, 1), date(2028, 2, 29))
    period = resolve(None, "01.11.2026", "2026-11-30", MOSCOW, today)
    assert period.start_utc == datetime(2026, 10, 31, 21, tzinfo=UTC)
    assert period.end_utc == datetime(2026, 11, 30, 21, tzinfo=UTC)
    assert resolve(None, "2026-01-10", None, MOSCOW, today).last == today


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("fortnight", None, None), "Unknown period 'fortnight'"),
        ((None, "2026-11-30", "2026-11-01"), "The period is empty"),
        ((None, "2026-02-30", None), "Bad --from date '2026-02-30'"),
        ((None, "yesterday", None), "Bad --from date"),
        ((None, None, "2026-11-01"), "--to needs --from"),
        (("week", "2026-11-01", None), "either --period or --from/--to"),
    ],
)
def test_bad_periods(args: tuple, message: str) -> None:
    with pytest.raises(UserError, match=message):
        report_spec.resolve_period(*args, MOSCOW, date(2026, 11, 27))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour = red", "Unknown field 'colour'"),
        ("user ^ x", "Bad filter"),
        ("status ~ miss", "works on text fields only"),
        ("status > missed", "does not apply to status"),
        ("status = lost", "Bad status 'lost'"),
        ("day = 31.02.2026", "Bad date"),
        ("hour = 25", "Bad hour"),
        ("weekday = 8", "Bad weekday"),
        ("phone = nope", "is not a phone number"),
        ("month = November", "Bad month"),
    ],
)
def test_bad_filters(text: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        report_spec.parse_where(text)


def test_unknown_or_repeated_group_field(filled: Path) -> None:
    with pytest.raises(UserError, match="Unknown field 'colour'"):
        run(filled, "2026-11-01", "2026-11-30", ["colour"])
    with pytest.raises(UserError, match="given twice"):
        run(filled, "2026-11-01", "2026-11-30", ["user", "user"])


def test_offset_changes_inside_the_period_are_honoured(register: Register, db_path: Path) -> None:
    """New York moves to summer time on 8 March 2026 at 07:00 UTC."""
    zone = ZoneInfo("America/New_York")
    start = datetime(2026, 3, 1, 5, tzinfo=UTC)
    end = datetime(2026, 3, 15, 4, tzinfo=UTC)
    assert report_spec.offset_segments(zone, start, end) == [
        ("2026-02-28T05:00:00Z", "-300 minutes"),
        ("2026-03-08T07:00:00Z", "-240 minutes"),
    ]
    for key, called_at in [
        ("winter", "2026-03-07T04:30:00Z"),  # 23:30 on the 6th (EST)
        ("summer", "2026-03-09T04:30:00Z"),  # 00:30 on the 9th (EDT); EST would say the 8th
    ]:
        with register.transaction():
            register.calls.insert(
                session_key=key, phone=A, phone_raw=A, called_at=called_at, line="1"
            )
    report = run(db_path, "2026-03-01", "2026-03-14", ["day"], zone=zone)
    assert [g.keys[0] for g in report.groups] == ["2026-03-06", "2026-03-09"]


def test_moscow_has_one_offset(filled: Path) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    segments = report_spec.offset_segments(MOSCOW, start, datetime(2026, 12, 31, tzinfo=UTC))
    assert [modifier for _, modifier in segments] == ["+180 minutes"]


def test_a_missing_register_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="There is no register"):
        run(tmp_path / "none.sqlite", "2026-11-01", "2026-11-30")


def test_display_values() -> None:
    fields = report_spec.FIELDS
    assert fields["week"].display("2026-10-26") == "26.10–01.11.2026"
    assert fields["month"].display("2026-11") == "ноябрь 2026"
    assert fields["weekday"].display(7) == "Вс"
    assert fields["hour"].display(23) == "23:00–00:00"
    assert fields["status"].display("called_back") == "Перезвонили"
    assert fields["phone"].display(None) == "номер скрыт"
    assert fields["user"].display(None) == "—"


def test_a_subtotal_whose_first_group_has_no_caller(filled: Path) -> None:
    # The hidden number's group (no caller, one callback) sorts first in SQL; it must not
    # hide its siblings' callers and times from the month's subtotal.
    groups = by_keys(run(filled, "2026-11-01", "2026-11-30", ["month", "phone"]))
    assert groups[("2026-11", None)] == (1, 0, 1, 0, 7200.0, 7200)
    assert groups[("2026-11",)] == (5, 3, 3, 2, 1800.0, 7200)


@given(st.lists(st.lists(st.integers(0, 10**7), max_size=30), max_size=12))
def test_median_across_sorted_runs_equals_the_merged_median(runs: list[list[int]]) -> None:
    merged = sorted(v for run in runs for v in run)
    median, longest = reports._median_of_runs([sorted(run) for run in runs])
    if not merged:
        assert (median, longest) == (None, None)
    else:
        assert median == statistics.median(merged)
        assert longest == merged[-1]


def test_a_register_still_being_created_reads_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    sqlite3.connect(path).close()  # the file exists, the migrations have not run yet
    report = run(path, "2026-11-01", "2026-11-30", ["user"], ["line = 200"])
    assert report.groups == []
    assert figures(report.total) == (0, 0, 0, 0, None, None)
    # Still a whole report of its period, fields and filters, only empty.
    assert (report.period.first, report.period.last) == (date(2026, 11, 1), date(2026, 11, 30))
    assert [f.name for f in report.group_by] == ["user"]
    assert [f.describe() for f in report.filters] == ["line = 200"]
    assert report.zone_name == "test"


def test_a_register_that_cannot_be_opened_is_one_sentence(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(UserError) as caught:
        run(folder, "2026-11-01", "2026-11-30")
    assert str(caught.value).startswith(f"Cannot open the register {folder}: ")


def test_two_changes_of_offset_in_one_period(register: Register, db_path: Path) -> None:
    """New York: summer time from 8 March 07:00 UTC to 1 November 06:00 UTC (2026)."""
    zone = ZoneInfo("America/New_York")
    calls = {
        "2026-03-07T04:30:00Z": "2026-03-06",  # 23:30 EST
        "2026-03-09T04:30:00Z": "2026-03-09",  # 00:30 EDT; EST would say the 8th
        "2026-10-31T04:30:00Z": "2026-10-31",  # 00:30 EDT; EST would say the 30th
        "2026-11-02T04:30:00Z": "2026-11-01",  # 23:30 EST; EDT would say the 2nd
    }
    for i, called_at in enumerate(calls):
        row = add_call(register, f"ny{i}", A, called_at)
        handled = datetime.fromisoformat(called_at) + timedelta(minutes=10)
        register.calls.save(
            row, 1, status="called_back", result="ok", user="Анна",
            handled_at=handled.strftime("%Y-%m-%dT%H:%M:%SZ"), closed_by="staff",
        )  # fmt: skip
    by_day = run(db_path, "2026-03-01", "2026-11-30", ["day"], zone=zone)
    assert [g.keys[0] for g in by_day.groups] == list(calls.values())
    # The callback times (10 minutes later) fall on the same local days.
    by_handled = run(db_path, "2026-03-01", "2026-11-30", ["handled"], zone=zone)
    assert [g.keys[0] for g in by_handled.groups] == list(calls.values())


# -- each rule, checked so that a wrong value fails ------------------------------------------


def test_period_labels() -> None:
    one = report_spec.Period(date(2026, 11, 1), date(2026, 11, 1), MOSCOW)
    assert one.label() == "01.11.2026"
    two = report_spec.Period(date(2026, 11, 1), date(2026, 11, 30), MOSCOW)
    assert two.label() == "01.11.2026 – 30.11.2026"


@pytest.mark.parametrize("name", [None, "today", "yesterday", "week", "last-week", "month"])
def test_every_named_period_keeps_its_zone(name: str | None) -> None:
    zone = ZoneInfo("Asia/Vladivostok")
    period = report_spec.resolve_period(name, None, None, zone, date(2026, 1, 14))
    assert period.zone is zone
    if name is None:
        assert (period.first, period.last) == (date(2026, 1, 14), date(2026, 1, 14))
    assert (
        report_spec.resolve_period("last-month", None, None, zone, date(2026, 1, 14)).zone is zone
    )
    assert (
        report_spec.resolve_period(None, "2026-01-01", None, zone, date(2026, 1, 14)).zone is zone
    )


def test_today_is_the_date_in_the_reports_zone() -> None:
    # UTC+14 and UTC-12 never share a date: at least one differs from the machine's.
    for name in ("Etc/GMT-14", "Etc/GMT+12"):
        zone = ZoneInfo(name)
        assert report_spec.resolve_period(None, None, None, zone).first == datetime.now(zone).date()


def test_a_one_day_range_and_the_sentences_of_bad_ranges() -> None:
    today = date(2026, 11, 27)
    day = report_spec.resolve_period(None, "27.11.2026", "2026-11-27", MOSCOW, today)
    assert (day.first, day.last) == (today, today)
    cases = [
        (("week", "2026-11-01", None), "Give either --period or --from/--to, not both."),
        ((None, None, "2026-11-01"), "--to needs --from."),
        ((None, "2026-11-01", "2026-13-01"),
         "Bad --to date '2026-13-01': use YYYY-MM-DD or DD.MM.YYYY."),
        (("fortnight", None, None), "Unknown period 'fortnight'; use one of: today, yesterday, "
         "week, last-week, month, last-month."),
        ((None, "2026-11-28", "2026-11-27"),
         "The period is empty: --from 2026-11-28 is after --to 2026-11-27."),
    ]  # fmt: skip
    for args, message in cases:
        with pytest.raises(UserError) as caught:
            report_spec.resolve_period(*args, MOSCOW, today)
        assert str(caught.value) == message


def test_values_as_people_read_them() -> None:
    fields = report_spec.FIELDS
    assert fields["day"].display("2026-11-01") == "01.11.2026"
    assert fields["handled"].display(None) == "—"
    assert fields["day"].display("") == "—"
    assert fields["hour"].display(None) == "—"
    assert fields["hour"].display(0) == "00:00–01:00"
    assert fields["weekday"].display(None) == "—"
    assert fields["weekday"].display(1) == "Пн"
    assert fields["phone"].display(A) == "+7 916 123-45-67"
    assert fields["line"].display("") == "—"
    assert fields["line"].display(0) == "0"
    assert fields["user"].display("Анна") == "Анна"
    assert fields["closed_by"].display("auto") == "автоматически"
    assert fields["closed_by"].display(None) == "—"
    assert fields["outside_hours"].display(1) == "да"
    assert fields["outside_hours"].display(0) == "нет"


@pytest.mark.parametrize(
    ("field", "text", "stored"),
    [
        ("month", "2026-11", "2026-11"),
        ("month", " 11.2026 ", "2026-11"),
        ("day", "01.11.2026", "2026-11-01"),
        ("week", "2026-11-08", "2026-11-02"),
        ("hour", "0", 0),
        ("hour", "23", 23),
        ("hour", "10:30", 10),
        ("hour", "10:30:00", 10),
        ("weekday", "1", 1),
        ("weekday", "7", 7),
        ("weekday", "3", 3),
        ("weekday", "ПН", 1),
        ("weekday", "sunday", 7),
        ("status", "  Called_Back ", "called_back"),
        ("status", "ПЕРЕЗВОНИЛИ", "called_back"),
        ("closed_by", "Вручную", "staff"),
        ("source", "hook", "hook"),
        ("phone", "скрыт", None),
        ("phone", " Номер скрыт ", None),
        ("phone", "HIDDEN", None),
        ("phone", "8 916 123 45 67", A),
        *[("outside_hours", word, 1) for word in ("1", "yes", "TRUE", "Да")],
        *[("outside_hours", word, 0) for word in ("0", "No", "false", "НЕТ")],
    ],
)
def test_filter_values_are_read_into_stored_values(field: str, text: str, stored: object) -> None:
    parse = report_spec.FIELDS[field].parse
    assert parse is not None
    assert parse(text) == stored


@pytest.mark.parametrize(
    ("field", "text", "message"),
    [
        ("hour", "24", "Bad hour '24': use a number from 0 to 23."),
        ("hour", "-1", "Bad hour '-1': use a number from 0 to 23."),
        ("weekday", "0", "Bad weekday '0': use 1 (Monday) to 7, or Пн … Вс."),
        ("weekday", "8", "Bad weekday '8': use 1 (Monday) to 7, or Пн … Вс."),
        ("month", "2026/11", "Bad month '2026/11': use YYYY-MM or MM.YYYY."),
        ("status", "lost",
         "Bad status 'lost': use one of missed (Пропущен), called_back (Перезвонили)."),
        ("outside_hours", "maybe", "Bad yes/no value 'maybe': use yes or no (да/нет, 1/0)."),
        ("phone", "nope", "'nope' is not a phone number (use 'hidden' for hidden numbers)."),
    ],
)  # fmt: skip
def test_bad_filter_values_are_exact_sentences(field: str, text: str, message: str) -> None:
    parse = report_spec.FIELDS[field].parse
    assert parse is not None
    with pytest.raises(UserError) as caught:
        parse(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('user = "Иванов"', "Иванов"),
        ("user = 'Иванов'", "Иванов"),
        ("user = ''", ""),
        ("user = 'a\"", "'a\""),
        ("user = XИвановX", "XИвановX"),
        ("user = 'Иванов", "'Иванов"),
        ("user = '", "'"),
        ("result ~ «Записан»", "«Записан»"),
    ],
)
def test_only_matching_quotes_around_a_value_are_removed(text: str, value: str) -> None:
    assert report_spec.parse_where(text).value == value


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("user", "==", "x"), "Unknown operator '=='; use one of != !~ <= >= = ~ < >."),
        (("status", "~", "x"),
         "Operator ~ works on text fields only (phone, client, line, result, user, "
         "forwarded_to)."),
        (("hour", "!~", "1"),
         "Operator !~ works on text fields only (phone, client, line, result, user, "
         "forwarded_to)."),
        *[(("closed_by", op, "auto"), f"Operator {op} does not apply to closed_by; use = or !=.")
          for op in ("<", "<=", ">", ">=")],
    ],
)  # fmt: skip
def test_operators_that_do_not_apply_are_exact_sentences(args: tuple, message: str) -> None:
    with pytest.raises(UserError) as caught:
        report_spec.make_filter(*args)
    assert str(caught.value) == message
    with pytest.raises(UserError) as caught:
        report_spec.parse_where("user ^ x")
    assert str(caught.value) == (
        "Bad filter 'user ^ x': use FIELD OP VALUE with OP one of != !~ <= >= = ~ < >."
    )


def test_values_are_checked_only_where_they_are_parsed() -> None:
    assert report_spec.make_filter("hour", "=", "").value == ""  # empty: not parsed
    assert report_spec.make_filter("phone", "!~", "abc").value == "abc"  # contains: raw text
    assert report_spec.make_filter("phone", "~", "abc").value == "abc"


def test_contains_is_unknown_when_either_side_is_missing() -> None:
    assert reports._icontains(None, "x") is None
    assert reports._icontains("x", None) is None
    assert reports._icontains("Ромашка", "РОМ") == 1
    assert reports._icontains("Ромашка", "лютик") == 0


@pytest.mark.parametrize(
    ("where", "calls"),
    [
        (["user != ''"], 4),
        (["phone != hidden"], 5),
        (["hour > 12"], 2),
        (["hour >= 12"], 3),
        (["hour < 10"], 2),
        (["hour <= 10"], 3),
        (["day = 01.11.2026"], 2),
    ],
)
def test_more_filters(filled: Path, where: list[str], calls: int) -> None:
    assert run(filled, "2026-10-01", "2026-11-30", where=where).total.calls == calls


def test_hidden_numbers_take_only_equal_or_not(filled: Path) -> None:
    with pytest.raises(UserError) as caught:
        run(filled, "2026-10-01", "2026-11-30", where=["phone < hidden"])
    assert str(caught.value) == "Operator < does not apply to hidden numbers."


def test_empty_measures_and_leaves_and_title(filled: Path) -> None:
    assert reports.Measures().as_dict() == {
        "calls": 0,
        "callers": 0,
        "called_back": 0,
        "missed": 0,
        "share_called_back": None,
        "callback_median_seconds": None,
        "callback_max_seconds": None,
        "returned_within_15_min": 0,
        "returned_within_60_min": 0,
        "returned_later": 0,
        "never_returned": 0,
        "backlog": 0,
        "callback_p90_seconds": None,
        "attempts": 0,
    }
    report = run(filled, "2026-10-26", "2026-11-08", ["week", "user"], ["line = 200"])
    assert [g.keys for g in report.leaves()] == [
        ("2026-10-26", "Иванов"),
        ("2026-10-26", "Петрова"),
        ("2026-10-26", None),
        ("2026-11-02", "Иванов"),
        ("2026-11-02", "Петрова"),
    ]
    assert report.title() == "Пропущенные звонки за 26.10.2026 – 08.11.2026 (line = 200)"
    both = run(filled, "2026-11-01", "2026-11-01", where=["line = 200", "user ~ ива"])
    assert both.title() == "Пропущенные звонки за 01.11.2026 (line = 200; user ~ ива)"
    assert run(filled, "2026-11-01", "2026-11-01").title() == "Пропущенные звонки за 01.11.2026"
    data = report.as_json()
    assert data["filters"] == ["line = 200"]
    assert [(s["level"], s["week"]) for s in data["subtotals"]] == [
        (1, "2026-10-26"),
        (1, "2026-11-02"),
    ]
    assert "user" not in data["subtotals"][0]


def test_outside_hours_is_true_or_false_in_json(filled: Path) -> None:
    data = run(filled, "2026-10-01", "2026-11-30", ["outside_hours", "user"]).as_json()
    assert [(r["outside_hours"], r["user"], r["calls"]) for r in data["rows"]] == [
        (False, "Петрова", 1),
        (False, None, 1),
        (True, "Иванов", 2),
        (True, "Петрова", 1),
        (True, None, 1),
    ]
    assert [s["outside_hours"] for s in data["subtotals"]] == [False, True]
    # JSON true/false, not 1/0 (which compare equal to True/False in Python).
    assert {type(r["outside_hours"]) for r in data["rows"] + data["subtotals"]} == {bool}
    handled = run(filled, "2026-10-01", "2026-11-30", ["handled"]).as_json()
    assert handled["rows"][-1]["handled"] is None


def test_rolled_up_groups_keep_no_working_sets(filled: Path) -> None:
    report = run(filled, "2026-10-01", "2026-11-30", ["month", "phone"])
    groups = list(report.walk())
    assert groups
    for group in groups:
        assert (group._phones, group._times, group._runs) == (set(), [], [])


def test_a_choice_parser_takes_the_stored_value_or_the_label_in_any_case() -> None:
    parse = report_spec._parse_choice({"staff": "Вручную", "auto": "автоматически"}, "closed_by")
    assert parse("  STAFF ") == "staff"
    assert parse("вручную") == "staff"
    assert parse("Автоматически") == "auto"
    with pytest.raises(UserError) as caught:
        parse("robot")
    assert str(caught.value) == (
        "Bad closed_by 'robot': use one of staff (Вручную), auto (автоматически)."
    )


def test_field_names_aliases_and_dashes() -> None:
    assert report_spec.get_field(" Outside-Hours ").name == "outside_hours"
    assert report_spec.get_field("date").name == "day"
    assert report_spec.get_field("handled-date").name == "handled"
    assert report_spec.get_field("closed").name == "closed_by"
    assert report_spec.get_field("lost").name == "lost_at"
    assert report_spec.get_field("forwarded").name == "forwarded_to"
    with pytest.raises(UserError) as caught:
        report_spec.get_field("colour")
    assert str(caught.value) == (
        "Unknown field 'colour'; fields are: day, week, month, hour, weekday, phone, client, "
        "line, status, result, user, handled, closed_by, source, outside_hours, lost_at, "
        "forwarded_to."
    )


@pytest.mark.sqlite_only  # rowid slices: SQLite only
def test_the_period_size_estimate(register: Register, db_path: Path) -> None:
    # Four calls at 0, 1, 2 and 3 s: the table spans 4 s (the last second counts).
    for second in range(4):
        add_call(register, f"e{second}", A, f"2026-11-27T08:00:0{second}Z")
    conn = reports._open(db_path)
    try:

        def size(start: str, end: str) -> tuple[int, int, int]:
            return reports._range_size(conn, f"2026-11-27T{start}Z", f"2026-11-27T{end}Z")

        assert size("00:00:00", "23:59:59") == (4, 1, 4)  # all of it
        assert size("08:00:00", "08:00:02") == (2, 1, 4)  # 2 s of 4: half of the rows
        assert size("08:00:02", "08:00:10") == (2, 1, 4)  # from 2 s to the end: half again
        assert size("09:00:00", "10:00:00") == (0, 1, 4)  # after the last call: none
        assert size("07:00:00", "08:00:00") == (0, 1, 4)  # before the first: none
    finally:
        conn.close()


def test_an_empty_register_is_one_scan_whatever_the_threshold(
    register: Register, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reports, "PARALLEL_MIN_ROWS", 1)
    monkeypatch.setattr(reports.os, "cpu_count", lambda: 4)
    opened: list[Path] = []
    real_open = reports._open
    monkeypatch.setattr(reports, "_open", lambda path: opened.append(path) or real_open(path))
    assert run(db_path, "2026-11-01", "2026-11-30").total.calls == 0
    assert len(opened) == 1


def test_offset_segments_in_utc_and_at_the_edges_of_a_period() -> None:
    start = datetime(2026, 3, 1, 8, tzinfo=UTC)
    assert report_spec.offset_segments(UTC, start, datetime(2026, 12, 1, tzinfo=UTC)) == [
        ("2026-02-28T08:00:00Z", "+0 minutes")
    ]
    # A change 24 hours after the end (8 March 07:00 UTC) is not the period's.
    york = ZoneInfo("America/New_York")
    end = datetime(2026, 3, 7, 8, tzinfo=UTC)
    assert report_spec.offset_segments(york, start, end) == [
        ("2026-02-28T08:00:00Z", "-300 minutes")
    ]


def test_every_change_of_offset_is_found_to_the_second() -> None:
    zone = ZoneInfo("America/New_York")
    start = datetime(2020, 1, 1, 5, tzinfo=UTC)
    end = datetime(2027, 1, 1, 5, tzinfo=UTC)
    # An independent count: New York changes on the hour, so try every hour.
    expected = []
    hour = start - timedelta(days=1)
    previous = None
    while hour < end:
        minutes = int(hour.astimezone(zone).utcoffset().total_seconds() // 60)
        if minutes != previous:
            expected.append((hour.strftime("%Y-%m-%dT%H:%M:%SZ"), f"{minutes:+d} minutes"))
            previous = minutes
        hour += timedelta(hours=1)
    assert len(expected) == 15  # the first, then two changes a year for seven years
    assert report_spec.offset_segments(zone, start, end) == expected
    # Wherever the day-long steps start, each change is pinned to its exact second.
    for shift in (
        timedelta(minutes=17, seconds=23),
        timedelta(hours=5, seconds=59),
        timedelta(hours=11, minutes=1, seconds=1),
        timedelta(hours=19, seconds=31),
    ):
        assert report_spec.offset_segments(zone, start + shift, end)[1:] == expected[1:], shift


def test_a_period_covers_utc_instants() -> None:
    period = report_spec.Period(date(2026, 11, 1), date(2026, 11, 30), MOSCOW)
    assert period.start_utc.utcoffset() == timedelta(0)
    assert period.end_utc.utcoffset() == timedelta(0)
    assert period.start_utc.isoformat() == "2026-10-31T21:00:00+00:00"
