"""The daemon keeps its PBX subscriptions alive by itself: end to end with the simulator."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from beeline_missed.simulator import xsi_build
from beeline_missed.simulator.pbx import Simulator
from tests.support.daemon import Daemon, wait_for

PATTERN = "201"
TARGET = "9001112201@ip.beeline.ru"
T0 = 1795766400000


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = Simulator(max_expires=4)
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def daemon(home: Path, sim: Simulator) -> Iterator[Daemon]:
    # Renew at half the granted life, so a 4 s grant is renewed 2 s before it ends.
    (home / "config.toml").write_text("renew_fraction = 0.5\ncheck_interval = 1\n")
    proc = Daemon(home, api_url=sim.base_url, token=sim.token)
    subscribed = proc.cli("subscribe", "--pattern", PATTERN, "--expires", "3600", "--json")
    assert subscribed.returncode == 0, subscribed.stderr
    (row,) = json.loads(subscribed.stdout)
    assert row["expires"] == 4  # the PBX granted less than asked, and we kept what it granted
    proc.start()
    yield proc
    proc.stop()


def live_for_pattern(sim: Simulator) -> list[str]:
    return [s.id for s in sim.live_subscriptions() if s.pattern == PATTERN]


def test_renewal_with_a_short_granted_expiry_leaves_no_gap(daemon: Daemon, sim: Simulator) -> None:
    seen: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.05):
            seen.append(len(live_for_pattern(sim)))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        ids = set()
        # Three grants of 4 s in a row: each one replaced before it ended.
        wait_for(lambda: ids.update(live_for_pattern(sim)) or len(ids) >= 4, timeout=30)
    finally:
        stop.set()
        watcher.join()
    assert seen and min(seen) >= 1, "a moment without a live subscription"
    assert max(seen) <= 2, "old subscriptions were not deleted"
    status = json.loads(daemon.cli("status", "--json").stdout)
    states = [s["state"] for s in (status["subscriptions"] if isinstance(status, dict) else status)]
    assert "active" in states
    # Events still reach the daemon through the renewed subscription.
    sim.play(xsi_build.incoming_call([TARGET], "+79161234567", T0))
    (call,) = wait_for(daemon.calls)
    assert call["phone"] == "+79161234567"


def test_termination_event_resubscribes_at_once(home: Path) -> None:
    with Simulator() as sim:
        proc = Daemon(home, api_url=sim.base_url, token=sim.token)
        assert proc.cli("subscribe", "--pattern", PATTERN).returncode == 0
        proc.start()
        try:
            (first,) = live_for_pattern(sim)
            sim.terminate(first)  # posts SubscriptionTerminatedEvent to the daemon
            (second,) = wait_for(lambda: live_for_pattern(sim), timeout=15)
            assert second != first
            sim.play(xsi_build.incoming_call([TARGET], "+79161234567", T0))
            assert len(wait_for(proc.calls)) == 1
        finally:
            proc.stop()


def test_subscription_the_pbx_forgot_is_replaced_by_the_check(home: Path) -> None:
    (home / "config.toml").write_text("check_interval = 1\n")
    with Simulator() as sim:
        proc = Daemon(home, api_url=sim.base_url, token=sim.token)
        assert proc.cli("subscribe", "--pattern", PATTERN).returncode == 0
        proc.start()
        try:
            (first,) = live_for_pattern(sim)
            sim.terminate(first, notify=False)  # gone without a word
            (second,) = wait_for(lambda: live_for_pattern(sim), timeout=15)
            assert second != first
        finally:
            proc.stop()
