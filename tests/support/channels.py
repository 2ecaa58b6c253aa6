"""Notification channels a test can read: a fake Telegram Bot API (real HTTP on loopback) and
the handler of a real SMTP server (aiosmtpd); the fixtures `telegram` and `smtp` in conftest.py
start them. Telegram cannot be reached from here; SMTP is real.
"""

from __future__ import annotations

import json
import threading
from email import message_from_bytes
from email.header import decode_header, make_header
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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
