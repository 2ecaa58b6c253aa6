"""The store's rows as typed, frozen values: what `register.calls`, `register.attempts`,
`register.claims`, `register.subscriptions`, `register.abonents`, `register.onec`,
`register.inbox`, `register.clients` and `register.sessions` return, built at the store's
boundary from `sqlite3.Row`s. (Legs are detection's own `LegState`.)

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
from dataclasses import MISSING, dataclass, fields
from typing import Any, TypeVar

from beeline_missed.vocabulary import (
    CallStatus,
    ClosedBy,
    LostAt,
    SessionState,
    Source,
    SubscriptionState,
)

_Row = TypeVar("_Row")

# Stored string -> enum member, read once per row: a dict lookup, cheaper than CallStatus(text).
_STATUS = CallStatus._value2member_map_
_SOURCE = Source._value2member_map_
_CLOSED_BY = ClosedBy._value2member_map_
_LOST_AT = LostAt._value2member_map_


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
    def from_row(cls, row: sqlite3.Row | Mapping[str, Any]) -> Call:
        """A call from a row of `SELECT calls.*[, clients.name AS client, attempts, ...]`.

        Built into the instance's `__dict__` rather than through the 31-argument frozen
        `__init__` (one `object.__setattr__` per field): `list` builds every row it shows."""
        # A row that iterates its values (sqlite3.Row) is zipped with its names, ~3x faster
        # than dict(row); a dict row is copied.
        values = dict(row) if isinstance(row, Mapping) else dict(zip(row.keys(), row, strict=True))
        values.pop("position", None)  # the case query's helper column
        if not values.keys() <= _CALL_FIELDS:  # a column Call does not know: left out
            for extra in values.keys() - _CALL_FIELDS:
                del values[extra]
        closed_by, lost_at = values["closed_by"], values["lost_at"]
        values["status"] = _STATUS[values["status"]]
        values["source"] = _SOURCE[values["source"]]
        values["closed_by"] = _CLOSED_BY[closed_by] if closed_by else None
        values["lost_at"] = _LOST_AT[lost_at] if lost_at else None
        values["outside_hours"] = bool(values["outside_hours"])
        # NOT NULL DEFAULT '' in the schema; '' for a NULL some old row may hold.
        values["phone_raw"] = values["phone_raw"] or ""
        values["line"] = values["line"] or ""
        values["result"] = values["result"] or ""
        values["attempts"] = int(values.get("attempts") or 1)
        values["first_called_at"] = values.get("first_called_at") or values["called_at"]
        values["call_ids"] = _ids(values.get("call_ids"), values["id"])
        call = object.__new__(cls)
        call.__dict__.update(_CALL_DEFAULTS, **values)
        return call

    def replaced(self, **changes: Any) -> Call:
        """`dataclasses.replace(self, **changes)` without its walk over every field and the
        frozen `__init__`: the list adds claims and waits to every row it shows, and `replace`
        made `list --all` of 5,000 calls twice as slow. Unknown names are refused, as by
        `replace`."""
        new = object.__new__(Call)
        values = new.__dict__
        values.update(self.__dict__)
        values.update(changes)
        if len(values) != len(_CALL_FIELDS):
            unknown = ", ".join(sorted(values.keys() - _CALL_FIELDS))
            raise TypeError(f"Call has no field(s) {unknown}")
        return new


_CALL_FIELDS = frozenset(field.name for field in fields(Call))
# The fields a row does not carry start at their defaults (client None, nothing added).
_CALL_DEFAULTS = {
    field.name: field.default for field in fields(Call) if field.default is not MISSING
}


@dataclass(frozen=True)
class Subscription:
    """A subscription we made at the PBX (the `subscriptions` table). Times are stored UTC;
    `expires` is what the PBX granted (seconds), `requested` what we asked for."""

    id: str
    subscription_type: str
    url: str
    expires: int
    created_at: str
    expires_at: str
    pattern: str | None = None  # None: the whole PBX
    state: SubscriptionState = SubscriptionState.ACTIVE
    requested: int | None = None
    replaced_by: str | None = None
    last_checked_at: str | None = None
    last_error: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row | Mapping[str, Any]) -> Subscription:
        requested = row["requested"]
        return cls(
            id=str(row["id"]),
            subscription_type=str(row["subscription_type"]),
            url=str(row["url"]),
            expires=int(row["expires"]),
            created_at=str(row["created_at"]),
            expires_at=str(row["expires_at"]),
            pattern=row["pattern"],
            state=SubscriptionState(row["state"]),
            requested=None if requested is None else int(requested),
            replaced_by=row["replaced_by"],
            last_checked_at=row["last_checked_at"],
            last_error=row["last_error"],
        )


SUBSCRIPTION_COLUMNS = tuple(field.name for field in fields(Subscription))


def _by_name(cls: type[_Row], row: sqlite3.Row) -> _Row:
    """A dataclass from a row whose columns carry its fields' names, as they are stored."""
    return cls(**{field.name: row[field.name] for field in fields(cls)})


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


@dataclass(frozen=True)
class Abonent:
    """One abonent of the PBX (a person's phone, or a service's), as the register caches the
    PBX's list (the `abonents` table)."""

    user_id: str  # the id events carry as targetId: "9001112201@ip.beeline.ru"
    phone: str | None = None
    extension: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    department: str | None = None
    fetched_at: str | None = None  # stored UTC; None for a list not cached (yet)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Abonent:
        return _by_name(cls, row)

    @classmethod
    def from_pbx(cls, answer: Mapping[str, Any], fetched_at: str | None = None) -> Abonent:
        """An entry of the PBX's answer to GET abonents (camelCase, any value type)."""
        return cls(
            user_id=str(answer.get("userId") or ""),
            phone=_text(answer.get("phone")),
            extension=_text(answer.get("extension")),
            first_name=_text(answer.get("firstName")),
            last_name=_text(answer.get("lastName")),
            department=_text(answer.get("department")),
            fetched_at=fetched_at,
        )

    @property
    def pbx_name(self) -> str:
        """The name the PBX gives: «Иванова Мария», or '' when it gives none."""
        return " ".join(part for part in (self.last_name, self.first_name) if part)


ABONENT_COLUMNS = tuple(field.name for field in fields(Abonent))


@dataclass(frozen=True)
class Holder:
    """The directory client holding a number, with its 1C Ref_Key (None: not from 1C)."""

    id: int
    name: str
    onec_ref: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Holder:
        return cls(int(row["id"]), str(row["name"]), row["onec_ref"])


@dataclass(frozen=True)
class Booking:
    """A booking («Заявка на ремонт») to create in 1C (the `onec_bookings` table), with the
    phone of its call."""

    id: int
    call_id: int | None  # None once the call is gone
    client_ref: str
    token: str  # written into the booking's comment: finds it again after a lost answer
    body: str  # the JSON to POST
    state: str  # 'waiting' or 'created'
    number: str | None
    ref: str | None
    attempts: int
    last_error: str | None
    created_at: str
    updated_at: str
    phone: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Booking:
        return _by_name(cls, row)


@dataclass(frozen=True)
class InboxEntry:
    """A posted body as `inbox` lists it (the body itself: `register.inbox.body`)."""

    id: int
    received_at: str
    state: str  # INBOX_STATES
    reason: str | None
    event_id: str | None
    event_type: str | None
    target_id: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> InboxEntry:
        return _by_name(cls, row)


INBOX_ENTRY_FIELDS = tuple(field.name for field in fields(InboxEntry))


@dataclass(frozen=True)
class Client:
    """A client of the directory («Контрагенты») as `clients list` and `find` show it: its
    numbers (E.164, sorted) and how many register calls it has."""

    id: int
    name: str
    external_id: str | None  # 1C «Код»
    phones: tuple[str, ...]
    calls: int

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Client:
        phones = row["phones"]
        return cls(
            id=int(row["id"]),
            name=str(row["name"]),
            external_id=row["external_id"],
            phones=tuple(phones.split(",")) if phones else (),
            calls=int(row["calls"]),
        )


@dataclass(frozen=True)
class Session:
    """A call session (one extTrackingId) as the processor keeps it: what it decided, and the
    register row that stands for it (a missed call's; None otherwise)."""

    ext_tracking_id: str
    state: SessionState
    last_event_ms: int  # when its latest event was received
    decided_at: str | None
    call_row: int | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Session:
        return cls(
            ext_tracking_id=str(row["ext_tracking_id"]),
            state=SessionState(row["state"]),
            last_event_ms=int(row["last_event_ms"]),
            decided_at=row["decided_at"],
            call_row=None if row["call_row"] is None else int(row["call_row"]),
        )
