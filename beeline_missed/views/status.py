"""What `status` and `reconcile` show of the catch-up from the PBX statistics (a run's summary,
the last run) and of the last 1C sync, as JSON and as text."""

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


RUN_HEADERS = ["window", "records", "missed inbound", "already known", "recovered", "auto-closed"]


def reconcile_run_json(summary: Any, closed: list[int], zone: Any) -> dict[str, Any]:
    """`reconcile --json`: the run's summary, what it auto-closed, times local."""
    from beeline_missed import timefmt

    data = summary.as_dict()
    data["auto_closed"] = closed
    data["date_from"] = timefmt.iso_local(summary.date_from, zone)
    data["date_to"] = timefmt.iso_local(summary.date_to, zone)
    data["at"] = timefmt.iso_local(summary.at, zone)
    return data


def reconcile_run_row(summary: Any, closed: list[int], zone: Any) -> list[Any]:
    """The run's one row under RUN_HEADERS."""
    from beeline_missed import timefmt

    shown_from = timefmt.show_local(summary.date_from, zone)
    window = f"{shown_from} – {timefmt.show_local(summary.date_to, zone)}"
    recovered = len(summary.registered)
    return [window, summary.records, summary.missed, summary.known, recovered, len(closed)]


def reconcile_run_lines(summary: Any) -> list[str]:
    """The sentences after the table: skipped records, and what was recovered."""
    lines = []
    if summary.unusable:
        lines.append(
            f"{summary.unusable} statistics record(s) had no usable start time and were skipped."
        )
    if summary.registered:
        ids = ", ".join(map(str, summary.registered))
        lines.append(f"Recovered missed calls: {ids} (see `beeline-missed list`).")
    else:
        lines.append("Nothing to recover: the register has every missed call of the window.")
    return lines
