"""`beeline-missed demo`: a real process running the simulator, the daemon and the live view."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from beeline_missed.panel import call_list
from beeline_missed.panel.app import PanelApp
from beeline_missed.panel.missed_calls import MissedCalls
from beeline_missed.simulator import demo
from beeline_missed.store import Register

MOSCOW = ZoneInfo("Europe/Moscow")


def run_demo(cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 90):
    return subprocess.run(
        [sys.executable, "-m", "beeline_missed", "demo", "--no-tui", *args],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "160", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def files_under(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*")}


def test_demo_registers_missed_calls_and_writes_only_its_folder(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    fake_home = tmp_path / "user-home"
    fake_home.mkdir()
    elsewhere = tmp_path / "real-register.sqlite"
    # A real shop's settings in the environment must not be used (nor written) by the demo.
    env = {
        "HOME": str(fake_home),
        "XDG_DATA_HOME": str(fake_home / ".local" / "share"),
        "BEELINE_MISSED_DB": str(elsewhere),
        "BEELINE_API_TOKEN": "a-real-token-never-sent",
        "BEELINE_API_URL": "http://127.0.0.1:9/apis/portal",
    }
    result = run_demo(work, "--duration", "8", env=env)
    assert result.returncode == 0, result.stderr
    assert "Демо закончено" in result.stdout
    assert "Traceback" not in result.stderr

    folder = work / "demo-home"  # the default demo folder, under the current directory
    assert files_under(work) == {Path("demo-home")} | {
        Path("demo-home") / p for p in files_under(folder)
    }
    assert files_under(fake_home) == set()
    assert not elsewhere.exists()
    assert (folder / demo.MARKER).exists()

    reg = Register.open(folder / "register.sqlite")
    try:
        calls = reg.calls.rows(include_handled=True)
        subscriptions = reg.subscriptions.rows(("active",))
        clients = reg.clients.count()
    finally:
        reg.close()
    phones = [row.phone for row in calls]
    # The morning's history: a known client, a hidden number and a stranger were missed...
    assert demo.IVANOV in phones
    assert None in phones
    assert demo.STRANGER_1 in phones
    # ...and the calls someone answered (one in a hunt group) are not in the register.
    assert demo.PETROVA not in phones
    assert demo.KUZNETSOV not in phones
    # A caller who gave up in the voice menu is missed; one the queue put through is not.
    lost = {row.phone: (row.lost_at, row.forwarded_to) for row in calls}
    assert lost[demo.LEBEDEVA] == ("voice_menu", None)
    assert demo.VOLKOV not in phones
    assert lost[demo.STRANGER_4] == ("forwarded", demo.OWNER_MOBILE)
    names = {row.phone: row.client for row in calls}
    assert names[demo.IVANOV] == "Иванов Иван Петрович"  # recognised from the directory
    assert clients == 12
    # One subscription for the whole simulated PBX: it sees the voice menu and the queue.
    assert [sub.pattern for sub in subscriptions] == [None]


def test_demo_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "important.txt").write_text("keep me", encoding="utf-8")
    result = run_demo(tmp_path, "--home", str(folder), "--duration", "1", timeout=30)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ")
    assert "was not made by the demo" in result.stderr
    assert files_under(folder) == {Path("important.txt")}


def test_prepare_home_clears_only_the_previous_register(tmp_path: Path) -> None:
    folder = demo.prepare_home(tmp_path / "demo")
    (folder / "register.sqlite").write_bytes(b"old")
    (folder / "reports").mkdir()
    (folder / "reports" / "report.csv").write_text("kept", encoding="utf-8")
    again = demo.prepare_home(tmp_path / "demo")
    assert again == folder
    assert not (folder / "register.sqlite").exists()
    assert (folder / "reports" / "report.csv").read_text(encoding="utf-8") == "kept"


def test_scripted_traffic_covers_every_kind_of_call() -> None:
    calls = [call for _, call in demo.HISTORY] + demo.LIVE
    assert any(c.missed and c.caller is None for c in calls)  # hidden numbers
    assert any(c.answered_by and len(c.targets) > 1 for c in calls)  # a colleague answered
    assert any(c.answered_by and len(c.targets) == 1 for c in calls)  # plain answered
    assert any(c.outgoing for c in calls)  # staff calling back
    kinds = {c.kind for c in calls}
    assert {"voice_menu", "queue", "pickup", "busy", "forwarded"} <= kinds
    missed = [c.caller for c in calls if c.missed and c.caller]
    assert len(missed) > len(set(missed))  # repeat callers


@pytest.mark.anyio
async def test_panel_shows_the_demo_calls_live(tmp_path: Path) -> None:
    """The demo's pieces in this process, the panel over them: calls arrive by themselves."""
    root = logging.getLogger()
    handlers_before = list(root.handlers)
    with demo.running_demo(tmp_path / "demo", settle=0.5, gap=(0.2, 0.4), pace=0.02, seed=7) as d:
        app = PanelApp(d.settings, zone=MOSCOW, user="Оператор", interval=0.1)
        async with app.run_test(size=(110, 34)) as pilot:
            entries = app.query_one(MissedCalls)

            def toasted() -> bool:
                return any("Новый пропущенный звонок" in n.message for n in app._notifications)

            # The morning's history fills the list at once; live calls then arrive with a toast.
            for _ in range(300):
                if len(entries.entries) >= 5 and toasted():
                    break
                await pilot.pause(0.05)
            ids = [e.call_id for e in entries.entries]
            assert len(ids) >= 5, "missed calls did not appear in the panel"
            assert toasted(), "no new missed call was announced"
            when = call_list.COLUMNS.index("Дата и время")
            called = [datetime.strptime(e.cells[when], "%d.%m.%Y %H:%M") for e in entries.entries]
            assert called == sorted(called, reverse=True)  # newest first: arrivals go on top
            shown = {e.phone: e.client for e in entries.entries}
            assert shown.get(demo.IVANOV) == "Иванов Иван Петрович"
            # Staff book the selected call while calls keep coming (the selection follows
            # the call it was on, not the top of the list).
            chosen = entries.selected
            assert chosen is not None
            await pilot.press("enter")
            await pilot.press(*"ok")
            await pilot.press("ctrl+b")
            await pilot.pause()
            assert chosen.call_id not in [e.call_id for e in entries.entries]
    assert root.handlers == handlers_before  # the demo put logging back


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_demo_opens_the_panel_in_a_terminal_and_ends_by_itself(tmp_path: Path) -> None:
    """The default mode: `demo --duration S` on a pseudo-terminal shows the panel, then exits 0."""
    import pty
    import select
    import time

    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "110", "LINES": "34"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "beeline_missed", "demo", "--duration", "6"],
        cwd=tmp_path,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    screen = b""
    try:
        stop = time.monotonic() + 60
        while time.monotonic() < stop:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the process closed the terminal: all output is read
                    break
                if not chunk:
                    break
                screen += chunk
            elif proc.poll() is not None:
                break  # exited and nothing left to read
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert "Автосервис".encode() in screen
    assert "Демо закончено".encode() in screen
    reg = Register.open(tmp_path / "demo-home" / "register.sqlite")
    try:
        assert reg.calls.count("missed") >= 3
    finally:
        reg.close()


def test_demo_clients_come_from_1c_and_booking_shows_the_1c_number(tmp_path: Path) -> None:
    """The demo's directory is synced from the 1C stand-in, and «Записаться» books there."""
    from beeline_missed.cases import card_service
    from beeline_missed.onec import booking as onec_booking
    from beeline_missed.rules import card
    from beeline_missed.store import Register
    from tests.support.daemon import wait_for
    from tests.support.peek import onec_refs

    with demo.running_demo(tmp_path / "demo", settle=0.5, gap=(0.2, 0.4), pace=0.02, seed=7) as d:
        assert d.clients["total"] == 12 and d.onec is not None
        register = Register.open(d.settings.db)
        try:
            synced = [name for name, ref in onec_refs(register).items() if ref is not None]
            assert len(synced) == 12
            missed = wait_for(
                lambda: [
                    c for c in register.calls.rows(include_handled=False) if c.phone == demo.IVANOV
                ],
                timeout=30,
            )
            opened = card_service.open_card(register, missed[0].id)
            edit = card.Edit(user="Оператор", status=card.CALLED_BACK, result="", book=True)
            booker = onec_booking.booker_for(register, d.settings, MOSCOW)
            outcome = card_service.apply(register, opened, edit, None, booker=booker)
        finally:
            register.close()
        [made] = d.onec.created
    assert outcome.booking == {"state": "created", "number": made["Number"], "ref": made["Ref_Key"]}
    assert outcome.saved is not None
    assert outcome.saved.result.endswith(f"заявка № {made['Number']}")


@pytest.mark.anyio
async def test_demo_panel_calls_a_client_back_and_the_case_closes_by_itself(
    tmp_path: Path,
) -> None:
    """«Позвонить» in the demo's card: the simulator rings reception, then the client, and the
    daemon closes the case from that call's events."""
    from beeline_missed.panel.card_screen import CardScreen
    from beeline_missed.store import Register

    with demo.running_demo(tmp_path / "demo", settle=0.5, gap=(5, 9), pace=0.02, seed=7) as d:
        settings = demo.with_demo_staff(d.settings, "Оператор")
        app = PanelApp(settings, zone=MOSCOW, user="Оператор", interval=0.1)
        async with app.run_test(size=(110, 40)) as pilot:
            entries = app.query_one(MissedCalls)
            for _ in range(300):
                if any(e.phone for e in entries.entries):
                    break
                await pilot.pause(0.05)
            chosen = next(e for e in entries.entries if e.phone)
            entries.table.move_cursor(row=entries.entries.index(chosen))
            await pilot.press("enter")
            assert isinstance(app.screen, CardScreen)
            await pilot.press("ctrl+t")
            register = Register.open(settings.db)
            try:
                for _ in range(600):
                    rows = [register.calls.get(i) for i in chosen.call_ids]
                    if all(r.status == "called_back" for r in rows):
                        break
                    await pilot.pause(0.05)
            finally:
                register.close()
    assert [c["phoneNumber"] for c in d.sim.click_calls] == [chosen.phone]
    assert d.sim.click_calls[0]["abonent"] == demo.RECEPTION
    assert {(r.closed_by, r.user) for r in rows} == {("auto", "Смирнова")}
