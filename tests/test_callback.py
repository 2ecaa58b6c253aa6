"""Calling back together: click-to-call and «Взять в работу» end to end, through the CLI, the
real daemon subprocess and the PBX simulator."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from beeline_missed import config
from beeline_missed.simulator import xsi_build
from beeline_missed.simulator.pbx import Simulator
from beeline_missed.store import Register, StoredClaim
from tests.support import clock
from tests.support.daemon import Daemon, wait_for
from tests.support.e2e import GROUP, now_ms, rows, start_daemon, write_config
from tests.support.factories import add_call
from tests.support.peek import sqlite_count

pytestmark = pytest.mark.both_engines

CALLER = "+79161234567"
STAFF = """\
call_number_format = "national"

[staff.petrov]
name = "Петров"
abonent = "202"

[staff.anna]
name = "Смирнова"
abonent = "9001112201"

[staff.nobody]
name = "Без телефона"
"""


def cli(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "beeline_missed", *args],
        env={**os.environ, "BEELINE_MISSED_HOME": str(home), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def claims_of(home: Path) -> list[tuple[str, str]]:
    register = Register.open(config.load().db)  # the test's register, file or database
    try:
        return [(key, claim.claimed_by) for key, claim in register.claims.rows().items()]
    finally:
        register.close()


def set_claimed_at(home: Path, minutes_ago: int) -> None:
    """Age every claim: the claim's clock is the register's stored time, not a sleep (and the
    tests' "now", which BEELINE_MISSED_TEST_NOW moves with the CLI's)."""
    at = clock.stored(clock.now() - timedelta(minutes=minutes_ago))
    register = Register.open(config.load().db)  # the test's register, file or database
    try:
        for key, claim in register.claims.rows().items():
            register.claims.claim(key, lambda _current, by=claim.claimed_by: (by, at))
    finally:
        register.close()


@pytest.fixture
def daemon(home: Path, sim: Simulator) -> Iterator[Daemon]:
    write_config(home, STAFF)
    proc = start_daemon(home, sim)
    wait_for(lambda: sqlite_count(home, "abonents") > 0, timeout=30)
    yield proc
    proc.stop()


@pytest.mark.e2e
def test_click_to_call_rings_the_staff_abonent_and_the_answered_call_closes_the_case(
    daemon: Daemon, sim: Simulator
) -> None:
    base = now_ms() - 300_000
    sim.play(xsi_build.incoming_call(GROUP[:1], CALLER, base))
    sim.play(xsi_build.incoming_call(GROUP[:2], CALLER, base + 60_000))
    wait_for(lambda: len(rows(daemon.home)) == 2, timeout=30)
    call_id = max(r["id"] for r in rows(daemon.home))

    done = daemon.cli("card", str(call_id), "--call", "--user", "petrov")

    assert done.returncode == 0, done.stderr
    assert "Звоним: возьмите трубку" in done.stdout
    # The staff member's abonent first, the client's number in the configured form.
    assert sim.click_calls == [
        {"abonent": GROUP[1], "pattern": "202", "phoneNumber": "89161234567"}
    ]
    closed = wait_for(
        lambda: all(r["status"] == "called_back" for r in rows(daemon.home)), timeout=30
    )
    assert closed
    for row in rows(daemon.home):
        assert (row["closed_by"], row["user"]) == ("auto", "Петров")
        assert row["result"].startswith("Перезвонили ")
    assert claims_of(daemon.home) == []  # closing the case ended the claim


@pytest.mark.e2e
def test_click_to_call_not_answered_leaves_the_case_open_and_claimed(
    daemon: Daemon, sim: Simulator
) -> None:
    sim.click_answered = False
    sim.play(xsi_build.incoming_call(GROUP[:1], CALLER, now_ms() - 300_000))
    wait_for(lambda: rows(daemon.home), timeout=30)
    (row,) = rows(daemon.home)

    done = daemon.cli("card", str(row["id"]), "--call", "--user", "anna", "--json")

    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert (shown["calling"], shown["call"]["claimed_by"]) == (True, "anna")
    wait_for(lambda: len(sim.deliveries) >= 3 and sim.calls, timeout=30)
    # A marker call decided after the click-to-call's events: they were all processed.
    sim.play(xsi_build.incoming_call(GROUP[:1], "+70000000001", now_ms()))
    wait_for(lambda: len(rows(daemon.home)) == 2, timeout=30)
    (still,) = [r for r in rows(daemon.home) if r["phone"] == CALLER]
    assert still["status"] == "missed"
    assert claims_of(daemon.home) == [(CALLER, "anna")]


def test_click_to_call_errors_are_one_sentence_and_ring_nobody(
    home: Path, sim: Simulator, register: Register
) -> None:
    write_config(home, STAFF)
    hidden = add_call(register, "s1", phone=None)
    known = add_call(register, "s2", phone=CALLER)
    env = {"BEELINE_API_URL": sim.base_url, "BEELINE_API_TOKEN": sim.token}

    cases = [
        ((str(known), "--call", "--user", "stranger"), "нет таблицы [staff.stranger]"),
        ((str(known), "--call", "--user", "nobody"), "не указан абонент АТС"),
        ((str(hidden), "--call", "--user", "petrov"), "Номер клиента скрыт"),
    ]
    for args, expected in cases:
        done = cli(home, "card", *args, env=env)
        assert done.returncode == 1
        assert expected in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    assert sim.click_calls == []
    assert claims_of(home) == []  # nothing was taken for a call that could not start

    sim.abonents = [a for a in sim.abonents if a["extension"] != "202"]  # gone from the PBX
    refused = cli(home, "card", str(known), "--call", "--user", "petrov", env=env)
    assert refused.returncode == 1
    assert "АТС отказалась звонить с абонента 202: HTTP 404 (NotFound)." in refused.stderr


def test_claim_by_a_refused_for_b_expired_taken_by_b_released_on_save(
    home: Path, register: Register
) -> None:
    write_config(home, "claim_ttl = 1800\n" + STAFF)
    first = add_call(register, "s1", phone=CALLER, called_at="2026-11-27T10:00:00Z")
    latest = add_call(register, "s2", phone=CALLER, called_at="2026-11-27T11:00:00Z")

    taken = cli(home, "card", str(first), "--claim", "--user", "petrov")
    assert taken.returncode == 0, taken.stderr
    assert "перезванивает Петров" in taken.stdout
    (line,) = json.loads(cli(home, "list", "--json").stdout)
    assert (line["id"], line["claimed_by"], line["claimed_by_name"]) == (latest, "petrov", "Петров")
    assert line["claimed_at"] is not None
    assert "перезванивает Петров (" in cli(home, "list", "--fmt", "plain").stdout

    refused = cli(home, "card", str(latest), "--claim", "--user", "anna")
    assert refused.returncode == 1
    assert "уже перезванивает Петров с " in refused.stderr
    assert "--force" in refused.stderr
    assert claims_of(home) == [(CALLER, "petrov")]

    set_claimed_at(home, 31)  # past claim_ttl (30 min)
    (line,) = json.loads(cli(home, "list", "--json").stdout)
    assert line["claimed_by"] is None  # a lapsed claim is shown as nobody's
    taken_over = cli(home, "card", str(latest), "--claim", "--user", "anna")
    assert taken_over.returncode == 0, taken_over.stderr
    assert claims_of(home) == [(CALLER, "anna")]

    saved = cli(home, "card", str(latest), "--status", "Перезвонили", "--result", "Записан")
    assert saved.returncode == 0, saved.stderr
    assert claims_of(home) == []
    (row, *_) = json.loads(cli(home, "list", "--all", "--json").stdout)
    assert row["claimed_by"] is None


def test_force_takes_a_live_claim_and_opening_the_card_claims_nothing(
    home: Path, register: Register
) -> None:
    write_config(home, STAFF)
    call_id = add_call(register, "s1", phone=CALLER)
    shown = cli(home, "card", str(call_id), "--json")
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["claimed_by"] is None
    assert claims_of(home) == []

    assert cli(home, "card", str(call_id), "--claim", "--user", "petrov").returncode == 0
    forced = cli(home, "card", str(call_id), "--claim", "--user", "anna", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "вместо Петров" in forced.stdout
    assert claims_of(home) == [(CALLER, "anna")]


def test_claiming_a_handled_call_or_mixing_flags_is_refused(home: Path, register: Register) -> None:
    call_id = add_call(register, "s1", phone=CALLER)
    mixed = cli(home, "card", str(call_id), "--claim", "--result", "x")
    assert mixed.returncode == 1 and "не сочетаются" in mixed.stderr
    assert (
        cli(home, "card", str(call_id), "--status", "called_back", "--result", "ok").returncode == 0
    )
    late = cli(home, "card", str(call_id), "--claim", "--user", "anna")
    assert late.returncode == 1 and "уже обработан" in late.stderr


# -- detection: a click-to-call is staff calling out ----------------------------------------


@pytest.mark.parametrize(
    ("personality", "call_type", "direction"),
    [
        ("Click-to-Dial", "Network", "outgoing"),
        ("Originator", "Network", "outgoing"),
        ("Click-to-Dial", "Group", None),  # a colleague's extension: not a client
    ],
)
def test_an_answered_click_to_dial_leg_is_an_outgoing_call(
    personality: str, call_type: str, direction: str | None
) -> None:
    from beeline_missed.rules import detection
    from beeline_missed.rules.detection import LegState

    staff_leg = LegState(
        target_id=GROUP[1],
        call_id="callhalf-1:0",
        ext_tracking_id="s1",
        personality=personality,
        call_type=call_type,
        remote_raw="tel:89161234567",
        answer_ms=7_000,
        answered=True,
    )
    call = detection.answered_call([staff_leg])
    if direction is None:
        assert call is None
    else:
        expected = detection.AnsweredCall("s1", CALLER, direction, "9001112202", 7_000)
        assert call == replace(expected, ended=False)  # the leg is still up


# -- the simulator takes the call; the client sends it ----------------------------------------


def test_the_simulator_records_a_click_to_call_as_placed_outbound(sim: Simulator) -> None:
    from beeline_missed.pbx.api import PbxClient, PbxError, PbxNotFound

    with PbxClient(sim.base_url, sim.token) as pbx:
        answer = pbx.call("201", "+79161234567")
        with pytest.raises(PbxNotFound):
            pbx.call("299", "+79161234567")
        with pytest.raises(PbxError, match="HTTP 400"):
            pbx.call("201", "")
    assert isinstance(answer, dict) and answer["extTrackingId"]
    assert sim.click_calls == [
        {"abonent": GROUP[0], "pattern": "201", "phoneNumber": "+79161234567"}
    ]
    assert ("POST", "/apis/portal/abonents/201/call") in sim.requests
    (record,) = wait_for(lambda: sim.calls, timeout=30)
    # Not a missed inbound call for the statistics catch-up to register.
    assert (record["direction"], record["status"]) == ("OUTBOUND", "PLACED")
    assert record["abonent"]["userId"] == GROUP[0]


def test_watch_shows_who_is_calling_back(home: Path, register: Register) -> None:
    from datetime import UTC, datetime

    from rich.console import Console

    from beeline_missed import config
    from beeline_missed.cases import calling_back
    from beeline_missed.views import watch

    write_config(home, STAFF)
    call_id = add_call(register, "s1", phone=CALLER)
    settings = config.load()
    now = datetime.now(UTC).replace(microsecond=0)  # as the register stores it
    calling_back.claim(register, settings, call_id, "petrov", now)

    def decorate(reg: Register, found: list[dict]) -> list[dict]:
        return calling_back.with_claims(reg, settings, found, now)

    watcher = watch.Watcher(register, UTC, decorate=decorate)
    watcher.poll()
    console = Console(width=160, record=True)
    console.print(watcher.render(now))
    assert "перезванивает Петров (0 с)" in console.export_text()


def test_the_register_ends_a_claim_when_the_cases_last_open_call_closes(
    register: Register,
) -> None:
    first = add_call(register, "s1", phone=CALLER, called_at="2026-11-27T10:00:00Z")
    second = add_call(register, "s2", phone=CALLER, called_at="2026-11-27T11:00:00Z")
    hidden = add_call(register, "s3", phone=None)
    for key in (CALLER, f"call:{hidden}"):
        register.claims.claim(key, lambda current: ("anna", "2026-11-27T12:00:00Z"))
    assert set(register.claims.rows()) == {CALLER, f"call:{hidden}"}

    def close(call_id: int) -> None:
        version = register.calls.get(call_id).version
        register.calls.save(
            call_id, version, status="called_back", result="ok", user=None,
            handled_at="2026-11-27T12:05:00Z", closed_by="auto",
        )  # fmt: skip

    close(first)  # the caller still has an open call: still being called back
    assert set(register.claims.rows()) == {CALLER, f"call:{hidden}"}
    close(second)
    close(hidden)
    assert register.claims.rows() == {}


def test_a_refused_claim_writes_nothing(register: Register) -> None:
    register.claims.claim(CALLER, lambda current: ("anna", "2026-11-27T12:00:00Z"))
    seen = []
    kept = register.claims.claim(CALLER, lambda current: seen.append(current))
    assert seen == [StoredClaim(CALLER, "anna", "2026-11-27T12:00:00Z")]
    assert kept == seen[0]
