"""Intake: the inbox of posted bodies, and what the processor derives from them — the legs
of each call session, the sessions and their decisions, the dedup keys."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from beeline_missed import phones, timefmt
from beeline_missed.errors import UserError
from beeline_missed.store.base import Part
from beeline_missed.store.rows import INBOX_ENTRY_FIELDS, InboxEntry, Session

if TYPE_CHECKING:
    from beeline_missed.rules.detection import LegState

# An inbox row's states, as the schema's CHECK lists them (migrations.py).
INBOX_STATES = ("new", "processed", "duplicate", "ignored", "rejected")
# The reason of an event the processor set aside after failing on it: `replay` tries it again.
PROCESSING_FAILED = "Could not be processed"
# The `legs` columns that are LegState's fields of the same name and type.
LEG_FIELDS = (
    "target_id",
    "call_id",
    "ext_tracking_id",
    "personality",
    "call_type",
    "remote_raw",
    "start_ms",
    "answer_ms",
    "release_ms",
    "huntgroup",
    "release_cause",
    "redirect_to",
)


def _leg(row: sqlite3.Row) -> LegState:
    """A stored leg as detection's value of it."""
    # Imported here: the store is loaded by every command, detection only by those that
    # read legs.
    from beeline_missed.rules.detection import LegState

    return LegState(
        answered=bool(row["answered"]),
        released=bool(row["released"]),
        member=bool(row["member"]),
        **{name: row[name] for name in LEG_FIELDS},
    )


class Inbox(Part):
    """The `inbox` table: every posted body, committed before the hook answers."""

    def add(
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

    def add_many(self, items: Sequence[tuple[bytes, int, dict[str, Any]]]) -> list[int]:
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

    def new(self, limit: int = 200) -> list[sqlite3.Row]:
        return self.conn.execute(
            "SELECT id, received_ms, body FROM inbox WHERE state = 'new' ORDER BY id LIMIT ?",
            [limit],
        ).fetchall()

    def mark(self, inbox_id: int, state: str, reason: str | None = None) -> None:
        with self.transaction():
            self.conn.execute(
                "UPDATE inbox SET state = ?, reason = coalesce(?, reason), processed_at = ? "
                "WHERE id = ?",
                [state, reason, timefmt.to_stored(timefmt.now_utc()), inbox_id],
            )

    def counts(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT state, count(*) FROM inbox GROUP BY state")
        return {state: count for state, count in rows}

    def rows(self, state: str | None = None, limit: int = 50) -> list[InboxEntry]:
        """The newest entries first, all or in one state."""
        sql = f"SELECT {', '.join(INBOX_ENTRY_FIELDS)} FROM inbox"
        params: list[Any] = []
        if state:
            sql += " WHERE state = ?"
            params.append(state)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        return [InboxEntry.from_row(row) for row in self.conn.execute(sql, params)]

    def body(self, inbox_id: int) -> bytes:
        row = self.conn.execute("SELECT body FROM inbox WHERE id = ?", [inbox_id]).fetchone()
        if row is None:
            raise UserError(f"There is no event {inbox_id} in the inbox.")
        return bytes(row[0])


class Sessions(Part):
    """The `legs`, `sessions`, `seen_events` and `seen_leg_events` tables."""

    def claim_event(
        self,
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
        with self.transaction():
            cursor = self.conn.execute(
                "INSERT INTO seen_events (event_id, digest, seen_ms) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                [event_id, digest, now_ms],
            )
            verdict = "new"
            if cursor.rowcount == 0:
                row = self.conn.execute(
                    "SELECT digest FROM seen_events WHERE event_id = ?", [event_id]
                ).fetchone()
                if row[0] == digest:
                    return "duplicate"
                verdict = "conflict"
                self.conn.execute(
                    "UPDATE seen_events SET digest = ?, seen_ms = ? WHERE event_id = ?",
                    [digest, now_ms, event_id],
                )
            if not leg_digests:
                return verdict
            fresh = 0
            for key in leg_digests:
                cursor = self.conn.execute(
                    "INSERT INTO seen_leg_events (digest, seen_ms) VALUES (?, ?) "
                    "ON CONFLICT DO NOTHING",
                    [key, now_ms],
                )
                fresh += cursor.rowcount
            return verdict if fresh or verdict == "conflict" else "duplicate"

    def forget_seen(self, before_ms: int) -> int:
        """Drop dedup keys older than `before_ms`: repeats come within minutes, not weeks."""
        with self.transaction():
            removed = 0
            for table in ("seen_events", "seen_leg_events"):
                removed += self.conn.execute(
                    f"DELETE FROM {table} WHERE seen_ms < ?", [before_ms]
                ).rowcount
            return removed

    def leg(self, target_id: str, call_id: str, ext_tracking_id: str) -> LegState | None:
        row = self.conn.execute(
            "SELECT * FROM legs WHERE target_id = ? AND call_id = ? AND ext_tracking_id = ?",
            [target_id, call_id, ext_tracking_id],
        ).fetchone()
        return _leg(row) if row else None

    def answered_legs_of(
        self,
        phone: str,
        from_ms: int,
        to_ms: int,
        *,
        other_than: str,
    ) -> list[LegState]:
        """Answered legs with this remote number that started in [from_ms, to_ms], outside the
        session `other_than`: a colleague's pickup, or the caller put through elsewhere."""
        rows = self.conn.execute(
            """
            SELECT * FROM legs
            WHERE remote_phone = ? AND start_ms BETWEEN ? AND ? AND answered = 1
              AND ext_tracking_id != ?
            ORDER BY answer_ms, target_id
            """,
            [phone, from_ms, to_ms, other_than],
        )
        return [_leg(row) for row in rows]

    def put_leg(self, leg: LegState) -> None:
        """Store a leg as merged so far (replacing what was stored of it)."""
        values = [getattr(leg, name) for name in LEG_FIELDS]
        # E.164 beside the number as sent, so that reconciliation and auto-closing can find
        # a number's calls.
        values += [int(leg.answered), int(leg.released), int(leg.member)]
        values += [phones.normalise(leg.remote_raw), timefmt.to_stored(timefmt.now_utc())]
        columns = [*LEG_FIELDS, "answered", "released", "member", "remote_phone", "updated_at"]
        with self.transaction():
            self.conn.execute(
                f"INSERT OR REPLACE INTO legs ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})",
                values,
            )

    def legs(self, ext_tracking_id: str) -> list[LegState]:
        rows = self.conn.execute(
            "SELECT * FROM legs WHERE ext_tracking_id = ? ORDER BY target_id, call_id",
            [ext_tracking_id],
        )
        return [_leg(row) for row in rows]

    def touch(self, ext_tracking_id: str, event_ms: int) -> str:
        """Note that a session heard an event; returns the session's state."""
        with self.transaction():
            self.conn.execute(
                """
                INSERT INTO sessions (ext_tracking_id, state, last_event_ms)
                VALUES (?, 'pending', ?)
                ON CONFLICT(ext_tracking_id)
                DO UPDATE SET last_event_ms = max(sessions.last_event_ms, excluded.last_event_ms)
                """,
                [ext_tracking_id, event_ms],
            )
            row = self.conn.execute(
                "SELECT state FROM sessions WHERE ext_tracking_id = ?", [ext_tracking_id]
            ).fetchone()
            return str(row[0])

    def pending(self, quiet_since_ms: int) -> list[tuple[str, int]]:
        """Pending sessions that heard nothing after `quiet_since_ms`, oldest first."""
        rows = self.conn.execute(
            "SELECT ext_tracking_id, last_event_ms FROM sessions "
            "WHERE state = 'pending' AND last_event_ms <= ? ORDER BY last_event_ms",
            [quiet_since_ms],
        )
        return [(row[0], int(row[1])) for row in rows]

    def get(self, ext_tracking_id: str) -> Session | None:
        row = self.conn.execute(
            "SELECT * FROM sessions WHERE ext_tracking_id = ?", [ext_tracking_id]
        ).fetchone()
        return Session.from_row(row) if row else None

    def decide(self, ext_tracking_id: str, state: str, call_row: int | None) -> None:
        with self.transaction():
            self.conn.execute(
                "UPDATE sessions SET state = ?, decided_at = ?, call_row = coalesce(?, call_row) "
                "WHERE ext_tracking_id = ?",
                [state, timefmt.to_stored(timefmt.now_utc()), call_row, ext_tracking_id],
            )

    def reset_decisions(self) -> int:
        """Forget what was derived from the inbox, so that `replay` can derive it again.

        Register rows are kept: their handling by staff must survive a replay.
        """
        with self.transaction() as conn:
            for table in ("seen_events", "seen_leg_events", "legs", "sessions"):
                conn.execute(f"DELETE FROM {table}")
            # With the events the processor set aside: a fixed version may take them now.
            cursor = conn.execute(
                "UPDATE inbox SET state = 'new', processed_at = NULL, "
                "reason = CASE WHEN state = 'rejected' THEN NULL ELSE reason END "
                "WHERE state IN ('processed', 'duplicate', 'ignored') "
                "OR (state = 'rejected' AND reason LIKE ?)",
                [PROCESSING_FAILED + ":%"],
            )
        return cursor.rowcount

    def heard_calls_near(self, phone: str | None, epoch_ms: int, tolerance_ms: int) -> list[int]:
        """When the external incoming calls from `phone` the hook heard around that moment
        (answered or not) began: one start (epoch ms) per call."""
        rows = self.conn.execute(
            """
            SELECT min(start_ms) FROM legs
            WHERE remote_phone IS ? AND start_ms BETWEEN ? AND ?
              AND personality = 'Terminator' AND call_type = 'Network'
            GROUP BY ext_tracking_id
            """,
            [phone, epoch_ms - tolerance_ms, epoch_ms + tolerance_ms],
        ).fetchall()
        return [int(row[0]) for row in rows]

    def known(self, tracking_id: str) -> bool:
        """The hook or an earlier run has this tracking id (statistics rarely carry one)."""
        row = self.conn.execute(
            "SELECT 1 FROM sessions WHERE ext_tracking_id = ? "
            "UNION ALL SELECT 1 FROM calls WHERE session_key = ? LIMIT 1",
            [tracking_id, tracking_id],
        ).fetchone()
        return row is not None

    def answered_after(
        self, phone: str, since_ms: int, *, other_than: str = "", limit: int = 50
    ) -> list[LegState]:
        """The answered external legs with `phone` (either way) that started after a moment,
        earliest answer first, outside the session `other_than` (the call's own): the caller
        decides which of them a person answered."""
        rows = self.conn.execute(
            """
            SELECT * FROM legs
            WHERE remote_phone = ? AND start_ms > ? AND answered = 1
              AND call_type = 'Network'
              AND personality IN ('Terminator', 'Originator', 'Click-to-Dial')
              AND ext_tracking_id != ?
            ORDER BY coalesce(answer_ms, start_ms), target_id LIMIT ?
            """,
            [phone, since_ms, other_than, limit],
        )
        return [_leg(row) for row in rows]
