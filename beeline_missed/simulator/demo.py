"""The demo: the whole product on one machine, with no account and no network.

In one process, on loopback: the PBX simulator, the daemon subscribed to it (through the real
PBX client and subscription code), a 1C:Альфа-Авто OData stand-in the clients directory is
synced from (and «Записаться» books in), and a traffic thread that plays a small car-repair
shop's calls: answered calls, missed calls, hunt groups where a colleague answered, repeat
callers, hidden numbers, a voice menu and a queue (callers who gave up there, and ones put
through), pickups, busy lines and a call forwarded to a mobile. Missed calls appear live in
the panel (or in the rich live view with `--no-tui`).

Everything is written inside the demo folder (default ./demo-home), which carries a marker
file so that the demo never clears a folder it did not make.
"""

from __future__ import annotations

import contextlib
import logging
import random
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from beeline_missed import config
from beeline_missed.config import Settings
from beeline_missed.errors import UserError
from beeline_missed.simulator import shop, xsi_build
from beeline_missed.timefmt import now_ms
from beeline_missed.vocabulary import CallStatus

if TYPE_CHECKING:
    from beeline_missed.store.rows import Subscription

MARKER = ".beeline-missed-demo"
DEFAULT_HOME = Path("demo-home")
REGISTER_FILES = ("register.sqlite", "register.sqlite-wal", "register.sqlite-shm")
HOOK_SECRET_BYTES = 16

# The shop's people (simulator/shop.py): reception, two masters, a manager.
RECEPTION, MASTER_1, MASTER_2, MANAGER = shop.RECEPTION, shop.MASTER_1, shop.MASTER_2, shop.MANAGER
HUNT_GROUP = [RECEPTION, MASTER_1, MASTER_2]

# Callers: numbers from the demo clients directory (demo_data/clients.csv) and strangers.
IVANOV = "+79161234567"
PETROVA = "+79035550011"
ROMASHKA = "+74957771234"
KUZNETSOV = "+79852203344"
SOKOLOVA = "+79162223344"
VOLKOV = "+79157008090"
MOROZOV = "+79031012030"
LEBEDEVA = "+79773456789"
STRANGER_1 = "+79267771122"
STRANGER_2 = "+79154443322"
STRANGER_3 = "+74996660099"
STRANGER_4 = "+79250001122"
OWNER_MOBILE = "+79037654321"


@dataclass(frozen=True)
class Call:
    """One scripted call: who rang whom, and who (if anyone) answered.

    `kind` is how the PBX handled it: 'plain' (the targets ring at once), 'voice_menu' (the
    menu answers, the caller gives up in it or is sent to the targets), 'queue' (the targets are
    agents rung in turn), 'pickup' (a colleague, `answered_by`, picks up the call ringing at the
    target), 'busy', 'forwarded' (to `forward_to`, outside the PBX), 'outgoing' (staff calling
    the client).
    """

    note: str
    caller: str | None  # None: a hidden number
    targets: tuple[str, ...]
    answered_by: str | None = None
    kind: str = "plain"
    forward_to: str | None = None

    def steps(self, start_ms: int) -> list[xsi_build.Step]:
        targets = list(self.targets)
        if self.kind == "outgoing":
            assert self.caller is not None
            return xsi_build.outgoing_call(targets[0], self.caller, start_ms, talk_ms=90_000)
        if self.kind == "voice_menu":
            return xsi_build.voice_menu_call(
                self.caller, start_ms, then=targets or None, answered_by=self.answered_by
            )
        if self.kind == "queue":
            return xsi_build.queue_call(
                targets, self.caller, start_ms, answered_by=self.answered_by
            )
        if self.kind == "pickup":
            assert self.caller is not None and self.answered_by is not None
            return xsi_build.pickup_call(targets[0], self.answered_by, self.caller, start_ms)
        if self.kind == "busy":
            return xsi_build.busy_call(targets, self.caller, start_ms)
        if self.kind == "forwarded":
            assert self.forward_to is not None
            return xsi_build.forwarded_call(targets[0], self.caller, self.forward_to, start_ms)
        return xsi_build.incoming_call(
            targets,
            self.caller,
            start_ms,
            answered_by=self.answered_by,
            ring_ms=20_000,
            talk_ms=120_000,
        )

    @property
    def outgoing(self) -> bool:
        return self.kind == "outgoing"

    @property
    def missed(self) -> bool:
        return not self.outgoing and self.answered_by is None


# The morning so far: delivered at once when the demo starts, dated minutes ago.
HISTORY: list[tuple[int, Call]] = [
    (95, Call("missed: a known client, reception", IVANOV, (RECEPTION,))),
    (80, Call("answered in the hunt group", PETROVA, tuple(HUNT_GROUP), answered_by=MASTER_1)),
    (62, Call("missed: hidden number, hunt group", None, tuple(HUNT_GROUP))),
    (40, Call("missed: unknown number, manager", STRANGER_1, (MANAGER,))),
    (
        33,
        Call(
            "not missed: the queue put them through",
            VOLKOV,
            (MASTER_1, MASTER_2),
            answered_by=MASTER_2,
            kind="queue",
        ),
    ),
    (25, Call("answered by reception", KUZNETSOV, (RECEPTION,), answered_by=RECEPTION)),
    (18, Call("missed: gave up in the voice menu", LEBEDEVA, (), kind="voice_menu")),
    (
        12,
        Call(
            "missed: the manager forwarded it to his mobile",
            STRANGER_4,
            (MANAGER,),
            kind="forwarded",
            forward_to=OWNER_MOBILE,
        ),
    ),
]

# Then, live, one call every few seconds (the script repeats, so callers call again).
LIVE: list[Call] = [
    Call("missed: a client rang the hunt group", SOKOLOVA, tuple(HUNT_GROUP)),
    Call("not missed: a colleague answered", VOLKOV, tuple(HUNT_GROUP), answered_by=MASTER_2),
    Call("missed: hidden number", None, (RECEPTION,)),
    Call("missed: repeat caller", IVANOV, (RECEPTION,)),
    Call("answered", LEBEDEVA, (RECEPTION,), answered_by=RECEPTION),
    Call("missed: unknown number, hunt group", STRANGER_2, tuple(HUNT_GROUP)),
    Call("staff call a client back", IVANOV, (RECEPTION,), kind="outgoing"),
    Call("missed: gave up waiting in the queue", KUZNETSOV, (MASTER_1, MASTER_2), kind="queue"),
    Call(
        "not missed: the queue put them through",
        PETROVA,
        (MASTER_1, MASTER_2),
        answered_by=MASTER_2,
        kind="queue",
    ),
    Call(
        "not missed: a colleague picked up",
        VOLKOV,
        (MANAGER,),
        answered_by=RECEPTION,
        kind="pickup",
    ),
    Call(
        "missed: the voice menu sent them on, nobody answered",
        SOKOLOVA,
        tuple(HUNT_GROUP),
        kind="voice_menu",
    ),
    Call("missed: everyone was busy", MOROZOV, (MASTER_1, MASTER_2), kind="busy"),
    Call("missed: a client rang the manager", MOROZOV, (MANAGER,)),
    Call("not missed: the manager answered", STRANGER_3, (RECEPTION, MANAGER), answered_by=MANAGER),
    Call("missed: a company rang the hunt group", ROMASHKA, tuple(HUNT_GROUP)),
]


class Traffic(threading.Thread):
    """Plays HISTORY at once, then LIVE calls with a pause between them, until stopped."""

    def __init__(
        self,
        sim: Any,
        *,
        gap: tuple[float, float] = (2.0, 5.0),
        pace: float = 0.3,
        seed: int | None = None,
        on_call: Callable[[Call], None] | None = None,
    ) -> None:
        super().__init__(name="demo-traffic", daemon=True)
        self.sim = sim
        self.gap = gap
        self.pace = pace
        self.random = random.Random(seed)
        self.on_call = on_call
        self.stop_event = threading.Event()
        self.played: list[Call] = []

    def play(self, call: Call, start_ms: int, pace: float) -> None:
        self.sim.play(call.steps(start_ms), pace=pace)
        self.played.append(call)
        if self.on_call is not None:
            self.on_call(call)

    def run(self) -> None:
        log = logging.getLogger("beeline_missed.demo")
        try:
            for minutes_ago, call in HISTORY:
                self.play(call, now_ms() - minutes_ago * 60_000, 0.0)
            index = 0
            while not self.stop_event.wait(self.random.uniform(*self.gap)):
                self.play(LIVE[index % len(LIVE)], now_ms(), self.pace)
                index += 1
        except Exception:  # the demo's traffic must never take the panel down
            log.exception("demo traffic stopped")

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=10)


def prepare_home(home: Path, fresh: bool = True) -> Path:
    """The demo folder, made or reused; with `fresh`, the previous demo's register is removed.

    Refuses a non-empty folder without the demo marker: it may be someone's real data.
    """
    home = home.expanduser().resolve()
    if home.exists():
        if not home.is_dir():
            raise UserError(f"{home} is not a folder; choose another demo folder with --home.")
        if not (home / MARKER).exists() and any(home.iterdir()):
            raise UserError(
                f"{home} is not empty and was not made by the demo; choose another folder "
                "with --home."
            )
    try:
        home.mkdir(parents=True, exist_ok=True)
        (home / MARKER).write_text(
            "Made by `beeline-missed demo`; the demo may clear its register here.\n",
            encoding="utf-8",
        )
        if fresh:
            for name in REGISTER_FILES:
                (home / name).unlink(missing_ok=True)
    except OSError as exc:
        raise UserError(f"Cannot use the demo folder {home}: {exc.strerror or exc}.") from None
    return home


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def demo_settings(home: Path, sim_url: str, token: str, port: int, settle: float) -> Settings:
    """Settings that point only at the demo folder and the simulator.

    The real environment and config are ignored on purpose: a real BEELINE_API_TOKEN or
    register must never be touched by the demo.
    """
    base = config.load({"home": str(home), "db": str(home / "register.sqlite")}, environ={})
    return replace(
        base,
        api_url=sim_url.rstrip("/"),
        api_token=token,
        public_url=f"http://127.0.0.1:{port}/beeline/hook/{secrets.token_hex(HOOK_SECRET_BYTES)}",
        listen=f"127.0.0.1:{port}",
        settle=settle,
        subscription_expires=600,
        check_interval=60.0,
        journal=None,
    )


def with_demo_staff(settings: Settings, user: str) -> Settings:
    """The person at the demo's panel is reception's Анна Смирнова (abonent 201): «Позвонить»
    in a card rings the simulator, whose call closes the case by itself."""
    member = config.StaffMember(user, shop.full_name(RECEPTION), RECEPTION.partition("@")[0])
    return replace(settings, staff={user: member})


def sync_clients(settings: Settings) -> dict[str, Any]:
    """The demo directory, synced from the 1C stand-in as `clients sync` does (the same
    clients as the 1C-style CSV, with cars and repair orders in 1C)."""
    from beeline_missed.onec import sync as onec_sync
    from beeline_missed.onec.client import OnecClient
    from beeline_missed.store import Register

    register = Register.open(settings.db)
    try:
        with OnecClient.from_settings(settings) as client:
            counts, _ = onec_sync.sync(register, client, settings)
        return counts
    finally:
        register.close()


def subscribe_all(settings: Settings) -> list[Subscription]:
    """One subscription for the whole (simulated) PBX, as `subscribe --enterprise` does: it sees
    the voice menu and the queue too."""
    from beeline_missed.pbx import subscriptions
    from beeline_missed.pbx.api import PbxClient
    from beeline_missed.store import Register

    register = Register.open(settings.db)
    try:
        with PbxClient.from_settings(settings) as pbx:
            return subscriptions.subscribe(
                register,
                pbx,
                [None],
                settings.subscription_expires,
                settings.subscription_type,
                settings.public_url,
            )
    finally:
        register.close()


_SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def _quiet_logging(log_file: Path) -> None:
    """Everything the servers log goes to the demo folder, never over the screen."""
    from beeline_missed.daemon.main import configure_logging

    configure_logging(log_file)
    for name in _SERVER_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True


@contextlib.contextmanager
def _logging_restored() -> Iterator[None]:
    """Put the process's logging back as it was (the demo may run inside a larger program)."""
    names = ("", *_SERVER_LOGGERS)
    saved = {
        name: (list(lg.handlers), lg.level, lg.propagate)
        for name in names
        for lg in [logging.getLogger(name)]
    }
    try:
        yield
    finally:
        for name, (handlers, level, propagate) in saved.items():
            logger = logging.getLogger(name)
            for handler in logger.handlers:
                if handler not in handlers:
                    handler.close()
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


@dataclass
class Demo:
    """The running pieces; `with running_demo(...) as demo:` starts and stops them in order."""

    home: Path
    settings: Settings
    sim: Any
    daemon: Any
    traffic: Traffic
    subscriptions: list[Subscription] = field(default_factory=list)
    clients: dict[str, int] = field(default_factory=dict)
    onec: Any = None  # the 1C stand-in (onec_sim.OnecSimulator)


@contextlib.contextmanager
def running_demo(
    home: Path,
    *,
    settle: float = 2.0,
    gap: tuple[float, float] = (2.0, 5.0),
    pace: float = 0.3,
    seed: int | None = None,
    fresh: bool = True,
) -> Iterator[Demo]:
    from beeline_missed.daemon.server import RunningDaemon
    from beeline_missed.simulator import onec as onec_sim
    from beeline_missed.simulator.onec import OnecSimulator
    from beeline_missed.simulator.pbx import DEFAULT_TOKEN, Simulator

    home = prepare_home(home, fresh=fresh)
    with _logging_restored(), contextlib.ExitStack() as running:
        _quiet_logging(home / "demo.log")
        sim = Simulator(token=DEFAULT_TOKEN)
        sim_url = sim.start()
        running.callback(sim.stop)  # callbacks run in reverse: traffic, daemon, simulator
        # uvicorn's default config gave the simulator's loggers their own stderr handlers.
        _quiet_logging(home / "demo.log")
        settings = demo_settings(home, sim_url, sim.token, free_port(), settle)
        # 1C:Альфа-Авто: the clients come from the stand-in, and «Записаться» books there.
        onec = OnecSimulator()
        onec_sim.demo_base(onec, onec_sim.demo_clients())
        settings = replace(
            settings,
            onec_url=onec.start(),
            onec_user=onec.user,
            onec_password=onec.password,
        )
        running.callback(onec.stop)
        _quiet_logging(home / "demo.log")
        clients_counts = sync_clients(settings)
        daemon = RunningDaemon(settings).start()
        running.callback(daemon.stop)
        subs = subscribe_all(settings)
        traffic = Traffic(sim, gap=gap, pace=pace, seed=seed)
        traffic.start()
        running.callback(traffic.stop)
        yield Demo(home, settings, sim, daemon, traffic, subs, clients_counts, onec)


def summary(settings: Settings) -> dict[str, int]:
    from beeline_missed.store import Register

    register = Register.open(settings.db)
    try:
        return {
            "calls": register.calls.count(),
            "missed": register.calls.count(CallStatus.MISSED),
            "clients": register.clients.count(),
        }
    finally:
        register.close()


def run(
    home: Path = DEFAULT_HOME,
    *,
    tui: bool = True,
    duration: float | None = None,
    settle: float = 2.0,
    seed: int | None = None,
    console: Any = None,
) -> dict[str, int]:
    """Run the demo until the panel is closed (or Ctrl-C, or `duration`); returns a summary."""
    from beeline_missed import timefmt

    with running_demo(home, settle=settle, seed=seed) as demo:
        user = _demo_user()
        settings = with_demo_staff(demo.settings, user)
        zone = timefmt.local_zone(settings.timezone)
        if tui:
            from beeline_missed.panel.app import PanelApp

            PanelApp(settings, zone=zone, user=user, duration=duration, note="демо").run()
        else:
            from beeline_missed.rules.deadlines import Deadlines
            from beeline_missed.views import watch

            intro = (
                f"Демо: симулятор АТС и демон на 127.0.0.1, папка {demo.home}. "
                "Пропущенные звонки появятся через несколько секунд. Ctrl-C — выход."
            )
            from beeline_missed.cases import calling_back

            def claimed(register: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
                return calling_back.with_claims(register, settings, rows, timefmt.now_utc())

            watch.run_live(
                settings.db,
                interval=0.5,
                duration=duration,
                zone=zone,
                console=console,
                intro=intro,
                decorate=claimed,
                deadlines=Deadlines.from_settings(settings),
            )
            if console is not None and not console.is_terminal:
                console.line()  # the last frame of a live view in a pipe ends mid-line
    return summary(demo.settings)


def _demo_user() -> str:
    from beeline_missed.rules import card

    try:
        return card.current_user(None, None)
    except UserError:
        return "Оператор"
