"""A small known register for the report tests (TZ=Europe/Moscow, UTC+3).

    key  phone  called_at (UTC)        local             status / who / callback after
    k1   A      2026-11-01T20:30:00Z   Sun 01.11 23:30   called back, Иванов, 600 s
    k2   A      2026-11-01T21:30:00Z   Mon 02.11 00:30   called back, Иванов, 1800 s
    k3   B      2026-10-31T21:00:00Z   Sun 01.11 00:00   missed           (UTC: October)
    k4   B      2026-10-31T20:59:59Z   Sat 31.10 23:59   called back, Петрова, 3600 s
    k5   hidden 2026-11-02T07:00:00Z   Mon 02.11 10:00   called back, Петрова, 7200 s, auto
    k6   C      2026-11-03T09:00:00Z   Tue 03.11 12:00   missed, line 201, «ООО Ромашка»

k1..k4 straddle the week (Sun 01.11 / Mon 02.11) and month (31.10 / 01.11) boundaries in
local time; in UTC they would fall on the other side.
"""

from __future__ import annotations

from beeline_missed.store import Register
from tests.support.factories import add_call

A = "+79161234567"
B = "+79162223344"
C = "+74951112233"

CALLS = [
    # key, phone, called_at, line, outside_hours, (status, result, user, handled_at, closed_by)
    ("k1", A, "2026-11-01T20:30:00Z", "200", True,
     ("called_back", "Записан на ремонт", "Иванов", "2026-11-01T20:40:00Z", "staff")),
    ("k2", A, "2026-11-01T21:30:00Z", "200", True,
     ("called_back", "Консультация", "Иванов", "2026-11-01T22:00:00Z", "staff")),
    ("k3", B, "2026-10-31T21:00:00Z", "200", True, None),
    ("k4", B, "2026-10-31T20:59:59Z", "200", True,
     ("called_back", "Отказ", "Петрова", "2026-10-31T21:59:59Z", "staff")),
    ("k5", None, "2026-11-02T07:00:00Z", "200", False,
     ("called_back", "", "Петрова", "2026-11-02T09:00:00Z", "auto")),
    ("k6", C, "2026-11-03T09:00:00Z", "201", False, None),
]  # fmt: skip


def fill(register: Register) -> dict[str, int]:
    """Write the calls through the register's own methods; returns key -> call id."""
    register.clients.upsert([(None, "ООО Ромашка", [(C, "8 495 111-22-33")])])
    ids: dict[str, int] = {}
    for key, phone, called_at, line, outside, handled in CALLS:
        row = add_call(register, key, phone, called_at, line, outside_hours=outside)
        ids[key] = row
        if handled:
            status, result, user, handled_at, closed_by = handled
            register.calls.save(
                row,
                1,
                status=status,
                result=result,
                user=user,
                handled_at=handled_at,
                closed_by=closed_by,
            )
    return ids
