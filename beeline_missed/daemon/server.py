"""The daemon: the hook (uvicorn + starlette), the inbox processor and the subscription keeper.

The hook only stores what it is given and answers; a processor thread turns the inbox into
register rows, and a keeper thread keeps the PBX subscriptions alive. Each has its own SQLite
connection; SQLite in WAL mode serialises the writers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import queue
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from beeline_missed.config import Settings
from beeline_missed.daemon.processing import Processor, now_ms
from beeline_missed.daemon.processing import targets_from_settings as processing_targets
from beeline_missed.errors import UserError
from beeline_missed.pbx import xsi
from beeline_missed.store import Register

log = logging.getLogger("beeline_missed.daemon")

NOT_FOUND = PlainTextResponse("Not Found", status_code=404)
MAX_HEADER_BYTES = 16 * 1024
TOO_LARGE_HEADERS = PlainTextResponse("Request Header Fields Too Large", status_code=431)
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
# How often the daemon checks, with nobody asking, that its register is still where it was.
REGISTER_CHECK_INTERVAL = 1.0
# Open files the daemon asks for at start (up to the hard limit), and what it keeps for itself
# (SQLite files of each thread, the log, PBX and notification sockets).
WANTED_OPEN_FILES = 65536
RESERVED_OPEN_FILES = 64


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


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    # isascii: str.isdigit() also takes other scripts' digits, which int() then reads.
    if not host or not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise UserError(f"--listen must be HOST:PORT with a port from 0 to 65535, not {listen!r}.")
    return host.strip("[]"), int(port)


class RegisterWatch:
    """Notices the register file being moved, deleted or replaced under the running daemon.

    SQLite keeps writing to the file it opened, even once no path leads to it any more: events
    acknowledged then would be lost with that file. The identity (device, inode) of the file at
    the register's path is compared with the one the daemon opened."""

    def __init__(self, path: Path) -> None:
        self.path = path
        opened = os.stat(path)  # right after the intake opened it: the file the daemon writes
        self.identity = (opened.st_dev, opened.st_ino)
        self.lock = threading.Lock()
        self.problem: str | None = None

    def check(self) -> str | None:
        """None while the path still leads to the open register, else what happened to it."""
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            problem: str | None = "the register file was moved or deleted"
        except OSError as exc:  # e.g. the folder's permissions changed
            problem = f"the register file cannot be checked ({exc.strerror})"
        else:
            same = (now.st_dev, now.st_ino) == self.identity
            problem = None if same else "the register file was replaced by another file"
        with self.lock:  # one log line per change, whichever thread notices it first
            if problem != self.problem:
                if problem:
                    log.error(
                        "%s (%s) while the daemon runs: refusing events with 503 until it is "
                        "back or the daemon is restarted",
                        problem,
                        self.path,
                    )
                else:
                    log.info("the register file %s is back; accepting events again", self.path)
                self.problem = problem
        return problem


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


class Intake:
    """Stores each posted body durably before the hook answers.

    Group commit: handlers hand their bodies to one writer thread, which commits everything
    waiting in ONE transaction and then releases the waiting answers. One fsync acknowledges
    a whole batch, and the event loop never blocks on the disk.
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
        self.register = DaemonRegister.open(db_path)
        self.register.manual_checkpoints()  # the processor checkpoints, outside answers
        self.watch = RegisterWatch(db_path)
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        # Posts being read or stored right now; only these count against the limit, so idle
        # or stalled connections never take a place from a real event.
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.wake = wake
        self.lock = threading.Lock()
        self.pending: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self.writer = threading.Thread(target=self._write_loop, name="intake", daemon=True)
        self.writer.start()

    def store(self, body: bytes, **fields: Any) -> int:
        """Commit one body now, from any thread (bypasses the batching)."""
        with self.lock:
            return self.register.inbox.add(body, now_ms(), **fields)

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
                with self.lock:
                    ids = self.register.inbox.add_many(
                        [(item.body, item.received_ms, item.fields) for item in batch]
                    )
            except Exception as exc:  # disk full, read-only file...: every waiter hears it
                for item in batch:
                    _answer(item, None, exc)
                continue
            for item, row_id in zip(batch, ids, strict=True):
                _answer(item, row_id, None)

    def close(self) -> None:
        """Finish what is queued, then close the register."""
        self.pending.put(None)
        self.writer.join(timeout=30)
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
            return PlainTextResponse("The event could not be stored.", status_code=503)
        self.wake.set()
        return PlainTextResponse("OK")

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


def build_app(intake: Intake, secret_path: str) -> Starlette:
    secret = secret_path.encode()

    async def endpoint(request: Request) -> Response:
        # uvicorn's h11 limit only bites on a header block split across reads (~64 KiB on
        # loopback); this one holds for every request, before the path is even looked at.
        if sum(len(k) + len(v) for k, v in request.headers.raw) > MAX_HEADER_BYTES:
            return TOO_LARGE_HEADERS
        path = request.url.path.rstrip("/").encode()
        if request.method == "GET" and path == b"/healthz":
            problem = intake.watch.check()
            if problem:
                return PlainTextResponse(problem, status_code=503)
            return PlainTextResponse("ok")
        # Constant time, and the same 404 for a wrong path and a wrong method.
        if hmac.compare_digest(path, secret) and request.method == "POST":
            return await intake.handle(request)
        return NOT_FOUND

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=ALL_METHODS)])


@dataclass
class Backoff:
    """Exponential backoff for PBX errors: 1 s, 2 s, 4 s … up to `limit`."""

    limit: float = 300.0
    failures: int = 0

    def delay(self) -> float:
        return min(self.limit, 2.0 ** max(0, self.failures - 1)) if self.failures else 0.0

    def failed(self) -> float:
        self.failures += 1
        return self.delay()

    def succeeded(self) -> None:
        self.failures = 0


@dataclass
class Workers:
    """The background threads: inbox processing and subscription keeping."""

    settings: Settings
    stop: threading.Event = field(default_factory=threading.Event)
    wake: threading.Event = field(default_factory=threading.Event)
    terminated: queue.Queue[str] = field(default_factory=queue.Queue)
    threads: list[threading.Thread] = field(default_factory=list)
    # -- reconcile, auto-close, hours, notifications --
    notifier: Any = None  # notify.Notifier when a channel is configured
    hours: Any = None  # hours.WorkingHours, built at start
    drained: threading.Event = field(default_factory=threading.Event)  # inbox processed once
    # Who is a person, by target id: built at start (bad patterns fail there).
    targets_from: Any = None
    # Set when an event names a target the abonent list lacks: refresh the list now.
    unknown_target: threading.Event = field(default_factory=threading.Event)
    abonents_changed: threading.Event = field(default_factory=threading.Event)
    asked_about: set[str] = field(default_factory=set)

    def start(self) -> None:
        from beeline_missed import timefmt
        from beeline_missed.daemon import notify
        from beeline_missed.rules import hours

        self.hours = hours.from_settings(self.settings)  # a bad table fails here, at start
        self.targets_from = processing_targets(self.settings)
        log.info("working hours: %s", hours.describe(self.hours))
        channels = notify.senders(self.settings)
        if channels:
            zone = timefmt.local_zone(self.settings.timezone)
            self.notifier = notify.Notifier(self.settings.db, channels, zone, self.stop)
        self.threads = [
            threading.Thread(target=self._process_loop, name="processor", daemon=True),
            threading.Thread(target=self._keep_loop, name="keeper", daemon=True),
            threading.Thread(target=self._reconcile_loop, name="reconciler", daemon=True),
            threading.Thread(target=self._abonents_loop, name="abonents", daemon=True),
        ]
        # 1C:Альфа-Авто: the clients directory synced in its own thread (onec_worker.py).
        from beeline_missed.onec import worker as onec_worker

        if onec_worker.configured(self.settings):
            self.threads.append(
                threading.Thread(
                    target=onec_worker.run,
                    args=(self.settings, lambda: DaemonRegister.open(self.settings.db), self.stop),
                    name="onec",
                    daemon=True,
                )
            )
        for thread in self.threads:
            thread.start()
        if self.notifier is not None:
            self.threads.append(self.notifier.start())
        if self.settings.escalate_after > 0:
            # Its own thread: the hook and the processor never wait for a manager's channel.
            if channels:
                from beeline_missed.rules.escalation import Escalator

                escalator = Escalator(self.settings.db, self.settings, channels, self.stop)
                self.threads.append(escalator.start())
                log.info("escalating cases open over %g min", self.settings.escalate_after)
            else:
                log.warning("escalate_after is set but no Telegram or e-mail is configured")

    def _after_missed(self, register: Register) -> Any:
        """What follows a new register row: close it at once if the number was answered after
        it already (a late row), else notify."""
        from beeline_missed.rules import autoclose

        closer = autoclose.AutoCloser(register, self.settings) if self.settings.auto_close else None

        def hook(call_id: int) -> None:
            _, left_open = autoclose.settle_new_rows(register, self.settings, [call_id], closer)
            if left_open and self.notifier is not None:
                self.notifier.submit(call_id)

        return hook

    def shutdown(self) -> None:
        self.stop.set()
        self.wake.set()
        for thread in self.threads:
            thread.join(timeout=15)

    def _process_loop(self) -> None:
        register = DaemonRegister.open(self.settings.db)
        register.fast_commits()  # derived rows only: the inbox is the durable record
        register.manual_checkpoints()
        processor = Processor(
            register,
            settle=self.settings.settle,
            stale_after=self.settings.stale_after,
            on_terminated=[self.terminated.put],
            on_missed=[self._after_missed(register)],
            outside_hours=self.hours.is_outside,
            merge_tolerance=self.settings.reconcile_tolerance,
            targets_from=self.targets_from,
            on_unknown_target=[self._on_unknown_target],
            release_wait=self.settings.auto_close_release_wait,
        )
        if self.settings.auto_close:
            from beeline_missed.rules.autoclose import AutoCloser

            processor.on_answered.append(AutoCloser(register, self.settings))
        tick = max(0.05, min(0.5, self.settings.settle / 4))
        backoff = Backoff(limit=30)
        next_checkpoint = 0.0
        try:
            while True:
                try:
                    if self.abonents_changed.is_set():
                        self.abonents_changed.clear()
                        processor.forget_targets()
                    written = processor.run_once()
                    for row in written:
                        log.info("missed call registered: id %s", row)
                    self.drained.set()
                    if time.monotonic() >= next_checkpoint:
                        # Outside the write lock, never inside a hook answer; at most once a
                        # second, as each checkpoint syncs the database file.
                        register.checkpoint()
                        next_checkpoint = time.monotonic() + 1.0
                    backoff.succeeded()
                except Exception:
                    log.exception("processing failed; retrying")
                    self.stop.wait(backoff.failed())
                if self.stop.is_set():
                    processor.run_once()  # what was acknowledged before the stop
                    return
                self.wake.wait(tick)
                self.wake.clear()
        finally:
            register.close()

    def _keep_loop(self) -> None:
        if not self.settings.api_token:
            log.warning("no API token: subscriptions are not kept alive by this daemon")
            return
        from beeline_missed.pbx import subscriptions
        from beeline_missed.pbx.api import PbxClient

        register = DaemonRegister.open(self.settings.db)
        client = PbxClient.from_settings(self.settings)
        backoff = Backoff()
        next_check = 0.0
        # Terminated subscriptions not yet replaced: kept until a re-subscription succeeds,
        # retried with the backoff, not left for the next scheduled check.
        terminated: list[str] = []
        try:
            while not self.stop.is_set():
                try:
                    while not self.terminated.empty():
                        terminated.append(self.terminated.get_nowait())
                    while terminated:
                        log.info(
                            "subscription %s terminated by the PBX; re-subscribing", terminated[0]
                        )
                        subscriptions.on_terminated(
                            register, client, terminated[0], settings=self.settings
                        )
                        terminated.pop(0)
                    now = time.time()
                    for action in subscriptions.keep_alive(register, client, self.settings, now):
                        log.info("%s", action)
                    if now >= next_check:
                        for action in subscriptions.check(register, client, now):
                            log.info("%s", action)
                        next_check = now + self.settings.check_interval
                    backoff.succeeded()
                    register.meta.set("keeper_error", None)
                    wait = 1.0
                except Exception as exc:  # PBX down, slow, 5xx, 401: keep serving, try later
                    wait = backoff.failed()
                    log.error("subscription upkeep failed (retry in %.0f s): %s", wait, exc)
                    register.meta.set("keeper_error", str(exc))
                self.stop.wait(wait)
        finally:
            client.close()
            register.close()

    def _on_unknown_target(self, target_id: str) -> None:
        # Each unknown target asks for one refresh; one still unknown after it is not a person.
        if target_id not in self.asked_about and len(self.asked_about) < 10_000:
            self.asked_about.add(target_id)
            log.info("target %s is not on the abonent list; refreshing the list", target_id[:80])
            self.unknown_target.set()

    def _abonents_loop(self) -> None:
        """Keep the PBX's abonent list (who is a person) fresh: at start, every
        abonents_refresh_interval, and soon after an event names a target the list lacks."""
        if not self.settings.api_token:
            log.warning("no API token: people and services are told apart by their ids only")
            return
        from beeline_missed.pbx.api import PbxClient

        register = DaemonRegister.open(self.settings.db)
        client = PbxClient.from_settings(self.settings)
        backoff = Backoff()
        next_refresh = 0.0
        try:
            while not self.stop.is_set():
                now = time.monotonic()
                if now >= next_refresh or self.unknown_target.is_set():
                    try:
                        count = register.abonents.replace(client.abonents())
                        self.abonents_changed.set()
                        self.wake.set()
                        backoff.succeeded()
                        log.info("abonent list refreshed: %s abonents", count)
                        next_refresh = now + float(self.settings.abonents_refresh_interval)
                    except Exception as exc:  # the PBX down: keep the cached list
                        log.warning("cannot refresh the abonent list: %s", exc)
                        next_refresh = now + backoff.failed()
                    # An unknown target asks again at most once a minute.
                    self.stop.wait(60.0 if self.unknown_target.is_set() else 0.0)
                    self.unknown_target.clear()
                self.stop.wait(1.0)
        finally:
            client.close()
            register.close()

    def _reconcile_loop(self) -> None:
        """Catch up from the call statistics on start and every reconcile_interval."""
        if not self.settings.api_token:
            log.warning("no API token: missed calls are not reconciled from the statistics")
            return
        from beeline_missed.pbx.api import PbxClient
        from beeline_missed.rules import reconcile

        # The inbox first: events acknowledged before a restart are the hook's, not recoveries.
        while not self.drained.wait(0.2):
            if self.stop.is_set():
                return
        register = DaemonRegister.open(self.settings.db)
        client = PbxClient.from_settings(self.settings)
        after = self._after_missed(register)
        backoff = Backoff()
        try:
            while not self.stop.is_set():
                try:
                    summary = reconcile.run_scheduled(
                        register, client, self.settings, outside_hours=self.hours.is_outside
                    )
                    if summary.registered:
                        log.info(
                            "reconciliation recovered %s missed call(s): ids %s",
                            len(summary.registered),
                            ", ".join(map(str, summary.registered)),
                        )
                    for call_id in summary.registered:
                        after(call_id)
                    backoff.succeeded()
                    wait = float(self.settings.reconcile_interval)
                except Exception as exc:  # PBX down or slow: the next run covers the gap
                    wait = min(float(self.settings.reconcile_interval), backoff.failed())
                    log.error("reconciliation failed (retry in %.0f s): %s", wait, exc)
                    register.meta.set(reconcile.META_ERROR, str(exc))
                self.stop.wait(wait)
        finally:
            client.close()
            register.close()


def _hook_server_class() -> type:
    import uvicorn

    class HookServer(uvicorn.Server):
        """uvicorn re-raises SIGTERM/SIGINT after a graceful stop, so the process would die by the
        signal; for us a requested stop is a clean exit with status 0."""

        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            self._captured_signals.clear()

    return HookServer


def _hook_protocol_class(header_timeout: float) -> type:
    """uvicorn's httptools protocol, plus what it lacks for a port on the internet.

    - A header timeout: uvicorn times out idle keep-alive connections, but nothing while a
      request's headers arrive, so a client trickling a header byte now and then (or sending
      nothing at all after connecting) holds its socket for ever. Here the headers must be
      complete within `header_timeout` seconds of the connection opening, or of the first
      byte after the previous answer; else the client gets 408 and the socket is closed.
    - A header size limit while headers arrive (httptools has none): 431, and closed.
    - An answer given before the request's body was read (404, 431, an early 4xx) closes the
      connection: otherwise it stays open for as long as the client trickles that body.
    """
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HookProtocol(HttpToolsProtocol):
        header_timer: asyncio.TimerHandle | None = None
        header_bytes = 0  # received since the current request began, while its headers arrive

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._start_header_timer()

        def data_received(self, data: bytes) -> None:
            # The first byte of a next request on a kept-alive connection starts the clock;
            # later bytes do not restart it (a trickle must not keep a request alive).
            if self.cycle is None or self.cycle.response_complete:
                self._start_header_timer()
            if self.header_timer is not None:
                self.header_bytes += len(data)
            super().data_received(data)
            # Headers still incomplete after all these bytes: httptools would keep collecting
            # them (it has no limit), so a megabyte header costs a megabyte per connection.
            # A block completed within one read is checked by endpoint() instead.
            if self.header_timer is not None and self.header_bytes > MAX_HEADER_BYTES:
                self._stop_header_timer()
                self._refuse(431, b"Request Header Fields Too Large")

        def on_headers_complete(self) -> None:
            self._stop_header_timer()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            # With no pipelined request queued, self.cycle is the request just answered.
            if not self.pipeline and self.cycle.more_body and not self.transport.is_closing():
                self.transport.close()  # answered before the body came: do not wait for it
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_header_timer()
            super().connection_lost(exc)

        def _start_header_timer(self) -> None:
            if self.header_timer is None:
                self.header_bytes = 0
                self.header_timer = self.loop.call_later(header_timeout, self._header_timed_out)

        def _stop_header_timer(self) -> None:
            if self.header_timer is not None:
                self.header_timer.cancel()
                self.header_timer = None

        def _header_timed_out(self) -> None:
            self.header_timer = None
            if self.transport.is_closing():
                return
            # One log line per stalled socket would let anyone flood the log: debug only.
            log.debug("closed a connection whose request headers took over %g s", header_timeout)
            self._refuse(408, b"The request headers did not arrive in time.")

        def _refuse(self, status: int, message: bytes) -> None:
            """Answer before the request reached the app (as uvicorn's own 400 does), and close."""
            if self.transport.is_closing():
                return
            self.transport.write(
                b"HTTP/1.1 %d %s\r\n"
                b"content-type: text/plain; charset=utf-8\r\n"
                b"content-length: %d\r\n"
                b"connection: close\r\n\r\n%s"
                % (status, HTTPStatus(status).phrase.encode(), len(message), message)
            )
            self.transport.close()

    return HookProtocol


def check_limits(settings: Settings) -> None:
    """A zero timeout or limit would refuse every request: say so at start instead."""
    for name in ("header_timeout", "body_timeout", "max_events_in_flight"):
        if not getattr(settings, name) > 0:
            raise UserError(f"Setting {name!r} must be more than 0.")


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft limit on open files towards the hard one; returns (before, now), now
    being 0 when unknown and -1 (RLIM_INFINITY) when unlimited.

    Each connection is an open file: with the common soft limit of 1024, about a thousand
    sockets (idle, stalled or real) would make the daemon refuse every new connection."""
    try:
        import resource
    except ImportError:  # not on this platform: nothing to raise
        return (0, 0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = WANTED_OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, WANTED_OPEN_FILES)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open files limit from %s: %s", soft, exc)
            return (soft, soft)
        return (soft, wanted)
    return (soft, soft)


class RunningDaemon:
    """One daemon: hook server plus worker threads. `run()` blocks (the CLI); `start()` serves in
    a background thread (the demo, which keeps the main thread for the panel)."""

    def __init__(self, settings: Settings) -> None:
        import uvicorn

        self.settings = settings
        secret_path = hook_path(settings.public_url)
        check_limits(settings)
        self.host, self.port = parse_listen(settings.listen)
        self.workers = Workers(settings)
        self.intake = Intake(
            settings.db,
            settings.max_body_bytes,
            self.workers.wake,
            body_timeout=settings.body_timeout,
            max_in_flight=settings.max_events_in_flight,
        )
        config = uvicorn.Config(
            build_app(self.intake, secret_path),
            host=self.host,
            port=self.port,
            # httptools with a header timeout; uvicorn's limit_concurrency is not used: it
            # counts open connections, so a few hundred stalled sockets would make every real
            # event get 503. The intake limits the posts being handled instead.
            http=_hook_protocol_class(settings.header_timeout),
            access_log=False,  # the access log would write the secret path
            log_config=None,
            server_header=False,
            timeout_keep_alive=30,
            timeout_graceful_shutdown=10,
        )
        self.server = _hook_server_class()(config)
        self.thread: threading.Thread | None = None
        self.stopping = threading.Event()  # ends the register watch

    def _watch_register(self) -> None:
        """Check the register's file now and then, so a lost register is logged (and /healthz
        fails) even while no event arrives."""
        while not self.stopping.wait(REGISTER_CHECK_INTERVAL):
            self.intake.watch.check()

    def run(self) -> None:
        before, limit = raise_open_files_limit()
        if limit > 0:
            raised = f" (raised from {before})" if limit != before else ""
            log.info(
                "open files limit %s%s: room for about %s connections at once",
                limit,
                raised,
                max(0, limit - RESERVED_OPEN_FILES),
            )
        self.workers.start()
        watcher = threading.Thread(target=self._watch_register, name="register-watch", daemon=True)
        watcher.start()
        log.info(
            "starting on http://%s:%s (hook path hidden), register %s",
            self.host,
            self.port,
            self.settings.db,
        )
        try:
            self.server.run()
        except SystemExit:
            # uvicorn exits the process when it cannot bind; say so in one sentence below.
            if self.server.started:
                raise
        finally:
            self.stopping.set()
            self.workers.shutdown()
            self.intake.close()
            log.info("stopped")
        if not self.server.started:
            raise UserError(f"Could not listen on {self.host}:{self.port}; is the port free?")

    def start(self, timeout: float = 10.0) -> RunningDaemon:
        self.thread = threading.Thread(target=self.run, name="daemon", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise UserError(f"The daemon could not listen on {self.host}:{self.port}.")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=30)


def serve(settings: Settings) -> None:
    """Run the daemon in the foreground until SIGTERM or SIGINT."""
    RunningDaemon(settings).run()


def open_log(log_file: Path) -> logging.Handler:
    """The log file's handler, opened now: a folder that is missing or not writable is one
    sentence here, not a traceback at the first log line (or silence once detached)."""
    try:
        # 0600 as before: the log names the register and the PBX's answers.
        fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as exc:
        raise UserError(f"Cannot write the log file {log_file}: {exc.strerror}.") from None
    return logging.StreamHandler(os.fdopen(fd, "a", encoding="utf-8"))


def configure_logging(
    log_file: Path | None = None, verbose: bool = False, handler: logging.Handler | None = None
) -> None:
    if handler is None:
        handler = open_log(log_file) if log_file else logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # httpx logs every request URL at INFO; keep it quiet (no token there, but noise).
    logging.getLogger("httpx").setLevel(logging.WARNING)


def prepare_register(db: Path) -> None:
    """Create (or migrate) the register now, in the foreground, and say so when it is new: the
    daemon is one of the commands meant to start a register, and its place must be visible."""
    from beeline_missed.views.output import notice

    new = not db.exists()
    Register.open(db).close()
    if new:
        notice(f"Created a new register at {db}.")


def check_free(host: str, port: int) -> None:
    """Bind the address once before detaching: afterwards nobody would hear that it is taken."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except OSError as exc:  # socket.gaierror too: an unknown host name
        raise UserError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.") from None


def running_pid(pidfile: Path) -> int | None:
    """The pid in a pidfile if that process is alive, else None (no file, or a stale one)."""
    try:
        text = pidfile.read_text(encoding="ascii", errors="replace").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UserError(f"Cannot read the pidfile {pidfile}: {exc.strerror}.") from None
    if not text.isdigit() or not 0 < int(text) < 2**22:
        raise UserError(f"The pidfile {pidfile} holds no pid ({text[:20]!r}); remove it first.")
    pid = int(text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, but someone else's
        return pid
    return pid


def claim_pidfile(pidfile: Path) -> None:
    """Refuse a pidfile of a live daemon, clear a stale one, and make sure the folder takes it.
    python-daemon's lock would only fail after detaching, where nobody hears it."""
    pid = running_pid(pidfile)
    if pid is not None:
        raise UserError(f"A daemon is already running with pid {pid} (pidfile {pidfile}).")
    if pidfile.is_dir():
        raise UserError(f"The pidfile {pidfile} is a folder.")
    folder = pidfile.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"Cannot write the pidfile {pidfile}: its folder is missing or read-only.")
    if pidfile.exists():
        from beeline_missed.views.output import notice

        try:
            pidfile.unlink()  # stale: its process is gone
        except OSError as exc:
            raise UserError(f"Cannot remove the stale pidfile {pidfile}: {exc.strerror}.") from None
        notice(f"Removed the stale pidfile {pidfile} (its process is gone).")


def run(
    settings: Settings,
    *,
    detach: bool = False,
    pidfile: Path | None = None,
    log_file: Path | None = None,
    verbose: bool = False,
) -> None:
    """Foreground by default (systemd, containers); `detach` daemonises with python-daemon.

    Everything that can be checked is checked first, in the foreground with a terminal: the
    settings, the register, the log file, the address and the pidfile. A detached daemon then
    reports back through a pipe whether it listens, so the command's exit status is the truth.
    """
    hook_path(settings.public_url)  # fail before forking
    from beeline_missed.rules import hours

    hours.from_settings(settings)  # a bad working_hours table too
    host, port = parse_listen(settings.listen)
    if pidfile is not None and not detach:
        raise UserError("--pidfile goes with --detach (a foreground daemon writes no pidfile).")
    if detach and log_file is None:
        raise UserError("--detach needs --log-file, so that the daemon's messages are kept.")
    # Absolute before detaching, which changes the folder to /.
    settings = replace(settings, db=settings.db.resolve())
    log_file = log_file.resolve() if log_file else None
    pidfile = pidfile.resolve() if pidfile else None
    handler = open_log(log_file) if log_file else None
    prepare_register(settings.db)
    if not detach:
        configure_logging(log_file, verbose, handler)
        serve(settings)
        return
    assert handler is not None and log_file is not None
    check_free(host, port)
    if pidfile is not None:
        claim_pidfile(pidfile)
    _detach(settings, handler, log_file, pidfile, verbose)


def _detach(
    settings: Settings,
    handler: logging.StreamHandler,  # type: ignore[type-arg]
    log_file: Path,
    pidfile: Path | None,
    verbose: bool,
) -> None:
    from beeline_missed.views.output import notice

    read_end, write_end = os.pipe()
    child = os.fork()
    if child:
        # The command's own process: wait for the daemon's word (EOF if it died first).
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            word = pipe.read().decode("utf-8", "replace").strip()
        os.waitpid(child, 0)  # python-daemon's first fork exits at once
        if not word.startswith("started "):
            raise UserError(word or f"The daemon stopped while starting; see {log_file}.")
        notice(f"The daemon runs in the background, pid {word.split()[1]}; log: {log_file}.")
        return
    os.close(read_end)
    try:
        _run_detached(settings, handler, pidfile, verbose, write_end)
    finally:
        os._exit(0)  # never back into the command line's flow in a forked copy


def _run_detached(
    settings: Settings,
    handler: logging.StreamHandler,  # type: ignore[type-arg]
    pidfile: Path | None,
    verbose: bool,
    report: int,
) -> None:
    import daemon
    from daemon.pidfile import TimeoutPIDLockFile

    def tell(text: str) -> None:
        nonlocal report
        if report >= 0:
            with contextlib.suppress(OSError):
                os.write(report, text.encode("utf-8"))
                os.close(report)
            report = -1

    lock = TimeoutPIDLockFile(str(pidfile), acquire_timeout=1) if pidfile else None
    context = daemon.DaemonContext(
        pidfile=lock, working_directory="/", umask=0o077, files_preserve=[report, handler.stream]
    )
    try:
        context.open()
    except Exception as exc:  # the pidfile taken meanwhile, say
        tell(f"The daemon could not start: {exc}.")
        return
    try:
        configure_logging(verbose=verbose, handler=handler)
        running = RunningDaemon(settings)

        def watch_start() -> None:
            while not running.server.started and not running.server.should_exit:
                time.sleep(0.05)
            if running.server.started:
                tell(f"started {os.getpid()}")

        threading.Thread(target=watch_start, name="started", daemon=True).start()
        running.run()
    except UserError as exc:
        log.error("%s", exc)
        tell(str(exc))
    except Exception as exc:
        log.exception("the daemon stopped")
        tell(f"The daemon stopped: {exc}.")
    finally:
        tell("")
        context.close()
