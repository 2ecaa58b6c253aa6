"""Calls and cases: the register's rows, the cases staff handle, their cards.

A case is one caller's open calls (status «Пропущен»): the list shows its latest call with the
caller's attempts, and saving a card saves every call of the case at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from beeline_missed import timefmt
from beeline_missed.errors import ConflictError
from beeline_missed.store.base import MAX_ROWID, Part, no_call
from beeline_missed.store.rows import Call
from beeline_missed.vocabulary import CallStatus, ClosedBy, Source

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


class Calls(Part):
    """The `calls` table."""

    def insert(
        self,
        *,
        session_key: str,
        phone: str | None,
        phone_raw: str,
        called_at: str,
        line: str,
        source: str = Source.HOOK,
        outside_hours: bool = False,
        lost_at: str | None = None,
        forwarded_to: str | None = None,
    ) -> int | None:
        """Register a missed call.

        Returns the new row id, or None when the session is registered already; then only what
        detection derives (where it was lost, forwarded to) is brought up to date, as `replay`
        under a newer rule needs — never what staff recorded.
        """
        with self.transaction():
            cursor = self.conn.execute(
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
            self.conn.execute(
                "UPDATE calls SET lost_at = ?, forwarded_to = ? WHERE session_key = ?",
                [lost_at, forwarded_to, session_key],
            )
            return None

    def join_heard(
        self,
        call_id: int,
        *,
        session_key: str,
        line: str,
        lost_at: str | None,
        forwarded_to: str | None,
    ) -> None:
        """A row reconciliation registered, now decided missed from the hook's events of the
        same call: it becomes that session's row (unless another row has the session already)
        and gains what only the events tell — the line rung, where the call was lost, where it
        was forwarded. What staff recorded, and the card's version, are left alone."""
        with self.transaction():
            self.conn.execute(
                """
                UPDATE calls SET
                    session_key = CASE WHEN EXISTS (
                        SELECT 1 FROM calls AS other WHERE other.session_key = :key
                    ) THEN session_key ELSE :key END,
                    line = :line, lost_at = :lost_at, forwarded_to = :forwarded_to
                WHERE id = :id
                """,
                {
                    "key": session_key,
                    "line": line,
                    "lost_at": lost_at,
                    "forwarded_to": forwarded_to,
                    "id": call_id,
                },
            )

    def get(self, call_id: int) -> Call:
        # A number beyond SQLite's integers names no row (and binding it would overflow).
        row = None
        if 0 < call_id <= MAX_ROWID:
            row = self.conn.execute(CALL_SELECT + " WHERE calls.id = ?", [call_id]).fetchone()
        if row is None:
            raise no_call(call_id)
        return Call.from_row(row)

    def rows(
        self,
        include_handled: bool = False,
        limit: int | None = None,
        per_caller: bool | None = None,
    ) -> list[Call]:
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
        return [Call.from_row(row) for row in self.conn.execute(sql, params)]

    def case(self, call_id: int) -> list[Call]:
        """The open calls handled together with `call_id`: all open calls from the same
        number (just the call itself when the number is hidden or the call is handled)."""
        call = self.get(call_id)
        if call.status != CallStatus.MISSED or not call.phone:
            return [call]
        sql = (
            CALL_SELECT + " WHERE calls.status = 'missed' AND calls.phone = ?"
            " ORDER BY calls.called_at DESC, calls.id DESC"
        )
        return [Call.from_row(row) for row in self.conn.execute(sql, [call.phone])]

    def save_many(self, saves: Sequence[dict[str, Any]]) -> list[Call]:
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
        return self.by_ids([save["call_id"] for save in saves])

    def count(self, status: str | None = None) -> int:
        if status is None:
            return int(self.conn.execute("SELECT count(*) FROM calls").fetchone()[0])
        sql = "SELECT count(*) FROM calls WHERE status = ?"
        return int(self.conn.execute(sql, [status]).fetchone()[0])

    def save(
        self,
        call_id: int,
        expected_version: int,
        *,
        status: str,
        result: str,
        user: str | None,
        handled_at: str | None,
        closed_by: str | None = ClosedBy.STAFF,
    ) -> Call:
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
        self.save_many([save])
        return self.get(call_id)

    def by_ids(self, ids: Iterable[int]) -> list[Call]:
        ids = list(ids)
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        sql = CALL_SELECT + f" WHERE calls.id IN ({marks}) ORDER BY calls.called_at DESC"
        return [Call.from_row(row) for row in self.conn.execute(sql, ids)]

    def max_id(self) -> int:
        return int(self.conn.execute("SELECT coalesce(max(id), 0) FROM calls").fetchone()[0])

    def relink(self) -> int:
        """Point every call at the client owning its number now; returns the calls changed.

        The card's version is not bumped: a directory change is not an edit of the card,
        and bumping it would make a colleague's open card conflict for no reason.
        """
        with self.transaction():
            cursor = self.conn.execute(
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

    def by_session(self, session_key: str) -> Call | None:
        row = self.conn.execute(
            "SELECT * FROM calls WHERE session_key = ?", [session_key]
        ).fetchone()
        return Call.from_row(row) if row else None

    def close_automatically(self, call_id: int, *, result: str, user: str | None) -> None:
        """Close a call that turned out handled, unless staff closed it first."""
        with self.transaction():
            self.conn.execute(
                """
                UPDATE calls SET status = 'called_back',
                    result = CASE WHEN result = '' THEN ? ELSE result || char(10) || ? END,
                    user = ?, handled_at = ?, closed_by = 'auto', version = version + 1
                WHERE id = ? AND status = 'missed'
                """,
                [result, result, user, timefmt.to_stored(timefmt.now_utc()), call_id],
            )

    @staticmethod
    def _stored_bounds(epoch_ms: int, tolerance_ms: int) -> tuple[str, str]:
        return (
            timefmt.ms_to_stored(epoch_ms - tolerance_ms),
            timefmt.ms_to_stored(epoch_ms + tolerance_ms),
        )

    def starts_near(
        self, phone: str | None, epoch_ms: int, tolerance_ms: int
    ) -> list[tuple[int, str]]:
        """The register's rows for `phone` (None: a hidden number) within the tolerance of a
        moment: (when the call came, epoch ms; source) each."""
        low, high = self._stored_bounds(epoch_ms, tolerance_ms)
        rows = self.conn.execute(
            "SELECT called_at, source FROM calls WHERE phone IS ? AND called_at BETWEEN ? AND ?",
            [phone, low, high],
        ).fetchall()
        return [(timefmt.stored_to_ms(row[0]), row[1]) for row in rows]

    def unheard_reconciled_near(
        self, phone: str | None, epoch_ms: int, tolerance_ms: int
    ) -> Call | None:
        """The row reconciliation registered for `phone` nearest a moment, within the
        tolerance, that no call the hook heard stands for yet.

        A reconciled row is one call: once a heard call has joined it, a second call from
        the same client a minute later is another call and gets its own row, whichever of
        the two reconciliation found first."""
        low, high = self._stored_bounds(epoch_ms, tolerance_ms)
        rows = self.conn.execute(
            "SELECT * FROM calls WHERE phone IS ? AND called_at BETWEEN ? AND ? "
            "AND source = ? AND NOT EXISTS "
            "(SELECT 1 FROM sessions WHERE sessions.call_row = calls.id)",
            [phone, low, high, Source.RECONCILE],
        ).fetchall()
        found = [Call.from_row(row) for row in rows]

        def distance(call: Call) -> tuple[int, int]:
            return abs(timefmt.stored_to_ms(call.called_at) - epoch_ms), call.id

        return min(found, key=distance, default=None)

    def open_of(self, phone: str, until: str) -> list[Call]:
        """A number's calls still «Пропущен» that came in no later than `until` (stored UTC)."""
        rows = self.conn.execute(
            CALL_SELECT
            + " WHERE calls.phone = ? AND calls.status = 'missed' AND calls.called_at <= ?"
            " ORDER BY calls.called_at, calls.id",
            [phone, until],
        )
        return [Call.from_row(row) for row in rows]

    def set_outside_hours(self, call_id: int, outside: bool) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE calls SET outside_hours = ? WHERE id = ?", [int(outside), call_id])
