"""Shared fixtures: every test gets its own home folder and register; no real user's files."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from beeline_missed.simulator.onec import OnecSimulator
from beeline_missed.simulator.pbx import Simulator
from beeline_missed.store import Register
from beeline_missed.store.engine import PostgresURL
from tests.support import clock
from tests.support.channels import FakeTelegram, Inbox
from tests.support.daemon import Daemon, free_port
from tests.support.postgres import Cluster, ClusterError

if os.environ.get(clock.ENV):
    # Move the whole suite in time: this process now, every Python subprocess through
    # sitecustomize (tests/support/clock_shift).
    clock.start_travel()
    shift = str(Path(__file__).parent / "support" / "clock_shift")
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (shift, os.environ.get("PYTHONPATH")) if p
    )

PUBLIC_ENV = (
    "BEELINE_API_URL",
    "BEELINE_API_TOKEN",
    "BEELINE_MISSED_HOME",
    "BEELINE_MISSED_DB",
    "BEELINE_MISSED_PUBLIC_URL",
    "BEELINE_MISSED_1C_URL",
    "BEELINE_MISSED_1C_USER",
    "BEELINE_MISSED_1C_PASSWORD",
    "NO_COLOR",
)


LOG_LINES_SHOWN = 300


def pytest_runtest_setup(item: pytest.Item) -> None:
    # Daemons left from earlier tests that have exited are not this test's.
    Daemon.running[:] = [d for d in Daemon.running if d.proc and d.proc.poll() is None]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failing test's report shows what its daemons logged and which events the simulator
    could not deliver: both are gone with the test's temporary folder afterwards."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed or report.when == "teardown":
        return
    for daemon in Daemon.running:
        lines = daemon.log().splitlines()[-LOG_LINES_SHOWN:]
        report.sections.append((f"daemon log, last {len(lines)} lines", "\n".join(lines)))
    simulator = getattr(item, "funcargs", {}).get("sim")
    if isinstance(simulator, Simulator):
        failed = [d for d in simulator.deliveries if d.status != 200]
        shown = "\n".join(
            f"{d.at:.3f} {d.event_type} -> {d.status} ({d.subscription_id})" for d in failed
        )
        report.sections.append(
            (f"simulator: {len(failed)} of {len(simulator.deliveries)} deliveries failed", shown)
        )


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point BEELINE_MISSED_HOME at a temp folder, like llm's LLM_USER_PATH fixture."""
    for name in PUBLIC_ENV:
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("BEELINE_MISSED_HOME", str(folder))
    monkeypatch.setenv("TZ", "Europe/Moscow")
    return folder


@pytest.fixture
def sim() -> Iterator[Simulator]:
    """The project's PBX simulator on a free loopback port, always stopped; a test file that
    needs other grants or tokens defines its own."""
    with Simulator() as simulator:
        yield simulator


@pytest.fixture
def onec() -> Iterator[OnecSimulator]:
    """The 1C OData stand-in on a free loopback port (empty catalogs), always stopped."""
    with OnecSimulator() as stand_in:
        yield stand_in


@pytest.fixture
def onec_env(onec: OnecSimulator, monkeypatch: pytest.MonkeyPatch) -> OnecSimulator:
    """The stand-in, and the environment that points this process's commands at it."""
    monkeypatch.setenv("BEELINE_MISSED_1C_URL", onec.base_url)
    monkeypatch.setenv("BEELINE_MISSED_1C_USER", onec.user)
    monkeypatch.setenv("BEELINE_MISSED_1C_PASSWORD", onec.password)
    return onec


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked `both_engines` run once on SQLite and once on PostgreSQL: their `db_path`
    (and so `register`) is a file, then a fresh database of the test cluster."""
    definition = metafunc.definition
    if definition.get_closest_marker("both_engines") and "engine" in metafunc.fixturenames:
        # sqlite_only: a test of SQLite's own machinery (rowid slices, WAL) in such a file.
        sqlite_only = definition.get_closest_marker("sqlite_only")
        metafunc.parametrize("engine", ["sqlite"] if sqlite_only else ["sqlite", "postgresql"])


@pytest.fixture
def engine() -> str:
    return "sqlite"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """One throwaway PostgreSQL cluster for the whole run (tests/support/postgres.py)."""
    try:
        cluster = Cluster()
    except ClusterError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        cluster.prepare_template()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> PostgresURL:
    """A fresh PostgreSQL register (a copy of the migrated template) for this test."""
    return pg_cluster.fresh()


@pytest.fixture
def db_path(
    home: Path, engine: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Path:
    if engine == "postgresql":
        url = request.getfixturevalue("pg_url")
        # Commands the test runs (in-process or as subprocesses) use the same register.
        monkeypatch.setenv("BEELINE_MISSED_DB", url.url)
        return url
    return home / "register.sqlite"


@pytest.fixture
def register(db_path: Path) -> Iterator[Register]:
    reg = Register.open(db_path)
    yield reg
    reg.close()


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    """A fake Telegram Bot API on loopback that keeps what it was sent."""
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server (aiosmtpd) on loopback: its inbox and its port."""
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()
