"""Notifications for each new missed call: a Telegram bot message and/or an e-mail (SMTP).

Both are optional (configured in config.toml). They run off the processor thread — the daemon puts
new call ids on a queue and a worker thread sends — so a slow or failing channel never delays
intake; failures are logged (secrets scrubbed) and retried a few times, then dropped.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from beeline_missed import phones, timefmt
from beeline_missed.vocabulary import CallStatus, Source

if TYPE_CHECKING:
    from beeline_missed.config import Settings
    from beeline_missed.store import Register
    from beeline_missed.store.rows import Call

log = logging.getLogger("beeline_missed.notify")

SUBJECT = "Пропущенный звонок"


def message(row: Call, zone: tzinfo) -> str:
    """The text staff get: who called, when, on which line."""
    number = phones.display(row.phone)
    who = f"{number} — {row.client}" if row.client else number
    lines = [
        f"{SUBJECT}: {who}",
        f"Время: {timefmt.show_local(row.called_at, zone)}",
    ]
    if row.line:
        lines.append(f"Линия: {row.line}")
    if row.outside_hours:
        lines.append("Вне рабочего времени")
    if row.source == Source.RECONCILE:
        lines.append("Найден по статистике АТС")
    return "\n".join(lines)


class Sender(Protocol):
    name: str

    def send(self, subject: str, text: str) -> None: ...


class SendError(Exception):
    pass


@dataclass
class TelegramSender:
    token: str
    chat_id: str
    api_url: str = "https://api.telegram.org"
    timeout: float = 10.0
    name: str = "telegram"

    def send(self, subject: str, text: str) -> None:
        import httpx

        url = f"{self.api_url.rstrip('/')}/bot{self.token}/sendMessage"
        try:
            response = httpx.post(
                url, json={"chat_id": self.chat_id, "text": text}, timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            # The URL carries the bot token: never let it reach the log.
            raise SendError(self._scrub(f"Telegram unreachable: {exc}")) from None
        if response.status_code != 200:
            detail = ""
            with contextlib.suppress(ValueError, AttributeError):
                detail = str(response.json().get("description") or "")
            raise SendError(self._scrub(f"Telegram answered {response.status_code} {detail}"))

    def _scrub(self, text: str) -> str:
        return text.replace(self.token, "********")


@dataclass
class MailSender:
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    user: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout: float = 10.0
    name: str = "e-mail"

    def send(self, subject: str, text: str) -> None:
        import smtplib

        mail = EmailMessage()
        mail["Subject"] = subject
        mail["From"] = self.sender
        mail["To"] = ", ".join(self.recipients)
        mail.set_content(text)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.user:
                    smtp.login(self.user, self.password or "")
                smtp.send_message(mail)
        except (OSError, smtplib.SMTPException) as exc:
            text = f"SMTP {self.host}:{self.port} failed: {exc}"
            if self.password:
                text = text.replace(self.password, "********")
            raise SendError(text) from None


def senders(settings: Settings) -> list[Sender]:
    """The channels the settings configure (none: notifications are off)."""
    chosen: list[Sender] = []
    if settings.telegram_token and settings.telegram_chat_id:
        chosen.append(
            TelegramSender(
                settings.telegram_token,
                str(settings.telegram_chat_id),
                settings.telegram_api_url,
                settings.notify_timeout,
            )
        )
    elif settings.telegram_token or settings.telegram_chat_id:
        log.warning("Telegram needs both telegram_token and telegram_chat_id; not sending there")
    if settings.smtp_host and settings.mail_to:
        chosen.append(
            MailSender(
                settings.smtp_host,
                int(settings.smtp_port),
                settings.mail_from or "beeline-missed@localhost",
                tuple(settings.mail_to),
                settings.smtp_user,
                settings.smtp_password,
                bool(settings.smtp_starttls),
                settings.notify_timeout,
            )
        )
    elif settings.smtp_host or settings.mail_to:
        log.warning("e-mail needs both smtp_host and mail_to; not sending there")
    return chosen


def send_all(channels: list[Sender], text: str, subject: str = SUBJECT) -> list[str]:
    """Send to every channel; returns the names of those that failed (each failure logged)."""
    failed = []
    for channel in channels:
        try:
            channel.send(subject, text)
        except SendError as exc:
            log.error("notification by %s failed: %s", channel.name, exc)
            failed.append(channel.name)
        except Exception:  # a bug in one channel must not stop the others
            log.exception("notification by %s failed", channel.name)
            failed.append(channel.name)
    return failed


def send_with_retries(
    channels: list[Sender],
    text: str,
    subject: str,
    *,
    attempts: int,
    retry_delay: float,
    wait: Callable[[float], bool],
) -> list[Sender]:
    """Send to every channel, retrying the failed ones `attempts` times with a doubling delay;
    `wait(seconds)` returns True when the caller is stopping (then no more retries). Returns
    the channels that never took the message."""
    pending = list(channels)
    for attempt in range(attempts):
        pending = [c for c in pending if c.name in send_all([c], text, subject)]
        if not pending:
            break
        if attempt + 1 < attempts and wait(retry_delay * (2**attempt)):
            break  # stopping
    return pending


class Notifier:
    """A queue of new call ids and a worker thread that sends for each (if still missed)."""

    def __init__(
        self,
        db_path: Path,
        channels: list[Sender],
        zone: tzinfo,
        stop: threading.Event,
        *,
        attempts: int = 3,
        retry_delay: float = 2.0,
    ) -> None:
        self.db_path = db_path
        self.channels = channels
        self.zone = zone
        self.stop = stop
        self.attempts = attempts
        self.retry_delay = retry_delay
        self.queue: queue.Queue[int] = queue.Queue()
        self.thread: threading.Thread | None = None

    def submit(self, call_id: int) -> None:
        """Never blocks: the processor thread calls this."""
        self.queue.put(call_id)

    def start(self) -> threading.Thread:
        self.thread = threading.Thread(target=self._loop, name="notifier", daemon=True)
        self.thread.start()
        return self.thread

    def _loop(self) -> None:
        from beeline_missed.store import Register

        register = Register.open(self.db_path)
        try:
            while not self.stop.is_set():
                try:
                    call_id = self.queue.get(timeout=0.2)
                except queue.Empty:
                    continue
                self._notify(register, call_id)
        finally:
            register.close()

    def _notify(self, register: Register, call_id: int) -> None:
        wait: Callable[[float], bool] = self.stop.wait
        try:
            row = register.calls.get(call_id)
        except Exception:
            log.exception("cannot read call %s for its notification", call_id)
            return
        if row.status != CallStatus.MISSED:
            return  # closed already (auto-closed, or a colleague was quick)
        text = message(row, self.zone)
        pending = send_with_retries(
            self.channels,
            text,
            SUBJECT,
            attempts=self.attempts,
            retry_delay=self.retry_delay,
            wait=wait,
        )
        if not pending:
            log.info("notified about call %s", call_id)
            return
        log.error(
            "gave up notifying about call %s by %s", call_id, ", ".join(c.name for c in pending)
        )
