"""The PBX side of the register: our event subscriptions and the cached abonent list."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from beeline_missed import timefmt
from beeline_missed.store.base import Part


class Subscriptions(Part):
    """The `subscriptions` table: every subscription made, with its state."""

    COLUMNS = (
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

    def _insert(self, row: dict[str, Any]) -> None:
        columns = [c for c in self.COLUMNS if c in row]
        self.conn.execute(
            f"INSERT INTO subscriptions ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))})",
            [row[c] for c in columns],
        )

    def insert(self, row: dict[str, Any]) -> dict[str, Any]:
        with self.transaction():
            self._insert(row)
        return self.get(row["id"]) or {}

    def get(self, subscription_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT * FROM subscriptions WHERE id = ?", [subscription_id]
        ).fetchone()
        return dict(row) if row else None

    def rows(self, states: Iterable[str] | None = ("active",)) -> list[dict]:
        """Oldest first; `states` None lists every row ever recorded."""
        sql = "SELECT * FROM subscriptions"
        params: list[Any] = []
        if states is not None:
            states = list(states)
            sql += f" WHERE state IN ({','.join('?' * len(states))})"
            params = states
        sql += " ORDER BY created_at, rowid"
        return [dict(row) for row in self.conn.execute(sql, params)]

    def update(
        self, subscription_id: str, *, only_if_state: str | None = None, **changes: Any
    ) -> bool:
        """Change some columns; with `only_if_state`, only while the row is in that state."""
        unknown = set(changes) - set(self.COLUMNS) - {"id"}
        if unknown or not changes or "id" in changes:
            raise ValueError(f"cannot update subscription columns {sorted(changes)}")
        sql = f"UPDATE subscriptions SET {', '.join(f'{c} = ?' for c in changes)} WHERE id = ?"
        params = [*changes.values(), subscription_id]
        if only_if_state is not None:
            sql += " AND state = ?"
            params.append(only_if_state)
        with self.transaction() as conn:
            return conn.execute(sql, params).rowcount > 0

    def replace(self, old_id: str, new_row: dict[str, Any], old_state: str = "replaced") -> bool:
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
            self._insert(new_row)
        return True


class Abonents(Part):
    """The `abonents` table: the PBX's abonent list as last fetched."""

    def replace(self, abonents: Iterable[dict[str, Any]]) -> int:
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

    def rows(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self.conn.execute("SELECT * FROM abonents ORDER BY user_id")]
