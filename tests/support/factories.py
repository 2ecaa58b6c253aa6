"""Builders of register rows shared by the tests."""

from __future__ import annotations

from typing import Any

from beeline_missed.store import Call, Register
from beeline_missed.vocabulary import CallStatus, ClosedBy, LostAt, Source


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


def call_row(**fields: Any) -> Call:
    """A `Call` as the store returns it, for the pure rules' tests: an open call from a known
    number with every column filled, `fields` over the defaults (strings become the
    vocabulary's enums, a list of call ids a tuple). `first_called_at` defaults to `called_at`
    and `call_ids` to the call's own id, as the store fills them."""
    values: dict[str, Any] = {
        "id": 1,
        "session_key": f"s{fields.get('id', 1)}",
        "phone": "+79161234567",
        "phone_raw": "+79161234567",
        "client_id": None,
        "called_at": "2026-11-27T10:00:00Z",
        "line": "",
        "status": CallStatus.MISSED,
        "result": "",
        "user": None,
        "handled_at": None,
        "closed_by": None,
        "source": Source.HOOK,
        "outside_hours": False,
        "created_at": "2026-11-27T10:00:00Z",
        "version": 1,
    }
    values.update(fields)
    values["status"] = CallStatus(values["status"])
    values["source"] = Source(values["source"])
    values["closed_by"] = ClosedBy(values["closed_by"]) if values["closed_by"] else None
    values["lost_at"] = LostAt(values["lost_at"]) if values.get("lost_at") else None
    values.setdefault("first_called_at", values["called_at"])
    values["call_ids"] = tuple(values.get("call_ids") or (values["id"],))
    return Call(**values)
