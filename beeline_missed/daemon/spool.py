"""The hook's spool: events acknowledged while another process held the register.

The hook answers 200 only once an event is durable. Normally that is its commit to the
inbox. When another process holds the register's write lock for longer than the hook may
wait (a big `clients import`, a migration, a backup), the intake appends the events to this
file beside the register instead, syncs it to disk, answers, and moves them into the inbox
as soon as the lock is free: the PBX never waits for someone else's transaction.

The file is append-only: one header line naming the file, then per event a JSON line (its
intake fields and the body's length) and the body. The register's meta row `spool_position`
("<file id> <offset>") moves in the same transaction as the events it moved, so a crash at
any point neither loses nor doubles an event; once everything is moved the file is deleted,
and the next one gets a new id. Only a SQLite register has a spool: a database server has
no write lock to wait for (and when it is away the hook answers 503).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from beeline_missed import files
from beeline_missed.errors import UserError

MAGIC = b"beeline-missed spool "
POSITION_KEY = "spool_position"
READ_CHUNK = 1 << 20


class SpoolDamaged(Exception):
    """An event the spool holds cannot be read back."""


@dataclass(frozen=True)
class SpooledEvent:
    body: bytes
    received_ms: int
    fields: dict[str, Any]


def spool_path(register_path: Path) -> Path:
    return register_path.with_name(register_path.name + "-spool")


class Spool:
    """The spool file of one register. The intake appends; its mover reads and removes; the
    intake's `spool_lock` keeps them apart."""

    def __init__(self, path: Path, mode: int = 0o600) -> None:
        self.path = path
        self.mode = mode  # a new file's: the register's own (the events are as private)
        self.file_id: str | None = None
        self.end = 0  # the offset after the last complete event
        if path.exists():
            self._recover()

    @property
    def waiting(self) -> bool:
        """True while the file holds events (some may already be moved: see `read`)."""
        return self.file_id is not None

    def _recover(self) -> None:
        """Open a spool left by an earlier run, without the tail of an event whose append
        was cut short (it was never acknowledged)."""
        data = self.path.read_bytes()
        header = _header(data)
        if header is None:
            # Not even the header was written: nothing in it was ever acknowledged.
            self.path.unlink()
            return
        self.file_id, offset = header
        while True:
            record = _record_at(data, offset)
            if record is None:
                break
            offset = record[1]
        if offset < len(data):
            with self.path.open("r+b") as f:
                f.truncate(offset)
                os.fsync(f.fileno())
        self.end = offset

    def append(self, events: Sequence[SpooledEvent]) -> None:
        """Write the events and sync them to disk: once this returns they may be acknowledged."""
        new = self.file_id is None
        if new:
            self.file_id = uuid.uuid4().hex
        chunks = [MAGIC + self.file_id.encode("ascii") + b"\n"] if new else []
        for event in events:
            head = {"ms": event.received_ms, "len": len(event.body), "fields": event.fields}
            chunks.append(json.dumps(head, ensure_ascii=False).encode() + b"\n")
            chunks.append(event.body + b"\n")
        data = b"".join(chunks)
        try:
            fd = files.open_beside(self.path, os.O_WRONLY | os.O_APPEND, self.mode)
            with os.fdopen(fd, "ab") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            if new:
                self.file_id = None
                self.path.unlink(missing_ok=True)
            else:  # keep the file ending on a whole event
                with self.path.open("r+b") as f:
                    f.truncate(self.end)
            raise
        if new:
            _sync_directory(self.path.parent)  # the new file's name must survive a crash too
        self.end += len(data)

    def start_offset(self, position: str | None) -> int:
        """Where the events not yet moved begin, given the register's `spool_position`."""
        file_id = self.file_id or ""
        return _unmoved_from(file_id, len(MAGIC) + len(file_id) + 1, position)

    def read(self, offset: int, end: int, limit: int) -> tuple[list[SpooledEvent], int]:
        """Up to `limit` events between `offset` and `end` (the file's end when the caller
        last looked: appends may go on meanwhile), and the offset after them."""
        events: list[SpooledEvent] = []
        at = 0
        # A long wait can leave a big spool: read a chunk at a time, not all of it each batch.
        chunk = READ_CHUNK
        with self.path.open("rb") as f:
            while offset < end and not events:
                f.seek(offset)
                data = f.read(min(chunk, end - offset))
                while len(events) < limit:
                    record = _record_at(data, at)
                    if record is None:
                        break
                    events.append(record[0])
                    at = record[1]
                if len(data) == end - offset:
                    break
                chunk *= 2  # one event larger than the chunk
        if not events and offset < end:
            # Events before `end` were synced whole: only a damaged disk makes one unreadable.
            raise SpoolDamaged
        return events, offset + at

    def position(self, offset: int) -> str:
        return f"{self.file_id} {offset}"

    def keep_aside(self) -> Path:
        """Rename a damaged spool (an event in it cannot be read) out of the way, for
        inspection, and start afresh; returns where it went."""
        aside = self.path.with_name(f"{self.path.name}.damaged-{self.file_id}")
        self.path.rename(aside)
        self.file_id = None
        self.end = 0
        return aside

    def remove(self) -> None:
        """Delete the file once every event in it is in the inbox."""
        self.path.unlink(missing_ok=True)
        self.file_id = None
        self.end = 0


def count_waiting(path: Path, position: str | None) -> int:
    """Events in the spool at `path` not yet moved into the register whose `spool_position`
    is `position`. Read only (`status` asks it beside a running daemon)."""
    return len(waiting_events(path, position))


def waiting_events(path: Path, position: str | None) -> list[SpooledEvent]:
    """The events in the spool at `path` not yet moved into the register whose
    `spool_position` is `position`, in order. Read only."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise UserError(f"Cannot read the hook's spool {path}: {exc.strerror}.") from None
    header = _header(data)
    if header is None:
        return []
    offset = _unmoved_from(*header, position)
    waiting = []
    while (record := _record_at(data, offset)) is not None:
        waiting.append(record[0])
        offset = record[1]
    return waiting


def _header(data: bytes) -> tuple[str, int] | None:
    """The spool's file id and where its first event begins; None when not even the header
    was written."""
    first = data.find(b"\n")
    if not data.startswith(MAGIC) or first < 0:
        return None
    return data[len(MAGIC) : first].decode("ascii", "replace"), first + 1


def _unmoved_from(file_id: str, first_event: int, position: str | None) -> int:
    """Where a spool's events not yet moved begin: at the register's `spool_position` when
    that names this file, else at its first event."""
    moved_file, _, moved = (position or "").partition(" ")
    if moved_file == file_id and moved.isdigit():
        return int(moved)
    return first_event


def _record_at(data: bytes, offset: int) -> tuple[SpooledEvent, int] | None:
    """The event starting at `offset` and the offset after it; None at the end or at a torn
    tail."""
    newline = data.find(b"\n", offset)
    if newline < 0:
        return None
    try:
        head = json.loads(data[offset:newline])
        length = int(head["len"])
        received_ms = int(head["ms"])
        fields = dict(head["fields"])
    except (ValueError, KeyError, TypeError):
        return None
    body_end = newline + 1 + length
    if body_end + 1 > len(data) or data[body_end : body_end + 1] != b"\n":
        return None
    return SpooledEvent(data[newline + 1 : body_end], received_ms, fields), body_end + 1


def _sync_directory(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
