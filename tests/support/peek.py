"""Looking below the store's API: the few places where a test must read or write the register
file itself rather than through `Register`. Everything else goes through the store.

A test needs this when
- it reads the register a daemon subprocess writes, as any other reader would, while the daemon
  runs: opening a `Register` would run the migrations and race the daemon's own at its start, and
  the file may not be migrated yet (the readers then answer "nothing yet");
- it reads what the store does not return (the journal mode, the 1C reference of every client,
  the event ids kept in the inbox after a crash);
- it forces a state the product never writes that way (notes on a still-open call without a card
  save, the register as it was before a migration), to test a rule against it;
- it plays another process: a writer holding the write lock, an admin's `sqlite3` shell left
  in a transaction, a report reading in one long transaction.
"""

from __future__ import annotations

import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from beeline_missed.store import Register


def _file(home: Path) -> Path:
    return home / "register.sqlite"


# -- reading a register another process writes ------------------------------------------------


def rows(home: Path) -> list[dict[str, Any]]:
    """The register's rows as stored (source and closed_by included), read like any reader."""
    with closing(sqlite3.connect(_file(home))) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM calls ORDER BY called_at, id")]


def session_state(home: Path, tracking_id: str) -> str | None:
    """The decision state of one call session, None before the daemon has heard of it."""
    with closing(sqlite3.connect(_file(home))) as conn:
        row = conn.execute(
            "SELECT state FROM sessions WHERE ext_tracking_id = ?", [tracking_id]
        ).fetchone()
        return row[0] if row else None


def sqlite_count(home: Path, table: str) -> int:
    """Rows in `table`; 0 while the daemon has not migrated the register yet."""
    with closing(sqlite3.connect(_file(home))) as conn:
        try:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        except sqlite3.OperationalError:  # not migrated yet
            return 0


def client_names(home: Path) -> set[str]:
    """The directory's client names; empty while the daemon has not migrated the register."""
    with closing(sqlite3.connect(_file(home))) as conn:
        try:
            return {row[0] for row in conn.execute("SELECT name FROM clients")}
        except sqlite3.OperationalError:  # not migrated yet
            return set()


def inbox_event_ids(db: Path) -> list[str]:
    """The event ids the inbox kept, in its order, read on a read-only connection (after a
    crash: nothing of the test may repair the file before it is read)."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        sql = "SELECT event_id FROM inbox WHERE event_id IS NOT NULL ORDER BY id"
        return [row[0] for row in conn.execute(sql)]


def spooled_event_ids(db: Path) -> list[str]:
    """The event ids the hook's spool beside the register holds and has not yet moved into
    it (acknowledged while the register was busy), read without changing either."""
    from beeline_missed.daemon.spool import POSITION_KEY, spool_path, waiting_events

    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", [POSITION_KEY]).fetchone()
    events = waiting_events(spool_path(db), row[0] if row else None)
    return [str(event.fields["event_id"]) for event in events if event.fields.get("event_id")]


def inbox_bodies(db: Path) -> list[bytes]:
    """The bodies the inbox kept, in its order, read like `inbox_event_ids`."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return [bytes(row[0]) for row in conn.execute("SELECT body FROM inbox ORDER BY id")]


# -- reading what the store does not return ---------------------------------------------------


def onec_refs(register: Register) -> dict[str, str | None]:
    """Every client's 1C Ref_Key by name (the directory API shows names and phones only)."""
    return {
        row["name"]: row["onec_ref"]
        for row in register.conn.execute("SELECT name, onec_ref FROM clients")
    }


# -- forcing a state ----------------------------------------------------------------------------


def force_result(register: Register, call_id: int, text: str) -> None:
    """Put `text` in a call's result as it stands, status, version and the rest untouched: notes
    staff left on a still-open call (a card save would also bump the version and set who
    closed it)."""
    with register.transaction() as conn:
        conn.execute("UPDATE calls SET result = ? WHERE id = ?", [text, call_id])


def undo_client_name_key_migration(db: Path) -> None:
    """Turn the register back into what it was before m080_client_name_key: no name_key
    column, the migration not recorded (so the next open runs it on the clients there)."""
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("DROP INDEX clients_name_key")
        conn.execute("ALTER TABLE clients DROP COLUMN name_key")
        conn.execute("DELETE FROM _migrations WHERE name = 'm080_client_name_key'")
        conn.commit()


def busy_timeout(register: Register, ms: int) -> None:
    """Make `register` wait at most `ms` for a lock (the store's is 10 s): a test that must not
    need the lock then fails in a moment rather than after a long wait."""
    register.conn.execute(f"PRAGMA busy_timeout = {int(ms)}")


# -- other processes ----------------------------------------------------------------------------


@contextmanager
def write_lock_held_elsewhere(db: Path) -> Iterator[None]:
    """Another connection holds the register's write lock (BEGIN IMMEDIATE) for the block, as
    the daemon does for a moment per event; it writes nothing."""
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        writer.execute("ROLLBACK")
        writer.close()


@contextmanager
def sqlite3_shell_holding_a_read(shell: str, db: Path) -> Iterator[None]:
    """The `sqlite3` shell on the register with a read transaction left open for the block, as
    an admin leaves it after a look at the calls."""
    proc = subprocess.Popen(
        [shell, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("BEGIN;\nSELECT 'open', count(*) FROM calls;\n")
        proc.stdin.flush()
        assert proc.stdout.readline().startswith("open|")  # the read really ran
        yield
    finally:
        if proc.stdin:
            proc.stdin.write("ROLLBACK;\n.quit\n")
            proc.stdin.close()
        proc.wait(timeout=10)


def read_like_a_long_report(db: Path, stop: threading.Event, reads: list[Any]) -> None:
    """Read as a report does, in one long transaction, grouped queries again and again, until
    `stop` is set; each grouped result is appended to `reads`. Run it in a thread."""
    conn = sqlite3.connect(str(db), isolation_level=None)
    conn.execute("BEGIN")
    while not stop.is_set():
        reads.append(
            conn.execute("SELECT line, status, count(*) FROM calls GROUP BY 1, 2").fetchall()
        )
        conn.execute("SELECT count(*) FROM inbox, (SELECT 1 UNION SELECT 2)").fetchone()
        time.sleep(0.01)
    conn.execute("COMMIT")
    conn.close()
