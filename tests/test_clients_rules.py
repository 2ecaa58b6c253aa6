"""The clients directory against careless and hostile files: one number claimed by two
clients, renamed clients without codes, merged XLSX headers, numbers that cannot be numbers,
ё and е, and imports written in many short transactions."""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pytest
from typer.testing import CliRunner

from beeline_missed.cli import app
from beeline_missed.directory import clients_file as clients
from beeline_missed.errors import UserError
from beeline_missed.store import Register
from beeline_missed.store.clients import Clients
from tests.support.factories import add_call
from tests.support.peek import (
    busy_timeout,
    undo_client_name_key_migration,
    write_lock_held_elsewhere,
)

runner = CliRunner()


def directory(reg: Register) -> dict[str, set[str]]:
    return {c.name: set(c.phones) for c in reg.clients.rows()}


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def import_cli(path: Path, *options: str) -> dict:
    """`clients import --json`, with any column options; it must succeed."""
    result = runner.invoke(app, ["clients", "import", str(path), "--json", *options])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# -- one number, two clients ----------------------------------------------------------------

SHARED = "Наименование;Телефон\nСидоров;+79165550001\nКозлов;8 916 555-00-01\n"


def test_number_of_two_clients_goes_to_the_last_row_and_is_reported(
    register: Register, tmp_path: Path
) -> None:
    call = add_call(register, "s", "+79165550001")
    data = import_cli(write_csv(tmp_path / "c.csv", SHARED))
    assert data["numbers_shared"] == 1
    assert data["shared_numbers"] == [
        {"phone": "+79165550001", "clients": ["Сидоров", "Козлов"], "kept_by": "Козлов"}
    ]
    assert directory(register) == {"Сидоров": set(), "Козлов": {"+79165550001"}}
    assert register.calls.get(call).client == "Козлов"
    assert data["calls_relinked"] == 1
    text = runner.invoke(app, ["clients", "import", str(tmp_path / "c.csv")]).output
    assert (
        "Номер +7 916 555-00-01 указан у нескольких клиентов («Сидоров», «Козлов»): "
        "оставлен у «Козлов»." in text
    )


def test_numbers_claimed_by_several_clients_beyond_those_shown_are_counted(
    register: Register, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "c.csv",
        "Наименование;Телефон\nСидоров;+79165550001, +79165550002, +79165550003\n"
        "Козлов;+79165550001, +79165550002, +79165550003\n",
    )
    _, _, counts = clients.import_file(register, path)
    assert counts["shared_count"] == 3
    lines = clients.shared_lines(counts, shown=1)
    assert lines == [
        "Номер +7 916 555-00-01 указан у нескольких клиентов («Сидоров», «Козлов»): "
        "оставлен у «Козлов».",
        "… и ещё таких номеров: 2.",
    ]
    assert clients.shared_lines(counts, shown=2)[-1] == "… и ещё таких номеров: 1."
    assert len(clients.shared_lines(counts, shown=3)) == 3  # all shown: no «и ещё»


def test_reimport_of_a_file_with_a_shared_number_changes_nothing(
    register: Register, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "c.csv", SHARED)
    import_cli(path)
    again = import_cli(path)
    assert (again["clients_added"], again["clients_updated"], again["clients_unchanged"]) == (
        0,
        0,
        2,
    )
    assert again["calls_relinked"] == 0
    assert directory(register) == {"Сидоров": set(), "Козлов": {"+79165550001"}}


def test_reimport_with_a_corrected_name_and_no_code_updates_by_number(
    register: Register, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "c.csv", "Наименование;Телефон\nСидоров;+79165550001\n")
    import_cli(path)
    write_csv(path, "Наименование;Телефон\nСидоров Иван Петрович;8 916 555-00-01\n")
    data = import_cli(path)
    assert (data["clients_added"], data["clients_updated"]) == (0, 1)
    assert directory(register) == {"Сидоров Иван Петрович": {"+79165550001"}}


def test_a_namesake_in_the_file_is_not_taken_over_by_number(
    register: Register, tmp_path: Path
) -> None:
    """Козлов lists Сидоров's old number, but Сидоров is in the file by name: Козлов is a
    new client and takes the number; Сидоров keeps his name and his other number."""
    path = write_csv(tmp_path / "c.csv", "Наименование;Телефон\nСидоров;+79165550001\n")
    import_cli(path)
    write_csv(
        path,
        "Наименование;Телефон\nКозлов;+79165550001\nСидоров;+79165550002\n",
    )
    data = import_cli(path)
    assert (data["clients_added"], data["clients_updated"]) == (1, 1)
    assert directory(register) == {"Сидоров": {"+79165550002"}, "Козлов": {"+79165550001"}}


def test_a_number_the_directory_gave_another_client_moves_and_is_reported(
    register: Register, tmp_path: Path
) -> None:
    register.clients.upsert([("77", "Петров", [("+79165550001", "")])])
    path = write_csv(tmp_path / "c.csv", "Код;Наименование;Телефон\n1;Козлов;+79165550001\n")
    data = import_cli(path)
    assert data["shared_numbers"] == [
        {"phone": "+79165550001", "clients": ["Петров", "Козлов"], "kept_by": "Козлов"}
    ]
    assert directory(register) == {"Петров": set(), "Козлов": {"+79165550001"}}


def test_clients_add_takes_the_number_and_says_from_whom(register: Register) -> None:
    register.clients.upsert([(None, "Сидоров", [("+79165550001", "")])])
    result = runner.invoke(app, ["clients", "add", "Козлов", "8 916 555-00-01"])
    assert result.exit_code == 0, result.output
    assert "оставлен у «Козлов»" in result.output and "«Сидоров»" in result.output
    assert directory(register) == {"Сидоров": set(), "Козлов": {"+79165550001"}}


@pytest.mark.parametrize("batch_size", [1, 2, 3, 1000])
def test_batches_give_the_same_directory_as_one_transaction(
    register: Register, batch_size: int
) -> None:
    """Numbers moving between clients of different batches end where one transaction puts
    them, and re-importing changes nothing."""
    register.clients.upsert(
        [("1", "Сидоров", [("+79165550001", "")]), ("2", "Петров", [("+79165550002", "")])]
    )
    calls = {p: add_call(register, p, p) for p in ("+79165550001", "+79165550002")}
    entries = [
        ("2", "Петров", [("+79165550001", "")]),
        ("3", "Козлов", [("+79165550002", "")]),
        ("1", "Сидоров", [("+79165550003", "")]),
        ("3", "Козлов", [("+79165550004", "")]),
        ("4", "Орлов", [("+79165550001", "")]),
    ]
    counts = register.clients.upsert(entries, batch_size=batch_size)
    assert directory(register) == {
        "Сидоров": {"+79165550003"},
        "Петров": set(),
        "Козлов": {"+79165550002", "+79165550004"},
        "Орлов": {"+79165550001"},
    }
    assert (counts["added"], counts["updated"], counts["shared_count"]) == (2, 2, 1)
    assert register.calls.get(calls["+79165550001"]).client == "Орлов"
    assert register.calls.get(calls["+79165550002"]).client == "Козлов"
    again = register.clients.upsert(entries, batch_size=batch_size)
    assert (again["added"], again["updated"], again["unchanged"]) == (0, 0, 4)


def test_a_file_that_breaks_half_way_writes_nothing(register: Register) -> None:
    register.clients.upsert([(None, "Сидоров", [("+79165550001", "")])])

    def rows():
        yield (None, "Козлов", [("+79165550001", "")])
        raise UserError("Cannot read the file half-way.")

    with pytest.raises(UserError):
        register.clients.upsert(rows(), batch_size=1)
    assert directory(register) == {"Сидоров": {"+79165550001"}}
    # The staging tables are gone: the next import starts clean.
    register.clients.upsert([(None, "Орлов", [("+79165550009", "")])])
    assert set(directory(register)) == {"Сидоров", "Орлов"}


def test_reimporting_an_unchanged_file_needs_no_write_lock(
    register: Register, db_path: Path
) -> None:
    """Only clients that change are written: an unchanged file is re-imported while another
    connection holds the register's write lock (as the daemon does for a moment per event)."""
    entries = [(str(i), f"Клиент {i}", [(f"+7916555{i:04d}", "")]) for i in range(50)]
    register.clients.upsert(entries, batch_size=7)
    busy_timeout(register, 200)
    with write_lock_held_elsewhere(db_path):
        again = register.clients.upsert(entries, batch_size=7)
    assert (again["added"], again["updated"], again["unchanged"]) == (0, 0, 50)


def test_a_client_added_elsewhere_during_an_import_keeps_its_id(
    register: Register, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New clients' ids are planned before the batches; a client another process adds
    meanwhile (`clients add` in a second terminal) moves the plan up instead of clashing."""
    other = Register.open(db_path)
    planned = Clients._next_changed
    batches = 0

    def next_batch(self: Clients, after: int, size: int) -> tuple[int, int | None]:
        nonlocal batches
        if self is register.clients:
            batches += 1
            if batches == 3:  # two batches of the import are written
                orlov = [(None, "Орлов", [("+79165550999", "")])]
                other.clients.upsert(orlov, replace_phones=False)
        return planned(self, after, size)

    monkeypatch.setattr(Clients, "_next_changed", next_batch)
    entries = [(None, f"Клиент {i}", [(f"+7916555{i:04d}", "")]) for i in range(6)]
    counts = register.clients.upsert(entries, batch_size=1)
    other.close()
    assert batches > 3 and counts["added"] == 6
    expected = {f"Клиент {i}": {f"+7916555{i:04d}"} for i in range(6)}
    assert directory(register) == {**expected, "Орлов": {"+79165550999"}}
    assert register.clients.count() == 7


# -- merged XLSX headers --------------------------------------------------------------------


def test_xlsx_merged_phone_header_reads_every_column_under_it(
    register: Register, tmp_path: Path
) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Контрагенты"])
    sheet.append(["Код", "Наименование", "Телефоны", None])
    sheet.merge_cells("C2:D2")
    sheet.append(["1", "Иванов", "+79161234567", "8 903 111-22-33"])
    sheet.append(["2", "Петров", None, "89035550011"])  # only in the second column
    book.save(tmp_path / "merged.xlsx")
    data = import_cli(tmp_path / "merged.xlsx")
    assert data["columns"]["phones"] == ["Телефоны", "Телефоны"]
    assert directory(register) == {
        "Иванов": {"+79161234567", "+79031112233"},
        "Петров": {"+79035550011"},
    }


def test_xlsx_header_over_two_rows_by_merged_cells(register: Register, tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Наименование", "Телефоны", None])
    sheet.append([None, "Мобильный", "Домашний"])
    sheet.merge_cells("A1:A2")
    sheet.merge_cells("B1:C1")
    sheet.append(["Иванов", "+79161234567", "8 495 123-45-67"])
    # A client on two rows, the name merged down over both.
    sheet.append(["Петров", "89035550011", None])
    sheet.append([None, None, "8 495 765-43-21"])
    sheet.merge_cells("A4:A5")
    book.save(tmp_path / "two-rows.xlsx")
    data = import_cli(tmp_path / "two-rows.xlsx")
    assert data["columns"]["phones"] == ["Телефоны / Мобильный", "Телефоны / Домашний"]
    assert data["rows_read"] == 3 and data["rows_skipped"] == 0
    assert directory(register) == {
        "Иванов": {"+79161234567", "+74951234567"},
        "Петров": {"+79035550011", "+74957654321"},
    }


def test_xlsx_header_over_two_rows_below_a_title_names_each_column_by_both(
    register: Register, tmp_path: Path
) -> None:
    """1C's title above; the code's header only on the second row, beside the phones: it
    is the code, not one more unnamed column under «Телефоны»."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Контрагенты"])
    sheet.append([])
    sheet.append(["Наименование", "Телефоны", None, None])
    sheet.append([None, "Мобильный", "Домашний", "Код"])
    sheet.merge_cells("A3:A4")
    sheet.merge_cells("B3:C3")
    sheet.append(["Иванов", "+79161234567", "8 495 123-45-67", "000123"])
    book.save(tmp_path / "titled.xlsx")
    data = import_cli(tmp_path / "titled.xlsx")
    assert data["columns"] == {
        "name": "Наименование",
        "phones": ["Телефоны / Мобильный", "Телефоны / Домашний"],
        "code": "Код",
    }
    assert data["numbers_not_recognised"] == 0
    (client,) = register.clients.rows()
    assert (client.name, client.external_id) == ("Иванов", "000123")


def test_csv_of_a_merged_header_reads_the_unnamed_column_after_phones(
    register: Register, tmp_path: Path
) -> None:
    """Excel saves a merged «Телефоны» as the header and an empty cell after it."""
    path = write_csv(
        tmp_path / "c.csv",
        "Наименование;Телефоны;;Адрес\nИванов;+79161234567;89031112233;Москва\n"
        "Петров;;89035550011;Тула\n",
    )
    data = import_cli(path)
    assert data["columns"]["phones"] == ["Телефоны", "столбец 3"]
    assert directory(register) == {
        "Иванов": {"+79161234567", "+79031112233"},
        "Петров": {"+79035550011"},
    }


# -- numbers that cannot be numbers ---------------------------------------------------------

IMPOSSIBLE = ["123-45-67", "8 916 123 45 6", "+7 891 612 34 56", "12345678901234"]


@pytest.mark.parametrize("text", IMPOSSIBLE)
def test_clients_add_refuses_a_number_that_cannot_be_one(register: Register, text: str) -> None:
    result = runner.invoke(app, ["clients", "add", "Тест", text])
    assert result.exit_code == 1
    message = result.stderr.strip()
    assert f"«{text}» — не номер телефона" in message
    assert "\n" not in message and "Traceback" not in message
    assert register.clients.count() == 0


def test_import_counts_impossible_numbers_as_unrecognised(
    register: Register, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "c.csv",
        "Наименование;Телефон\nТест;123-45-67\nКороткий;8 916 123 45 6, 89161234567\n",
    )
    data = import_cli(path)
    assert data["numbers_not_recognised"] == 2
    assert data["unrecognised"] == [
        {"row": 2, "text": "123-45-67"},
        {"row": 3, "text": "8 916 123 45 6"},
    ]
    assert data["skipped"] == {clients.BAD_NUMBER: 1}
    assert directory(register) == {"Короткий": {"+79161234567"}}


def test_numbers_given_by_column_number_must_be_real_ones(tmp_path: Path) -> None:
    """Without a header the first row with a real number is data; «123-45-67» is not one."""
    rows = [["Иванов", "123-45-67"], ["Петров", "89161234567"]]
    layout = clients.find_layout(rows, name_column="1", phone_columns=["2"])
    assert layout.first_data == 1


# -- ё and е --------------------------------------------------------------------------------


def test_find_folds_yo(register: Register) -> None:
    register.clients.upsert([(None, "Ёлкин Пётр", [("+79161234567", "")])])
    for text in ("елкин", "ЁЛКИН", "петр", "Пётр"):
        result = runner.invoke(app, ["clients", "find", text, "--json"])
        assert result.exit_code == 0, result.output
        assert [r["name"] for r in json.loads(result.stdout)] == ["Ёлкин Пётр"], text


def test_reimport_matches_a_name_spelt_with_e(register: Register) -> None:
    register.clients.upsert([(None, "Ёлкин Пётр", [("+79161234567", "")])])
    counts = register.clients.upsert([(None, "Елкин Петр", [("+79031112233", "")])])
    assert (counts["added"], counts["updated"]) == (0, 1)
    assert directory(register) == {"Елкин Петр": {"+79031112233"}}


def test_report_contains_operator_folds_yo(register: Register) -> None:
    register.clients.upsert([(None, "Ёлкин Пётр", [("+79161234567", "")])])
    add_call(register, "s1", "+79161234567")
    add_call(register, "s2", "+79031112233")
    day = ["--from", "2026-11-27", "--to", "2026-11-27", "--format", "json"]
    for where, calls in (["client ~ елкин", 1], ["client ~ ПЁТР", 1], ["client !~ елкин", 1]):
        result = runner.invoke(app, ["report", *day, "--where", where])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["total"]["calls"] == calls, where


def test_migration_fills_the_search_key_of_existing_clients(db_path: Path) -> None:
    register = Register.open(db_path)
    register.clients.upsert([(None, "Ёлкин  Пётр", [("+79161234567", "")])])
    register.close()
    undo_client_name_key_migration(db_path)  # the register as it was: no name_key column
    register = Register.open(db_path)
    assert [c.name for c in register.clients.find("елкин петр")] == ["Ёлкин  Пётр"]
    register.close()


# -- how a file is read: delimiter, encoding, sheet, columns -------------------------------


def test_the_delimiter_that_finds_the_header_wins_over_steadier_columns(
    register: Register, tmp_path: Path
) -> None:
    """Names with a comma split ',' into two steady columns; ';' finds the header (rows
    ending early have fewer ';' columns), and the header decides."""
    rows = "".join(
        f"Фамилия{i}, Имя;+7916555{i:04d};{'VIP' if i % 2 else ''}\n".replace(";\n", "\n")
        for i in range(6)
    )
    path = write_csv(
        tmp_path / "c.csv", "Выгрузка, телефоны\nНаименование;Телефон;Заметка\n" + rows
    )
    data = import_cli(path)
    assert data["clients_added"] == 6
    assert directory(register)["Фамилия1, Имя"] == {"+79165550001"}


def test_a_headerless_file_is_split_by_the_delimiter_giving_steady_columns(
    register: Register, tmp_path: Path
) -> None:
    """No header to tell: the delimiter whose columns agree on most rows, and give more than
    one column, is the file's (tab here; ';' would give one column on every row)."""
    path = write_csv(
        tmp_path / "c.txt",
        "Иванов Иван\t89161234567\nПетров Пётр\t89031112233\nСидоров\t89160000000\tVIP\n",
    )
    import_cli(path, "--name-column", "1", "--phone-column", "2")
    assert directory(register) == {
        "Иванов Иван": {"+79161234567"},
        "Петров Пётр": {"+79031112233"},
        "Сидоров": {"+79160000000"},
    }


def test_a_utf16_big_endian_export_is_read(register: Register, tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    text = "Наименование\tТелефон\nИванов Иван\t+7 916 123-45-67\n"
    path.write_bytes(b"\xfe\xff" + text.encode("utf-16-be"))
    import_cli(path)
    assert directory(register) == {"Иванов Иван": {"+79161234567"}}


def test_a_workbook_is_read_at_the_sheet_it_was_saved_open_at(
    register: Register, tmp_path: Path
) -> None:
    book = openpyxl.Workbook()
    book.active.title = "Справка"
    book.active.append(["Выгрузка контрагентов, см. лист «Клиенты»"])
    clients_sheet = book.create_sheet("Клиенты")
    clients_sheet.append(["Наименование", "Телефон"])
    clients_sheet.append(["Иванов Иван", "+7 916 123-45-67"])
    book.active = 1
    book.save(tmp_path / "c.xlsx")
    import_cli(tmp_path / "c.xlsx")
    assert directory(register) == {"Иванов Иван": {"+79161234567"}}


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--name-column", "5", "--phone-column", "3"], "Столбца 5 для имени в файле нет."),
        (["--name-column", "0", "--phone-column", "3"], "Столбца 0 для имени в файле нет."),
        (["--name-column", "2", "--phone-column", "9"], "Столбца 9 для телефона в файле нет."),
        (
            ["--name-column", "Фамилия"],
            "Столбца имени «Фамилия» нет; столбцы в файле: «Код», «Наименование», «Телефон», "
            "«Адрес».",
        ),
    ],
)
def test_a_column_the_file_does_not_have_is_named_with_those_it_has(
    tmp_path: Path, options: list[str], said: str
) -> None:
    path = write_csv(tmp_path / "c.csv", "Код;Наименование;Телефон;Адрес\n1;Иванов;89161234567;М\n")
    result = runner.invoke(app, ["clients", "import", str(path), *options])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Ошибка: {said}"


@pytest.mark.parametrize(
    ("text", "options", "said"),
    [
        (
            "",
            [],
            "Не удалось найти в файле столбец имени («Наименование») и столбец телефона "
            "(«Телефон») (первая строка: пустая); укажите столбцы через --name-column и "
            "--phone-column.",
        ),
        (
            "Кто;Связь\nИванов;89161234567\n",
            ["--name-column", "Кто"],
            "Не удалось найти в файле столбец телефона («Телефон») (первая строка: «Кто», "
            "«Связь»); укажите столбцы через --name-column и --phone-column.",
        ),
        (
            "Кто;Связь\nИванов;89161234567\n",
            ["--phone-column", "Связь"],
            "Не удалось найти в файле столбец имени («Наименование») (первая строка: «Кто», "
            "«Связь»); укажите столбцы через --name-column и --phone-column.",
        ),
        (
            "Иванов;позвонить\n",
            ["--name-column", "1", "--phone-column", "2"],
            "Не удалось найти в файле указанные столбцы (первая строка: «Иванов», «позвонить»); "
            "укажите столбцы через --name-column и --phone-column.",
        ),
    ],
)
def test_columns_not_found_are_said_with_the_files_first_row(
    tmp_path: Path, text: str, options: list[str], said: str
) -> None:
    path = write_csv(tmp_path / "c.csv", text)
    result = runner.invoke(app, ["clients", "import", str(path), *options])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Ошибка: {said}"


def test_a_column_asked_of_an_empty_file_finds_no_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", "")
    result = runner.invoke(app, ["clients", "import", str(path), "--name-column", "Фамилия"])
    assert result.exit_code == 1
    assert result.stderr.strip() == ("Ошибка: Столбца имени «Фамилия» нет; столбцы в файле: нет.")


def test_rows_cut_short_before_the_phone_or_the_code_column(
    register: Register, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "c.csv",
        "Наименование;Телефон;Код\nИванов\nПетров;89031112233\nСидоров;89160000000;7\n",
    )
    data = import_cli(path)
    assert data["skipped"] == {clients.NO_NUMBER: 1}
    assert directory(register) == {"Петров": {"+79031112233"}, "Сидоров": {"+79160000000"}}
    assert [c.external_id for c in register.clients.rows()] == [None, "7"]


def test_a_workbook_whose_open_sheet_is_gone_is_read_at_its_first(
    register: Register, tmp_path: Path
) -> None:
    """A book saved open at a sheet since deleted (its activeTab past the last sheet)."""
    import io
    import zipfile

    book = openpyxl.Workbook()
    book.active.append(["Наименование", "Телефон"])
    book.active.append(["Иванов Иван", "+7 916 123-45-67"])
    book.create_sheet("Пусто")
    buffer = io.BytesIO()
    book.save(buffer)
    out = io.BytesIO()
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/workbook.xml":
                data = data.replace(b'activeTab="0"', b'activeTab="7"')
                assert b'activeTab="7"' in data
            target.writestr(item, data)
    (tmp_path / "c.xlsx").write_bytes(out.getvalue())
    import_cli(tmp_path / "c.xlsx")
    assert directory(register) == {"Иванов Иван": {"+79161234567"}}


def test_merged_cells_fill_rows_shorter_than_the_merge() -> None:
    """A book written without its sheet's size (1C's own XLSX writer may) gives rows of any
    length: a merge reaching past a row's end still fills the row out to it."""
    merges = [(0, 1, 0, 3), (1, 0, 2, 0)]  # «Телефоны» over B1:D1; a name over A2:A3
    rows = [["Наименование", "Телефоны"], ["Иванов"], [""]]
    assert list(clients._fill_merges(rows, merges)) == [
        ["Наименование", "Телефоны", "Телефоны", "Телефоны"],
        ["Иванов"],
        ["Иванов"],
    ]
    # A merge starting at or past the row's end has nothing to fill in.
    assert list(clients._fill_merges([["a"]], [(0, 2, 0, 3)])) == [["a", "", "", ""]]
    assert list(clients._fill_merges([["a"]], [(0, 1, 0, 2)])) == [["a", "", ""]]
    # One column merged down over a row that ends before it.
    assert list(clients._fill_merges([["a", "b", "c"], ["x"]], [(0, 2, 1, 2)])) == [
        ["a", "b", "c"],
        ["x", "", "c"],
    ]


def test_a_header_over_rows_of_different_lengths_names_every_column() -> None:
    assert clients._stacked_headers(
        [["Наименование", "Телефоны"], ["", "Мобильный", "Рабочий"]]
    ) == [
        "Наименование",
        "Телефоны / Мобильный",
        "Рабочий",
    ]


def test_import_tells_its_progress_row_by_row(register: Register, tmp_path: Path) -> None:
    lines = "".join(f"Клиент {i};+7916555{i:04d}\n" for i in range(2500))
    path = write_csv(tmp_path / "c.csv", "Наименование;Телефон\n" + lines)
    told: list[int] = []
    _, parsed, _ = clients.import_file(register, path, progress=told.append)
    assert sum(told) == 2500 and told[0] == clients.PROGRESS_EVERY
    assert (parsed.rows_read, parsed.numbers_recognised) == (2500, 2500)


def test_a_big_file_counts_every_row_and_every_reason_across_its_blocks(
    register: Register, tmp_path: Path
) -> None:
    """Counts are kept per block of PROGRESS_EVERY rows: a file of several blocks, with blank
    lines, short rows, rows without a name or with no real number, and numbers on separate
    lines of one cell."""
    lines = ["Код;Наименование;Телефон"]
    for i in range(2600):
        if i % 500 == 7:
            lines.append("")  # blank lines between blocks are not data
        elif i % 500 == 8:
            lines.append(f"{i}")  # a row cut short: no name, no number
        elif i % 500 == 9:
            lines.append(f"{i};Без номера {i};123-45-67")
        else:
            lines.append(f'{i};Клиент {i};"+7916{i:07d}\n+7903{i:07d}"')
    path = write_csv(tmp_path / "c.csv", "\n".join(lines) + "\n")
    _, parsed, counts = clients.import_file(register, path)
    assert parsed.rows_read == 2600 - 6  # the 6 blank lines are not rows
    assert parsed.numbers_recognised == 2 * (2600 - 18)
    assert dict(parsed.skipped) == {clients.NO_NAME: 6, clients.BAD_NUMBER: 6}
    assert parsed.unrecognised_count == 6
    assert counts["added"] == 2600 - 18
    assert directory(register)["Клиент 2599"] == {"+79160002599", "+79030002599"}


def test_unrecognised_numbers_are_shown_up_to_the_limit_and_all_counted(
    register: Register, tmp_path: Path
) -> None:
    bad = clients.MAX_EXAMPLES + 2
    lines = "".join(f"Клиент {i};123-45-{i:02d}\n" for i in range(bad))
    path = write_csv(tmp_path / "c.csv", "Наименование;Телефон\n" + lines)
    _, parsed, _ = clients.import_file(register, path)
    assert parsed.unrecognised_count == bad
    assert parsed.unrecognised == [(i + 2, f"123-45-{i:02d}") for i in range(clients.MAX_EXAMPLES)]


def test_columns_given_by_name_are_looked_for_below_a_title(
    register: Register, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "c.csv", "Контрагенты\n\nКто;Связь\nИванов;89161234567\n")
    import_cli(path, "--name-column", "кто", "--phone-column", "Связь")
    assert directory(register) == {"Иванов": {"+79161234567"}}


def test_columns_given_by_number_are_named_by_the_row_above_the_first_number(
    register: Register, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "c.csv", "Контрагенты\nКто;Связь\nИванов;89161234567\n")
    data = import_cli(path, "--name-column", "1", "--phone-column", "2")
    assert data["columns"] == {"name": "Кто", "phones": ["Связь"], "code": None}
    assert directory(register) == {"Иванов": {"+79161234567"}}


def test_a_file_whose_first_row_is_a_client_has_its_columns_named_by_number(
    register: Register, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "c.csv", "Иванов;89161234567\nПетров;89031112233\n")
    data = import_cli(path, "--name-column", "1", "--phone-column", "2")
    assert data["columns"] == {"name": "столбец 1", "phones": ["столбец 2"], "code": None}
    assert directory(register) == {"Иванов": {"+79161234567"}, "Петров": {"+79031112233"}}


def test_a_name_column_by_header_and_a_phone_column_by_number(
    register: Register, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "c.csv", "Кто;Связь\nИванов;89161234567\n")
    import_cli(path, "--name-column", "Кто", "--phone-column", "2")
    assert directory(register) == {"Иванов": {"+79161234567"}}


@pytest.mark.parametrize(
    ("headers", "name", "phones"),
    [
        (["Наименование контрагента", "Телефон"], 0, (1,)),  # no exact word: a stem
        (["Наименование, телефон", "Телефон"], 0, (1,)),  # the name column is not a phone's
        (["Наименование", "Телефоны", "", "", "Адрес"], 0, (1, 2, 3)),  # unnamed ones under it
        (["Наименование", "Контакты,тел."], 0, (1,)),  # a comma between words
        (["\ufeffНаименование", "Телефон"], 0, (1,)),  # a stray byte-order mark
    ],
)
def test_header_words_find_the_columns(headers: list[str], name: int, phones: tuple) -> None:
    layout = clients.find_layout([headers, ["Иванов", "89161234567", "", "", ""]])
    assert (layout.name, layout.phones) == (name, phones)


def test_a_number_stored_as_a_float_in_a_workbook_is_its_digits() -> None:
    """1C and Excel may store 79161234567 as 7.9161234567E10: openpyxl gives a float."""
    assert clients._cell(7.9161234567e10) == "79161234567"
    assert clients._cell(12.5) == "12.5"
    assert clients._cell(None) == ""


def test_clients_add_without_a_number_is_refused(register: Register) -> None:
    result = runner.invoke(app, ["clients", "add", "Иванов", " , "])
    assert result.exit_code == 1
    assert result.stderr.strip() == "Ошибка: Укажите хотя бы один номер телефона."
    assert register.clients.count() == 0
