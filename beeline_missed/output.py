"""Output shared by every command: JSON for scripts, rich tables for people."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

# rich already honours NO_COLOR and drops colours when stdout is not a terminal.
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def print_table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None
) -> None:
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    console.print(table)


def say(message: str) -> None:
    # soft_wrap: a sentence stays on one line in logs and pipes (rich wraps at 80 there).
    console.print(message, soft_wrap=True)


def fail(message: str) -> None:
    err_console.print(f"Error: {message}", markup=False, soft_wrap=True)
