"""The life of the PBX subscriptions we hold: make, check, renew, replace, delete.

Used by the `subscribe`, `status` and `unsubscribe` commands and by the daemon, which calls
keep_alive(), check() and on_terminated() on its own schedule. Everything here is synchronous and
never sleeps; every step is recorded in the register as soon as the PBX has answered, so a crash
between two calls loses nothing.

Renewal order matters: PUT the successor first and record it, then retire the old row, then
DELETE the old one at the PBX. There is never a moment without a live subscription, and the
overlap lasts only one round trip (duplicate events in that window are deduplicated on intake).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from beeline_missed import timefmt
from beeline_missed.errors import UserError

if TYPE_CHECKING:
    from beeline_missed.config import Settings
    from beeline_missed.pbx.api import PbxClient
    from beeline_missed.store import Register

ACTIVE = "active"
REPLACED = "replaced"
DELETED = "deleted"
TERMINATED = "terminated"
GONE = "gone"
# States `status` reports for a subscription we hold.
LIVE_ACTIVE = "active"
LIVE_EXPIRED = "expired"
LIVE_GONE = "gone"
SUBSCRIPTION_TYPES = ("BASIC_CALL", "ADVANCED_CALL")


class KeepAliveError(UserError):
    """Some subscriptions could not be renewed or checked; each failure is in last_error.

    `actions` lists what did succeed; `retryable` is True when every failure was the PBX's
    trouble (network, timeout, 5xx), so the daemon should back off and try again.
    """

    def __init__(self, message: str, actions: list[str], errors: list[Exception]) -> None:
        super().__init__(message)
        self.actions = actions
        self.errors = errors
        self.retryable = all(getattr(e, "retryable", False) for e in errors)


def _now(now: datetime | float | None) -> datetime:
    """`now` as an aware datetime; the daemon may pass epoch seconds (time.time())."""
    if now is None:
        return timefmt.now_utc()
    if isinstance(now, int | float):
        return datetime.fromtimestamp(now, UTC)
    return now


def _row(
    answer: dict[str, Any],
    pattern: str | None,
    subscription_type: str,
    url: str,
    requested: int,
    now: datetime,
) -> dict[str, Any]:
    granted = int(answer["expires"])
    return {
        "id": answer["subscriptionId"],
        "pattern": pattern,
        "subscription_type": subscription_type,
        "url": url,
        "expires": granted,
        "requested": requested,
        "created_at": timefmt.to_stored(now),
        # Counted from before the PUT, so we never believe it lives longer than it does.
        "expires_at": timefmt.to_stored(now + timedelta(seconds=granted)),
        "state": ACTIVE,
        "last_checked_at": timefmt.to_stored(now),
    }


def seconds_left(row: dict[str, Any], now: datetime) -> int:
    return int((timefmt.parse_stored(row["expires_at"]) - now).total_seconds())


def validate(expires: int, subscription_type: str, url: str | None) -> str:
    if not url:
        raise UserError(
            "No URL for the PBX to post events to: give --url or set BEELINE_MISSED_PUBLIC_URL."
        )
    if not url.startswith(("http://", "https://")):
        raise UserError(f"The events URL must start with http:// or https://, not {url!r}.")
    if subscription_type not in SUBSCRIPTION_TYPES:
        raise UserError(f"Subscription type must be one of {', '.join(SUBSCRIPTION_TYPES)}.")
    if expires <= 0:
        raise UserError("--expires must be a positive number of seconds.")
    return url


def abonent_patterns(client: PbxClient) -> list[str]:
    """One pattern per abonent of the PBX (its userId, the id events carry as targetId)."""
    patterns = []
    for abonent in client.abonents():
        pattern = abonent.get("userId") or abonent.get("phone") or abonent.get("extension")
        if pattern and pattern not in patterns:
            patterns.append(str(pattern))
    if not patterns:
        raise UserError("The PBX lists no abonents to subscribe.")
    return patterns


def _put(
    client: PbxClient,
    pattern: str | None,
    expires: int,
    subscription_type: str,
    url: str,
    now: datetime | None,
) -> dict[str, Any]:
    """PUT one subscription at the PBX; returns its row (not yet recorded)."""
    moment = _now(now)
    answer = client.subscribe(pattern, expires, subscription_type, url)
    return _row(answer, pattern, subscription_type, url, expires, moment)


def _retire(
    register: Register, client: PbxClient, old: dict[str, Any], new_row: dict[str, Any], state: str
) -> str:
    """Record `new_row` as the successor of `old`, then DELETE `old` at the PBX."""
    from beeline_missed.pbx.api import PbxError, PbxNotFound

    if not register.subscriptions.replace(old["id"], new_row, old_state=state):
        # Someone else (the daemon, another command) retired it first: do not keep a twin.
        with contextlib.suppress(PbxError):  # if this fails too, it expires by itself
            client.unsubscribe(new_row["id"])
        return f"{old['id']} was already replaced elsewhere; dropped the twin {new_row['id']}"
    if state == REPLACED:
        try:
            client.unsubscribe(old["id"])
        except PbxNotFound:
            pass  # expired meanwhile: nothing to delete
        except PbxError as exc:
            # The successor is live; the old one ends by itself. keep_alive retries the DELETE.
            register.subscriptions.update(old["id"], last_error=str(exc))
    return f"{_label(old)}: {old['id']} → {new_row['id']} (granted {new_row['expires']} s)"


WHOLE_PBX = "whole PBX"


def _label(row: dict[str, Any]) -> str:
    return row["pattern"] or WHOLE_PBX


def subscribe(
    register: Register,
    client: PbxClient,
    patterns: Sequence[str | None],
    expires: int,
    subscription_type: str,
    url: str | None,
    now: datetime | float | None = None,
) -> list[dict[str, Any]]:
    """One PUT per pattern, each recorded with the expires the PBX granted.

    A pattern we already hold for the same URL and type is renewed (new first, then the old one
    deleted) rather than doubled, since two live subscriptions deliver every event twice.
    """
    from beeline_missed.pbx.api import PbxError

    url = validate(expires, subscription_type, url)
    held = {
        (row["pattern"], row["url"], row["subscription_type"]): row
        for row in register.subscriptions.rows((ACTIVE,))
    }
    made: list[dict[str, Any]] = []
    for pattern in dict.fromkeys(p or None for p in patterns):  # once each, in order
        try:
            row = _put(client, pattern, expires, subscription_type, url, now)
        except PbxError as exc:
            if made:
                raise type(exc)(
                    f"{str(exc).rstrip('.')}; the {len(made)} subscription(s) made before it "
                    "are recorded.",
                    status=exc.status,
                    error_code=exc.error_code,
                ) from None
            raise
        old = held.get((pattern, url, subscription_type))
        if old is not None:
            _retire(register, client, old, row, REPLACED)
        else:
            register.subscriptions.insert(row)
        made.append(register.subscriptions.get(row["id"]) or row)
    return made


def status(
    register: Register, client: PbxClient, now: datetime | float | None = None
) -> list[dict]:
    """Every subscription we hold, checked live: active, expired or gone, and time left.

    Only looks: it does not retire anything (re-subscribing is check()'s job), so a gone
    subscription stays held until the daemon or the user acts on it.
    """
    from beeline_missed.pbx.api import PbxNotFound

    moment = _now(now)
    report = []
    for row in register.subscriptions.rows((ACTIVE,)):
        left = seconds_left(row, moment)
        try:
            client.get_subscription(row["id"])
            live = LIVE_ACTIVE  # whatever our clock says, the PBX still serves it
        except PbxNotFound:
            live = LIVE_EXPIRED if left <= 0 else LIVE_GONE
        register.subscriptions.update(row["id"], last_checked_at=timefmt.to_stored(moment))
        report.append({**row, "live_state": live, "seconds_left": max(0, left)})
    return report


def unsubscribe(
    register: Register,
    client: PbxClient,
    ids: Iterable[str] | None,
) -> list[dict[str, Any]]:
    """DELETE at the PBX and mark deleted; `ids` None means every subscription we hold.

    The row is marked before the DELETE so that the termination event the PBX then sends does
    not make the daemon re-subscribe; if the DELETE fails the row is active again.
    """
    from beeline_missed.pbx.api import PbxError, PbxNotFound

    if ids is None:
        targets = [row["id"] for row in register.subscriptions.rows((ACTIVE,))]
    else:
        targets = list(dict.fromkeys(ids))
    results = []
    for sub_id in targets:
        row = register.subscriptions.get(sub_id)
        previous = row["state"] if row else None
        if row is not None:
            register.subscriptions.update(sub_id, state=DELETED)
        try:
            client.unsubscribe(sub_id)
            outcome = "deleted"
        except PbxNotFound:
            outcome = "already gone at the PBX"
        except PbxError as exc:
            if row is not None:
                register.subscriptions.update(sub_id, state=previous, last_error=str(exc))
            raise
        if row is None:
            outcome += " (it was not in the register)"
        pattern = row["pattern"] if row else None
        results.append({"subscriptionId": sub_id, "pattern": pattern, "result": outcome})
    return results


def _renew_due(row: dict[str, Any], settings: Settings, now: datetime) -> bool:
    return seconds_left(row, now) < settings.renew_fraction * int(row["expires"])


def _successor(
    client: PbxClient, row: dict[str, Any], settings: Settings, now: datetime
) -> dict[str, Any]:
    asked = int(row.get("requested") or settings.subscription_expires)
    return _put(client, row["pattern"], asked, row["subscription_type"], row["url"], now)


def _run(
    register: Register,
    rows: list[dict[str, Any]],
    action: Callable[[dict[str, Any]], str | None],
) -> list[str]:
    """Apply `action` to each row; record failures in last_error and raise them together.

    A PBX-wide failure (token rejected, PBX unreachable) stops at once: every other call would
    fail the same way.
    """
    from beeline_missed.pbx.api import PbxAuthError, PbxError, PbxTimeout, PbxUnreachable

    actions: list[str] = []
    errors: list[Exception] = []
    for row in rows:
        try:
            done = action(row)
        except PbxError as exc:
            register.subscriptions.update(row["id"], last_error=str(exc))
            errors.append(exc)
            if isinstance(exc, PbxAuthError | PbxUnreachable | PbxTimeout):
                break
            continue
        if done:
            actions.append(done)
    if errors:
        raise KeepAliveError(str(errors[0]), actions, errors)
    return actions


def keep_alive(
    register: Register, client: PbxClient, settings: Settings, now: datetime | float | None = None
) -> list[str]:
    """Renew every active subscription with less than renew_fraction of its granted life left.

    Also retries the DELETE of replaced subscriptions whose deletion failed and that are not yet
    expired. Returns what was done; raises KeepAliveError after recording each failure.
    """
    from beeline_missed.pbx.api import PbxError, PbxNotFound

    moment = _now(now)
    actions: list[str] = []
    for old in register.subscriptions.rows((REPLACED,)):
        if not old["last_error"] or seconds_left(old, moment) <= 0:
            continue
        try:
            client.unsubscribe(old["id"])
        except PbxNotFound:
            pass
        except PbxError:
            continue  # still failing; it expires by itself soon
        register.subscriptions.update(old["id"], last_error=None)
        actions.append(f"deleted replaced subscription {old['id']}")

    def renew(row: dict[str, Any]) -> str | None:
        if not _renew_due(row, settings, moment):
            return None
        new_row = _successor(client, row, settings, moment)
        return "renewed " + _retire(register, client, row, new_row, REPLACED)

    return actions + _run(register, register.subscriptions.rows((ACTIVE,)), renew)


def check(
    register: Register,
    client: PbxClient,
    now: datetime | float | None = None,
    settings: Settings | None = None,
) -> list[str]:
    """GET each active subscription; re-subscribe the ones the PBX no longer knows.

    `settings` gives the expires asked for rows recorded without one (default: loaded)."""
    from beeline_missed.config import load
    from beeline_missed.pbx.api import PbxNotFound

    moment = _now(now)
    stamp = timefmt.to_stored(moment)

    def verify(row: dict[str, Any]) -> str | None:
        try:
            client.get_subscription(row["id"])
        except PbxNotFound:
            new_row = _successor(client, row, settings or load(), moment)
            new_row["last_checked_at"] = stamp
            return "re-subscribed gone " + _retire(register, client, row, new_row, GONE)
        register.subscriptions.update(row["id"], last_checked_at=stamp, last_error=None)
        return None

    return _run(register, register.subscriptions.rows((ACTIVE,)), verify)


def on_terminated(
    register: Register,
    client: PbxClient,
    subscription_id: str,
    now: datetime | float | None = None,
    settings: Settings | None = None,
) -> str | None:
    """The PBX ended a subscription: re-subscribe at once if it is one we hold.

    Returns what was done, or None when we do not hold it (it was replaced or deleted on
    purpose). If the PUT fails, the row stays active with last_error, so check() retries.
    """
    from beeline_missed.config import load

    row = register.subscriptions.get(subscription_id)
    if row is None or row["state"] != ACTIVE:
        return None
    moment = _now(now)

    def resubscribe(old: dict[str, Any]) -> str:
        new_row = _successor(client, old, settings or load(), moment)
        return "re-subscribed terminated " + _retire(register, client, old, new_row, TERMINATED)

    done = _run(register, [row], resubscribe)
    return done[0] if done else None


def last_event_at(register: Register) -> str | None:
    """When the daemon last received an event (stored UTC), as it records it."""
    return register.meta.get("last_event_at")


def upkeep_error(register: Register) -> str | None:
    """The daemon's last failure keeping subscriptions alive; None once it succeeds again."""
    return register.meta.get("keeper_error")
