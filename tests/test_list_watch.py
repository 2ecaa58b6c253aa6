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
from beeline_missed.register import Register
from beeline_missed.watch import Watcher, run_live
from tests.factories import add_call

runner = CliRunner()
MOSCOW = ZoneInfo("Europe/Moscow")


@pytest.fixture(autouse=True)
def moscow(home: Path) -> None:
    """The shop's zone in config.toml: times below are shown in Moscow time."""
    (home / "config.toml").write_text('timezone = "Europe/Moscow"\n', encoding="utf-8")


def handle(reg: Register, call_id: int, result: str = "Перезвонили, всё хорошо") -> None:
    reg.save_call(
        call_id,
        reg.get_call(call_id)["version"],
        status="called_back",
        result=result,
        user="Анна",
        handled_at="2026-11-27T12:00:00Z",
    )


def test_list_json_fields_newest_first_only_missed(register: Register) -> None:
    register.upsert_clients([(None, "Иванов Иван", [("+79161234567", "")])])
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
    register.upsert_clients([(None, "Иванов", [("+79161234567", "")])])
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
        assert [r["id"] for r in watcher.rows] == [arrived, before]
        assert watcher.new_ids == {arrived}
        assert watcher.open_count == 2
        assert watcher.poll() is False

        handle(writer, arrived)  # called back elsewhere: it leaves the list
        assert watcher.poll() is True
        assert [r["id"] for r in watcher.rows] == [before]
        assert (watcher.open_count, watcher.new_count, watcher.loads) == (1, 0, 3)
    finally:
        reader.close()
        writer.close()


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
