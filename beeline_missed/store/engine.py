"""The register on PostgreSQL: the one place where the engines differ.

The store is written in SQLite's dialect and against sqlite3's connection API. On PostgreSQL
the register's connection is a `PgConnection`: the same `execute` / `executemany` / `commit` /
`rollback` / `in_transaction`, rows that read by index and by name (as `sqlite3.Row`), and each
statement translated once (cached) from SQLite's dialect where the two only spell the same thing
differently: `?` placeholders, `INSERT OR IGNORE` / `OR REPLACE`, `IS ?`, `group_concat`,
`instr`, two-argument `max`/`min`, the reserved column name `user`, an unnamed subquery, a
`lastrowid` (PostgreSQL needs `RETURNING id`). What differs in meaning rather than spelling
(the schema, PRAGMAs, `data_version`, report date functions) is written per engine where it is
used. psycopg's errors are raised as the sqlite3 exceptions of the same kind, so callers that
turn a failing register into a sentence (or the hook into a 503) need no change.

psycopg is imported only when a register is on PostgreSQL: SQLite commands pay nothing.
"""

from __future__ import annotations

import contextlib
import functools
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from beeline_missed.errors import UserError

if TYPE_CHECKING:
    import psycopg

SCHEMES = ("postgresql://", "postgres://")

# Every commit through the engine layer notifies this channel (NOTIFY is delivered on commit,
# once per transaction): `watch` and the panel wake on it instead of polling the server.
CHANNEL = "beeline_missed"

# Tables whose `id` PostgreSQL generates: an INSERT into them returns it (sqlite3's lastrowid).
ID_TABLES = frozenset({"calls", "inbox", "clients", "onec_bookings", "callback_attempts"})

# The conflict target of each table written with INSERT OR REPLACE (its primary key).
REPLACE_KEYS = {
    "legs": ("target_id", "call_id", "ext_tracking_id"),
    "claims": ("case_key",),
    "abonents": ("user_id",),
    "meta": ("key",),
    "onec_seen": ("ref",),
}


def is_url(value: str) -> bool:
    return value.startswith(SCHEMES)


def mask(url: str) -> str:
    """The URL with its password replaced: what may be printed or logged."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class PostgresURL:
    """`--db` / `BEELINE_MISSED_DB` naming a PostgreSQL register. It stands where a register's
    Path stands in the settings; printing it never shows the password."""

    engine = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url

    def __str__(self) -> str:
        return mask(self.url)

    def __repr__(self) -> str:
        return f"PostgresURL({mask(self.url)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PostgresURL) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)

    def resolve(self) -> PostgresURL:
        return self

    def exists(self) -> bool:
        """Whether the database holds a register (its migrations table): a read command
        refuses an empty database as it refuses a missing file."""
        conn = connect(self)
        try:
            row = conn.execute("SELECT to_regclass('_migrations') IS NOT NULL").fetchone()
            return bool(row[0])
        finally:
            conn.close()


def engine_of(db: object) -> str:
    return "postgresql" if isinstance(db, PostgresURL) else "sqlite"


class Row(tuple):
    """A result row as sqlite3.Row reads: by position, by column name, and dict(row)."""

    __slots__ = ()
    _names: tuple[str, ...] = ()
    _positions: dict[str, int] = {}  # noqa: RUF012 -- set per row class

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._positions[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


@functools.lru_cache(maxsize=256)
def _row_class(names: tuple[str, ...]) -> type[Row]:
    positions = {n: i for i, n in enumerate(names)}
    return type("Row", (Row,), {"_names": names, "_positions": positions, "__slots__": ()})


def _row_factory(cursor: Any) -> Any:
    description = cursor.description
    if description is None:
        return None
    cls = _row_class(tuple(d.name for d in description))

    def make(values: Sequence[Any]) -> Row:
        return cls(values)

    return make


# --- translation ----------------------------------------------------------------------------

_LITERAL = re.compile(r"'(?:[^']|'')*'")
_WORD_USER = re.compile(r'(?<![.\w"])user(?![\w"])', re.IGNORECASE)


def _split_literals(sql: str) -> list[tuple[bool, str]]:
    """The statement cut into (is_literal, text) pieces: nothing inside '...' is rewritten."""
    pieces: list[tuple[bool, str]] = []
    pos = 0
    for match in _LITERAL.finditer(sql):
        pieces.append((False, sql[pos : match.start()]))
        pieces.append((True, match.group()))
        pos = match.end()
    pieces.append((False, sql[pos:]))
    return pieces


def _matching(sql: str, open_at: int) -> int:
    """Index of the parenthesis closing the one at `open_at` (literals already masked)."""
    depth = 0
    for i in range(open_at, len(sql)):
        if sql[i] == "(":
            depth += 1
        elif sql[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    raise ValueError("unbalanced parentheses")


def _top_level_args(inner: str) -> list[str]:
    args, depth, start = [], 0, 0
    for i, ch in enumerate(inner):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            args.append(inner[start:i])
            start = i + 1
    args.append(inner[start:])
    return args


def _rewrite_calls(sql: str) -> str:
    """group_concat(x[, sep]) -> string_agg(CAST(x AS TEXT), sep); max(a, b) -> greatest(a, b);
    min(a, b) -> least(a, b); instr -> strpos; char(n) -> chr(n)."""
    pattern = re.compile(r"\b(group_concat|max|min|instr|char)\s*\(", re.IGNORECASE)
    pos = 0
    while True:
        match = pattern.search(sql, pos)
        if match is None:
            return sql
        name = match.group(1).lower()
        open_at = match.end() - 1
        close = _matching(sql, open_at)
        args = _top_level_args(sql[open_at + 1 : close])
        if name == "group_concat":
            sep = args[1].strip() if len(args) > 1 else "','"
            new = f"string_agg(CAST({args[0].strip()} AS TEXT), {sep})"
            sql = sql[: match.start()] + new + sql[close + 1 :]
            pos = match.start() + len("string_agg(")
            continue
        replacement = {"instr": "strpos", "char": "chr"}.get(name)
        if name in ("max", "min") and len(args) == 2:
            replacement = "greatest" if name == "max" else "least"
        if replacement:
            sql = sql[: match.start()] + replacement + sql[match.end() - 1 :]
        pos = match.start() + 1


def _alias_subqueries(sql: str) -> str:
    """PostgreSQL 15 wants a name on every subquery in FROM; SQLite does not."""
    pattern = re.compile(r"(?<!DISTINCT )\bFROM\s*\(\s*(?=SELECT\b|WITH\b)", re.IGNORECASE)
    follows_alias = re.compile(r"\s*(AS\b|[A-Za-z_]\w*\b(?<!WHERE)(?<!ORDER)(?<!GROUP)(?<!LIMIT))")
    clause = re.compile(
        r"\s*(\)|$|WHERE\b|ORDER\b|GROUP\b|LIMIT\b|JOIN\b|LEFT\b|INNER\b|UNION\b|,)", re.I
    )
    pos, n = 0, 0
    while True:
        match = pattern.search(sql, pos)
        if match is None:
            return sql
        open_at = sql.index("(", match.start())
        close = _matching(sql, open_at)
        rest = sql[close + 1 :]
        if clause.match(rest) or not follows_alias.match(rest):
            n += 1
            sql = sql[: close + 1] + f" AS _sub{n}" + sql[close + 1 :]
        pos = open_at + 1


@functools.lru_cache(maxsize=2048)
def translate(sql: str) -> tuple[str, bool, tuple[str, ...]]:
    """SQLite's dialect to PostgreSQL's; returns the statement, whether it returns the new
    row's id (an INSERT into an ID_TABLES table, for lastrowid), and the names of its named
    parameters in the order of their numbers (empty when it uses `?`)."""
    stripped = sql.strip()
    head = stripped[:40].upper()
    if head.startswith("BEGIN"):
        return "BEGIN", False, ()
    # Literals are masked while rewriting, so that nothing inside them changes.
    pieces = _split_literals(stripped)
    literals = [text for is_lit, text in pieces if is_lit]
    masked_parts = []
    lit_no = 0
    for is_lit, text in pieces:
        if is_lit:
            masked_parts.append(f"'\x00{lit_no}'")
            lit_no += 1
        else:
            masked_parts.append(text)
    masked = "".join(masked_parts)

    or_ignore = re.search(r"\bINSERT\s+OR\s+IGNORE\s+INTO\b", masked, re.I)
    or_replace = re.search(r"\bINSERT\s+OR\s+REPLACE\s+INTO\s+(\w+)\s*(\(([^)]*)\))?", masked, re.I)
    if or_ignore:
        masked = masked[: or_ignore.start()] + "INSERT INTO" + masked[or_ignore.end() :]
        masked += " ON CONFLICT DO NOTHING"
    elif or_replace:
        table = or_replace.group(1)
        keys = REPLACE_KEYS[table]
        columns = [c.strip() for c in (or_replace.group(3) or "").split(",") if c.strip()]
        masked = re.sub(
            r"\bINSERT\s+OR\s+REPLACE\s+INTO\b", "INSERT INTO", masked, count=1, flags=re.I
        )
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in keys)
        conflict = f" ON CONFLICT ({', '.join(keys)}) DO "
        masked += conflict + (f"UPDATE SET {updates}" if updates else "NOTHING")
    keyword = r"(?!(?:NULL|TRUE|FALSE|DISTINCT|NOT)\b)"
    masked = re.sub(rf"\bIS\s+NOT\s+{keyword}", "IS DISTINCT FROM ", masked, flags=re.I)
    masked = re.sub(rf"\bIS\s+{keyword}", "IS NOT DISTINCT FROM ", masked, flags=re.I)
    masked = re.sub(r"\btemp\.", "pg_temp.", masked, flags=re.I)
    # SQLite's CROSS JOIN (an inner join in a fixed order) may carry ON; PostgreSQL's may not.
    masked = re.sub(r"\bCROSS\s+JOIN\b", "JOIN", masked, flags=re.I)
    masked = _rewrite_calls(masked)
    masked = _alias_subqueries(masked)
    masked = _WORD_USER.sub('"user"', masked)
    masked = re.sub(r"\bAS\s+REAL\b", "AS DOUBLE PRECISION", masked, flags=re.I)
    masked = re.sub(r"\bWITHOUT\s+ROWID\b", "", masked, flags=re.I)
    if re.match(r"\s*CREATE\s+TEMP", masked, re.I):
        # A rowid alias generates its values, as an identity column does.
        masked = re.sub(
            r"\bINTEGER\s+PRIMARY\s+KEY\b",
            "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
            masked,
            flags=re.I,
        )
        # A column keeping rowids of another table keeps PostgreSQL's row address instead.
        masked = re.sub(r"\b(\w*rowid)\s+INTEGER\b", r"\1 TID", masked, flags=re.I)
        masked = re.sub(r"\bINTEGER\b", "BIGINT", masked)
    masked = re.sub(r"\browid\b", "ctid", masked, flags=re.I)
    returns_id = False
    insert = re.match(r"\s*INSERT\s+INTO\s+(\w+)", masked, re.I)
    if insert and insert.group(1).lower() in ID_TABLES and "RETURNING" not in masked.upper():
        masked += " RETURNING id"
        returns_id = True
    # Placeholders last, numbered in order; a named one (:name) is numbered by its name.
    counter = iter(range(1, 10_000))
    masked = re.sub(r"\?", lambda _: f"${next(counter)}", masked)
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    masked = re.sub(r"(?<![:\w]):([A-Za-z_]\w*)", number, masked)
    out = re.sub(r"'\x00(\d+)'", lambda m: literals[int(m.group(1))], masked)
    return out, returns_id, tuple(names)


# --- errors ---------------------------------------------------------------------------------


def _as_sqlite_error(exc: Exception) -> sqlite3.Error:
    """psycopg's error as the sqlite3 error of the same kind (callers catch those)."""
    import psycopg

    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    kind: type[sqlite3.Error]
    if isinstance(exc, psycopg.errors.IntegrityError):
        kind = sqlite3.IntegrityError
    elif isinstance(exc, psycopg.errors.DataError):
        kind = sqlite3.DataError
    elif isinstance(exc, psycopg.OperationalError | psycopg.ProgrammingError):
        kind = sqlite3.OperationalError
    else:
        kind = sqlite3.DatabaseError
    error = kind(message)
    error.__cause__ = exc
    return error


class PgCursor:
    """What sqlite3's cursor gives the store: rows, rowcount, lastrowid."""

    def __init__(self, cursor: Any, returns_id: bool) -> None:
        self._cursor = cursor
        self.rowcount = cursor.rowcount
        self.lastrowid: int | None = None
        if returns_id:
            row = cursor.fetchone()
            self.lastrowid = int(row[0]) if row else None
            self._rows: list[Any] | None = []
        else:
            self._rows = None

    def fetchone(self) -> Any:
        if self._rows is not None:
            return self._rows.pop(0) if self._rows else None
        if self._cursor.description is None:
            return None
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        if self._rows is not None:
            rows, self._rows = self._rows, []
            return rows
        if self._cursor.description is None:
            return []
        return self._cursor.fetchall()

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class _Constant:
    """A cursor for a PRAGMA, which PostgreSQL has no use for: one row (0)."""

    rowcount = -1
    lastrowid = None

    def fetchone(self) -> tuple[int]:
        return (0,)

    def fetchall(self) -> list[tuple[int]]:
        return [(0,)]

    def __iter__(self) -> Iterator[tuple[int]]:
        return iter([(0,)])


def _bind(params: Any, names: tuple[str, ...]) -> list[Any] | None:
    if params is None:
        return None
    if isinstance(params, Mapping):
        return [params[name] for name in names]
    return list(params)


class PgConnection:
    """A psycopg connection behind the part of sqlite3.Connection's API the store uses."""

    engine = "postgresql"

    def __init__(self, raw: psycopg.Connection, url: PostgresURL) -> None:
        self.raw = raw
        self.url = url
        self.lock = threading.RLock()
        # Whether a BEGIN of ours is open: a connection lost inside it must fail the unit of
        # work, not reconnect and go on in autocommit half-way through it.
        self.transaction_open = False
        # SET statements of this session, replayed on a new connection after a loss.
        self.session: list[str] = []
        # The LISTEN connection of changes(), opened on first use, and what it has heard.
        self.listener: Any = None
        self._changes = 0

    @property
    def in_transaction(self) -> bool:
        return self.transaction_open

    def _reconnect_if_lost(self) -> None:
        """The server went away (restart, network): a statement outside a transaction opens
        a new connection, so the daemon recovers by itself once the server is back."""
        if not (self.raw.closed or self.raw.broken):
            return
        if self.transaction_open:
            raise sqlite3.OperationalError(f"the connection to {self.url} was lost")
        try:
            self.raw.close()
            self.raw = _open_raw(self.url, 5)
        except UserError as exc:
            raise sqlite3.OperationalError(str(exc).rstrip(".")) from None
        for statement in self.session:
            self.raw.execute(statement)  # type: ignore[call-overload]

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        head = sql.lstrip()[:8].upper()
        if head.startswith("PRAGMA"):
            return _Constant()
        text, returns_id, names = translate(sql)
        try:
            return self._execute(head, text, params, names, returns_id)
        except sqlite3.OperationalError:
            # A restarted server is noticed only when a statement fails on the old
            # connection. A BEGIN or a read has changed nothing yet: run it once more on a new
            # connection, rather than fail the event the hook is storing.
            if not head.startswith(("BEGIN", "SELECT")) or not self.raw.broken:
                raise
            return self._execute(head, text, params, names, returns_id)

    def _execute(
        self,
        head: str,
        text: str,
        params: Sequence[Any] | None,
        names: tuple[str, ...],
        returns_id: bool,
    ) -> Any:
        try:
            with self.lock:
                self._reconnect_if_lost()
                if head.startswith(("COMMIT", "ROLLBACK")):
                    self.transaction_open = False
                if head.startswith("COMMIT"):
                    text = f"NOTIFY {CHANNEL}; COMMIT"  # one round trip, no parameters
                cursor = self.raw.cursor()
                cursor.execute(text, _bind(params, names))
                if head.startswith("BEGIN"):
                    self.transaction_open = True
                elif head.startswith("SET ") and text not in self.session:
                    self.session.append(text)
                return PgCursor(cursor, returns_id)
        except Exception as exc:
            import psycopg

            if isinstance(exc, psycopg.Error):
                raise _as_sqlite_error(exc) from exc
            raise

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any:
        text, _, names = translate(sql)
        text = text.removesuffix(" RETURNING id")
        try:
            with self.lock:
                self._reconnect_if_lost()
                cursor = self.raw.cursor()
                cursor.executemany(text, [_bind(r, names) for r in rows])
                return PgCursor(cursor, False)
        except Exception as exc:
            import psycopg

            if isinstance(exc, psycopg.Error):
                raise _as_sqlite_error(exc) from exc
            raise

    def commit(self) -> None:
        if self.in_transaction:
            self.execute("COMMIT")

    def rollback(self) -> None:
        if self.in_transaction:
            self.transaction_open = False
            if self.raw.closed or self.raw.broken:
                return  # the connection is gone: so is its transaction
            with contextlib.suppress(sqlite3.OperationalError):
                self.execute("ROLLBACK")

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
        self.raw.close()

    def changes(self) -> int:
        """A counter of the commits heard on CHANNEL (anyone's, ours too): what
        `Register.data_version` is on PostgreSQL. It reads the notifications already on the
        listening connection's socket and waits for nothing, so a tick costs no round trip
        to the server; a lost listening connection counts as a change (it may have missed one)
        and listens again."""
        try:
            if self.listener is None or self.listener.closed or self.listener.broken:
                self._changes += 1
                self.listener = _open_raw(self.url, 5)  # type: ignore[arg-type]
                self.listener.execute(f"LISTEN {CHANNEL}")
            for _ in self.listener.notifies(timeout=0):
                self._changes += 1
        except Exception as exc:
            import psycopg

            if isinstance(exc, psycopg.Error):
                raise _as_sqlite_error(exc) from exc
            if isinstance(exc, UserError):
                raise sqlite3.OperationalError(str(exc).rstrip(".")) from None
            raise
        return self._changes

    @property
    def closed(self) -> bool:
        return bool(self.raw.closed)


def _configure_adapters(raw: Any) -> None:
    """Types as SQLite hands them back: numeric sums as int (or float), bool stored as 0/1."""
    from psycopg.adapt import Dumper, Loader

    class NumericLoader(Loader):
        def load(self, data: Any) -> Any:
            text = bytes(data).decode()
            if "." in text or "e" in text.lower() or text in ("NaN", "Infinity", "-Infinity"):
                return float(text)
            return int(text)

    raw.adapters.register_loader("numeric", NumericLoader)

    class BoolUntyped(Dumper):
        # Sent as '1'/'0' of no declared type: the server reads it as the column's integer
        # (SQLite stores True as 1) or as a boolean where a condition wants one.
        oid = 0

        def dump(self, obj: Any) -> Any:
            return b"1" if obj else b"0"

    raw.adapters.register_dumper(bool, BoolUntyped)


def connect(url: PostgresURL, timeout_s: int = 10) -> PgConnection:
    """Open the register's database. The password comes from the URL, PGPASSWORD or .pgpass
    (libpq reads the last two itself); a failure names the server, never the password."""
    return PgConnection(_open_raw(url, timeout_s), url)


def _open_raw(url: PostgresURL, timeout_s: int) -> Any:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        raise UserError(
            "PostgreSQL needs the psycopg package: pip install 'psycopg[binary]'."
        ) from None
    try:
        raw = psycopg.connect(
            url.url,
            autocommit=True,
            connect_timeout=timeout_s,
            row_factory=_row_factory,
            cursor_factory=psycopg.RawCursor,
        )
    except psycopg.Error as exc:
        # The first line names what failed (host, socket); libpq's hints follow it.
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        reason = (lines[0] if lines else type(exc).__name__).rstrip(".")
        raise UserError(
            f"Cannot connect to the register {url}: {reason.replace(url.url, str(url))}.",
            ru=f"Не удаётся подключиться к реестру звонков {url}: "
            f"{reason.replace(url.url, str(url))}.",
        ) from None
    # Times are stored as UTC text by the store, as on SQLite; the session's zone only matters
    # to reports, which say which zone they mean.
    raw.execute("SET TIME ZONE 'UTC'")
    _configure_adapters(raw)
    return raw
