"""The clients directory: import from real CSV (both encodings, both delimiters) and XLSX files,
column detection, re-import, recognition of calls, and the `clients` commands."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest
from typer.testing import CliRunner

from beeline_missed.cli import app
from beeline_missed.directory import clients_file as clients
from beeline_missed.errors import UserError
from beeline_missed.store import Register
from tests.support.factories import add_call

runner = CliRunner()

# A 1C export: a title line, a blank line, then the header. Numbers in every habit.
pytestmark = pytest.mark.both_engines

HEADER = ["Код", "Наименование", "Телефон", "Мобильный телефон"]
ROWS = [
    ["000001", "Иванов Иван Иванович", "8 (916) 123-45-67", "+7 916 7654321, 79161112233"],
    ["000002", "ООО «Ромашка», сервис", "9035550011; 8-903-555-00-12", ""],
    ["000003", "", "89160000000", ""],  # no name
    ["000004", "Петров П.", "", ""],  # no number
    ["000005", "Сидоров", "звонить вечером", ""],  # no recognisable number
]
EXPECTED = {
    "Иванов Иван Иванович": {"+79161234567", "+79167654321", "+79161112233"},
    "ООО «Ромашка», сервис": {"+79035550011", "+79035550012"},
}


def csv_bytes(delimiter: str, encoding: str, rows: list[list[str]] | None = None) -> bytes:
    out = io.StringIO(newline="")
    out.write("Контрагенты\r\n\r\n")
    writer = csv.writer(out, delimiter=delimiter)
    writer.writerow(HEADER)
    writer.writerows(rows if rows is not None else ROWS)
    return out.getvalue().encode(encoding)


def write_xlsx(path: Path, rows: list[list[object]]) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Контрагенты"])
    sheet.append([])
    sheet.append(HEADER)
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def directory(reg: Register) -> dict[str, set[str]]:
    return {c.name: set(c.phones) for c in reg.clients.rows()}


def import_file(reg: Register, path: Path, **columns) -> tuple[clients.Parsed, dict[str, int]]:
    """What `clients import` does, streamed."""
    _, parsed, counts = clients.import_file(reg, path, **columns)
    return parsed, counts


@pytest.mark.parametrize(
    ("delimiter", "encoding"),
    [(";", "utf-8"), (",", "utf-8-sig"), (";", "cp1251"), (",", "cp1251"), ("\t", "utf-8")],
)
def test_csv_import_in_each_encoding_and_delimiter(
    register: Register, tmp_path: Path, delimiter: str, encoding: str
) -> None:
    path = tmp_path / "clients.csv"
    path.write_bytes(csv_bytes(delimiter, encoding))
    parsed, counts = import_file(register, path)
    assert directory(register) == EXPECTED
    assert parsed.rows_read == 5
    assert parsed.numbers_recognised == 5
    assert dict(parsed.skipped) == {
        clients.NO_NAME: 1,
        clients.NO_NUMBER: 1,
        clients.BAD_NUMBER: 1,
    }
    assert parsed.unrecognised == [(8, "звонить вечером")]
    assert counts["added"] == 2


def test_xlsx_import_reads_numbers_stored_as_numbers(register: Register, tmp_path: Path) -> None:
    rows: list[list[object]] = [list(r) for r in ROWS]
    rows[0][2] = 89161234567  # Excel keeps a typed-in number as a number
    rows[1][2] = 9035550011.0
    rows[1][3] = "8-903-555-00-12"
    path = write_xlsx(tmp_path / "clients.xlsx", rows)
    parsed, _ = import_file(register, path)
    assert directory(register) == EXPECTED
    assert parsed.rows_read == 5


def test_xlsx_saved_as_csv_name_is_still_read(register: Register, tmp_path: Path) -> None:
    xlsx = write_xlsx(tmp_path / "a.xlsx", [list(r) for r in ROWS])
    renamed = tmp_path / "export.csv"
    renamed.write_bytes(xlsx.read_bytes())
    import_file(register, renamed)
    assert directory(register) == EXPECTED


def test_reimport_updates_instead_of_duplicating(register: Register, tmp_path: Path) -> None:
    path = tmp_path / "clients.csv"
    path.write_bytes(csv_bytes(";", "cp1251"))
    import_file(register, path)
    _, again = import_file(register, path)
    assert (again["added"], again["updated"], again["unchanged"]) == (0, 0, 2)
    assert register.clients.count() == 2

    changed = [list(r) for r in ROWS]
    changed[0][1] = "Иванов И. И."  # renamed in 1C, same code
    changed[0][3] = ""  # the mobile numbers removed
    path.write_bytes(csv_bytes(";", "cp1251", changed))
    _, third = import_file(register, path)
    assert (third["added"], third["updated"], third["unchanged"]) == (0, 1, 1)
    assert directory(register) == {
        "Иванов И. И.": {"+79161234567"},
        "ООО «Ромашка», сервис": EXPECTED["ООО «Ромашка», сервис"],
    }


def test_without_a_code_column_clients_match_by_name(register: Register, tmp_path: Path) -> None:
    path = tmp_path / "plain.csv"
    path.write_text("Name,Phone\nИванов Иван,89161234567\n", encoding="utf-8")
    import_file(register, path)
    path.write_text("Name,Phone\n  ИВАНОВ   иван ,89161234567;89031112233\n", encoding="utf-8")
    _, counts = import_file(register, path)
    assert counts["updated"] == 1 and register.clients.count() == 1
    assert set(register.clients.rows()[0].phones) == {"+79161234567", "+79031112233"}


def test_same_client_twice_in_a_file_is_merged(register: Register, tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text(
        "Код;Наименование;Телефон\n7;Иванов;89161234567\n7;Иванов;89031112233\n", encoding="utf-8"
    )
    import_file(register, path)
    assert directory(register) == {"Иванов": {"+79161234567", "+79031112233"}}


def test_unknown_headers_need_the_column_options(register: Register, tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_text("Кто;Связь;Заметка\nИванов;89161234567;VIP\n", encoding="utf-8")
    rows = clients.read_table(path)
    with pytest.raises(UserError, match="--name-column и --phone-column"):
        clients.find_layout(rows)
    with pytest.raises(UserError, match="Столбца телефона «Факс» нет"):
        clients.find_layout(rows, name_column="кто", phone_columns=["Факс"])
    import_file(register, path, name_column="кто", phone_columns=["связь"])
    assert directory(register) == {"Иванов": {"+79161234567"}}


def test_column_numbers_for_a_file_without_header(register: Register, tmp_path: Path) -> None:
    path = tmp_path / "bare.csv"
    path.write_text("Иванов;89161234567\nПетров;+7 903 111 22 33\n", encoding="utf-8")
    import_file(register, path, name_column="1", phone_columns=["2"])
    assert directory(register) == {"Иванов": {"+79161234567"}, "Петров": {"+79031112233"}}


def test_english_headers_are_detected(tmp_path: Path) -> None:
    path = tmp_path / "en.csv"
    path.write_text("ID,Customer,Mobile phone,Work phone\n1,Acme,89161234567,\n", encoding="utf-8")
    layout = clients.find_layout(clients.read_table(path))
    assert (layout.name, layout.phones, layout.code) == (1, (2, 3), 0)


def test_calls_show_the_client_and_follow_directory_changes(register: Register) -> None:
    early = add_call(register, "before", "+79161234567")
    hidden = add_call(register, "hidden", None)
    assert register.calls.get(early).client is None
    counts = register.clients.upsert(
        [(None, "Иванов", [("+79161234567", "8 916 123-45-67")])], replace_phones=False
    )
    assert counts["calls_relinked"] == 1
    assert register.calls.get(early).client == "Иванов"
    assert register.calls.get(hidden).client is None
    # A call arriving now is linked at insert.
    later = add_call(register, "after", "+79161234567")
    assert register.calls.get(later).client == "Иванов"
    # The number moves to another client on re-import: existing calls follow.
    register.clients.upsert([(None, "Иванов", [("+79030000000", "")])])
    register.clients.upsert([(None, "Петрова", [("+79161234567", "")])])
    assert {register.calls.get(i).client for i in (early, later)} == {"Петрова"}
    # Re-linking is not a card edit: the card's version stays.
    assert register.calls.get(early).version == 1


def test_a_call_that_comes_in_during_an_import_is_linked_to_its_client(
    register: Register, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The import looks up which of its numbers have calls once, before it writes; a call
    that comes in after that (the daemon goes on), from a number not written yet, is
    linked when the number is."""
    from beeline_missed.store.clients import Clients

    look_up = Clients._mark_called
    arrived: list[int] = []

    def look_up_then_a_call_comes_in(self: Clients) -> tuple[int, bool]:
        found = look_up(self)
        arrived.append(add_call(register, "during", "+79161234567"))
        return found

    monkeypatch.setattr(Clients, "_mark_called", look_up_then_a_call_comes_in)
    counts = register.clients.upsert(
        [(None, "Петрова", [("+79035550011", "")]), (None, "Иванов", [("+79161234567", "")])],
        batch_size=1,
    )
    assert register.calls.get(arrived[0]).client == "Иванов"
    assert counts["calls_relinked"] == 1


def test_a_number_another_client_gets_during_a_first_import_still_moves_to_the_files(
    register: Register, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first import (an empty directory) does not look for other holders of its numbers:
    only it writes them. Unless another upsert writes between two of its batches (`clients
    add` at the counter): then it looks again, and the number is the file's alone."""
    from beeline_missed.store.clients import Clients

    next_batch = Clients._next_changed
    batches = 0

    def another_writer_between_batches(
        self: Clients, after: int, size: int
    ) -> tuple[int, int | None]:
        nonlocal batches
        batches += 1
        if batches == 2:  # the first batch is written
            other = Register.open(db_path)
            other.clients.upsert([(None, "Чужой", [("+79161234567", "")])], replace_phones=False)
            other.close()
        return next_batch(self, after, size)

    monkeypatch.setattr(Clients, "_next_changed", another_writer_between_batches)
    counts = register.clients.upsert(
        [("1", "Петрова", [("+79035550011", "")]), ("2", "Иванов", [("+79161234567", "")])],
        batch_size=1,
    )
    holders = {c.name: list(c.phones) for c in register.clients.rows()}
    assert holders == {"Петрова": ["+79035550011"], "Иванов": ["+79161234567"], "Чужой": []}
    assert counts["shared_count"] == 1


def test_find_by_name_any_case_and_by_number_in_any_form(register: Register) -> None:
    register.clients.upsert(
        [
            (None, "Иванов Иван", [("+79161234567", "")]),
            (None, "ООО Ромашка", [("+79035550011", "")]),
        ]
    )
    assert [c.name for c in register.clients.find("иВАН")] == ["Иванов Иван"]
    result = runner.invoke(app, ["clients", "find", "8 (916) 123-45-67", "--json"])
    assert result.exit_code == 0, result.output
    assert [r["name"] for r in json.loads(result.output)] == ["Иванов Иван"]
    assert [c.name for c in register.clients.find("5550011")] == ["ООО Ромашка"]
    assert register.clients.find("Сидоров") == []


def test_cli_import_prints_summary_and_json(register: Register, tmp_path: Path) -> None:
    path = tmp_path / "clients.csv"
    path.write_bytes(csv_bytes(",", "cp1251"))
    result = runner.invoke(app, ["clients", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert "Столбцы: имя «Наименование», телефоны «Телефон», «Мобильный телефон», код «Код»" in (
        result.output
    )
    assert "Строка 8: «звонить вечером» — не номер телефона." in result.output
    again = runner.invoke(app, ["clients", "import", str(path), "--json"])
    assert again.exit_code == 0, again.output
    data = json.loads(again.output)
    assert data["rows_read"] == 5
    assert data["numbers_recognised"] == 5
    assert data["rows_skipped"] == 3
    assert (data["clients_added"], data["clients_unchanged"]) == (0, 2)
    assert data["skipped"] == {
        "no name": 1,
        "no phone number": 1,
        "no recognisable phone number": 1,
    }


def figures(output: str) -> dict[str, str]:
    """A summary table's rows as {label: value}."""
    cells = (line.strip("│ ").split("│") for line in output.splitlines() if "│" in line)
    return {label.strip(): value.strip() for label, value in (c for c in cells if len(c) == 2)}


def test_cli_import_summary_table_has_every_figure_and_each_reason_a_row_was_skipped(
    register: Register, tmp_path: Path
) -> None:
    add_call(register, "s", "+79161234567")
    path = tmp_path / "clients.csv"
    path.write_bytes(csv_bytes(";", "utf-8"))
    result = runner.invoke(app, ["clients", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert figures(result.output) == {
        "строк прочитано": "5",
        "номеров распознано": "5",
        "номеров не распознано": "1",
        "клиентов добавлено": "2",
        "клиентов обновлено": "0",
        "клиентов без изменений": "0",
        "звонков теперь с другим клиентом": "1",
        "номеров у нескольких клиентов": "0",
        "строк пропущено": "3",
        "пропущено: нет имени": "1",
        "пропущено: нет номера телефона": "1",
        "пропущено: номер не распознан": "1",
    }


def test_cli_import_errors_are_one_sentence(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["clients", "import", str(tmp_path / "nope.csv")])
    assert missing.exit_code == 1
    assert "Файла" in missing.output and "Traceback" not in missing.output
    odd = tmp_path / "odd.csv"
    odd.write_text("a;b\n1;2\n", encoding="utf-8")
    result = runner.invoke(app, ["clients", "import", str(odd)])
    assert result.exit_code == 1
    assert "--name-column" in result.output


def test_clients_list_in_russian_alphabetical_order_whatever_the_case_and_yo(
    register: Register,
) -> None:
    # By code point «Ё» (U+0401) comes before «А» and a lower-case name after «Я».
    for name, number in [
        ("Жуков", "+79160000001"),
        ("Ёлкин Пётр", "+79160000002"),
        ("егоров", "+79160000003"),
        ("Абрамов", "+79160000004"),
        ("ёжиков", "+79160000005"),
    ]:
        assert runner.invoke(app, ["clients", "add", name, number]).exit_code == 0
    listed = json.loads(runner.invoke(app, ["clients", "list", "--json"]).output)
    assert [c["name"] for c in listed] == ["Абрамов", "егоров", "ёжиков", "Ёлкин Пётр", "Жуков"]


def test_the_register_keeps_no_index_on_the_raw_client_name(register: Register) -> None:
    # Every client of a big import would write a random page of it; lists use name_key's.
    assert (
        register.conn.execute(
            "SELECT count(*) FROM _migrations WHERE name = 'm120_drop_clients_name_index'"
        ).fetchone()[0]
        == 1
    )
    if register.engine == "sqlite":
        names = {row[1] for row in register.conn.execute("PRAGMA index_list(clients)")}
    else:
        names = {
            row[0]
            for row in register.conn.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'clients'"
            )
        }
    assert "clients_name" not in names
    assert "clients_name_key" in names


def test_cli_add_list_and_bad_number(register: Register) -> None:
    call_id = add_call(register, "s", "+79161234567")
    result = runner.invoke(app, ["clients", "add", "Иванов", "8 916 123-45-67", "+7 903 1112233"])
    assert result.exit_code == 0, result.output
    assert "Добавлен «Иванов»" in result.output
    assert "звонков с этим именем теперь: 1" in result.output
    assert register.calls.get(call_id).client == "Иванов"
    again = runner.invoke(app, ["clients", "add", "иванов", "79031112233"])
    assert "Уже есть:" in again.output
    listed = json.loads(runner.invoke(app, ["clients", "list", "--json"]).output)
    assert [(c["name"], c["phones"], c["calls"]) for c in listed] == [
        ("Иванов", ["+79031112233", "+79161234567"], 1)
    ]
    bad = runner.invoke(app, ["clients", "add", "Петров", "позвонить"])
    assert bad.exit_code == 1
    assert "«позвонить» — не номер телефона" in bad.output
    assert register.clients.count() == 1


def staging_left(register: Register) -> list[str]:
    """The import's scratch tables (or SQLite's scratch database) still there."""
    if register.engine == "sqlite":
        left = [row[1] for row in register.conn.execute("PRAGMA database_list")]
        left += [
            row[0]
            for row in register.conn.execute("SELECT name FROM temp.sqlite_master")
            if row[0].startswith("imp_")
        ]
        return [name for name in left if name not in ("main", "temp")]
    return [
        row[0]
        for row in register.conn.execute(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE 'imp\\_%'"
        )
    ]


def test_an_import_leaves_no_staging_behind_even_when_it_fails_half_way(
    register: Register,
) -> None:
    def entries(fail_at: int | None) -> Iterator[tuple[str | None, str, list[tuple[str, str]]]]:
        for i in range(6_000):
            if i == fail_at:
                raise UserError("Файл обрывается на строке 4001.")
            yield f"{i:06d}", f"Клиент {i}", [(f"+7916{i:07d}", f"8 916 {i:07d}")]

    with pytest.raises(UserError):
        register.clients.upsert(entries(fail_at=4_000))
    assert staging_left(register) == []
    assert register.clients.count() == 0  # a file that fails to read writes nothing
    counts = register.clients.upsert(entries(fail_at=None))
    assert counts["added"] == 6_000
    assert staging_left(register) == []
