"""What a report asks for, as people write it: the period (dates, "today", "last-week"), the
fields to group by and filter on (whitelisted in FIELDS, each with its SQL column, its Russian
label, how a filter value is read and how a value is shown), filters, and the `Spec` the
engine runs.

Pure: nothing here reads the register; the engine (engine.py) turns a Spec into SQL.
"""

from __future__ import annotations

import re
from calendar import monthrange
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from beeline_missed import timefmt
from beeline_missed.errors import UserError
from beeline_missed.vocabulary import (
    CLOSED_BY_LABELS,
    LOST_AT_LABELS,
    SOURCE_LABELS,
    STATUS_LABELS,
)

PERIODS = ("today", "yesterday", "week", "last-week", "month", "last-month")


OPERATORS = ("!=", "!~", "<=", ">=", "=", "~", "<", ">")


DATE_HELP = "YYYY-MM-DD or DD.MM.YYYY"


MONTHS_RU = (
    "январь",
    "февраль",
    "март",
    "апрель",
    "май",
    "июнь",
    "июль",
    "август",
    "сентябрь",
    "октябрь",
    "ноябрь",
    "декабрь",
)


WEEKDAYS_RU = ("Пн", "Вт", "Ср", "Чт", "Пт", "Сб", "Вс")


_WEEKDAY_NAMES = {
    **{name.lower(): i for i, name in enumerate(WEEKDAYS_RU, 1)},
    **{
        name: i
        for i, names in enumerate(
            [
                ("понедельник", "mon", "monday"),
                ("вторник", "tue", "tuesday"),
                ("среда", "wed", "wednesday"),
                ("четверг", "thu", "thursday"),
                ("пятница", "fri", "friday"),
                ("суббота", "sat", "saturday"),
                ("воскресенье", "sun", "sunday"),
            ],
            1,
        )
        for name in names
    },
}


EMPTY = "—"


DEFAULT_DEADLINES = (900.0, 3600.0)  # callback_deadlines' default, in seconds


def parse_date(text: str, what: str = "date") -> date:
    value = text.strip()
    for fmt in ("%Y-%m-%d", "%d.%m.%Y"):
        try:
            day = datetime.strptime(value, fmt).date()
        except ValueError:
            continue
        timefmt.check_year(day, text)
        return day
    raise UserError(f"Bad {what} {text!r}: use {DATE_HELP}.")


def _utc_midnight(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class Period:
    """Local dates, both inclusive, and the UTC half-open range they cover."""

    first: date
    last: date
    zone: tzinfo

    @property
    def start_utc(self) -> datetime:
        return _utc_midnight(self.first, self.zone)

    @property
    def end_utc(self) -> datetime:
        return _utc_midnight(self.last + timedelta(days=1), self.zone)

    def label(self) -> str:
        if self.first == self.last:
            return self.first.strftime("%d.%m.%Y")
        return f"{self.first:%d.%m.%Y} – {self.last:%d.%m.%Y}"


def resolve_period(
    period: str | None,
    date_from: str | None,
    date_to: str | None,
    zone: tzinfo,
    today: date | None = None,
) -> Period:
    """--period or --from/--to (local dates, inclusive); today when neither is given."""
    today = today or datetime.now(zone).date()
    if period and (date_from or date_to):
        raise UserError("Give either --period or --from/--to, not both.")
    if date_from or date_to:
        if not date_from:
            raise UserError("--to needs --from.")
        first = parse_date(date_from, "--from date")
        last = parse_date(date_to, "--to date") if date_to else today
        if first > last:
            raise UserError(
                f"The period is empty: --from {first:%Y-%m-%d} is after --to {last:%Y-%m-%d}."
            )
        return Period(first, last, zone)
    name = period.strip().lower() if period else "today"
    monday = today - timedelta(days=today.weekday())
    month_start = today.replace(day=1)
    if name == "today":
        return Period(today, today, zone)
    if name == "yesterday":
        return Period(today - timedelta(days=1), today - timedelta(days=1), zone)
    if name == "week":
        return Period(monday, monday + timedelta(days=6), zone)
    if name == "last-week":
        return Period(monday - timedelta(days=7), monday - timedelta(days=1), zone)
    if name == "month":
        days_in_month = monthrange(today.year, today.month)[1]
        return Period(month_start, today.replace(day=days_in_month), zone)
    if name == "last-month":
        last = month_start - timedelta(days=1)
        return Period(last.replace(day=1), last, zone)
    raise UserError(f"Unknown period {period!r}; use one of: {', '.join(PERIODS)}.")


def offset_segments(zone: tzinfo, start: datetime, end: datetime) -> list[tuple[str, str]]:
    """[(from_utc_stored, '+N minutes'), ...]: the zone's UTC offsets over [start, end).

    Walks day by day and pins each change of offset to the second by bisection, so a
    period with a daylight-saving change (not in Russia today, but in 2011 and elsewhere)
    is bucketed right with a plain SQLite date modifier per segment.
    """

    def offset(moment: datetime) -> int:
        delta = moment.astimezone(zone).utcoffset()
        return int(delta.total_seconds() // 60) if delta else 0

    start = start - timedelta(days=1)
    segments = [(start, offset(start))]
    cursor = start
    while cursor < end:
        step = cursor + timedelta(days=1)  # cursor < end: never past end + 1 day
        if offset(step) != segments[-1][1]:
            low, high = cursor, step  # offset(low) is the old one, offset(high) the new
            while (high - low) > timedelta(seconds=1):
                middle = low + (high - low) / 2
                if offset(middle) == segments[-1][1]:
                    low = middle
                else:
                    high = middle
            segments.append((high, offset(high)))  # to_stored drops the fraction
        cursor = step
    return [(timefmt.to_stored(moment), f"{minutes:+d} minutes") for moment, minutes in segments]


@dataclass(frozen=True)
class Field:
    name: str
    label: str  # Russian, for people
    column: str  # SQL over calls/clients; '{local}' / '{handled}' stand for shifted times
    kind: str  # 'text' | 'date' | 'enum' | 'int'
    parse: Callable[[str], Any] | None = None  # a filter value -> the stored value
    show: Callable[[Any], str] | None = None  # a stored value -> what people read

    def display(self, value: Any) -> str:
        if self.show is not None:
            return self.show(value)
        return EMPTY if value is None or value == "" else str(value)

    @property
    def needs_client(self) -> bool:
        return "clients." in self.column


def _show_day(value: Any) -> str:
    return date.fromisoformat(value).strftime("%d.%m.%Y") if value else EMPTY


def _show_week(value: Any) -> str:
    if not value:
        return EMPTY
    monday = date.fromisoformat(value)
    return f"{monday:%d.%m}–{monday + timedelta(days=6):%d.%m.%Y}"


def _show_month(value: Any) -> str:
    if not value:
        return EMPTY
    year, month = value.split("-")
    return f"{MONTHS_RU[int(month) - 1]} {year}"


def _show_hour(value: Any) -> str:
    return EMPTY if value is None else f"{int(value):02d}:00–{(int(value) + 1) % 24:02d}:00"


def _show_weekday(value: Any) -> str:
    return EMPTY if value is None else WEEKDAYS_RU[int(value) - 1]


def _show_phone(value: Any) -> str:
    from beeline_missed import phones

    return phones.display(value)


def _parse_day(text: str) -> str:
    return parse_date(text).isoformat()


def _parse_week(text: str) -> str:
    day = parse_date(text)
    return (day - timedelta(days=day.weekday())).isoformat()


def _parse_month(text: str) -> str:
    value = text.strip()
    for fmt in ("%Y-%m", "%m.%Y"):
        try:
            return datetime.strptime(value, fmt).strftime("%Y-%m")
        except ValueError:
            continue
    raise UserError(f"Bad month {text!r}: use YYYY-MM or MM.YYYY.")


def _parse_hour(text: str) -> int:
    value = text.strip().partition(":")[0]
    if value.isdigit() and 0 <= int(value) <= 23:
        return int(value)
    raise UserError(f"Bad hour {text!r}: use a number from 0 to 23.")


def _parse_weekday(text: str) -> int:
    value = text.strip().lower()
    if value.isdigit() and 1 <= int(value) <= 7:
        return int(value)
    if value in _WEEKDAY_NAMES:
        return _WEEKDAY_NAMES[value]
    raise UserError(f"Bad weekday {text!r}: use 1 (Monday) to 7, or Пн … Вс.")


def _parse_choice(labels: dict[str, str], what: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip()
        for stored, label in labels.items():
            if value.lower() in (stored.lower(), label.lower()):
                return stored
        known = ", ".join(f"{k} ({v})" for k, v in labels.items())
        raise UserError(f"Bad {what} {text!r}: use one of {known}.")

    return parse


def _parse_phone(text: str) -> str | None:
    from beeline_missed import phones

    if text.strip().lower() in ("hidden", "скрыт", "номер скрыт"):
        return None
    number = phones.normalise(text)
    if number is None:
        raise UserError(f"{text!r} is not a phone number (use 'hidden' for hidden numbers).")
    return number


def _parse_bool(text: str) -> int:
    value = text.strip().lower()
    if value in ("1", "yes", "true", "да"):
        return 1
    if value in ("0", "no", "false", "нет"):
        return 0
    raise UserError(f"Bad yes/no value {text!r}: use yes or no (да/нет, 1/0).")


_LOCAL = "{local}"


FIELDS: dict[str, Field] = {
    f.name: f
    for f in [
        Field("day", "День", f"strftime('%Y-%m-%d', calls.called_at, {_LOCAL})", "date",
              _parse_day, _show_day),
        Field("week", "Неделя",
              f"date(calls.called_at, {_LOCAL}, 'weekday 0', '-6 days')", "date",
              _parse_week, _show_week),
        Field("month", "Месяц", f"strftime('%Y-%m', calls.called_at, {_LOCAL})", "date",
              _parse_month, _show_month),
        Field("hour", "Час", f"CAST(strftime('%H', calls.called_at, {_LOCAL}) AS INTEGER)",
              "int", _parse_hour, _show_hour),
        Field("weekday", "День недели",
              f"(CAST(strftime('%w', calls.called_at, {_LOCAL}) AS INTEGER) + 6) % 7 + 1",
              "int", _parse_weekday, _show_weekday),
        Field("phone", "Телефон", "calls.phone", "text", _parse_phone, _show_phone),
        Field("client", "Клиент", "clients.name", "text"),
        Field("line", "Линия", "calls.line", "text"),
        Field("status", "Статус", "calls.status", "enum",
              _parse_choice(STATUS_LABELS, "status"), lambda v: STATUS_LABELS.get(v, v)),
        Field("result", "Результат", "calls.result", "text"),
        Field("user", "Сотрудник", "calls.user", "text"),
        Field("handled", "Дата перезвона",
              "strftime('%Y-%m-%d', calls.handled_at, {handled})", "date",
              _parse_day, _show_day),
        Field("closed_by", "Закрыт", "calls.closed_by", "enum",
              _parse_choice(CLOSED_BY_LABELS, "closed_by"),
              lambda v: CLOSED_BY_LABELS.get(v, EMPTY) if v else EMPTY),
        Field("source", "Источник", "calls.source", "enum",
              _parse_choice(SOURCE_LABELS, "source"), lambda v: SOURCE_LABELS.get(v, v)),
        Field("outside_hours", "Вне рабочего времени", "calls.outside_hours", "int",
              _parse_bool, lambda v: "да" if v else "нет"),
        Field("lost_at", "Где потерян", "calls.lost_at", "enum",
              _parse_choice(LOST_AT_LABELS, "lost_at"),
              lambda v: LOST_AT_LABELS.get(v, v) if v else EMPTY),
        Field("forwarded_to", "Переадресован на", "calls.forwarded_to", "text", _parse_phone,
              _show_phone),
    ]
}  # fmt: skip


ALIASES = {
    "date": "day",
    "called": "day",
    "handled_date": "handled",
    "closed": "closed_by",
    "lost": "lost_at",
    "forwarded": "forwarded_to",
}


def get_field(name: str) -> Field:
    key = name.strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in FIELDS:
        raise UserError(f"Unknown field {name!r}; fields are: {', '.join(FIELDS)}.")
    return FIELDS[key]


_WHERE = re.compile(r"^\s*([A-Za-z_-]+)\s*(!=|!~|<=|>=|=|~|<|>)\s*(.*?)\s*$", re.DOTALL)


@dataclass(frozen=True)
class Filter:
    field: Field
    op: str
    value: str

    def describe(self) -> str:
        return f"{self.field.name} {self.op} {self.value}"


def parse_where(text: str) -> Filter:
    """'user = Иванов', 'client~рога', 'status != missed'."""
    match = _WHERE.match(text)
    if not match:
        raise UserError(
            f"Bad filter {text!r}: use FIELD OP VALUE with OP one of {' '.join(OPERATORS)}."
        )
    name, op, value = match.groups()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    return make_filter(name, op, value)


def make_filter(name: str, op: str, value: str) -> Filter:
    fld = get_field(name)
    if op not in OPERATORS:
        raise UserError(f"Unknown operator {op!r}; use one of {' '.join(OPERATORS)}.")
    if op in ("~", "!~") and fld.kind != "text":
        texts = ", ".join(f.name for f in FIELDS.values() if f.kind == "text")
        raise UserError(f"Operator {op} works on text fields only ({texts}).")
    if op in ("<", "<=", ">", ">=") and fld.kind == "enum":
        raise UserError(f"Operator {op} does not apply to {fld.name}; use = or !=.")
    if op not in ("~", "!~") and fld.parse is not None and value != "":
        fld.parse(value)  # fail early, with the field's own sentence
    return Filter(fld, op, value)


@dataclass(frozen=True)
class Spec:
    period: Period
    group_by: tuple[str, ...] = ()
    filters: tuple[Filter, ...] = ()
    zone_name: str = ""
    # callback_deadlines in seconds, ascending: the returned-within measures.
    deadlines: tuple[float, ...] = DEFAULT_DEADLINES
