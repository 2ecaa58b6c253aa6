"""The command line: parses options and calls the modules that hold the rules.

The commands live in one file per audience, each a Typer app merged into this one (the Typer
docs' "one file per command group"): `staff_commands.py` (list, watch, card, panel, clients —
staff speak Russian, errors included), `admin_commands.py` (the daemon, subscriptions, status,
catch-up, config, staff records, 1C, the simulators and the demo), `report_commands.py` (the
managers' reports). `common.py` holds the options and the per-command state they share.
Heavy imports stay inside the commands so that `--help` answers fast. No
`from __future__ import annotations` in these files: Typer would evaluate every option's string
annotation at each start (~20 ms).
"""

import sqlite3
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from beeline_missed.cli.common import State
from beeline_missed.errors import UserError

# Commands staff use: they speak Russian, errors included. The others are for admins.
STAFF_COMMANDS = {"list", "watch", "card", "clients", "panel"}


class AppGroup(TyperGroup):
    """Turns every user-facing error into one sentence on stderr and a non-zero exit."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        # Kept for invoke(): the words are checked there, where errors become sentences.
        ctx.meta["words"] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: typer.Context) -> Any:
        from beeline_missed.views.output import fail

        words: list[str] = ctx.meta.get("words", [])
        # The sub-command's name is the first word the group did not take as its own option.
        rest = len(ctx.args) + 1
        command = words[-rest] if len(words) >= rest else None
        staff = command in STAFF_COMMANDS
        try:
            check_words(words)
            return super().invoke(ctx)
        except UserError as exc:
            fail(exc.text(staff), russian=staff)
            ctx.exit(exc.exit_code)
        except sqlite3.Error as exc:
            if staff:
                fail(f"Реестром звонков не удалось воспользоваться: {exc}.", russian=True)
            else:
                fail(f"The register could not be used: {exc}.")
            ctx.exit(1)
        except KeyboardInterrupt:
            ctx.exit(130)
        except OSError as exc:
            # The last resort for a file the commands did not foresee (a folder where a file
            # should be, a full disk): still one sentence, never a traceback.
            reason = exc.strerror or str(exc)
            if staff:
                place = (
                    f"воспользоваться файлом {exc.filename}"
                    if exc.filename
                    else "работать с файлом"
                )
                fail(f"Не удалось {place}: {reason}.", russian=True)
            else:
                place = f"use {exc.filename}" if exc.filename else "work with a file"
                fail(f"Could not {place}: {reason}.")
            ctx.exit(1)


def check_words(words: list[str]) -> None:
    """Every word of the command line, before any command sees it: text that is not UTF-8
    (Python hands it over with lone surrogates) could be neither stored nor printed, and a
    NUL cannot be a file name; both are refused in one sentence rather than a traceback."""
    from beeline_missed.config import check_text

    for word in words:
        check_text(word, "An argument")
        if "\x00" in word:
            raise UserError(f"An argument contains a NUL character: {word!r}.")


app = typer.Typer(
    cls=AppGroup,
    help="Never lose a client's call: missed calls from the Beeline Cloud PBX, in a register.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


@app.callback()
def root(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            metavar="PATH|URL",
            help="The register for this command only: a SQLite file's path, or "
            "postgresql://USER@HOST/DBNAME (password from PGPASSWORD or ~/.pgpass).",
        ),
    ] = None,
) -> None:
    ctx.obj = State(db)


# Imported here, after `app` exists: each file's commands join it (order = order in --help).
from beeline_missed.cli import (  # noqa: E402
    admin_commands,
    migrate_command,
    report_commands,
    staff_commands,
)

app.add_typer(staff_commands.app)
app.add_typer(report_commands.app)
app.add_typer(admin_commands.app)
app.command("migrate-register")(migrate_command.command)


def main() -> None:
    app()
