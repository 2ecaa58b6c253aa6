"""The appointment journal «Записаться» opens: a URL or a command, from settings.journal.

The template may hold {phone} (E.164, empty when hidden) and {client} (the name, empty when
unknown), and, after a booking created in 1C, {booking_number} and {booking_ref} (its Number
and Ref_Key; empty otherwise). In a URL they are percent-encoded; a command is split like a
shell line first and each argument filled in afterwards, so a client's name can never become
extra arguments or shell syntax. Nothing runs through a shell.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import urllib.parse
from dataclasses import dataclass
from typing import Any

from beeline_missed.errors import UserError

NOT_CONFIGURED = (
    "Журнал записи не настроен: запишите клиента в журнал записи на ремонт в 1С вручную "
    "(чтобы он открывался сам, задайте journal в config.toml)."
)
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_FIELDS = ("phone", "client", "booking_number", "booking_ref")


@dataclass(frozen=True)
class Target:
    kind: str  # 'url' | 'command'
    url: str | None = None
    argv: tuple[str, ...] = ()

    def describe(self) -> str:
        return self.url if self.kind == "url" else shlex.join(self.argv)


def _fill(template: str, values: dict[str, str]) -> str:
    # Only our placeholders are replaced; other braces (JSON in a URL) stay as they are.
    out = template
    for name in _FIELDS:
        out = out.replace("{" + name + "}", values[name])
    return out


def build(
    template: str,
    phone: str | None,
    client: str | None,
    booking: dict[str, Any] | None = None,
) -> Target:
    """Where the journal is, filled for one call."""
    template = template.strip()
    if not template:
        raise UserError(NOT_CONFIGURED)
    booking = booking or {}
    raw = {
        "phone": phone or "",
        "client": client or "",
        "booking_number": str(booking.get("number") or ""),
        "booking_ref": str(booking.get("ref") or ""),
    }
    if _URL.match(template):
        quoted = {key: urllib.parse.quote(value, safe="") for key, value in raw.items()}
        return Target("url", url=_fill(template, quoted))
    try:
        parts = shlex.split(template)
    except ValueError as exc:
        raise UserError(f"Настройка journal — не команда и не адрес: {exc}.") from None
    if not parts:
        raise UserError(NOT_CONFIGURED)
    return Target("command", argv=tuple(_fill(part, raw) for part in parts))


def open_target(target: Target) -> None:
    """Open the journal without waiting for it; raises UserError when it cannot start."""
    if target.kind == "url":
        import webbrowser

        if not webbrowser.open(target.url or ""):
            raise UserError(f"Не удалось открыть браузер для {target.url}.")
        return
    try:
        # A new session: closing the terminal does not close the journal.
        subprocess.Popen(
            list(target.argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as exc:
        raise UserError(
            f"Не удалось запустить журнал записи «{target.argv[0]}»: {exc.strerror}."
        ) from None


def open_for_call(
    template: str | None,
    phone: str | None,
    client: str | None,
    booking: dict[str, Any] | None = None,
) -> str:
    """Open the journal if one is configured; returns the sentence to show staff."""
    if not template or not template.strip():
        return NOT_CONFIGURED
    target = build(template, phone, client, booking)
    open_target(target)
    return f"Открыт журнал записи: {target.describe()}"
