"""1C:Альфа-Авто on the register's side: clients synced from 1C, bookings waiting for 1C.

A synced client keeps its 1C Ref_Key (`onec_ref`); a client of 1C's that a sync no
longer sees (deleted or marked for deletion there) leaves the directory. The clients
themselves go through `register.clients.upsert`, so matching is the file import's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from beeline_missed.store.base import Part
from beeline_missed.store.clients import IMPORT_BATCH, IMPORT_PAUSE, STAGE_CHUNK
from beeline_missed.store.rows import Booking, Holder


class OneC(Part):
    """The clients' `onec_ref` column and the `onec_bookings` table."""

    def sync_clients(
        self,
        records: Iterable[tuple[str, str | None, str, Sequence[tuple[str, str]], bool]],
    ) -> dict[str, Any]:
        """Sync the directory with 1C's clients, given as (ref, code, name, numbers, usable)
        where `usable` is False for a record seen but skipped (bad data: the directory's
        client is kept as it is). Everything is staged first, so a read that fails half-way
        changes nothing. Returns `register.clients.upsert`' counts plus `removed` and `total` (the
        records written). When 1C gave no record at all, nothing is removed."""
        conn = self.conn
        conn.execute("PRAGMA temp_store = FILE")
        conn.execute("DROP TABLE IF EXISTS temp.onec_seen")
        conn.execute(
            # n (the order 1C gave) is the rowid: every later step reads ranges of it.
            "CREATE TEMP TABLE onec_seen (ref TEXT NOT NULL UNIQUE, n INTEGER PRIMARY KEY, "
            "code TEXT, name TEXT NOT NULL, name_key TEXT NOT NULL, numbers TEXT NOT NULL, "
            "usable INTEGER NOT NULL)"
        )
        try:
            rows: list[tuple[Any, ...]] = []

            def flush() -> None:
                conn.execute("BEGIN")
                conn.executemany(
                    "INSERT OR REPLACE INTO onec_seen VALUES (?, ?, ?, ?, ?, ?, ?)", rows
                )
                conn.execute("COMMIT")
                rows.clear()

            seen = 0
            for seen, (ref, code, name, numbers, usable) in enumerate(records, 1):
                rows.append(
                    (
                        ref,
                        seen,
                        code or None,
                        name,
                        self.register.clients.name_key(name),
                        json.dumps(list(numbers), ensure_ascii=False),
                        int(usable),
                    )
                )
                if len(rows) >= STAGE_CHUNK:
                    flush()
            if rows:
                flush()

            def staged() -> Iterator[tuple[str | None, str, list[tuple[str, str]]]]:
                for low in range(1, seen + 1, STAGE_CHUNK):
                    chunk = conn.execute(
                        "SELECT code, name, numbers FROM onec_seen WHERE usable = 1 "
                        "AND n BETWEEN ? AND ? ORDER BY n",
                        [low, low + STAGE_CHUNK - 1],
                    ).fetchall()
                    for code, name, numbers in chunk:
                        yield code, name, [tuple(pair) for pair in json.loads(numbers)]

            cache = conn.execute("PRAGMA cache_size").fetchone()[0]
            counts = self.register.clients.upsert(staged())
            # The import's big page cache (it leaves it set) would fill up again with every
            # page of the directory below; the default keeps the sync's memory flat.
            conn.execute(f"PRAGMA cache_size = {int(cache)}")
            conn.execute("PRAGMA temp.cache_size = -2000")
            counts["total"] = conn.execute(
                "SELECT count(*) FROM onec_seen WHERE usable = 1"
            ).fetchone()[0]
            # Each synced client's Ref_Key: found by its code, or, without one, by its name.
            for low in range(1, seen + 1, STAGE_CHUNK):
                if low > 1:
                    time.sleep(IMPORT_PAUSE)
                with self.transaction():
                    span = [low, low + STAGE_CHUNK - 1]
                    conn.execute(
                        "UPDATE clients SET onec_ref = s.ref FROM onec_seen AS s "
                        "WHERE s.n BETWEEN ? AND ? AND s.usable = 1 AND s.code IS NOT NULL "
                        "AND clients.external_id = s.code AND clients.onec_ref IS NOT s.ref",
                        span,
                    )
                    conn.execute(
                        "UPDATE clients SET onec_ref = s.ref FROM onec_seen AS s "
                        "WHERE s.n BETWEEN ? AND ? AND s.usable = 1 AND s.code IS NULL "
                        "AND clients.external_id IS NULL AND clients.name_key = s.name_key "
                        "AND clients.onec_ref IS NOT s.ref",
                        span,
                    )
            removed = 0
            if seen:
                gone = [
                    row[0]
                    for row in conn.execute(
                        "SELECT id FROM clients WHERE onec_ref IS NOT NULL AND onec_ref NOT IN "
                        "(SELECT ref FROM onec_seen) ORDER BY id"
                    )
                ]
                for start in range(0, len(gone), IMPORT_BATCH):
                    ids = gone[start : start + IMPORT_BATCH]
                    marks = ",".join("?" * len(ids))
                    with self.transaction():
                        # Calls keep their number; the client's name leaves them with it.
                        conn.execute(f"DELETE FROM clients WHERE id IN ({marks})", ids)
                    removed += len(ids)
            counts["removed"] = removed
            return counts
        finally:
            if conn.in_transaction:
                conn.rollback()
            conn.execute("DROP TABLE IF EXISTS temp.onec_seen")

    def client_of(self, phone: str | None) -> Holder | None:
        """The directory client holding `phone` (E.164) with its 1C Ref_Key; None when no
        client holds it."""
        if not phone:
            return None
        row = self.conn.execute(
            "SELECT c.id, c.name, c.onec_ref FROM client_phones AS cp "
            "JOIN clients AS c ON c.id = cp.client_id WHERE cp.phone = ? "
            "ORDER BY c.id LIMIT 1",
            [phone],
        ).fetchone()
        return Holder.from_row(row) if row else None

    def add_booking(self, call_id: int, client_ref: str, token: str, body: str, now: str) -> int:
        """Keep a booking to create in 1C (state 'waiting'); returns its id."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO onec_bookings (call_id, client_ref, token, body, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                [call_id, client_ref, token, body, now, now],
            )
            return int(cursor.lastrowid or 0)

    def booking_created(self, booking_id: int, number: str, ref: str, now: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE onec_bookings SET state = 'created', number = ?, ref = ?, "
                "attempts = attempts + 1, last_error = NULL, updated_at = ? WHERE id = ?",
                [number, ref, now, booking_id],
            )

    def booking_failed(self, booking_id: int, error: str, now: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE onec_bookings SET attempts = attempts + 1, last_error = ?, "
                "updated_at = ? WHERE id = ?",
                [error, now, booking_id],
            )

    def bookings(self, state: str = "waiting", limit: int = 100) -> list[Booking]:
        """Bookings in `state`, oldest first, with their call's phone."""
        rows = self.conn.execute(
            "SELECT b.*, calls.phone AS phone FROM onec_bookings AS b "
            "LEFT JOIN calls ON calls.id = b.call_id WHERE b.state = ? ORDER BY b.id LIMIT ?",
            [state, limit],
        )
        return [Booking.from_row(row) for row in rows]
