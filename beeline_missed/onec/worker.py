"""The daemon's 1C thread: syncs the clients directory on start and every
`onec_sync_interval`, and retries bookings 1C could not take every `onec_booking_retry`.
1C down, slow or refusing is logged and kept for `status`, retried with a growing pause; it
never touches the hook or the other threads."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from beeline_missed.onec import sync as onec_sync
from beeline_missed.onec.client import OnecClient

if TYPE_CHECKING:
    from beeline_missed.config import Settings
    from beeline_missed.store import Register

log = logging.getLogger("beeline_missed.onec")
FIRST_RETRY = 10.0  # seconds after a failed sync; doubles up to onec_sync_interval


def configured(settings: Settings) -> bool:
    return bool(settings.onec_url and settings.onec_user)


def run(
    settings: Settings,
    open_register: Callable[[], Register],
    stop: threading.Event,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Sync, and retry waiting bookings, until `stop` is set."""
    from beeline_missed.onec import booking as onec_booking

    interval = float(settings.onec_sync_interval)
    register = open_register()
    client = OnecClient.from_settings(settings)
    failures = 0
    next_sync = next_retry = clock()
    try:
        while not stop.is_set():
            if clock() >= next_retry:
                next_retry = clock() + float(settings.onec_booking_retry)
                try:
                    for made in onec_booking.retry_waiting(register, client, settings):
                        call, number = made["call_id"], made["number"]
                        log.info("booking for call %s created in 1C: № %s", call, number)
                except Exception as exc:  # the register busy, 1C odd: the next round tries again
                    log.warning("retrying bookings failed: %s", client.scrub(str(exc)))
            if clock() >= next_sync:
                try:
                    counts, _ = onec_sync.sync(register, client, settings)
                    log.info(
                        "1C sync: %s clients (added %s, updated %s, removed %s, skipped %s)",
                        counts["total"],
                        counts["added"],
                        counts["updated"],
                        counts["removed"],
                        counts["skipped"],
                    )
                    failures = 0
                    next_sync = clock() + interval
                except Exception as exc:  # 1C down, slow, refusing: try again later
                    failures += 1
                    wait = min(interval, FIRST_RETRY * 2 ** (failures - 1))
                    reason = client.scrub(str(exc))
                    log.warning("1C sync failed (retry in %.0f s): %s", wait, reason)
                    next_sync = clock() + wait
            stop.wait(1.0)
    finally:
        client.close()
        register.close()
