"""The report engine's SQL on a PostgreSQL register, where it differs from SQLite's.

The local time of a stored UTC time is computed the same way on both engines: the stored time
plus the zone's offset over the period (`offset_segments` of the engine, a '+180 minutes' modifier,
which PostgreSQL reads as an interval), so a report groups identically on both. Only the date
functions are spelled differently (to_char / extract / date_trunc instead of strftime / date).
"""

from __future__ import annotations

from typing import Any

# Stored UTC text ('2026-11-27T10:00:00Z') as a UTC timestamp, shifted to local time.
_LOCAL_TIME = (
    "(CAST(CAST({column} AS timestamptz) AT TIME ZONE 'UTC' AS timestamp)"
    " + CAST({shift} AS interval))"
)

# Each date field: its PostgreSQL spelling of the same value SQLite's expression gives.
FIELD_SQL = {
    "day": "to_char({local}, 'YYYY-MM-DD')",
    "week": "to_char(date_trunc('week', {local}), 'YYYY-MM-DD')",
    "month": "to_char({local}, 'YYYY-MM')",
    "hour": "CAST(extract(hour FROM {local}) AS INTEGER)",
    "weekday": "CAST(extract(isodow FROM {local}) AS INTEGER)",
    "handled": "to_char({local}, 'YYYY-MM-DD')",
}

# count, called back, callers' numbers, seconds to callback, called back after the period.
MEASURES = (
    "count(*), count(*) FILTER (WHERE calls.status = 'called_back'), "
    "string_agg(calls.phone, ','), string_agg(CASE WHEN calls.status = 'called_back' "
    "THEN CAST(greatest(0, CAST(round(extract(epoch FROM CAST(calls.handled_at AS timestamptz)"
    " - CAST(calls.called_at AS timestamptz))) AS INTEGER)) AS TEXT) END, ','), "
    "count(*) FILTER (WHERE calls.handled_at >= ?), "
)


def column_sql(name: str, column: str, shift: tuple[str, list[Any]]) -> tuple[str, list[Any]]:
    """A date field's SQL on PostgreSQL, with its bound parameters in textual order."""
    local = _LOCAL_TIME.format(column=column, shift=shift[0])
    return FIELD_SQL[name].format(local=local), list(shift[1])


def contains_sql(column: str) -> str:
    """Case- and ё-folded 'contains', as bm_icontains on SQLite; the needle comes folded."""
    folded = f"replace(lower({column} COLLATE \"und-x-icu\"), 'ё', 'е')"
    return f"strpos({folded}, ?) > 0"


def tables(conn: Any) -> set[str]:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    )
    return {row[0] for row in rows}
