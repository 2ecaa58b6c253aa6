"""Which 1C «Контрагенты» records become clients, and what a sync reports about the rest
(`onec.sync.record_of`, one record at a time; the sync itself is in test_onec.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from beeline_missed import config
from beeline_missed.onec import sync as onec_sync

# The default settings (record_of reads only the onec_* ones); no file is opened.
SETTINGS = config.Settings(home=Path("/nonexistent"), db=Path("/nonexistent/register.sqlite"))


def record(**fields: Any) -> dict[str, Any]:
    """A 1C record as OData gives it, a client with one phone unless told otherwise."""
    item: dict[str, Any] = {
        "Ref_Key": "0b6f6a52-1c1a-11ee-9a8b-000c29a1b2c3",
        "Code": "000000001",
        "Description": "Иванов Иван",
        "DeletionMark": False,
        "IsFolder": False,
        "КонтактнаяИнформация": [
            {"Тип": "Телефон", "Представление": "8 (916) 123-45-67", "НомерТелефона": ""}
        ],
    }
    item.update(fields)
    return item


def read(*items: dict[str, Any]) -> tuple[list[Any], onec_sync.Report]:
    report = onec_sync.Report()
    return [onec_sync.record_of(item, SETTINGS, report) for item in items], report


def contacts(*rows: Any) -> dict[str, Any]:
    return {"КонтактнаяИнформация": list(rows)}


def test_a_client_with_a_phone_is_usable() -> None:
    (got,), report = read(record())
    assert got == (
        "0b6f6a52-1c1a-11ee-9a8b-000c29a1b2c3",
        "000000001",
        "Иванов Иван",
        [("+79161234567", "8 (916) 123-45-67")],
        True,
    )
    assert (report.read, report.folders, dict(report.skipped)) == (1, 0, {})


def test_folders_are_counted_and_not_read_as_clients() -> None:
    got, report = read(record(IsFolder=True), record(IsFolder=True), record())
    assert got[:2] == [None, None] and got[2] is not None
    assert (report.folders, report.read) == (2, 1)


def test_a_record_marked_for_deletion_is_no_client_even_if_1c_sends_it() -> None:
    """The sync asks for `DeletionMark eq false`; a 1C that ignores the filter still sends
    them, and they must leave the directory."""
    got, report = read(record(DeletionMark=True), record())
    assert got[0] is None and got[1] is not None
    assert report.read == 1


def test_a_record_without_its_key_is_skipped_and_counted() -> None:
    got, report = read(record(Ref_Key=""), record(Ref_Key=None), record())
    assert got[:2] == [None, None]
    assert report.read == 3
    assert dict(report.skipped) == {onec_sync.NO_REF: 2}


def test_a_record_without_a_name_or_a_number_is_kept_unusable_and_said_why() -> None:
    got, report = read(
        record(Description="  "),
        record(**contacts()),
        record(**contacts({"Тип": "Телефон", "Представление": "звонить вечером"})),
    )
    assert [g[4] for g in got] == [False, False, False]
    assert got[0][2] == got[0][0]  # named by its key for the reports
    assert dict(report.skipped) == {
        onec_sync.NO_NAME: 1,
        onec_sync.NO_NUMBER: 1,
        onec_sync.BAD_NUMBER: 1,
    }
    assert report.unrecognised == [("Иванов Иван", "звонить вечером")]


def test_only_phone_rows_are_read_and_each_number_once() -> None:
    (got,), _ = read(
        record(
            **contacts(
                {"Тип": "АдресЭлектроннойПочты", "Представление": "89031112233"},
                {
                    "Тип": "Телефон",
                    "Представление": "+7 916 123-45-67",
                    "НомерТелефона": "89161234567",
                },
                {"Тип": "Телефон", "Представление": "8 903 555-00-11; 8 903 555-00-12"},
                "not a row",
            )
        )
    )
    assert got[3:] == (
        [
            ("+79161234567", "+7 916 123-45-67"),
            ("+79035550011", "8 903 555-00-11"),
            ("+79035550012", "8 903 555-00-12"),
        ],
        True,
    )


def test_a_column_repeating_a_good_number_badly_is_not_an_error() -> None:
    """«Представление» shows the number; «НомерТелефона» may hold it in a form of its own."""
    row = {"Тип": "Телефон", "Представление": "8 916 123-45-67", "НомерТелефона": "доб. 12"}
    _, report = read(record(**contacts(row)))
    assert (report.unrecognised_count, report.unrecognised) == (0, [])


def test_numbers_that_are_not_numbers_are_counted_and_the_first_few_shown() -> None:
    many = onec_sync.MAX_EXAMPLES + 3
    rows = [{"Тип": "Телефон", "Представление": f"нет-{i}"} for i in range(many)]
    _, report = read(record(Description="", Code="42", **contacts(*rows)))
    assert report.unrecognised_count == many
    assert report.unrecognised == [("42", f"нет-{i}") for i in range(onec_sync.MAX_EXAMPLES)]


def test_the_skips_and_the_bad_numbers_add_up_over_the_records() -> None:
    bad = {"Тип": "Телефон", "Представление": "нет"}
    _, report = read(
        record(Description=""),
        record(Description=" "),
        record(**contacts()),
        record(**contacts()),
        record(**contacts(bad)),
        record(**contacts(bad, bad)),
    )
    assert dict(report.skipped) == {
        onec_sync.NO_NAME: 2,
        onec_sync.NO_NUMBER: 2,
        onec_sync.BAD_NUMBER: 2,
    }
    assert report.unrecognised_count == 3


@pytest.mark.parametrize("table", [None, 5, "8 916 123-45-67", {"Тип": "Телефон"}])
def test_a_contact_table_that_is_not_a_list_gives_no_number(table: Any) -> None:
    (got,), report = read(record(**{"КонтактнаяИнформация": table}))
    assert got is not None and got[3:] == ([], False)
    assert dict(report.skipped) == {onec_sync.NO_NUMBER: 1}
