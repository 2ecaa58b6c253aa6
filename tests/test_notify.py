"""Notifications: a fake Telegram Bot API and a real SMTP server (aiosmtpd) on loopback, the
daemon as a subprocess, the simulator posting the calls."""

from __future__ import annotations

from pathlib import Path

from beeline_missed.daemon import notify
from beeline_missed.simulator import xsi_build
from beeline_missed.simulator.pbx import Simulator
from tests.support import clock
from tests.support.channels import TOKEN, FakeTelegram, Inbox, config_text, mail_text
from tests.support.daemon import free_port, wait_for
from tests.support.e2e import GROUP, now_ms, rows, start_daemon, write_config
from tests.support.factories import call_row

CALLER = "+79161234567"
# Call starts are judged against the daemon's clock, so the test calls happened yesterday.
START = clock.yesterday_at(11)
T0 = clock.ms(START)


def test_each_new_missed_call_is_sent_by_telegram_and_mail_with_the_clients_name(
    home: Path, sim: Simulator, telegram: FakeTelegram, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    write_config(home, config_text(telegram.url, port))
    proc = start_daemon(home, sim, token=False)
    try:
        added = proc.cli("clients", "add", "Иванов Иван", "8 916 123-45-67")
        assert added.returncode == 0, added.stderr
        sim.play(xsi_build.incoming_call(GROUP[:2], CALLER, T0))
        wait_for(lambda: telegram.posts and inbox.messages, timeout=30)
    finally:
        proc.stop()
    ((path, sent),) = telegram.posts
    assert path == f"/bot{TOKEN}/sendMessage"
    assert sent["chat_id"] == "-100500"
    assert sent["text"] == (
        "Пропущенный звонок: +7 916 123-45-67 — Иванов Иван\n"
        f"Время: {START:%d.%m.%Y} 11:00\n"
        "Линия: 9001112201, 9001112202"
    )
    ((recipients, raw),) = inbox.messages
    assert recipients == ["manager@avtoservis.example.ru"]
    subject, body = mail_text(raw)
    assert subject == "Пропущенный звонок"
    assert body.strip() == sent["text"]
    assert "notified about call 1" in proc.log()


def test_failing_channels_never_block_intake_and_keep_the_token_out_of_the_log(
    home: Path, sim: Simulator
) -> None:
    with FakeTelegram(status=500) as broken:
        # Telegram answers 500, and nothing listens on the SMTP port.
        write_config(home, config_text(broken.url, free_port()))
        proc = start_daemon(home, sim, token=False)
        try:
            sim.play(xsi_build.incoming_call(GROUP[:1], CALLER, T0))
            sim.play(xsi_build.incoming_call(GROUP[:1], "+79031112233", T0 + 60_000))
            wait_for(lambda: len(rows(home)) == 2, timeout=30)
            wait_for(lambda: "gave up notifying about call 1" in proc.log(), timeout=60)
        finally:
            proc.stop()
        attempts = [sent for _, sent in broken.posts if "+7 916 123-45-67" in sent["text"]]
        assert len(attempts) == 3
    log = proc.log()
    assert "notification by telegram failed: Telegram answered 500 Internal Server Error" in log
    assert "notification by e-mail failed: SMTP 127.0.0.1" in log
    assert "SECRET" not in log
    assert [r["status"] for r in rows(home)] == ["missed", "missed"]


def test_calls_found_by_reconciliation_are_notified_too(
    home: Path, sim: Simulator, telegram: FakeTelegram, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    write_config(home, config_text(telegram.url, port, "reconcile_interval = 1\n"))
    proc = start_daemon(home, sim, token=True)
    try:
        sim.play(xsi_build.incoming_call(GROUP[:1], CALLER, now_ms() - 60_000), deliver=False)
        wait_for(lambda: telegram.posts and inbox.messages, timeout=30)
    finally:
        proc.stop()
    ((_, sent),) = telegram.posts
    assert sent["text"].startswith("Пропущенный звонок: +7 916 123-45-67\n")
    assert sent["text"].endswith("Найден по статистике АТС")
    assert [r["source"] for r in rows(home)] == ["reconcile"]


def test_the_message_says_outside_hours_and_hidden_numbers() -> None:
    from zoneinfo import ZoneInfo

    row = call_row(phone=None, called_at="2026-11-27T19:30:00Z", outside_hours=True)
    assert notify.message(row, ZoneInfo("Europe/Moscow")) == (
        "Пропущенный звонок: номер скрыт\nВремя: 27.11.2026 22:30\nВне рабочего времени"
    )


def test_channels_come_from_the_settings(home: Path) -> None:
    from beeline_missed import config

    assert notify.senders(config.load()) == []
    write_config(home, 'telegram_token = "x"\nsmtp_host = "mail.example.ru"\n')
    assert notify.senders(config.load()) == []  # each needs its other half
    write_config(home, config_text("http://127.0.0.1:9", 2525))
    names = [s.name for s in notify.senders(config.load())]
    assert names == ["telegram", "e-mail"]
    shown = config.effective(config.load())
    assert shown["telegram_token"] == "********"
