"""Auto-closing: end to end through the daemon subprocess and the simulator, plus the rules on a
real register file."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from beeline_missed import config, timefmt
from beeline_missed.daemon.processing import Processor
from beeline_missed.rules import autoclose, card
from beeline_missed.rules.detection import AnsweredCall, LegState
from beeline_missed.simulator import xsi_build
from beeline_missed.simulator.pbx import DEFAULT_ABONENTS, Simulator
from beeline_missed.store import Abonent, Register
from tests.support.daemon import Daemon, wait_for
from tests.support.e2e import (
    GROUP,
    now_ms,
    rows,
    settle_after,
    start_daemon,
    write_config,
)
from tests.support.peek import force_result, sqlite_count

pytestmark = pytest.mark.both_engines

CALLER = "+79161234567"
OTHER = "+79031112233"
MOSCOW = ZoneInfo("Europe/Moscow")


def when(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, MOSCOW).strftime("%d.%m %H:%M")


def row_of(home: Path, phone: str) -> dict:
    (row,) = [r for r in rows(home) if r["phone"] == phone]
    return row


def ready(proc: Daemon) -> Daemon:
    """Wait until the daemon has cached the PBX's abonents (names for the cards)."""
    wait_for(lambda: sqlite_count(proc.home, "abonents") > 0)
    return proc


@pytest.fixture
def daemon(home: Path, sim: Simulator) -> Iterator[Daemon]:
    proc = ready(start_daemon(home, sim))
    yield proc
    proc.stop()


@pytest.mark.e2e
def test_caller_gets_through_later_closes_the_missed_call(daemon: Daemon, sim: Simulator) -> None:
    base = now_ms() - 300_000
    sim.play(xsi_build.incoming_call(GROUP[:1], CALLER, base))
    wait_for(lambda: [r for r in rows(daemon.home) if r["phone"] == CALLER])
    later = xsi_build.incoming_call(GROUP, CALLER, base + 60_000, answered_by=GROUP[1])
    sim.play(later)
    closed = wait_for(
        lambda: [r for r in rows(daemon.home) if r["status"] == "called_back"], timeout=30
    )
    (row,) = closed
    answer_ms = next(s.leg.answer_ms for s in later if s.leg.answer_ms)
    assert row["phone"] == CALLER
    assert row["result"] == f"Клиент дозвонился сам {when(answer_ms)}, ответил Петров"
    assert row["user"] == "Петров"
    assert row["closed_by"] == "auto"
    assert row["handled_at"] is not None
    (shown,) = [c for c in daemon.calls() if c["phone"] == CALLER]
    assert (shown["status_label"], shown["closed_by"]) == ("Перезвонили", "auto")


@pytest.mark.e2e
def test_staff_call_back_answered_closes_unanswered_leaves_open(
    daemon: Daemon, sim: Simulator
) -> None:
    base = now_ms() - 300_000
    sim.play(xsi_build.incoming_call(GROUP[:1], CALLER, base))
    sim.play(xsi_build.incoming_call(GROUP[:1], OTHER, base + 1000))
    wait_for(lambda: len(rows(daemon.home)) == 2)

    nobody = xsi_build.outgoing_call(GROUP[0], OTHER, base + 60_000, answered=False)
    sim.play(nobody)
    after = settle_after(daemon, sim, nobody, base + 90_000)
    assert [(r["phone"], r["status"]) for r in after] == [(CALLER, "missed"), (OTHER, "missed")]

    reached = xsi_build.outgoing_call(GROUP[0], CALLER, base + 120_000, answered=True)
    sim.play(reached)
    wait_for(lambda: row_of(daemon.home, CALLER)["status"] == "called_back", timeout=30)
    row = row_of(daemon.home, CALLER)
    answer_ms = next(s.leg.answer_ms for s in reached if s.leg.answer_ms)
    assert row["result"] == f"Перезвонили {when(answer_ms)}"
    assert (row["user"], row["closed_by"]) == ("Смирнова", "auto")
    assert row_of(daemon.home, OTHER)["status"] == "missed"


@pytest.mark.e2e
def test_auto_close_off_and_staff_names_from_config(home: Path, sim: Simulator) -> None:
    write_config(home, 'auto_close = false\nstaff_names."202" = "Игорь"\n')
    proc = ready(start_daemon(home, sim))
    try:
        base = now_ms() - 300_000
        sim.play(xsi_build.incoming_call(GROUP[:1], CALLER, base))
        later = xsi_build.incoming_call(GROUP, CALLER, base + 60_000, answered_by=GROUP[1])
        sim.play(later)
        after = settle_after(proc, sim, later, base + 90_000)
        assert [(r["phone"], r["status"]) for r in after] == [(CALLER, "missed")]
    finally:
        proc.stop()
    register = Register.open(config.load().db)  # the test's register, file or database
    try:
        names = autoclose.StaffNames.load(register, config.load().staff_names)
        assert names.name(GROUP[1]) == "Игорь"  # configured by extension
        assert names.name("9001112203") == "Кузнецов"  # from the PBX's list
        assert names.name("SIP00SLQU00A0J@ip.beeline.ru") == "SIP00SLQU00A0J"
    finally:
        register.close()


# -- the rules on a register file, no daemon ------------------------------------------------

T0 = 1795766400000  # 27.11.2026 11:00 in Moscow


def hear_all(register: Register, *calls: list[xsi_build.Step]) -> None:
    """The hook heard these calls: the real processor applies and decides them."""
    for steps in calls:
        for seq, step in enumerate(steps, 1):
            body = xsi_build.event_document(step, subscription_id="s", sequence=seq)
            register.inbox.add(body, step.leg.start_ms)
    Processor(register, settle=1.0).run_once(at_ms=T0 + 10_000_000)


def add_missed(register: Register, key: str, phone: str, at_ms: int) -> int:
    with register.transaction():
        row = register.calls.insert(
            session_key=key,
            phone=phone,
            phone_raw=phone,
            called_at=timefmt.ms_to_stored(at_ms),
            line="201",
        )
    assert row is not None
    return row


def test_only_earlier_open_calls_close_and_notes_and_staff_work_are_kept(
    register: Register,
) -> None:
    register.abonents.replace(DEFAULT_ABONENTS)
    noted = add_missed(register, "a", CALLER, T0)
    handled = add_missed(register, "b", CALLER, T0 + 1000)
    after = add_missed(register, "c", CALLER, T0 + 600_000)
    first = register.calls.get(noted)
    force_result(register, noted, "просил после обеда")
    second = register.calls.get(handled)
    register.calls.save(
        handled,
        second.version,
        status="called_back",
        result="Записан",
        user="Иванов",
        handled_at="2026-11-27T08:10:00Z",
    )
    call = AnsweredCall("s1", CALLER, "incoming", "9001112202", T0 + 300_000)
    names = autoclose.StaffNames.load(register)
    closed = autoclose.close_resolved(register, call, names=names, zone=MOSCOW, now_ms=T0 + 360_000)
    assert closed == [noted]
    row = register.calls.get(noted)
    assert row.result == "просил после обеда\nКлиент дозвонился сам 27.11 11:05, ответил Петров"
    assert row.version == first.version + 1
    assert register.calls.get(handled).result == "Записан"
    assert register.calls.get(handled).user == "Иванов"
    assert register.calls.get(after).status == "missed"


def test_a_row_registered_late_is_closed_if_the_number_was_reached_since(
    register: Register,
) -> None:
    # The hook heard staff reach the client at 11:10; reconciliation then finds the 11:00 call.
    steps = xsi_build.outgoing_call("9001112204@ip.beeline.ru", CALLER, T0 + 600_000)
    hear_all(register, steps)
    late = add_missed(register, "stat:x", CALLER, T0)
    closer = autoclose.AutoCloser(register, config.load())
    assert closer.check_row(register.calls.get(late)) == [late]
    row = register.calls.get(late)
    assert row.result == "Перезвонили 27.11 11:10"
    assert row.user == "9001112204"  # no abonent list cached: the PBX's id
    other = add_missed(register, "stat:y", OTHER, T0)
    assert closer.check_row(register.calls.get(other)) == []


def test_new_rows_are_settled_the_same_way_for_the_daemon_and_reconcile(
    register: Register,
) -> None:
    """settle_new_rows closes a late row whose caller was reached since and leaves the others
    open (to notify); with auto_close off it closes nothing."""
    steps = xsi_build.outgoing_call("9001112204@ip.beeline.ru", CALLER, T0 + 600_000)
    hear_all(register, steps)
    late = add_missed(register, "stat:x", CALLER, T0)
    other = add_missed(register, "stat:y", OTHER, T0)
    off = replace(config.load(), auto_close=False)
    assert autoclose.settle_new_rows(register, off, [late, other]) == ([], [late, other])
    assert register.calls.get(late).status == "missed"
    closed, left_open = autoclose.settle_new_rows(register, config.load(), [late, other])
    assert (closed, left_open) == ([late], [other])
    assert register.calls.get(late).status == "called_back"
    assert register.calls.get(other).status == "missed"


def test_an_answer_heard_late_also_closes_the_callers_earlier_calls(
    register: Register,
) -> None:
    register.abonents.replace(DEFAULT_ABONENTS)
    processor = Processor(register, settle=1.0)
    processor.on_answered.append(autoclose.AutoCloser(register, config.load()))

    def hear(steps: list[xsi_build.Step], at_ms: int) -> None:
        for step in steps:
            body = xsi_build.event_document(step, subscription_id="s", sequence=1)
            register.inbox.add(body, step.leg.start_ms)
        processor.run_once(at_ms=at_ms)

    hear(xsi_build.incoming_call(GROUP[:1], CALLER, T0), T0 + 3_600_000)
    second = xsi_build.incoming_call([GROUP[1]], CALLER, T0 + 600_000)
    hear(second, T0 + 3_600_000)
    calls = sorted(register.calls.rows(include_handled=True), key=lambda c: c.called_at)
    first_row, second_row = (c.id for c in calls)
    # The PBX's answer for the second call arrives after it was registered as missed.
    leg = second[0].leg
    answer = xsi_build.Step("CallAnsweredEvent", replace(leg, answer_ms=T0 + 605_000))
    hear([answer], T0 + 3_700_000)
    assert register.calls.get(second_row).result.startswith("Звонок был принят")
    first = register.calls.get(first_row)
    assert first.status == "called_back"
    assert first.result == "Клиент дозвонился сам 27.11 11:10, ответил Петров"
    assert first.closed_by == "auto"


def test_a_card_staff_saved_between_the_read_and_the_write_is_left_as_saved(
    register: Register, monkeypatch: pytest.MonkeyPatch
) -> None:
    register.abonents.replace(DEFAULT_ABONENTS)
    call_id = add_missed(register, "a", CALLER, T0)
    read_open_calls = register.calls.open_of

    def staff_save_right_after_the_read(phone: str, until: str) -> list[dict]:
        rows = read_open_calls(phone, until)
        opened = card.Card.from_row(register.calls.get(call_id))
        edit = card.Edit(user="Анна", status="called_back", result="Записан на пятницу")
        card.store(register.calls, [card.decide(opened, edit, "2026-11-27T08:04:00Z")])
        return rows

    monkeypatch.setattr(register.calls, "open_of", staff_save_right_after_the_read)
    call = AnsweredCall("s1", CALLER, "incoming", "9001112202", T0 + 300_000)
    names = autoclose.StaffNames.load(register)
    closed = autoclose.close_resolved(register, call, names=names, zone=MOSCOW, now_ms=T0 + 360_000)
    assert closed == []
    row = register.calls.get(call_id)
    assert (row.status, row.result, row.user, row.closed_by, row.handled_at) == (
        "called_back",
        "Записан на пятницу",
        "Анна",
        "staff",
        "2026-11-27T08:04:00Z",
    )


def test_a_late_answer_leaves_a_card_staff_already_saved(register: Register) -> None:
    register.abonents.replace(DEFAULT_ABONENTS)
    processor = Processor(register, settle=1.0)
    processor.on_answered.append(autoclose.AutoCloser(register, config.load()))

    def hear(steps: list[xsi_build.Step], at_ms: int) -> None:
        for step in steps:
            body = xsi_build.event_document(step, subscription_id="s", sequence=1)
            register.inbox.add(body, step.leg.start_ms)
        processor.run_once(at_ms=at_ms)

    hear(xsi_build.incoming_call(GROUP[:1], CALLER, T0), T0 + 3_600_000)
    hear(xsi_build.incoming_call(GROUP[:1], CALLER, T0 + 60_000), T0 + 3_600_000)
    saved_id, open_id = sorted(c.id for c in register.calls.rows(include_handled=True))
    opened = card.Card.from_row(register.calls.get(saved_id))
    edit = card.Edit(user="Анна", status="called_back", result="Записан на пятницу")
    card.store(register.calls, [card.decide(opened, edit, "2026-11-27T08:04:00Z")])
    # The client calls again and gets through: the call nobody handled is closed, Анна's
    # card stays as she saved it.
    answered = xsi_build.incoming_call([GROUP[1]], CALLER, T0 + 600_000, answered_by=GROUP[1])
    hear(answered, T0 + 3_700_000)
    assert register.calls.get(open_id).closed_by == "auto"
    row = register.calls.get(saved_id)
    assert (row.status, row.result, row.user, row.closed_by, row.version) == (
        "called_back",
        "Записан на пятницу",
        "Анна",
        "staff",
        2,
    )


# -- names, legs and the log, one rule at a time ------------------------------------------

ABONENTS = [
    Abonent("SIP00ABC@ip.beeline.ru", phone="9001112207", extension="207",
            last_name="Смирнова", first_name="Анна"),
    Abonent("", phone="9001112205", extension="205", last_name="", first_name="Ольга"),
    Abonent("9001112206@ip.beeline.ru"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("who", "mapping", "name"),
    [
        ("SIP00ABC@ip.beeline.ru", {}, "Смирнова"),  # by the PBX id
        ("SIP00ABC", {}, "Смирнова"),  # the id without its domain
        ("9001112207", {}, "Смирнова"),  # by the number
        ("207", {}, "Смирнова"),  # by the extension
        ("9001112205", {}, "Ольга"),  # no last name: the first name
        ("205", {}, "Ольга"),
        ("9001112206@ip.beeline.ru", {}, "9001112206"),  # no names at all: the id
        ("9001112299", {}, "9001112299"),  # unknown abonent
        ("207", {"SIP00ABC@ip.beeline.ru": "Аня"}, "Аня"),  # configured by id
        ("SIP00ABC", {"9001112207": "Аня"}, "Аня"),  # configured by number
        ("9001112207", {"207": "Аня"}, "Аня"),  # configured by extension
        ("SIP00ABC@ip.beeline.ru", {"SIP00ABC": "Аня"}, "Аня"),  # by the id as the PBX says it
        ("207", {"207": ""}, "Смирнова"),  # an empty configured name is no name
    ],
)
def test_staff_names_by_id_number_extension_then_the_pbx_list(
    who: str, mapping: dict, name: str
) -> None:
    assert autoclose.StaffNames(mapping, ABONENTS).name(who) == name


@pytest.mark.parametrize(
    ("personality", "direction"), [("Terminator", "incoming"), ("Originator", "outgoing")]
)
def test_an_answered_leg_is_the_answered_call_it_was(personality: str, direction: str) -> None:
    leg = LegState(
        target_id="9001112202@ip.beeline.ru",
        call_id="callhalf-1:0",
        ext_tracking_id="1234",
        personality=personality,
        remote_raw=f"tel:{CALLER}",
        answer_ms=T0,
        release_ms=T0 + 4_000,
        released=True,
    )
    expected = AnsweredCall("1234", CALLER, direction, "9001112202", T0, T0 + 4_000)
    assert autoclose.answered_from_leg(leg) == expected
    assert expected.talk_seconds == 4
    assert autoclose.answered_from_leg(replace(leg, remote_raw=None)) is None
    assert autoclose.answered_from_leg(replace(leg, remote_raw="anonymous")) is None
    # Still talking: the end and so the talk time are not known yet.
    going_on = autoclose.answered_from_leg(replace(leg, released=False))
    assert going_on == replace(expected, release_ms=None, ended=False)
    assert going_on is not None and going_on.talk_seconds is None


def test_without_an_answer_time_the_moment_now_is_used(register: Register) -> None:
    call_id = add_missed(register, "a", CALLER, T0)
    call = AnsweredCall("s1", CALLER, "outgoing", "9001112204", None)
    names = autoclose.StaffNames({}, [])
    now_ms = T0 + 360_000
    assert autoclose.close_resolved(register, call, names=names, zone=MOSCOW, now_ms=now_ms) == [
        call_id
    ]
    row = register.calls.get(call_id)
    assert (row.result, row.handled_at, row.closed_by, row.user) == (
        "Перезвонили 27.11 11:06",
        timefmt.ms_to_stored(now_ms),
        "auto",
        "9001112204",
    )


def test_notes_keep_their_text_but_not_their_trailing_blanks(register: Register) -> None:
    call_id = add_missed(register, "a", CALLER, T0)
    notes = "  просил после обеда  \n"
    force_result(register, call_id, notes)
    call = AnsweredCall("s1", CALLER, "outgoing", "9001112204", T0 + 300_000)
    autoclose.close_resolved(
        register, call, names=autoclose.StaffNames({}, []), zone=MOSCOW, now_ms=T0 + 360_000
    )
    assert register.calls.get(call_id).result == "просил после обеда\nПерезвонили 27.11 11:05"


def test_a_handled_row_and_a_lost_race_do_not_stop_the_others(
    register: Register, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    handled = add_missed(register, "a", CALLER, T0)
    raced = add_missed(register, "b", CALLER, T0 + 1000)
    last = add_missed(register, "c", CALLER, T0 + 2000)
    register.calls.save(
        handled, 1, status="called_back", result="Записан", user="Анна",
        handled_at="2026-11-27T08:01:00Z", closed_by="staff",
    )  # fmt: skip
    rows_then = [register.calls.get(i) for i in (raced, last)]

    def read(phone: str, until: str) -> list[dict]:
        rows = [register.calls.get(handled), *rows_then]  # as a stale read would see them
        register.calls.save(
            raced, 1, status="called_back", result="Перезвонили сами", user="Борис",
            handled_at="2026-11-27T08:02:00Z", closed_by="staff",
        )  # fmt: skip
        return rows

    monkeypatch.setattr(register.calls, "open_of", read)
    call = AnsweredCall("s1", CALLER, "incoming", "9001112202", T0 + 300_000)
    names = autoclose.StaffNames({"9001112202": "Петров"}, [])
    with caplog.at_level(logging.INFO, logger="beeline_missed.autoclose"):
        closed = autoclose.close_resolved(
            register, call, names=names, zone=MOSCOW, now_ms=T0 + 360_000
        )
    assert closed == [last]
    assert register.calls.get(handled).result == "Записан"
    assert register.calls.get(raced).user == "Борис"
    assert [r.getMessage() for r in caplog.records] == [
        f"call {raced} was saved by someone meanwhile; not auto-closed",
        f"auto-closed {last}: Клиент дозвонился сам 27.11 11:05, ответил Петров "
        "(incoming call answered by Петров)",
    ]


def test_two_closed_calls_are_logged_in_one_line(
    register: Register, caplog: pytest.LogCaptureFixture
) -> None:
    ids = [add_missed(register, key, CALLER, T0 + i * 1000) for i, key in enumerate("ab")]
    call = AnsweredCall("s1", CALLER, "outgoing", "9001112204", T0 + 300_000)
    with caplog.at_level(logging.INFO, logger="beeline_missed.autoclose"):
        autoclose.close_resolved(
            register, call, names=autoclose.StaffNames({}, []), zone=MOSCOW, now_ms=T0 + 360_000
        )
    assert [r.getMessage() for r in caplog.records] == [
        f"auto-closed {ids[0]}, {ids[1]}: Перезвонили 27.11 11:05 (outgoing call answered by "
        "9001112204)"
    ]


def test_a_late_row_is_closed_only_by_an_answer_after_it(register: Register) -> None:
    # Staff reached the client at 10:50, before the 11:00 call: that call stays open.
    steps = xsi_build.outgoing_call("9001112204@ip.beeline.ru", CALLER, T0 - 600_000)
    hear_all(register, steps)
    late = add_missed(register, "stat:x", CALLER, T0)
    vladivostok = replace(config.load(), staff_names={}, timezone="Asia/Vladivostok")
    closer = autoclose.AutoCloser(register, vladivostok)
    assert closer.check_row(register.calls.get(late)) == []
    # Reached again at 11:10: now it is closed, the time told in the configured zone.
    steps = xsi_build.outgoing_call("9001112204@ip.beeline.ru", CALLER, T0 + 600_000)
    hear_all(register, steps)
    assert closer.check_row(register.calls.get(late)) == [late]
    assert register.calls.get(late).result == "Перезвонили 27.11 18:10"
    direct = add_missed(register, "stat:y", CALLER, T0 + 1000)
    assert autoclose.close_if_reached(
        register, register.calls.get(direct), names=autoclose.StaffNames({}, []),
        zone=ZoneInfo("Asia/Vladivostok"), now_ms=T0 + 3_600_000,
    ) == [direct]  # fmt: skip
    assert register.calls.get(direct).result == "Перезвонили 27.11 18:10"


def test_the_closer_reads_staff_names_and_zone_from_the_settings(register: Register) -> None:
    settings = replace(
        config.load(), staff_names={"9001112204": "Игорь"}, timezone="Asia/Vladivostok"
    )
    closer = autoclose.AutoCloser(register, settings)
    assert closer.mapping == {"9001112204": "Игорь"}
    assert closer.zone == ZoneInfo("Asia/Vladivostok")
    assert closer.min_talk == autoclose.DEFAULT_MIN_TALK == config.Settings.auto_close_min_talk
    call_id = add_missed(register, "a", CALLER, T0)
    talk = AnsweredCall("s1", CALLER, "outgoing", "9001112204", T0 + 300_000, T0 + 360_000)
    assert closer(talk) == [call_id]
    assert register.calls.get(call_id).user == "Игорь"
    bare = autoclose.AutoCloser(register, config.load())  # nothing configured
    assert bare.mapping == {}
    assert bare.zone == MOSCOW  # TZ=Europe/Moscow in the tests
    assert bare.min_talk == autoclose.DEFAULT_MIN_TALK


def test_now_is_epoch_milliseconds() -> None:
    assert abs(timefmt.now_ms() - time.time() * 1000) < 5_000


def test_a_voice_menu_callers_row_is_not_closed_by_a_service_answering(
    register: Register,
) -> None:
    # Start times carry milliseconds, as the PBX's do: the menu's own leg starts "after" the
    # row's called_at (stored to the second) and must still not count.
    menu = xsi_build.voice_menu_call(CALLER, T0 + 456)
    queue_only = xsi_build.queue_call(["9001112202@ip.beeline.ru"], CALLER, T0 + 600_456)
    hear_all(register, menu, queue_only)
    calls = register.calls.rows(include_handled=True)
    assert [c.status for c in calls] == ["missed", "missed"]
    closer = autoclose.AutoCloser(register, config.load())
    for call in calls:
        assert closer.check_row(register.calls.get(call.id)) == []
    # A person who takes the number's next call does close them.
    answered = xsi_build.incoming_call(
        ["9001112203@ip.beeline.ru"], CALLER, T0 + 1_200_456, answered_by="9001112203@ip.beeline.ru"
    )
    hear_all(register, answered)
    first = min(calls, key=lambda c: c.called_at)
    assert closer.check_row(register.calls.get(first.id)) == [c.id for c in sorted(
        calls, key=lambda c: c.id)]  # fmt: skip
