"""For end-to-end tests of the daemon with the simulator: the register as stored (read by
`tests.support.peek`), the daemon subscribed to the whole simulated PBX, waiting until a call is
decided."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from beeline_missed import timefmt
from beeline_missed.simulator import xsi_build
from beeline_missed.simulator.pbx import Simulator
from tests.support.daemon import Daemon, wait_for
from tests.support.peek import rows, session_state

GROUP = ["9001112201@ip.beeline.ru", "9001112202@ip.beeline.ru", "9001112203@ip.beeline.ru"]
MARKER = "+70000000001"


now_ms = timefmt.now_ms


def write_config(home: Path, text: str) -> None:
    (home / "config.toml").write_text(text, encoding="utf-8")


def start_daemon(home: Path, sim: Simulator, *, token: bool = True) -> Daemon:
    """The real daemon subprocess, subscribed to every abonent of the simulator."""
    proc = Daemon(home, api_url=sim.base_url, token=sim.token if token else None)
    proc.start()
    sim.subscribe(None, 3600, "BASIC_CALL", proc.public_url)
    return proc


def settle_after(
    proc: Daemon, sim: Simulator, steps: list[xsi_build.Step], start_ms: int
) -> list[dict[str, Any]]:
    """Wait until the session of `steps` is decided AND its hooks (auto-closing) have run.

    A marker call played after the decision is decided in a later processor cycle, which
    starts only once the earlier cycle's hooks are done. Returns the register, marker left out.
    """
    session = steps[0].leg.ext_tracking_id
    wait_for(lambda: session_state(proc.home, session) not in (None, "pending"), timeout=30)
    sim.play(xsi_build.incoming_call(GROUP[:1], MARKER, start_ms))
    wait_for(lambda: any(r["phone"] == MARKER for r in rows(proc.home)), timeout=30)
    return [r for r in rows(proc.home) if r["phone"] != MARKER]
