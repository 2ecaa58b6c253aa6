"""The card's «Позвонить» and «Взять в работу» in the panel, driven by Textual's Pilot over a real
register, with the PBX simulator taking the click-to-call over real HTTP."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Button, Static

from beeline_missed import timefmt
from beeline_missed.panel.app import PanelApp
from beeline_missed.panel.card_screen import CardScreen
from beeline_missed.panel.missed_calls import MissedCalls
from beeline_missed.simulator.pbx import Simulator
from beeline_missed.store import Register
from tests.support.panel_data import NOW, USER, make_app, seed

SIZE = (110, 40)
pytestmark = [pytest.mark.anyio, pytest.mark.both_engines]
STAFF = """\
[staff.anna]
name = "Анна Смирнова"
abonent = "201"

[staff.petrov]
name = "Петров"
abonent = "202"
"""
NEWEST = "+79035550011"  # the first line of the list (panel_data)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def call_ids(db_path: Path, home: Path) -> list[int]:
    (home / "config.toml").write_text(STAFF, encoding="utf-8")
    return seed(db_path)


async def until(pilot: Pilot, condition: Callable[[], object], tries: int = 400) -> None:
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("the panel did not get there")


def card(app: PanelApp) -> CardScreen:
    assert isinstance(app.screen, CardScreen), f"expected the card, got {app.screen!r}"
    return app.screen


def text(screen: CardScreen, selector: str) -> str:
    widget = screen.query_one(selector, Static)
    return "" if widget.has_class("hidden") else str(widget.render())


def claims(db_path: Path) -> dict[str, tuple[str, str]]:
    reg = Register.open(db_path)
    try:
        return {k: (v.claimed_by, v.claimed_at) for k, v in reg.claims.rows().items()}
    finally:
        reg.close()


def claim_by(db_path: Path, phone: str, who: str, minutes_before_now: int) -> None:
    at = timefmt.to_stored(NOW - timedelta(minutes=minutes_before_now))
    reg = Register.open(db_path)
    try:
        reg.claims.claim(phone, lambda current: (who, at))
    finally:
        reg.close()


async def test_claim_button_marks_the_case_and_the_list_shows_it(
    db_path: Path, call_ids: list[int]
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter")
        screen = card(app)
        assert text(screen, "#card-claim") == "—"  # opening the card claims nothing
        assert claims(db_path) == {}

        await pilot.click("#claim")
        await pilot.pause()

        assert claims(db_path) == {NEWEST: (USER, timefmt.to_stored(NOW))}
        assert text(screen, "#card-claim") == "перезванивает Анна Смирнова (0 с)"
        assert text(screen, "#card-info").startswith("Взято в работу")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, CardScreen))
        first = app.query_one(MissedCalls).entries[0]
        assert first.cells[-1] == "перезванивает Анна Смирнова (0 с)"


async def test_someone_elses_claim_is_named_then_taken_over_on_purpose(
    db_path: Path, call_ids: list[int]
) -> None:
    claim_by(db_path, NEWEST, "petrov", 5)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        first = app.query_one(MissedCalls).entries[0]
        assert first.cells[-1] == "перезванивает Петров (5 мин)"
        await pilot.press("enter")
        screen = card(app)
        assert text(screen, "#card-claim") == "перезванивает Петров (5 мин)"

        await pilot.press("ctrl+r")
        await pilot.pause()

        assert text(screen, "#card-error") == (
            "Этого клиента уже перезванивает Петров с 14:55 (5 мин). "
            "Чтобы взять звонок себе, нажмите «Забрать себе»."
        )
        assert str(screen.query_one("#claim", Button).label) == "Забрать себе"
        assert claims(db_path)[NEWEST][0] == "petrov"

        await pilot.click("#claim")
        await pilot.pause()
        assert claims(db_path)[NEWEST][0] == USER
        assert "вместо Петров" in text(screen, "#card-info")
        assert str(screen.query_one("#claim", Button).label) == "Взять в работу"


async def test_an_expired_claim_is_taken_without_asking(db_path: Path, call_ids: list[int]) -> None:
    claim_by(db_path, NEWEST, "petrov", 31)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        assert app.query_one(MissedCalls).entries[0].cells[-1] == ""  # lapsed: nobody's
        await pilot.press("enter")
        await pilot.click("#claim")
        await pilot.pause()
        assert claims(db_path)[NEWEST][0] == USER


async def test_saving_the_card_releases_the_claim(db_path: Path, call_ids: list[int]) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter")
        await pilot.click("#claim")
        await pilot.pause()
        assert NEWEST in claims(db_path)
        screen = card(app)
        screen.query_one("#card-status").value = "called_back"
        screen.query_one("#card-result").text = "Записан на ремонт"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, CardScreen))
    assert claims(db_path) == {}
    reg = Register.open(db_path)
    try:
        (saved,) = [r for r in reg.calls.rows(include_handled=True) if r.phone == NEWEST]
    finally:
        reg.close()
    assert saved.user == "Анна Смирнова"  # the staff name, as auto-close writes it


async def test_call_button_rings_the_staff_abonent_and_says_so(
    db_path: Path, call_ids: list[int], sim: Simulator
) -> None:
    app = make_app(api_url=sim.base_url, api_token=sim.token)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter")
        screen = card(app)

        await pilot.press("ctrl+t")
        await until(pilot, lambda: "Звоним" in text(screen, "#card-info"))

        assert sim.click_calls == [
            {"abonent": "9001112201@ip.beeline.ru", "pattern": "201", "phoneNumber": NEWEST}
        ]
        assert "Звоним: возьмите трубку" in text(screen, "#card-info")
        assert isinstance(app.screen, CardScreen)  # the card stays open
        assert claims(db_path)[NEWEST][0] == USER  # calling takes the case too
        assert text(screen, "#card-claim") == "перезванивает Анна Смирнова (0 с)"
        assert not screen.query_one("#call", Button).disabled


async def test_call_errors_are_shown_in_the_card_and_ring_nobody(
    db_path: Path, call_ids: list[int], sim: Simulator, home: Path
) -> None:
    (home / "config.toml").write_text("", encoding="utf-8")  # no [staff] table for the user
    app = make_app(api_url=sim.base_url, api_token=sim.token)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter")
        screen = card(app)
        await pilot.click("#call")
        await until(pilot, lambda: text(screen, "#card-error"))
        assert text(screen, "#card-error").startswith(
            "Для пользователя «Анна Смирнова» нет таблицы [staff.Анна Смирнова]"
        )
        assert sim.click_calls == []
        assert claims(db_path) == {}
        assert not screen.query_one("#call", Button).disabled


async def test_the_card_names_the_line_by_staff_names(db_path: Path, call_ids: list[int]) -> None:
    from beeline_missed.simulator.pbx import DEFAULT_ABONENTS

    reg = Register.open(db_path)
    reg.abonents.replace(DEFAULT_ABONENTS)  # as the daemon caches them
    reg.close()
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter")
        # [staff.anna] names abonent 201 (the PBX's 9001112201): her name, not the list's.
        assert text(card(app), "#card-line") == "Анна Смирнова (9001112201)"
        await pilot.press("escape")
        await pilot.press("down", "down", "enter")  # the hidden caller: a hunt group
        assert text(card(app), "#card-line") == ("Анна Смирнова (9001112201), Петров (9001112202)")
