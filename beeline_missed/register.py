"""The SQLite register: all SQL of the calls, inbox, legs, subscriptions and clients lives here.

The CLI, the daemon and the panel call these methods; they never write SQL.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from beeline_missed import migrations, timefmt
from beeline_missed.errors import ConflictError, UserError
from beeline_missed.vocabulary import CallStatus

if TYPE_CHECKING:
    import sqlite_utils

# Clients written per transaction on import, at first: the size then adapts so that each
# transaction holds the write lock for about IMPORT_LOCK seconds, followed by IMPORT_PAUSE
# without it, so that the daemon's hook waits at most about their sum for the register.
IMPORT_BATCH = 1000
IMPORT_MIN_BATCH = 50
IMPORT_LOCK = 0.015
IMPORT_PAUSE = 0.030
STAGE_CHUNK = 5000  # entries held in memory before they go to the staging tables
SHARED_SHOWN = 100  # numbers claimed by several clients listed by name; all are counted
IMPORT_TABLES = (
    "imp_row",
    "imp_phone",
    "imp_client",
    "imp_won",
    "imp_taken",
    "imp_moved",
)


# Columns a call row carries when read: the register's own plus the client's name.
CALL_SELECT = """
    SELECT calls.*, clients.name AS client
    FROM calls LEFT JOIN clients ON clients.id = calls.client_id
"""


# One line per caller among the open calls: the latest call, with the caller's attempts.
# Hidden numbers (phone NULL) each form their own case.
CASES_SELECT = """
    SELECT * FROM (
        SELECT calls.*, clients.name AS client,
               count(*) OVER caller AS attempts,
               min(calls.called_at) OVER caller AS first_called_at,
               group_concat(calls.id) OVER caller AS call_ids,
               row_number() OVER (PARTITION BY coalesce(calls.phone, 'hidden:' || calls.id)
                                  ORDER BY calls.called_at DESC, calls.id DESC) AS position
        FROM calls LEFT JOIN clients ON clients.id = calls.client_id
        WHERE calls.status = 'missed'
        WINDOW caller AS (PARTITION BY coalesce(calls.phone, 'hidden:' || calls.id)
                          ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
    )
    WHERE position = 1
    ORDER BY called_at DESC, id DESC
"""


# An inbox row's states, as the schema's CHECK lists them (migrations.py).
INBOX_STATES = ("new", "processed", "duplicate", "ignored", "rejected")

# SQLite's largest integer: no row has a greater id.
MAX_ROWID = 2**63 - 1


def no_call(call_id: int) -> UserError:
    # Only staff reach a call by its number (the card, the panel), so the sentence is Russian.
    return UserError(f"Звонка № {call_id} в реестре нет.")


def missing(path: Path) -> UserError:
    """A read command pointed at a register that does not exist: most likely a typo in --db,
    BEELINE_MISSED_DB or BEELINE_MISSED_HOME, which must not read as "no missed calls"."""
    return UserError(
        f"There is no register at {path}; check --db, BEELINE_MISSED_DB and "
        "BEELINE_MISSED_HOME (the daemon, `config init` and `clients import` create one).",
        ru=f"Реестра звонков {path} нет: проверьте --db, BEELINE_MISSED_DB и "
        "BEELINE_MISSED_HOME (новый реестр создают daemon, config init и clients import).",
    )


def connect(path: Path | str, busy_timeout_ms: int = 10_000) -> sqlite3.Connection:
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
        raise UserError(
            f"Cannot open the register {path}: {exc}.",
            ru=f"Не удаётся открыть реестр звонков {path}: {exc}.",
        ) from None
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA foreign_keys = ON")
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise UserError(
            f"{path} is not a usable SQLite register: {exc}.",
            ru=f"Файл {path} не годится как реестр звонков: {exc}.",
        ) from None
    if mode != "wal":
        raise UserError(f"Cannot switch the register {path} to WAL mode (got {mode}).")
    # FULL: an acknowledged event survives a power cut, not only a process crash.
    conn.execute("PRAGMA synchronous = FULL")
    return conn


class Register:
    """The register of one SQLite file."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    @property
    def db(self) -> sqlite_utils.Database:
        """sqlite-utils over the same connection, for migrations and inspection. Imported on
        demand: every command opens the register, few need more than plain SQL."""
        import sqlite_utils

        return sqlite_utils.Database(self.conn)

    @classmethod
    def open(cls, path: Path | str) -> Register:
        register = cls(connect(path))
        try:
            if migrations.pending(register.conn):
                migrations.migrate(register.db)
        except sqlite3.Error as exc:
            register.close()
            raise UserError(
                f"Cannot prepare the register {path}: {exc}.",
                ru=f"Не удаётся подготовить реестр звонков {path}: {exc}.",
            ) from None
        return register

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
        lost_at: str | None = None,
        forwarded_to: str | None = None,
    ) -> int | None:
        """Register a missed call inside the caller's transaction.

        Returns the new row id, or None when the session is registered already; then only what
        detection derives (where it was lost, forwarded to) is brought up to date, as `replay`
        under a newer rule needs — never what staff recorded.
        """
        cursor = conn.execute(
            """
            INSERT INTO calls (session_key, phone, phone_raw, client_id, called_at, line,
                               source, outside_hours, created_at, lost_at, forwarded_to)
            VALUES (?, ?, ?, (SELECT client_id FROM client_phones WHERE phone = ?
                              ORDER BY client_id LIMIT 1), ?, ?, ?, ?, ?, ?, ?)
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
                lost_at,
                forwarded_to,
            ],
        )
        if cursor.rowcount:
            return cursor.lastrowid
        conn.execute(
            "UPDATE calls SET lost_at = ?, forwarded_to = ? WHERE session_key = ?",
            [lost_at, forwarded_to, session_key],
        )
        return None

    def get_call(self, call_id: int) -> dict[str, Any]:
        # A number beyond SQLite's integers names no row (and binding it would overflow).
        row = None
        if 0 < call_id <= MAX_ROWID:
            row = self.conn.execute(CALL_SELECT + " WHERE calls.id = ?", [call_id]).fetchone()
        if row is None:
            raise no_call(call_id)
        return dict(row)

    def list_calls(
        self,
        include_handled: bool = False,
        limit: int | None = None,
        per_caller: bool | None = None,
    ) -> list[dict]:
        """Newest first; by default only calls still «Пропущен», one line per caller.

        One line per caller (`per_caller`, the default for the open list) is the caller's latest
        open call with `attempts`, `first_called_at` and `call_ids` of all their open calls, so
        staff do not call one person three times. Hidden numbers are never merged. With
        `include_handled` every register row is listed on its own.
        """
        per_caller = not include_handled if per_caller is None else per_caller
        params: list[Any] = []
        if per_caller and not include_handled:
            sql = CASES_SELECT
        else:
            where = "" if include_handled else " WHERE calls.status = 'missed'"
            sql = CALL_SELECT + where + " ORDER BY calls.called_at DESC, calls.id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        rows = [dict(row) for row in self.conn.execute(sql, params)]
        for row in rows:
            row.setdefault("attempts", 1)
            row.setdefault("first_called_at", row["called_at"])
            ids = row.get("call_ids")
            row["call_ids"] = (
                sorted(int(i) for i in str(ids).split(",")) if ids else [int(row["id"])]
            )
        return rows

    def case_calls(self, call_id: int) -> list[dict[str, Any]]:
        """The open calls handled together with `call_id`: all open calls from the same
        number (just the call itself when the number is hidden or the call is handled)."""
        call = self.get_call(call_id)
        if call["status"] != CallStatus.MISSED or not call["phone"]:
            return [call]
        sql = (
            CALL_SELECT + " WHERE calls.status = 'missed' AND calls.phone = ?"
            " ORDER BY calls.called_at DESC, calls.id DESC"
        )
        return [dict(row) for row in self.conn.execute(sql, [call["phone"]])]

    def save_calls(self, saves: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Write several cards at once, all or nothing: a conflict on any leaves all unsaved.

        Each item has call_id, expected_version, status, result, user, handled_at, closed_by.
        """
        with self.transaction() as conn:
            for save in saves:
                cursor = conn.execute(
                    """
                    UPDATE calls SET status = ?, result = ?, user = ?, handled_at = ?,
                                     closed_by = ?, version = version + 1
                    WHERE id = ? AND version = ?
                    """,
                    [
                        save["status"],
                        save["result"],
                        save["user"],
                        save["handled_at"],
                        save["closed_by"],
                        save["call_id"],
                        save["expected_version"],
                    ],
                )
                if cursor.rowcount == 0:
                    call_id = save["call_id"]
                    if not conn.execute("SELECT 1 FROM calls WHERE id = ?", [call_id]).fetchone():
                        raise no_call(call_id)
                    conflict = ConflictError(
                        f"Call {call_id} was changed by someone else while you edited it; "
                        "open the card again."
                    )
                    conflict.call_id = call_id
                    raise conflict
        return self.calls_by_ids([save["call_id"] for save in saves])

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
        save = {
            "call_id": call_id,
            "expected_version": expected_version,
            "status": status,
            "result": result,
            "user": user,
            "handled_at": handled_at,
            "closed_by": closed_by,
        }
        self.save_calls([save])
        return self.get_call(call_id)

    def calls_by_ids(self, ids: Iterable[int]) -> list[dict[str, Any]]:
        ids = list(ids)
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        sql = CALL_SELECT + f" WHERE calls.id IN ({marks}) ORDER BY calls.called_at DESC"
        return [dict(row) for row in self.conn.execute(sql, ids)]

    # -- clients directory ----------------------------------------------------------------
    # The staff workflow. A client is matched on re-import by its external id
    # (1C «Код») when the file has one, else by its name with case, spacing and ё ignored,
    # else — a client renamed in 1C, or a file without codes — by its phone numbers, so
    # importing the same export again updates rather than duplicates.
    #
    # A number belongs to one client: the one given it last. Within a file the last row
    # listing it wins (1C lists the newer entries lower); an import or `clients add` wins
    # over what the directory held. Every number so decided is reported (`shared`).

    @staticmethod
    def name_key(name: str) -> str:
        """A client's name as matched and searched: case, spacing and ё ignored
        («ИВАНОВ  иван» = «Иванов Иван», «Ёлкин» = «елкин»)."""
        return " ".join(str(name).split()).casefold().replace("ё", "е")

    def max_call_id(self) -> int:
        return int(self.conn.execute("SELECT coalesce(max(id), 0) FROM calls").fetchone()[0])

    def relink_calls(self, conn: sqlite3.Connection) -> int:
        """Point every call at the client owning its number now; returns the calls changed.

        The card's version is not bumped: a directory change is not an edit of the card,
        and bumping it would make a colleague's open card conflict for no reason.
        """
        cursor = conn.execute(
            """
            UPDATE calls SET client_id = (
                SELECT client_id FROM client_phones WHERE client_phones.phone = calls.phone
                ORDER BY client_id LIMIT 1)
            WHERE client_id IS NOT (
                SELECT client_id FROM client_phones WHERE client_phones.phone = calls.phone
                ORDER BY client_id LIMIT 1)
            """
        )
        return cursor.rowcount

    def upsert_clients(
        self,
        entries: Iterable[tuple[str | None, str, Sequence[tuple[str, str]]]],
        *,
        replace_phones: bool = True,
        batch_size: int = IMPORT_BATCH,
    ) -> dict[str, Any]:
        """Add or update clients given as (external_id, name, [(e164, raw), ...]), in file
        order; entries with one external id (else one name) are one client.

        With replace_phones (an import) a client's numbers become exactly the given ones and
        an unknown name is matched by its numbers; without (`clients add`) the given ones
        are added and the name of a known client is kept. Entries are staged in temporary
        tables (memory stays flat whatever the size; a file that fails to read writes
        nothing), matched there, then written in name order in short transactions (the
        first of `batch_size` clients, then sized to hold the lock ~IMPORT_LOCK seconds),
        each followed by IMPORT_PAUSE, so that the daemon never waits long for the register;
        an interrupted import is completed by importing again.

        Returns the counts added, updated, unchanged, calls_relinked; `shared_count`, the
        numbers claimed by several clients, and `shared`, the first SHARED_SHOWN of them as
        {"phone", "clients" (names, file order, the directory's holder first), "kept_by"}.
        """
        now = timefmt.to_stored(timefmt.now_utc())
        conn = self.conn
        synchronous = conn.execute("PRAGMA synchronous").fetchone()[0]
        # The directory is rebuilt by importing again, so its commits need not wait for the
        # disk (the daemon's own connections keep synchronous=FULL): WAL keeps each batch
        # atomic, and a power cut can only lose the last batches.
        conn.execute("PRAGMA synchronous = NORMAL")
        # Room for the staging tables' sorts and the batches' lookups: a bounded 32 MB each.
        conn.execute("PRAGMA cache_size = -64000")
        conn.execute("PRAGMA temp.cache_size = -32000")
        # A checkpoint after every batch (the default: at 1,000 pages of WAL) syncs the
        # database file each time, twice the import's own work; every 16,000 pages is enough.
        autocheckpoint = conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        conn.execute("PRAGMA wal_autocheckpoint = 16000")
        try:
            self._stage_clients(entries)
            self._match_clients(replace_phones)
            total = conn.execute("SELECT coalesce(max(id), 0) FROM temp.imp_client").fetchone()[0]
            relinked, low, size = 0, 1, batch_size
            while low <= total:
                if low > 1:
                    # Another process waiting for the lock (the daemon's hook) polls in
                    # SQLite's busy handler every 25 ms or less for its first 100 ms: a pause
                    # longer than that lets it in, where back-to-back batches starve it.
                    time.sleep(IMPORT_PAUSE)
                started = time.perf_counter()
                with self.transaction():
                    relinked += self._apply_clients(low, low + size - 1, replace_phones, now)
                low += size
                # Keep each transaction near IMPORT_LOCK seconds, whatever the machine.
                took = time.perf_counter() - started
                if took > IMPORT_LOCK:
                    size = max(IMPORT_MIN_BATCH, size // 2)
                elif took < IMPORT_LOCK / 2:
                    size = min(batch_size * 8, size * 5 // 4)
            counts: dict[str, Any] = {"added": 0, "updated": 0, "unchanged": 0}
            for state, n in conn.execute(
                "SELECT state, count(*) FROM temp.imp_client GROUP BY state"
            ):
                counts[state] = n
            counts["calls_relinked"] = relinked
            counts.update(self._shared_numbers())
            return counts
        finally:
            if conn.in_transaction:
                conn.rollback()
            for table in IMPORT_TABLES:
                conn.execute(f"DROP TABLE IF EXISTS temp.{table}")
            conn.execute(f"PRAGMA synchronous = {int(synchronous)}")
            conn.execute(f"PRAGMA wal_autocheckpoint = {int(autocheckpoint)}")

    def _stage_clients(
        self, entries: Iterable[tuple[str | None, str, Sequence[tuple[str, str]]]]
    ) -> None:
        """Write the entries into temporary tables, a few thousand at a time."""
        conn = self.conn
        # On disk, not in memory, whatever the build's default: a big file stays out of RAM.
        conn.execute("PRAGMA temp_store = FILE")
        for table in IMPORT_TABLES:
            conn.execute(f"DROP TABLE IF EXISTS temp.{table}")
        conn.execute(
            "CREATE TEMP TABLE imp_row (row_no INTEGER PRIMARY KEY, ident TEXT NOT NULL, "
            "code TEXT, name TEXT NOT NULL, name_key TEXT NOT NULL)"
        )
        conn.execute(
            "CREATE TEMP TABLE imp_phone (row_no INTEGER NOT NULL, ident TEXT NOT NULL, "
            "phone TEXT NOT NULL, raw TEXT NOT NULL)"
        )
        rows: list[tuple[int, str, str | None, str, str]] = []
        numbers: list[tuple[int, str, str, str]] = []

        def flush() -> None:
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO imp_row VALUES (?, ?, ?, ?, ?)", rows)
            conn.executemany("INSERT INTO imp_phone VALUES (?, ?, ?, ?)", numbers)
            conn.execute("COMMIT")
            rows.clear()
            numbers.clear()

        for row_no, (external_id, name, given) in enumerate(entries, 1):
            key = self.name_key(name)
            ident = f"c:{external_id}" if external_id else f"n:{key}"
            rows.append((row_no, ident, external_id or None, name, key))
            numbers.extend((row_no, ident, phone, raw) for phone, raw in given)
            if len(rows) >= STAGE_CHUNK:
                flush()
        flush()
        conn.execute("BEGIN")
        # One line per client of the file, in the order they first appear; the name is the
        # last row's.
        conn.execute(
            "CREATE TEMP TABLE imp_client (id INTEGER PRIMARY KEY, ident TEXT NOT NULL UNIQUE, "
            "code TEXT, name TEXT NOT NULL, name_key TEXT NOT NULL, "
            "client_id INTEGER, how INTEGER, state TEXT, batch_no INTEGER)"
        )
        conn.execute(
            """
            INSERT INTO imp_client (ident, code, name, name_key)
                SELECT g.ident, r.code, r.name, r.name_key
                FROM (SELECT ident, min(row_no) AS first, max(row_no) AS last
                      FROM imp_row GROUP BY ident) AS g
                JOIN imp_row r ON r.row_no = g.last
                ORDER BY g.first
            """
        )
        conn.execute("CREATE INDEX imp_client_client ON imp_client(client_id)")
        # Written in name order: the name indexes then grow at one end batch after batch,
        # and a batch dirties a few pages of them instead of one page per client (which
        # made a 600,000-row import write gigabytes of WAL).
        conn.execute(
            "UPDATE imp_client SET batch_no = o.n FROM (SELECT id, row_number() OVER "
            "(ORDER BY name_key, id) AS n FROM imp_client) AS o WHERE imp_client.id = o.id"
        )
        conn.execute("CREATE INDEX imp_client_batch ON imp_client(batch_no)")
        # Each number goes to the client of the last row listing it; `shared` when rows of
        # other clients list it too.
        conn.execute(
            "CREATE TEMP TABLE imp_won (phone TEXT PRIMARY KEY, cid INTEGER NOT NULL, "
            "raw TEXT NOT NULL, last_row INTEGER NOT NULL, shared INTEGER NOT NULL) WITHOUT ROWID"
        )
        conn.execute(
            """
            INSERT INTO imp_won
                SELECT w.phone, c.id, w.raw, w.last_row, w.shared
                FROM (SELECT phone, ident, raw, max(row_no) AS last_row,
                             count(DISTINCT ident) > 1 AS shared
                      FROM imp_phone GROUP BY phone) AS w
                JOIN imp_client c ON c.ident = w.ident
            """
        )
        conn.execute("CREATE INDEX imp_won_cid ON imp_won(cid)")
        # Per batch: the directory's numbers about to leave their client (taken by another,
        # or gone from the file's row), by rowid in client_phones.
        conn.execute(
            "CREATE TEMP TABLE imp_taken (cp_rowid INTEGER NOT NULL, phone TEXT NOT NULL, "
            "holder INTEGER NOT NULL)"
        )
        conn.execute("CREATE TEMP TABLE imp_moved (phone TEXT NOT NULL, holder TEXT NOT NULL)")
        conn.execute("COMMIT")

    def _match_clients(self, replace_phones: bool) -> None:
        """Find each client of the file in the directory: by code, then by name, then (an
        import only) by numbers. Earlier steps win a directory client; within a step, the
        client first in the file."""
        conn = self.conn
        conn.execute("BEGIN")
        conn.execute(
            "UPDATE imp_client SET client_id = c.id, how = 1 FROM clients AS c "
            "WHERE c.external_id = imp_client.code"
        )
        conn.execute(
            """
            UPDATE imp_client SET client_id = m.id, how = 2
            FROM (SELECT i.id AS iid, min(c.id) AS id
                  FROM imp_client AS i JOIN clients AS c ON c.name_key = i.name_key
                  WHERE i.client_id IS NULL
                    -- a namesake carrying another code is someone else
                    AND (c.external_id IS NULL OR i.code IS NULL OR c.external_id = i.code)
                    AND c.id NOT IN (SELECT client_id FROM imp_client
                                     WHERE client_id IS NOT NULL)
                  GROUP BY i.id) AS m
            WHERE imp_client.id = m.iid
            """
        )
        self._one_match_each(2)
        if replace_phones:
            # Renamed in 1C (or spelt otherwise) and no code to tell: the directory client
            # holding most of its numbers, unless that one has another code.
            conn.execute(
                """
                UPDATE imp_client SET client_id = m.cid, how = 3
                FROM (SELECT iid, cid FROM (
                        SELECT iid, cid, row_number() OVER (
                            PARTITION BY iid ORDER BY n DESC, cid) AS rank
                        FROM (SELECT i.id AS iid, cp.client_id AS cid, count(*) AS n
                              FROM imp_client AS i
                              JOIN imp_won AS w ON w.cid = i.id
                              JOIN client_phones AS cp ON cp.phone = w.phone
                              JOIN clients AS c ON c.id = cp.client_id
                              WHERE i.client_id IS NULL
                                AND (i.code IS NULL OR c.external_id IS NULL)
                                AND cp.client_id NOT IN (SELECT client_id FROM imp_client
                                                         WHERE client_id IS NOT NULL)
                              GROUP BY i.id, cp.client_id))
                      WHERE rank = 1) AS m
                WHERE imp_client.id = m.iid
                """
            )
            self._one_match_each(3)
        # Whether each client found changes, judged before anything is written (a batch
        # taking a number from a later one must not make that one look unchanged).
        conn.execute(
            """
            UPDATE imp_client SET state = CASE WHEN
                (:replace AND c.name != imp_client.name)
                OR (imp_client.code IS NOT NULL AND c.external_id IS NOT imp_client.code)
                OR EXISTS (SELECT 1 FROM imp_won AS w WHERE w.cid = imp_client.id
                           AND NOT EXISTS (SELECT 1 FROM client_phones AS cp
                                           WHERE cp.client_id = c.id AND cp.phone = w.phone))
                OR (:replace AND EXISTS (
                        SELECT 1 FROM client_phones AS cp WHERE cp.client_id = c.id
                        AND NOT EXISTS (SELECT 1 FROM imp_won AS w
                                        WHERE w.phone = cp.phone AND w.cid = imp_client.id)))
                THEN 'updated' ELSE 'unchanged' END
            FROM clients AS c
            WHERE c.id = imp_client.client_id
            """,
            {"replace": int(replace_phones)},
        )
        conn.execute("COMMIT")

    def _one_match_each(self, how: int) -> None:
        """A directory client matched by two clients of the file goes to the first; the
        others count as new."""
        self.conn.execute(
            """
            UPDATE imp_client SET client_id = NULL, how = NULL
            WHERE how = ? AND id > (SELECT min(o.id) FROM imp_client AS o
                                    WHERE o.client_id = imp_client.client_id)
            """,
            [how],
        )

    def _apply_clients(self, low: int, high: int, replace_phones: bool, now: str) -> int:
        """Write the file's clients of batches `low`..`high` (inside the caller's transaction);
        returns the calls re-linked."""
        conn = self.conn
        span = {"low": low, "high": high, "now": now, "replace": int(replace_phones)}
        base = conn.execute("SELECT coalesce(max(id), 0) FROM clients").fetchone()[0]
        conn.execute(
            "UPDATE imp_client INDEXED BY imp_client_batch "
            "SET client_id = :base + batch_no - :low + 1, state = 'added' "
            "WHERE batch_no BETWEEN :low AND :high AND client_id IS NULL",
            {**span, "base": base},
        )
        conn.execute(
            "INSERT INTO clients (id, name, name_key, external_id, created_at, updated_at) "
            "SELECT client_id, name, name_key, code, :now, :now FROM imp_client "
            "WHERE batch_no BETWEEN :low AND :high AND state = 'added'",
            span,
        )
        # CROSS JOIN fixes the join order at the batch's few clients: the temporary tables
        # have no statistics, and a plan starting at a big table scanned it every batch.
        changed = "i.batch_no BETWEEN :low AND :high AND i.state IN ('added', 'updated')"
        # Numbers another client held, taken by the file's client of this batch...
        conn.execute(
            "INSERT INTO imp_taken SELECT cp.rowid, cp.phone, cp.client_id FROM imp_client AS i "
            "CROSS JOIN imp_won AS w ON w.cid = i.id "
            "CROSS JOIN client_phones AS cp ON cp.phone = w.phone AND cp.client_id != i.client_id "
            f"WHERE {changed}",
            span,
        )
        # ...reported when that client is not in the file (the file's own lose them anyway)...
        conn.execute(
            "INSERT INTO imp_moved SELECT t.phone, c.name FROM imp_taken AS t "
            "CROSS JOIN clients AS c ON c.id = t.holder "
            "WHERE NOT EXISTS (SELECT 1 FROM imp_client AS o WHERE o.client_id = t.holder)"
        )
        if replace_phones:
            # ...and, on import, numbers no longer in the client's row.
            conn.execute(
                "INSERT INTO imp_taken SELECT cp.rowid, cp.phone, cp.client_id "
                "FROM imp_client AS i CROSS JOIN client_phones AS cp ON cp.client_id = i.client_id "
                "WHERE i.batch_no BETWEEN :low AND :high AND i.state = 'updated' AND NOT EXISTS "
                "(SELECT 1 FROM imp_won AS w WHERE w.phone = cp.phone AND w.cid = i.id)",
                span,
            )
        conn.execute(
            """
            UPDATE clients SET
                name = CASE WHEN :replace THEN i.name ELSE clients.name END,
                name_key = CASE WHEN :replace THEN i.name_key ELSE clients.name_key END,
                external_id = coalesce(i.code, clients.external_id), updated_at = :now
            FROM (SELECT * FROM imp_client
                  WHERE batch_no BETWEEN :low AND :high AND state = 'updated') AS i
            WHERE i.client_id = clients.id
            """,
            span,
        )
        conn.execute("DELETE FROM client_phones WHERE rowid IN (SELECT cp_rowid FROM imp_taken)")
        conn.execute(
            "INSERT OR IGNORE INTO client_phones (client_id, phone, raw) "
            "SELECT i.client_id, w.phone, w.raw FROM imp_client AS i "
            f"CROSS JOIN imp_won AS w ON w.cid = i.id WHERE {changed}",
            span,
        )
        # Calls from every number whose owner may have changed show the owner now.
        relinked = conn.execute(
            f"""
            UPDATE calls SET client_id = (
                SELECT client_id FROM client_phones WHERE client_phones.phone = calls.phone
                ORDER BY client_id LIMIT 1)
            WHERE phone IN (SELECT phone FROM imp_taken UNION ALL
                            SELECT w.phone FROM imp_client AS i
                            CROSS JOIN imp_won AS w ON w.cid = i.id WHERE {changed})
              AND client_id IS NOT (
                SELECT client_id FROM client_phones WHERE client_phones.phone = calls.phone
                ORDER BY client_id LIMIT 1)
            """,
            span,
        ).rowcount
        conn.execute("DELETE FROM imp_taken")
        return relinked

    def _shared_numbers(self) -> dict[str, Any]:
        """The numbers claimed by several clients: within the file, or by a client of the
        file and one of the directory that is not in it."""
        conn = self.conn
        count = conn.execute(
            "SELECT count(*) FROM (SELECT phone FROM imp_won WHERE shared "
            "UNION SELECT phone FROM imp_moved)"
        ).fetchone()[0]
        shown: dict[str, list[str]] = {}
        for phone, holder in conn.execute(
            "SELECT phone, holder FROM imp_moved ORDER BY rowid LIMIT ?", [SHARED_SHOWN]
        ):
            shown.setdefault(phone, []).append(holder)
        for phone, name in conn.execute(
            """
            SELECT p.phone, c.name FROM imp_phone AS p JOIN imp_client AS c ON c.ident = p.ident
            WHERE p.phone IN (SELECT phone FROM imp_won WHERE shared ORDER BY last_row LIMIT ?)
            GROUP BY p.phone, c.id ORDER BY min(p.row_no)
            """,
            [SHARED_SHOWN],
        ):
            names = shown.setdefault(phone, [])
            if name not in names:
                names.append(name)
        shared = []
        for phone, names in list(shown.items())[:SHARED_SHOWN]:
            kept_by = conn.execute(
                "SELECT c.name FROM imp_won AS w JOIN imp_client AS c ON c.id = w.cid "
                "WHERE w.phone = ?",
                [phone],
            ).fetchone()[0]
            if kept_by not in names:
                names.append(kept_by)
            shared.append({"phone": phone, "clients": names, "kept_by": kept_by})
        return {"shared_count": count, "shared": shared}

    def _client_rows(
        self, where: str = "", params: Sequence[Any] = (), limit: int | None = None
    ) -> list[dict[str, Any]]:
        sql = (
            "SELECT clients.id, clients.name, clients.external_id, "
            "(SELECT group_concat(phone, ',') FROM (SELECT phone FROM client_phones "
            " WHERE client_id = clients.id ORDER BY phone)) AS phones, "
            "(SELECT count(*) FROM calls WHERE calls.client_id = clients.id) AS calls "
            f"FROM clients {where} ORDER BY clients.name, clients.id"
        )
        params = list(params)
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        rows = []
        for row in self.conn.execute(sql, params):
            item = dict(row)
            item["phones"] = item["phones"].split(",") if item["phones"] else []
            rows.append(item)
        return rows

    def list_clients(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The directory by name: id, name, external_id, phones (E.164 list), calls."""
        return self._client_rows(limit=limit)

    def find_clients(self, text: str, phone: str | None = None) -> list[dict[str, Any]]:
        """Clients whose name contains `text` (case, spacing and ё ignored: «елкин» finds
        «Ёлкин»), or whose number is `phone` (E.164) or contains `text`'s digits."""
        digits = "".join(ch for ch in text if ch.isdigit())
        clauses = ["instr(clients.name_key, ?) > 0"]
        params: list[Any] = [self.name_key(text)]
        if phone:
            clauses.append("clients.id IN (SELECT client_id FROM client_phones WHERE phone = ?)")
            params.append(phone)
        if len(digits) >= 3:
            clauses.append(
                "clients.id IN (SELECT client_id FROM client_phones WHERE instr(phone, ?) > 0)"
            )
            params.append(digits)
        return self._client_rows("WHERE " + " OR ".join(clauses), params)

    def count_clients(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM clients").fetchone()[0])

    # -- intake and detection -------------------------------------------------------------

    def add_inbox(
        self,
        body: bytes,
        received_ms: int,
        *,
        state: str = "new",
        reason: str | None = None,
        event_id: str | None = None,
        event_type: str | None = None,
        subscription_id: str | None = None,
        target_id: str | None = None,
        call_id: str | None = None,
    ) -> int:
        """Commit one posted body (durably) before the hook answers."""
        with self.transaction() as conn:
            cursor = conn.execute(
                """
                INSERT INTO inbox (received_at, received_ms, body, state, reason, event_id,
                                   event_type, subscription_id, target_id, call_id)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    timefmt.ms_to_stored(received_ms),
                    received_ms,
                    body,
                    state,
                    reason,
                    event_id,
                    event_type,
                    subscription_id,
                    target_id,
                    call_id,
                ],
            )
        return int(cursor.lastrowid or 0)

    def add_inbox_many(self, items: Sequence[tuple[bytes, int, dict[str, Any]]]) -> list[int]:
        """Commit several posted bodies in ONE durable transaction (group commit): one fsync
        acknowledges a whole batch. Each item is (body, received_ms, fields of add_inbox)."""
        ids = []
        with self.transaction() as conn:
            for body, received_ms, fields in items:
                cursor = conn.execute(
                    """
                    INSERT INTO inbox (received_at, received_ms, body, state, reason, event_id,
                                       event_type, subscription_id, target_id, call_id)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                    [
                        timefmt.ms_to_stored(received_ms),
                        received_ms,
                        body,
                        fields.get("state", "new"),
                        fields.get("reason"),
                        fields.get("event_id"),
                        fields.get("event_type"),
                        fields.get("subscription_id"),
                        fields.get("target_id"),
                        fields.get("call_id"),
                    ],
                )
                ids.append(int(cursor.lastrowid or 0))
        return ids

    def new_inbox(self, limit: int = 200) -> list[sqlite3.Row]:
        return self.conn.execute(
            "SELECT id, received_ms, body FROM inbox WHERE state = 'new' ORDER BY id LIMIT ?",
            [limit],
        ).fetchall()

    def mark_inbox(
        self, conn: sqlite3.Connection, inbox_id: int, state: str, reason: str | None = None
    ) -> None:
        conn.execute(
            "UPDATE inbox SET state = ?, reason = coalesce(?, reason), processed_at = ? "
            "WHERE id = ?",
            [state, reason, timefmt.to_stored(timefmt.now_utc()), inbox_id],
        )

    def inbox_counts(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT state, count(*) FROM inbox GROUP BY state")
        return {state: count for state, count in rows}

    def list_inbox(self, state: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        sql = "SELECT id, received_at, state, reason, event_id, event_type, target_id FROM inbox"
        params: list[Any] = []
        if state:
            sql += " WHERE state = ?"
            params.append(state)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        return [dict(row) for row in self.conn.execute(sql, params)]

    def claim_event(
        self,
        conn: sqlite3.Connection,
        event_id: str,
        digest: str,
        leg_digests: Sequence[str],
        now_ms: int,
    ) -> str:
        """Record an event's dedup keys and say what it is: 'new', 'duplicate' (the same eventID
        with the same content, or every leg update it carries seen already, as overlapping
        subscriptions deliver), or 'conflict' (an eventID seen before with other content: kept
        and processed, never dropped)."""
        # The common case, a new event, costs one statement; a seen eventID is looked at.
        cursor = conn.execute(
            "INSERT INTO seen_events (event_id, digest, seen_ms) VALUES (?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            [event_id, digest, now_ms],
        )
        verdict = "new"
        if cursor.rowcount == 0:
            row = conn.execute(
                "SELECT digest FROM seen_events WHERE event_id = ?", [event_id]
            ).fetchone()
            if row[0] == digest:
                return "duplicate"
            verdict = "conflict"
            conn.execute(
                "UPDATE seen_events SET digest = ?, seen_ms = ? WHERE event_id = ?",
                [digest, now_ms, event_id],
            )
        if not leg_digests:
            return verdict
        fresh = 0
        for key in leg_digests:
            cursor = conn.execute(
                "INSERT INTO seen_leg_events (digest, seen_ms) VALUES (?, ?) "
                "ON CONFLICT DO NOTHING",
                [key, now_ms],
            )
            fresh += cursor.rowcount
        return verdict if fresh or verdict == "conflict" else "duplicate"

    def forget_seen(self, conn: sqlite3.Connection, before_ms: int) -> int:
        """Drop dedup keys older than `before_ms`: repeats come within minutes, not weeks."""
        removed = 0
        for table in ("seen_events", "seen_leg_events"):
            removed += conn.execute(f"DELETE FROM {table} WHERE seen_ms < ?", [before_ms]).rowcount
        return removed

    def get_leg(
        self, conn: sqlite3.Connection, target_id: str, call_id: str, ext_tracking_id: str
    ) -> dict | None:
        row = conn.execute(
            "SELECT * FROM legs WHERE target_id = ? AND call_id = ? AND ext_tracking_id = ?",
            [target_id, call_id, ext_tracking_id],
        ).fetchone()
        return dict(row) if row else None

    def answered_legs_of(
        self,
        conn: sqlite3.Connection,
        phone: str,
        from_ms: int,
        to_ms: int,
        *,
        other_than: str,
    ) -> list[dict]:
        """Answered legs with this remote number that started in [from_ms, to_ms], outside the
        session `other_than`: a colleague's pickup, or the caller put through elsewhere."""
        rows = conn.execute(
            """
            SELECT * FROM legs
            WHERE remote_phone = ? AND start_ms BETWEEN ? AND ? AND answered = 1
              AND ext_tracking_id != ?
            ORDER BY answer_ms, target_id
            """,
            [phone, from_ms, to_ms, other_than],
        )
        return [dict(row) for row in rows]

    def put_leg(self, conn: sqlite3.Connection, leg: dict[str, Any]) -> None:
        columns = ", ".join(leg)
        marks = ", ".join("?" * len(leg))
        conn.execute(
            f"INSERT OR REPLACE INTO legs ({columns}, updated_at) VALUES ({marks}, ?)",
            [*leg.values(), timefmt.to_stored(timefmt.now_utc())],
        )

    def session_legs(self, conn: sqlite3.Connection, ext_tracking_id: str) -> list[dict]:
        rows = conn.execute(
            "SELECT * FROM legs WHERE ext_tracking_id = ? ORDER BY target_id, call_id",
            [ext_tracking_id],
        )
        return [dict(row) for row in rows]

    def touch_session(self, conn: sqlite3.Connection, ext_tracking_id: str, event_ms: int) -> str:
        """Note that a session heard an event; returns the session's state."""
        conn.execute(
            """
            INSERT INTO sessions (ext_tracking_id, state, last_event_ms) VALUES (?, 'pending', ?)
            ON CONFLICT(ext_tracking_id)
            DO UPDATE SET last_event_ms = max(last_event_ms, excluded.last_event_ms)
            """,
            [ext_tracking_id, event_ms],
        )
        row = conn.execute(
            "SELECT state FROM sessions WHERE ext_tracking_id = ?", [ext_tracking_id]
        ).fetchone()
        return str(row[0])

    def pending_sessions(self, quiet_since_ms: int) -> list[tuple[str, int]]:
        """Pending sessions that heard nothing after `quiet_since_ms`, oldest first."""
        rows = self.conn.execute(
            "SELECT ext_tracking_id, last_event_ms FROM sessions "
            "WHERE state = 'pending' AND last_event_ms <= ? ORDER BY last_event_ms",
            [quiet_since_ms],
        )
        return [(row[0], int(row[1])) for row in rows]

    def session(self, conn: sqlite3.Connection, ext_tracking_id: str) -> dict | None:
        row = conn.execute(
            "SELECT * FROM sessions WHERE ext_tracking_id = ?", [ext_tracking_id]
        ).fetchone()
        return dict(row) if row else None

    def decide_session(
        self, conn: sqlite3.Connection, ext_tracking_id: str, state: str, call_row: int | None
    ) -> None:
        conn.execute(
            "UPDATE sessions SET state = ?, decided_at = ?, call_row = coalesce(?, call_row) "
            "WHERE ext_tracking_id = ?",
            [state, timefmt.to_stored(timefmt.now_utc()), call_row, ext_tracking_id],
        )

    def call_by_session(self, conn: sqlite3.Connection, session_key: str) -> dict | None:
        row = conn.execute("SELECT * FROM calls WHERE session_key = ?", [session_key]).fetchone()
        return dict(row) if row else None

    def reset_decisions(self) -> int:
        """Forget what was derived from the inbox, so that `replay` can derive it again.

        Register rows are kept: their handling by staff must survive a replay.
        """
        with self.transaction() as conn:
            for table in ("seen_events", "seen_leg_events", "legs", "sessions"):
                conn.execute(f"DELETE FROM {table}")
            cursor = conn.execute(
                "UPDATE inbox SET state = 'new', processed_at = NULL "
                "WHERE state IN ('processed', 'duplicate', 'ignored')"
            )
        return cursor.rowcount

    def close_call_automatically(
        self, conn: sqlite3.Connection, call_id: int, *, result: str, user: str | None
    ) -> None:
        """Close a call that turned out handled (inside the caller's transaction)."""
        conn.execute(
            """
            UPDATE calls SET status = 'called_back',
                             result = CASE WHEN result = '' THEN ? ELSE result || char(10) || ? END,
                             user = ?, handled_at = ?, closed_by = 'auto', version = version + 1
            WHERE id = ? AND status = 'missed'
            """,
            [result, result, user, timefmt.to_stored(timefmt.now_utc()), call_id],
        )

    # -- subscriptions --------------------------------------------------------------------

    SUBSCRIPTION_COLUMNS = (
        "id",
        "pattern",
        "subscription_type",
        "url",
        "expires",
        "requested",
        "created_at",
        "expires_at",
        "state",
        "replaced_by",
        "last_checked_at",
        "last_error",
    )

    def _insert_subscription(self, conn: sqlite3.Connection, row: dict[str, Any]) -> None:
        columns = [c for c in self.SUBSCRIPTION_COLUMNS if c in row]
        conn.execute(
            f"INSERT INTO subscriptions ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))})",
            [row[c] for c in columns],
        )

    def insert_subscription(self, row: dict[str, Any]) -> dict[str, Any]:
        with self.transaction() as conn:
            self._insert_subscription(conn, row)
        return self.get_subscription(row["id"]) or {}

    def get_subscription(self, subscription_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT * FROM subscriptions WHERE id = ?", [subscription_id]
        ).fetchone()
        return dict(row) if row else None

    def list_subscriptions(self, states: Iterable[str] | None = ("active",)) -> list[dict]:
        """Oldest first; `states` None lists every row ever recorded."""
        sql = "SELECT * FROM subscriptions"
        params: list[Any] = []
        if states is not None:
            states = list(states)
            sql += f" WHERE state IN ({','.join('?' * len(states))})"
            params = states
        sql += " ORDER BY created_at, rowid"
        return [dict(row) for row in self.conn.execute(sql, params)]

    def update_subscription(
        self, subscription_id: str, *, only_if_state: str | None = None, **changes: Any
    ) -> bool:
        """Change some columns; with `only_if_state`, only while the row is in that state."""
        unknown = set(changes) - set(self.SUBSCRIPTION_COLUMNS) - {"id"}
        if unknown or not changes or "id" in changes:
            raise ValueError(f"cannot update subscription columns {sorted(changes)}")
        sql = f"UPDATE subscriptions SET {', '.join(f'{c} = ?' for c in changes)} WHERE id = ?"
        params = [*changes.values(), subscription_id]
        if only_if_state is not None:
            sql += " AND state = ?"
            params.append(only_if_state)
        with self.transaction() as conn:
            return conn.execute(sql, params).rowcount > 0

    def replace_subscription(
        self, old_id: str, new_row: dict[str, Any], old_state: str = "replaced"
    ) -> bool:
        """Record the successor and retire the old row in one transaction.

        Only while the old row is still active (another process may have renewed it first);
        returns False and records nothing otherwise.
        """
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE subscriptions SET state = ?, replaced_by = ?, last_error = NULL "
                "WHERE id = ? AND state = 'active'",
                [old_state, new_row["id"], old_id],
            )
            if cursor.rowcount == 0:
                return False
            self._insert_subscription(conn, new_row)
        return True

    def inbox_body(self, inbox_id: int) -> bytes:
        row = self.conn.execute("SELECT body FROM inbox WHERE id = ?", [inbox_id]).fetchone()
        if row is None:
            raise UserError(f"There is no event {inbox_id} in the inbox.")
        return bytes(row[0])

    # -- reconcile and auto-close ---------------------------------------------------------
    # Statistics reconciliation, auto-closing, the abonents cache.

    @staticmethod
    def _stored_bounds(epoch_ms: int, tolerance_ms: int) -> tuple[str, str]:
        return (
            timefmt.ms_to_stored(epoch_ms - tolerance_ms),
            timefmt.ms_to_stored(epoch_ms + tolerance_ms),
        )

    def call_near(
        self,
        conn: sqlite3.Connection | None,
        phone: str | None,
        epoch_ms: int,
        tolerance_ms: int,
        source: str | None = None,
    ) -> dict[str, Any] | None:
        """A register row for `phone` (None: a hidden number) within the tolerance of a moment."""
        conn = conn or self.conn
        low, high = self._stored_bounds(epoch_ms, tolerance_ms)
        sql = "SELECT * FROM calls WHERE phone IS ? AND called_at BETWEEN ? AND ?"
        params: list[Any] = [phone, low, high]
        if source is not None:
            sql += " AND source = ?"
            params.append(source)
        row = conn.execute(sql + " ORDER BY called_at LIMIT 1", params).fetchone()
        return dict(row) if row else None

    def incoming_leg_near(self, phone: str | None, epoch_ms: int, tolerance_ms: int) -> bool:
        """Did the hook hear an external incoming call from `phone` around that moment
        (answered or not)? Then the statistics record is that call, known already."""
        row = self.conn.execute(
            """
            SELECT 1 FROM legs
            WHERE remote_phone IS ? AND start_ms BETWEEN ? AND ?
              AND personality = 'Terminator' AND call_type = 'Network'
            LIMIT 1
            """,
            [phone, epoch_ms - tolerance_ms, epoch_ms + tolerance_ms],
        ).fetchone()
        return row is not None

    def session_known(self, tracking_id: str) -> bool:
        """The hook or an earlier run has this tracking id (statistics rarely carry one)."""
        row = self.conn.execute(
            "SELECT 1 FROM sessions WHERE ext_tracking_id = ? "
            "UNION ALL SELECT 1 FROM calls WHERE session_key = ? LIMIT 1",
            [tracking_id, tracking_id],
        ).fetchone()
        return row is not None

    def open_calls_of(self, phone: str, until: str) -> list[dict[str, Any]]:
        """A number's calls still «Пропущен» that came in no later than `until` (stored UTC)."""
        rows = self.conn.execute(
            CALL_SELECT
            + " WHERE calls.phone = ? AND calls.status = 'missed' AND calls.called_at <= ?"
            " ORDER BY calls.called_at, calls.id",
            [phone, until],
        )
        return [dict(row) for row in rows]

    def answered_after(
        self, phone: str, since_ms: int, *, other_than: str = "", limit: int = 50
    ) -> list[dict[str, Any]]:
        """The answered external legs with `phone` (either way) that started after a moment,
        earliest answer first, outside the session `other_than` (the call's own): the caller
        decides which of them a person answered."""
        rows = self.conn.execute(
            """
            SELECT * FROM legs
            WHERE remote_phone = ? AND start_ms > ? AND answered = 1
              AND call_type = 'Network' AND personality IN ('Terminator', 'Originator')
              AND ext_tracking_id != ?
            ORDER BY coalesce(answer_ms, start_ms), target_id LIMIT ?
            """,
            [phone, since_ms, other_than, limit],
        )
        return [dict(row) for row in rows]

    def set_outside_hours(self, call_id: int, outside: bool) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE calls SET outside_hours = ? WHERE id = ?", [int(outside), call_id])

    def replace_abonents(self, abonents: Iterable[dict[str, Any]]) -> int:
        """Cache the PBX's abonent list (all of it, replacing the previous copy)."""
        now = timefmt.to_stored(timefmt.now_utc())
        rows = [
            (
                str(a.get("userId") or ""),
                a.get("phone"),
                a.get("extension"),
                a.get("firstName"),
                a.get("lastName"),
                a.get("department"),
                now,
            )
            for a in abonents
            if a.get("userId")
        ]
        with self.transaction() as conn:
            conn.execute("DELETE FROM abonents")
            conn.executemany(
                "INSERT OR REPLACE INTO abonents (user_id, phone, extension, first_name, "
                "last_name, department, fetched_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def cached_abonents(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self.conn.execute("SELECT * FROM abonents ORDER BY user_id")]

    # -- load and faults --------------------------------------------------------------

    def fast_commits(self) -> None:
        """Commit without waiting for the disk, on a connection that writes only what the inbox
        can rebuild (the daemon's processor). WAL keeps each commit atomic, and the next durable
        commit (the intake's, synchronous=FULL) flushes these too; a power cut can lose only the
        latest derived rows, which the processor derives again from the inbox."""
        self.conn.execute("PRAGMA synchronous = NORMAL")

    def manual_checkpoints(self) -> None:
        """This connection never checkpoints on commit: in the daemon, a checkpoint (which
        syncs the whole database file) inside the intake's commit made some hook answers wait
        for it; the processor checkpoints between batches instead (see checkpoint())."""
        self.conn.execute("PRAGMA wal_autocheckpoint = 0")

    def checkpoint(self) -> None:
        """Copy the WAL into the database without blocking writers (PASSIVE)."""
        self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    # -- deadlines, escalation, honest auto-close ---------------------------------------
    # Callback attempts too short to close a case, answered calls waiting for their release,
    # and the cases managers were told about (tables of m110).

    def add_callback_attempt(
        self,
        call_id: int,
        *,
        session_key: str,
        direction: str,
        attempted_at: str,
        talk_seconds: int | None,
        who: str | None,
    ) -> bool:
        """Record a short answered call on an open call; False when it was recorded before
        (the same answered session, heard again in a replay)."""
        with self.transaction() as conn:
            cursor = conn.execute(
                """
                INSERT INTO callback_attempts (call_id, session_key, direction, attempted_at,
                                               talk_seconds, who, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(call_id, session_key) DO NOTHING
                """,
                [
                    call_id,
                    session_key,
                    direction,
                    attempted_at,
                    talk_seconds,
                    who,
                    timefmt.to_stored(timefmt.now_utc()),
                ],
            )
        return bool(cursor.rowcount)

    def callback_attempts_of(self, call_ids: Iterable[int]) -> list[dict[str, Any]]:
        """The recorded attempts on these calls, one per answered session, earliest first."""
        ids = [int(i) for i in call_ids]
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = self.conn.execute(
            f"""
            SELECT session_key, direction, attempted_at, talk_seconds, who,
                   group_concat(call_id) AS call_ids
            FROM callback_attempts WHERE call_id IN ({marks})
            GROUP BY session_key ORDER BY attempted_at, session_key
            """,
            ids,
        )
        return [dict(row) for row in rows]

    def await_release(self, conn: sqlite3.Connection, ext_tracking_id: str, since_ms: int) -> None:
        conn.execute(
            "INSERT INTO answers_awaiting_release (ext_tracking_id, since_ms) VALUES (?, ?) "
            "ON CONFLICT(ext_tracking_id) DO NOTHING",
            [ext_tracking_id, since_ms],
        )

    def awaits_release(self, conn: sqlite3.Connection, ext_tracking_id: str) -> bool:
        row = conn.execute(
            "SELECT 1 FROM answers_awaiting_release WHERE ext_tracking_id = ?", [ext_tracking_id]
        ).fetchone()
        return row is not None

    def stop_awaiting_release(self, conn: sqlite3.Connection, ext_tracking_id: str) -> None:
        conn.execute(
            "DELETE FROM answers_awaiting_release WHERE ext_tracking_id = ?", [ext_tracking_id]
        )

    def awaiting_release_since(self, before_ms: int) -> list[str]:
        """Sessions that have waited for their release since before `before_ms`."""
        rows = self.conn.execute(
            "SELECT ext_tracking_id FROM answers_awaiting_release WHERE since_ms <= ? "
            "ORDER BY since_ms",
            [before_ms],
        )
        return [str(row[0]) for row in rows]

    def escalated_among(self, call_ids: Iterable[int]) -> set[int]:
        ids = [int(i) for i in call_ids]
        if not ids:
            return set()
        marks = ",".join("?" * len(ids))
        rows = self.conn.execute(
            f"SELECT call_id FROM escalations WHERE call_id IN ({marks})", ids
        )
        return {int(row[0]) for row in rows}

    def mark_escalated(self, call_ids: Iterable[int], at: str) -> list[int]:
        """Record that managers were told about these calls; returns those not recorded before
        (so that two daemons, or a retry, never tell twice)."""
        added = []
        with self.transaction() as conn:
            for call_id in call_ids:
                cursor = conn.execute(
                    "INSERT INTO escalations (call_id, escalated_at) VALUES (?, ?) "
                    "ON CONFLICT(call_id) DO NOTHING",
                    [int(call_id), at],
                )
                if cursor.rowcount:
                    added.append(int(call_id))
        return added
