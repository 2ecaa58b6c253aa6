"""What every part of the store shares: the part base class and a few names."""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from beeline_missed.errors import UserError

if TYPE_CHECKING:
    from beeline_missed.store.register import Register

# SQLite's largest integer: no row has a greater id.
MAX_ROWID = 2**63 - 1


def no_call(call_id: int) -> UserError:
    # Only staff reach a call by its number (the card, the panel), so the sentence is Russian.
    return UserError(f"Звонка № {call_id} в реестре нет.")


class Part:
    """One concern of the register (calls, clients, ...), over the register's connection,
    as sqlite-utils' Table is over its Database."""

    def __init__(self, register: Register) -> None:
        self.register = register

    @property
    def conn(self) -> sqlite3.Connection:
        return self.register.conn

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return self.register.transaction()
