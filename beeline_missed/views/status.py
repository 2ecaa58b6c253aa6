"""What `status` shows beside the subscriptions: the last catch-up from the PBX statistics and
the last 1C sync, as JSON and as a line."""

from __future__ import annotations

from typing import Any


def onec_sync_status(register: Any, zone: Any) -> dict[str, Any] | None:
    """The last 1C sync for `status --json`, times local; None when 1C was never synced."""
    from beeline_missed import timefmt
    from beeline_missed.onec import sync as onec_sync

    last = onec_sync.last_sync(register)
    if last is not None:
        last["line"] = onec_sync_line(last, zone)
        for key in ("at", "error_at"):
            last[key] = timefmt.iso_local(last.get(key) or None, zone)
    return last


def onec_sync_line(last: dict[str, Any], zone: Any) -> str:
    from beeline_missed.timefmt import show_local

    text = "No 1C sync has succeeded yet"
    if last.get("at"):
        text = (
            f"Last 1C sync: {show_local(last['at'], zone)}, {last['total']} clients (added "
            f"{last['added']}, updated {last['updated']}, removed {last['removed']}, "
            f"skipped {last['skipped']})"
        )
    if last.get("error"):
        text += f"; the latest attempt ({show_local(last['error_at'], zone)}) failed: "
        text += last["error"]
    return text + "."


def reconcile_json(last: dict[str, Any] | None, zone: Any) -> dict[str, Any] | None:
    """`status --json`'s reconciliation object, times local."""
    from beeline_missed import timefmt

    if last is None:
        return None
    shown = dict(last)
    for key in ("at", "date_from", "date_to", "reconciled_to"):
        shown[key] = timefmt.iso_local(last.get(key) or None, zone)
    return shown


def reconcile_line(last: dict[str, Any] | None, zone: Any) -> str:
    from beeline_missed import timefmt

    if last is None:
        return "No reconciliation with the call statistics yet."
    text = "Last reconciliation"
    if last.get("at"):
        text += (
            f": {timefmt.show_local(last['at'], zone)}, {last.get('recovered', 0)} recovered, "
            f"{last['recovered_total']} in total"
        )
    if last.get("error"):
        text += f"; the latest attempt failed: {last['error']}"
    return text + "."
