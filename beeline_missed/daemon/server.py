"""Serving the hook: uvicorn with a protocol that times out slow headers, limits on open
files, and `RunningDaemon`, which starts the workers and the server and stops them in order.

uvicorn's own split is the model: `main.py` starts a daemon, `server.py` serves it, `hook.py`
is the app, `workers.py` the threads next to it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from http import HTTPStatus
from typing import Any

from beeline_missed.config import Settings
from beeline_missed.daemon.hook import MAX_HEADER_BYTES, Intake, build_app, hook_path
from beeline_missed.daemon.register import SoleDaemon
from beeline_missed.daemon.workers import Workers
from beeline_missed.errors import UserError

log = logging.getLogger("beeline_missed.daemon")


# How often the daemon checks, with nobody asking, that its register is still where it was.
REGISTER_CHECK_INTERVAL = 1.0
# Open files the daemon asks for at start (up to the hard limit), and what it keeps for itself
# (SQLite files of each thread, the log, PBX and notification sockets).
WANTED_OPEN_FILES = 65536
RESERVED_OPEN_FILES = 64


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    # isascii: str.isdigit() also takes other scripts' digits, which int() then reads.
    if not host or not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise UserError(f"--listen must be HOST:PORT with a port from 0 to 65535, not {listen!r}.")
    return host.strip("[]"), int(port)


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
        # Before the intake, which takes over the register's spool.
        self.sole = SoleDaemon(settings.db, f"listening on {settings.listen}")
        try:
            self.workers = Workers(settings)
            self.intake = Intake(
                settings.db,
                settings.max_body_bytes,
                self.workers.wake,
                body_timeout=settings.body_timeout,
                max_in_flight=settings.max_events_in_flight,
            )
        except BaseException:
            self.sole.release()
            raise
        config = uvicorn.Config(
            build_app(self.intake, secret_path, self.workers.problem),
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
            self.intake.watch.probe()

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
            self.sole.release()
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
