"""The PBX side of the register: our event subscriptions and the cached abonent list."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from beeline_missed import timefmt
from beeline_missed.store.base import Part
from beeline_missed.store.rows import SUBSCRIPTION_COLUMNS, Subscription
from beeline_missed.vocabulary import SubscriptionState


class Subscriptions(Part):
    """The `subscriptions` table: every subscription made, with its state."""

    def _insert(self, subscription: Subscription) -> None:
        self.conn.execute(
            f"INSERT INTO subscriptions ({', '.join(SUBSCRIPTION_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(SUBSCRIPTION_COLUMNS))})",
            [getattr(subscription, column) for column in SUBSCRIPTION_COLUMNS],
        )

    def insert(self, subscription: Subscription) -> Subscription:
        with self.transaction():
            self._insert(subscription)
        return self.get(subscription.id) or subscription

    def get(self, subscription_id: str) -> Subscription | None:
        row = self.conn.execute(
            "SELECT * FROM subscriptions WHERE id = ?", [subscription_id]
        ).fetchone()
        return Subscription.from_row(row) if row else None

    def rows(
        self, states: Iterable[SubscriptionState] | None = (SubscriptionState.ACTIVE,)
    ) -> list[Subscription]:
        """Oldest first; `states` None lists every row ever recorded."""
        sql = "SELECT * FROM subscriptions"
        params: list[Any] = []
        if states is not None:
            states = list(states)
            sql += f" WHERE state IN ({','.join('?' * len(states))})"
            params = states
        sql += " ORDER BY created_at, rowid"
        return [Subscription.from_row(row) for row in self.conn.execute(sql, params)]

    def update(self, subscription_id: str, **changes: Any) -> bool:
        """Change some columns (not the id); False when no such subscription is held."""
        unknown = set(changes) - set(SUBSCRIPTION_COLUMNS)
        if unknown or not changes or "id" in changes:
            raise ValueError(f"cannot update subscription columns {sorted(changes)}")
        sql = f"UPDATE subscriptions SET {', '.join(f'{c} = ?' for c in changes)} WHERE id = ?"
        params = [*changes.values(), subscription_id]
        with self.transaction() as conn:
            return conn.execute(sql, params).rowcount > 0

    def replace(
        self,
        old_id: str,
        successor: Subscription,
        old_state: SubscriptionState = SubscriptionState.REPLACED,
    ) -> bool:
        """Record the successor and retire the old row in one transaction.

        Only while the old row is still active (another process may have renewed it first);
        returns False and records nothing otherwise.
        """
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE subscriptions SET state = ?, replaced_by = ?, last_error = NULL "
                "WHERE id = ? AND state = 'active'",
                [old_state, successor.id, old_id],
            )
            if cursor.rowcount == 0:
                return False
            self._insert(successor)
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
