"""The command line: parses options and calls the modules that hold the rules.

Heavy imports stay inside the commands so that `--help` answers fast.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from beeline_missed.errors import UserError


class AppGroup(TyperGroup):
    """Turns every user-facing error into one sentence on stderr and a non-zero exit."""

    def invoke(self, ctx: click.Context) -> Any:
        from beeline_missed.output import fail

        try:
            return super().invoke(ctx)
        except UserError as exc:
            fail(str(exc))
            ctx.exit(exc.exit_code)
        except sqlite3.Error as exc:
            fail(f"The register could not be used: {exc}.")
            ctx.exit(1)
        except KeyboardInterrupt:
            ctx.exit(130)


app = typer.Typer(
    cls=AppGroup,
    help="Never lose a client's call: missed calls from the Beeline Cloud PBX, in a register.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
config_app = typer.Typer(help="Show or create the configuration file.", no_args_is_help=True)
app.add_typer(config_app, name="config")


class State:
    """What the global options say, and the settings resolved from them once."""

    def __init__(self, db: Path | None) -> None:
        self.db = db
        self._settings: Any = None

    def settings(self, **flags: Any) -> Any:
        from beeline_missed import config

        if self._settings is None:
            self._settings = config.load({"db": self.db})
        if flags:
            return config.with_overrides(self._settings, **flags)
        return self._settings

    def register(self) -> Any:
        from beeline_missed.register import Register

        return Register.open(self.settings().db)


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    if obj is None:  # a sub-command invoked on its own, as in some tests
        obj = ctx.find_root().obj = State(None)
    return obj


@app.callback()
def root(
    ctx: typer.Context,
    db: Annotated[
        Path | None,
        typer.Option("--db", help="Path of the SQLite register, for this command only."),
    ] = None,
) -> None:
    ctx.obj = State(db)


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


# -- config -------------------------------------------------------------------------------


@config_app.command("show")
def config_show(ctx: typer.Context, json_: JsonOption = False) -> None:
    """Print the effective settings (the token masked)."""
    from beeline_missed import config
    from beeline_missed.output import print_json, print_table

    shown = config.effective(state(ctx).settings())
    if json_:
        print_json(shown)
    else:
        print_table(["setting", "value"], sorted(shown.items()))


@config_app.command("init")
def config_init(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented config.toml (mode 0600) into the home folder."""
    from beeline_missed import config
    from beeline_missed.output import say

    path = config.init_file(state(ctx).settings().home, force=force)
    say(f"Wrote {path}")


def main() -> None:
    app()
