"""The client's cars and open repair orders on the card (terminal, `--json` and the panel),
asked of the 1C stand-in over real HTTP with a short timeout; «Записаться» in the panel."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static
from typer.testing import CliRunner

from beeline_missed import config
from beeline_missed.cli import app
from beeline_missed.onec import sync as onec_sync
from beeline_missed.onec.client import OnecClient
from beeline_missed.panel.card_screen import CardScreen
from beeline_missed.simulator.onec import CARS, CLIENTS, ORDERS, OnecSimulator, make_client
from beeline_missed.store import Register
from tests.support import clock
from tests.support.panel_data import make_app

runner = CliRunner()
PHONE = "+79161234567"


def order(client: dict[str, Any], number: str, state: str, day: str) -> dict[str, Any]:
    return {
        "Ref_Key": str(uuid.uuid4()),
        "DataVersion": "x",
        "DeletionMark": False,
        "Number": number,
        "Date": f"{day}T09:30:00",
        "Posted": True,
        "Заказчик_Key": client["Ref_Key"],
        "Автомобиль_Key": "",
        "Состояние": state,
        "Комментарий": "",
    }


def car(owner: dict[str, Any], name: str, plate: str) -> dict[str, Any]:
    return {
        "Ref_Key": str(uuid.uuid4()),
        "DataVersion": "x",
        "DeletionMark": False,
        "Code": "1",
        "Description": name,
        "VIN": "",
        "ГосНомер": plate,
        "Владелец_Key": owner["Ref_Key"],
    }


@pytest.fixture
def workshop(onec_env: OnecSimulator, register: Register, home: Path) -> int:
    """Иванов (synced) with a car, an open and a closed order; another client's car and
    order; and a missed call from Иванов. Returns the call's id."""
    ivanov = make_client("Иванов Иван", ["+7 916 123-45-67"], code="1")
    other = make_client("Петрова", ["+7 903 555-00-11"], code="2")
    onec_env.add(CLIENTS, ivanov, other)
    onec_env.add(CARS, car(ivanov, "Kia Rio", "А123ВС77"), car(other, "Lada Vesta", "В001ОР99"))
    day = clock.today().isoformat()
    onec_env.add(
        ORDERS,
        order(ivanov, "ЗН-000010", "В работе", day),
        order(ivanov, "ЗН-000003", "Закрыт", day),
        order(other, "ЗН-000011", "В работе", day),
    )
    settings = config.load()
    with OnecClient.from_settings(settings) as client:
        onec_sync.sync(register, client, settings)
    from tests.support.factories import add_call

    return add_call(register, phone=PHONE, called_at=clock.stored(clock.yesterday_at(10)))


def test_card_json_shows_the_clients_cars_and_open_orders(workshop: int) -> None:
    result = runner.invoke(app, ["card", str(workshop), "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)["onec"]
    today = clock.today().strftime("%d.%m.%Y")
    assert shown == {
        "cars": ["Kia Rio, А123ВС77"],
        "open_orders": [{"number": "ЗН-000010", "date": today, "state": "В работе"}],
        "error": None,
    }


def test_the_terminal_card_shows_them_before_asking(workshop: int) -> None:
    result = runner.invoke(app, ["card", str(workshop), "--user", "Анна"], input="\n")
    assert "Автомобили: Kia Rio, А123ВС77" in result.stdout
    assert "Заказ-наряд: № ЗН-000010 от" in result.stdout and "В работе" in result.stdout


def test_a_slow_1c_is_one_line_and_the_card_does_not_wait(
    workshop: int, onec_env: OnecSimulator, home: Path
) -> None:
    (home / "config.toml").write_text("onec_card_timeout = 0.3\n", encoding="utf-8")
    onec_env.fail("slow", seconds=5)
    result = runner.invoke(app, ["card", str(workshop), "--json"])
    assert result.exit_code == 0, result.output
    assert "не ответила за 0.3 с" in json.loads(result.stdout)["onec"]["error"]


def test_a_caller_not_in_1c_has_no_1c_lines(onec_env: OnecSimulator, register: Register) -> None:
    from tests.support.factories import add_call

    call_id = add_call(register, phone="+79990000001")
    result = runner.invoke(app, ["card", str(call_id), "--json"])
    assert "onec" not in json.loads(result.stdout)
    assert onec_env.requests == []


# -- the panel ------------------------------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_the_panel_card_shows_1c_and_books_with_the_number(
    workshop: int, onec_env: OnecSimulator, db_path: Path
) -> None:
    panel = make_app()
    async with panel.run_test(size=(110, 40)) as pilot:
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        screen = panel.screen
        assert isinstance(screen, CardScreen)
        for _ in range(200):
            text = str(screen.query_one("#card-onec", Static).render())
            if "Автомобили" in text:
                break
            await pilot.pause(0.05)
        assert "Автомобили: Kia Rio, А123ВС77" in text
        assert "Заказ-наряд: № ЗН-000010" in text
        await pilot.press("ctrl+b")
        await pilot.pause()
        messages = [n.message for n in panel._notifications]
    assert "Заявка на ремонт № ЗР-000001 создана в 1С." in messages
    reg = Register.open(db_path)
    try:
        assert reg.calls.get(workshop).result == "Записался на ремонт, заявка № ЗР-000001"
    finally:
        reg.close()
