"""`list` and `watch`: what the list shows, and the live view's refresh decision (no sleeping)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from rich.console import Console
from typer.testing import CliRunner

from beeline_missed.cli import app
from beeline_missed.store import Register
from beeline_missed.views.watch import Watcher, run_live
from tests.support.factories import add_call

runner = CliRunner()
pytestmark = pytest.mark.both_engines

MOSCOW = ZoneInfo("Europe/Moscow")


@pytest.fixture(autouse=True)
def moscow(home: Path) -> None:
    """The shop's zone in config.toml: times below are shown in Moscow time."""
    (home / "config.toml").write_text('timezone = "Europe/Moscow"\n', encoding="utf-8")


def handle(reg: Register, call_id: int, result: str = "Перезвонили, всё хорошо") -> None:
    reg.calls.save(
        call_id,
        reg.calls.get(call_id).version,
        status="called_back",
        result=result,
        user="Анна",
        handled_at="2026-11-27T12:00:00Z",
    )


def test_list_json_fields_newest_first_only_missed(register: Register) -> None:
    register.clients.upsert([(None, "Иванов Иван", [("+79161234567", "")])])
    old = add_call(register, "a", called_at="2026-11-27T07:30:00Z")
    hidden = add_call(register, "b", called_at="2026-11-27T09:15:00Z", phone=None)
    done = add_call(register, "c", called_at="2026-11-27T10:00:00Z", phone="+79035550011")
    handle(register, done)

    result = runner.invoke(app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [d["id"] for d in data] == [hidden, old]
    first, second = data[1], data[0]
    assert {k: first[k] for k in ("phone", "client", "called_at", "line")} == {
        "phone": "+79161234567",
        "client": "Иванов Иван",
        "called_at": "2026-11-27T10:30:00+03:00",
        "line": "200",
    }
    assert (first["status"], first["status_label"], first["result"], first["user"]) == (
        "missed",
        "Пропущен",
        "",
        None,
    )
    assert (second["phone"], second["client"]) == (None, None)

    everything = json.loads(runner.invoke(app, ["list", "--all", "--json"]).output)
    assert [d["id"] for d in everything] == [done, hidden, old]
    assert everything[0]["status_label"] == "Перезвонили"
    assert everything[0]["user"] == "Анна"
    limited = json.loads(runner.invoke(app, ["list", "--all", "--limit", "1", "--json"]).output)
    assert [d["id"] for d in limited] == [done]


def test_list_table_is_in_russian(register: Register) -> None:
    register.clients.upsert([(None, "Иванов", [("+79161234567", "")])])
    add_call(register, "a", called_at="2026-11-27T07:30:00Z")
    result = runner.invoke(app, ["list"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    for text in ("Пропущенные звонки", "Дата и время", "Номер", "Клиент", "Статус", "Результат"):
        assert text in result.output
    assert "27.11.2026 10:30" in result.output
    assert "+7 916 123-45-67" in result.output and "Иванов" in result.output
    assert "\x1b[" not in result.output  # no colours when not a terminal


def test_empty_list_says_so(register: Register) -> None:
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0
    assert result.output.strip() == "Пропущенных звонков нет."
    assert json.loads(runner.invoke(app, ["list", "--json"]).output) == []


@pytest.mark.sqlite_only  # polls right after another connection commits: PostgreSQL's NOTIFY
# arrives a moment later, on the next tick (tests/test_postgres.py waits for it)
def test_watcher_reloads_only_when_the_register_changed(db_path: Path) -> None:
    writer = Register.open(db_path)
    before = add_call(writer, "before", called_at="2026-11-27T07:00:00Z")
    reader = Register.open(db_path)
    try:
        watcher = Watcher(reader, MOSCOW)
        assert watcher.poll() is True
        assert (watcher.loads, watcher.open_count, watcher.new_count) == (1, 1, 0)
        # Idle: nothing committed since, so no reload.
        assert watcher.poll() is False
        assert watcher.poll() is False
        assert watcher.loads == 1

        arrived = add_call(writer, "after", called_at="2026-11-27T08:00:00Z", phone="+79035550011")
        assert watcher.poll() is True
        assert [r.id for r in watcher.rows] == [arrived, before]
        assert watcher.new_ids == {arrived}
        assert watcher.open_count == 2
        assert watcher.poll() is False

        handle(writer, arrived)  # called back elsewhere: it leaves the list
        assert watcher.poll() is True
        assert [r.id for r in watcher.rows] == [before]
        assert (watcher.open_count, watcher.new_count, watcher.loads) == (1, 0, 3)
    finally:
        reader.close()
        writer.close()


@pytest.mark.sqlite_only  # polls right after another connection commits: PostgreSQL's NOTIFY
# arrives a moment later, on the next tick (tests/test_postgres.py waits for it)
def test_render_marks_new_calls_and_shows_counts(db_path: Path) -> None:
    writer = Register.open(db_path)
    add_call(writer, "before", called_at="2026-11-27T07:00:00Z")
    reader = Register.open(db_path)
    try:
        watcher = Watcher(reader, MOSCOW)
        watcher.poll()
        add_call(writer, "after", called_at="2026-11-27T08:00:00Z", phone="+79035550011")
        watcher.poll()
        out = io.StringIO()
        Console(file=out, width=160, color_system=None).print(
            watcher.render(datetime(2026, 11, 27, 11, 5, 7, tzinfo=UTC).astimezone(MOSCOW))
        )
        text = out.getvalue()
        assert "Пропущенных звонков: 2" in text
        assert ": 1" in text.splitlines()[0]  # one new since watching started
        new_lines = [line for line in text.splitlines() if "новый" in line]
        assert len(new_lines) == 1 and "+7 903 555-00-11" in new_lines[0]
        assert "Обновлено 14:05:07" in text
        # Idle ticks redraw the clock line but reuse the table built at the last reload.
        assert watcher.poll() is False
        assert watcher.render().renderables[1] is watcher.render().renderables[1]
    finally:
        reader.close()
        writer.close()


def test_run_live_stops_on_event_and_after_duration(register: Register, db_path: Path) -> None:
    add_call(register, "a", called_at="2026-11-27T07:00:00Z")
    stop = threading.Event()
    stop.set()
    out = io.StringIO()
    watcher = run_live(db_path, 60, stop=stop, zone=MOSCOW, console=Console(file=out))
    assert watcher is not None and watcher.open_count == 1
    assert "Пропущенных звонков: 1" in out.getvalue()
    # A zero duration returns at once even with a long interval.
    again = run_live(db_path, 3600, duration=0, console=Console(file=io.StringIO()))
    assert again is not None and again.loads == 1


def test_watch_command_with_duration(register: Register) -> None:
    add_call(register, "a", called_at="2026-11-27T07:00:00Z")
    result = runner.invoke(app, ["watch", "--duration", "0", "--interval", "5"])
    assert result.exit_code == 0, result.output
    assert "Ctrl-C — выход" in result.output
    assert "Пропущенных звонков: 1" in result.output


def test_watch_exits_cleanly_on_ctrl_c(register: Register, home: Path) -> None:
    add_call(register, "a", called_at="2026-11-27T07:00:00Z")
    env = {**os.environ, "BEELINE_MISSED_HOME": str(home), "COLUMNS": "160"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "beeline_missed", "watch", "--interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # printed just before the live view starts
        assert "Ctrl-C" in first
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "Пропущенных звонков: 1" in out


# -- narrow terminals and pipes -----------------------------------------------------------

HUNT_GROUP = ", ".join(f"90011{i:05d}" for i in range(2000))


def shop_morning(register: Register) -> None:
    """A client who called twice, a hunt group of 2,000 abonents, a hidden number."""
    register.clients.upsert([(None, "Иванов Иван Петрович", [("+79165550011", "")])])
    add_call(register, "a1", phone="+79165550011", called_at="2026-11-27T07:20:00Z")
    add_call(register, "a2", phone="+79165550011", called_at="2026-11-27T07:30:00Z")
    add_call(register, "b", phone="+74951112233", called_at="2026-11-27T08:30:00Z", line=HUNT_GROUP)
    add_call(register, "c", phone=None, called_at="2026-11-27T09:30:00Z", line="201")


def list_at(width: int, *args: str) -> str:
    result = runner.invoke(app, ["list", *args], env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    return result.output


def test_list_at_80_columns_keeps_number_date_and_client_whole(register: Register) -> None:
    shop_morning(register)
    assert list_at(80) == (
        "                               Пропущенные звонки                               \n"
        "┏━━━┳━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━┳━━━━━━━━━┳━━━━━━━━━━━━━┓\n"
        "┃ № ┃ Дата и время     ┃ Номер            ┃ Клиент     ┃ Попыток ┃ Линия       ┃\n"
        "┡━━━╇━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━╇━━━━━━━━━╇━━━━━━━━━━━━━┩\n"
        "│ 4 │ 27.11.2026 12:30 │ номер скрыт      │            │       1 │ 201         │\n"
        "│ 3 │ 27.11.2026 11:30 │ +7 495 111-22-33 │            │       1 │ 9001100000, │\n"
        "│   │                  │                  │            │         │ 9001100001  │\n"
        "│   │                  │                  │            │         │ +1998       │\n"
        "│ 2 │ 27.11.2026 10:30 │ +7 916 555-00-11 │ Иванов     │       2 │ 200         │\n"
        "│   │                  │                  │ Иван       │         │             │\n"
        "│   │                  │                  │ Петрович   │         │             │\n"
        "└───┴──────────────────┴──────────────────┴────────────┴─────────┴─────────────┘\n"
    )


def test_list_at_60_columns_keeps_number_date_and_client_whole(register: Register) -> None:
    shop_morning(register)
    assert list_at(60) == (
        "                     Пропущенные звонки                     \n"
        "┏━━━┳━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━┓\n"
        "┃ № ┃ Дата и время     ┃ Номер            ┃ Клиент         ┃\n"
        "┡━━━╇━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━┩\n"
        "│ 4 │ 27.11.2026 12:30 │ номер скрыт      │                │\n"
        "│ 3 │ 27.11.2026 11:30 │ +7 495 111-22-33 │                │\n"
        "│ 2 │ 27.11.2026 10:30 │ +7 916 555-00-11 │ Иванов Иван    │\n"
        "│   │                  │                  │ Петрович       │\n"
        "└───┴──────────────────┴──────────────────┴────────────────┘\n"
        "              Не поместились: Попыток, Линия.               \n"
    )


def test_hidden_columns_are_named_status_and_line_first(register: Register) -> None:
    """--all: «Статус» and «Линия» give way before «Результат» and «Кто»; all-«1» attempts
    go unmentioned, since they tell no row from another."""
    shop_morning(register)
    handle(register, 1, "Записан на ремонт")
    assert list_at(80, "--all") == (
        "                                   Все звонки                                   \n"
        "┏━━━┳━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━┳━━━━━━┓\n"
        "┃ № ┃ Дата и время     ┃ Номер            ┃ Клиент       ┃ Результат    ┃ Кто  ┃\n"
        "┡━━━╇━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━╇━━━━━━┩\n"
        "│ 4 │ 27.11.2026 12:30 │ номер скрыт      │              │              │      │\n"
        "│ 3 │ 27.11.2026 11:30 │ +7 495 111-22-33 │              │              │      │\n"
        "│ 2 │ 27.11.2026 10:30 │ +7 916 555-00-11 │ Иванов Иван  │              │      │\n"
        "│   │                  │                  │ Петрович     │              │      │\n"
        "│ 1 │ 27.11.2026 10:20 │ +7 916 555-00-11 │ Иванов Иван  │ Записан на   │ Анна │\n"
        "│   │                  │                  │ Петрович     │ ремонт       │      │\n"
        "└───┴──────────────────┴──────────────────┴──────────────┴──────────────┴──────┘\n"
        "                         Не поместились: Линия, Статус.                         \n"
    )


def test_a_hunt_group_of_2000_is_one_row_with_the_rest_counted(register: Register) -> None:
    add_call(register, "b", phone="+74951112233", called_at="2026-11-27T08:30:00Z", line=HUNT_GROUP)
    out = list_at(160)
    rows = [line for line in out.splitlines() if line.startswith("│")]
    assert len(rows) == 1
    assert "│ 9001100000, 9001100001 +1998 │" in rows[0]
    assert "+7 495 111-22-33" in rows[0]
    # Scripts still get every abonent.
    data = json.loads(runner.invoke(app, ["list", "--json"]).output)
    assert data[0]["line"] == HUNT_GROUP


def test_a_long_client_name_wraps_but_loses_nothing(register: Register) -> None:
    name = "Общество с ограниченной ответственностью «Автосервис на Профсоюзной»"
    register.clients.upsert([(None, name, [("+79165550011", "")])])
    add_call(register, "a", phone="+79165550011", called_at="2026-11-27T07:30:00Z")

    def client_lines(out: str) -> list[str]:
        return [line.split("│")[4].strip() for line in out.splitlines() if line.startswith("│")]

    wide = list_at(80)
    assert " ".join(client_lines(wide)) == name  # wrapped between words
    assert "│ 1 │ 27.11.2026 10:30 │ +7 916 555-00-11 │" in wide
    # At 60 «ответственностью» is wider than the room left: it folds, not a letter lost.
    narrow = list_at(60)
    assert "".join(client_lines(narrow)).replace(" ", "") == name.replace(" ", "")
    assert "│ 1 │ 27.11.2026 10:30 │ +7 916 555-00-11 │" in narrow


@pytest.mark.parametrize("width", range(60, 161, 5))
def test_at_any_width_the_number_and_date_are_whole_and_fit(register: Register, width: int) -> None:
    shop_morning(register)
    handle(register, 1, "Записан на ремонт")
    for args in ([], ["--all"]):
        out = list_at(width, *args)
        assert max(len(line) for line in out.splitlines()) <= width
        assert "│ 3 │ 27.11.2026 11:30 │ +7 495 111-22-33 │" in out


def test_list_in_a_pipe_is_80_columns_with_every_number_whole(
    register: Register, home: Path
) -> None:
    """A real process writing to a pipe, no COLUMNS: rich assumes 80 columns."""
    shop_morning(register)
    env = {**os.environ, "BEELINE_MISSED_HOME": str(home)}
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    done = subprocess.run(
        [sys.executable, "-m", "beeline_missed", "list"],
        capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) == 80
    for number, when in [
        ("номер скрыт", "27.11.2026 12:30"),
        ("+7 495 111-22-33", "27.11.2026 11:30"),
        ("+7 916 555-00-11", "27.11.2026 10:30"),
    ]:
        assert any(f"│ {when} │ {number}" in line for line in lines), done.stdout
    assert "…" not in done.stdout


@pytest.mark.sqlite_only  # polls right after another connection commits: PostgreSQL's NOTIFY
# arrives a moment later, on the next tick (tests/test_postgres.py waits for it)
@pytest.mark.parametrize("width", [80, 60])
def test_watch_keeps_the_number_and_date_whole(db_path: Path, width: int) -> None:
    writer = Register.open(db_path)
    reader = Register.open(db_path)
    try:
        shop_morning(writer)
        watcher = Watcher(reader, MOSCOW)
        watcher.poll()
        add_call(writer, "new", phone="+79035550011", called_at="2026-11-27T10:00:00Z")
        watcher.poll()
        out = io.StringIO()
        Console(file=out, width=width, color_system=None).print(
            watcher.render(datetime(2026, 11, 27, 11, 5, 7, tzinfo=UTC).astimezone(MOSCOW))
        )
        lines = out.getvalue().splitlines()
        assert max(len(line) for line in lines) <= width
        new = [line for line in lines if "│ 5 │" in line]
        assert len(new) == 1 and "│ 27.11.2026 13:00 │ +7 903 555-00-11 │" in new[0]
        assert ("новый" in new[0]) is (width == 80)  # at 60 the mark gives way; the row is bold
        assert any("│ 27.11.2026 11:30 │ +7 495 111-22-33 │" in line for line in lines)
    finally:
        reader.close()
        writer.close()


# -- plain-text styles ----------------------------------------------------------------------


def test_list_fmt_github_prints_every_column_whatever_the_width(register: Register) -> None:
    shop_morning(register)
    handle(register, 1, "Записан на ремонт")
    expected = (
        "|   № | Дата и время     | Номер            | Клиент               |   Попыток "
        "| Линия                        | Статус      | Результат         | Кто   |\n"
        "|-----|------------------|------------------|----------------------|-----------"
        "|------------------------------|-------------|-------------------|-------|\n"
        "|   4 | 27.11.2026 12:30 | номер скрыт      |                      |         1 "
        "| 201                          | Пропущен    |                   |       |\n"
        "|   3 | 27.11.2026 11:30 | +7 495 111-22-33 |                      |         1 "
        "| 9001100000, 9001100001 +1998 | Пропущен    |                   |       |\n"
        "|   2 | 27.11.2026 10:30 | +7 916 555-00-11 | Иванов Иван Петрович |         1 "
        "| 200                          | Пропущен    |                   |       |\n"
        "|   1 | 27.11.2026 10:20 | +7 916 555-00-11 | Иванов Иван Петрович |         1 "
        "| 200                          | Перезвонили | Записан на ремонт | Анна  |\n"
    )
    assert list_at(60, "--all", "--fmt", "github") == expected
    assert list_at(200, "--all", "--fmt", "github") == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fmt", "markdown"], "Неизвестный стиль таблицы 'markdown'; возможные: asciidoc, "),
        (["--fmt", "github", "--json"], "Укажите --json или --fmt, но не оба сразу."),
    ],
)
def test_bad_fmt_is_one_sentence(register: Register, args: list[str], message: str) -> None:
    add_call(register, "a", called_at="2026-11-27T07:30:00Z")
    result = runner.invoke(app, ["list", *args])
    assert result.exit_code == 1
    assert result.output.startswith(f"Ошибка: {message}")  # list is a staff command
    assert len(result.output.strip().splitlines()) == 1
