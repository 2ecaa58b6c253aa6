"""Builders of register rows shared by the tests."""

from __future__ import annotations

from beeline_missed.store import Register


def add_call(
    reg: Register,
    key: str = "s1",
    phone: str | None = "+79161234567",
    called_at: str = "2026-11-27T10:00:00Z",
    line: str = "200",
    outside_hours: bool = False,
    lost_at: str | None = None,
    forwarded_to: str | None = None,
) -> int:
    """Register one missed call as the daemon would; returns its id."""
    with reg.transaction():
        row = reg.calls.insert(
            session_key=key,
            phone=phone,
            phone_raw=phone or "",
            called_at=called_at,
            line=line,
            outside_hours=outside_hours,
            lost_at=lost_at,
            forwarded_to=forwarded_to,
        )
    assert row is not None
    return row
