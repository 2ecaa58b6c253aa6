"""`card ID`: the rules through the command line, interactive and for scripts, the journal,
and two people saving one card (a real second process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from beeline_missed.cases import journal
from beeline_missed.cli import app
from beeline_missed.store import Register
from tests.support.factories import add_call

runner = CliRunner()


pytestmark = pytest.mark.both_engines


def flat(text: str) -> str:
    """Output with rich's line wrapping undone, for matching whole sentences."""
    return " ".join(text.split())


def configure(home: Path, **settings: str) -> None:
    lines = ['timezone = "Europe/Moscow"'] + [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    (home / "config.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(autouse=True)
def moscow(home: Path) -> None:
    configure(home)


def unchanged(reg: Register, call_id: int) -> bool:
    row = reg.calls.get(call_id)
    return (row.status, row.result, row.user, row.version) == ("missed", "", None, 1)


# -- for scripts ----------------------------------------------------------------------------


def test_missed_status_is_not_saved_and_exits_non_zero(register: Register) -> None:
    call_id = add_call(register)
    for args in (["--status", "Пропущен", "--result", "Не дозвонился"], ["--result", "x"]):
        result = runner.invoke(app, ["card", str(call_id), *args])
        assert result.exit_code == 1
        assert "Статус остался «Пропущен», поэтому изменения не сохранены." in flat(result.output)
        assert unchanged(register, call_id)


def test_called_back_without_result_is_refused(register: Register) -> None:
    call_id = add_call(register)
    result = runner.invoke(app, ["card", str(call_id), "--status", "called_back"])
    assert result.exit_code == 1
    assert "«Перезвонили» нельзя сохранить без результата" in flat(result.output)
    assert "Traceback" not in result.output
    assert unchanged(register, call_id)


def test_saving_called_back_leaves_the_default_list(register: Register, home: Path) -> None:
    call_id = add_call(register)
    configure(home, user="Анна")
    result = runner.invoke(
        app, ["card", str(call_id), "--status", "Перезвонили", "--result", "Приедет", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["saved"] is True
    call = data["call"]
    assert (call["status"], call["status_label"], call["result"], call["user"]) == (
        "called_back",
        "Перезвонили",
        "Приедет",
        "Анна",
    )
    assert call["handled_at"].endswith("+03:00")
    assert json.loads(runner.invoke(app, ["list", "--json"]).output) == []
    listed = json.loads(runner.invoke(app, ["list", "--all", "--json"]).output)
    assert [c["id"] for c in listed] == [call_id]


def test_user_flag_beats_setting_and_os_login_is_last(
    register: Register, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = add_call(register, "a"), add_call(register, "b", phone="+79031112233")
    configure(home, user="Анна")
    args = ["--status", "called_back", "--result", "ok"]
    assert runner.invoke(app, ["card", str(first), *args, "--user", "Борис"]).exit_code == 0
    assert register.calls.get(first).user == "Борис"
    configure(home)
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOGNAME", "kassa2")
    assert runner.invoke(app, ["card", str(second), *args]).exit_code == 0
    assert register.calls.get(second).user == "kassa2"


def test_book_without_journal_says_where_to_book(register: Register) -> None:
    call_id = add_call(register)
    result = runner.invoke(app, ["card", str(call_id), "--book", "--user", "Анна"])
    assert result.exit_code == 0, result.output
    assert "Сохранено: звонок" in result.output
    assert "запишите клиента в журнал записи на ремонт в 1С вручную" in flat(result.output)
    row = register.calls.get(call_id)
    assert (row.status, row.result, row.user) == (
        "called_back",
        "Записался на ремонт",
        "Анна",
    )


def test_book_opens_the_journal_command_with_safe_arguments(
    register: Register, home: Path, tmp_path: Path
) -> None:
    register.clients.upsert([(None, "ООО \"Ромашка\"; rm -rf ~ 'x'", [("+79161234567", "")])])
    call_id = add_call(register)
    register.calls.save(
        call_id, 1, status="missed", result="Спросил цену", user=None, handled_at=None
    )
    record = tmp_path / "argv.json"
    script = tmp_path / "journal.py"
    script.write_text(
        "import json, sys\n"
        f"open({str(record)!r}, 'w').write(json.dumps(sys.argv[1:], ensure_ascii=False))\n"
    )
    configure(home, journal=f"{sys.executable} {script} --phone={{phone}} {{client}}")
    result = runner.invoke(app, ["card", str(call_id), "--book", "--user", "Анна", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["call"]["result"] == "Спросил цену\nЗаписался на ремонт"
    assert data["journal"].startswith("Открыт журнал записи:")
    deadline = time.monotonic() + 20  # the journal runs detached; wait for it to write
    while not record.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert json.loads(record.read_text()) == [
        "--phone=+79161234567",
        "ООО \"Ромашка\"; rm -rf ~ 'x'",
    ]


def test_journal_url_is_percent_encoded() -> None:
    target = journal.build(
        "https://1c.example.ru/journal?phone={phone}&client={client}&q={x}", "+79161234567", "А&Б"
    )
    assert target.kind == "url"
    assert target.url == (
        "https://1c.example.ru/journal?phone=%2B79161234567&client=%D0%90%26%D0%91&q={x}"
    )
    hidden = journal.build("https://j.example/?p={phone}", None, None)
    assert hidden.url == "https://j.example/?p="


def test_book_opens_a_journal_url_in_the_browser(
    register: Register, home: Path, tmp_path: Path
) -> None:
    call_id = add_call(register)
    record = tmp_path / "url.txt"
    browser = tmp_path / "browser.py"
    browser.write_text(f"import sys\nopen({str(record)!r}, 'w').write(sys.argv[1])\n")
    configure(home, journal="https://1c.example.ru/journal?phone={phone}")
    env = {
        **os.environ,
        "BEELINE_MISSED_HOME": str(home),
        "BROWSER": f"{sys.executable} {browser} %s",
    }
    done = subprocess.run(
        [sys.executable, "-m", "beeline_missed", "card", str(call_id), "--book", "--user", "A"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert record.read_text() == "https://1c.example.ru/journal?phone=%2B79161234567"
    assert "Открыт журнал записи" in done.stdout


def test_journal_that_cannot_start_does_not_hide_the_save(register: Register, home: Path) -> None:
    call_id = add_call(register)
    configure(home, journal="/nonexistent/journal-app {phone}")
    result = runner.invoke(app, ["card", str(call_id), "--book", "--user", "A"])
    assert result.exit_code == 0
    assert "Карточка сохранена, но журнал записи не открылся" in flat(result.output)
    assert register.calls.get(call_id).status == "called_back"


def test_expect_version_conflict_exits_3_and_keeps_the_first_save(register: Register) -> None:
    call_id = add_call(register)
    shown = json.loads(runner.invoke(app, ["card", str(call_id), "--json"]).output)
    assert shown["version"] == 1 and shown["status"] == "missed"
    first = runner.invoke(
        app, ["card", str(call_id), "--status", "called_back", "--result", "A", "--user", "Анна"]
    )
    assert first.exit_code == 0, first.output
    late = ["--status", "called_back", "--result", "B", "--user", "Борис", "--expect-version", "1"]
    second = runner.invoke(app, ["card", str(call_id), *late])
    assert second.exit_code == 3
    text = flat(second.output)
    assert "уже сохранили (Анна, статус «Перезвонили»)" in text
    assert "ваши изменения не записаны" in text
    row = register.calls.get(call_id)
    assert (row.result, row.user, row.version) == ("A", "Анна", 2)


def test_bad_input_is_one_sentence(register: Register) -> None:
    call_id = add_call(register)
    bad = runner.invoke(app, ["card", str(call_id), "--status", "done", "--result", "x"])
    assert bad.exit_code == 1 and "Неизвестный статус «done»" in flat(bad.output)
    missing = runner.invoke(app, ["card", "999", "--status", "called_back", "--result", "x"])
    assert missing.exit_code == 1 and "Звонка № 999 в реестре нет." in missing.output
    both = runner.invoke(app, ["card", str(call_id), "--book", "--status", "missed"])
    assert both.exit_code == 1 and "«Записаться»" in both.output
    assert unchanged(register, call_id)


# -- interactive ----------------------------------------------------------------------------


def test_interactive_shows_the_card_and_saves_called_back(register: Register) -> None:
    register.clients.upsert([(None, "Иванов Иван", [("+79161234567", "")])])
    call_id = add_call(register)
    result = runner.invoke(
        app, ["card", str(call_id), "--user", "Анна"], input="2\n\nПриедет в пятницу\n"
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Номер: +7 916 123-45-67 — Иванов Иван" in out
    assert "Дата и время: 27.11.2026 13:00" in out
    assert "Статус: Пропущен" in out
    assert "Записаться" in out
    # The empty result was refused by the rule and asked again.
    assert "«Перезвонили» нельзя сохранить без результата" in flat(out)
    assert "Сохранено: звонок" in out
    row = register.calls.get(call_id)
    assert (row.status, row.result, row.user) == (
        "called_back",
        "Приедет в пятницу",
        "Анна",
    )


@pytest.mark.parametrize("answer", ["\n", "1\n", "Пропущен\n"])
def test_interactive_leaving_missed_saves_nothing(register: Register, answer: str) -> None:
    call_id = add_call(register)
    result = runner.invoke(app, ["card", str(call_id), "--user", "Анна"], input=answer)
    assert result.exit_code == 0, result.output
    assert "изменения не сохранены" in flat(result.output)
    assert unchanged(register, call_id)


def test_interactive_book_and_unknown_answer(register: Register) -> None:
    call_id = add_call(register)
    result = runner.invoke(
        app, ["card", str(call_id), "--user", "Анна"], input="может быть\nЗаписаться\nНа 10:00\n"
    )
    assert result.exit_code == 0, result.output
    assert "Неизвестный статус «может быть»" in flat(result.output)
    assert "журнал записи на ремонт в 1С" in flat(result.output)
    row = register.calls.get(call_id)
    assert (row.status, row.result) == ("called_back", "На 10:00\nЗаписался на ремонт")


def test_interactive_end_of_input_saves_nothing(register: Register) -> None:
    call_id = add_call(register)
    result = runner.invoke(app, ["card", str(call_id), "--user", "Анна"], input="2\n")
    assert result.exit_code == 1
    assert "карточка закрыта без сохранения" in flat(result.output)
    assert unchanged(register, call_id)


def test_two_people_on_one_card_second_gets_conflict(register: Register, home: Path) -> None:
    """Анна opens the card in a terminal; Борис saves it meanwhile; Анна's save is refused."""
    call_id = add_call(register)
    env = {**os.environ, "BEELINE_MISSED_HOME": str(home), "COLUMNS": "200"}
    anna = subprocess.Popen(
        [sys.executable, "-m", "beeline_missed", "card", str(call_id), "--user", "Анна"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert anna.stdout is not None and anna.stdin is not None
        # The card is on screen (and its version read) once the choices line is printed.
        for line in anna.stdout:
            if line.startswith("Статус: 1"):
                break
        boris = runner.invoke(
            app,
            ["card", str(call_id), "--status", "called_back", "--result", "Б", "--user", "Борис"],
        )
        assert boris.exit_code == 0, boris.output
        out, err = anna.communicate("2\nА\n", timeout=60)
    finally:
        if anna.poll() is None:
            anna.kill()
            anna.wait()
    assert anna.returncode == 3, (out, err)
    assert "уже сохранили (Борис" in flat(err)
    row = register.calls.get(call_id)
    assert (row.result, row.user) == ("Б", "Борис")


def test_names_that_look_like_markup_print_as_written(register: Register) -> None:
    register.clients.upsert([(None, "[/b] ООО [red]Ромашка", [("+79161234567", "")])])
    call_id = add_call(register)
    shown = runner.invoke(app, ["list"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "[/b] ООО [red]Ромашка" in shown.output
    card = runner.invoke(app, ["card", str(call_id), "--user", "[i]Анна"], input="2\nок\n")
    assert card.exit_code == 0, card.output
    assert "— [/b] ООО [red]Ромашка" in card.output
    assert "«Перезвонили», [i]Анна." in card.output


def test_handling_a_card_handles_all_open_calls_of_that_caller(register: Register) -> None:
    calls = [add_call(register, key) for key in ("a", "b", "c")]
    other = add_call(register, "d", phone="+79031112233")
    listed = json.loads(runner.invoke(app, ["list", "--json"]).output)
    assert sorted((c["attempts"], len(c["call_ids"])) for c in listed) == [(1, 1), (3, 3)]
    args = ["card", str(calls[0]), "--status", "Перезвонили", "--result", "договорились"]
    result = runner.invoke(app, [*args, "--user", "Анна"])
    assert result.exit_code == 0, result.output
    assert "и ещё 2 звонка" in result.output
    for call_id in calls:
        row = register.calls.get(call_id)
        assert (row.status, row.result, row.user) == (
            "called_back",
            "договорились",
            "Анна",
        )
    assert register.calls.get(other).status == "missed"
    assert [c["id"] for c in json.loads(runner.invoke(app, ["list", "--json"]).output)] == [other]
