"""Claims («Взять в работу»): who is calling a case back, since when. The rules are
`claims.py`'s; closing a case's last open call releases its claim (a trigger, migration m100)."""

from __future__ import annotations

from collections.abc import Callable

from beeline_missed.store.base import Part
from beeline_missed.store.rows import StoredClaim


class Claims(Part):
    """The `claims` table: one row per case being called back."""

    def claim(
        self,
        case_key: str,
        decide: Callable[[StoredClaim | None], tuple[str, str] | None],
    ) -> StoredClaim | None:
        """Read the case's claim and write what `decide(current_row)` returns ((holder,
        claimed_at), or None to write nothing), in one write transaction: two people pressing
        at once are decided one after the other. Returns the claim row as stored afterwards."""
        with self.transaction() as conn:
            row = conn.execute("SELECT * FROM claims WHERE case_key = ?", [case_key]).fetchone()
            current = StoredClaim.from_row(row) if row else None
            chosen = decide(current)
            if chosen is not None:
                conn.execute(
                    "INSERT OR REPLACE INTO claims (case_key, claimed_by, claimed_at) "
                    "VALUES (?, ?, ?)",
                    [case_key, *chosen],
                )
            row = conn.execute("SELECT * FROM claims WHERE case_key = ?", [case_key]).fetchone()
        return StoredClaim.from_row(row) if row else None

    def rows(self) -> dict[str, StoredClaim]:
        """Every stored claim by case key (a short table: one row per case being called)."""
        return {
            row["case_key"]: StoredClaim.from_row(row)
            for row in self.conn.execute("SELECT * FROM claims")
        }
