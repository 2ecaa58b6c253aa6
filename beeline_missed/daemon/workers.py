"""The daemon's threads: the inbox processor, the subscription keeper, the statistics
catch-up, notifications, escalation and the 1C worker, each with its own loop and backoff."""

from __future__ import annotations

import contextlib
import logging
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from beeline_missed.config import Settings
from beeline_missed.daemon.processing import Processor
from beeline_missed.daemon.processing import targets_from_settings as processing_targets
from beeline_missed.daemon.register import DaemonRegister
from beeline_missed.store import Register, leases

log = logging.getLogger("beeline_missed.daemon")


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
    # Threads that ended on an uncaught exception: name -> the error. Every loop catches its
    # own errors, so this is a bug (or a failure before the loop): /healthz says so.
    died: dict[str, str] = field(default_factory=dict)

    def problem(self) -> str | None:
        """Why the daemon is not whole, for /healthz: a worker thread that died."""
        if not self.died:
            return None
        # The error stays in the log: /healthz answers anyone.
        name = next(iter(dict(self.died)))
        return f"the daemon's {name} thread stopped (its error is in the log); restart the daemon"

    def _hear_deaths(self) -> None:
        """Record a worker thread's uncaught exception (Python's threading.excepthook, which
        would only print it to stderr) and log it as an error."""
        previous = threading.excepthook

        def record(args: threading.ExceptHookArgs) -> None:
            thread = args.thread
            if thread is None or thread not in self.threads or args.exc_type is SystemExit:
                previous(args)
                return
            error = f"{args.exc_type.__name__}: {args.exc_value}"
            self.died[thread.name] = error
            log.error(
                "the %s thread stopped: %s; /healthz answers 503 until the daemon is restarted",
                thread.name,
                error,
                exc_info=(args.exc_type, args.exc_value, args.exc_traceback),  # type: ignore[arg-type]
            )

        threading.excepthook = record

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
        # 1C:Альфа-Авто: the clients directory synced in its own thread (onec/worker.py).
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
        self._hear_deaths()
        for thread in self.threads:
            thread.start()
        if self.notifier is not None:
            self.threads.append(self.notifier.start())
        if self.settings.escalate_after > 0:
            # Its own thread: the hook and the processor never wait for a manager's channel.
            if channels:
                from beeline_missed.daemon.escalator import Escalator

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
        lease = leases.Lease(register, "processor")  # several daemons: one decides
        try:
            while True:
                try:
                    if not lease.held():
                        self.drained.set()  # the holder drains the shared inbox
                        self.stop.wait(tick)
                        if self.stop.is_set():
                            return
                        continue
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
                except Exception as exc:
                    if register.engine == "postgresql" and isinstance(
                        exc, sqlite3.OperationalError
                    ):
                        # The database server unreachable (restarting, network): one line; the
                        # connection is opened again on the next try (engine.PgConnection).
                        log.error("processing failed (retrying): %s", exc)
                    else:
                        log.exception("processing failed; retrying")
                    self.stop.wait(backoff.failed())
                if self.stop.is_set():
                    if lease.held():
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
        lease = leases.Lease(register, "keeper")  # several daemons: one keeps them
        try:
            while not self.stop.is_set():
                try:
                    if not lease.held():
                        self.stop.wait(leases.RETRY_SECONDS)
                        continue
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
                    with contextlib.suppress(sqlite3.Error):  # the register may be down too
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
        lease = leases.Lease(register, "reconcile")  # several daemons: one catches up
        try:
            while not self.stop.is_set():
                try:
                    if not lease.held():
                        self.stop.wait(leases.RETRY_SECONDS)
                        continue
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
                    with contextlib.suppress(sqlite3.Error):  # the register may be down too
                        register.meta.set(reconcile.META_ERROR, str(exc))
                self.stop.wait(wait)
        finally:
            client.close()
            register.close()
