"""Snapshots of the panel's main screens (pytest-textual-snapshot).

Stable by construction: a fixed register (tests/support/panel_data.py), a fixed terminal size, the
panel's clock fixed, TZ=Europe/Moscow from conftest, and no clock-dependent text on screen.
Update them on purpose with `make snapshots` and look at the SVGs before committing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Select, TextArea

from beeline_missed.store import Register
from beeline_missed.store.rows import Subscription
from tests.support.panel_data import make_app, seed

SIZE = (110, 34)


@pytest.fixture
def seeded(db_path: Path) -> list[int]:
    ids = seed(db_path)
    reg = Register.open(db_path)
    reg.calls.save(
        ids[0], 1, status="called_back", result="Записан на ремонт", user="Игорь Петров",
        handled_at="2026-11-27T06:35:00Z",
    )  # fmt: skip
    reg.subscriptions.insert(
        Subscription(
            id="7c1e9f0a-2b3d-4e5f-8a9b-0c1d2e3f4a5b",
            pattern="9001112201@ip.beeline.ru",
            subscription_type="BASIC_CALL",
            url="https://shop.example.ru/beeline/hook/secret",
            expires=3600,
            requested=3600,
            created_at="2026-11-27T11:30:00Z",
            expires_at="2026-11-27T12:30:00Z",
            last_checked_at="2026-11-27T11:30:00Z",
        )
    )
    reg.meta.set("last_event_at", "2026-11-27T11:58:00Z")
    reg.close()
    return ids


async def settle(pilot: Pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def open_the_card(pilot: Pilot) -> None:
    """Enter on the first call; the result's cursor held steady (a blinking one is caught on
    or off by chance, which made these snapshots flaky)."""
    await settle(pilot)
    await pilot.press("enter")
    await settle(pilot)
    for area in pilot.app.screen.query(TextArea):
        area.cursor_blink = False
    await settle(pilot)


def test_missed_calls(snap_compare, seeded: list[int]) -> None:
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=settle)


def test_missed_calls_light_theme(snap_compare, seeded: list[int]) -> None:
    async def light(pilot: Pilot) -> None:
        pilot.app.theme = "textual-light"
        await settle(pilot)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=light)


def test_card(snap_compare, seeded: list[int]) -> None:
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=open_the_card)


def test_card_error(snap_compare, seeded: list[int]) -> None:
    async def save_without_result(pilot: Pilot) -> None:
        await open_the_card(pilot)
        pilot.app.screen.query_one("#card-status", Select).value = "called_back"
        await pilot.press("ctrl+s")  # a click would leave the button's hover and flash
        await settle(pilot)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=save_without_result)


def test_reports(snap_compare, seeded: list[int]) -> None:
    async def reports(pilot: Pilot) -> None:
        await settle(pilot)
        await pilot.press("f2")
        await settle(pilot)
        pane = pilot.app.query_one("#reports-pane")
        pane.query_one("#report-group-2", Select).value = "status"
        await settle(pilot)
        pilot.app.query_one("#report-table").focus()
        await settle(pilot)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=reports)


def test_subscriptions(snap_compare, seeded: list[int]) -> None:
    async def subscriptions(pilot: Pilot) -> None:
        await settle(pilot)
        await pilot.press("f3")
        await settle(pilot)

    assert snap_compare(make_app(interval=60), terminal_size=SIZE, run_before=subscriptions)


def test_card_claimed(snap_compare, seeded: list[int]) -> None:
    async def claim(pilot: Pilot) -> None:
        await open_the_card(pilot)
        await pilot.press("ctrl+r")  # «Взять в работу»
        await settle(pilot)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=claim)
