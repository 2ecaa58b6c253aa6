"""The SQLite register: all SQL of the calls, inbox, legs, subscriptions and clients lives here.

The CLI, the daemon and the panel call these methods; they never write SQL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from beeline_missed import timefmt
from beeline_missed.errors import ConflictError, UserError
from beeline_missed.migrations import migrate

MISSED = "missed"
CALLED_BACK = "called_back"
STATUS_LABELS = {MISSED: "Пропущен", CALLED_BACK: "Перезвонили"}

# Columns a call row carries when read: the register's own plus the client's name.
CALL_SELECT = """
    SELECT calls.*, clients.name AS client
    FROM calls LEFT JOIN clients ON clients.id = calls.client_id
"""


def connect(path: Path | str, busy_timeout_ms: int = 10_000) -> sqlite_utils.Database:
    """Open the register file with the settings every process uses."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: every write goes through an explicit BEGIN IMMEDIATE.
        conn = sqlite3.connect(
            str(path),
            timeout=busy_timeout_ms / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
    except (OSError, sqlite3.Error) as exc:
        raise UserError(f"Cannot open the register {path}: {exc}.") from None
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA foreign_keys = ON")
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise UserError(f"{path} is not a usable SQLite register: {exc}.") from None
    if mode != "wal":
        raise UserError(f"Cannot switch the register {path} to WAL mode (got {mode}).")
    # FULL: an acknowledged event survives a power cut, not only a process crash.
    conn.execute("PRAGMA synchronous = FULL")
    return sqlite_utils.Database(conn)


class Register:
    """The register of one SQLite file."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        self.conn: sqlite3.Connection = db.conn

    @classmethod
    def open(cls, path: Path | str) -> Register:
        db = connect(path)
        try:
            migrate(db)
        except sqlite3.Error as exc:
            raise UserError(f"Cannot prepare the register {path}: {exc}.") from None
        return cls(db)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once so that concurrent writers queue."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.rollback()
            raise
        self.conn.commit()

    def data_version(self) -> int:
        """Changes whenever another connection commits: a cheap 'anything new?' check."""
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    # -- meta -----------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str | None) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [key, value],
            )

    # -- calls ----------------------------------------------------------------------------

    def insert_call(
        self,
        conn: sqlite3.Connection,
        *,
        session_key: str,
        phone: str | None,
        phone_raw: str,
        called_at: str,
        line: str,
        source: str = "hook",
        outside_hours: bool = False,
    ) -> int | None:
        """Register a missed call inside the caller's transaction.

        Returns the new row id, or None when the session is registered already.
        """
        cursor = conn.execute(
            """
            INSERT INTO calls (session_key, phone, phone_raw, client_id, called_at, line,
                               source, outside_hours, created_at)
            VALUES (?, ?, ?, (SELECT client_id FROM client_phones WHERE phone = ?
                              ORDER BY client_id LIMIT 1), ?, ?, ?, ?, ?)
            ON CONFLICT(session_key) DO NOTHING
            """,
            [
                session_key,
                phone,
                phone_raw,
                phone,
                called_at,
                line,
                source,
                int(outside_hours),
                timefmt.to_stored(timefmt.now_utc()),
            ],
        )
        return cursor.lastrowid if cursor.rowcount else None

    def get_call(self, call_id: int) -> dict[str, Any]:
        row = self.conn.execute(CALL_SELECT + " WHERE calls.id = ?", [call_id]).fetchone()
        if row is None:
            raise UserError(f"There is no call {call_id} in the register.")
        return dict(row)

    def list_calls(self, include_handled: bool = False, limit: int | None = None) -> list[dict]:
        """Newest first; by default only calls still «Пропущен»."""
        where = "" if include_handled else " WHERE calls.status = 'missed'"
        sql = CALL_SELECT + where + " ORDER BY calls.called_at DESC, calls.id DESC"
        params: list[Any] = []
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [dict(row) for row in self.conn.execute(sql, params)]

    def count_calls(self, status: str | None = None) -> int:
        if status is None:
            return int(self.conn.execute("SELECT count(*) FROM calls").fetchone()[0])
        sql = "SELECT count(*) FROM calls WHERE status = ?"
        return int(self.conn.execute(sql, [status]).fetchone()[0])

    def save_call(
        self,
        call_id: int,
        expected_version: int,
        *,
        status: str,
        result: str,
        user: str | None,
        handled_at: str | None,
        closed_by: str | None = "staff",
    ) -> dict[str, Any]:
        """Write a card; raises ConflictError when someone saved it since it was read."""
        with self.transaction() as conn:
            cursor = conn.execute(
                """
                UPDATE calls SET status = ?, result = ?, user = ?, handled_at = ?,
                                 closed_by = ?, version = version + 1
                WHERE id = ? AND version = ?
                """,
                [status, result, user, handled_at, closed_by, call_id, expected_version],
            )
            if cursor.rowcount == 0:
                exists = conn.execute("SELECT 1 FROM calls WHERE id = ?", [call_id]).fetchone()
                if not exists:
                    raise UserError(f"There is no call {call_id} in the register.")
                raise ConflictError(
                    f"Call {call_id} was changed by someone else while you edited it; "
                    "open the card again."
                )
        return self.get_call(call_id)

    def calls_by_ids(self, ids: Iterable[int]) -> list[dict[str, Any]]:
        ids = list(ids)
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        sql = CALL_SELECT + f" WHERE calls.id IN ({marks}) ORDER BY calls.called_at DESC"
        return [dict(row) for row in self.conn.execute(sql, ids)]
