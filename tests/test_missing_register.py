"""A register that does not exist is an error for every command that only reads it (a typo in
--db or BEELINE_MISSED_HOME must not read as "no missed calls"); the commands meant to start
a register create it and say where."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from beeline_missed.cli import app
from beeline_missed.store import Register

runner = CliRunner()

READ_COMMANDS = {
    "list": ["list"],
    "list-json": ["list", "--json"],
    "watch": ["watch", "--duration", "0"],
    "card": ["card", "1"],
    "card-edit": ["card", "1", "--status", "Перезвонили", "--result", "ok"],
    "clients-list": ["clients", "list"],
    "clients-find": ["clients", "find", "Иванов"],
    "panel": ["panel"],
    "inbox": ["inbox"],
    "replay": ["replay"],
    "status": ["status"],
    "unsubscribe": ["unsubscribe", "--all"],
    "report": ["report"],
    "reconcile": ["reconcile"],
}
STAFF = {"list", "list-json", "watch", "card", "card-edit", "clients-list", "clients-find", "panel"}


def test_mistyped_db_path_is_refused_not_an_empty_list(tmp_path: Path) -> None:
    """The example: `--db …/regsiter.sqlite list` said «Пропущенных звонков нет», exit 0."""
    (tmp_path / "register.sqlite").touch()
    typo = tmp_path / "regsiter.sqlite"
    result = subprocess.run(
        [sys.executable, "-m", "beeline_missed", "--db", str(typo), "list"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"Ошибка: Реестра звонков {typo} нет: проверьте --db, BEELINE_MISSED_DB и "
        "BEELINE_MISSED_HOME (новый реестр создают daemon, config init и clients import).\n"
    )
    assert not typo.exists()


@pytest.mark.parametrize("name", list(READ_COMMANDS))
def test_read_commands_refuse_a_missing_register(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv("BEELINE_API_TOKEN", "token")  # reconcile asks for it first
    missing = tmp_path / "typo" / "register.sqlite"
    monkeypatch.setenv("BEELINE_MISSED_HOME", str(missing.parent))
    result = runner.invoke(app, READ_COMMANDS[name])
    assert result.exit_code == 1, result.output
    prefix = "Ошибка: Реестра звонков" if name in STAFF else "Error: There is no register at"
    assert result.stderr.startswith(f"{prefix} {missing}"), result.stderr
    assert not missing.parent.exists()


def test_mistyped_db_environment_variable_is_refused(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Register.open(home / "register.sqlite").close()
    monkeypatch.setenv("BEELINE_MISSED_DB", str(home / "registr.sqlite"))
    result = runner.invoke(app, ["list", "--json"])
    assert result.exit_code == 1 and result.stdout == ""
    assert "registr.sqlite нет" in result.stderr


def test_clients_add_creates_the_register_and_says_where(home: Path) -> None:
    result = runner.invoke(app, ["clients", "add", "Иванов", "+79161234567"])
    assert result.exit_code == 0, result.output
    db = home / "register.sqlite"
    assert result.stderr == f"Создан новый реестр звонков: {db}.\n"
    assert db.exists()
    again = runner.invoke(app, ["clients", "add", "Петров", "+79031112233"])
    assert again.exit_code == 0 and again.stderr == ""  # said once, when it was made


def test_clients_import_creates_the_register_and_says_where(home: Path, tmp_path: Path) -> None:
    table = tmp_path / "clients.csv"
    table.write_text("Наименование;Телефон\nИванов;+79161234567\n", encoding="utf-8")
    result = runner.invoke(app, ["clients", "import", str(table), "--json"])
    assert result.exit_code == 0, result.output
    assert result.stderr == f"Создан новый реестр звонков: {home / 'register.sqlite'}.\n"


def test_config_init_creates_the_register_so_the_list_works(home: Path) -> None:
    result = runner.invoke(app, ["config", "init"])
    assert result.exit_code == 0, result.output
    assert f"Created a new register at {home / 'register.sqlite'}." in result.stderr
    listed = runner.invoke(app, ["list"])
    assert listed.exit_code == 0 and listed.stdout.strip() == "Пропущенных звонков нет."


def test_existing_empty_register_still_lists_nothing(home: Path) -> None:
    Register.open(home / "register.sqlite").close()
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0 and result.stdout.strip() == "Пропущенных звонков нет."


def test_a_home_that_is_a_file_is_named_in_one_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BEELINE_MISSED_HOME pointing at a file (a typo, an export saved under that name):
    `config init` raised FileExistsError's traceback, and the commands that create a register
    said "[Errno 17] File exists" without saying which part of the path was wrong."""
    not_a_folder = tmp_path / "clients.csv"
    not_a_folder.write_text("Наименование;Телефон\n", encoding="utf-8")
    monkeypatch.setenv("BEELINE_MISSED_HOME", str(not_a_folder / "shop"))
    init = runner.invoke(app, ["config", "init"])
    assert init.exit_code == 1 and "Traceback" not in init.output
    assert init.stderr == (
        f"Error: Cannot make the home folder {not_a_folder / 'shop'}: {not_a_folder} is a file, "
        "not a folder; set BEELINE_MISSED_HOME to a folder.\n"
    )
    link = runner.invoke(app, ["staff", "link", "petrov", "9001112202"])
    assert link.exit_code == 1
    assert link.stderr.endswith(f": {not_a_folder} is a file, not a folder.\n")
    added = runner.invoke(app, ["clients", "add", "Иванов", "+79161234567"])
    assert added.exit_code == 1
    assert added.stderr == (
        f"Ошибка: Не удаётся открыть реестр звонков {not_a_folder / 'shop' / 'register.sqlite'}"
        f": {not_a_folder} — файл, а не папка.\n"
    )
    assert not_a_folder.read_text(encoding="utf-8") == "Наименование;Телефон\n"
