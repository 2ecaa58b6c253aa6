"""The store's rows as typed, frozen values: what `register.calls`, `register.attempts` and
`register.claims` return, built at the store's boundary from `sqlite3.Row`s.

A `Call` carries every column of the `calls` table, the fields the store joins in (the client's
name; for one line per caller, the caller's attempts, first call and call ids) with their
defaults filled once here, and the fields the layers above add for people to read (who is
calling back, the staff names, the callback attempts, the deadline): those start as None and
are set with `dataclasses.replace` (`casework.with_claims`, `deadlines.annotate`, ...).
Statuses, sources, who closed and where it was lost are the vocabulary's enums (StrEnums: equal
to the strings stored and printed).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from beeline_missed.vocabulary import CallStatus, ClosedBy, LostAt, Source


def _ids(text: Any, own: int) -> tuple[int, ...]:
    """`group_concat(calls.id)` as sorted ids; a row read alone is its own case."""
    if not text:
        return (own,)
    return tuple(sorted(int(i) for i in str(text).split(",")))


@dataclass(frozen=True)
class Attempt:
    """A callback attempt too short to close a case (`register.attempts.of`): one answered
    session, with the open calls it was recorded on."""

    session_key: str
    direction: str
    attempted_at: str
    talk_seconds: int | None
    who: str | None
    call_ids: tuple[int, ...] = ()

    @classmethod
    def from_row(cls, row: sqlite3.Row | Mapping[str, Any]) -> Attempt:
        return cls(
            session_key=str(row["session_key"]),
            direction=str(row["direction"]),
            attempted_at=str(row["attempted_at"]),
            talk_seconds=None if row["talk_seconds"] is None else int(row["talk_seconds"]),
            who=row["who"],
            call_ids=tuple(sorted(int(i) for i in str(row["call_ids"] or "").split(",") if i)),
        )


@dataclass(frozen=True)
class StoredClaim:
    """A claim as stored (`register.claims`): who took a case and when (stored UTC);
    `claims.Claim.from_row` makes the rules' value of it."""

    case_key: str
    claimed_by: str
    claimed_at: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> StoredClaim:
        return cls(str(row["case_key"]), str(row["claimed_by"]), str(row["claimed_at"]))


@dataclass(frozen=True)
class Call:
    """One register row (the `calls` table), with what the store joins and the layers add."""

    # The calls table.
    id: int
    session_key: str
    phone: str | None
    phone_raw: str
    client_id: int | None
    called_at: str
    line: str
    status: CallStatus
    result: str
    user: str | None
    handled_at: str | None
    closed_by: ClosedBy | None
    source: Source
    outside_hours: bool
    created_at: str
    version: int
    lost_at: LostAt | None = None
    forwarded_to: str | None = None
    # Joined by the store: the client's name; one line per caller's open calls.
    client: str | None = None
    attempts: int = 1
    first_called_at: str = ""
    call_ids: tuple[int, ...] = ()
    # Added above the store for people to read (None: not added).
    claimed_by: str | None = None
    claimed_at: str | None = None
    claim_label: str | None = None
    claimed_by_name: str | None = None
    user_name: str | None = None
    line_label: str | None = None
    callback_attempts: tuple[Attempt, ...] | None = None
    waiting_s: int | None = None
    deadline_level: int | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Call:
        """A call from a row of `SELECT calls.*[, clients.name AS client, attempts, ...]`."""
        keys = row.keys()
        call_id = int(row["id"])
        called_at = str(row["called_at"])
        closed_by = row["closed_by"]
        lost_at = row["lost_at"]
        return cls(
            id=call_id,
            session_key=str(row["session_key"]),
            phone=row["phone"],
            phone_raw=str(row["phone_raw"] or ""),
            client_id=row["client_id"],
            called_at=called_at,
            line=str(row["line"] or ""),
            status=CallStatus(row["status"]),
            result=str(row["result"] or ""),
            user=row["user"],
            handled_at=row["handled_at"],
            closed_by=ClosedBy(closed_by) if closed_by else None,
            source=Source(row["source"]),
            outside_hours=bool(row["outside_hours"]),
            created_at=str(row["created_at"]),
            version=int(row["version"]),
            lost_at=LostAt(lost_at) if lost_at else None,
            forwarded_to=row["forwarded_to"],
            client=row["client"] if "client" in keys else None,
            attempts=int(row["attempts"]) if "attempts" in keys else 1,
            first_called_at=str(row["first_called_at"])
            if "first_called_at" in keys and row["first_called_at"]
            else called_at,
            call_ids=_ids(row["call_ids"] if "call_ids" in keys else None, call_id),
        )
