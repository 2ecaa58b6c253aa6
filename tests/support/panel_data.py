"""A small fixed register for the panel's tests and snapshots: known clients, fixed times."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from beeline_missed import config
from beeline_missed.config import Settings
from beeline_missed.panel.app import PanelApp
from beeline_missed.store import Register
from tests.support import factories

MOSCOW = ZoneInfo("Europe/Moscow")
# The panel's clock in tests: reports' «today» and subscriptions' «time left» hang on it.
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
USER = "Анна Смирнова"

CLIENTS = [
    (None, "Иванов Иван Петрович", [("+79161234567", "8 916 123-45-67")]),
    (None, "Петрова Мария Сергеевна", [("+79035550011", "8 903 555-00-11")]),
]
# (session, phone, called_at UTC, line); ids follow this order, the newest is last.
CALLS = [
    ("s-1", "+79161234567", "2026-11-27T06:05:00Z", "9001112201"),
    ("s-2", None, "2026-11-27T07:15:00Z", "9001112201, 9001112202"),
    ("s-3", "+79267771122", "2026-11-27T08:20:00Z", "9001112204"),
    ("s-4", "+79035550011", "2026-11-27T09:40:00Z", "9001112201"),
]


def add_call(
    reg: Register, key: str, phone: str | None, called_at: str, line: str = "9001112201"
) -> int:
    """The shared factory, with the panel data's usual line."""
    return factories.add_call(reg, key, phone, called_at, line)


def seed(db: Path) -> list[int]:
    reg = Register.open(db)
    try:
        reg.clients.upsert(CLIENTS)
        return [add_call(reg, *call) for call in CALLS]
    finally:
        reg.close()


def settings(**changes: object) -> Settings:
    """The settings the CLI would load (BEELINE_MISSED_HOME is the test's temp folder)."""
    return config.with_overrides(config.load({}), **changes)


def make_app(interval: float = 0.05, **changes: object) -> PanelApp:
    app = PanelApp(
        settings(**changes), zone=MOSCOW, user=USER, interval=interval, clock=lambda: NOW
    )
    # Toasts stay until the test reads them: on a loaded machine the default 5 s can pass
    # between the refresh that posted one and the assertion that looks for it.
    app.NOTIFICATION_TIMEOUT = 600
    return app
