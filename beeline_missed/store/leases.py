"""Roles one daemon at a time holds when several daemons share a PostgreSQL register.

Two or more daemons behind one load balancer all take events on the hook (each commits what it
acknowledges into the shared inbox), but some work must be done by one of them at a time:

- `processor`: applies the inbox and decides each call session, so that a missed call is one
  row and one notification (the database's unique keys make a second decision harmless, and
  the lease makes it not happen at all);
- `keeper`: renews the PBX subscriptions;
- `reconcile`: the catch-up from the PBX's call statistics.

A role is a PostgreSQL session-level advisory lock on the connection of the thread doing the
work: it is held while that connection lives and released by the server the moment the daemon
dies (kill -9, power loss: the connection closes), so another daemon, which retries every few
seconds, takes it over well within a minute. `holders()` tells `status` which daemon holds
which role, from the server's lock table and each connection's application_name.

On SQLite there is one daemon per register file: every role is always held.
"""

from __future__ import annotations

import os
import socket
import zlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from beeline_missed.store import Register

ROLES = ("processor", "keeper", "reconcile")
# How often a daemon without a role asks for it again (a takeover takes at most this long
# after the holder's connection closed).
RETRY_SECONDS = 5.0


def key(role: str) -> int:
    """The role's advisory lock key: fixed, and below 2**31 so that pg_locks shows it whole in
    objid (classid 0)."""
    return zlib.crc32(f"beeline-missed:{role}".encode()) & 0x7FFFFFFF


def daemon_name() -> str:
    """Who this daemon is, as `status` shows it: host and process id."""
    return f"{socket.gethostname()} pid {os.getpid()}"


class Lease:
    """One role on one register connection (the thread's own)."""

    def __init__(self, register: Register, role: str) -> None:
        self.register = register
        self.role = role
        self._held_on: Any = None  # the server connection the lock was taken on

    def held(self) -> bool:
        """Whether this daemon holds the role now; takes it when it is free."""
        if self.register.engine != "postgresql":
            return True
        conn: Any = self.register.conn
        if self._held_on is not None and self._held_on is conn.raw and not conn.raw.broken:
            return True  # a lock lives as long as its connection
        self._held_on = None
        conn.execute(_application_name())  # what `status` shows as the holder
        row = conn.execute("SELECT pg_try_advisory_lock(CAST(? AS BIGINT))", [key(self.role)])
        if row.fetchone()[0]:
            self._held_on = conn.raw
            return True
        return False


def _application_name() -> str:
    name = daemon_name().replace("'", "")
    return f"SET application_name = 'beeline-missed daemon {name}'"


def holders(register: Register) -> dict[str, str | None]:
    """role -> the daemon holding it (None: nobody, e.g. no daemon runs). SQLite: {}."""
    if register.engine != "postgresql":
        return {}
    found: dict[str, str | None] = dict.fromkeys(ROLES)
    keys = {key(role): role for role in ROLES}
    rows = register.conn.execute(
        "SELECT l.objid, a.application_name FROM pg_locks AS l "
        "JOIN pg_stat_activity AS a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    for objid, application in rows:
        role = keys.get(int(objid))
        if role:
            found[role] = str(application).removeprefix("beeline-missed daemon ")
    return found
