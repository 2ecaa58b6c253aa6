"""The PBX subscriptions as people and scripts see them (`subscribe`, `status`): a table whose
ids are never cut, JSON objects, durations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from beeline_missed.pbx.subscriptions import Checked
    from beeline_missed.store.rows import Subscription

# -- subscriptions ------------------------------------------------------------------------

SUBSCRIPTION_HEADERS = ["pattern", "subscription", "state", "time left", "expires at"]


def print_subscriptions(rows: list[list[Any]], title: str) -> None:
    """The output.py table, except that ids are never cut: `unsubscribe ID` needs them whole."""
    from rich.table import Table

    from beeline_missed.views.output import console

    table = Table(title=title)
    for header in SUBSCRIPTION_HEADERS:
        if header == "subscription":
            table.add_column(header, no_wrap=True, min_width=36)
        else:  # wrap inside the cell rather than cut: a cut pattern or date misleads
            table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    console.print(table)


def subscription_json(
    sub: Subscription, zone: Any, checked: Checked | None = None
) -> dict[str, Any]:
    """A subscription for `--json`; with what `status` found at the PBX when it looked."""
    from beeline_missed import timefmt

    shown: dict[str, Any] = {
        "subscriptionId": sub.id,
        "pattern": sub.pattern,
        "subscriptionType": sub.subscription_type,
        "url": sub.url,
        "expires": sub.expires,
        "requested": sub.requested,
        "created_at": timefmt.iso_local(sub.created_at, zone),
        "expires_at": timefmt.iso_local(sub.expires_at, zone),
        "last_checked_at": timefmt.iso_local(sub.last_checked_at, zone),
        "last_error": sub.last_error,
    }
    if checked is not None:
        shown["state"] = checked.live_state
        shown["seconds_left"] = checked.seconds_left
    return shown


def duration(seconds: int) -> str:
    from beeline_missed.timefmt import duration

    return duration(seconds, "en")
