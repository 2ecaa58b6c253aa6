"""The hook: the ASGI app the PBX posts to. It stores what it is given and answers.

An event is acknowledged (200) only once it is committed to the inbox; the processing of
the inbox into register rows happens on the workers' threads (workers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from beeline_missed.daemon.processing import now_ms
from beeline_missed.daemon.register import DaemonRegister, RegisterWatch
from beeline_missed.daemon.spool import (
    POSITION_KEY,
    Spool,
    SpoolDamaged,
    SpooledEvent,
    spool_path,
)
from beeline_missed.errors import UserError
from beeline_missed.pbx import xsi

log = logging.getLogger("beeline_missed.daemon")


MAX_HEADER_BYTES = 16 * 1024
TOO_LARGE_HEADERS = PlainTextResponse("Request Header Fields Too Large", status_code=431)
NOT_FOUND = PlainTextResponse("Not Found", status_code=404)


# How long the intake waits for the register's write lock (first the daemon's own threads',
# then SQLite's, each half) before it keeps events in the spool instead; and how often the
# spool's mover tries again after finding the register busy.
HOOK_WAIT = 0.020
SPOOL_RETRY = 0.2
SAY_EVERY = 60.0
# While events cannot be stored, /healthz tries a write at most this often (seconds).
STORE_PROBE_EVERY = 1.0


class RegisterBusy(Exception):
    """Another process holds the register's write lock."""


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY or "locked" in str(exc)


ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


def hook_path(public_url: str | None) -> str:
    """The secret path the PBX posts to, taken from the public URL."""
    if not public_url:
        raise UserError(
            "No public hook URL: set BEELINE_MISSED_PUBLIC_URL (or public_url in config.toml) "
            "to the URL the PBX should post to, secret path included."
        )
    path = urlsplit(public_url).path.rstrip("/")
    if len(path.strip("/")) < 8:
        raise UserError(
            "The public hook URL needs a secret path of at least 8 characters, "
            "e.g. https://shop.example.ru/beeline/hook/<long random text>."
        )
    return path


class Intake:
    """Stores each posted body durably before the hook answers.

    Group commit: handlers hand their bodies to one writer thread, which commits everything
    waiting in ONE transaction and then releases the waiting answers. One fsync acknowledges
    a whole batch, and the event loop never blocks on the disk. While another process holds
    the register, the batch goes to the spool instead (spool.py), and the mover thread moves
    it into the inbox once the register is free.
    """

    MAX_BATCH = 500

    def __init__(
        self,
        db_path: Path,
        max_body_bytes: int,
        wake: threading.Event,
        *,
        body_timeout: float = 20.0,
        max_in_flight: int = 200,
    ) -> None:
        self.db_path = db_path
        self.register = DaemonRegister.open(db_path)  # the writer thread's alone
        self.register.manual_checkpoints()  # the processor checkpoints, outside answers
        self.watch = RegisterWatch(db_path)
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        # Posts being read or stored right now; only these count against the limit, so idle
        # or stalled connections never take a place from a real event.
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        # Why the last event could not be stored, None after a success: /healthz reports it
        # until a small write succeeds again, so monitoring hears of a full disk.
        self.store_failed: str | None = None
        self._probed_at = 0.0
        self.wake = wake
        self.pending: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        # On SQLite another process may hold the write lock for long (see spool.py): the
        # intake waits at most HOOK_WAIT for it, then keeps the events in the spool.
        self.spool = (
            Spool(spool_path(db_path), os.stat(db_path).st_mode & 0o666)
            if isinstance(db_path, Path)
            else None
        )
        self.spool_lock = threading.Lock()  # the file's end: appended here, read by the mover
        self.move = threading.Event()
        self.stopping = False
        self.mover: threading.Thread | None = None
        self.said: dict[str, float] = {}
        if self.spool is not None:
            self.register.conn.execute(f"PRAGMA busy_timeout = {int(HOOK_WAIT * 500)}")
            self.mover = threading.Thread(
                target=self._move_loop, args=(db_path,), name="spool", daemon=True
            )
            self.mover.start()
            if self.spool.waiting:  # left by the previous run
                self.move.set()
        self.writer = threading.Thread(target=self._write_loop, name="intake", daemon=True)
        self.writer.start()

    async def store_async(self, body: bytes, **fields: Any) -> int:
        """Commit one body with whatever else is waiting; returns once it is durable."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self.pending.put(_Pending(body, now_ms(), fields, loop, future))
        return await future

    def _write_loop(self) -> None:
        while True:
            first = self.pending.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.MAX_BATCH:
                try:
                    item = self.pending.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self.pending.put(None)  # stop after this batch
                    break
                batch.append(item)
            try:
                ids = self._write(batch)
            except Exception as exc:  # disk full, read-only file...: every waiter hears it
                for item in batch:
                    _answer(item, None, exc)
                continue
            for item, row_id in zip(batch, ids, strict=True):
                _answer(item, row_id, None)

    def _write(self, batch: list[_Pending]) -> list[int]:
        """Make the batch durable: in the inbox, or in the spool when the register is held
        by another process (ids 0: they get theirs when moved). While earlier events wait
        in the spool, later ones join them there: the inbox keeps the order of arrival."""
        items = [(item.body, item.received_ms, item.fields) for item in batch]
        spool = self.spool
        if spool is None:
            return self.register.inbox.add_many(items)
        with self.spool_lock:
            if spool.waiting:
                spool.append([SpooledEvent(*item) for item in items])
                self.move.set()
                return [0] * len(items)
        try:
            return self._add_now(items)
        except RegisterBusy:
            pass
        self._say(
            logging.WARNING,
            "the register is held by another process: events are kept in %s until it is free",
            spool.path,
        )
        with self.spool_lock:
            spool.append([SpooledEvent(*item) for item in items])
        self.move.set()
        return [0] * len(items)

    def _add_now(self, items: list[tuple[bytes, int, dict[str, Any]]]) -> list[int]:
        """Commit to the inbox, or raise RegisterBusy after waiting about HOOK_WAIT."""
        # The daemon's own threads queue on the in-process lock, and one of them may itself
        # be waiting for the other process's lock: wait for them no longer either.
        if not DaemonRegister.write_lock.acquire(timeout=HOOK_WAIT / 2):
            raise RegisterBusy
        try:
            return self.register.inbox.add_many(items)
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise RegisterBusy from exc
            raise
        finally:
            DaemonRegister.write_lock.release()

    def _move_loop(self, db_path: Path) -> None:
        """The spool's mover (its own thread and connection, so the intake never waits for
        it): moves spooled events into the inbox, a batch per transaction; the spool's
        position moves in the same transaction, so a crash loses and doubles none."""
        register = DaemonRegister.open(db_path)
        register.manual_checkpoints()
        spool = self.spool
        assert spool is not None
        moved = 0  # since the last time the log said so
        try:
            while not self.stopping:
                self.move.wait()
                self.move.clear()
                while not self.stopping and spool.waiting:
                    try:
                        offset = spool.start_offset(register.meta.get(POSITION_KEY))
                        with self.spool_lock:
                            end = spool.end
                        try:
                            events, after = spool.read(offset, end, self.MAX_BATCH)
                        except SpoolDamaged:
                            with self.spool_lock:
                                aside = spool.keep_aside()
                            log.error(
                                "the spool's events from byte %d on cannot be read; the file "
                                "is kept as %s",
                                offset,
                                aside,
                            )
                            continue
                        if not events:
                            with self.spool_lock:
                                if spool.end == end:  # nothing appended meanwhile
                                    spool.remove()
                            continue
                        with register.transaction():
                            register.inbox.add_many(
                                [(e.body, e.received_ms, e.fields) for e in events]
                            )
                            register.meta.set(POSITION_KEY, spool.position(after))
                        moved += len(events)
                        self.wake.set()  # the processor
                    except Exception as exc:  # busy again, or the disk: try again later
                        busy = isinstance(exc, sqlite3.OperationalError) and _is_busy(exc)
                        if not busy:
                            self._say(
                                logging.ERROR, "cannot move spooled events into the inbox: %s", exc
                            )
                        time.sleep(SPOOL_RETRY)
                if moved and self._say(
                    logging.INFO, "moved %d spooled events into the inbox", moved
                ):
                    moved = 0
        finally:
            register.close()

    def _say(self, level: int, message: str, *args: object) -> bool:
        """Log a spool message, the same one at most once a minute (a big import makes the
        register busy again and again)."""
        now = time.monotonic()
        if now - self.said.get(message, -SAY_EVERY) < SAY_EVERY:
            return False
        self.said[message] = now
        log.log(level, message, *args)
        return True

    def close(self) -> None:
        """Finish what is queued, then close the register."""
        self.pending.put(None)
        self.writer.join(timeout=30)
        if self.mover is not None:  # what it has not moved, the next start will
            self.stopping = True
            self.move.set()
            self.mover.join(timeout=30)
        self.register.close()

    async def read_body(self, request: Request) -> bytes | None:
        """The body, or None when it is larger than allowed."""
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body_bytes:
            return None
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def handle(self, request: Request) -> Response:
        problem = self.watch.check()
        if problem:  # nothing may be acknowledged into a file nobody will find again
            return PlainTextResponse(f"The event could not be stored: {problem}.", status_code=503)
        if self.in_flight >= self.max_in_flight:
            return PlainTextResponse(
                "Too many events at once; retry.", status_code=503, headers={"Retry-After": "1"}
            )
        self.in_flight += 1
        try:
            return await self._handle(request)
        finally:
            self.in_flight -= 1

    async def _handle(self, request: Request) -> Response:
        try:
            # A body trickled byte by byte would hold its place (and memory) for ever.
            async with asyncio.timeout(self.body_timeout):
                body = await self.read_body(request)
        except ClientDisconnect:
            return Response(status_code=400)
        except TimeoutError:
            reason = f"The body did not arrive within {self.body_timeout:g} s."
            await self._store_rejected(b"", reason)
            log.warning("rejected an event: %s", reason)
            return PlainTextResponse(reason, status_code=408, headers={"Connection": "close"})
        if body is None:
            reason = f"The body is larger than {self.max_body_bytes} bytes."
            await self._store_rejected(b"", reason)
            log.warning("rejected an event: %s", reason)
            return PlainTextResponse(reason, status_code=413)
        coding = unsupported_coding(request.headers)
        if coding:
            # Compressed XML would only fail later as "not well-formed"; say what is wrong.
            reason = f"{coding[0]} {coding[1]!r} is not accepted; send the XML uncompressed."
            await self._store_rejected(body, reason)
            log.warning("rejected an event: %s", reason)
            return PlainTextResponse(reason, status_code=415)
        try:
            event = xsi.parse_event(body)
        except xsi.BadDocument as exc:
            await self._store_rejected(body, exc.reason)
            log.warning("rejected an event: %s", exc.reason)
            return PlainTextResponse(exc.reason, status_code=exc.status)
        try:
            await self.store_async(
                body,
                event_id=event.event_id,
                event_type=event.event_type,
                subscription_id=event.subscription_id,
                target_id=event.target_id,
                call_id=event.call_id,
            )
        except Exception as exc:  # disk full, read-only file...: let the PBX retry
            log.error("cannot store an event, answering 503: %s", exc)
            self.store_failed = str(exc)
            return PlainTextResponse("The event could not be stored.", status_code=503)
        self.store_failed = None
        self.wake.set()
        return PlainTextResponse("OK")

    async def store_problem(self) -> str | None:
        """Why events cannot be stored now, else None. While a failure is recorded, a small
        write (at most one a second) tells whether it still holds: /healthz then answers the
        truth both ways, without waiting for the next event (a load balancer that stopped
        sending events on a 503 would never send the one that clears it)."""
        if self.store_failed is None:
            return None
        if time.monotonic() - self._probed_at >= STORE_PROBE_EVERY:
            self._probed_at = time.monotonic()
            error = await asyncio.to_thread(self._probe_write)
            self.store_failed = error
        if self.store_failed is None:
            return None
        # The reason stays in the log: /healthz answers anyone, and a database error names
        # the register's host, database and user.
        return "the last event could not be stored; the daemon's log says why"

    def _probe_write(self) -> str | None:
        """Write one meta row on a connection of its own: None when that worked."""
        from beeline_missed.store import connect

        try:
            register = DaemonRegister(connect(self.db_path, busy_timeout_ms=2000))
            try:
                register.meta.set("healthz_write", str(now_ms()))
            finally:
                register.close()
        except Exception as exc:
            return str(exc)
        return None

    async def _store_rejected(self, body: bytes, reason: str) -> None:
        try:
            await self.store_async(body, state="rejected", reason=reason)
        except Exception as exc:
            log.error("cannot keep a rejected event aside: %s", exc)


# The body codings the hook takes; the HTTP parser undoes chunked, nothing decompresses.
ACCEPTED_CODINGS = {
    "Content-Encoding": {"identity"},
    "Transfer-Encoding": {"identity", "chunked"},
}


def unsupported_coding(headers: Headers) -> tuple[str, str] | None:
    """(header, coding) for the first body coding the hook does not take, e.g. gzip."""
    for header, accepted in ACCEPTED_CODINGS.items():
        for value in headers.getlist(header):
            for coding in value.split(","):
                coding = coding.strip()
                if coding and coding.lower() not in accepted:
                    return header, coding[:40]  # the reason is logged: keep a posted value short
    return None


@dataclass
class _Pending:
    """A body waiting for the intake writer, and the answer waiting for its commit."""

    body: bytes
    received_ms: int
    fields: dict[str, Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[int]


def _answer(item: _Pending, row_id: int | None, error: BaseException | None) -> None:
    # RuntimeError: the event loop is gone (shutdown), so nobody waits for this answer.
    with contextlib.suppress(RuntimeError):
        item.loop.call_soon_threadsafe(_settle_future, item.future, row_id, error)


def _settle_future(
    future: asyncio.Future[int], result: int | None, error: BaseException | None
) -> None:
    if future.done():  # the request went away meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result or 0)


def build_app(
    intake: Intake, secret_path: str, workers_problem: Callable[[], str | None] | None = None
) -> Starlette:
    """The hook's app. /healthz answers 503 with the reason while the register file is lost,
    an event could not be stored lately, or (`workers_problem`) a worker thread has died."""
    secret = secret_path.encode()

    async def endpoint(request: Request) -> Response:
        # uvicorn's h11 limit only bites on a header block split across reads (~64 KiB on
        # loopback); this one holds for every request, before the path is even looked at.
        if sum(len(k) + len(v) for k, v in request.headers.raw) > MAX_HEADER_BYTES:
            return TOO_LARGE_HEADERS
        path = request.url.path.rstrip("/").encode()
        if request.method == "GET" and path == b"/healthz":
            problem = (
                intake.watch.check()
                or await intake.store_problem()
                or (workers_problem() if workers_problem is not None else None)
            )
            if problem:
                return PlainTextResponse(problem, status_code=503)
            return PlainTextResponse("ok")
        # Constant time, and the same 404 for a wrong path and a wrong method.
        if hmac.compare_digest(path, secret) and request.method == "POST":
            return await intake.handle(request)
        return NOT_FOUND

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=ALL_METHODS)])
