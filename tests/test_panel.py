"""The «Автосервис» panel driven by Textual's Pilot over a real SQLite register.

Every card rule is checked through the panel's own widgets (keys and clicks), and the result
is checked in the register through a second connection, as another process would see it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Button, DataTable, Select, Static, TabbedContent, TextArea

from beeline_missed.cases import journal
from beeline_missed.panel import call_list
from beeline_missed.panel.app import PanelApp
from beeline_missed.panel.card_screen import CardScreen
from beeline_missed.panel.missed_calls import MissedCalls
from beeline_missed.rules import card
from beeline_missed.simulator.pbx import Simulator
from beeline_missed.store import Call, Register
from beeline_missed.store.rows import Subscription
from tests.support import factories, panel_data
from tests.support.panel_data import USER, add_call, make_app, seed

SIZE = (110, 34)
pytestmark = [pytest.mark.anyio, pytest.mark.both_engines]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # Textual runs on asyncio


@pytest.fixture
def call_ids(db_path: Path) -> list[int]:
    return seed(db_path)


async def until(pilot: Pilot, condition: Callable[[], object], tries: int = 200) -> None:
    """Let the app run until `condition` holds (the poll ticks every 0.05 s in tests)."""
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("the panel did not get there")


def listed(app: PanelApp) -> list[int]:
    return [e.call_id for e in app.query_one(MissedCalls).entries]


def selected(app: PanelApp) -> int | None:
    entry = app.query_one(MissedCalls).selected
    return entry.call_id if entry else None


def card_screen(app: PanelApp) -> CardScreen:
    assert isinstance(app.screen, CardScreen), f"expected the card, got {app.screen!r}"
    return app.screen


def stored(db_path: Path, call_id: int) -> Call:
    reg = Register.open(db_path)
    try:
        return reg.calls.get(call_id)
    finally:
        reg.close()


async def choose_status(pilot: Pilot, label: str) -> None:
    """Pick a status with the keyboard, as staff do: focus the selector, open it, choose."""
    screen = card_screen(pilot.app)
    target = {card.STATUS_LABELS[s]: s for s in card.STATUS_LABELS}[label]
    screen.query_one("#card-status", Select).focus()
    await pilot.press("enter")
    await pilot.pause()
    if screen.status != target:
        await pilot.press("down" if target == card.CALLED_BACK else "up")
    await pilot.press("enter")
    await pilot.pause()
    assert screen.status == target


async def type_result(pilot: Pilot, text: str) -> None:
    area = card_screen(pilot.app).query_one("#card-result", TextArea)
    area.focus()
    await pilot.press(*text)


# -- the list -----------------------------------------------------------------------------


async def test_list_newest_first_only_missed_with_clients(db_path: Path, call_ids: list[int]):
    reg = Register.open(db_path)
    reg.calls.save(
        call_ids[1], 1, status="called_back", result="Дозвонились", user="Игорь",
        handled_at="2026-11-27T10:00:00Z",
    )  # fmt: skip
    reg.close()
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert listed(app) == [call_ids[3], call_ids[2], call_ids[0]]
        table = app.query_one("#calls-table", DataTable)
        assert [str(c.label) for c in table.ordered_columns] == [
            "Номер",
            "Клиент",
            "Дата и время",
            "Попыток",
            "Линия",
            "В работе",
        ]
        first = [str(cell) for cell in table.get_row_at(0)]
        assert first == [
            "+7 903 555-00-11",
            "Петрова Мария Сергеевна",
            "27.11.2026 12:40",
            "1",
            "9001112201",
            "",  # nobody is calling them back
        ]
        assert app.query_one(TabbedContent).active == "calls"
        assert str(app.query_one("#calls-summary", Static).render()) == "Пропущенных звонков: 3"


async def test_new_call_appears_at_top_and_selection_is_kept(
    db_path: Path, call_ids: list[int]
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("down", "down")
        assert selected(app) == call_ids[1]
        # The daemon (another connection) registers a call while the panel is open.
        other = Register.open(db_path)
        new_id = add_call(other, "s-new", "+79157008090", "2026-11-27T09:55:00Z")
        other.close()
        await until(pilot, lambda: listed(app)[0] == new_id)
        assert selected(app) == call_ids[1]
        assert "новых с открытия панели: 1" in str(app.query_one("#calls-summary", Static).render())
        assert any("Новый пропущенный звонок" in n.message for n in app._notifications)


async def test_idle_poll_reads_nothing(db_path: Path, call_ids: list[int]) -> None:
    app = make_app(interval=60)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        loads = app.loads
        assert app.refresh_data() is False
        assert app.refresh_data() is False
        assert app.loads == loads
        other = Register.open(db_path)
        add_call(other, "s-new", None, "2026-11-27T09:58:00Z")
        other.close()
        # SQLite's data_version moves at once; PostgreSQL's NOTIFY reaches the panel's
        # listening connection a moment after the commit, so give it a few ticks.
        await until(pilot, app.refresh_data)
        assert app.loads == loads + 1
        assert app.refresh_data() is False


async def test_handled_elsewhere_leaves_the_list(db_path: Path, call_ids: list[int]) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        other = Register.open(db_path)
        other.calls.save(
            call_ids[3], 1, status="called_back", result="Записан", user="Игорь",
            handled_at="2026-11-27T10:00:00Z",
        )  # fmt: skip
        other.close()
        await until(pilot, lambda: call_ids[3] not in listed(app))
        assert selected(app) == call_ids[2]  # the cursor stays at the same height


async def test_a_capped_list_says_how_many_are_open(db_path: Path, call_ids: list[int]):
    app = PanelApp(panel_data.settings(), zone=panel_data.MOSCOW, user=USER, interval=0.05, limit=2)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert listed(app) == [call_ids[3], call_ids[2]]
        summary = str(app.query_one("#calls-summary", Static).render())
        assert summary == "Пропущенных звонков: 4 · показаны последние 2"


async def test_empty_register_says_so(db_path: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert listed(app) == []
        assert app.query_one("#calls-table").has_class("hidden")
        assert not app.query_one("#calls-empty").has_class("hidden")


# -- opening the card ---------------------------------------------------------------------


async def test_enter_opens_the_card_of_the_selected_call(
    db_path: Path, call_ids: list[int]
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("down", "enter")
        screen = card_screen(app)
        assert screen.opened.id == call_ids[2]
        assert str(screen.query_one("#card-number", Static).render()) == "+7 926 777-11-22"
        assert str(screen.query_one("#card-when", Static).render()) == "27.11.2026 11:20"
        assert screen.status == card.MISSED
        assert str(screen.query_one("#card-user", Static).render()) == ""  # empty until set


async def test_double_click_opens_the_card_single_click_only_selects(
    db_path: Path, call_ids: list[int]
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.query_one("#calls-table", DataTable)
        # A single click on the highlighted row (the first, at y = 1 under the header)...
        await pilot.click(table, offset=(4, 1))
        await pilot.pause()
        assert not isinstance(app.screen, CardScreen)
        # ...or on another row only selects.
        await pilot.click(table, offset=(4, 2))
        await pilot.pause()
        assert not isinstance(app.screen, CardScreen)
        assert selected(app) == call_ids[2]
        # A double click opens the card of the row clicked.
        await pilot.double_click(table, offset=(4, 3))
        await pilot.pause()
        screen = card_screen(app)
        assert screen.opened.id == call_ids[1]
        assert str(screen.query_one("#card-number", Static).render()) == "номер скрыт"


async def test_card_shows_client_name_with_number(db_path: Path, call_ids: list[int]) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("enter")
        number = str(card_screen(app).query_one("#card-number", Static).render())
        assert number == "+7 903 555-00-11 — Петрова Мария Сергеевна"


async def test_card_shows_where_the_call_was_lost_and_where_it_went(db_path: Path) -> None:
    reg = Register.open(db_path)
    try:
        factories.add_call(
            reg, "fwd", "+79161234567", "2026-11-27T09:00:00Z", "9001112204",
            lost_at="forwarded", forwarded_to="+79037654321",
        )  # fmt: skip
    finally:
        reg.close()
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("enter")
        screen = card_screen(app)
        lost = screen.query_one("#card-lost-at", Static)
        forwarded = screen.query_one("#card-forwarded", Static)
        assert str(lost.render()) == "переадресован"
        assert str(forwarded.render()) == "+7 903 765-43-21"
        # Each field keeps its own line; the status selector below them still has its three.
        assert (lost.region.height, forwarded.region.height) == (1, 1)
        assert forwarded.region.y > lost.region.y
        assert screen.query_one("#card-status").region.height == 3


async def test_card_without_a_known_place_shows_no_such_lines(
    db_path: Path, call_ids: list[int]
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("enter")
        assert not card_screen(app).query("#card-lost-at, #card-forwarded")


# -- the card's rules ---------------------------------------------------------------------


async def test_closing_with_status_missed_discards_changes(
    db_path: Path, call_ids: list[int]
) -> None:
    before = stored(db_path, call_ids[3])
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("enter")
        await type_result(pilot, "не дозвонилась")
        await pilot.click("#close")
        await pilot.pause()
        assert not isinstance(app.screen, CardScreen)
        assert listed(app)[0] == call_ids[3]
        assert any(card.NOT_SAVED_MISSED in n.message for n in app._notifications)
    assert stored(db_path, call_ids[3]) == before


async def test_escape_closes_like_the_close_button(db_path: Path, call_ids: list[int]) -> None:
    before = stored(db_path, call_ids[3])
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("enter")
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, CardScreen)
    assert stored(db_path, call_ids[3]) == before


async def test_saving_called_back_without_result_shows_the_error_and_keeps_the_card(
    db_path: Path, call_ids: list[int]
) -> None:
    before = stored(db_path, call_ids[3])
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("enter")
        await choose_status(pilot, "Перезвонили")
        await pilot.click("#save")
        await pilot.pause()
        screen = card_screen(app)
        error = screen.query_one("#card-error", Static)
        assert not error.has_class("hidden")
        assert str(error.render()) == card.NEED_RESULT
        # Closing with «Перезвонили» and no result is refused the same way.
        await pilot.press("escape")
        await pilot.pause()
        assert card_screen(app) is screen
    assert stored(db_path, call_ids[3]) == before


async def test_saving_called_back_with_result_saves_and_the_row_leaves(
    db_path: Path, call_ids: list[int]
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("enter")
        await choose_status(pilot, "Перезвонили")
        await type_result(pilot, "Перезвонила, приедет завтра")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not isinstance(app.screen, CardScreen)
        assert call_ids[3] not in listed(app)
        assert selected(app) == call_ids[2]
    row = stored(db_path, call_ids[3])
    assert (row.status, row.result, row.user) == (
        "called_back",
        "Перезвонила, приедет завтра",
        USER,
    )
    assert row.version == 2


async def test_saving_with_status_missed_is_refused_in_the_card(
    db_path: Path, call_ids: list[int]
) -> None:
    before = stored(db_path, call_ids[3])
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("enter")
        await type_result(pilot, "занято")
        await pilot.click("#save")
        await pilot.pause()
        error = card_screen(app).query_one("#card-error", Static)
        assert str(error.render()) == card.NOT_SAVED_MISSED
    assert stored(db_path, call_ids[3]) == before


async def test_book_saves_closes_and_the_row_leaves(db_path: Path, call_ids: list[int]) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("down", "enter")
        await type_result(pilot, "Стук в подвеске")
        await pilot.click("#book")
        await pilot.pause()
        assert not isinstance(app.screen, CardScreen)
        assert call_ids[2] not in listed(app)
        messages = [n.message for n in app._notifications]
        assert journal.NOT_CONFIGURED in messages  # says where the booking should be made
    row = stored(db_path, call_ids[2])
    assert row.status == "called_back"
    assert row.result == f"Стук в подвеске\n{card.BOOKED}"
    assert row.user == USER


async def test_book_opens_the_configured_journal(
    db_path: Path, call_ids: list[int], tmp_path: Path
) -> None:
    # A command journal: the panel starts it with the call's number, through journal.py.
    out = tmp_path / "journal.txt"
    script = tmp_path / "journal.sh"
    script.write_text(f'#!/bin/sh\nprintf "%s|%s" "$1" "$2" > {out}\n', encoding="utf-8")
    script.chmod(0o755)
    app = make_app(journal=f"{script} {{phone}} {{client}}")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("enter")
        await pilot.press("ctrl+b")
        await pilot.pause()
        await until(pilot, out.exists)
    await_text = ""
    for _ in range(100):
        await_text = out.read_text(encoding="utf-8")
        if await_text:
            break
    assert await_text == "+79035550011|Петрова Мария Сергеевна"
    assert stored(db_path, call_ids[3]).result == card.BOOKED


async def test_conflict_is_shown_in_the_card(db_path: Path, call_ids: list[int]) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("enter")
        # A colleague saves the same call while this card is open.
        other = Register.open(db_path)
        other.calls.save(
            call_ids[3], 1, status="called_back", result="Я перезвонил", user="Игорь",
            handled_at="2026-11-27T10:00:00Z",
        )  # fmt: skip
        other.close()
        await choose_status(pilot, "Перезвонили")
        await type_result(pilot, "И я тоже")
        await pilot.click("#save")
        await pilot.pause()
        screen = card_screen(app)
        text = str(screen.query_one("#card-error", Static).render())
        assert "уже сохранили (Игорь" in text
        assert "ваши изменения не записаны" in text
    row = stored(db_path, call_ids[3])
    assert (row.result, row.user) == ("Я перезвонил", "Игорь")


async def test_f9_switches_between_dark_and_light(db_path: Path) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.theme == "textual-dark"
        await pilot.press("f9")
        assert app.theme == "textual-light"
        await pilot.press("f9")
        assert app.theme == "textual-dark"


async def test_keys_that_switch_tabs_do_nothing_while_the_card_is_open(
    db_path: Path, call_ids: list[int]
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("enter")
        await pilot.press("f3")
        await pilot.pause()
        assert app.query_one(TabbedContent).active == "calls"
        assert isinstance(app.screen, CardScreen)


# -- reports ------------------------------------------------------------------------------


async def test_reports_tab_builds_filters_and_exports(
    db_path: Path, call_ids: list[int], home: Path
) -> None:
    reg = Register.open(db_path)
    reg.calls.save(
        call_ids[0], 1, status="called_back", result="Записан", user="Игорь",
        handled_at="2026-11-27T06:35:00Z",
    )  # fmt: skip
    reg.close()
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("f2")
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.query_one("#report-table", DataTable)
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        # Grouped by day (the default): one day, then the total. 4 calls, 3 callers (the
        # hidden number is nobody), 1 called back, 3 missed.
        assert rows[0][:5] == ["27.11.2026", "4", "3", "1", "3"]
        assert rows[-1][:5] == ["Итого", "4", "3", "1", "3"]
        assert "за 27.11.2026" in str(app.query_one("#report-title", Static).render())

        # A filter from the register's fields: status = Пропущен.
        pane = app.query_one("#reports-pane")
        pane.query_one("#filter-field", Select).value = "status"
        pane.query_one("#filter-value").value = "Пропущен"
        await pilot.click("#filter-add")
        await app.workers.wait_for_complete()
        await pilot.pause()
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        assert rows[-1][:5] == ["Итого", "3", "2", "0", "3"]
        assert "Статус равно «Пропущен»" in str(pane.query_one("#report-filters").render())

        pane.query_one("#export-format", Select).value = "csv"
        await pilot.click("#report-export")
        await pilot.pause()
    exported = home / "reports" / "report-2026-11-27-2026-11-27.csv"
    text = exported.read_bytes().decode("utf-8-sig")
    lines = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert lines[-1][:2] == ["Итого", "3"]


async def test_reports_tab_bad_dates_are_one_sentence(db_path: Path, call_ids: list[int]):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("f2")
        pane = app.query_one("#reports-pane")
        pane.query_one("#report-period", Select).value = "range"
        await pilot.pause()
        pane.query_one("#report-from").value = "31.02.2026"
        await pilot.click("#report-run")
        await pilot.pause()
        error = pane.query_one("#report-error", Static)
        assert not error.has_class("hidden")
        assert "31.02.2026" in str(error.render())


# -- subscriptions ------------------------------------------------------------------------


async def test_subscriptions_tab_shows_the_register_and_checks_the_pbx_on_demand(
    db_path: Path,
) -> None:
    with Simulator() as sim:
        url = "http://127.0.0.1:9/beeline/hook/3f9c2a7e5b1d4c8a"
        live = sim.subscribe(None, 3600, "BASIC_CALL", url)
        reg = Register.open(db_path)
        for sub_id in (live.id, "gone-at-the-pbx"):
            reg.subscriptions.insert(
                Subscription(
                    id=sub_id,
                    pattern=None,
                    subscription_type="BASIC_CALL",
                    url=url,
                    expires=3600,
                    requested=3600,
                    created_at="2026-11-27T11:30:00Z",
                    expires_at="2026-11-27T12:30:00Z",
                )
            )
        reg.meta.set("last_event_at", "2026-11-27T11:58:00Z")
        reg.close()
        app = make_app(api_url=sim.base_url, api_token=sim.token)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("f3")
            await pilot.pause()
            pane = app.query_one("#subs-pane")
            table = pane.query_one("#subs-table", DataTable)
            rows = {str(table.get_row_at(i)[5]): table.get_row_at(i) for i in range(2)}
            assert [str(c) for c in rows[live.id][1:4]] == [
                "действует",
                "30 мин 00 с",  # the panel's clock is 12:00 UTC
                "27.11.2026 15:30",
            ]
            events = str(pane.query_one("#subs-events", Static).render())
            assert events == "Последнее событие от АТС: 27.11.2026 14:58"
            await pilot.click("#subs-check")
            await app.workers.wait_for_complete()
            await until(pilot, lambda: not pane.query_one("#subs-check", Button).disabled)
            await pilot.pause()
            rows = {str(table.get_row_at(i)[5]): table.get_row_at(i) for i in range(2)}
            assert str(rows[live.id][1]) == "действует"
            assert str(rows["gone-at-the-pbx"][1]) == "нет на АТС"


async def test_subscriptions_check_without_token_is_one_sentence(db_path: Path) -> None:
    app = make_app(interval=60)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("f3")
        reg = Register.open(db_path)
        reg.subscriptions.insert(
            Subscription(
                id="sub-1",
                pattern="9001112201",
                subscription_type="BASIC_CALL",
                url="http://127.0.0.1:9/hook/secretsecret",
                expires=3600,
                created_at="2026-11-27T11:30:00Z",
                expires_at="2026-11-27T12:30:00Z",
            )
        )
        reg.close()
        app.refresh_data()
        await pilot.click("#subs-check")
        await app.workers.wait_for_complete()
        await pilot.pause()
        messages = [n.message for n in app._notifications]
        assert any(m.startswith("No API token") for m in messages)


async def test_subscriptions_tab_shows_the_daemons_upkeep_error(db_path: Path) -> None:
    reg = Register.open(db_path)
    reg.meta.set("keeper_error", "The PBX did not answer within 10 s.")
    reg.close()
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("f3")
        error = app.query_one("#subs-error", Static)
        assert not error.has_class("hidden")
        assert "The PBX did not answer within 10 s." in str(error.render())
        # The daemon succeeds again: the note goes away by itself.
        other = Register.open(db_path)
        other.meta.set("keeper_error", None)
        other.close()
        await until(pilot, lambda: error.has_class("hidden"))


def test_panel_data_times_are_moscow() -> None:
    # The snapshot and flow tests read Moscow times: keep the fixture honest.
    assert panel_data.NOW.astimezone(panel_data.MOSCOW).hour == 15


def test_a_hunt_group_of_2000_shows_two_abonents_and_the_count(db_path: Path) -> None:
    reg = Register.open(db_path)
    try:
        hunt_group = ", ".join(f"90011{i:05d}" for i in range(2000))
        add_call(reg, "hunt", "+74951112233", "2026-11-27T08:30:00Z", line=hunt_group)
        listing = call_list.load(reg, panel_data.MOSCOW)
    finally:
        reg.close()
    assert listing.entries[0].cells[4] == "9001100000, 9001100001 +1998"


def test_panel_command_runs_in_a_terminal_and_quits_with_ctrl_q(
    home: Path, call_ids: list[int]
) -> None:
    """`beeline-missed panel` as a real process on a pseudo-terminal."""
    import os
    import pty
    import select
    import subprocess
    import sys
    import time

    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "110", "LINES": "34"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "beeline_missed", "panel", "--user", USER],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    screen = b""

    def read_until(done: Callable[[], bool], limit: float = 30) -> None:
        nonlocal screen
        stop = time.monotonic() + limit
        while not done() and time.monotonic() < stop:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    screen += os.read(master, 65536)
                except OSError:  # the terminal closed: the process is gone
                    return

    try:
        read_until(lambda: "Петрова Мария Сергеевна".encode() in screen)
        assert "Автосервис".encode() in screen
        assert "Петрова Мария Сергеевна".encode() in screen
        os.write(master, b"\x11")  # Ctrl-Q
        read_until(lambda: proc.poll() is not None)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


async def test_one_line_per_caller_and_the_card_handles_all_their_calls(db_path: Path) -> None:
    reg = Register.open(db_path)
    repeated = [
        add_call(reg, f"r{i}", "+79161112233", f"2026-11-27T0{7 + i}:00:00Z") for i in range(3)
    ]
    other = add_call(reg, "o", "+79035550011", "2026-11-27T08:30:00Z")
    reg.close()
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert listed(app) == [repeated[2], other]
        table = app.query_one("#calls-table", DataTable)
        assert str(table.get_row_at(0)[3]) == "3"
        summary = str(app.query_one("#calls-summary", Static).render())
        assert summary == "Пропущенных звонков: 4 от 2 звонивших"
        await pilot.press("enter")
        attempts = card_screen(app).query_one("#card-attempts", Static)
        assert str(attempts.render()) == "3, первая 27.11.2026 10:00"
        await choose_status(pilot, "Перезвонили")
        await type_result(pilot, "Договорились")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert listed(app) == [other]
    for call_id in repeated:
        assert stored(db_path, call_id).status == "called_back"
    assert stored(db_path, other).status == "missed"
