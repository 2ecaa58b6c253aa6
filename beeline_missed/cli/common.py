"""What the command files share: the per-command state (settings, the register, the clock),
option types and parsers that refuse bad values in one sentence."""

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from beeline_missed.config import MAX_SECONDS, Settings, show_number
from beeline_missed.store import MAX_ROWID


class State:
    """What the global options say, and the settings resolved from them once."""

    def __init__(self, db: str | None) -> None:
        self.db = db
        self._settings: Settings | None = None

    def settings(self, **flags: Any) -> Settings:
        from beeline_missed import config

        if self._settings is None:
            from beeline_missed.errors import SettingsError, UserError

            try:
                self._settings = config.load({"db": self.db})
            except SettingsError:
                raise
            except UserError as exc:
                raise SettingsError(str(exc)) from None
        if flags:
            return config.with_overrides(self._settings, **flags)
        return self._settings

    def existing_db(self) -> Path:
        """The register's path; it must exist. A read command never creates a register: a typo
        in --db or BEELINE_MISSED_HOME would otherwise read as "no missed calls"."""
        path = self.settings().db
        if not path.exists():
            from beeline_missed.store import missing

            raise missing(path)
        return path

    def register(self, create: str | None = None) -> Any:
        """Open the register. Only commands that are meant to start one pass `create`: the
        notice said when they do, so that the new file's place is never a surprise."""
        from beeline_missed.store import Register
        from beeline_missed.views.output import notice

        if create is None:
            return Register.open(self.existing_db())
        path = self.settings().db
        new = not path.exists()
        register = Register.open(path)
        if new:
            notice(create.format(path=path))
        return register


NEW_REGISTER = "Created a new register at {path}."
NEW_REGISTER_RU = "Создан новый реестр звонков: {path}."


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    if obj is None:  # a sub-command invoked on its own, as in some tests
        obj = ctx.find_root().obj = State(None)
    return obj


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


# -- numbers on the command line: every one goes through a bounded type ------------------


def seconds(low: float, high: float = MAX_SECONDS) -> Any:
    """A parser for a finite number of seconds within bounds. A plain float option (and its
    min=) lets NaN through, as every comparison with it is false, and has no upper bound, so
    `nan`, `inf` or `1e999` would only fail later, far from the option, in a sleep or a date."""

    def parse(value: Any) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise typer.BadParameter(f"{value!r} is not a number of seconds.") from None
        if not (math.isfinite(number) and low <= number <= high):
            shown = f"{show_number(low)} to {show_number(high)}"
            raise typer.BadParameter(f"{value!r} is not a number from {shown}.")
        return number

    parse.__name__ = "seconds"  # the option's type as --help names it
    return parse


def choice(values: tuple[str, ...]) -> Any:
    """A parser that takes one of `values` and refuses anything else, naming the valid ones."""

    def parse(value: str) -> str:
        if value not in values:
            raise typer.BadParameter(f"{value!r} is not one of: {', '.join(values)}.")
        return value

    return parse


def _count(value: Any) -> int:
    """A row number or a count: a whole number from 1. SQLite's integers end at MAX_ROWID, and
    binding a greater one overflows (a traceback, not a sentence)."""
    try:
        number = int(str(value), 10)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a whole number.") from None
    if not 1 <= number <= MAX_ROWID:
        raise typer.BadParameter(f"{value!r} is not a whole number from 1 to {MAX_ROWID}.")
    return number


_count.__name__ = "integer"
COUNT = {"parser": _count}

LimitOption = Annotated[
    int | None,
    typer.Option("--limit", **COUNT, help="Show at most N rows (1 or more).", metavar="N"),
]
FmtOption = Annotated[
    str | None,
    typer.Option(
        "--fmt",
        metavar="STYLE",
        help="Print a plain-text table in this style instead: github, grid, plain, simple, pipe, "
        "psql, rst, tsv, html, latex or any other format of the tabulate library.",
    ),
]


def _sort(value: str) -> str:
    from beeline_missed.rules.deadlines import SORTS

    word = value.strip().lower()
    if word not in SORTS:
        raise typer.BadParameter(f"use {' or '.join(SORTS)}, not {value!r}")
    return word


SortOption = Annotated[
    str,
    typer.Option(
        "--sort",
        parser=_sort,
        metavar="ORDER",
        help="time (newest first, the default) or age (the longest waiting case first).",
    ),
]


def _zone(ctx: typer.Context) -> Any:
    from beeline_missed import timefmt

    return timefmt.local_zone(state(ctx).settings().timezone)


def _pbx(ctx: typer.Context) -> Any:
    from beeline_missed.pbx.api import PbxClient

    return PbxClient.from_settings(state(ctx).settings())
