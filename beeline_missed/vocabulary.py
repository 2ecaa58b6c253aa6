"""The register's words, defined once: call statuses, session states, sources, who closed a
call, which way an answered call went, where a call was lost — each with the Russian label
staff and managers read — and the states of our PBX subscriptions.

They are `StrEnum`s: a member is the very string the register stores and `--json` prints
('missed' == CallStatus.MISSED), so SQL, JSON and comparisons need no conversion. SQL text in
the register spells the same values inside its statements.
"""

from __future__ import annotations

from enum import StrEnum


class CallStatus(StrEnum):
    """A register row's status."""

    MISSED = "missed"
    CALLED_BACK = "called_back"


STATUS_LABELS: dict[str, str] = {
    CallStatus.MISSED: "Пропущен",
    CallStatus.CALLED_BACK: "Перезвонили",
}


class SessionState(StrEnum):
    """What detection decided about a call session."""

    PENDING = "pending"
    MISSED = "missed"
    ANSWERED = "answered"
    IGNORED = "ignored"  # internal or outgoing


class Source(StrEnum):
    """Who registered a call: the hook's events, or the statistics catch-up."""

    HOOK = "hook"
    RECONCILE = "reconcile"


SOURCE_LABELS: dict[str, str] = {Source.HOOK: "веб-хук", Source.RECONCILE: "сверка статистики"}


class ClosedBy(StrEnum):
    """Who closed a call: staff with the card, or auto-closing."""

    STAFF = "staff"
    AUTO = "auto"


CLOSED_BY_LABELS: dict[str, str] = {ClosedBy.STAFF: "вручную", ClosedBy.AUTO: "автоматически"}


class Direction(StrEnum):
    """Which way an answered call with a missed caller's number went (auto-closing, attempts)."""

    INCOMING = "incoming"  # the client called in again
    OUTGOING = "outgoing"  # staff called the client


class LostAt(StrEnum):
    """Where a missed call was lost: the furthest stage the caller reached."""

    FORWARDED = "forwarded"
    QUEUE = "queue"
    RINGING = "ringing"
    BUSY = "busy"
    VOICE_MENU = "voice_menu"


LOST_AT_LABELS: dict[str, str] = {
    LostAt.VOICE_MENU: "голосовое меню",
    LostAt.QUEUE: "очередь",
    LostAt.RINGING: "не ответили",
    LostAt.BUSY: "занято",
    LostAt.FORWARDED: "переадресован",
}


class SubscriptionState(StrEnum):
    """A subscription we made, as the register records it."""

    ACTIVE = "active"  # held: the daemon renews it
    REPLACED = "replaced"  # renewed: its successor is `replaced_by`
    DELETED = "deleted"  # `unsubscribe`
    TERMINATED = "terminated"  # the PBX ended it and we subscribed again
    GONE = "gone"  # the PBX no longer knew it and we subscribed again


class LiveState(StrEnum):
    """A held subscription as the PBX answers for it (`status`)."""

    ACTIVE = "active"
    EXPIRED = "expired"  # not known to the PBX, and past its time by our clock
    GONE = "gone"  # not known to the PBX before its time


LIVE_STATE_LABELS: dict[str, str] = {
    LiveState.ACTIVE: "действует",
    LiveState.EXPIRED: "истекла",
    LiveState.GONE: "нет на АТС",
}
