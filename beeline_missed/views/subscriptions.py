"""The PBX subscriptions as people and scripts see them (`subscribe`, `status`): a table whose
ids are never cut, JSON objects, durations."""

from __future__ import annotations

from typing import Any

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


def subscription_json(row: dict[str, Any], zone: Any) -> dict[str, Any]:
    from beeline_missed import timefmt

    shown = {
        "subscriptionId": row["id"],
        "pattern": row["pattern"],
        "subscriptionType": row["subscription_type"],
        "url": row["url"],
        "expires": row["expires"],
        "requested": row.get("requested"),
        "created_at": timefmt.iso_local(row["created_at"], zone),
        "expires_at": timefmt.iso_local(row["expires_at"], zone),
        "last_checked_at": timefmt.iso_local(row.get("last_checked_at"), zone),
        "last_error": row.get("last_error"),
    }
    if "live_state" in row:
        shown["state"] = row["live_state"]
        shown["seconds_left"] = row["seconds_left"]
    return shown


def duration(seconds: int) -> str:
    from beeline_missed.timefmt import duration

    return duration(seconds, "en")
