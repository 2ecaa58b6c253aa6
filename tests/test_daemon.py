"""End to end: the daemon as a real subprocess, the simulator posting XSI documents over HTTP,
and the register read back through the CLI."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from beeline_missed.simulator import xsi_build
from beeline_missed.simulator.pbx import Simulator
from tests.support import clock
from tests.support.daemon import SECRET_PATH, Daemon, wait_for

# Call starts are judged against the daemon's clock, so the test calls happened yesterday.
START = clock.yesterday_at(11)
T0 = clock.ms(START)
GROUP = ["9001112201@ip.beeline.ru", "9001112202@ip.beeline.ru", "9001112203@ip.beeline.ru"]
CALLER = "+79161234567"


@pytest.fixture
def daemon(home: Path, sim: Simulator) -> Iterator[Daemon]:
    proc = Daemon(home).start()
    sim.subscribe(None, 3600, "BASIC_CALL", proc.public_url)
    yield proc
    proc.stop()


def marker_call(sim: Simulator, start_ms: int) -> str:
    """A missed call played last: once it is registered, every earlier call was decided."""
    steps = xsi_build.incoming_call(GROUP[:1], "+70000000001", start_ms)
    sim.play(steps)
    return steps[0].leg.ext_tracking_id


def registered_after_marker(daemon: Daemon, sim: Simulator, start_ms: int) -> list[dict]:
    marker_call(sim, start_ms)
    calls = wait_for(
        lambda: [c for c in daemon.calls() if c["phone"] == "+70000000001"] and daemon.calls()
    )
    return [c for c in calls if c["phone"] != "+70000000001"]


def test_single_missed_call(daemon: Daemon, sim: Simulator) -> None:
    sim.play(xsi_build.incoming_call(GROUP[:1], CALLER, T0))
    (call,) = wait_for(daemon.calls)
    assert call["phone"] == CALLER
    assert call["status"] == "missed"
    assert call["status_label"] == "Пропущен"
    assert call["line"] == "9001112201"
    assert call["called_at"] == START.isoformat()


def test_answered_call_is_not_registered(daemon: Daemon, sim: Simulator) -> None:
    sim.play(xsi_build.incoming_call(GROUP[:1], CALLER, T0, answered_by=GROUP[0]))
    assert registered_after_marker(daemon, sim, T0 + 60_000) == []


def test_hunt_group_answered_by_one_with_releases_before_the_answer(
    daemon: Daemon, sim: Simulator
) -> None:
    steps = xsi_build.incoming_call(GROUP, CALLER, T0, answered_by=GROUP[2])
    received = [s for s in steps if s.event_type == "CallReceivedEvent"]
    others_released = [
        s for s in steps if s.event_type == "CallReleasedEvent" and s.leg.target_id != GROUP[2]
    ]
    rest = [s for s in steps if s not in received and s not in others_released]
    sim.play(received + others_released + rest)
    assert registered_after_marker(daemon, sim, T0 + 60_000) == []


def test_hunt_group_nobody_answered_is_one_row(daemon: Daemon, sim: Simulator) -> None:
    sim.play(xsi_build.incoming_call(GROUP, CALLER, T0))
    (call,) = registered_after_marker(daemon, sim, T0 + 60_000)
    assert call["line"] == "9001112201, 9001112202, 9001112203"


def test_duplicates_and_overlapping_subscriptions(daemon: Daemon, sim: Simulator) -> None:
    sim.subscribe(GROUP[0], 3600, "BASIC_CALL", daemon.public_url)  # overlaps the catch-all one
    steps = xsi_build.incoming_call(GROUP[:1], CALLER, T0)
    deliveries = sim.play(steps)
    assert len(deliveries) == 4 and all(d.status == 200 for d in deliveries)
    same = xsi_build.event_document(steps[0], subscription_id="x", event_id="fixed-id")
    assert daemon.post(same).status_code == 200
    assert daemon.post(same).status_code == 200
    assert len(registered_after_marker(daemon, sim, T0 + 60_000)) == 1


def test_reverse_order(daemon: Daemon, sim: Simulator) -> None:
    sim.play(list(reversed(xsi_build.incoming_call(GROUP[:2], CALLER, T0))))
    assert len(registered_after_marker(daemon, sim, T0 + 60_000)) == 1


def test_default_namespace_document(daemon: Daemon, sim: Simulator) -> None:
    sim.play(xsi_build.incoming_call(GROUP[:1], CALLER, T0), default_namespace=True)
    (call,) = wait_for(daemon.calls)
    assert call["phone"] == CALLER


def test_internal_and_outgoing_calls_are_not_registered(daemon: Daemon, sim: Simulator) -> None:
    sim.play(xsi_build.incoming_call(GROUP[:2], "+79001112203", T0, call_type="Group"))
    sim.play(xsi_build.outgoing_call(GROUP[0], CALLER, T0, answered=False))
    assert registered_after_marker(daemon, sim, T0 + 60_000) == []


def test_hidden_number(daemon: Daemon, sim: Simulator) -> None:
    sim.play(xsi_build.incoming_call(GROUP[:1], None, T0))
    (call,) = wait_for(daemon.calls)
    assert call["phone"] is None


# kill -9 mid-stream, then restart: see tests/test_faults.py
# (test_daemon_killed_9_in_the_middle_of_a_burst).


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><lolz>&lol3;</lolz>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>"""


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"<xsi:Event xmlns:xsi='http://schema.broadsoft.com/xsi'>", 400),
        (EXTERNAL_ENTITY, 400),
        (BILLION_LAUGHS, 400),
        (b"<Event xmlns='urn:not-xsi'/>", 422),
        (b'{"event": "CallReceivedEvent"}', 400),
        (b"", 400),
        (b"<a>" + b"x" * 300_000 + b"</a>", 413),
    ],
    ids=["malformed", "external-entity", "billion-laughs", "not-xsi", "json", "empty", "oversize"],
)
def test_bad_documents_are_rejected_kept_and_survived(
    daemon: Daemon, sim: Simulator, body: bytes, status: int
) -> None:
    response = daemon.post(body)
    assert response.status_code == status
    assert response.text  # says why
    rejected = daemon.cli("inbox", "--state", "rejected", "--json")
    assert '"state": "rejected"' in rejected.stdout
    sim.play(xsi_build.incoming_call(GROUP[:1], CALLER, T0))
    assert len(wait_for(daemon.calls)) == 1  # the daemon lives on


def test_wrong_path_and_method_answer_the_same_404(daemon: Daemon) -> None:
    body = (
        Path(__file__).parent / "data" / "beeline-samples" / "missed-1-received.xml"
    ).read_bytes()
    wrong_path = daemon.post(body, path="/beeline/hook/wrong-secret")
    wrong_method = httpx.get(daemon.base + SECRET_PATH)
    assert wrong_path.status_code == wrong_method.status_code == 404
    assert wrong_path.text == wrong_method.text
    assert daemon.cli("inbox", "--json").stdout.strip() == "[]"


def test_sigterm_exits_zero_and_keeps_acknowledged_events(home: Path) -> None:
    proc = Daemon(home).start()
    steps = xsi_build.incoming_call(GROUP[:1], CALLER, T0)
    for step in steps:
        assert proc.post(xsi_build.event_document(step, subscription_id="s")).status_code == 200
    assert proc.stop(signal.SIGTERM) == 0
    # The session waits for its settle period in the register, and the next start decides it.
    again = Daemon(home)
    again.start()
    try:
        (call,) = wait_for(again.calls)
        assert call["phone"] == CALLER
    finally:
        again.stop()


def test_secret_path_never_in_the_log(daemon: Daemon, sim: Simulator) -> None:
    sim.play(xsi_build.incoming_call(GROUP[:1], CALLER, T0))
    daemon.post(b"<broken")
    wait_for(daemon.calls)
    assert SECRET_PATH.rsplit("/", 1)[-1] not in daemon.log()


def test_replay_rebuilds_decisions_without_duplicates(daemon: Daemon, sim: Simulator) -> None:
    sim.play(xsi_build.incoming_call(GROUP, CALLER, T0))
    sim.play(xsi_build.incoming_call(GROUP, "+79031112233", T0 + 1000, answered_by=GROUP[0]))
    (before,) = wait_for(daemon.calls)
    result = daemon.cli("replay", "--json")
    assert result.returncode == 0, result.stderr
    assert '"added": 0' in result.stdout
    (after,) = daemon.calls()
    assert after["id"] == before["id"]


def test_three_missed_calls_from_one_number_are_one_line_with_3_attempts(
    daemon: Daemon, sim: Simulator
) -> None:
    for i in range(3):
        sim.play(xsi_build.incoming_call(GROUP[:1], CALLER, T0 + i * 60_000))
    wait_for(lambda: len(daemon.calls()) == 3)
    result = daemon.cli("list", "--json")
    assert result.returncode == 0, result.stderr
    (line,) = json.loads(result.stdout)
    assert line["attempts"] == 3
    assert len(line["call_ids"]) == 3
    assert line["called_at"] == (START + timedelta(minutes=2)).isoformat()  # the last attempt


def test_port_in_use_is_one_sentence(home: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = Daemon(home)
        result = subprocess.run(
            [sys.executable, "-m", "beeline_missed", "daemon", "--listen", f"127.0.0.1:{port}"],
            env=proc.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr == f"Error: Cannot listen on 127.0.0.1:{port}: Address already in use.\n"


def test_an_address_not_of_this_machine_is_one_sentence_and_makes_no_register(home: Path) -> None:
    """192.0.2.1 (TEST-NET) is no interface here: the daemon says the cause, not "is the port
    free?", and starts nothing (no register is made for a daemon that never ran)."""
    proc = Daemon(home)
    result = subprocess.run(
        [sys.executable, "-m", "beeline_missed", "daemon", "--listen", "192.0.2.1:8088"],
        env=proc.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert (
        result.stderr
        == "Error: Cannot listen on 192.0.2.1:8088: Cannot assign requested address.\n"
    )
    assert not (home / "register.sqlite").exists()


def test_a_second_daemon_on_the_same_sqlite_register_is_refused(home: Path) -> None:
    """Two daemons on one register file shared its hook spool (one deleting the file the
    other had just acknowledged an event into) and renewed and notified twice. The second is
    refused in one sentence naming the first; once the first is gone, even killed with -9,
    another starts."""
    first = Daemon(home).start()
    try:
        second = Daemon(home)
        refused = subprocess.run(
            second.command(log_file=False), env=second.env, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        assert refused.returncode == 1
        assert refused.stderr.splitlines()[-1] == (
            f"Error: Another process (pid {first.proc.pid}, listening on 127.0.0.1:{first.port})"
            f" already serves the register {home / 'register.sqlite'}; stop it first (one "
            "daemon per SQLite register, and migrate-register runs without one)."
        )
        assert first.healthy()  # the first serves on, untouched
        # `status` names it.
        shown = json.loads(first.cli("status", "--json").stdout)["daemon"]
        assert shown == {"pid": first.proc.pid, "doing": f"listening on 127.0.0.1:{first.port}"}
        assert f"Daemon: pid {first.proc.pid}, listening on" in first.cli("status").stdout
    finally:
        first.kill()
    stopped = first.cli("status")
    assert "No daemon serves this register now." in stopped.stdout
    assert json.loads(first.cli("status", "--json").stdout)["daemon"] is None
    again = Daemon(home).start()  # the kernel let go of the killed one's lock
    assert again.healthy()
    again.stop()
