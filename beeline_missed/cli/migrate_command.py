"""`beeline-missed migrate-register`: the command over store/transfer.py (registered in
cli/__init__.py with one line)."""

from typing import Annotated

import typer


def command(
    ctx: typer.Context,
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="The PostgreSQL register to copy into: postgresql://USER@HOST/DBNAME (the "
            "password from PGPASSWORD or ~/.pgpass, or in the URL; never printed).",
        ),
    ],
    json_: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Copy this SQLite register (--db) into PostgreSQL, once, and check every table's count.

    All in one transaction; the rows keep their ids. A target that holds any row already is
    refused (nothing copied), so running it twice never doubles anything."""
    from beeline_missed.cli.common import state
    from beeline_missed.views.output import print_json, print_table, say

    source = state(ctx).settings().db
    from beeline_missed.daemon.register import SoleDaemon
    from beeline_missed.store import transfer

    # A daemon still on the SQLite file would go on acknowledging events into it after the
    # copy, and they would never reach PostgreSQL.
    sole = SoleDaemon(source, "running migrate-register")
    try:
        done = transfer.run(source, to)
    finally:
        sole.release()
    if json_:
        print_json({"source": done.source, "target": done.target, "tables": done.tables})
        return
    print_table(["table", "rows copied"], sorted(done.tables.items()), title="Copied")
    say(
        f"Copied {done.rows} rows from {done.source} into {done.target}; every table's count "
        "matches.\nNow point every command and the daemon at it: set "
        f'BEELINE_MISSED_DB={done.target} (or db = "{done.target}" in config.toml, the '
        "password in PGPASSWORD or ~/.pgpass), then restart the daemon. The SQLite file is "
        "left as it was."
    )
