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
import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from beeline_missed import timefmt
from beeline_missed.errors import UserError
from beeline_missed.store.rows import Subscription
from beeline_missed.vocabulary import LiveState, SubscriptionState

if TYPE_CHECKING:
    from beeline_missed.config import Settings
    from beeline_missed.pbx.api import PbxClient
    from beeline_missed.store import Register

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


@dataclass(frozen=True)
class Checked:
    """A held subscription as `status` found it at the PBX."""

    subscription: Subscription
    live_state: LiveState
    seconds_left: int  # by our clock; 0 once past


def _made(
    answer: dict[str, Any],
    pattern: str | None,
    subscription_type: str,
    url: str,
    requested: int,
    now: datetime,
) -> Subscription:
    granted = int(answer["expires"])
    return Subscription(
        id=str(answer["subscriptionId"]),
        pattern=pattern,
        subscription_type=subscription_type,
        url=url,
        expires=granted,
        requested=requested,
        created_at=timefmt.to_stored(now),
        # Counted from before the PUT, so we never believe it lives longer than it does.
        expires_at=timefmt.to_stored(now + timedelta(seconds=granted)),
        last_checked_at=timefmt.to_stored(now),
    )


def seconds_left(subscription: Subscription, now: datetime) -> int:
    return int((timefmt.parse_stored(subscription.expires_at) - now).total_seconds())


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
) -> Subscription:
    """PUT one subscription at the PBX; returns it (not yet recorded)."""
    moment = _now(now)
    answer = client.subscribe(pattern, expires, subscription_type, url)
    return _made(answer, pattern, subscription_type, url, expires, moment)


def _retire(
    register: Register,
    client: PbxClient,
    old: Subscription,
    successor: Subscription,
    state: SubscriptionState,
) -> str:
    """Record `successor` as the successor of `old`, then DELETE `old` at the PBX."""
    from beeline_missed.pbx.api import PbxError, PbxNotFound

    if not register.subscriptions.replace(old.id, successor, old_state=state):
        # Someone else (the daemon, another command) retired it first: do not keep a twin.
        with contextlib.suppress(PbxError):  # if this fails too, it expires by itself
            client.unsubscribe(successor.id)
        return f"{old.id} was already replaced elsewhere; dropped the twin {successor.id}"
    if state == SubscriptionState.REPLACED:
        try:
            client.unsubscribe(old.id)
        except PbxNotFound:
            pass  # expired meanwhile: nothing to delete
        except PbxError as exc:
            # The successor is live; the old one ends by itself. keep_alive retries the DELETE.
            register.subscriptions.update(old.id, last_error=str(exc))
    return f"{label(old)}: {old.id} → {successor.id} (granted {successor.expires} s)"


WHOLE_PBX = "whole PBX"


def label(subscription: Subscription) -> str:
    """What a subscription covers, as admins read it: its pattern, or the whole PBX."""
    return subscription.pattern or WHOLE_PBX


def subscribe(
    register: Register,
    client: PbxClient,
    patterns: Sequence[str | None],
    expires: int,
    subscription_type: str,
    url: str | None,
    now: datetime | float | None = None,
) -> list[Subscription]:
    """One PUT per pattern, each recorded with the expires the PBX granted.

    A pattern we already hold for the same URL and type is renewed (new first, then the old one
    deleted) rather than doubled, since two live subscriptions deliver every event twice.
    """
    from beeline_missed.pbx.api import PbxError

    url = validate(expires, subscription_type, url)
    held = {
        (sub.pattern, sub.url, sub.subscription_type): sub for sub in register.subscriptions.rows()
    }
    made: list[Subscription] = []
    for pattern in dict.fromkeys(p or None for p in patterns):  # once each, in order
        try:
            new = _put(client, pattern, expires, subscription_type, url, now)
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
            _retire(register, client, old, new, SubscriptionState.REPLACED)
        else:
            register.subscriptions.insert(new)
        made.append(register.subscriptions.get(new.id) or new)
    return made


def status(
    register: Register, client: PbxClient, now: datetime | float | None = None
) -> list[Checked]:
    """Every subscription we hold, checked live: active, expired or gone, and time left.

    Only looks: it does not retire anything (re-subscribing is check()'s job), so a gone
    subscription stays held until the daemon or the user acts on it.
    """
    from beeline_missed.pbx.api import PbxNotFound

    moment = _now(now)
    report = []
    stamp = timefmt.to_stored(moment)
    for sub in register.subscriptions.rows():
        left = seconds_left(sub, moment)
        try:
            client.get_subscription(sub.id)
            live = LiveState.ACTIVE  # whatever our clock says, the PBX still serves it
        except PbxNotFound:
            live = LiveState.EXPIRED if left <= 0 else LiveState.GONE
        register.subscriptions.update(sub.id, last_checked_at=stamp)
        checked = dataclasses.replace(sub, last_checked_at=stamp)
        report.append(Checked(checked, live, max(0, left)))
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
        targets = [sub.id for sub in register.subscriptions.rows()]
    else:
        targets = list(dict.fromkeys(ids))
    results = []
    for sub_id in targets:
        held = register.subscriptions.get(sub_id)
        if held is not None:
            register.subscriptions.update(sub_id, state=SubscriptionState.DELETED)
        try:
            client.unsubscribe(sub_id)
            outcome = "deleted"
        except PbxNotFound:
            outcome = "already gone at the PBX"
        except PbxError as exc:
            if held is not None:
                register.subscriptions.update(sub_id, state=held.state, last_error=str(exc))
            raise
        if held is None:
            outcome += " (it was not in the register)"
        pattern = held.pattern if held else None
        results.append({"subscriptionId": sub_id, "pattern": pattern, "result": outcome})
    return results


def _renew_due(sub: Subscription, settings: Settings, now: datetime) -> bool:
    return seconds_left(sub, now) < settings.renew_fraction * sub.expires


def _successor(
    client: PbxClient, sub: Subscription, settings: Settings, now: datetime
) -> Subscription:
    asked = sub.requested or settings.subscription_expires
    return _put(client, sub.pattern, asked, sub.subscription_type, sub.url, now)


def _run(
    register: Register,
    subs: list[Subscription],
    action: Callable[[Subscription], str | None],
) -> list[str]:
    """Apply `action` to each row; record failures in last_error and raise them together.

    A PBX-wide failure (token rejected, PBX unreachable) stops at once: every other call would
    fail the same way.
    """
    from beeline_missed.pbx.api import PbxAuthError, PbxError, PbxTimeout, PbxUnreachable

    actions: list[str] = []
    errors: list[Exception] = []
    for sub in subs:
        try:
            done = action(sub)
        except PbxError as exc:
            register.subscriptions.update(sub.id, last_error=str(exc))
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
    for old in register.subscriptions.rows((SubscriptionState.REPLACED,)):
        if not old.last_error or seconds_left(old, moment) <= 0:
            continue
        try:
            client.unsubscribe(old.id)
        except PbxNotFound:
            pass
        except PbxError:
            continue  # still failing; it expires by itself soon
        register.subscriptions.update(old.id, last_error=None)
        actions.append(f"deleted replaced subscription {old.id}")

    def renew(sub: Subscription) -> str | None:
        if not _renew_due(sub, settings, moment):
            return None
        successor = _successor(client, sub, settings, moment)
        return "renewed " + _retire(register, client, sub, successor, SubscriptionState.REPLACED)

    return actions + _run(register, register.subscriptions.rows(), renew)


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

    def verify(sub: Subscription) -> str | None:
        try:
            client.get_subscription(sub.id)
        except PbxNotFound:
            successor = _successor(client, sub, settings or load(), moment)
            return "re-subscribed gone " + _retire(
                register, client, sub, successor, SubscriptionState.GONE
            )
        register.subscriptions.update(sub.id, last_checked_at=stamp, last_error=None)
        return None

    return _run(register, register.subscriptions.rows(), verify)


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

    held = register.subscriptions.get(subscription_id)
    if held is None or held.state != SubscriptionState.ACTIVE:
        return None
    moment = _now(now)

    def resubscribe(old: Subscription) -> str:
        successor = _successor(client, old, settings or load(), moment)
        return "re-subscribed terminated " + _retire(
            register, client, old, successor, SubscriptionState.TERMINATED
        )

    done = _run(register, [held], resubscribe)
    return done[0] if done else None


def last_event_at(register: Register) -> str | None:
    """When the daemon last received an event (stored UTC), as it records it."""
    return register.meta.get("last_event_at")


def upkeep_error(register: Register) -> str | None:
    """The daemon's last failure keeping subscriptions alive; None once it succeeds again."""
    return register.meta.get("keeper_error")
