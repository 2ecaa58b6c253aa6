"""Serving a stand-in's ASGI app on loopback with uvicorn in a thread, stoppable and
restartable on the same port (the faults 'down' and recover need both). The PBX simulator and
the 1C stand-in share it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import uvicorn


class LoopbackServer:
    """One uvicorn server in a background thread; `port` 0 takes a free one and keeps it."""

    def __init__(self, app: Any, host: str, port: int, name: str) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.name = name
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def serve(self) -> None:
        """Start serving; returns once connections are accepted."""
        # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are
        # TCP; without it every answer waits ~40 ms for a delayed ACK (Nagle).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]  # port 0: keep the one the OS chose, also for restarts
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off")
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=self.name, daemon=True
        )
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise RuntimeError(f"{self.name} did not start")
            time.sleep(0.01)
        self._server, self._thread, self._sock = server, thread, sock

    def shutdown(self) -> None:
        """Stop serving (and listening); `serve` starts again on the same port."""
        server, thread, sock = self._server, self._thread, self._sock
        self._server = self._thread = self._sock = None
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(timeout=10)
        if sock is not None:
            sock.close()


class StandIn(Protocol):
    def start(self) -> str: ...
    def stop(self) -> None: ...


def serve_forever(stand_in: StandIn, ready: Callable[[str], None]) -> None:
    """Serve a stand-in until SIGINT or SIGTERM (the `simulator` commands); `ready` gets its
    URL once it listens."""
    import signal

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        ready(stand_in.start())
        while not stop.wait(0.5):
            pass
    finally:
        stand_in.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
