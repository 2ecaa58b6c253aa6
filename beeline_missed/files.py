"""Files the program writes: whole (a temp file beside, then a rename), or beside the
register with the register's own permissions."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from beeline_missed.errors import UserError


def write_atomic(path: Path | str, data: bytes, mode: int | None = None) -> None:
    """Write `data` to a temp file beside `path`, sync it, and rename it over `path`.

    `mode` is the new file's permission bits; None makes an ordinary file (0666 less the
    umask: mkstemp alone would make it 0600). Any failure is one sentence naming the file.
    """
    path = Path(path)
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise UserError(f"Cannot write {path}: {exc.strerror}.") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is None:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        if isinstance(exc, OSError):
            raise UserError(f"Cannot write {path}: {exc.strerror}.") from None
        raise


def file_in_the_way(folder: Path) -> Path | None:
    """The file that stops `folder` from being made: itself, or the nearest of its parents
    that exists, when that is not a folder (mkdir would only say "File exists")."""
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    return existing if existing is not None and not existing.is_dir() else None


def open_beside(path: Path, flags: int, mode: int) -> int:
    """os.open with O_CREAT, a new file getting exactly `mode`, as SQLite gives its -wal and
    -shm files the database's: the detached daemon's umask (077) would otherwise keep an
    admin who may read the register from reading the files beside it."""
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        return os.open(path, flags)
    try:
        os.fchmod(fd, mode)
    except OSError:
        os.close(fd)
        raise
    return fd
