"""The store's typed boundary: reads return frozen `Call`s and `Attempt`s whose words are the
vocabulary's enums, and `list --json` / `card --json` print exactly what the register holds,
in the shape they always had (a golden built from the stored rows, read below the store)."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from beeline_missed import timefmt
from beeline_missed.cli import app
from beeline_missed.store import Attempt, Call, Register
from beeline_missed.vocabulary import (
    LOST_AT_LABELS,
    STATUS_LABELS,
    CallStatus,
    ClosedBy,
    LostAt,
    Source,
)
from tests.support import clock
from tests.support.factories import add_call
from tests.support.peek import rows

runner = CliRunner()
MOSCOW = ZoneInfo("Europe/Moscow")
CALLER = "+79161234567"


def at(days_ago: int, hour: int) -> str:
    """A stored moment `days_ago` before the tests' today, at `hour` Moscow time."""
    return clock.stored(clock.moment(clock.today() - timedelta(days=days_ago), hour))


@pytest.fixture
def moscow(home: Path) -> None:
    (home / "config.toml").write_text('timezone = "Europe/Moscow"\n', encoding="utf-8")


def fill(register: Register) -> dict[str, int]:
    """A register with every kind of row: one caller's two open calls (one lost in the queue,
    one forwarded), a hidden number outside hours, a call staff closed, one closed
    automatically, one the statistics found; a client's name on the caller."""
    register.clients.upsert([(None, "Иванов Иван", [(CALLER, "")])])
    ids = {
        "first": add_call(register, "a", CALLER, at(3, 10), lost_at=LostAt.QUEUE),
        "again": add_call(
            register, "b", CALLER, at(3, 11), lost_at=LostAt.FORWARDED, forwarded_to="+79031234567"
        ),
        "hidden": add_call(register, "c", None, at(3, 22), outside_hours=True),
        "staff": add_call(register, "d", "+79035550011", at(4, 12), line="201, 202"),
        "auto": add_call(register, "e", "+79035550022", at(4, 13)),
    }
    register.calls.save(
        ids["staff"], 1, status=CallStatus.CALLED_BACK, result="Приедет\nв 10:00", user="Анна",
        handled_at=at(4, 12),
    )  # fmt: skip
    register.calls.close_automatically(ids["auto"], result="Перезвонили", user="9001")
    found = register.calls.insert(
        session_key="stat:x", phone="+79035550033", phone_raw="79035550033",
        called_at=at(5, 12), line="", source=Source.RECONCILE,
    )  # fmt: skip
    assert found is not None
    ids["stat"] = found
    return ids


def test_a_store_read_is_a_frozen_call_whose_words_are_the_vocabulary(register: Register) -> None:
    ids = fill(register)
    call = register.calls.get(ids["first"])
    assert isinstance(call, Call)
    assert type(call.status) is CallStatus and call.status is CallStatus.MISSED
    assert type(call.source) is Source and call.source is Source.HOOK
    assert type(call.lost_at) is LostAt and call.lost_at is LostAt.QUEUE
    assert call.closed_by is None and call.client == "Иванов Иван"
    with pytest.raises(dataclasses.FrozenInstanceError):
        call.status = CallStatus.CALLED_BACK  # type: ignore[misc]
    assert register.calls.get(ids["staff"]).closed_by is ClosedBy.STAFF
    assert register.calls.get(ids["auto"]).closed_by is ClosedBy.AUTO
    assert register.calls.get(ids["stat"]).source is Source.RECONCILE
    assert register.calls.get(ids["hidden"]).outside_hours is True


def test_one_line_per_caller_carries_the_case_and_a_lone_call_its_own(register: Register) -> None:
    ids = fill(register)
    cases = {call.id: call for call in register.calls.rows()}
    latest = cases[ids["again"]]
    assert (latest.attempts, latest.call_ids) == (2, (ids["first"], ids["again"]))
    assert latest.first_called_at == at(3, 10)
    # Read alone (get, the --all list), a call is its own case: no patching needed above.
    alone = register.calls.get(ids["first"])
    assert (alone.attempts, alone.call_ids, alone.first_called_at) == (
        1,
        (ids["first"],),
        alone.called_at,
    )
    handled = {c.id: c for c in register.calls.rows(include_handled=True)}[ids["staff"]]
    assert (handled.attempts, handled.call_ids) == (1, (ids["staff"],))


def test_attempts_are_typed_with_the_calls_they_were_recorded_on(register: Register) -> None:
    ids = fill(register)
    for call_id in (ids["first"], ids["again"]):
        assert register.attempts.add(
            call_id, session_key="cb", direction="outgoing",
            attempted_at=at(3, 12), talk_seconds=4, who="Анна",
        )  # fmt: skip
    (attempt,) = register.attempts.of([ids["first"], ids["again"]])
    assert attempt == Attempt(
        session_key="cb",
        direction="outgoing",
        attempted_at=at(3, 12),
        talk_seconds=4,
        who="Анна",
        call_ids=(ids["first"], ids["again"]),
    )


# -- --json byte for byte, against a golden built from the stored rows ------------------------


def golden(stored: dict[str, Any], case: list[dict[str, Any]], client: str | None) -> dict:
    """The object `list --json` printed before rows were typed, from the stored row, its case
    (the caller's open calls; the row alone when handled or hidden) and the client's name."""
    zone = MOSCOW
    status = stored["status"]
    return {
        "id": stored["id"],
        "phone": stored["phone"],
        "client": client,
        "called_at": timefmt.iso_local(stored["called_at"], zone),
        "line": stored["line"],
        "status": status,
        "status_label": STATUS_LABELS[status],
        "result": stored["result"],
        "user": stored["user"],
        "handled_at": timefmt.iso_local(stored["handled_at"], zone),
        "closed_by": stored["closed_by"],
        "outside_hours": bool(stored["outside_hours"]),
        "lost_at": stored["lost_at"],
        "lost_at_label": LOST_AT_LABELS.get(stored["lost_at"] or ""),
        "forwarded_to": stored["forwarded_to"],
        "version": stored["version"],
        "attempts": len(case),
        "first_called_at": timefmt.iso_local(min(c["called_at"] for c in case), zone),
        "call_ids": sorted(c["id"] for c in case),
        "claimed_by": None,
        "claimed_by_name": None,
        "claimed_at": None,
        "user_name": stored["user"],
        "waiting_s": None,
        "deadline_level": None,
    }


def printed(objects: Any) -> str:
    """What print_json writes to a pipe."""
    return json.dumps(objects, ensure_ascii=False, default=str) + "\n"


def with_waits(expected: list[dict], shown: list[dict]) -> list[dict]:
    """The open rows' waits as the command measured them (the real clock's), checked sane."""
    for want, got in zip(expected, shown, strict=True):
        if want["status"] == CallStatus.MISSED:
            assert isinstance(got["waiting_s"], int) and got["waiting_s"] > 0
            assert got["deadline_level"] == 2  # days old: past the last deadline
            want["waiting_s"], want["deadline_level"] = got["waiting_s"], got["deadline_level"]
    return expected


def test_list_json_is_the_stored_rows_in_the_shape_it_always_had(
    register: Register, home: Path, moscow: None
) -> None:
    ids = fill(register)
    stored = {row["id"]: row for row in rows(home)}
    newest_first = sorted(stored.values(), key=lambda r: (r["called_at"], r["id"]), reverse=True)
    client = {ids["first"]: "Иванов Иван", ids["again"]: "Иванов Иван"}

    everything = runner.invoke(app, ["list", "--all", "--json"])
    assert everything.exit_code == 0, everything.output
    expected = [golden(r, [r], client.get(r["id"])) for r in newest_first]
    expected = with_waits(expected, json.loads(everything.output))
    assert everything.output == printed(expected)

    open_list = runner.invoke(app, ["list", "--json"])
    assert open_list.exit_code == 0, open_list.output
    case = [stored[ids["first"]], stored[ids["again"]]]
    expected = [
        golden(stored[ids["hidden"]], [stored[ids["hidden"]]], None),
        golden(stored[ids["again"]], case, "Иванов Иван"),
        golden(stored[ids["stat"]], [stored[ids["stat"]]], None),
    ]
    expected = with_waits(expected, json.loads(open_list.output))
    assert open_list.output == printed(expected)


def test_card_json_is_the_stored_row_with_its_case_and_attempts(
    register: Register, home: Path, moscow: None
) -> None:
    ids = fill(register)
    register.attempts.add(
        ids["again"], session_key="cb", direction="incoming",
        attempted_at=at(3, 12), talk_seconds=None, who=None,
    )  # fmt: skip
    stored = {row["id"]: row for row in rows(home)}
    when = clock.today() - timedelta(days=3)
    shown = runner.invoke(app, ["card", str(ids["first"]), "--json"])
    assert shown.exit_code == 0, shown.output
    case = [stored[ids["first"]], stored[ids["again"]]]
    want = golden(stored[ids["first"]], case, "Иванов Иван")
    want["callback_attempts"] = [
        {
            "attempted_at": timefmt.iso_local(at(3, 12), MOSCOW),
            "talk_seconds": None,
            "direction": "incoming",
            "who": None,
            "text": f"Клиент дозвонился {when:%d.%m} 12:00, длительность неизвестна — "
            "разговор не состоялся",
        }
    ]
    (want,) = with_waits([want], [json.loads(shown.output)])
    assert shown.output == printed(want)
    # A handled card: its own case, no wait, the staff's words.
    handled = runner.invoke(app, ["card", str(ids["staff"]), "--json"])
    want = golden(stored[ids["staff"]], [stored[ids["staff"]]], None)
    want["callback_attempts"] = []
    assert handled.output == printed(want)


def test_a_changed_copy_keeps_the_original_and_refuses_unknown_fields(register: Register) -> None:
    ids = fill(register)
    call = register.calls.get(ids["first"])
    shown = call.replaced(claim_label="перезванивает Анна", waiting_s=60)
    assert (shown.claim_label, shown.waiting_s, shown.id) == ("перезванивает Анна", 60, call.id)
    assert (call.claim_label, call.waiting_s) == (None, None)
    assert shown == dataclasses.replace(call, claim_label="перезванивает Анна", waiting_s=60)
    with pytest.raises(TypeError):
        call.replaced(claimed=True)
