"""The register's root: the connection, its settings, transactions, migrations on open, and
the parts of the store (see the package docstring)."""

from __future__ import annotations

import enum
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from beeline_missed.errors import UserError
from beeline_missed.files import file_in_the_way
from beeline_missed.store import engine, migrations
from beeline_missed.store.callbacks import Attempts, Escalations
from beeline_missed.store.calls import Calls
from beeline_missed.store.claims import Claims
from beeline_missed.store.clients import Clients
from beeline_missed.store.engine import PostgresURL
from beeline_missed.store.intake import Inbox, Sessions
from beeline_missed.store.meta import Meta
from beeline_missed.store.onec import OneC
from beeline_missed.store.subscriptions import Abonents, Subscriptions

if TYPE_CHECKING:
    import sqlite_utils


def missing(path: Path) -> UserError:
    """A read command pointed at a register that does not exist: most likely a typo in --db,
    BEELINE_MISSED_DB or BEELINE_MISSED_HOME, which must not read as "no missed calls"."""
    return UserError(
        f"There is no register at {path}; check --db, BEELINE_MISSED_DB and "
        "BEELINE_MISSED_HOME (the daemon, `config init` and `clients import` create one).",
        ru=f"Реестра звонков {path} нет: проверьте --db, BEELINE_MISSED_DB и "
        "BEELINE_MISSED_HOME (новый реестр создают daemon, config init и clients import).",
    )


def connect(path: Path | str | PostgresURL, busy_timeout_ms: int = 10_000) -> Any:
    """Open the register file with the settings every process uses (a PostgreSQL register:
    its database, through the engine layer)."""
    if isinstance(path, PostgresURL):
        return engine.connect(path, max(1, busy_timeout_ms // 1000))
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        # mkdir's own words ("File exists") would not say which part is wrong.
        blocking = file_in_the_way(path.parent) or path.parent
        raise UserError(
            f"Cannot open the register {path}: {blocking} is a file, not a folder.",
            ru=f"Не удаётся открыть реестр звонков {path}: {blocking} — файл, а не папка.",
        ) from None
    except OSError as exc:
        raise UserError(
            f"Cannot open the register {path}: {exc.strerror}.",
            ru=f"Не удаётся открыть реестр звонков {path}: {exc.strerror}.",
        ) from None
    try:
        # Autocommit mode: every write goes through an explicit BEGIN IMMEDIATE.
        conn = sqlite3.connect(
            str(path),
            timeout=busy_timeout_ms / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
    except (OSError, sqlite3.Error) as exc:
        raise UserError(
            f"Cannot open the register {path}: {exc}.",
            ru=f"Не удаётся открыть реестр звонков {path}: {exc}.",
        ) from None
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA foreign_keys = ON")
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise UserError(
            f"{path} is not a usable SQLite register: {exc}.",
            ru=f"Файл {path} не годится как реестр звонков: {exc}.",
        ) from None
    if mode != "wal":
        raise UserError(f"Cannot switch the register {path} to WAL mode (got {mode}).")
    # FULL: an acknowledged event survives a power cut, not only a process crash.
    conn.execute("PRAGMA synchronous = FULL")
    return conn


class FileState(enum.Enum):
    SAME = "same"  # the path still leads to the file opened
    GONE = "gone"  # moved or deleted: nothing at the path
    REPLACED = "replaced"  # another file at the path (a restored backup, say)


def file_identity(path: Path) -> tuple[int, int]:
    """A file as the system knows it, whatever its name: (device, inode)."""
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


class Register:
    """The register of one SQLite file: `register.calls`, `.clients`, `.inbox`, `.sessions`,
    `.subscriptions`, `.abonents`, `.meta` are its parts."""

    # The SQLite file as opened: (device, inode). None on a database server.
    file_identity: tuple[int, int] | None = None
    path: Path | None = None

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        # 'sqlite' or 'postgresql': the few places whose SQL differs in meaning ask this.
        self.engine: str = getattr(conn, "engine", "sqlite")
        self.meta = Meta(self)
        self.calls = Calls(self)
        self.clients = Clients(self)
        self.inbox = Inbox(self)
        self.sessions = Sessions(self)
        self.subscriptions = Subscriptions(self)
        self.abonents = Abonents(self)
        self.onec = OneC(self)
        self.claims = Claims(self)
        self.attempts = Attempts(self)
        self.escalations = Escalations(self)

    @property
    def db(self) -> sqlite_utils.Database:
        """sqlite-utils over the same connection, for migrations and inspection. Imported on
        demand: every command opens the register, few need more than plain SQL."""
        import sqlite_utils

        return sqlite_utils.Database(self.conn)

    @classmethod
    def open(cls, path: Path | str | PostgresURL) -> Register:
        register = cls(connect(path))
        if register.engine == "postgresql":
            from beeline_missed.store import pg_schema

            try:
                if pg_schema.pending(register.conn):
                    pg_schema.migrate(register.conn)
            except sqlite3.Error as exc:
                register.close()
                raise UserError(f"Cannot prepare the register {path}: {exc}.") from None
            return register
        try:
            if migrations.pending(register.conn):
                migrations.migrate(register.db)
        except sqlite3.Error as exc:
            register.close()
            raise UserError(
                f"Cannot prepare the register {path}: {exc}.",
                ru=f"Не удаётся подготовить реестр звонков {path}: {exc}.",
            ) from None
        register.path = Path(path)
        try:
            register.file_identity = file_identity(register.path)
        except OSError as exc:  # gone the moment it was opened
            register.close()
            raise UserError(
                f"Cannot open the register {path}: {exc.strerror}.",
                ru=f"Не удаётся открыть реестр звонков {path}: {exc.strerror}.",
            ) from None
        return register

    def require_file(self) -> None:
        """Refuse to write when the path no longer leads to the file opened: what is saved
        there would be lost with that file (or hidden by the one now in its place)."""
        state = self.file_state()
        if state is FileState.GONE:
            raise UserError(
                f"The register {self.path} was moved or deleted after it was opened; "
                "nothing was saved.",
                ru=f"Файл реестра звонков {self.path} перемещён или удалён после того, как его "
                "открыли: ничего не сохранено.",
            )
        if state is FileState.REPLACED:
            raise UserError(
                f"The register {self.path} was replaced by another file after it was opened; "
                "nothing was saved: open it again.",
                ru=f"Файл реестра звонков {self.path} заменён другим после того, как его открыли: "
                "ничего не сохранено; откройте карточку заново.",
            )

    def file_state(self) -> FileState:
        """What became of the register's file since it was opened. SQLite goes on reading and
        writing the file it opened even once no path leads to it: a view that does not ask
        would show a moved, deleted or restored register's old rows as if they were live."""
        if self.path is None:
            return FileState.SAME  # a database server: no file to lose
        try:
            now = file_identity(self.path)
        except OSError:
            return FileState.GONE
        return FileState.SAME if now == self.file_identity else FileState.REPLACED

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once so that concurrent writers queue; inside one
        already open, it joins it (the outermost commits or rolls back): see the package's
        transaction rule."""
        if self.conn.in_transaction:
            yield self.conn
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.rollback()
            raise
        self.conn.commit()

    def data_version(self) -> int:
        """Changes whenever another connection commits: a cheap 'anything new?' check. On
        PostgreSQL: the commits heard through LISTEN/NOTIFY (engine.PgConnection.changes),
        read from the socket without asking the server."""
        if self.engine == "postgresql":
            return int(self.conn.changes())  # type: ignore[attr-defined]
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def fast_commits(self) -> None:
        """Commit without waiting for the disk, on a connection that writes only what the inbox
        can rebuild (the daemon's processor). WAL keeps each commit atomic, and the next durable
        commit (the intake's, synchronous=FULL) flushes these too; a power cut can lose only the
        latest derived rows, which the processor derives again from the inbox. On PostgreSQL
        the same trade is synchronous_commit = off for this session."""
        if self.engine == "postgresql":
            self.conn.execute("SET synchronous_commit = off")
            return
        self.conn.execute("PRAGMA synchronous = NORMAL")

    def manual_checkpoints(self) -> None:
        """This connection never checkpoints on commit: in the daemon, a checkpoint (which
        syncs the whole database file) inside the intake's commit made some hook answers wait
        for it; the processor checkpoints between batches instead (see checkpoint())."""
        self.conn.execute("PRAGMA wal_autocheckpoint = 0")

    def checkpoint(self) -> None:
        """Copy the WAL into the database without blocking writers (PASSIVE)."""
        self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
