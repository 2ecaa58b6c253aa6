"""Escalation: cases open past escalate_after are sent once to the managers' channels. End to end
through the daemon, the simulator, a fake Telegram Bot API and a real SMTP server on loopback
(the doubles of test_notify.py), then the rule with the clock as a parameter."""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from beeline_missed import config, timefmt
from beeline_missed.daemon import escalator, notify
from beeline_missed.rules import escalation, hours
from beeline_missed.rules.deadlines import Deadlines
from beeline_missed.simulator import xsi_build
from beeline_missed.simulator.pbx import Simulator
from beeline_missed.store import Call, Register
from tests.support import clock
from tests.support.channels import TOKEN, FakeTelegram, Inbox, config_text, mail_text
from tests.support.daemon import free_port, wait_for
from tests.support.e2e import GROUP, start_daemon, write_config
from tests.support.factories import add_call, call_row

pytestmark = pytest.mark.both_engines

MOSCOW = ZoneInfo("Europe/Moscow")


FIRST = "+79161234567"
SECOND = "+79035550011"


def escalations(telegram: FakeTelegram) -> list[str]:
    return [
        body["text"] for _, body in telegram.posts if body["text"].startswith(escalation.SUBJECT)
    ]


@pytest.mark.e2e
def test_an_overdue_case_is_escalated_once_by_telegram_and_mail(
    home: Path, sim: Simulator, telegram: FakeTelegram, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    extra = "escalate_after = 30\nescalate_interval = 1\n"
    write_config(home, config_text(telegram.url, port, extra))
    proc = start_daemon(home, sim)
    try:
        # Two hours ago (the daemon judges start times against its clock): overdue at once.
        start = clock.ms(clock.now() - timedelta(hours=2))
        sim.play(xsi_build.incoming_call(GROUP[:1], FIRST, start))
        sim.play(xsi_build.incoming_call(GROUP[:1], FIRST, start + 60_000))  # tried again
        wait_for(lambda: escalations(telegram), timeout=30)
        # A later overdue caller is escalated in a message of its own: the checks in between
        # (every second) did not send the first case again.
        sim.play(xsi_build.incoming_call(GROUP[:1], SECOND, start + 600_000))
        wait_for(lambda: len(escalations(telegram)) == 2, timeout=30)
        wait_for(lambda: sum(subject_of(m) == escalation.SUBJECT for m in inbox.messages) == 2)
    finally:
        proc.stop()
    first, second = escalations(telegram)
    assert first.splitlines()[0] == "Не перезвонили вовремя: 1 (ждут дольше 30 мин)"
    # The caller's second call may be registered before or after the first check, and on a
    # loaded machine before the first call (its events kept in the spool a moment at the
    # daemon's start): either way it is one case, told once, waiting since the earliest call
    # known then (the attempts line is tested on the message itself).
    assert re.search(r"\+7 916 123-45-67: ждёт (2 ч|1 ч 59 мин) ", first), first
    assert "+7 903" not in first
    assert second.splitlines()[1].startswith("+7 903 555-00-11: ждёт 1 ч 50 мин")
    assert "+7 916" not in second
    assert TOKEN not in proc.log()
    assert "escalated 1 overdue case(s) to the managers" in proc.log()


def subject_of(message: tuple[list[str], bytes]) -> str:
    return mail_text(message[1])[0]


@pytest.mark.e2e
def test_off_by_default_no_escalation(
    home: Path, sim: Simulator, telegram: FakeTelegram, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    write_config(home, config_text(telegram.url, port, "escalate_interval = 1\n"))
    proc = start_daemon(home, sim)
    try:
        start = clock.ms(clock.now() - timedelta(days=1))
        sim.play(xsi_build.incoming_call(GROUP[:1], FIRST, start))
        # The call's own notification arrives; an escalation never would (off by default).
        wait_for(lambda: telegram.posts, timeout=30)
    finally:
        proc.stop()
    assert escalations(telegram) == []
    assert all(subject_of(m) != escalation.SUBJECT for m in inbox.messages)
    assert "escalating cases" not in proc.log() and "escalated" not in proc.log()


# -- the rule, with the clock as a parameter -------------------------------------------------

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # Monday 12:00 in Moscow


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def case(call_id: int, minutes_ago: float, *ids: int, **more: Any) -> Call:
    first = timefmt.ms_to_stored(ms(NOW - timedelta(minutes=minutes_ago)))
    return call_row(**{"id": call_id, "called_at": first, "call_ids": ids, "phone": FIRST, **more})


def judged(**days: str) -> Deadlines:
    return Deadlines((900.0, 3600.0), hours.parse(days, [], MOSCOW))


def test_only_cases_past_the_limit_never_escalated_before_longest_first() -> None:
    cases = [case(1, 29), case(2, 30), case(3, 90, 3, 4), case(5, 300), case(6, 45)]
    found = escalation.overdue(cases, judged(), 1800, ms(NOW), escalated={5})
    assert [(c.id, c.waiting_s) for c in found] == [(3, 5400), (6, 2700), (2, 1800)]
    assert escalation.overdue(cases, judged(), 0, ms(NOW), set()) == []  # off
    assert [c.id for c in escalation.overdue([case(1, 1)], judged(), 1, ms(NOW), set())] == [1]


def test_nothing_outside_working_hours_and_the_wait_is_working_time() -> None:
    shop = judged(mon="09:00-19:00", tue="09:00-19:00")
    # Called Monday 11:00, judged 12:00: an hour of working time.
    assert [c.id for c in escalation.overdue([case(1, 60)], shop, 1800, ms(NOW), set())] == [1]
    # At 20:00 the shop is closed: nobody is told, however long the wait.
    evening = ms(NOW + timedelta(hours=8))
    assert escalation.overdue([case(1, 60)], shop, 1800, evening, set()) == []
    # Called Monday 18:50, judged Tuesday 09:10: 20 minutes of working time, not 14 hours.
    tuesday = NOW + timedelta(hours=21, minutes=10)
    late = replace(
        case(2, 0), first_called_at=timefmt.ms_to_stored(ms(NOW + timedelta(hours=6, minutes=50)))
    )
    assert escalation.overdue([late], shop, 1800, ms(tuesday), set()) == []
    assert [c.waiting_s for c in escalation.overdue([late], shop, 1200, ms(tuesday), set())] == [
        1200
    ]


def test_the_message_lists_the_callers() -> None:
    cases = escalation.overdue(
        [case(1, 95, client="Иванов Иван", attempts=3), case(2, 40, phone=None)],
        judged(), 1800, ms(NOW), set(),
    )  # fmt: skip
    assert escalation.message(cases, 1800, MOSCOW) == (
        "Не перезвонили вовремя: 2 (ждут дольше 30 мин)\n"
        "+7 916 123-45-67 — Иванов Иван: ждёт 1 ч 35 мин (с 30.11.2026 10:25), звонил 3 раз(а)\n"
        "номер скрыт: ждёт 40 мин (с 30.11.2026 11:20)"
    )


def test_recorded_in_the_register_never_twice_not_for_a_new_attempt(register: Register) -> None:
    now = ms(NOW)
    stored = timefmt.ms_to_stored
    first = add_call(register, "a", FIRST, stored(now - 3_600_000))
    add_call(register, "b", SECOND, stored(now - 60_000))
    found = escalator.escalate(register, judged(), 1800, now)
    assert [c.call_ids for c in found] == [(first,)]
    assert escalator.escalate(register, judged(), 1800, now + 60_000) == []
    # The caller tries again: still the same case, already told about.
    add_call(register, "c", FIRST, stored(now + 120_000))
    assert escalator.escalate(register, judged(), 1800, now + 180_000) == []
    assert register.escalations.among([first]) == {first}
    # The other caller passes the limit later: told then, alone.
    later = escalator.escalate(register, judged(), 1800, now + 1_800_000)
    assert [c.phone for c in later] == [SECOND]


def test_handled_cases_are_skipped_and_any_call_of_a_case_counts_as_told() -> None:
    handled = case(1, 300, status="called_back")
    # A call read alone stands for its own case and time.
    bare = call_row(id=2, called_at=case(2, 60).called_at, phone=FIRST)
    told = case(3, 120, 3, 8)  # its later call 8 was escalated before
    fresh = case(4, 90, 4, 9)
    found = escalation.overdue([handled, bare, told, fresh], judged(), 1800, ms(NOW), {8})
    assert [(c.id, c.call_ids, c.waiting_s) for c in found] == [
        (4, (4, 9), 5400),
        (2, (2,), 3600),
    ]
    assert escalation.overdue([bare], judged(), 1800, ms(NOW), {2}) == []


def test_equal_waits_in_id_order_and_waits_are_whole_seconds() -> None:
    # Judged half a second past the minute (stored times are whole seconds): 2,400 seconds.
    found = escalation.overdue([case(7, 40), case(5, 40)], judged(), 1800, ms(NOW) + 500, set())
    assert [(c.id, c.waiting_s) for c in found] == [(5, 2400), (7, 2400)]
    assert all(type(c.waiting_s) is int for c in found)


def test_the_message_tells_the_first_call_in_the_given_zone_and_two_attempts() -> None:
    first = case(1, 95, attempts=2)
    first = replace(
        first,
        called_at=timefmt.ms_to_stored(ms(NOW - timedelta(minutes=5))),  # tried again
        first_called_at=first.called_at,
    )
    second = case(2, 50)
    cases = escalation.overdue([first, second], judged(), 1800, ms(NOW), set())
    assert escalation.message(cases, 1800, UTC).splitlines()[1:] == [
        "+7 916 123-45-67: ждёт 1 ч 35 мин (с 30.11.2026 07:25), звонил 2 раз(а)",
        "+7 916 123-45-67: ждёт 50 мин (с 30.11.2026 08:10)",
    ]


def test_the_message_names_thirty_callers_and_counts_the_rest() -> None:
    thirty = escalation.overdue(
        [case(i, 60 + i) for i in range(1, 31)], judged(), 1800, ms(NOW), set()
    )
    lines = escalation.message(thirty, 1800, MOSCOW).splitlines()
    assert lines[0] == "Не перезвонили вовремя: 30 (ждут дольше 30 мин)"
    assert len(lines) == 31 and lines[-1].startswith("+7 916")
    more = escalation.overdue(
        [case(i, 60 + i) for i in range(1, 33)], judged(), 1800, ms(NOW), set()
    )
    lines = escalation.message(more, 1800, MOSCOW).splitlines()
    assert len(lines) == 32 and lines[-1] == "… и ещё 2"


# -- the daemon's thread, against a fake Bot API on loopback ---------------------------------


def settings_for(home: Path, telegram_url: str, smtp_port: int) -> Any:
    """The project's config: both channels, UTC, a 30-minute limit, Monday 08:00-18:00."""
    extra = (
        'timezone = "UTC"\nescalate_after = 30\nescalate_interval = 1\n'
        'working_hours.mon = "08:00-18:00"\n'
    )
    write_config(home, config_text(telegram_url, smtp_port, extra))
    return config.load()


def test_a_check_sends_the_overdue_cases_once_within_working_hours(
    home: Path, register: Register, db_path: Path, telegram: FakeTelegram,
    smtp: tuple[Inbox, int], caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    inbox, port = smtp
    now = ms(NOW)  # Monday 09:00 UTC, the setting's zone
    first = add_call(register, "a", FIRST, timefmt.ms_to_stored(now - 3_600_000))
    second = add_call(register, "b", SECOND, timefmt.ms_to_stored(now - 1_800_000))
    moments = [now + 10 * 3_600_000, now]  # 19:00, after closing; then 09:00
    settings = settings_for(home, telegram.url, port)
    checker = escalator.Escalator(
        db_path, settings, notify.senders(settings), threading.Event(),
        clock_ms=lambda: moments.pop(0),
    )  # fmt: skip
    caplog.set_level(logging.INFO, "beeline_missed.escalation")
    assert checker.check(register) == []  # the shop is closed: nobody is woken
    sent = checker.check(register)
    assert [c.call_ids for c in sent] == [(first,), (second,)]
    # Thirty minutes reached is past the limit; the zone is the setting's (UTC), not the
    # machine's (Moscow); the hour before 08:00 would not count, the hour after does.
    text = (
        "Не перезвонили вовремя: 2 (ждут дольше 30 мин)\n"
        "+7 916 123-45-67: ждёт 1 ч 00 мин (с 30.11.2026 08:00)\n"
        "+7 903 555-00-11: ждёт 30 мин (с 30.11.2026 08:30)"
    )
    assert escalations(telegram) == [text]
    wait_for(lambda: inbox.messages, timeout=30)
    mails = [mail_text(m[1]) for m in inbox.messages]
    assert [(subject, body.rstrip("\n")) for subject, body in mails] == [(escalation.SUBJECT, text)]
    assert caplog.messages == [
        f"escalated 2 overdue case(s) to the managers: calls {first}, {second}"
    ]
    moments.append(now + 60_000)
    assert checker.check(register) == [] and len(telegram.posts) == 1


@pytest.mark.parametrize(
    ("attempts", "stopping", "posts"), [(3, False, 3), (2, False, 2), (3, True, 1), (2, True, 1)]
)
def test_failing_channels_are_retried_then_logged_unless_stopping(
    home: Path, register: Register, db_path: Path, caplog: pytest.LogCaptureFixture,
    attempts: int, stopping: bool, posts: int,
) -> None:  # fmt: skip
    now = ms(NOW)
    first = add_call(register, "a", FIRST, timefmt.ms_to_stored(now - 3_600_000))
    stop = threading.Event()
    if stopping:
        stop.set()
    with FakeTelegram(status=500) as broken:
        settings = settings_for(home, broken.url, free_port())  # no mail server listens
        checker = escalator.Escalator(
            db_path, settings, notify.senders(settings), stop,
            clock_ms=lambda: now, attempts=attempts, retry_delay=0.01,
        )  # fmt: skip
        assert [c.id for c in checker.check(register)] == [first]
    assert len(broken.posts) == posts
    assert f"escalation of calls {first} not sent by telegram, e-mail" in caplog.messages
    assert not any(m.startswith("escalated") for m in caplog.messages)


def test_the_thread_survives_a_failed_check_and_stops_when_told(
    home: Path, register: Register, db_path: Path, telegram: FakeTelegram,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    now = ms(NOW)
    add_call(register, "a", FIRST, timefmt.ms_to_stored(now - 3_600_000))
    calls = []

    def clock() -> int:  # the first check fails; the next, a second later, sends
        calls.append(now)
        if len(calls) == 1:
            raise RuntimeError("clock unreadable")
        return now

    stop = threading.Event()
    settings = settings_for(home, telegram.url, free_port())
    checker = escalator.Escalator(
        db_path,
        settings,
        [notify.TelegramSender(TOKEN, "-100500", telegram.url)],
        stop,
        clock_ms=clock,
    )
    thread = checker.start()
    assert thread.name == "escalation" and thread.daemon
    try:
        wait_for(lambda: escalations(telegram), timeout=30)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert "escalation check failed" in caplog.messages
    assert len(escalations(telegram)) == 1
