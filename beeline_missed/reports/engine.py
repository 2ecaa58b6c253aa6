"""The report engine: a `Spec` (spec.py) over the register, into nested groups with subtotals
and measures.

Reports are their own concern, so their SQL lives here (read-only). Field names are
whitelisted in spec.FIELDS; every value reaches SQL as a bound parameter.

How it stays fast on a million rows: one GROUP BY at the deepest level does the scan, and
carries the callers' numbers and the callback times of each group as `group_concat` strings;
subtotals and the grand total are rolled up in Python with C-level set and sort operations
(exact distinct callers and medians without a second scan). A long period is scanned in
rowid slices by one thread per core (sqlite3 releases the GIL while it steps).
"""

from __future__ import annotations

import math
import os
import sqlite3
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise, repeat
from pathlib import Path
from typing import Any

from beeline_missed import timefmt
from beeline_missed.errors import UserError
from beeline_missed.reports import postgres as report_pg
from beeline_missed.reports.spec import (
    _LOCAL,
    DEFAULT_DEADLINES,
    Field,
    Filter,
    Period,
    Spec,
    get_field,
    offset_segments,
)

# Scans above this many rows are split across threads.
PARALLEL_MIN_ROWS = 200_000


def _fold(text: Any) -> str:
    """Russian search folding, as the clients directory's: case, and ё read as е
    («елкин» finds «Ёлкин»)."""
    return str(text).casefold().replace("ё", "е")


def _icontains(haystack: Any, needle: Any) -> int | None:
    if haystack is None or needle is None:
        return None
    return int(_fold(needle) in _fold(haystack))


def _filter_sql(flt: Filter, column: str, postgres: bool = False) -> tuple[str, list[Any]]:
    op, raw = flt.op, flt.value
    if op in ("~", "!~"):
        if postgres:
            test, raw = report_pg.contains_sql(column), _fold(raw)
        elif raw.isascii():
            # SQLite's lower() folds ASCII only, which is exact for an ASCII needle (and an
            # ASCII needle cannot hold ё).
            test = f"instr(lower({column}), lower(?)) > 0"
        else:
            test = f"bm_icontains({column}, ?)"
        if op == "~":
            return f"({column} IS NOT NULL AND {test})", [raw]
        return f"({column} IS NULL OR NOT {test})", [raw]
    if raw == "" and flt.field.kind == "text":
        if op == "=":
            return f"({column} IS NULL OR {column} = '')", []
        if op == "!=":
            return f"({column} IS NOT NULL AND {column} != '')", []
    value = flt.field.parse(raw) if flt.field.parse is not None else raw
    if value is None:  # a hidden phone number
        if op == "=":
            return f"{column} IS NULL", []
        if op == "!=":
            return f"{column} IS NOT NULL", []
        raise UserError(f"Operator {op} does not apply to hidden numbers.")
    if op == "!=":
        # Rows with no value at all (no client, not handled) are "not equal" too.
        return f"{column} IS NOT ?", [value]
    return f"{column} {op} ?", [value]  # =, <, <=, >, >=


@dataclass
class Measures:
    calls: int = 0
    callers: int = 0
    called_back: int = 0
    missed: int = 0
    callback_median_seconds: float | None = None
    callback_max_seconds: int | None = None
    # -- deadlines, escalation, honest auto-close --
    # Calls called back within each callback deadline (cumulative: within 60 min counts those
    # within 15 too), in the order of `deadlines` (seconds); after the last one; not at all.
    deadlines: tuple[float, ...] = DEFAULT_DEADLINES
    returned_within: tuple[int, ...] = ()
    # Calls of the period still open when it ended (not called back before its end).
    backlog: int = 0
    callback_p90_seconds: int | None = None
    # Answered calls too short to close a case (auto_close_min_talk), on the period's calls.
    attempts: int = 0

    @property
    def share_called_back(self) -> float | None:
        return self.called_back / self.calls if self.calls else None

    @property
    def returned_later(self) -> int:
        return self.called_back - (self.returned_within[-1] if self.returned_within else 0)

    @property
    def never_returned(self) -> int:
        return self.missed

    def as_dict(self) -> dict[str, Any]:
        share = self.share_called_back
        median = self.callback_median_seconds
        if median is not None and float(median).is_integer():
            median = int(median)
        within = self.returned_within or (0,) * len(self.deadlines)
        return {
            "calls": self.calls,
            "callers": self.callers,
            "called_back": self.called_back,
            "missed": self.missed,
            "share_called_back": None if share is None else round(share, 4),
            "callback_median_seconds": median,
            "callback_max_seconds": self.callback_max_seconds,
            **{
                f"returned_within_{deadline_name(limit)}": count
                for limit, count in zip(self.deadlines, within, strict=True)
            },
            "returned_later": self.returned_later,
            "never_returned": self.never_returned,
            "backlog": self.backlog,
            "callback_p90_seconds": self.callback_p90_seconds,
            "attempts": self.attempts,
        }


def deadline_name(seconds: float) -> str:
    """'15_min' for a key, as `returned_within_15_min`."""
    minutes = seconds / 60
    return f"{int(minutes) if minutes == int(minutes) else minutes:g}_min"


def deadline_label(seconds: float) -> str:
    """«Перезвонили ≤ 15 мин» for a header (minutes, as the setting gives them)."""
    return f"Перезвонили ≤ {seconds / 60:g} мин"


MEASURE_LABELS = {
    "calls": "Звонков",
    "callers": "Абонентов",
    "called_back": "Перезвонили",
    "missed": "Пропущены",
    "share_called_back": "Доля перезвонов",
    "callback_median_seconds": "Медиана до перезвона",
    "callback_max_seconds": "Макс. до перезвона",
}


# The deadline measures, after the columns above (csv, xlsx, html) and under the table.
DEADLINE_LABELS = {
    "returned_later": "Перезвонили позже",
    "never_returned": "Не перезвонили",
    "backlog": "Открыты на конец периода",
    "callback_p90_seconds": "90-й перцентиль до перезвона",
    "attempts": "Попыток без разговора",
}


@dataclass
class Group:
    """One group at some level; keys are the values of group_by[:level]."""

    level: int
    keys: tuple[Any, ...]
    measures: Measures = field(default_factory=Measures)
    children: list[Group] = field(default_factory=list)
    # Kept while rolling up, dropped afterwards.
    _phones: set[str] = field(default_factory=set, repr=False)
    _times: list[int] = field(default_factory=list, repr=False)
    _runs: list[list[int]] = field(default_factory=list, repr=False)  # sorted, per leaf


@dataclass
class Report:
    period: Period
    group_by: list[Field]
    filters: list[Filter]
    groups: list[Group]  # top level, children nested
    total: Measures
    zone_name: str

    def leaves(self) -> list[Group]:
        return [g for g in self.walk() if g.level == len(self.group_by)]

    def walk(self) -> Iterator[Group]:
        """Groups in reading order: a group, then its children (a 1C report's layout)."""

        def visit(groups: list[Group]) -> Iterator[Group]:
            for group in groups:
                yield group
                yield from visit(group.children)

        return visit(self.groups)

    def key_dict(self, group: Group) -> dict[str, Any]:
        # A subtotal's keys are the first fields' values only.
        fields_ = self.group_by
        return {fields_[i].name: _json_value(fields_[i], v) for i, v in enumerate(group.keys)}

    def as_json(self) -> dict[str, Any]:
        depth = len(self.group_by)
        return {
            "period": {
                "from": self.period.first.isoformat(),
                "to": self.period.last.isoformat(),
                "timezone": self.zone_name,
            },
            "group_by": [f.name for f in self.group_by],
            "filters": [f.describe() for f in self.filters],
            "rows": [
                {**self.key_dict(g), **g.measures.as_dict()}
                for g in self.walk()
                if g.level == depth
            ],
            "subtotals": [
                {"level": g.level, **self.key_dict(g), **g.measures.as_dict()}
                for g in self.walk()
                if g.level < depth
            ],
            "total": self.total.as_dict(),
        }

    def title(self) -> str:
        text = f"Пропущенные звонки за {self.period.label()}"
        if self.filters:
            text += " (" + "; ".join(f.describe() for f in self.filters) + ")"
        return text


def _json_value(fld: Field, value: Any) -> Any:
    if fld.name == "outside_hours" and value is not None:
        return bool(value)
    return value


def _median(ordered: Sequence[int]) -> float | None:
    n = len(ordered)
    if not n:
        return None
    middle = n // 2
    return float(ordered[middle]) if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _kth(runs: list[list[int]], k: int) -> int:
    """The k-th smallest (1-based) of several sorted lists of ints, without merging them.

    Bisects on the value: each step counts, with one C-level bisect per list, how many
    values are at most the middle one; about 30 steps for any callback time.
    """
    low = min(run[0] for run in runs)
    high = max(run[-1] for run in runs)
    while low < high:
        middle = (low + high) // 2
        if sum(map(bisect_right, runs, repeat(middle))) >= k:
            high = middle
        else:
            low = middle + 1
    return low


def _median_of_runs(runs: list[list[int]]) -> tuple[float | None, int | None]:
    runs = [run for run in runs if run]
    if not runs:
        return None, None
    longest = max(run[-1] for run in runs)
    if len(runs) == 1:
        return _median(runs[0]), longest
    n = sum(map(len, runs))
    upper = _kth(runs, n // 2 + 1)
    if n % 2:
        return float(upper), longest
    return (_kth(runs, n // 2) + upper) / 2, longest


def _p90_of_runs(runs: list[list[int]]) -> int | None:
    """The 90th percentile (nearest rank: the smallest value with 90 % at or below it)."""
    runs = [run for run in runs if run]
    n = sum(map(len, runs))
    return _kth(runs, math.ceil(0.9 * n)) if n else None


def _finish(group: Group, deadlines: tuple[float, ...] = DEFAULT_DEADLINES) -> None:
    """Turn the collected phones and sorted runs of times into the measures; free them."""
    group.measures.callers = len(group._phones)
    median, longest = _median_of_runs(group._runs)
    group.measures.callback_median_seconds = median
    group.measures.callback_max_seconds = longest
    group.measures.deadlines = deadlines
    group.measures.returned_within = tuple(
        sum(bisect_right(run, limit) for run in group._runs) for limit in deadlines
    )
    group.measures.callback_p90_seconds = _p90_of_runs(group._runs)
    group._phones = set()
    group._times = []
    group._runs = []


def _shift_expr(segments: list[tuple[str, str]], column: str) -> tuple[str, list[Any]]:
    """The SQLite modifier that turns a stored UTC time into local time."""
    if len(segments) == 1:
        return "?", [segments[0][1]]
    parts: list[str] = []
    params: list[Any] = []
    for (_, modifier), (next_start, _) in pairwise(segments):
        parts.append(f"WHEN {column} < ? THEN ?")
        params += [next_start, modifier]
    return "CASE " + " ".join(parts) + " ELSE ? END", [*params, segments[-1][1]]


def _column_sql(
    fld: Field,
    called: tuple[str, list[Any]],
    handled: tuple[str, list[Any]],
    postgres: bool = False,
) -> tuple[str, list[Any]]:
    """A field's SQL with its bound parameters, in textual order."""
    if postgres and fld.name in report_pg.FIELD_SQL:
        if fld.name == "handled":
            return report_pg.column_sql(fld.name, "calls.handled_at", handled)
        return report_pg.column_sql(fld.name, "calls.called_at", called)
    sql = fld.column
    params: list[Any] = []
    if _LOCAL in sql:
        sql = sql.replace(_LOCAL, called[0])
        params = list(called[1])
    if "{handled}" in sql:
        sql = sql.replace("{handled}", handled[0])
        params = list(handled[1])
    return sql, params


def build_report(db_path: Path | str, spec: Spec) -> Report:
    postgres = not isinstance(db_path, Path | str)  # a PostgresURL: see reports/postgres.py
    period = spec.period
    fields_ = [get_field(name) for name in spec.group_by]
    seen: set[str] = set()
    for fld in fields_:
        if fld.name in seen:
            raise UserError(f"Field {fld.name!r} is given twice in --group-by.")
        seen.add(fld.name)
    start = timefmt.to_stored(period.start_utc)
    end = timefmt.to_stored(period.end_utc)
    now = datetime.now(UTC)
    called_shift = _shift_expr(
        offset_segments(period.zone, period.start_utc, period.end_utc), "calls.called_at"
    )
    handled_shift = _shift_expr(
        offset_segments(period.zone, period.start_utc, max(period.end_utc, now)),
        "calls.handled_at",
    )

    select: list[str] = []
    params: list[Any] = []
    for fld in fields_:
        sql, p = _column_sql(fld, called_shift, handled_shift, postgres)
        select.append(sql)
        params += p
    where = ["calls.called_at >= ?", "calls.called_at < ?"]
    where_params: list[Any] = [start, end]
    for flt in spec.filters:
        column, p = _column_sql(flt.field, called_shift, handled_shift, postgres)
        sql, q = _filter_sql(flt, column, postgres)
        where.append(sql)
        where_params += p + q
    needs_client = any(f.needs_client for f in fields_) or any(
        f.field.needs_client for f in spec.filters
    )
    keys = ", ".join(select)
    group = f" GROUP BY {', '.join(str(i) for i in range(1, len(select) + 1))}" if select else ""

    conn = _open(db_path)
    try:
        tables = (
            report_pg.tables(conn)
            if postgres
            else {
                row[0]
                for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
        )
        if "calls" not in tables:
            # A register another process is still creating: no calls yet.
            empty = Measures(deadlines=tuple(spec.deadlines))
            return Report(period, fields_, list(spec.filters), [], empty, spec.zone_name)
        # A register from before m110 (read-only here, not migrated) has no attempts yet; with
        # none recorded at all, the per-row look-up is left out of the scan.
        attempts = (
            "sum((SELECT count(*) FROM callback_attempts WHERE call_id = calls.id))"
            if "callback_attempts" in tables
            and conn.execute("SELECT 1 FROM callback_attempts LIMIT 1").fetchone()
            else "0"
        )
        measures = (
            report_pg.MEASURES + attempts
            if postgres
            else "count(*), sum(calls.status = 'called_back'), "
            "group_concat(calls.phone), group_concat(CASE WHEN calls.status = 'called_back' "
            "THEN max(0, CAST(round((julianday(calls.handled_at) - julianday(calls.called_at))"
            " * 86400) AS INTEGER)) END), "
            # Called back only after the period ended (still open at its end, with the missed).
            "sum(calls.handled_at >= ?), "
            f"{attempts}"
        )
        head = f"SELECT {keys + ', ' if keys else ''}{measures} FROM calls"
        params.append(end)
        in_range, low, high = (0, 0, 0) if postgres else _range_size(conn, start, end)
        # A long period is read faster by scanning the table than through the called_at
        # index (one random page read per row); a short one the other way round.
        scan = in_range * 4 > (high - low + 1)
        table = " NOT INDEXED" if scan and not postgres else ""
        join = " LEFT JOIN clients ON clients.id = calls.client_id" if needs_client else ""
        base = head + table + join + " WHERE " + " AND ".join(where)
        workers = min(os.cpu_count() or 1, 4) if scan and in_range >= PARALLEL_MIN_ROWS else 1
        leaves = _Leaves(len(select), tuple(spec.deadlines))
        if workers == 1:
            conn.execute("PRAGMA threads = 2")  # lets the sorter use a second core
            leaves.add(conn.execute(base + group, params + where_params).fetchall())
        else:
            # More slices than threads: the first slices' rows are merged here while the
            # last ones are still being scanned.
            count = workers * 3
            step = (high - low) // count + 1
            slices = [(low + i * step, low + (i + 1) * step) for i in range(count)]
            sql = base + " AND calls.rowid >= ? AND calls.rowid < ?" + group

            def run(bounds: tuple[int, int]) -> list[Any]:
                worker = _open(db_path)
                try:
                    return worker.execute(sql, [*params, *where_params, *bounds]).fetchall()
                finally:
                    worker.close()

            with ThreadPoolExecutor(workers) as pool:
                for future in as_completed([pool.submit(run, bounds) for bounds in slices]):
                    leaves.add(future.result())
    finally:
        conn.close()

    groups, total = leaves.roll_up()
    return Report(period, fields_, list(spec.filters), groups, total, spec.zone_name)


def _open(db_path: Path | str) -> sqlite3.Connection:
    if not isinstance(db_path, Path | str):  # a PostgreSQL register
        from beeline_missed.store import engine, missing

        if not db_path.exists():
            raise missing(db_path)  # type: ignore[arg-type]
        conn = engine.connect(db_path)
        conn.execute("SET default_transaction_read_only = on")
        return conn  # type: ignore[return-value]
    path = Path(db_path)
    if not path.exists():
        from beeline_missed.store import missing

        raise missing(path)
    try:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False, timeout=10
        )
    except sqlite3.Error as exc:
        raise UserError(f"Cannot open the register {path}: {exc}.") from None
    conn.create_function("bm_icontains", 2, _icontains, deterministic=True)
    return conn


def _range_size(conn: sqlite3.Connection, start: str, end: str) -> tuple[int, int, int]:
    """An estimate of the rows in the period, and the table's rowid span.

    Counting on the index would cost a read of a million entries; the index's two ends
    and the rowid span cost nothing, and a register fills up roughly evenly over time.
    """
    first, last, low, high = conn.execute(
        "SELECT (SELECT min(called_at) FROM calls), (SELECT max(called_at) FROM calls), "
        "(SELECT min(rowid) FROM calls), (SELECT max(rowid) FROM calls)"
    ).fetchone()
    if first is None:
        return 0, 0, 0
    rows = int(high) - int(low) + 1
    span = (timefmt.parse_stored(last) - timefmt.parse_stored(first)).total_seconds() + 1
    lo = max(timefmt.parse_stored(first), timefmt.parse_stored(start))
    hi = min(timefmt.parse_stored(last) + timedelta(seconds=1), timefmt.parse_stored(end))
    covered = max(0.0, (hi - lo).total_seconds())
    # covered <= span: the period's part of the table is at most all of it.
    return int(rows * covered / span), int(low), int(high)


class _Leaves:
    """The deepest groups, merged from any number of slices of the scan."""

    def __init__(self, depth: int, deadlines: tuple[float, ...] = DEFAULT_DEADLINES) -> None:
        self.depth = depth
        self.deadlines = deadlines
        self.groups: dict[tuple[Any, ...], Group] = {}

    def add(self, rows: list[Any]) -> None:
        depth = self.depth
        for row in rows:
            # status is 'missed' or 'called_back' (a CHECK constraint): missed = calls - back.
            calls, back, phones, times, backlog, attempts = row[depth:]
            if not calls:
                continue  # the one row of an empty scan without GROUP BY
            key = tuple(row[:depth])
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = Group(depth, key)
            m = group.measures
            m.calls += calls
            m.called_back += back
            m.missed += calls - back
            m.backlog += (calls - back) + (backlog or 0)
            m.attempts += attempts or 0
            if phones:
                group._phones.update(phones.split(","))
            if times:
                group._times.extend(map(int, times.split(",")))

    def roll_up(self) -> tuple[list[Group], Measures]:
        """Build the levels bottom-up: each parent from its children's sets and sorted runs."""
        level_groups = list(self.groups.values())
        for leaf in level_groups:
            leaf._times.sort()
            leaf._runs = [leaf._times]
        for level in range(self.depth, 0, -1):
            parents: dict[tuple[Any, ...], Group] = {}
            for child in level_groups:
                prefix = child.keys[: level - 1]
                parent = parents.get(prefix)
                if parent is None:
                    parent = parents[prefix] = Group(level - 1, prefix)
                parent.children.append(child)
                m, c = parent.measures, child.measures
                m.calls += c.calls
                m.called_back += c.called_back
                m.missed += c.missed
                m.backlog += c.backlog
                m.attempts += c.attempts
                # A parent keeps its leaves' sorted runs (references, not copies): its
                # median is found across them by _kth, with no merge and no sort.
                if len(parent.children) > 1:
                    parent._phones |= child._phones
                    parent._runs += child._runs
                else:  # the first child: take its set and list over rather than copy them
                    parent._phones = child._phones
                    parent._runs = child._runs
                _finish(child, self.deadlines)
            level_groups = list(parents.values())
        if not level_groups:
            return [], Measures(deadlines=self.deadlines)
        root = level_groups[0]
        _finish(root, self.deadlines)
        for group in [root, *self._walk(root)]:
            group.children.sort(key=lambda g: _sort_key(g.keys))
        return root.children, root.measures

    def _walk(self, group: Group) -> Iterator[Group]:
        for child in group.children:
            yield child
            yield from self._walk(child)


def _sort_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
    # None (no client, not handled) after every value; values of one field share a type, and
    # two Nones are equal, so None itself is never compared with a value.
    return tuple((value is None, value) for value in key)
