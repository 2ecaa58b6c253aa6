"""Register rows as people and scripts see them: JSON objects, table rows, the card's text.

Pure functions of a row and a time zone; the CLI, the live view and the panel share them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import tzinfo
from typing import Any

from beeline_missed import phones, timefmt
from beeline_missed.card import status_label
from beeline_missed.detection import LOST_AT_LABELS

# Staff read these headers, so they are in Russian.
LIST_HEADERS = (
    "№",
    "Дата и время",
    "Номер",
    "Клиент",
    "Попыток",
    "Линия",
    "Статус",
    "Результат",
    "Кто",
)
NEW_MARK = "новый"


def call_json(row: Mapping[str, Any], zone: tzinfo) -> dict[str, Any]:
    """The object `list --json` and `card --json` print."""
    return {
        "id": row["id"],
        "phone": row.get("phone") or None,
        "client": row.get("client") or None,
        "called_at": timefmt.iso_local(row.get("called_at"), zone),
        "line": row.get("line") or "",
        "status": row["status"],
        "status_label": status_label(row["status"]),
        "result": row.get("result") or "",
        "user": row.get("user") or None,
        "handled_at": timefmt.iso_local(row.get("handled_at"), zone),
        "closed_by": row.get("closed_by"),
        "outside_hours": bool(row.get("outside_hours")),
        # Where the call was lost (voice_menu, queue, ringing, busy, forwarded; null when the
        # statistics catch-up registered it) and the outside number it was forwarded to.
        "lost_at": row.get("lost_at"),
        "lost_at_label": LOST_AT_LABELS.get(row.get("lost_at") or ""),
        "forwarded_to": row.get("forwarded_to"),
        "version": row.get("version"),
        # One open case per caller: how often they tried, since when, and which calls.
        "attempts": int(row.get("attempts") or 1),
        "first_called_at": timefmt.iso_local(
            row.get("first_called_at") or row.get("called_at"), zone
        ),
        "call_ids": list(row.get("call_ids") or [row["id"]]),
    }


def calls_json(rows: Iterable[Mapping[str, Any]], zone: tzinfo) -> list[dict[str, Any]]:
    return [call_json(row, zone) for row in rows]


def one_line(text: str | None) -> str:
    """A multi-line result shown in one table cell."""
    return " / ".join(part.strip() for part in (text or "").splitlines() if part.strip())


def table_row(row: Mapping[str, Any], zone: tzinfo) -> list[str]:
    """Cells for a rich table: data escaped, so a client named «[b]…» prints as written."""
    from rich.markup import escape

    cells = [
        str(row["id"]),
        timefmt.show_local(row.get("called_at"), zone),
        phones.display(row.get("phone")),
        row.get("client") or "",
        str(row.get("attempts") or 1),
        row.get("line") or "",
        status_label(row["status"]),
        one_line(row.get("result")),
        row.get("user") or "",
    ]
    return [escape(cell) for cell in cells]


def table_rows(rows: Iterable[Mapping[str, Any]], zone: tzinfo) -> list[list[str]]:
    return [table_row(row, zone) for row in rows]


def is_new(row: Mapping[str, Any], new_ids: Collection[int]) -> bool:
    return int(row["id"]) in new_ids


def card_lines(row: Mapping[str, Any], zone: tzinfo) -> list[tuple[str, str]]:
    """The card's fields in the order staff read them."""
    number = phones.display(row.get("phone"))
    client = row.get("client")
    lines = [
        ("Номер", f"{number} — {client}" if client else number),
        ("Дата и время", timefmt.show_local(row.get("called_at"), zone)),
        ("Попыток", attempts_text(row, zone)),
        ("Линия", row.get("line") or ""),
    ]
    lines += where_lost_lines(row)
    return [
        *lines,
        ("Статус", status_label(row["status"])),
        ("Результат", row.get("result") or ""),
        ("Кто перезвонил", row.get("user") or ""),
    ]


def where_lost_lines(row: Mapping[str, Any]) -> list[tuple[str, str]]:
    """«Где потерян» and «Переадресован на», when detection knows them."""
    lines = []
    label = LOST_AT_LABELS.get(row.get("lost_at") or "")
    if label:
        lines.append(("Где потерян", label))
    if row.get("forwarded_to"):
        lines.append(("Переадресован на", phones.display(row["forwarded_to"])))
    return lines


def attempts_text(row: Mapping[str, Any], zone: tzinfo) -> str:
    """'3, первая 27.11.2026 09:00' for a caller who tried several times; '1' otherwise."""
    attempts = int(row.get("attempts") or 1)
    if attempts == 1:
        return "1"
    return f"{attempts}, первая {timefmt.show_local(row.get('first_called_at'), zone)}"
