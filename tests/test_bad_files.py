"""Malformed files a shop really hands us: each gets one clear sentence and a non-zero exit,
never a traceback. `clients import` with broken CSV/XLSX exports, and broken config files."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from beeline_missed.cli import app

runner = CliRunner()


def one_sentence(result) -> str:
    """The error as the user sees it: one line on stderr, 'Error: ….' (admin commands) or
    'Ошибка: ….' (staff commands), non-zero exit."""
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    text = result.stderr.strip()
    assert text.startswith(("Error: ", "Ошибка: ")), text
    assert "\n" not in text and "Traceback" not in text
    assert text.endswith("."), text
    return text


def workbook(rows: list[list[object]]) -> bytes:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def zip_of(name: str, text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, text)
    return buffer.getvalue()


def with_part(book: bytes, part: str, xml: str) -> bytes:
    """The workbook with one part's XML replaced («sheet1.xml», «styles.xml»)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(book)) as source, zipfile.ZipFile(buffer, "w") as archive:
        for item in source.infolist():
            data = source.read(item.filename)
            archive.writestr(item, xml if item.filename.endswith(part) else data)
    return buffer.getvalue()


HEADER = "Наименование;Телефон\n"
BAD_TABLES = {
    "empty.csv": (b"", "Не удалось найти в файле столбец имени"),
    # A cell past csv's field limit (a quote never closed swallows the rest of the file) was
    # a traceback (_csv.Error); the header is found, the row that breaks is named.
    "cell-too-long.csv": (
        (HEADER + 'Иванов;+79161234567\n"Петров;' + "x" * 200_000 + "\n").encode(),
        "не читается как таблица CSV в строке 3: в ячейке больше 131 072 знаков",
    ),
    "header-cell-too-long.csv": (
        ("Наименование;" + "x" * 200_000 + "\n").encode(),
        "не читается как таблица CSV в строке 1: в ячейке больше 131 072 знаков",
    ),
    "no-phone-column.csv": ("Наименование;Адрес\nИванов;Москва\n".encode(), "столбец телефона"),
    "no-name-column.csv": ("Телефон;Код\n+79161234567;1\n".encode(), "столбец имени"),
    "binary-garbage.csv": (bytes(range(128, 256)) * 8, "не похож ни на таблицу CSV"),
    "not-a-zip.xlsx": (b"PK\x03\x04" + bytes(range(256)) * 2, "как книгу XLSX"),
    "not-a-zip.xlsm": (b"PK\x03\x04" + bytes(range(256)) * 2, "как книгу XLSX"),
    "csv-named-xlsm.xlsm": ((HEADER + "Иванов;+79161234567\n").encode(), "как книгу XLSX"),
    "zip-without-workbook.xlsx": (zip_of("readme.txt", "hello"), "как книгу XLSX"),
    "truncated.xlsx": (workbook([["Наименование", "Телефон"]])[:300], "как книгу XLSX"),
    "csv-named-xlsx.xlsx": ((HEADER + "Иванов;+79161234567\n").encode(), "как книгу XLSX"),
    "bad-cell.xlsx": (
        with_part(
            workbook([["Наименование", "Телефон"]]),
            "sheet1.xml",
            '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            '<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>Наименование</t></is></c>'
            '<c r="B1" t="inlineStr"><is><t>Телефон</t></is></c></row>'
            '<row r="2"><c r="A2"><v>not a number</v></c></row></sheetData></worksheet>',
        ),
        "как книгу XLSX",
    ),
    "broken-sheet.xlsx": (
        with_part(workbook([["Наименование", "Телефон"]]), "sheet1.xml", "<worksheet><sheetData>"),
        "как книгу XLSX",
    ),
    # The sheet opens (its size is read first) and breaks further on.
    "broken-late-sheet.xlsx": (
        with_part(
            workbook([["Наименование", "Телефон"]]),
            "sheet1.xml",
            '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            '<dimension ref="A1:B2"/><sheetData><row r="1"><c',
        ),
        "как книгу XLSX",
    ),
    # openpyxl wraps the reason in a message of three lines: the sentence gives the reason.
    "bad-dimension.xlsx": (
        with_part(
            workbook([["Наименование", "Телефон"]]),
            "sheet1.xml",
            '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            '<dimension ref="A1:Q"/><sheetData/></worksheet>',
        ),
        "как книгу XLSX",
    ),
    # Cut in the middle of «я» (two bytes in UTF-8): read as Windows-1251, every name
    # would be garbled; the rows after the cut are lost anyway.
    "cut-off-utf8.csv": ((HEADER + "Иванов;+79161234567\nВася").encode()[:-1], "обрывается"),
    "cut-off-utf16.txt": ((HEADER + "Иванов;+79161234567\n").encode("utf-16")[:-1], "обрывается"),
    "old-excel.xls": (bytes.fromhex("d0cf11e0a1b11ae1") + bytes(512), "старая книга .xls"),
    "empty-sheet.xlsx": (workbook([]), "Не удалось найти в файле столбец имени"),
    "sheet-without-phones.xlsx": (
        workbook([["Наименование", "Адрес"], ["Иванов", "М"]]),
        "телефона",
    ),
}


def import_bad(tmp_path: Path, name: str) -> tuple[Path, str]:
    """`clients import` of the bad table `name`, written to tmp_path: its path and the one
    sentence the user gets."""
    path = tmp_path / name
    path.write_bytes(BAD_TABLES[name][0])
    return path, one_sentence(runner.invoke(app, ["clients", "import", str(path)]))


@pytest.mark.parametrize("name", list(BAD_TABLES))
def test_clients_import_bad_file(tmp_path: Path, name: str) -> None:
    path, text = import_bad(tmp_path, name)
    said = BAD_TABLES[name][1]
    assert said in text
    assert str(path) in text or "не похож" in text or "Не удалось найти" in text, text


@pytest.mark.parametrize(
    ("name", "sentence"),
    [
        (
            "cell-too-long.csv",
            "Файл {path} не читается как таблица CSV в строке 3: в ячейке больше 131 072 знаков; "
            "выгрузите его из 1С заново.",
        ),
        (
            "cut-off-utf8.csv",
            "Файл {path} обрывается посреди буквы: похоже, он записан не до конца; "
            "выгрузите его из 1С заново.",
        ),
    ],
)
def test_a_broken_file_is_named_with_what_is_wrong(
    tmp_path: Path, name: str, sentence: str
) -> None:
    path, text = import_bad(tmp_path, name)
    assert text == "Ошибка: " + sentence.format(path=path)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("bad-cell.xlsx", "'not a number'"),
        ("broken-sheet.xlsx", "no element found"),
        ("broken-late-sheet.xlsx", "line 1"),
        ("bad-dimension.xlsx", "A1:Q"),  # the cause, not openpyxl's three lines around it
        ("not-a-zip.xlsx", "zip"),
    ],
)
def test_a_broken_workbook_is_named_with_the_reason_openpyxl_gives(
    tmp_path: Path, name: str, reason: str
) -> None:
    path, text = import_bad(tmp_path, name)
    assert text.startswith(f"Ошибка: Не удаётся прочитать {path} как книгу XLSX: "), text
    assert reason in text and "openpyxl" not in text and not text.endswith(".."), text


def test_clients_import_missing_file_and_folder(tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    text = one_sentence(runner.invoke(app, ["clients", "import", str(missing)]))
    assert text == f"Ошибка: Файла {missing} нет."
    # A folder exists: saying "no such file" would send staff looking for the wrong thing.
    text = one_sentence(runner.invoke(app, ["clients", "import", str(tmp_path)]))
    assert text == f"Ошибка: {tmp_path} — это папка; укажите файл выгрузки в ней."


def test_clients_import_utf16_export_is_read(tmp_path: Path) -> None:
    """Excel's «Unicode text» export (UTF-16 with BOM, tabs) is a good file, not garbage."""
    path = tmp_path / "clients.txt"
    path.write_bytes("Наименование\tТелефон\nИванов Иван\t+7 916 123-45-67\n".encode("utf-16"))
    result = runner.invoke(app, ["clients", "import", str(path), "--json"])
    assert result.exit_code == 0, result.stderr
    assert '"clients_added": 1' in result.stdout


def test_clients_import_wrong_cell_types_are_reported_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "types.xlsx"
    path.write_bytes(
        workbook([["Наименование", "Телефон"], ["Иванов", 3.14], [None, None], [42, "89161234567"]])
    )
    result = runner.invoke(app, ["clients", "import", str(path), "--json"])
    assert result.exit_code == 0, result.stderr
    assert "3.14" in result.stdout  # named as an unrecognised number, not silently dropped


BAD_CONFIGS = {
    "not-toml": (b"this is not toml\n", "is not valid TOML"),
    "unclosed-string": (b'api_url = "http://x\n', "is not valid TOML"),
    "duplicate-key": (b"settle = 1\nsettle = 2\n", "is not valid TOML"),
    "wrong-type": (b'settle = "ten seconds"\n', "Setting 'settle'"),
    "negative-number": (b"settle = -5\n", "Setting 'settle'"),
    "not-a-number": (b"settle = nan\n", "Setting 'settle'"),
    "list-for-number": (b"max_body_bytes = [1, 2]\n", "Setting 'max_body_bytes'"),
    "not-utf8": (b'user = "\xcf\xe5\xf2\xf0\xee\xe2"\n', "is not UTF-8 text"),
    "binary": (b"\xff\xfe\x00\x01garbage", "is not UTF-8 text"),
}


@pytest.mark.parametrize("name", list(BAD_CONFIGS))
def test_bad_config_file(home: Path, name: str) -> None:
    data, said = BAD_CONFIGS[name]
    (home / "config.toml").write_bytes(data)
    for command in (["config", "show"], ["list"]):
        text = one_sentence(runner.invoke(app, command))
        assert said in text and str(home / "config.toml") in text


def test_config_path_is_a_folder(home: Path) -> None:
    (home / "config.toml").mkdir()
    text = one_sentence(runner.invoke(app, ["config", "show"]))
    assert "Cannot read config file" in text


def test_unknown_time_zone_in_config(home: Path) -> None:
    (home / "config.toml").write_text('timezone = "Mars/Olympus"\n')
    text = one_sentence(runner.invoke(app, ["list"]))
    assert "Mars/Olympus" in text


def test_register_that_is_not_sqlite(home: Path) -> None:
    (home / "register.sqlite").write_bytes(b"this is a text file, not a register" * 100)
    text = one_sentence(runner.invoke(app, ["list"]))
    assert "register" in text


def test_config_init_is_private(home: Path) -> None:
    result = runner.invoke(app, ["config", "init"])
    assert result.exit_code == 0
    assert os.stat(home / "config.toml").st_mode & 0o777 == 0o600


# A workbook broken anywhere: openpyxl fails on it with whatever exception its parts give
# (IndexError for a book without sheets, TypeError for an unknown attribute, ParseError, …).
def _clients_book() -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Контрагенты"])
    sheet.append(["Наименование", "Телефон", "Код"])
    for i in range(5):
        sheet.append([f"Клиент {i}", f"+7916123{i:04d}", i])
    sheet.merge_cells("A1:C1")
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


CLIENTS_BOOK = _clients_book()
BOOK_PARTS = sorted(zipfile.ZipFile(io.BytesIO(CLIENTS_BOOK)).namelist())
DAMAGE = [b"<", b">", b'"', b"&", b"<x>", b"</c>", b'r="ZZ9"', b't="s"', b"<v>9</v>", b'ref="A1:Q"']


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    part=st.sampled_from(BOOK_PARTS),
    cuts=st.lists(
        st.tuples(st.integers(0, 10_000), st.integers(0, 30), st.sampled_from([b"", *DAMAGE])),
        min_size=1,
        max_size=5,
    ),
)
def test_a_workbook_broken_in_any_part_is_refused_in_one_sentence(
    tmp_path_factory: pytest.TempPathFactory, part: str, cuts: list[tuple[int, int, bytes]]
) -> None:
    from beeline_missed.directory import clients_file
    from beeline_missed.errors import UserError

    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(CLIENTS_BOOK)) as source, zipfile.ZipFile(buffer, "w") as out:
        for name in BOOK_PARTS:
            data = bytearray(source.read(name))
            if name == part:
                for at, length, insert in cuts:
                    at %= len(data) + 1
                    data[at : at + length] = insert
            out.writestr(name, bytes(data))
    path = tmp_path_factory.mktemp("book") / "clients.xlsx"
    path.write_bytes(buffer.getvalue())
    try:
        list(clients_file.open_table(path).rows())
    except UserError as exc:
        assert "\n" not in str(exc) and str(exc).endswith("."), str(exc)
