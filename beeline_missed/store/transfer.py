"""Copy a SQLite register into PostgreSQL (`beeline-missed migrate-register --to …`).

Everything the SQLite register holds is copied — calls, cases' claims, callback attempts,
escalations, clients and their numbers, the inbox, legs and sessions with their dedup keys,
subscriptions, the abonents cache, 1C bookings, the shared meta values — once, in ONE
PostgreSQL transaction, with the rows' ids kept (cards, inbox numbers and bookings keep their
numbers). Both registers are at the same schema head first (each is migrated on open). The
counts of every table are compared before the commit: any difference rolls everything back.

Run twice, it refuses: a target that holds any row already is left untouched (the copy is
all-or-nothing, never a merge), so nothing is ever duplicated.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from beeline_missed.errors import UserError
from beeline_missed.store.engine import PostgresURL
from beeline_missed.store.register import Register

# Rows are copied through COPY in chunks of this many.
CHUNK = 5000


@dataclass
class Copied:
    source: str
    target: str
    tables: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


def tables_in_order(conn: sqlite3.Connection) -> list[str]:
    """The register's tables, each after those its foreign keys point to."""
    names = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite_%' AND name != '_migrations' ORDER BY name"
        )
    ]
    parents = {
        name: {row[2] for row in conn.execute(f"PRAGMA foreign_key_list({name})")} - {name}
        for name in names
    }
    ordered: list[str] = []
    while len(ordered) < len(names):
        ready = [n for n in names if n not in ordered and parents[n] <= set(ordered)]
        if not ready:  # a cycle: cannot happen with this schema, but never loop forever
            ready = [n for n in names if n not in ordered]
        ordered.extend(ready)
    return ordered


def copy(source: Path, target: PostgresURL) -> Copied:
    """Copy the SQLite register at `source` into the PostgreSQL register `target`."""
    if isinstance(source, PostgresURL):
        raise UserError(
            "The register to copy from is already on PostgreSQL; point --db (or "
            "BEELINE_MISSED_DB) at the SQLite file to copy."
        )
    if not Path(source).exists():
        from beeline_missed.store import missing

        raise missing(Path(source))
    from beeline_missed.daemon.spool import spool_path

    spool = spool_path(Path(source))
    if spool.exists() and spool.stat().st_size:
        raise UserError(
            f"{spool} holds events the daemon acknowledged while the register was busy and has "
            "not moved into it yet; start the daemon on this register once (it moves them), "
            "stop it, and migrate again."
        )
    lite = Register.open(source)  # at head: the same schema as the target's
    pg = Register.open(target)
    done = Copied(str(source), str(target))
    try:
        order = tables_in_order(lite.conn)
        conn = pg.conn
        conn.execute("BEGIN")
        try:
            # No other writer while copying: a daemon already on the new register would
            # otherwise interleave its rows with the copied ids.
            for table in order:
                conn.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
            busy = {
                table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in order
            }
            busy = {t: n for t, n in busy.items() if n}
            if busy:
                held = ", ".join(f"{t} ({n})" for t, n in sorted(busy.items()))
                raise UserError(
                    f"The register {target} already holds rows ({held}); nothing was copied. "
                    "migrate-register copies into an empty register only, so that nothing is "
                    "ever doubled."
                )
            for table in order:
                done.tables[table] = _copy_table(lite.conn, conn, table)
            for table in order:
                have = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                if have != done.tables[table]:
                    raise UserError(
                        f"Copying {table} gave {have} rows instead of {done.tables[table]}; "
                        "nothing was copied."
                    )
                if _has_identity(conn, table):
                    # The next id continues after the copied ones.
                    conn.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
                    )
            conn.execute("COMMIT")
        except BaseException:
            conn.rollback()
            raise
    finally:
        lite.close()
        pg.close()
    return done


def _has_identity(conn: Any, table: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM information_schema.columns WHERE table_name = ? AND column_name = 'id' "
        "AND is_identity = 'YES'",
        [table],
    ).fetchone()
    return row is not None


def _copy_table(lite: sqlite3.Connection, pg: Any, table: str) -> int:
    columns = [row[1] for row in lite.execute(f"PRAGMA table_info({table})")]
    quoted = ", ".join(f'"{c}"' for c in columns)
    count = 0
    rows = lite.execute(f"SELECT {quoted} FROM {table}")
    with (
        pg.lock,
        pg.raw.cursor() as cursor,
        cursor.copy(f"COPY {table} ({quoted}) FROM STDIN") as copier,
    ):
        while True:
            chunk = rows.fetchmany(CHUNK)
            if not chunk:
                break
            for row in chunk:
                copier.write_row(tuple(row))
            count += len(chunk)
    return count


def run(source: Path, to: str) -> Copied:
    from beeline_missed.store.engine import is_url

    if not is_url(to):
        raise UserError(f"--to must be a postgresql:// URL, not {to!r}.")
    return copy(source, PostgresURL(to))
