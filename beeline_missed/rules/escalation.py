"""Escalation: cases still open past `escalate_after` are sent once to the managers' channels.

The rule is pure (`overdue`, `message`: rows, the deadlines, the clock in, cases out). The
daemon's thread around it (`daemon/escalator.py`) runs off the hook and the processor, so a slow
channel never delays intake, and records a case before telling, so it is told about once. Only
within working hours (when they are set) — a manager is not woken at night about a call that
came at 18:59; the wait counts working time only, as the list's colours do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import tzinfo
from typing import TYPE_CHECKING

from beeline_missed import phones, timefmt
from beeline_missed.rules.deadlines import Deadlines
from beeline_missed.vocabulary import CallStatus

if TYPE_CHECKING:
    from beeline_missed.store import Call

SUBJECT = "Не перезвонили вовремя"


SHOWN = 30  # cases listed by name in one message; the rest are counted


def overdue(
    cases: Sequence[Call],
    deadlines: Deadlines,
    after_s: float,
    now_ms: int,
    escalated: set[int],
) -> list[Call]:
    """The open cases (one row per caller, `Register.list_calls`) that have waited `after_s`
    seconds or more and none of whose calls was escalated before; none outside working hours.
    Each is returned with its `waiting_s`, the longest waiting first."""
    if after_s <= 0 or deadlines.hours.is_outside(now_ms):
        return []
    found = []
    for case in cases:
        if case.status != CallStatus.MISSED:
            continue
        if escalated.intersection(case.call_ids):
            continue
        waiting = int(deadlines.waiting(case.first_called_at or case.called_at, now_ms))
        if waiting >= after_s:
            found.append(replace(case, waiting_s=waiting))
    return sorted(found, key=lambda c: (-(c.waiting_s or 0), c.id))


def message(cases: Sequence[Call], after_s: float, zone: tzinfo) -> str:
    """What managers read: how many callers wait past the limit, then each of them."""
    lines = [f"{SUBJECT}: {len(cases)} (ждут дольше {timefmt.duration(after_s)})"]
    for case in cases[:SHOWN]:
        number = phones.display(case.phone)
        who = f"{number} — {case.client}" if case.client else number
        since = timefmt.show_local(case.first_called_at or case.called_at, zone)
        tried = f", звонил {case.attempts} раз(а)" if case.attempts > 1 else ""
        lines.append(f"{who}: ждёт {timefmt.duration(case.waiting_s or 0)} (с {since}){tried}")
    if len(cases) > SHOWN:
        lines.append(f"… и ещё {len(cases) - SHOWN}")
    return "\n".join(lines)
