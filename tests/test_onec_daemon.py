"""The daemon syncs the clients directory from 1C by itself (the real daemon on loopback, the
1C stand-in over real HTTP): on start, every onec_sync_interval, and a failing 1C is shown by
`status`, retried, and never stops the hook."""

from __future__ import annotations

import json
from pathlib import Path

from beeline_missed.simulator import xsi_build
from beeline_missed.simulator.onec import CLIENTS, OnecSimulator, make_client
from tests.support import clock
from tests.support.daemon import Daemon, wait_for
from tests.support.e2e import write_config
from tests.support.peek import client_names


def onec_daemon(home: Path, onec: OnecSimulator, password: str | None = None) -> Daemon:
    write_config(home, "onec_sync_interval = 10\n")
    return Daemon(
        home,
        extra_env={
            "BEELINE_MISSED_1C_URL": onec.base_url,
            "BEELINE_MISSED_1C_USER": onec.user,
            "BEELINE_MISSED_1C_PASSWORD": password or onec.password,
        },
    )


def status(proc: Daemon) -> dict:
    done = proc.cli("status", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["onec_sync"]


def test_daemon_syncs_on_start_and_every_interval(home: Path, onec: OnecSimulator) -> None:
    onec.add(CLIENTS, make_client("Иванов Иван", ["+7 916 123-45-67"], code="1"))
    proc = onec_daemon(home, onec).start()
    try:
        wait_for(lambda: client_names(home) == {"Иванов Иван"}, timeout=30)
        onec.add(CLIENTS, make_client("Петрова Мария", ["8 495 111-22-33"], code="2"))
        wait_for(lambda: client_names(home) == {"Иванов Иван", "Петрова Мария"}, timeout=40)
        wait_for(lambda: (status(proc) or {}).get("total") == 2, timeout=30)
        shown = status(proc)
        assert shown["added"] == 1 and "error" not in shown
        text = proc.cli("status").stdout
        assert "Last 1C sync:" in text and "2 clients (added 1" in text
    finally:
        assert proc.stop() == 0
    assert "1C sync: 2 clients (added 1" in proc.log()


def test_a_failing_1c_is_shown_retried_and_never_stops_the_hook(
    home: Path, onec: OnecSimulator
) -> None:
    onec.add(CLIENTS, make_client("Иванов Иван", ["+7 916 123-45-67"], code="1"))
    onec.fail("down", seconds=0)
    proc = onec_daemon(home, onec).start()
    try:
        failed = wait_for(lambda: (status(proc) or {}).get("error"), timeout=30)
        assert "Cannot reach 1C" in failed
        assert "No 1C sync has succeeded yet; the latest attempt" in proc.cli("status").stdout
        # The hook still takes events meanwhile.
        steps = xsi_build.incoming_call(["9001112201"], "+79035550000", clock.ms(clock.now()))
        answer = proc.post(xsi_build.event_document(steps[0], subscription_id="s"))
        assert answer.status_code == 200
        onec.recover()
        wait_for(lambda: client_names(home) == {"Иванов Иван"}, timeout=40)
        assert "error" not in status(proc)
    finally:
        assert proc.stop() == 0
    assert "1C sync failed (retry in 10 s): Cannot reach 1C" in proc.log()


def test_wrong_password_never_reaches_the_log(home: Path, onec: OnecSimulator) -> None:
    secret = "Very-Secret-1C-Password"
    proc = onec_daemon(home, onec, password=secret).start()
    try:
        wait_for(lambda: "1C sync failed" in proc.log(), timeout=30)
        shown = status(proc)
        assert "refused the user «odata»" in shown["error"]
        outputs = proc.cli("status").stdout + proc.cli("config", "show").stdout
    finally:
        assert proc.stop() == 0
    assert secret not in proc.log() + json.dumps(shown, ensure_ascii=False) + outputs
