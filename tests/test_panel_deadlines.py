"""The panel and callback deadlines, through Pilot: cases coloured by their wait as the panel's
clock moves (without reading the register again), F6 sorts by wait, and the card lists the
callbacks too short to close the case."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from beeline_missed.panel.app import PanelApp
from beeline_missed.panel.missed_calls import MissedCalls
from beeline_missed.store import Register
from tests.support import panel_data

pytestmark = [pytest.mark.anyio, pytest.mark.both_engines]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # Textual runs on asyncio


class Clock:
    """The panel's clock, moved by the test."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment


def app_at(clock: Clock) -> PanelApp:
    return PanelApp(
        panel_data.settings(),
        zone=panel_data.MOSCOW,
        user=panel_data.USER,
        interval=0.05,
        clock=clock,
    )


async def until(pilot: Pilot, condition: object, tries: int = 200) -> None:
    for _ in range(tries):
        if condition():  # type: ignore[operator]
            return
        await pilot.pause(0.05)
    raise AssertionError("the panel did not get there")


def levels(app: PanelApp) -> dict[int, int | None]:
    return {e.call_id: e.level for e in app.query_one(MissedCalls).entries}


def row_style(app: PanelApp, call_id: int) -> str:
    missed = app.query_one(MissedCalls)
    entry = next(e for e in missed.entries if e.call_id == call_id)
    first_cell = missed.table.get_row(entry.key)[0]
    return str(first_cell.style)


async def test_cases_change_colour_as_the_clock_passes_a_deadline(db_path: Path) -> None:
    s1, s2, s3, s4 = panel_data.seed(db_path)
    clock = Clock(datetime(2026, 11, 27, 9, 50, tzinfo=UTC))  # s-4 came at 09:40
    app = app_at(clock)
    async with app.run_test() as pilot:
        await until(pilot, lambda: len(levels(app)) == 4)
        assert levels(app) == {s4: 0, s3: 2, s2: 2, s1: 2}
        assert row_style(app, s4) == "green" and row_style(app, s3) == "bold red"
        loads = app.loads
        clock.moment = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)  # 20 minutes: past 15
        await until(pilot, lambda: levels(app)[s4] == 1)
        assert row_style(app, s4) == "yellow"
        assert app.loads == loads  # judged again in memory, the register not read


async def test_f6_sorts_by_wait_and_back(db_path: Path) -> None:
    s1, s2, s3, s4 = panel_data.seed(db_path)
    app = panel_data.make_app()
    async with app.run_test() as pilot:
        await until(pilot, lambda: len(levels(app)) == 4)
        order = lambda: [e.call_id for e in app.query_one(MissedCalls).entries]  # noqa: E731
        assert order() == [s4, s3, s2, s1]
        await pilot.press("f6")
        await until(pilot, lambda: order() == [s1, s2, s3, s4])
        await pilot.press("f6")
        await until(pilot, lambda: order() == [s4, s3, s2, s1])


async def test_the_card_shows_callbacks_too_short_to_close(db_path: Path) -> None:
    ids = panel_data.seed(db_path)
    reg = Register.open(db_path)
    try:
        tried = (("x1", "2026-11-27T10:05:00Z", 4), ("x2", "2026-11-27T11:00:00Z", 2))
        for session, at, talk in tried:
            reg.attempts.add(
                ids[-1], session_key=session, direction="outgoing", attempted_at=at,
                talk_seconds=talk, who="Петров",
            )  # fmt: skip
    finally:
        reg.close()
    app = panel_data.make_app()
    async with app.run_test() as pilot:
        await until(pilot, lambda: len(levels(app)) == 4)
        await pilot.press("enter")
        await until(pilot, lambda: app.screen.query("#card-tried"))
        tried = app.screen.query_one("#card-tried", Static)
        assert str(tried.render()) == (
            "Перезванивали 27.11 14:00, 2 с — не дозвонились (Петров) (всего: 2)"
        )
