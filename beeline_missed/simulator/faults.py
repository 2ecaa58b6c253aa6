"""Faults a stand-in (the PBX simulator, the 1C stand-in) can be told to inject by tests and
the demo: a mode for the next requests, or 'down' (stop listening for a while). Both
stand-ins serve on loopback through `LoopbackServer`, and stopping and restarting it is what
'down' and `recover()` do."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from beeline_missed.simulator.loopback import LoopbackServer


@dataclass
class Fault:
    mode: str  # one of the stand-in's MODES
    remaining: int | None = None  # requests still to fail; None: until cleared
    seconds: float = 5.0  # 'slow': answer after this long
    methods: tuple[str, ...] | None = None  # only these HTTP methods; None: all
    status: int = 503  # the PBX's '5xx': the status it answers


class FaultyStandIn:
    """Serving and fault injection, shared by the stand-ins. A subclass sets MODES, `http`,
    `app` and calls `_init_faults()` in its constructor."""

    MODES: tuple[str, ...] = ()
    http: LoopbackServer
    app: Any

    def _init_faults(self) -> None:
        self.fault: Fault | None = None
        self._lock = threading.RLock()  # guards the stand-in's state and the fault
        self._stopping = threading.Event()
        self._restart: threading.Timer | None = None

    def _serve(self) -> None:
        self.http.app = self.app
        self.http.serve()

    def _shutdown(self) -> None:
        self.http.shutdown()

    def _stop_serving(self) -> None:
        """For `stop()`: no restart pending, not serving."""
        self._stopping.set()
        if self._restart is not None:
            self._restart.cancel()
        self._shutdown()

    def _inject(
        self,
        mode: str,
        *,
        count: int | None,
        seconds: float,
        methods: Iterable[str] | None,
        status: int = 503,
    ) -> None:
        if mode not in (*self.MODES, "down"):
            raise ValueError(f"unknown fault mode {mode!r}")
        if mode == "down":
            self._shutdown()
            if seconds > 0:
                self._restart = threading.Timer(seconds, self.recover)
                self._restart.daemon = True
                self._restart.start()
            return
        chosen = tuple(m.upper() for m in methods) if methods else None
        with self._lock:
            self.fault = Fault(mode, count, seconds, chosen, status)

    def recover(self) -> None:
        """Clear any fault; serve again when down."""
        with self._lock:
            self.fault = None
        if not self.http.running and not self._stopping.is_set():
            self._serve()

    def _take_fault(self, method: str) -> Fault | None:
        """The fault that applies to this request, counting it."""
        with self._lock:
            fault = self.fault
            if fault is None or (fault.methods and method not in fault.methods):
                return None
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.fault = None
            return fault
