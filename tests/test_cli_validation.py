"""Every argument and setting goes through one check: a bad number, an unknown value, text
that is not UTF-8 or a date out of range is one sentence and a non-zero exit, never a
traceback or a daemon that answers and decides nothing."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from beeline_missed import config
from beeline_missed.cli import app
from beeline_missed.errors import UserError
from beeline_missed.store import Register
from tests.support.factories import add_call

runner = CliRunner()


def error_line(result, code: int = 1, prefix: str = "Error: ") -> str:
    """One line on stderr with the prefix, the exit status, nothing escaped."""
    assert result.exit_code == code, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, result.stderr
    return lines[0]


# -- numbers on the command line ----------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "1e999", "-inf"])
def test_daemon_settle_that_is_not_a_finite_grace_period_is_refused(
    tmp_path: Path, value: str
) -> None:
    """The example: these started a daemon that answered 200 and decided nothing."""
    result = subprocess.run(
        [sys.executable, "-m", "beeline_missed", "daemon", "--listen", "127.0.0.1:0",
         "--settle", value],
        env={**os.environ, "BEELINE_MISSED_PUBLIC_URL": "http://x/beeline/hook/0123456789"},
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"Invalid value for '--settle': '{value}' is not a number from 0 to" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (Path(os.environ["BEELINE_MISSED_HOME"]) / "register.sqlite").exists()


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["watch", "--interval", "nan"], "--interval"),
        (["watch", "--duration", "inf"], "--duration"),
        (["panel", "--interval", "nan"], "--interval"),
        (["demo", "--settle", "nan"], "--settle"),
        (["list", "--limit", "99999999999999999999999"], "--limit"),
        (["inbox", "--limit", "-1"], "--limit"),
        (["inbox", "--show", "99999999999999999999999"], "--show"),
        (["card", "1", "--expect-version", "99999999999999999999999"], "--expect-version"),
        (["subscribe", "--pattern", "201", "--expires", "1e999"], "--expires"),
    ],
)
def test_numbers_out_of_range_are_refused_by_the_option(args: list[str], option: str) -> None:
    text = error_line(runner.invoke(app, args), code=2)
    assert f"Invalid value for '{option}'" in text


def test_settings_flags_are_checked_like_the_file() -> None:
    settings = config.load()
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(UserError, match="--settle must be a number from 0 to"):
            config.with_overrides(settings, settle=bad)
    assert config.with_overrides(settings, settle=2.5).settle == 2.5


# -- the config file ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("setle = 2\n", "Unknown setting 'setle' in {path}; did you mean 'settle'?"),
        ("renew_fracton = 0.5\n", "Unknown setting 'renew_fracton' in {path}; did you mean "
                                  "'renew_fraction'?"),
        ("colour = 'red'\n", "Unknown setting 'colour' in {path}."),
        ("db = 5\n", "Setting 'db' in {path} must be a file path (text), not 5."),
        ("settle = inf\n", "Setting 'settle' in {path} has a bad value: inf"),
        ("settle = true\n", "Setting 'settle' in {path} has a bad value: True"),
        ("subscription_expires = 1.5\n", "has a bad value: 1.5 (it takes a whole number"),
        ("renew_fraction = 0\n", "Setting 'renew_fraction'"),
        ("smtp_port = 70000\n", "Setting 'smtp_port'"),
        ("auto_close = 'maybe'\n", "Setting 'auto_close' in {path} has a bad value: 'maybe' "
                                   "(it takes true or false)."),
        ("user = 1.5\n", "Setting 'user'"),
        ("mail_to = 5\n", "Setting 'mail_to'"),
        ("staff_names = 5\n", "Setting 'staff_names'"),
        ("unknown_targets = 'servce'\n", "Setting 'unknown_targets' in {path} has a bad value: "
                                          "'servce' (it takes one of: service, person)."),
        ("abonents_refresh_interval = 0\n", "Setting 'abonents_refresh_interval'"),
    ],
)  # fmt: skip
def test_config_file_values_and_keys_are_checked(home: Path, text: str, said: str) -> None:
    path = home / "config.toml"
    path.write_text(text, encoding="utf-8")
    line = error_line(runner.invoke(app, ["config", "show"]))
    assert said.format(path=path) in line


@pytest.mark.parametrize(
    ("text", "detail", "admin_command"),
    [
        ("setle = 2\n", "Unknown setting 'setle' in {path}; did you mean 'settle'?", "report"),
        ("timezone = 'Mars/Olympus'\n", "Unknown time zone 'Mars/Olympus'; use a name like "
                                         "Europe/Moscow.", "report"),
        # Only the daemon and the catch-up read working hours among admin commands.
        ("[working_hours]\nmon = '25:00-26:00'\n", "Working hours for mon: 25:00 is not a time "
                                                    "of day.", None),
    ],
)  # fmt: skip
def test_a_bad_setting_reaches_staff_in_russian_with_the_details_for_the_admin(
    register: Register, home: Path, text: str, detail: str, admin_command: str | None
) -> None:
    """Staff cannot fix config.toml: their commands say in Russian whom to show it, and keep
    the admin's details as they are; admin commands say the details alone."""
    path = home / "config.toml"
    path.write_text(text, encoding="utf-8")
    detail = detail.format(path=path)
    staff = error_line(runner.invoke(app, ["list"]), prefix="Ошибка: ")
    assert staff == (
        "Ошибка: В настройках программы ошибка, покажите это сообщение администратору: " + detail
    )
    if admin_command is not None:
        admin = error_line(runner.invoke(app, [admin_command]))
        assert admin == "Error: " + detail


def test_environment_text_that_is_not_utf8_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEELINE_MISSED_HOME", "/tmp/caf\udce9")
    line = error_line(runner.invoke(app, ["config", "show"]))
    assert "BEELINE_MISSED_HOME is not valid UTF-8 text" in line


# -- tracebacks that were: the examples ---------------------------------------------------


@pytest.fixture
def one_call(register: Register) -> int:
    return add_call(register, "s1", "+79161234567")


@pytest.mark.parametrize("number", ["99999999999999999999999", "0", "-5"])
def test_card_of_a_number_no_call_has_is_one_russian_sentence(one_call: int, number: str) -> None:
    line = error_line(runner.invoke(app, ["card", "--", number]), prefix="Ошибка: ")
    assert line == f"Ошибка: Звонка № {number} в реестре нет."


def test_report_dates_beyond_the_calendar_are_one_sentence(one_call: int) -> None:
    result = runner.invoke(app, ["report", "--from", "0001-01-01", "--to", "9999-12-31"])
    line = error_line(result)
    assert line == "Error: '0001-01-01' is out of range: give a date from 1970 to 9998."


def test_reconcile_moment_beyond_the_calendar_is_one_sentence(
    one_call: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BEELINE_API_TOKEN", "token")
    result = runner.invoke(app, ["reconcile", "--from", "0001-01-01", "--to", "2026-11-27"])
    assert "is out of range" in error_line(result)


@pytest.mark.parametrize(
    "args",
    [
        ["card", "1", "--status", "Перезвонили", "--result", "\udcff"],
        ["clients", "add", "Иван\udcffов", "+79161234567"],
        ["clients", "find", "\udcff"],
        ["report", "--where", "client ~ \udcff"],
        ["--db", "/tmp/\udcff.sqlite", "list"],
    ],
)
def test_text_that_is_not_utf8_is_one_sentence(one_call: int, args: list[str]) -> None:
    staff = "report" not in args
    line = error_line(runner.invoke(app, args), prefix="Ошибка: " if staff else "Error: ")
    assert "An argument is not valid UTF-8 text" in line and "\\udcff" in line


def test_text_that_is_not_utf8_from_a_real_shell(register: Register) -> None:
    """The real path: bytes in argv that are not UTF-8 reach Python as surrogates."""
    add_call(register, "s1", "+79161234567")
    result = subprocess.run(
        [os.fsencode(sys.executable), b"-m", b"beeline_missed", b"clients", b"add", b"\xff",
         b"+79161234567"],
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert b"Traceback" not in result.stderr
    assert result.stderr.startswith("Ошибка: An argument is not valid UTF-8 text".encode())
    assert register.clients.count() == 0


# -- unknown values of an option ----------------------------------------------------------


def test_inbox_state_that_does_not_exist_is_refused(register: Register) -> None:
    """The example: `inbox --state bogus` printed an empty table with exit 0."""
    line = error_line(runner.invoke(app, ["inbox", "--state", "bogus"]), code=2)
    assert "'bogus' is not one of: new, processed, duplicate, ignored, rejected." in line
    assert runner.invoke(app, ["inbox", "--state", "rejected"]).exit_code == 0


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["list"], "Ошибка: Не удалось воспользоваться файлом /srv/shop/register.sqlite: "
                   "No space left on device."),
        (["inbox"], "Error: Could not use /srv/shop/register.sqlite: "
                    "No space left on device."),
    ],
)  # fmt: skip
def test_a_file_error_no_command_foresaw_is_still_one_sentence(
    register: Register, monkeypatch: pytest.MonkeyPatch, args: list[str], said: str
) -> None:
    """The last resort for the class: an OSError that no command turns into its own words (a
    full disk, which this machine cannot have, stands in for them) is one sentence in the
    command's language and exit 1, not a traceback."""

    def disk_full(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "/srv/shop/register.sqlite")

    monkeypatch.setattr("beeline_missed.store.register.connect", disk_full)
    prefix = said.split(":")[0] + ": "
    assert error_line(runner.invoke(app, args), prefix=prefix) == said


# -- staff speak Russian ------------------------------------------------------------------


def test_staff_commands_speak_russian(register: Register) -> None:
    empty = runner.invoke(app, ["clients", "list"])
    assert empty.stdout.strip() == (
        "Справочник клиентов пуст; загрузите его командой `clients import`."
    )
    added = runner.invoke(app, ["clients", "add", "Иванов", "+79161234567"])
    assert added.stdout.strip() == "Добавлен «Иванов» (+79161234567)."
    found = runner.invoke(app, ["clients", "find", "Сидоров"])
    assert found.stdout.strip() == "Клиентов по запросу «Сидоров» не найдено."
    bad = runner.invoke(app, ["clients", "add", "Петров", "позвонить"])
    assert error_line(bad, prefix="Ошибка: ") == (
        "Ошибка: «позвонить» — не номер телефона: российский номер — 10 цифр после +7 или 8, "
        "например 8 916 123-45-67."
    )
    nothing = runner.invoke(app, ["clients", "find", "  "])
    said = error_line(nothing, prefix="Ошибка: ")
    assert said == "Ошибка: Укажите часть имени или номер телефона."


def test_admin_commands_keep_the_english_prefix(register: Register) -> None:
    line = error_line(runner.invoke(app, ["inbox", "--show", "5"]))
    assert line == "Error: There is no event 5 in the inbox."


def test_card_answer_that_is_not_utf8_is_one_sentence(one_call: int, register: Register) -> None:
    """Bytes typed into the card's questions that are not UTF-8 (a terminal in cp1251)."""
    result = subprocess.run(
        [sys.executable, "-m", "beeline_missed", "card", str(one_call)],
        input=b"2\n" + "Перезвонил\n".encode("cp1251"),
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert b"Traceback" not in result.stderr
    assert result.stderr.decode().startswith("Ошибка: Ответ — не текст в UTF-8")
    assert register.calls.get(one_call).status == "missed"


@pytest.mark.parametrize("brk", ["\r", "\x85", "\u2028"])  # "\n" separates numbers
def test_a_line_break_typed_into_an_argument_keeps_the_error_one_line(brk: str) -> None:
    result = runner.invoke(app, ["clients", "add", "Тест", f"0{brk}0"])
    assert error_line(result, prefix="Ошибка: ") == (
        "Ошибка: «0 0» — не номер телефона: российский номер — 10 цифр после +7 или 8, "
        "например 8 916 123-45-67."
    )
