"""What the missed-calls tab lists: one place that turns register rows into list entries.

The table, the card and the tests only see `Entry`. The list is one line per caller: an entry
carries all that caller's open call ids (newest first), and the card handles them together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import tzinfo
from functools import lru_cache

from beeline_missed import phones, timefmt
from beeline_missed.rules.deadlines import Deadlines, sort_rows
from beeline_missed.store import Call, Register
from beeline_missed.views import calls as calls_view
from beeline_missed.vocabulary import CallStatus

# Staff read these headers, so they are in Russian.
COLUMNS: tuple[str, ...] = ("Номер", "Клиент", "Дата и время", "Попыток", "Линия", "В работе")
# The open list is short in practice; a cap keeps a neglected register from slowing the panel.
DEFAULT_LIMIT = 1000


@dataclass(frozen=True)
class Entry:
    """One line of the list."""

    key: str  # the table's row key: stable across reloads, so the selection can be kept
    call_ids: tuple[int, ...]  # the open calls the line stands for, newest first
    cells: tuple[str, ...]  # in COLUMNS order
    phone: str | None
    client: str | None
    # The caller's first open attempt (stored UTC), and how many callback deadlines the case
    # has passed by the time of the read (None: not judged).
    since: str | None = None
    level: int | None = None

    @property
    def call_id(self) -> int:
        """The call the card opens."""
        return self.call_ids[0]


@lru_cache(maxsize=8192)
def _number(phone: str | None) -> str:
    # phonenumbers parses each number in ~0.1 ms; the same callers come back at every reload.
    return phones.display(phone)


@lru_cache(maxsize=8192)
def _when(called_at: str | None, zone: tzinfo) -> str:
    return timefmt.show_local(called_at, zone)  # strptime is slow too; times never change


def entry(row: Call, zone: tzinfo) -> Entry:
    ids = sorted(row.call_ids or (row.id,), reverse=True)
    ids.remove(row.id)
    phone = row.phone
    return Entry(
        # Keyed by caller, so a new attempt of the same caller keeps the selection on the line.
        key=f"tel:{phone}" if phone else f"call:{row.id}",
        call_ids=(row.id, *ids),
        cells=(
            _number(phone),
            row.client or "",
            _when(row.called_at, zone),
            str(row.attempts),
            calls_view.line_text(row.line),  # a hunt group: two abonents and «+N»
            row.claim_label or "",  # «перезванивает Петров (5 мин)»
        ),
        phone=phone,
        client=row.client,
        since=row.first_called_at or row.called_at,
        level=row.deadline_level,
    )


@dataclass(frozen=True)
class Listing:
    entries: list[Entry]
    open_count: int  # calls still «Пропущен» (one entry may stand for several)
    capped: bool = False  # the list stopped at its limit: more callers than entries


def load(
    register: Register,
    zone: tzinfo,
    limit: int | None = DEFAULT_LIMIT,
    decorate: Callable[[Register, list[Call]], list[Call]] | None = None,
    *,
    deadlines: Deadlines | None = None,
    now_ms: int | None = None,
    sort: str = "time",
) -> Listing:
    """Calls still «Пропущен», newest first (or the longest waiting first: sort 'age'),
    each judged against the callback deadlines at `now_ms` when `deadlines` are given;
    `decorate` adds who is calling back now."""
    rows = register.calls.rows(include_handled=False, limit=limit)
    if decorate is not None:
        rows = decorate(register, rows)
    if deadlines is not None:
        rows = deadlines.annotate(rows, timefmt.now_ms() if now_ms is None else now_ms)
        rows = sort_rows(rows, sort)
    entries = [entry(row, zone) for row in rows]
    shown = sum(len(e.call_ids) for e in entries)
    # Counted from the same read unless capped: a second query could see a call the first
    # did not (the daemon writes in between) and the summary would disagree with the list.
    capped = limit is not None and len(rows) >= limit
    return Listing(entries, register.calls.count(CallStatus.MISSED) if capped else shown, capped)


def rejudge(entries: list[Entry], deadlines: Deadlines, now_ms: int) -> list[Entry] | None:
    """The entries with their deadline levels at `now_ms`; None when no level changed (the
    clock moved but no case passed a deadline: nothing to redraw)."""
    changed = False
    judged = []
    for item in entries:
        level = item.level
        if item.since is not None and level is not None:
            level = deadlines.level(deadlines.waiting(item.since, now_ms))
        changed = changed or level != item.level
        judged.append(replace(item, level=level))
    return judged if changed else None
