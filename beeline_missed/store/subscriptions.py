"""The PBX side of the register: our event subscriptions and the cached abonent list."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from beeline_missed import timefmt
from beeline_missed.store.base import Part
from beeline_missed.store.rows import (
    ABONENT_COLUMNS,
    SUBSCRIPTION_COLUMNS,
    Abonent,
    Subscription,
)
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

    def replace(self, answer: Iterable[Mapping[str, Any]]) -> int:
        """Cache the PBX's abonent list (its answer to GET abonents, all of it, replacing the
        previous copy); entries without a userId are left out. Returns how many are cached."""
        now = timefmt.to_stored(timefmt.now_utc())
        abonents = {}
        for entry in answer:
            abonent = Abonent.from_pbx(entry, fetched_at=now)
            if abonent.user_id:
                abonents[abonent.user_id] = abonent  # the last of a repeated id, as before
        with self.transaction() as conn:
            conn.execute("DELETE FROM abonents")
            conn.executemany(
                f"INSERT INTO abonents ({', '.join(ABONENT_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(ABONENT_COLUMNS))})",
                [[getattr(a, c) for c in ABONENT_COLUMNS] for a in abonents.values()],
            )
        return len(abonents)

    def rows(self) -> list[Abonent]:
        return [
            Abonent.from_row(row)
            for row in self.conn.execute("SELECT * FROM abonents ORDER BY user_id")
        ]
