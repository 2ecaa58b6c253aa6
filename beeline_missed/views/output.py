"""Output shared by every command: JSON for scripts, rich tables for people."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


@cache
def _console(stderr: bool) -> Console:
    # Made on first use: a --json command never pays for importing rich.
    # rich already honours NO_COLOR and drops colours when the stream is not a terminal.
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def __getattr__(name: str) -> Any:
    """`output.console` and `output.err_console`, created when first asked for. Name them
    as `output.console` where they are used: `from … import console` makes the console
    (and imports rich) at the import line, even for `--json`."""
    if name == "console":
        return _console(False)
    if name == "err_console":
        return _console(True)
    raise AttributeError(name)


def print_json(data: Any) -> None:
    # Indented for a person at a terminal; one line for pipes and scripts, which also lets
    # json use its C encoder (indenting is pure Python: ~30 ms for a few hundred calls).
    indent = 2 if sys.stdout.isatty() else None
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=indent, default=str) + "\n")


def print_table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None
) -> None:
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    _console(False).print(table)


def table_style(name: str) -> str:
    """`name` when it is one of tabulate's table formats (`--fmt`); else a one-sentence error."""
    from tabulate import tabulate_formats

    from beeline_missed.errors import UserError

    if name not in tabulate_formats:
        known = ", ".join(tabulate_formats)
        raise UserError(
            f"Unknown table style {name!r}; use one of: {known}.",
            ru=f"Неизвестный стиль таблицы {name!r}; возможные: {known}.",
        )
    return name


def print_text(text: str) -> None:
    """Text as it is (a `--fmt` table): no markup, no wrapping at the terminal's width."""
    sys.stdout.write(text + "\n")


def say(message: str) -> None:
    # soft_wrap: a sentence stays on one line in logs and pipes (rich wraps at 80 there).
    _console(False).print(message, soft_wrap=True)


def fail(message: str, russian: bool = False) -> None:
    prefix = "Ошибка" if russian else "Error"
    _console(True).print(f"{prefix}: {message}", markup=False, soft_wrap=True)


def notice(message: str) -> None:
    """A side remark on stderr (a register just created...), apart from the command's output."""
    _console(True).print(message, markup=False, soft_wrap=True)
