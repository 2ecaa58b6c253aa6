"""Calling back, on the register's side: callback attempts too short to close a case, answered
calls whose auto-close waits for their release (the talk time), and the cases the managers
were told about (escalation). Tables of migration m110; the rules are `autoclose.py`'s and
`escalation.py`'s."""

from __future__ import annotations

from collections.abc import Iterable

from beeline_missed import timefmt
from beeline_missed.store.base import Part
from beeline_missed.store.rows import Attempt


class Attempts(Part):
    """The `callback_attempts` and `answers_awaiting_release` tables."""

    def add(
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

    def of(self, call_ids: Iterable[int]) -> list[Attempt]:
        """The recorded attempts on these calls, one per answered session, earliest first."""
        ids = [int(i) for i in call_ids]
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = self.conn.execute(
            f"""
            SELECT session_key, min(direction) AS direction, min(attempted_at) AS attempted_at,
                   min(talk_seconds) AS talk_seconds, min(who) AS who,
                   group_concat(call_id) AS call_ids
            FROM callback_attempts WHERE call_id IN ({marks})
            GROUP BY session_key ORDER BY attempted_at, session_key
            """,
            ids,
        )
        return [Attempt.from_row(row) for row in rows]

    def await_release(self, ext_tracking_id: str, since_ms: int) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO answers_awaiting_release (ext_tracking_id, since_ms) VALUES (?, ?) "
                "ON CONFLICT(ext_tracking_id) DO NOTHING",
                [ext_tracking_id, since_ms],
            )

    def awaits_release(self, ext_tracking_id: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM answers_awaiting_release WHERE ext_tracking_id = ?", [ext_tracking_id]
        ).fetchone()
        return row is not None

    def stop_awaiting_release(self, ext_tracking_id: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "DELETE FROM answers_awaiting_release WHERE ext_tracking_id = ?",
                [ext_tracking_id],
            )

    def awaiting_release_since(self, before_ms: int) -> list[str]:
        """Sessions that have waited for their release since before `before_ms`."""
        rows = self.conn.execute(
            "SELECT ext_tracking_id FROM answers_awaiting_release WHERE since_ms <= ? "
            "ORDER BY since_ms",
            [before_ms],
        )
        return [str(row[0]) for row in rows]


class Escalations(Part):
    """The `escalations` table: open calls the managers were told about, never twice."""

    def among(self, call_ids: Iterable[int]) -> set[int]:
        ids = [int(i) for i in call_ids]
        if not ids:
            return set()
        marks = ",".join("?" * len(ids))
        rows = self.conn.execute(f"SELECT call_id FROM escalations WHERE call_id IN ({marks})", ids)
        return {int(row[0]) for row in rows}

    def mark(self, call_ids: Iterable[int], at: str) -> list[int]:
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
