"""The hook: the ASGI app the PBX posts to. It stores what it is given and answers.

An event is acknowledged (200) only once it is committed to the inbox; the processing of
the inbox into register rows happens on the workers' threads (workers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import queue
import threading
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
from beeline_missed.errors import UserError
from beeline_missed.pbx import xsi

log = logging.getLogger("beeline_missed.daemon")


MAX_HEADER_BYTES = 16 * 1024
TOO_LARGE_HEADERS = PlainTextResponse("Request Header Fields Too Large", status_code=431)
NOT_FOUND = PlainTextResponse("Not Found", status_code=404)


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
