"""The clients directory («Контрагенты»): clients and their numbers, import, search.

A client is matched on re-import by its external id
(1C «Код») when the file has one, else by its name with case, spacing and ё ignored,
else — a client renamed in 1C, or a file without codes — by its phone numbers, so
importing the same export again updates rather than duplicates.

A number belongs to one client: the one given it last. Within a file the last row
listing it wins (1C lists the newer entries lower); an import or `clients add` wins
over what the directory held. Every number so decided is reported (`shared`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from beeline_missed import timefmt
from beeline_missed.store.base import Part
from beeline_missed.store.rows import Client

# Clients written per transaction on import, at first: the size then adapts so that each
# transaction holds the write lock for about IMPORT_LOCK seconds, followed by IMPORT_PAUSE
# without it. The daemon's hook does not wait for it: after 20 ms it keeps events in its
# spool (daemon/spool.py). Other writers (the daemon's processor, a card saved meanwhile)
# wait in SQLite's busy handler, which retries every 25 ms at most: a pause longer than that
# lets them in between two transactions, so they wait about IMPORT_LOCK.
IMPORT_BATCH = 200
IMPORT_MIN_BATCH = 50
IMPORT_MAX_BATCH = 50_000
IMPORT_LOCK = 0.250
IMPORT_PAUSE = 0.030
STAGE_CHUNK = 5000  # entries held in memory before they go to the staging tables
SHARED_SHOWN = 100  # numbers claimed by several clients listed by name; all are counted
# Bumped by every batch any upsert writes: an import sees whether another wrote meanwhile.
GENERATION_KEY = "directory_generation"
IMPORT_TABLES = (
    "imp_row",
    "imp_phone",
    "imp_client",
    "imp_won",
    "imp_taken",
    "imp_moved",
)


@dataclass
class _Writing:
    """What the batches of one upsert share."""

    replace_phones: bool
    now: str
    calls_since: int  # the last call when the import looked; later ones may be from any number
    any_called: bool  # whether calls had come from any of the file's numbers by then
    # The directory held no number when the writing began and no other upsert has written
    # since (`generation` is still the one this one wrote last): no client but the file's
    # can hold a number of the file, so none needs to be looked for.
    only_ours: bool
    generation: str | None


class Clients(Part):
    """The `clients` and `client_phones` tables."""

    @staticmethod
    def name_key(name: str) -> str:
        """A client's name as matched and searched: case, spacing and ё ignored
        («ИВАНОВ  иван» = «Иванов Иван», «Ёлкин» = «елкин»)."""
        return " ".join(str(name).split()).casefold().replace("ё", "е")

    def upsert(
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
        nothing), matched there; then only the new and changed ones are written, in order of
        their codes (else names), in short transactions (the first of `batch_size` clients,
        then sized to hold the lock ~IMPORT_LOCK seconds), each followed by IMPORT_PAUSE, so
        that other writers never wait long for the register; an interrupted import is
        completed by importing again.

        Returns the counts added, updated, unchanged, calls_relinked; `shared_count`, the
        numbers claimed by several clients, and `shared`, the first SHARED_SHOWN of them as
        {"phone", "clients" (names, file order, the directory's holder first), "kept_by"}.
        """
        now = timefmt.to_stored(timefmt.now_utc())
        conn = self.conn
        synchronous = conn.execute("PRAGMA synchronous").fetchone()[0]
        # Each batch waits for the disk itself. Without that (synchronous=NORMAL) the
        # daemon's next durable commit would flush the batch's megabytes for it and keep
        # the PBX waiting.
        conn.execute("PRAGMA synchronous = FULL")
        # Memory stays bounded whatever the file's size. SQLite's sorts take as much memory
        # as the main cache is given, so while staging (sorts, temporary tables) the main
        # cache is small; while writing, the directory's indexes get the room.
        conn.execute("PRAGMA cache_size = -16000")
        conn.execute("PRAGMA temp.cache_size = -32000")
        # A checkpoint after every batch (the default: at 1,000 pages of WAL) syncs the
        # database file each time, twice the import's own work; every 16,000 pages is enough.
        autocheckpoint = conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        conn.execute("PRAGMA wal_autocheckpoint = 16000")
        try:
            self._stage(entries)
            self._match(replace_phones)
            # (More would not help while the daemon runs: SQLite empties a connection's
            # cache whenever another one has written, so each batch starts cold.)
            conn.execute("PRAGMA temp.cache_size = -8000")
            conn.execute("PRAGMA cache_size = -32000")
            # New clients get the ids base + their place in the file's order of codes (else
            # names); `base` moves up only if another process adds a client meanwhile.
            base = self.max_id()
            # The generation first: another upsert writing between the two looks is then
            # noticed at the first batch.
            generation = self.register.meta.get(GENERATION_KEY)
            no_numbers = conn.execute("SELECT 1 FROM client_phones LIMIT 1").fetchone() is None
            writing = _Writing(replace_phones, now, *self._mark_called(), no_numbers, generation)
            relinked, low, size, paused = 0, 0, batch_size, time.perf_counter()
            while True:
                # Only clients that change are written: re-importing the same file takes the
                # write lock for nothing.
                low, high = self._next_changed(low, size)
                if high is None:
                    break
                # A writer waiting for the lock gets in during the pause (see IMPORT_LOCK),
                # where back-to-back batches would starve it.
                time.sleep(max(0.0, IMPORT_PAUSE - (time.perf_counter() - paused)))
                started = time.perf_counter()
                with self.transaction():
                    # Someone else's new client took an id this batch means to use.
                    base = max(base, self.max_id() - low + 1)
                    relinked += self._apply(low, high, base, writing)
                paused = time.perf_counter()
                low = high + 1
                # Keep each transaction near IMPORT_LOCK seconds, whatever the machine.
                fitting = int(size * IMPORT_LOCK / max(paused - started, 0.001))
                if fitting < size:
                    size = max(min(size, IMPORT_MIN_BATCH), fitting)
                else:  # at most twice as many: the first batches run on a cold cache
                    size = min(IMPORT_MAX_BATCH, size * 2, fitting)
            counts: dict[str, Any] = {"added": 0, "updated": 0, "unchanged": 0}
            for state, n in conn.execute(
                "SELECT coalesce(state, 'added'), count(*) FROM temp.imp_client GROUP BY 1"
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

    def _stage(self, entries: Iterable[tuple[str | None, str, Sequence[tuple[str, str]]]]) -> None:
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

        name_key = self.name_key
        for row_no, (external_id, name, given) in enumerate(entries, 1):
            key = name_key(name)
            ident = "c:" + external_id if external_id else "n:" + key
            rows.append((row_no, ident, external_id or None, name, key))
            for phone, raw in given:
                numbers.append((row_no, ident, phone, raw))
            if len(rows) >= STAGE_CHUNK:
                flush()
        flush()
        conn.execute("BEGIN")
        # One line per client of the file (`first`: the row it first appears on); the name
        # is the last row's. Numbered in `ident` order (the code, else the name), the order
        # the grouping gives and the order they are written in: a batch is a range of codes
        # (else names), so the index it grows at one end (`clients_external_id`, else
        # `clients_name_key`) gets a few pages dirty, not one per client. (Numbering them in
        # name order took one more sort of the whole file and, measured on 600,000 rows,
        # twice the bytes written.) `state` stays NULL for a client new to the directory.
        conn.execute(
            "CREATE TEMP TABLE imp_client (id INTEGER PRIMARY KEY, ident TEXT NOT NULL UNIQUE, "
            "first INTEGER NOT NULL, code TEXT, name TEXT NOT NULL, name_key TEXT NOT NULL, "
            "client_id INTEGER, how INTEGER, state TEXT)"
        )
        conn.execute(
            """
            INSERT INTO imp_client (ident, first, code, name, name_key)
                SELECT g.ident, g.first, r.code, r.name, r.name_key
                FROM (SELECT ident, min(row_no) AS first, max(row_no) AS last
                      FROM imp_row GROUP BY ident) AS g
                JOIN imp_row r ON r.row_no = g.last
                ORDER BY g.ident
            """
        )
        conn.execute("CREATE INDEX imp_client_client ON imp_client(client_id)")
        # Each number goes to the client of the last row listing it; `shared` when rows of
        # other clients list it too; `called` when calls in the register came from it (see
        # `_mark_called`). Kept in client order, so that a batch reads its clients' numbers
        # from a few pages rather than one page per number.
        conn.execute(
            "CREATE TEMP TABLE imp_won (ident TEXT NOT NULL, phone TEXT NOT NULL, "
            "raw TEXT NOT NULL, last_row INTEGER NOT NULL, shared INTEGER NOT NULL, "
            "called INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (ident, phone)) WITHOUT ROWID"
        )
        # SQLite takes ident and raw from the row of max(row_no); PostgreSQL says so.
        won = (
            """(SELECT phone, ident, raw, max(row_no) AS last_row,
                       count(DISTINCT ident) > 1 AS shared
                FROM imp_phone GROUP BY phone)"""
            if self.register.engine == "sqlite"
            else """(SELECT DISTINCT ON (p.phone) p.phone, p.ident, p.raw, p.row_no AS last_row,
                       CAST((SELECT count(DISTINCT q.ident) FROM imp_phone AS q
                             WHERE q.phone = p.phone) > 1 AS INTEGER) AS shared
                FROM imp_phone AS p ORDER BY p.phone, p.row_no DESC)"""
        )
        conn.execute(
            "INSERT INTO imp_won (ident, phone, raw, last_row, shared) "
            f"SELECT ident, phone, raw, last_row, shared FROM {won} AS w "
            "ORDER BY ident, phone"
        )
        conn.execute("CREATE UNIQUE INDEX imp_won_phone ON imp_won(phone)")
        # Per batch: the directory's numbers about to leave their client (taken by another,
        # or gone from the file's row), by rowid in client_phones.
        conn.execute(
            "CREATE TEMP TABLE imp_taken (cp_rowid INTEGER NOT NULL, phone TEXT NOT NULL, "
            "holder INTEGER NOT NULL)"
        )
        conn.execute("CREATE TEMP TABLE imp_moved (phone TEXT NOT NULL, holder TEXT NOT NULL)")
        conn.execute("COMMIT")

    def _match(self, replace_phones: bool) -> None:
        """Find each client of the file in the directory: by code, then by name, then (an
        import only) by numbers. Earlier steps win a directory client; within a step, the
        client first in the file."""
        conn = self.conn
        if conn.execute("SELECT 1 FROM clients LIMIT 1").fetchone() is None:
            return  # a first import: every client is new, and the look-ups cost seconds
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
                              JOIN imp_won AS w ON w.ident = i.ident
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
                (:replace = 1 AND c.name != imp_client.name)
                OR (imp_client.code IS NOT NULL AND c.external_id IS NOT imp_client.code)
                OR EXISTS (SELECT 1 FROM imp_won AS w WHERE w.ident = imp_client.ident
                           AND NOT EXISTS (SELECT 1 FROM client_phones AS cp
                                           WHERE cp.client_id = c.id AND cp.phone = w.phone))
                OR (:replace = 1 AND EXISTS (
                        SELECT 1 FROM client_phones AS cp WHERE cp.client_id = c.id
                        AND NOT EXISTS (SELECT 1 FROM imp_won AS w
                                        WHERE w.phone = cp.phone AND w.ident = imp_client.ident)))
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
            WHERE how = ? AND first > (SELECT min(o.first) FROM imp_client AS o
                                       WHERE o.client_id = imp_client.client_id)
            """,
            [how],
        )

    def _mark_called(self) -> tuple[int, bool]:
        """Mark the file's numbers that calls of the register came from. Returns the last
        call's id (later calls, the daemon going on, may come from any number) and whether
        any number was marked."""
        conn = self.conn
        calls_since = int(conn.execute("SELECT coalesce(max(id), 0) FROM calls").fetchone()[0])
        numbers = int(conn.execute("SELECT count(*) FROM imp_won").fetchone()[0])
        # Driven from the smaller side (the last id stands for the number of calls): a big
        # import into a register of few calls reads the calls once; `clients add` in a
        # register of a million calls looks up its one number.
        called = (
            "phone IN (SELECT phone FROM calls)"
            if calls_since < numbers
            else "EXISTS (SELECT 1 FROM calls WHERE calls.phone = imp_won.phone)"
        )
        conn.execute("BEGIN")
        marked = conn.execute(f"UPDATE imp_won SET called = 1 WHERE {called}").rowcount
        conn.execute("COMMIT")
        return calls_since, marked > 0

    def _apply(self, low: int, high: int, base: int, writing: _Writing) -> int:
        """Write the file's clients `low`..`high` (inside the caller's transaction), a new
        one under the id `base` + its own; returns the calls re-linked."""
        conn = self.conn
        meta = self.register.meta
        if meta.get(GENERATION_KEY) != writing.generation:
            writing.only_ours = False  # another upsert wrote: its numbers may be the file's
        writing.generation = str(int(writing.generation or 0) + 1)
        meta.set(GENERATION_KEY, writing.generation)
        replace_phones = writing.replace_phones
        span = {
            "low": low,
            "high": high,
            "base": base,
            "now": writing.now,
            "since": writing.calls_since,
        }
        conn.execute(
            "INSERT INTO clients (id, name, name_key, external_id, created_at, updated_at) "
            "SELECT :base + id, name, name_key, code, :now, :now FROM imp_client "
            "WHERE id BETWEEN :low AND :high AND state IS NULL",
            span,
        )
        # The batch's new and changed clients, each with its id in the directory. CROSS
        # JOIN fixes the join order at the batch's few clients: the temporary tables have
        # no statistics, and a plan starting at a big table scanned it every batch.
        changed = (
            "(SELECT id, ident, coalesce(client_id, :base + id) AS cid, state FROM imp_client "
            "WHERE id BETWEEN :low AND :high AND state IS NOT 'unchanged')"
        )
        if not writing.only_ours:
            # Numbers another client held, taken by the file's client of this batch...
            conn.execute(
                "INSERT INTO imp_taken SELECT cp.rowid, cp.phone, cp.client_id "
                f"FROM {changed} AS i CROSS JOIN imp_won AS w ON w.ident = i.ident "
                "CROSS JOIN client_phones AS cp ON cp.phone = w.phone AND cp.client_id != i.cid",
                span,
            )
            # ...reported when that client is not in the file (the file's own lose them)...
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
                "WHERE i.id BETWEEN :low AND :high AND i.state = 'updated' AND NOT EXISTS "
                "(SELECT 1 FROM imp_won AS w WHERE w.phone = cp.phone AND w.ident = i.ident)",
                span,
            )
            conn.execute(
                "UPDATE clients SET name = i.name, name_key = i.name_key, "
                "external_id = coalesce(i.code, clients.external_id), updated_at = :now "
                "FROM (SELECT * FROM imp_client WHERE id BETWEEN :low AND :high "
                "AND state = 'updated') AS i WHERE i.client_id = clients.id",
                span,
            )
        else:
            conn.execute(
                "UPDATE clients SET external_id = coalesce(i.code, clients.external_id), "
                "updated_at = :now FROM (SELECT * FROM imp_client WHERE id BETWEEN :low AND :high "
                "AND state = 'updated') AS i WHERE i.client_id = clients.id",
                span,
            )
        taken = conn.execute("SELECT count(*) FROM imp_taken").fetchone()[0]
        if taken:
            conn.execute(
                "DELETE FROM client_phones WHERE rowid IN (SELECT cp_rowid FROM imp_taken)"
            )
        conn.execute(
            "INSERT OR IGNORE INTO client_phones (client_id, phone, raw) "
            f"SELECT i.cid, w.phone, w.raw FROM {changed} AS i "
            "CROSS JOIN imp_won AS w ON w.ident = i.ident",
            span,
        )
        # Calls from every number whose owner may have changed show the owner now: looked
        # up by number (calls_phone), the batch's few numbers driving the loop; of the
        # file's numbers, only those calls came from before the import (`called`), and
        # every call since.
        owner = (
            "(SELECT client_id FROM client_phones WHERE client_phones.phone = calls.phone "
            "ORDER BY client_id LIMIT 1)"
        )
        of_file = (
            f"UNION ALL SELECT w.phone FROM {changed} AS i "
            "CROSS JOIN imp_won AS w ON w.ident = i.ident WHERE w.called = 1"
            if writing.any_called
            else ""
        )
        relinked = conn.execute(
            f"UPDATE calls SET client_id = {owner} "
            f"WHERE phone IN (SELECT phone FROM imp_taken {of_file}) AND client_id IS NOT {owner}",
            span,
        ).rowcount
        relinked += conn.execute(
            f"UPDATE calls SET client_id = {owner} WHERE id > :since AND client_id IS NOT {owner}",
            span,
        ).rowcount
        if taken:
            conn.execute("DELETE FROM imp_taken")
        return relinked

    def _shared_numbers(self) -> dict[str, Any]:
        """The numbers claimed by several clients: within the file, or by a client of the
        file and one of the directory that is not in it."""
        conn = self.conn
        count = conn.execute(
            "SELECT count(*) FROM (SELECT phone FROM imp_won WHERE shared = 1 "
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
            WHERE p.phone IN (SELECT phone FROM imp_won WHERE shared = 1 ORDER BY last_row LIMIT ?)
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
                "SELECT c.name FROM imp_won AS w JOIN imp_client AS c ON c.ident = w.ident "
                "WHERE w.phone = ?",
                [phone],
            ).fetchone()[0]
            if kept_by not in names:
                names.append(kept_by)
            shared.append({"phone": phone, "clients": names, "kept_by": kept_by})
        return {"shared_count": count, "shared": shared}

    def _select(
        self, where: str = "", params: Sequence[Any] = (), limit: int | None = None
    ) -> list[Client]:
        sql = (
            "SELECT clients.id, clients.name, clients.external_id, "
            "(SELECT group_concat(phone, ',') FROM (SELECT phone FROM client_phones "
            " WHERE client_id = clients.id ORDER BY phone)) AS phones, "
            "(SELECT count(*) FROM calls WHERE calls.client_id = clients.id) AS calls "
            f"FROM clients {where} ORDER BY clients.name_key, clients.id"
        )
        params = list(params)
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [Client.from_row(row) for row in self.conn.execute(sql, params)]

    def rows(self, limit: int | None = None) -> list[Client]:
        """The directory by name, with case and ё ignored («Ёлкин» among the Е)."""
        return self._select(limit=limit)

    def find(self, text: str, phone: str | None = None) -> list[Client]:
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
        return self._select("WHERE " + " OR ".join(clauses), params)

    def count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM clients").fetchone()[0])

    def max_id(self) -> int:
        return int(self.conn.execute("SELECT coalesce(max(id), 0) FROM clients").fetchone()[0])

    def _next_changed(self, after: int, size: int) -> tuple[int, int | None]:
        """The next batch of the file's clients to write: ids `low`..`high` (in ident order,
        from `after` on) spanning at most `size` clients that are new or changed; high is
        None when none is left."""
        row = self.conn.execute(
            "SELECT min(id), max(id) FROM (SELECT id FROM imp_client WHERE id >= ? "
            "AND state IS NOT 'unchanged' ORDER BY id LIMIT ?)",
            [after, size],
        ).fetchone()
        return (row[0] or after), row[1]
