"""The daemon's register: one connection shared by its threads behind a lock, a watch that
notices when the register file is moved or deleted under the running daemon, and the lock
that keeps one daemon to a SQLite register."""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from beeline_missed import files
from beeline_missed.errors import UserError
from beeline_missed.store import Register
from beeline_missed.store.register import file_identity

log = logging.getLogger("beeline_missed.daemon")


class RegisterWatch:
    """Notices the register file being moved, deleted or replaced under the running daemon.

    SQLite keeps writing to the file it opened, even once no path leads to it any more: events
    acknowledged then would be lost with that file. The identity (device, inode) of the file at
    the register's path is compared with the one the daemon opened."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.problem: str | None = None
        # A register on a database server has no file to lose (engine.PostgresURL).
        self.server = not isinstance(path, Path)
        if self.server:
            return
        # Right after the intake opened it: the file the daemon writes.
        self.identity = file_identity(path)

    def probe(self) -> str | None:
        """The periodic check (its own thread): a file's identity, or on a database server a
        query on a connection of its own, so that /healthz fails while the server is away and
        a load balancer sends the events to another daemon."""
        if not self.server:
            return self.check()
        problem: str | None = None
        try:
            if self.probe_conn is None:
                from beeline_missed.store import engine

                self.probe_conn = engine.connect(self.path, 5)  # type: ignore[arg-type]
            self.probe_conn.execute("SELECT 1")
        except (sqlite3.Error, UserError):
            problem = "the register's database server cannot be reached"
        self._record(problem)
        return problem

    probe_conn: Any = None

    def check(self) -> str | None:
        """None while the path still leads to the open register, else what happened to it."""
        if self.server:
            return self.problem  # as the last probe found it: no waiting in an answer
        try:
            now = file_identity(self.path)
        except FileNotFoundError:
            problem: str | None = "the register file was moved or deleted"
        except OSError as exc:  # e.g. the folder's permissions changed
            problem = f"the register file cannot be checked ({exc.strerror})"
        else:
            same = now == self.identity
            problem = None if same else "the register file was replaced by another file"
        self._record(problem)
        return problem

    def _record(self, problem: str | None) -> None:
        with self.lock:  # one log line per change, whichever thread notices it first
            if problem != self.problem:
                if problem:
                    log.error(
                        "%s (%s) while the daemon runs: refusing events with 503 until it is "
                        "back or the daemon is restarted",
                        problem,
                        self.path,
                    )
                elif self.server:
                    log.info("the register %s can be used again; accepting events", self.path)
                else:
                    log.info("the register file %s is back; accepting events again", self.path)
                self.problem = problem


class DaemonRegister(Register):
    """The daemon's threads (intake, processor, keeper...) each have a connection; for writing
    they queue on one in-process lock. Without it they meet only in SQLite's busy handler,
    which sleeps and polls, so a thread committing in a loop (the processor) starves the
    intake for hundreds of milliseconds."""

    write_lock = threading.RLock()  # one per process, shared by every instance

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.write_lock, super().transaction() as conn:
            yield conn


def lock_path(db: Path) -> Path:
    return db.with_name(db.name + "-daemon")


def _flock_soon(handle: Any, tries: int = 10) -> None:
    """Take the lock, allowing a moment for `status`, which holds it shared while it reads
    who holds it; BlockingIOError when a holder keeps it."""
    for _ in range(tries - 1):
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            time.sleep(0.02)
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)


@dataclass(frozen=True)
class RegisterHolder:
    """The process holding a SQLite register, as its lock file names it."""

    pid: int | None
    doing: str  # "listening on 127.0.0.1:8088", "running migrate-register"

    @classmethod
    def parse(cls, text: str) -> RegisterHolder:
        pid, _, doing = text.strip().partition(" ")
        return cls(int(pid) if pid.isdigit() else None, doing or "?")

    def __str__(self) -> str:
        return f"pid {self.pid if self.pid is not None else '?'}, {self.doing}"


class SoleDaemon:
    """One daemon per SQLite register file, held by a lock beside it for the daemon's life
    (and for `migrate-register`'s copy, after which a daemon's events would be left behind).

    Two daemons on one file would share its hook spool (one deleting the file the other
    has just appended an acknowledged event to), renew the same subscriptions twice and
    notify twice. Several daemons are for a PostgreSQL register (store/leases.py). The lock
    is the kernel's (flock), so a daemon killed with -9 leaves nothing to clean up."""

    def __init__(self, db: Path, doing: str) -> None:
        """`doing` is what the holder is shown doing to whoever is refused
        ("listening on 127.0.0.1:8088")."""
        self.handle: Any = None
        if not isinstance(db, Path):
            return  # a database server: several daemons share it by leases
        try:
            # The register's mode, as the spool's: an admin who may read the register may
            # ask `status` who holds it.
            mode = os.stat(db).st_mode & 0o666 if db.exists() else 0o600
            fd = files.open_beside(lock_path(db), os.O_RDWR, mode)
            handle = os.fdopen(fd, "r+", encoding="utf-8")
        except OSError as exc:
            raise UserError(f"Cannot take the register {db}: {exc.strerror}.") from None
        try:
            _flock_soon(handle)
        except BlockingIOError:
            handle.seek(0)
            held = RegisterHolder.parse(handle.read())
            handle.close()
            raise UserError(
                f"Another process ({held}) already serves the register {db}; stop it "
                "first (one daemon per SQLite register, and migrate-register runs without one)."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {doing}\n")
        handle.flush()
        self.handle = handle

    def release(self) -> None:
        if self.handle is not None:
            self.handle.close()  # closing the file releases the lock
            self.handle = None

    @staticmethod
    def holder(db: Path) -> RegisterHolder | None:
        """Who holds the register now, else None. Read only: `status` asks it beside a
        running daemon."""
        if not isinstance(db, Path):
            return None
        try:
            handle = lock_path(db).open("r", encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:  # another user's daemon, say: say so rather than fail status
            return RegisterHolder(None, f"unknown: {lock_path(db)} cannot be read ({exc.strerror})")
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return RegisterHolder.parse(handle.read())
            return None  # nobody holds it (the file is what the last holder left)
