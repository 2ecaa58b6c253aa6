"""The register: all SQL of the product lives in this package.

Layout, the way sqlite-utils splits Database and Table:

- `register.py`: `Register`, the root — the connection (WAL, synchronous=FULL, busy timeout),
  transactions, migrations on open — and its parts, one per concern:
- `calls.py`: `register.calls`, the register's rows, cases and cards;
- `clients.py`: `register.clients`, the clients directory and its import;
- `intake.py`: `register.inbox` (every posted body) and `register.sessions` (legs, call
  sessions, their decisions, dedup keys);
- `subscriptions.py`: `register.subscriptions` and `register.abonents` (the PBX side);
- `meta.py`: `register.meta`, small shared values;
- `rows.py`: the typed rows the parts return (`Call`, `Attempt`, `StoredClaim`,
  `Subscription`, `Abonent`, `Session`, `InboxEntry`, `Client`, `Booking`, `Holder`: frozen
  dataclasses; legs are detection's `LegState`);
- `migrations.py`: the numbered schema migrations;
- `engine.py`, `pg_schema.py`: the register on PostgreSQL (`BEELINE_MISSED_DB=postgresql://…`):
  a connection adapter that speaks sqlite3's API and translates SQLite's dialect where the two
  only spell things differently, and the PostgreSQL baseline schema. The parts above are
  written once, for both engines; the few statements whose meaning differs ask
  `register.engine`.

Reports' read-only queries (grouping, filters, slices read in parallel) stay in
`beeline_missed/reports/engine.py` next to the report engine, on a read-only connection of
their own.

The one transaction rule: every write runs inside `register.transaction()` (BEGIN IMMEDIATE, so
concurrent writers queue rather than fail). A store method that writes opens it itself; called
inside a transaction already open on the connection, it joins that one, and the outermost
`with register.transaction():` commits or rolls back the whole unit. So a unit of work that must
be atomic (processing one event: legs, session, call row, inbox state) wraps its store calls in
one `with register.transaction():`, and a single call needs nothing around it. Reads need no
transaction. The one exception is the clients import, which stages its file in temporary tables
in transactions of its own and then writes the directory in short batches (`Clients.upsert`).

sqlite-utils: used where it earns its import — the migrations get a `sqlite_utils.Database`
(its table API for schema changes and inspection) — and loaded only when a migration is
pending. The hot paths (the hook's intake, the processor, `list`, the import) are plain
sqlite3: importing sqlite-utils costs about 170 ms per command on the benchmark machine (against
a 300 ms goal for a whole command), and its row-at-a-time upserts are too slow for the
directory import, which merges a whole file with set-based SQL.
"""

from beeline_missed.store.base import MAX_ROWID, no_call
from beeline_missed.store.intake import INBOX_STATES
from beeline_missed.store.register import FileState, Register, connect, missing
from beeline_missed.store.rows import Abonent, Attempt, Call, StoredClaim, Subscription

__all__ = [
    "INBOX_STATES",
    "MAX_ROWID",
    "Abonent",
    "Attempt",
    "Call",
    "FileState",
    "Register",
    "StoredClaim",
    "Subscription",
    "connect",
    "missing",
    "no_call",
]
