"""Notifications: a fake Telegram Bot API and a real SMTP server (aiosmtpd) on loopback, the
daemon as a subprocess, the simulator posting the calls."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from email import message_from_bytes
from email.header import decode_header, make_header
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from beeline_missed import notify, xsi_build
from beeline_missed.simulator import Simulator
from tests.support import clock
from tests.support.daemon import free_port, wait_for
from tests.support.e2e import GROUP, now_ms, rows, start_daemon, write_config
from tests.support.factories import call_row

CALLER = "+79161234567"
# Call starts are judged against the daemon's clock, so the test calls happened yesterday.
START = clock.yesterday_at(11)
T0 = clock.ms(START)
TOKEN = "123456:SECRET-bot-token"


class FakeTelegram:
    """Answers sendMessage like the Bot API (or with `status`), and keeps what it was sent."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.posts: list[tuple[str, dict[str, Any]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.posts.append((self.path, json.loads(body)))
                answer = (
                    {"ok": True, "result": {"message_id": len(outer.posts)}}
                    if outer.status == 200
                    else {"ok": False, "description": "Internal Server Error"}
                )
                data = json.dumps(answer).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeTelegram:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class Inbox:
    """aiosmtpd handler keeping every message delivered."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def config_text(telegram_url: str, smtp_port: int, extra: str = "") -> str:
    return (
        f'telegram_token = "{TOKEN}"\n'
        'telegram_chat_id = "-100500"\n'
        f'telegram_api_url = "{telegram_url}"\n'
        'smtp_host = "127.0.0.1"\n'
        f"smtp_port = {smtp_port}\n"
        'mail_from = "missed@avtoservis.example.ru"\n'
        'mail_to = ["manager@avtoservis.example.ru"]\n'
        "notify_timeout = 5\n" + extra
    )


def mail_text(raw: bytes) -> tuple[str, str]:
    mail = message_from_bytes(raw)
    subject = str(make_header(decode_header(mail["Subject"])))
    payload = mail.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return subject, payload.decode(mail.get_content_charset() or "utf-8")


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
