"""Honest auto-close: only a conversation (auto_close_min_talk seconds, answer to release)
closes a case; a shorter answered call is recorded on it as an attempt. End to end through the
daemon subprocess and the simulator, then the rules on a real register file."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from beeline_missed import config, timefmt
from beeline_missed.cases import card_service
from beeline_missed.daemon.processing import Processor
from beeline_missed.rules import autoclose
from beeline_missed.rules.detection import AnsweredCall, LegState
from beeline_missed.simulator import xsi_build
from beeline_missed.simulator.pbx import DEFAULT_ABONENTS, Simulator
from beeline_missed.store import Register
from beeline_missed.views import calls as calls_view
from tests.support.daemon import Daemon, wait_for
from tests.support.e2e import GROUP, now_ms, rows, session_state, settle_after
from tests.support.e2e import start_daemon as start
from tests.support.factories import add_call
from tests.support.peek import sqlite_count

pytestmark = pytest.mark.both_engines

CALLER = "+79161234567"
OTHER = "+79031112233"
MOSCOW = ZoneInfo("Europe/Moscow")
STAFF = "9001112204@ip.beeline.ru"  # Иванова in the simulator's abonent list


def when(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, MOSCOW).strftime("%d.%m %H:%M")


def row_of(home: Path, phone: str) -> dict:
    (row,) = [r for r in rows(home) if r["phone"] == phone]
    return row


def card_json(proc: Daemon, call_id: int) -> dict:
    result = proc.cli("card", str(call_id), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def daemon(home: Path, sim: Simulator) -> Iterator[Daemon]:
    proc = start(home, sim)
    wait_for(lambda: sqlite_count(proc.home, "abonents") > 0, timeout=30)
    yield proc
    proc.stop()


@pytest.mark.e2e
def test_a_four_second_callback_is_recorded_and_a_thirty_second_one_closes(
    daemon: Daemon, sim: Simulator
) -> None:
    base = now_ms() - 600_000
    sim.play(xsi_build.incoming_call(GROUP[:1], CALLER, base))
    wait_for(lambda: [r for r in rows(daemon.home) if r["phone"] == CALLER], timeout=30)
    call_id = row_of(daemon.home, CALLER)["id"]

    short = xsi_build.outgoing_call(STAFF, CALLER, base + 60_000, talk_ms=4_000)
    sim.play(short)
    after = settle_after(daemon, sim, short, base + 90_000)
    assert [(r["phone"], r["status"]) for r in after] == [(CALLER, "missed")]
    answer_ms = short[1].leg.answer_ms
    assert answer_ms is not None
    shown = card_json(daemon, call_id)
    assert shown["status_label"] == "Пропущен"
    # Still open: the card tells how long the case has waited (called 10 minutes ago).
    assert 600 <= shown["waiting_s"] < 900 and shown["deadline_level"] == 0
    assert [(a["talk_seconds"], a["direction"], a["who"], a["text"]) for a in
            shown["callback_attempts"]] == [
        (4, "outgoing", "Иванова",
         f"Перезванивали {when(answer_ms)}, 4 с — не дозвонились (Иванова)"),
    ]  # fmt: skip
    # The terminal card shows it among its fields.
    screen = subprocess.run(
        [sys.executable, "-m", "beeline_missed", "card", str(call_id)],
        env=daemon.env, input="\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert f"Попытки: Перезванивали {when(answer_ms)}, 4 с — не дозвонились" in screen.stdout

    talk = xsi_build.outgoing_call(STAFF, CALLER, base + 120_000, talk_ms=30_000)
    sim.play(talk)
    wait_for(lambda: row_of(daemon.home, CALLER)["status"] == "called_back", timeout=30)
    row = row_of(daemon.home, CALLER)
    assert row["result"] == f"Перезвонили {when(talk[1].leg.answer_ms or 0)}"
    assert (row["user"], row["closed_by"]) == ("Иванова", "auto")
    assert "lasted 4 s; recorded as an attempt" in daemon.log()


@pytest.mark.e2e
def test_the_decision_waits_for_the_release_of_a_call_still_going_on(
    daemon: Daemon, sim: Simulator
) -> None:
    base = now_ms() - 600_000
    sim.play(xsi_build.incoming_call(GROUP[:1], OTHER, base))
    wait_for(lambda: [r for r in rows(daemon.home) if r["phone"] == OTHER], timeout=30)
    talk = xsi_build.outgoing_call(STAFF, OTHER, base + 60_000, talk_ms=45_000)
    *answered, released = talk
    sim.play(answered)
    session = talk[0].leg.ext_tracking_id
    # Decided answered after the settle period, while the staff member still talks ...
    wait_for(lambda: session_state(daemon.home, session) == "answered", timeout=30)
    assert sqlite_count(daemon.home, "answers_awaiting_release") == 1
    assert row_of(daemon.home, OTHER)["status"] == "missed"
    # ... and closed when the call ends, 45 s after the answer.
    sim.play([released])
    wait_for(lambda: row_of(daemon.home, OTHER)["status"] == "called_back", timeout=30)
    assert sqlite_count(daemon.home, "answers_awaiting_release") == 0


# -- the rules on a register file ------------------------------------------------------------

T0 = 1795766400000  # 27.11.2026 11:00 in Moscow


def missed(register: Register, key: str, phone: str = CALLER, at_ms: int = T0) -> int:
    return add_call(register, key, phone, timefmt.ms_to_stored(at_ms), "201")


def close(register: Register, call: AnsweredCall, min_talk: float = 10) -> list[int]:
    names = autoclose.StaffNames({"9001112204": "Смирнова", "9001112202": "Петров"}, [])
    return autoclose.close_resolved(
        register, call, names=names, zone=MOSCOW, now_ms=T0 + 3_600_000, min_talk=min_talk
    )


def callback(
    talk_s: float | None, direction: str = "outgoing", session: str = "s1"
) -> AnsweredCall:
    answer = T0 + 300_000
    release = None if talk_s is None else answer + int(talk_s * 1000)
    who = "9001112204" if direction == "outgoing" else "9001112202"
    return AnsweredCall(session, CALLER, direction, who, answer, release, talk_s is not None)


def test_a_short_call_leaves_every_open_call_of_the_number_open_and_is_recorded_once(
    register: Register,
) -> None:
    first, second = missed(register, "a"), missed(register, "b", at_ms=T0 + 1000)
    assert close(register, callback(4)) == []
    assert close(register, callback(4)) == []  # heard again (a replay): still one attempt
    assert [r.status for r in register.calls.by_ids([first, second])] == ["missed"] * 2
    (attempt,) = register.attempts.of([first, second])
    assert (attempt.talk_seconds, attempt.direction, attempt.who) == (
        4,
        "outgoing",
        "Смирнова",
    )
    assert attempt.call_ids == (first, second)
    assert register.calls.get(first).version == 1  # the card itself is untouched


@pytest.mark.parametrize(("talk", "closes"), [(9.999, False), (10, True), (30, True)])
def test_the_threshold_is_talk_seconds_at_least_min_talk(
    register: Register, talk: float, closes: bool
) -> None:
    call_id = missed(register, "a")
    assert close(register, callback(talk)) == ([call_id] if closes else [])
    assert bool(register.attempts.of([call_id])) is not closes


def test_a_client_who_gets_through_for_a_moment_is_the_same_rule(register: Register) -> None:
    call_id = missed(register, "a")
    assert close(register, callback(3, "incoming")) == []
    row = card_service.with_attempts(register, register.calls.get(call_id))
    assert dict(calls_view.card_lines(row, MOSCOW))["Попытки"] == (
        "Клиент дозвонился 27.11 11:05, 3 с — разговор не состоялся (Петров)"
    )
    assert close(register, callback(12, "incoming", "s2")) == [call_id]
    assert register.calls.get(call_id).result == "Клиент дозвонился сам 27.11 11:05, ответил Петров"


def test_an_unknown_talk_time_is_an_attempt_unless_the_threshold_is_off(
    register: Register,
) -> None:
    call_id = missed(register, "a")
    assert close(register, callback(None)) == []
    row = card_service.with_attempts(register, register.calls.get(call_id))
    assert calls_view.attempts_json(row, MOSCOW) == [
        {
            "attempted_at": "2026-11-27T11:05:00+03:00",
            "talk_seconds": None,
            "direction": "outgoing",
            "who": "Смирнова",
            "text": "Перезванивали 27.11 11:05, длительность неизвестна — не дозвонились "
            "(Смирнова)",
        }
    ]
    assert close(register, callback(None, session="s2"), min_talk=0) == [call_id]


def hear(processor: Processor, steps: list[xsi_build.Step], at_ms: int) -> None:
    for seq, step in enumerate(steps, 1):
        body = xsi_build.event_document(step, subscription_id="s", sequence=seq)
        processor.register.inbox.add(body, step.leg.start_ms)
    processor.run_once(at_ms=at_ms)


def closing_processor(register: Register, release_wait: float = 3600) -> Processor:
    register.abonents.replace(DEFAULT_ABONENTS)
    processor = Processor(register, settle=1.0, release_wait=release_wait)
    processor.on_answered.append(autoclose.AutoCloser(register, config.load()))
    return processor


@pytest.mark.parametrize(("talk_ms", "status"), [(4_000, "missed"), (30_000, "called_back")])
def test_the_processor_hands_an_answered_call_over_when_it_ends(
    register: Register, talk_ms: int, status: str
) -> None:
    processor = closing_processor(register)
    call_id = missed(register, "a")
    *answered, released = xsi_build.outgoing_call(STAFF, CALLER, T0 + 60_000, talk_ms=talk_ms)
    hear(processor, answered, T0 + 120_000)  # decided answered, still talking
    assert register.calls.get(call_id).status == "missed"
    assert register.attempts.of([call_id]) == []
    hear(processor, [released], T0 + 130_000)
    assert register.calls.get(call_id).status == status
    assert len(register.attempts.of([call_id])) == (status == "missed")


def test_a_release_never_heard_is_an_attempt_with_unknown_talk_after_the_wait(
    register: Register,
) -> None:
    processor = closing_processor(register, release_wait=600)
    call_id = missed(register, "a")
    *answered, _ = xsi_build.outgoing_call(STAFF, CALLER, T0 + 60_000, talk_ms=900_000)
    hear(processor, answered, T0 + 120_000)
    processor.run_once(at_ms=T0 + 120_000 + 599_000)
    assert register.attempts.of([call_id]) == []
    processor.run_once(at_ms=T0 + 120_000 + 600_000)
    (attempt,) = register.attempts.of([call_id])
    assert attempt.talk_seconds is None
    assert register.calls.get(call_id).status == "missed"
    assert register.attempts.awaiting_release_since(T0 + 10**9) == []


def test_a_late_row_skips_short_calls_and_closes_on_a_conversation(register: Register) -> None:
    processor = Processor(register, settle=1.0)
    hear(processor, xsi_build.outgoing_call(STAFF, CALLER, T0 + 60_000, talk_ms=4_000), T0 + 10**7)
    late = missed(register, "stat:x")
    closer = autoclose.AutoCloser(register, config.load())
    assert closer.check_row(register.calls.get(late)) == []
    assert len(register.attempts.of([late])) == 1
    hear(
        processor, xsi_build.outgoing_call(STAFF, CALLER, T0 + 600_000, talk_ms=20_000), T0 + 10**7
    )
    assert closer.check_row(register.calls.get(late)) == [late]


def test_the_setting_is_read_and_checked() -> None:
    settings = config.load({"auto_close_min_talk": "4"})
    assert settings.auto_close_min_talk == 4.0
    assert replace(settings, auto_close_min_talk=0).auto_close_min_talk == 0
    with pytest.raises(Exception, match="auto-close-min-talk must be a number"):
        config.load({"auto_close_min_talk": "-1"})


# -- one rule at a time: the threshold, the attempt's time and log, late rows ----------------


def test_a_threshold_under_a_second_still_needs_a_known_talk_time(register: Register) -> None:
    """Only 0 turns the threshold off: half a second still asks how long they talked."""
    call_id = missed(register, "a")
    assert not autoclose.is_conversation(callback(None), 0.5)
    assert not autoclose.is_conversation(callback(0.4), 0.5)
    assert autoclose.is_conversation(callback(0.5), 0.5)
    assert autoclose.is_conversation(callback(None), 0)
    assert close(register, callback(None), min_talk=0.5) == []
    assert len(register.attempts.of([call_id])) == 1


def test_an_attempt_without_an_answer_time_is_dated_now(register: Register) -> None:
    call_id = missed(register, "a")
    no_answer_time = replace(callback(4), answer_ms=None, release_ms=None)
    assert close(register, no_answer_time) == []
    (attempt,) = register.attempts.of([call_id])
    assert attempt.attempted_at == timefmt.ms_to_stored(T0 + 3_600_000)  # close()'s now


def test_an_attempt_is_logged_with_its_calls_direction_who_and_talk(
    register: Register, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = missed(register, "a"), missed(register, "b", at_ms=T0 + 1000)
    with caplog.at_level(logging.INFO, logger="beeline_missed.autoclose"):
        close(register, callback(4))
        close(register, callback(None, "incoming", session="s2"))
    assert caplog.messages == [
        f"not auto-closed {first}, {second}: outgoing call answered by Смирнова lasted 4 s; "
        "recorded as an attempt",
        f"not auto-closed {first}, {second}: incoming call answered by Петров lasted unknown; "
        "recorded as an attempt",
    ]


def leg(
    session: str,
    answered_at: int,
    talk_ms: int | None,
    *,
    target: str = STAFF,
    personality: str = "Originator",
) -> LegState:
    """An answered external leg with CALLER as it is stored; talk_ms None: still going on."""
    return LegState(
        target_id=target,
        call_id=f"callhalf-{session}:0",
        ext_tracking_id=session,
        personality=personality,
        call_type="Network",
        remote_raw=f"tel:{CALLER}",
        start_ms=answered_at - 5_000,
        answer_ms=answered_at,
        release_ms=None if talk_ms is None else answered_at + talk_ms,
        answered=True,
        released=talk_ms is not None,
    )


def reached(register: Register, call_id: int, **kwargs: Any) -> list[int]:
    return autoclose.close_if_reached(
        register,
        register.calls.get(call_id),
        names=autoclose.StaffNames({}, []),
        zone=MOSCOW,
        now_ms=T0 + 3_600_000,
        **kwargs,
    )


def test_a_late_row_is_closed_by_any_talk_when_the_threshold_is_not_given(
    register: Register,
) -> None:
    register.sessions.put_leg(leg("s1", T0 + 60_000, talk_ms=500))
    late = missed(register, "stat:x")
    assert reached(register, late) == [late]


def test_a_late_row_is_not_closed_by_its_own_session(register: Register) -> None:
    """The row's own session (a hunt group member picking up after the row was decided
    missed, say) is the processor's to judge, not a later call that reached the client."""
    register.sessions.put_leg(leg("own", T0 + 60_000, talk_ms=30_000, personality="Terminator"))
    late = missed(register, "own")
    assert reached(register, late) == []
    assert register.calls.get(late).status == "missed"


def test_a_late_row_waits_for_a_call_still_going_on_and_closes_on_a_later_ended_one(
    register: Register,
) -> None:
    register.sessions.put_leg(leg("going", T0 + 60_000, talk_ms=None))
    late = missed(register, "stat:x")
    assert reached(register, late) == []  # the processor hands it over when it ends
    assert register.attempts.of([late]) == []
    register.sessions.put_leg(leg("ended", T0 + 120_000, talk_ms=30_000))
    assert reached(register, late, min_talk=10) == [late]
    assert register.calls.get(late).result == "Перезвонили 27.11 11:02"


def test_settling_new_rows_reports_every_row_closed(register: Register) -> None:
    other = "+79031112233"
    register.sessions.put_leg(leg("s1", T0 + 60_000, talk_ms=30_000))
    register.sessions.put_leg(
        replace(leg("s2", T0 + 90_000, talk_ms=30_000), remote_raw=f"tel:{other}")
    )
    first = missed(register, "stat:x")
    second = missed(register, "stat:y", phone=other)
    assert autoclose.settle_new_rows(register, config.load(), [first, second]) == (
        [first, second],
        [],
    )


def test_the_closer_tells_people_from_others_by_the_settings_and_the_abonent_list(
    register: Register,
) -> None:
    """An abonent the PBX does not list is no person by default (unknown_targets): its
    answer does not close the case, though with no list at all it would."""
    register.abonents.replace(DEFAULT_ABONENTS)
    stranger = "9009999999@ip.beeline.ru"
    register.sessions.put_leg(leg("s1", T0 + 60_000, talk_ms=30_000, target=stranger))
    late = missed(register, "stat:x")
    assert reached(register, late) == [late]  # no list given: anyone may be a person
    again = missed(register, "stat:y", at_ms=T0 + 1000)
    closer = autoclose.AutoCloser(register, config.load())
    assert closer.check_row(register.calls.get(again)) == []
    lenient = autoclose.AutoCloser(register, replace(config.load(), unknown_targets="person"))
    assert lenient.check_row(register.calls.get(again)) == [again]
