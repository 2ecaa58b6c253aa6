"""1C:Альфа-Авто over OData: the stand-in as 1C answers, the client's errors, `clients sync`
(register and CLI) and `onec check`, all over real HTTP to the stand-in on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from beeline_missed import config
from beeline_missed.cli import app
from beeline_missed.onec import sync as onec_sync
from beeline_missed.onec.client import (
    OnecAuthError,
    OnecClient,
    OnecError,
    OnecNotJson,
    OnecNotPublished,
    OnecTimeout,
    OnecUnreachable,
)
from beeline_missed.simulator.onec import CLIENTS, OnecSimulator, make_client
from beeline_missed.store import Register
from tests.support.daemon import free_port
from tests.support.factories import add_call
from tests.support.peek import onec_refs

runner = CliRunner()
pytestmark = pytest.mark.both_engines

ENTITY_PATH = "Catalog_%D0%9A%D0%BE%D0%BD%D1%82%D1%80%D0%B0%D0%B3%D0%B5%D0%BD%D1%82%D1%8B"


def settings_for(onec: OnecSimulator, home: Path, **changes: Any) -> config.Settings:
    env = {
        "BEELINE_MISSED_HOME": str(home),
        "BEELINE_MISSED_1C_URL": onec.base_url,
        "BEELINE_MISSED_1C_USER": onec.user,
        "BEELINE_MISSED_1C_PASSWORD": onec.password,
    }
    return config.with_overrides(config.load(environ=env), **changes)


def client_for(onec: OnecSimulator, password: str | None = None, **kw: Any) -> OnecClient:
    return OnecClient(onec.base_url, onec.user, password or onec.password, **kw)


def directory(reg: Register) -> dict[str, set[str]]:
    return {c.name: set(c.phones) for c in reg.clients.rows()}


def shop(onec: OnecSimulator) -> dict[str, dict[str, Any]]:
    """A catalog as shops have it: a folder, clients with one or several numbers (two in one
    field), one marked for deletion, bad records, a supplier with an e-mail only."""
    made = {
        "folder": make_client("Физические лица", folder=True),
        "ivanov": make_client(
            "Иванов Иван", ["+7 (916) 123-45-67, 8 903 765-43-21"], code="000001"
        ),
        "petrova": make_client("Петрова Мария", ["8 (495) 111-22-33"], code="000002"),
        "marked": make_client("Сидоров Старый", ["+7 925 000-11-22"], code="000003", deleted=True),
        "badnum": make_client("Кузнецов", ["звонить вечером"], code="000004"),
        "noname": make_client("", ["+7 926 555-44-33"], code="000005"),
        "supplier": make_client("ООО «Запчасти»", [], code="000006", email="zap@example.ru"),
    }
    onec.add(CLIENTS, *made.values())
    return made


# -- the stand-in ---------------------------------------------------------------------------


def test_stand_in_requires_basic_auth(onec: OnecSimulator) -> None:
    url = f"{onec.base_url}/{ENTITY_PATH}?$format=json"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, auth=(onec.user, "wrong")).status_code == 401
    answer = httpx.get(url, auth=(onec.user, onec.password))
    assert answer.status_code == 200
    assert answer.json()["value"] == []
    assert answer.json()["odata.metadata"].endswith("/$metadata#Catalog_Контрагенты")


def test_stand_in_refuses_a_cyrillic_name_that_is_not_percent_encoded(onec: OnecSimulator) -> None:
    import base64

    auth = base64.b64encode(f"{onec.user}:{onec.password}".encode()).decode()
    path = "/alfa/odata/standard.odata/Catalog_Контрагенты?$format=json".encode()
    with socket.create_connection((onec.host, onec.port), timeout=5) as sock:
        sock.sendall(
            b"GET "
            + path
            + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Basic "
            + auth.encode()
            + b"\r\nConnection: close\r\n\r\n"
        )
        status_line = sock.recv(200).split(b"\r\n")[0]
    assert b" 400 " in status_line


def test_stand_in_pages_filters_and_selects_as_1c_does(onec: OnecSimulator) -> None:
    shop(onec)
    auth = (onec.user, onec.password)
    base = f"{onec.base_url}/{ENTITY_PATH}"
    page = httpx.get(
        f"{base}?$format=json&$top=2&$skip=1&$inlinecount=allpages&$select=Description,Code",
        auth=auth,
    ).json()
    assert page["odata.count"] == "7"
    assert page["value"] == [
        {"Description": "Иванов Иван", "Code": "000001"},
        {"Description": "Петрова Мария", "Code": "000002"},
    ]
    query = "DeletionMark%20eq%20false%20and%20substringof('ИВАН',%20Description)"
    found = httpx.get(f"{base}?$format=json&$filter={query}&$select=Code", auth=auth).json()
    assert found["value"] == [{"Code": "000001"}]
    ref = onec.records(CLIENTS)[2]["Ref_Key"]
    by_ref = httpx.get(f"{base}?$format=json&$filter=Ref_Key%20eq%20guid'{ref}'", auth=auth)
    assert [r["Description"] for r in by_ref.json()["value"]] == ["Петрова Мария"]
    # Without $format=json 1C answers Atom XML; an unknown field is an OData error.
    assert "atom" in httpx.get(base, auth=auth).headers["content-type"]
    bad = httpx.get(f"{base}?$format=json&$select=Нет", auth=auth)
    assert bad.status_code == 400 and "odata.error" in bad.json()


def test_metadata_lists_only_the_published_sets(onec: OnecSimulator) -> None:
    del onec.sets["Catalog_Автомобили"]
    with client_for(onec) as client:
        found = client.metadata()
    assert "Catalog_Автомобили" not in found.sets
    assert {"Ref_Key", "Description", "IsFolder"} <= found.sets[CLIENTS]
    assert {"Тип", "Представление"} <= found.tables[CLIENTS]["КонтактнаяИнформация"]


# -- the client's errors: one sentence each, never the password -----------------------------


def test_wrong_password_is_one_sentence_without_the_password(onec: OnecSimulator) -> None:
    secret = "Pa55-very-secret"
    with client_for(onec, password=secret) as client, pytest.raises(OnecAuthError) as caught:
        client.metadata()
    message = str(caught.value)
    assert "refused the user «odata» (HTTP 401)" in message
    assert secret not in message and secret not in repr(client)
    assert "1C_PASSWORD" in message and len(message.splitlines()) == 1


@pytest.mark.parametrize(
    ("mode", "error", "words"),
    [
        ("login_page", OnecNotJson, "web page, not OData JSON"),
        ("error", OnecError, "Ошибка при выполнении операции над данными"),
        ("401", OnecAuthError, "refused the user"),
    ],
)
def test_bad_answers_become_one_sentence(
    onec: OnecSimulator, mode: str, error: type[OnecError], words: str
) -> None:
    onec.fail(mode)
    with client_for(onec) as client, pytest.raises(error) as caught:
        client.page(CLIENTS)
    assert words in str(caught.value)
    assert onec.password not in str(caught.value)


def test_a_slow_1c_times_out_in_one_sentence(onec: OnecSimulator) -> None:
    onec.fail("slow", seconds=3)
    with client_for(onec, timeout=0.3) as client, pytest.raises(OnecTimeout) as caught:
        client.page(CLIENTS)
    assert "did not answer within 0.3 s" in str(caught.value)
    assert caught.value.retryable


def test_an_unreachable_1c_is_one_sentence() -> None:
    url = f"http://127.0.0.1:{free_port()}/alfa/odata/standard.odata"
    with OnecClient(url, "odata", "x", timeout=2) as client, pytest.raises(OnecUnreachable):
        client.metadata()


def test_an_unpublished_set_says_how_to_publish(onec: OnecSimulator) -> None:
    del onec.sets[CLIENTS]
    with client_for(onec) as client, pytest.raises(OnecNotPublished) as caught:
        client.page(CLIENTS)
    assert "OData content" in str(caught.value)


# -- sync: the rules, on a real register ----------------------------------------------------


def test_sync_skips_folders_and_marks_splits_numbers_and_keeps_ref_key(
    onec: OnecSimulator, register: Register, home: Path
) -> None:
    made = shop(onec)
    settings = settings_for(onec, home)
    with client_for(onec) as client:
        counts, report = onec_sync.sync(register, client, settings)
    assert directory(register) == {
        "Иванов Иван": {"+79161234567", "+79037654321"},
        "Петрова Мария": {"+74951112233"},
    }
    assert onec_refs(register) == {
        "Иванов Иван": made["ivanov"]["Ref_Key"],
        "Петрова Мария": made["petrova"]["Ref_Key"],
    }
    assert (counts["added"], counts["updated"], counts["removed"], counts["total"]) == (2, 0, 0, 2)
    assert report.folders == 1
    assert dict(report.skipped) == {
        "no name": 1,
        "no recognisable phone number": 1,
        "no phone number": 1,
    }
    assert report.unrecognised == [("Кузнецов", "звонить вечером")]


def test_second_sync_updates_and_removes_and_calls_follow(
    onec: OnecSimulator, register: Register, home: Path
) -> None:
    made = shop(onec)
    settings = settings_for(onec, home)
    with client_for(onec) as client:
        onec_sync.sync(register, client, settings)
        call = add_call(register, phone="+74951112233")
        # In 1C: Иванов renamed and a number changed, Петрова marked for deletion, a new one.
        made["ivanov"]["Description"] = "Иванов Иван Петрович"
        made["ivanov"]["КонтактнаяИнформация"][0]["Представление"] = "+7 916 123-45-67"
        made["petrova"]["DeletionMark"] = True
        onec.add(CLIENTS, make_client("Новиков", ["8 999 123-00-77"], code="000007"))
        counts, _ = onec_sync.sync(register, client, settings)
        again, _ = onec_sync.sync(register, client, settings)
    assert directory(register) == {
        "Иванов Иван Петрович": {"+79161234567"},
        "Новиков": {"+79991230077"},
    }
    assert (counts["added"], counts["updated"], counts["removed"]) == (1, 1, 1)
    assert (again["added"], again["updated"], again["removed"], again["unchanged"]) == (0, 0, 0, 2)
    assert register.calls.get(call).client is None


def test_sync_matches_clients_imported_from_a_file(
    onec: OnecSimulator, register: Register, home: Path
) -> None:
    # The shop imported an export before: same codes, numbers written otherwise.
    register.clients.upsert([("000001", "Иванов Иван", [("+79161234567", "89161234567")])])
    register.clients.upsert([(None, "Вручную", [("+79990000001", "+7 999 000-00-01")])])
    made = shop(onec)
    with client_for(onec) as client:
        counts, _ = onec_sync.sync(register, client, settings_for(onec, home))
    assert register.clients.count() == 3  # Иванов updated, not doubled; Вручную kept
    assert onec_refs(register)["Иванов Иван"] == made["ivanov"]["Ref_Key"]
    assert onec_refs(register)["Вручную"] is None
    assert counts["updated"] == 1


def test_a_bad_record_keeps_its_client_as_it_was(
    onec: OnecSimulator, register: Register, home: Path
) -> None:
    made = shop(onec)
    settings = settings_for(onec, home)
    with client_for(onec) as client:
        onec_sync.sync(register, client, settings)
        made["petrova"]["КонтактнаяИнформация"][0]["Представление"] = "нет"
        counts, report = onec_sync.sync(register, client, settings)
    assert directory(register)["Петрова Мария"] == {"+74951112233"}
    assert counts["removed"] == 0
    assert ("Петрова Мария", "нет") in report.unrecognised


def test_a_failure_half_way_changes_nothing_and_is_kept_for_status(
    onec: OnecSimulator, register: Register, home: Path
) -> None:
    made = shop(onec)
    settings = settings_for(onec, home, onec_page_size=2)
    with client_for(onec) as client:
        onec_sync.sync(register, client, settings)
        before = directory(register)
        made["ivanov"]["Description"] = "Иванов Другой"
        with pytest.raises(OnecError):
            # 1C breaks down after the first page.
            onec_sync.sync(register, client, settings, progress=lambda n: onec.fail("error"))
    assert directory(register) == before
    last = onec_sync.last_sync(register)
    assert last is not None and last["total"] == 2
    assert "Ошибка при выполнении операции" in last["error"]


def test_an_empty_catalog_removes_nothing(
    onec: OnecSimulator, register: Register, home: Path
) -> None:
    shop(onec)
    settings = settings_for(onec, home)
    with client_for(onec) as client:
        onec_sync.sync(register, client, settings)
        onec.sets[CLIENTS] = []
        counts, _ = onec_sync.sync(register, client, settings)
    assert counts["removed"] == 0 and register.clients.count() == 2


def test_a_catalog_without_contact_information_is_named(
    onec: OnecSimulator, register: Register, home: Path
) -> None:
    shop(onec)
    settings = settings_for(onec, home, onec_contacts="Контакты")
    with client_for(onec) as client, pytest.raises(OnecError) as caught:
        onec_sync.sync(register, client, settings)
    assert "has no table Контакты" in str(caught.value)
    assert register.clients.count() == 0


# -- the commands ---------------------------------------------------------------------------


def test_clients_sync_json(onec_env: OnecSimulator, home: Path) -> None:
    shop(onec_env)
    result = runner.invoke(app, ["clients", "sync", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {k: data[k] for k in ("added", "updated", "removed", "total")} == {
        "added": 2,
        "updated": 0,
        "removed": 0,
        "total": 2,
    }
    listed = runner.invoke(app, ["clients", "list", "--json"])
    assert {c["name"] for c in json.loads(listed.stdout)} == {"Иванов Иван", "Петрова Мария"}


def test_clients_sync_table_names_bad_records(onec_env: OnecSimulator) -> None:
    shop(onec_env)
    result = runner.invoke(app, ["clients", "sync"])
    assert result.exit_code == 0, result.output
    assert "«Кузнецов»: «звонить вечером» — не номер телефона." in result.stdout
    assert "добавлено" in result.stdout


def test_wrong_password_in_the_cli_is_one_russian_sentence_without_it(
    onec: OnecSimulator, home: Path
) -> None:
    secret = "Sekret-Parol-123"
    env = {
        **os.environ,
        "BEELINE_MISSED_HOME": str(home),
        "BEELINE_MISSED_1C_URL": onec.base_url,
        "BEELINE_MISSED_1C_USER": onec.user,
        "BEELINE_MISSED_1C_PASSWORD": secret,
    }
    for command in (["clients", "sync"], ["onec", "check"], ["config", "show"]):
        done = subprocess.run(
            [sys.executable, "-m", "beeline_missed", *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert secret not in done.stdout + done.stderr
    sync = subprocess.run(
        [sys.executable, "-m", "beeline_missed", "clients", "sync"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sync.returncode == 1
    assert sync.stderr.strip().startswith("Ошибка: 1С (127.0.0.1:")
    assert "не пускает пользователя «odata»" in sync.stderr
    assert len(sync.stderr.strip().splitlines()) == 1 and "Traceback" not in sync.stderr


def test_clients_sync_without_settings_says_what_to_set() -> None:
    result = runner.invoke(app, ["clients", "sync"])
    assert result.exit_code == 1
    assert "BEELINE_MISSED_1C_URL" in result.output


def test_onec_check_all_there(onec_env: OnecSimulator) -> None:
    result = runner.invoke(app, ["onec", "check"])
    assert result.exit_code == 0, result.output
    assert "reachable: yes" in result.stdout and "authorised: yes" in result.stdout
    assert "Catalog_Контрагенты: published" in result.stdout


def test_onec_check_names_what_is_missing(onec_env: OnecSimulator) -> None:
    del onec_env.sets[CLIENTS]
    result = runner.invoke(app, ["onec", "check", "--json"])
    assert result.exit_code == 1
    found = json.loads(result.stdout)
    assert found["reachable"] and found["authorised"] and not found["ok"]
    assert found["sets"] == {
        CLIENTS: False,
        "Document_ЗаявкаНаРемонт": True,
        "Catalog_Автомобили": True,
        "Document_ЗаказНаряд": True,
    }
    assert "does not publish Catalog_Контрагенты" in found["problems"][0]


def test_onec_check_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEELINE_MISSED_1C_URL", f"http://127.0.0.1:{free_port()}/x/odata")
    monkeypatch.setenv("BEELINE_MISSED_1C_USER", "odata")
    result = runner.invoke(app, ["onec", "check"])
    assert result.exit_code == 1
    assert "reachable: no" in result.stdout and "Cannot reach 1C" in result.stdout


# -- the password's settings ----------------------------------------------------------------


def test_password_in_a_config_file_others_can_read_is_refused(home: Path) -> None:
    path = home / "config.toml"
    path.write_text('onec_password = "secret-in-file"\n', encoding="utf-8")
    path.chmod(0o644)
    with pytest.raises(config.UserError) as caught:
        config.load(environ={"BEELINE_MISSED_HOME": str(home)})
    assert "chmod 600" in str(caught.value) and "secret-in-file" not in str(caught.value)
    path.chmod(0o600)
    settings = config.load(environ={"BEELINE_MISSED_HOME": str(home)})
    assert settings.onec_password == "secret-in-file"
    assert config.effective(settings)["onec_password"] == "********"


def test_environment_overrides_the_file(home: Path) -> None:
    path = home / "config.toml"
    path.write_text('onec_url = "http://file/odata/"\nonec_user = "file"\n', encoding="utf-8")
    settings = config.load(
        environ={"BEELINE_MISSED_HOME": str(home), "BEELINE_MISSED_1C_USER": "env"}
    )
    assert (settings.onec_url, settings.onec_user) == ("http://file/odata", "env")


@pytest.mark.parametrize(
    ("mode", "error"),
    [("login_page", OnecNotJson), ("error", OnecError), ("401", OnecAuthError)],
)
def test_a_bad_answer_during_sync_loses_nothing(
    onec: OnecSimulator, register: Register, home: Path, mode: str, error: type[OnecError]
) -> None:
    made = shop(onec)
    settings = settings_for(onec, home)
    with client_for(onec) as client:
        onec_sync.sync(register, client, settings)
        before = directory(register)
        made["petrova"]["DeletionMark"] = True  # would be removed by a whole read
        onec.fail(mode)
        with pytest.raises(error):
            onec_sync.sync(register, client, settings)
    assert directory(register) == before


def test_a_timeout_during_sync_loses_nothing(
    onec: OnecSimulator, register: Register, home: Path
) -> None:
    shop(onec)
    settings = settings_for(onec, home, onec_page_size=2)
    with client_for(onec) as client:
        onec_sync.sync(register, client, settings)
    before = directory(register)
    onec.records(CLIENTS).clear()  # a whole read now would remove everyone
    onec.add(CLIENTS, *(make_client(f"Новый {i}", [f"+7 916 000-00-{i:02d}"]) for i in range(5)))
    with client_for(onec, timeout=0.3) as slow, pytest.raises(OnecTimeout):
        onec_sync.sync(register, slow, settings, progress=lambda n: onec.fail("slow", seconds=2))
    assert directory(register) == before


def test_onec_check_behind_a_login_page(onec_env: OnecSimulator) -> None:
    onec_env.fail("login_page")
    result = runner.invoke(app, ["onec", "check", "--json"])
    assert result.exit_code == 1
    found = json.loads(result.stdout)
    assert found["reachable"] and not found["authorised"]
    assert "web page, not OData JSON" in found["problems"][0]


# -- paging that differs from the documented one -------------------------------------------


def many_clients(onec: OnecSimulator, n: int) -> None:
    onec.add(
        CLIENTS,
        *(make_client(f"Клиент {i:03d}", [f"+7 916 100-{i // 100:02d}-{i % 100:02d}"])
          for i in range(n)),
    )  # fmt: skip


def test_a_server_that_caps_the_page_size_still_gives_every_client(
    onec: OnecSimulator, register: Register, home: Path
) -> None:
    """Asked for pages of 50, the server gives 20: the sync read the first 20 and took the
    short page for the last, and a second sync then removed the other 40 clients."""
    many_clients(onec, 60)
    settings = settings_for(onec, home, onec_page_size=50)
    with client_for(onec) as client:
        onec_sync.sync(register, client, settings)
        assert len(directory(register)) == 60
        onec.max_page = 20
        counts, _ = onec_sync.sync(register, client, settings)
    assert (counts["removed"], counts["total"]) == (0, 60)
    assert len(directory(register)) == 60


def test_a_server_that_ignores_skip_changes_nothing(
    onec: OnecSimulator, register: Register, home: Path
) -> None:
    many_clients(onec, 60)
    settings = settings_for(onec, home, onec_page_size=50)
    with client_for(onec) as client:
        onec_sync.sync(register, client, settings)
        before = directory(register)
        onec.ignores_skip = True
        with pytest.raises(
            OnecError,
            match=r"answered the same page of Catalog_Контрагенты "
            r"again at \$skip=50: it does not page as OData",
        ):
            onec_sync.sync(register, client, settings)
    assert directory(register) == before


def test_clients_deleted_while_the_pages_are_read_change_nothing(
    onec: OnecSimulator, register: Register, home: Path
) -> None:
    """Deleting records shifts the later pages by $skip: a client still in 1C would be
    skipped over, and the sync would remove it from the directory."""
    many_clients(onec, 60)
    settings = settings_for(onec, home, onec_page_size=20)
    with client_for(onec) as client:
        onec_sync.sync(register, client, settings)
        before = directory(register)

        def delete_one(_: int) -> None:  # between two pages, someone deletes a client in 1C
            onec.records(CLIENTS).pop(0)

        with pytest.raises(
            OnecError,
            match=r"listed 58 of the 60 records of "
            r"Catalog_Контрагенты it counted",
        ):
            onec_sync.sync(register, client, settings, progress=delete_one)
    assert directory(register) == before
