"""«Записаться» creates the booking in 1C (Document_ЗаявкаНаРемонт in the stand-in, over real
HTTP): the right client and fields, the number in the card's result and `--json`; 1C down or
refusing → the card saved, the booking kept, listed by `status` and retried by the daemon."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from beeline_missed import config
from beeline_missed.cli import app
from beeline_missed.onec import booking as onec_booking
from beeline_missed.onec import sync as onec_sync
from beeline_missed.onec.client import OnecClient
from beeline_missed.simulator.onec import BOOKINGS, CLIENTS, OnecSimulator, make_client
from beeline_missed.store import Register
from tests.support import clock
from tests.support.daemon import Daemon, wait_for
from tests.support.e2e import write_config
from tests.support.factories import add_call

runner = CliRunner()
PHONE = "+79161234567"
ORG = "11111111-2222-3333-4444-555555555555"


def settings_for(onec: OnecSimulator, home: Path) -> config.Settings:
    return config.load(
        environ={
            "BEELINE_MISSED_HOME": str(home),
            "BEELINE_MISSED_1C_URL": onec.base_url,
            "BEELINE_MISSED_1C_USER": onec.user,
            "BEELINE_MISSED_1C_PASSWORD": onec.password,
        }
    )


def synced_client(onec: OnecSimulator, register: Register, home: Path) -> dict[str, Any]:
    """Иванов in 1C, synced into the directory; returns his 1C record."""
    ivanov = make_client("Иванов Иван", ["+7 (916) 123-45-67"], code="000001")
    onec.add(CLIENTS, ivanov)
    with OnecClient(onec.base_url, onec.user, onec.password) as client:
        onec_sync.sync(register, client, settings_for(onec, home))
    return ivanov


def a_call(register: Register, phone: str = PHONE) -> int:
    return add_call(register, phone=phone, called_at=clock.stored(clock.yesterday_at(10, 5)))


def test_book_creates_the_booking_in_1c_with_the_client_and_the_shops_fields(
    onec_env: OnecSimulator, register: Register, home: Path
) -> None:
    (home / "config.toml").write_text(
        f'onec_booking_fields."Организация_Key" = "{ORG}"\n', encoding="utf-8"
    )
    ivanov = synced_client(onec_env, register, home)
    call_id = a_call(register)
    result = runner.invoke(
        app,
        ["card", str(call_id), "--book", "--result", "Стук в подвеске", "--user", "Анна", "--json"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    [made] = onec_env.created
    assert data["booking"] == {"state": "created", "number": made["Number"], "ref": made["Ref_Key"]}
    assert made["entity"] == BOOKINGS
    assert made["Заказчик_Key"] == ivanov["Ref_Key"]
    assert made["Организация_Key"] == ORG
    comment = made["Комментарий"]
    assert "+7 916 123-45-67" in comment and "Анна" in comment and "Стук в подвеске" in comment
    expected = f"Стук в подвеске\nЗаписался на ремонт, заявка № {made['Number']}"
    assert data["call"]["result"] == expected
    assert register.calls.get(call_id).result == expected
    assert register.calls.get(call_id).user == "Анна"


def test_book_in_the_terminal_says_the_number(
    onec_env: OnecSimulator, register: Register, home: Path
) -> None:
    synced_client(onec_env, register, home)
    call_id = a_call(register)
    result = runner.invoke(app, ["card", str(call_id), "--book", "--user", "Анна"])
    assert result.exit_code == 0, result.output
    assert "Заявка на ремонт № ЗР-000001 создана в 1С." in result.stdout


def test_a_caller_who_is_not_a_1c_client_falls_back_to_the_journal(
    onec_env: OnecSimulator, register: Register
) -> None:
    register.clients.upsert([(None, "Вручную", [("+79990000001", "")])])
    call_id = a_call(register, phone="+79990000001")
    result = runner.invoke(app, ["card", str(call_id), "--book", "--user", "Анна", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["booking"] == {"state": "not_client"}
    assert data["journal"]  # the journal sentence, as before
    assert onec_env.created == []
    assert register.calls.get(call_id).result == "Записался на ремонт"


def test_1c_down_saves_the_card_and_keeps_the_booking_for_status(
    onec_env: OnecSimulator, register: Register, home: Path
) -> None:
    synced_client(onec_env, register, home)
    call_id = a_call(register)
    onec_env.fail("down", seconds=0)
    result = runner.invoke(app, ["card", str(call_id), "--book", "--user", "Анна", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["booking"]["state"] == "waiting"
    assert "Cannot reach 1C" in data["booking"]["error"]
    row = register.calls.get(call_id)
    assert (row.status, row.result, row.user) == (
        "called_back",
        "Записался на ремонт",
        "Анна",
    )
    shown = json.loads(runner.invoke(app, ["status", "--json"]).stdout)
    [waiting] = shown["onec_bookings_waiting"]
    assert waiting["call_id"] == call_id and waiting["attempts"] == 1
    text = runner.invoke(app, ["status"]).stdout
    assert "Bookings waiting for 1C: 1." in text


def test_1c_refusing_keeps_the_booking_with_its_reason(
    onec_env: OnecSimulator, register: Register, home: Path
) -> None:
    synced_client(onec_env, register, home)
    onec_env.required[BOOKINGS] = ("Заказчик_Key", "Цех_Key")
    call_id = a_call(register)
    result = runner.invoke(app, ["card", str(call_id), "--book", "--user", "Анна"])
    assert result.exit_code == 0, result.output
    assert "Заявку в 1С создать пока не удалось" in result.stdout
    assert "Цех_Key" in result.stdout
    assert register.onec.bookings("waiting")[0].last_error


def test_a_retry_finds_the_booking_whose_answer_was_lost(
    onec: OnecSimulator, register: Register, home: Path
) -> None:
    settings = settings_for(onec, home)
    synced_client(onec, register, home)
    call_id = a_call(register)
    onec.fail("slow", seconds=2, count=1, methods=["POST"])  # 1C creates it; the answer is late
    impatient = config.with_overrides(settings, onec_booking_timeout=0.5)
    booked = onec_booking.book(register, impatient, register.calls.get(call_id), clock.MOSCOW)
    assert booked.booking["state"] == "waiting"
    wait_for(lambda: len(onec.created) == 1, timeout=10)
    with OnecClient(onec.base_url, onec.user, onec.password) as client:
        made = onec_booking.retry_waiting(register, client, settings)
    assert [m["number"] for m in made] == [onec.created[0]["Number"]]
    assert len(onec.created) == 1  # found by its token, not created twice
    assert register.onec.bookings("waiting") == []


def test_onec_check_names_a_missing_booking_field(onec_env: OnecSimulator, home: Path) -> None:
    (home / "config.toml").write_text('onec_booking_fields."НетТакого" = "x"\n', encoding="utf-8")
    result = runner.invoke(app, ["onec", "check"])
    assert result.exit_code == 1
    assert "Document_ЗаявкаНаРемонт has no field НетТакого" in result.stdout


# -- the daemon retries --------------------------------------------------------------------


def test_the_daemon_creates_a_waiting_booking_once_1c_is_back(
    home: Path, onec: OnecSimulator, register: Register
) -> None:
    synced_client(onec, register, home)
    call_id = a_call(register)
    onec.fail("down", seconds=0)
    env = {
        "BEELINE_MISSED_1C_URL": onec.base_url,
        "BEELINE_MISSED_1C_USER": onec.user,
        "BEELINE_MISSED_1C_PASSWORD": onec.password,
    }
    write_config(home, "onec_booking_retry = 1\n")
    proc = Daemon(home, extra_env=env).start()
    try:
        booked = proc.cli("card", str(call_id), "--book", "--user", "Анна", "--json")
        assert booked.returncode == 0, booked.stderr
        assert json.loads(booked.stdout)["booking"]["state"] == "waiting"
        onec.recover()
        wait_for(lambda: "заявка №" in register.calls.get(call_id).result, timeout=30)
        [made] = onec.created
        booked_text = f"Записался на ремонт, заявка № {made['Number']}"
        assert register.calls.get(call_id).result == booked_text
        shown = json.loads(proc.cli("status", "--json").stdout)
        assert shown["onec_bookings_waiting"] == []
    finally:
        assert proc.stop() == 0
    assert f"booking for call {call_id} created in 1C" in proc.log()


def test_the_journal_gets_the_new_booking_number_and_ref(
    onec_env: OnecSimulator, register: Register, home: Path, tmp_path: Path
) -> None:
    import sys
    import time

    record = tmp_path / "argv.json"
    script = tmp_path / "journal.py"
    script.write_text(
        "import json, sys\n"
        f"open({str(record)!r}, 'w').write(json.dumps(sys.argv[1:], ensure_ascii=False))\n"
    )
    (home / "config.toml").write_text(
        f'journal = "{sys.executable} {script} {{booking_number}} {{booking_ref}}"\n',
        encoding="utf-8",
    )
    synced_client(onec_env, register, home)
    call_id = a_call(register)
    result = runner.invoke(app, ["card", str(call_id), "--book", "--user", "Анна"])
    assert result.exit_code == 0, result.output
    deadline = time.monotonic() + 20  # the journal runs detached; wait for it to write
    while not record.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    [made] = onec_env.created
    assert json.loads(record.read_text()) == [made["Number"], made["Ref_Key"]]
