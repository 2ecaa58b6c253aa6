"""What the 1C side tells people: the sync's summary table and its record for `status`,
`onec check`'s findings and lines, and which fields a sync asks 1C for (`onec.sync`'s report
functions; the sync against the stand-in is in test_onec.py)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from beeline_missed import config
from beeline_missed.directory.clients_file import BAD_NUMBER, NO_NAME, NO_NUMBER
from beeline_missed.onec import sync as onec_sync
from beeline_missed.onec.client import Metadata, OnecClient, OnecError
from beeline_missed.simulator.onec import CLIENTS, SCHEMA, OnecSimulator, make_client
from beeline_missed.store import Register

# The default settings (only the onec_* ones are read); no file is opened.
SETTINGS = config.Settings(home=Path("/nonexistent"), db=Path("/nonexistent/register.sqlite"))
CONTACTS = SETTINGS.onec_contacts
CONTACT_COLUMNS = {SETTINGS.onec_contact_type, *SETTINGS.onec_phone_fields}


def published(**drop: Any) -> Metadata:
    """A base publishing everything the default settings name, less what `drop` says:
    entity=None drops the set, entity=[field, ...] drops fields, contacts=[column, ...] drops
    columns of the contact table (contacts=None the table itself)."""
    sets: dict[str, set[str]] = {}
    for entity, fields, tables in [
        (
            SETTINGS.onec_clients,
            ["Ref_Key", "Code", "DeletionMark", "IsFolder", SETTINGS.onec_client_name],
            {CONTACTS: None},
        ),
        *onec_sync.extra_sets(SETTINGS),
    ]:
        sets[entity] = {*fields, *tables}
    tables = {SETTINGS.onec_clients: {CONTACTS: set(CONTACT_COLUMNS)}}
    for key, value in drop.items():
        if key == "contacts":
            if value is None:
                sets[SETTINGS.onec_clients].discard(CONTACTS)
            else:
                tables[SETTINGS.onec_clients][CONTACTS] -= set(value)
        elif value is None:
            del sets[key]
        else:
            sets[key] -= set(value)
    return Metadata(sets=sets, tables=tables)


# -- the sync's summary table -------------------------------------------------------------


def test_the_sync_table_has_every_count_in_order_and_each_skip_reason_below() -> None:
    report = onec_sync.Report(
        skipped=Counter({NO_NUMBER: 2, NO_NAME: 1, onec_sync.NO_REF: 4}), unrecognised_count=3
    )
    counts = {"total": 7, "added": 5, "updated": "2", "removed": 1, "calls_relinked": 9}
    assert onec_sync.summary_rows(counts, report) == [
        ("клиентов в 1С с номерами", 7),
        ("добавлено", 5),
        ("обновлено", 2),
        ("без изменений", 0),  # not in the counts: shown as none
        ("удалено (нет в 1С или помечены на удаление)", 1),
        ("звонков теперь с другим клиентом", 9),
        ("пропущено: нет Ref_Key", 4),  # reasons in the order of their keys
        ("пропущено: нет имени", 1),
        ("пропущено: нет номера телефона", 2),
        ("номеров не распознано", 3),
    ]


def test_the_sync_table_has_no_unrecognised_row_when_every_number_was_read() -> None:
    report = onec_sync.Report(skipped=Counter({BAD_NUMBER: 1}))
    rows = onec_sync.summary_rows({}, report)
    assert rows[-1] == ("пропущено: номер не распознан", 1)
    assert [label for label, _ in rows].count("номеров не распознано") == 0
    assert all(isinstance(n, int) for _, n in rows)


# -- what a sync leaves for `status` --------------------------------------------------------


def sync_shop(onec: OnecSimulator, register: Register, home: Path, **kw: Any) -> Any:
    onec.add(
        CLIENTS,
        make_client("Иванов Иван", ["8 916 123-45-67"], code="000001"),
        make_client("Петрова", ["8 495 111-22-33"], code="000002"),
        make_client("Без номера", [], code="000003"),
        make_client("", ["8 903 000-00-01"], code="000004"),
    )
    settings = config.with_overrides(
        config.load(environ={"BEELINE_MISSED_HOME": str(home)}),
        onec_url=onec.base_url,
        onec_user=onec.user,
        onec_password=onec.password,
    )
    with OnecClient(onec.base_url, onec.user, onec.password) as client:
        return onec_sync.sync(register, client, settings, **kw), settings


def test_a_sync_records_its_counts_and_time_for_status_and_clears_an_old_error(
    onec: OnecSimulator, register: Register, home: Path
) -> None:
    register.meta.set(onec_sync.META_ERROR, json.dumps({"at": "x", "error": "old"}))
    now = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    (counts, report), _ = sync_shop(onec, register, home, now=now)
    expected = {
        "at": "2026-03-04T05:06:07Z",
        "added": 2,
        "updated": 0,
        "removed": 0,
        "total": 2,
        "skipped": 2,
    }
    assert json.loads(register.meta.get(onec_sync.META_LAST)) == expected
    assert register.meta.get(onec_sync.META_ERROR) is None
    assert {k: counts[k] for k in expected} == expected
    assert counts["unchanged"] == 0  # the register's own counts come along
    assert onec_sync.last_sync(register) == expected
    assert dict(report.skipped) == {NO_NAME: 1, NO_NUMBER: 1}


def test_a_failed_sync_keeps_the_last_good_one_and_its_error_without_the_password(
    onec: OnecSimulator, register: Register, home: Path
) -> None:
    sync_shop(onec, register, home)
    good = json.loads(register.meta.get(onec_sync.META_LAST))
    onec.password = "new-secret"  # the shop changed it in 1C; ours is now wrong
    with OnecClient(onec.base_url, onec.user, "old-secret") as client:
        settings = config.Settings(home=home, db=home / "register.sqlite")
        when = datetime(2026, 3, 4, 5, 6, 8, tzinfo=UTC)
        with pytest.raises(OnecError):
            onec_sync.sync(register, client, settings, now=when)
    last = onec_sync.last_sync(register)
    assert last is not None
    assert {k: last[k] for k in good} == good
    assert last["error_at"] == "2026-03-04T05:06:08Z"
    assert "odata" in last["error"] and "old-secret" not in last["error"]
    assert set(last) == {*good, "error", "error_at"}


def test_a_failure_without_words_is_recorded_by_its_kind(
    onec: OnecSimulator, register: Register, home: Path
) -> None:
    class Silent(RuntimeError):
        pass

    def fail(read: int) -> None:
        raise Silent()

    with pytest.raises(Silent):
        sync_shop(onec, register, home, progress=fail, now=datetime(2026, 5, 6, 7, 8, tzinfo=UTC))
    assert onec_sync.last_sync(register) == {"error": "Silent", "error_at": "2026-05-06T07:08:00Z"}


def test_status_shows_nothing_before_the_first_sync(register: Register) -> None:
    assert onec_sync.last_sync(register) is None


def test_status_shows_only_the_error_when_no_sync_ever_succeeded(register: Register) -> None:
    register.meta.set(
        onec_sync.META_ERROR, json.dumps({"at": "2026-01-02T03:04:05Z", "error": "1C не отвечает"})
    )
    assert onec_sync.last_sync(register) == {
        "error": "1C не отвечает",
        "error_at": "2026-01-02T03:04:05Z",
    }


# -- paging and progress ----------------------------------------------------------------------


def test_a_sync_reports_progress_page_by_page_and_the_total_once(
    onec: OnecSimulator, register: Register, home: Path
) -> None:
    onec.add(CLIENTS, *(make_client(f"Клиент {i}", [f"8 916 000-00-{i:02d}"]) for i in range(5)))
    onec.add(CLIENTS, make_client("Папка", folder=True))
    pages: list[int] = []
    totals: list[int] = []
    settings = config.with_overrides(
        config.load(environ={"BEELINE_MISSED_HOME": str(home)}), onec_page_size=2
    )
    with OnecClient(onec.base_url, onec.user, onec.password) as client:
        counts, report = onec_sync.sync(
            register, client, settings, progress=pages.append, on_total=totals.append
        )
    assert pages == [2, 2, 2]  # six records, folder included, two a page
    assert totals == [6]
    assert (counts["added"], report.read, report.folders) == (5, 5, 1)


def test_a_sync_asks_1c_only_for_live_records_and_the_fields_it_reads(
    onec: OnecSimulator, register: Register, home: Path
) -> None:
    onec.add(CLIENTS, make_client("Иванов", ["8 916 123-45-67"]))
    seen: list[Any] = []
    settings = config.load(environ={"BEELINE_MISSED_HOME": str(home)})
    with OnecClient(onec.base_url, onec.user, onec.password) as client:
        real_pages = client.pages

        def pages(entity: str, **kw: Any) -> Any:
            seen.append((entity, kw["page_size"], kw["select"], kw["filter"]))
            return real_pages(entity, **kw)

        client.pages = pages  # type: ignore[method-assign]
        onec_sync.sync(register, client, settings)
    assert seen == [
        (
            settings.onec_clients,
            settings.onec_page_size,
            [
                "Ref_Key",
                "Code",
                "DeletionMark",
                "IsFolder",
                settings.onec_client_name,
                settings.onec_contacts,
            ],
            "DeletionMark eq false",
        )
    ]


# -- which fields a sync reads ----------------------------------------------------------------


def test_a_sync_selects_the_fields_the_base_has_and_the_contact_table() -> None:
    # A base without Code and IsFolder (a catalog without a hierarchy) still syncs.
    metadata = published(**{SETTINGS.onec_clients: ["Code", "IsFolder"]})
    assert onec_sync.fields_to_read(metadata, SETTINGS) == [
        "Ref_Key",
        "DeletionMark",
        SETTINGS.onec_client_name,
        CONTACTS,
    ]


def test_a_sync_that_cannot_read_clients_says_why_in_both_languages() -> None:
    metadata = published(**{SETTINGS.onec_clients: [SETTINGS.onec_client_name]})
    with pytest.raises(OnecError) as caught:
        onec_sync.fields_to_read(metadata, SETTINGS)
    problem = (
        f"{SETTINGS.onec_clients} has no field {SETTINGS.onec_client_name}; "
        "set its name in config.toml."
    )
    assert str(caught.value) == problem
    assert caught.value.ru == (
        f"Клиентов из 1С не получить: {problem} (подробнее: beeline-missed onec check)"
    )


def test_a_sync_is_not_stopped_by_what_only_other_features_lack() -> None:
    metadata = published(**{SETTINGS.onec_bookings: None, SETTINGS.onec_cars: ["Ref_Key"]})
    assert CONTACTS in onec_sync.fields_to_read(metadata, SETTINGS)


# -- what `onec check` finds ------------------------------------------------------------------


def test_check_finds_nothing_missing_in_a_base_that_publishes_everything() -> None:
    assert onec_sync.check(published(), SETTINGS) == []


def test_check_names_a_missing_set_once_with_how_to_publish_it() -> None:
    problems = onec_sync.check(published(**{SETTINGS.onec_clients: None}), SETTINGS)
    assert problems == [
        f"The base does not publish {SETTINGS.onec_clients}: have the 1C administrator add it "
        "to the standard OData interface's content (for instance with the «Настройка "
        "стандартного интерфейса OData» data processor), or set its name in config.toml if "
        "your release calls it otherwise."
    ]


def test_check_names_each_missing_field_table_and_column() -> None:
    cars, orders = SETTINGS.onec_cars, SETTINGS.onec_orders
    metadata = published(
        **{
            SETTINGS.onec_clients: ["Ref_Key"],
            cars: [SETTINGS.onec_car_owner],
            orders: ["Number", "Date"],
        },
        contacts=[SETTINGS.onec_contact_type],
    )
    assert onec_sync.check(metadata, SETTINGS) == [
        f"{SETTINGS.onec_clients} has no field Ref_Key; set its name in config.toml.",
        f"{SETTINGS.onec_clients}.{CONTACTS} has no column {SETTINGS.onec_contact_type}; "
        "set its name in config.toml.",
        f"{cars} has no field {SETTINGS.onec_car_owner}; set its name in config.toml.",
        f"{orders} has no field Number; set its name in config.toml.",
        f"{orders} has no field Date; set its name in config.toml.",
    ]


def test_check_names_a_missing_contact_table_and_not_its_columns() -> None:
    problems = onec_sync.check(published(contacts=None), SETTINGS, only_clients=True)
    assert problems == [
        f"{SETTINGS.onec_clients} has no table {CONTACTS}; set onec_contacts in config.toml."
    ]


def test_check_trusts_a_contact_table_whose_columns_metadata_does_not_list() -> None:
    metadata = published()
    metadata.tables = {}
    assert onec_sync.check(metadata, SETTINGS) == []


def test_check_for_the_sync_looks_at_the_clients_only() -> None:
    metadata = published(**{SETTINGS.onec_bookings: None, SETTINGS.onec_orders: ["Number"]})
    assert onec_sync.check(metadata, SETTINGS, only_clients=True) == []
    assert len(onec_sync.check(metadata, SETTINGS)) == 2


# -- `onec check` against the stand-in, and its lines -------------------------------------


def test_diagnose_a_base_with_everything(onec: OnecSimulator) -> None:
    with OnecClient(onec.base_url, onec.user, onec.password) as client:
        found = onec_sync.diagnose(client, SETTINGS)
    assert found == {
        "url": onec.base_url,
        "user": onec.user,
        "reachable": True,
        "authorised": True,
        "sets": {
            SETTINGS.onec_clients: True,
            SETTINGS.onec_bookings: True,
            SETTINGS.onec_cars: True,
            SETTINGS.onec_orders: True,
        },
        "problems": [],
        "ok": True,
    }


@pytest.mark.parametrize(
    ("fault", "reachable", "authorised"),
    [
        ("password", True, False),  # 1C answered: the user is refused
        ("login page", True, False),  # a web page tells nothing of the user
        ("error", True, True),  # 1C's own error: reached, and it let us in
    ],
)
def test_diagnose_says_how_far_it_got(
    onec: OnecSimulator, fault: str, reachable: bool, authorised: bool
) -> None:
    password = "wrong" if fault == "password" else onec.password
    if fault == "login page":
        onec.fail("login_page")
    elif fault == "error":
        onec.fail("error")
    with OnecClient(onec.base_url, onec.user, password) as client:
        found = onec_sync.diagnose(client, SETTINGS)
    assert (found["reachable"], found["authorised"], found["ok"]) == (reachable, authorised, False)
    assert found["sets"] == {} and len(found["problems"]) == 1


def test_diagnose_an_unreachable_base() -> None:
    from tests.support.daemon import free_port

    url = f"http://127.0.0.1:{free_port()}/x/odata"
    with OnecClient(url, "odata", "p") as client:
        found = onec_sync.diagnose(client, SETTINGS)
    assert (found["reachable"], found["authorised"], found["ok"]) == (False, False, False)
    assert found["problems"][0].startswith("Cannot reach 1C")


def test_diagnose_names_what_is_missing(onec: OnecSimulator) -> None:
    del onec.sets[SETTINGS.onec_cars]
    with OnecClient(onec.base_url, onec.user, onec.password) as client:
        found = onec_sync.diagnose(client, SETTINGS)
    assert found["sets"][SETTINGS.onec_cars] is False
    assert found["sets"][SETTINGS.onec_clients] is True
    assert found["reachable"] and found["authorised"] and not found["ok"]
    assert found["problems"] == [
        f"The base does not publish {SETTINGS.onec_cars}: have the 1C administrator add it to "
        "the standard OData interface's content (for instance with the «Настройка "
        "стандартного интерфейса OData» data processor), or set its name in config.toml if "
        "your release calls it otherwise."
    ]


def findings(**changes: Any) -> dict[str, Any]:
    """What `diagnose` finds in a base that has everything, less what `changes` say."""
    found = {
        "url": "http://1c/odata",
        "user": "odata",
        "reachable": True,
        "authorised": True,
        "sets": {"Catalog_A": True, "Document_B": True},
        "problems": [],
        "ok": True,
    }
    return {**found, **changes}


def test_check_lines_for_a_base_with_everything() -> None:
    assert onec_sync.diagnosis_lines(findings()) == [
        "1C OData at http://1c/odata, user «odata»:",
        "  reachable: yes",
        "  authorised: yes",
        "  Catalog_A: published",
        "  Document_B: published",
        "Everything the configured features need is there.",
    ]


def test_check_lines_for_a_base_that_refuses_and_lacks() -> None:
    found = findings(
        authorised=False,
        sets={"Catalog_A": False, "Document_B": True},
        problems=["one.", "two."],
        ok=False,
    )
    assert onec_sync.diagnosis_lines(found) == [
        "1C OData at http://1c/odata, user «odata»:",
        "  reachable: yes",
        "  authorised: no",
        "  Catalog_A: NOT published",
        "  Document_B: published",
        "  problem: one.",
        "  problem: two.",
    ]


def test_check_lines_for_a_base_out_of_reach_say_nothing_of_the_user() -> None:
    found = findings(
        url="http://1c:81/odata",
        user="Администратор",
        reachable=False,
        authorised=False,
        sets={},
        problems=["Cannot reach 1C."],
        ok=False,
    )
    assert onec_sync.diagnosis_lines(found) == [
        "1C OData at http://1c:81/odata, user «Администратор»:",
        "  reachable: no",
        "  problem: Cannot reach 1C.",
    ]


def test_a_base_that_does_not_publish_the_deletion_mark_is_not_filtered_on_it(
    onec: OnecSimulator, register: Register, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1C answers 400 to a $filter on a field it does not publish.
    fields = [f for f in SCHEMA[CLIENTS]["fields"] if f != "DeletionMark"]
    monkeypatch.setitem(SCHEMA, CLIENTS, {**SCHEMA[CLIENTS], "fields": fields})
    client = make_client("Иванов", ["8 916 123-45-67"])
    del client["DeletionMark"]
    onec.add(CLIENTS, client)
    settings = config.load(environ={"BEELINE_MISSED_HOME": str(home)})
    with OnecClient(onec.base_url, onec.user, onec.password) as odata:
        counts, _ = onec_sync.sync(register, odata, settings)
    assert counts["added"] == 1
    assert [c.name for c in register.clients.rows()] == ["Иванов"]
