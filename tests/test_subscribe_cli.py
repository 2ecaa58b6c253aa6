"""subscribe / status / unsubscribe and the subscription lifecycle, over real HTTP to the
simulator on loopback, the register a real SQLite file."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from beeline_missed import timefmt
from beeline_missed.cli import app
from beeline_missed.config import load
from beeline_missed.pbx import subscriptions
from beeline_missed.pbx.api import PbxClient
from beeline_missed.simulator.pbx import Simulator
from beeline_missed.store import Register
from beeline_missed.store.rows import Subscription

runner = CliRunner()
TOKEN = "cli-test-token-0123456789"
HOOK = "http://127.0.0.1:9/beeline/hook/s3cret"
RECEPTION = "9001112201@ip.beeline.ru"


@pytest.fixture(autouse=True)
def local_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """conftest sets TZ; the process must re-read it for local times in-process."""
    yield time.tzset()
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[Simulator]:
    simulator = Simulator(token=TOKEN, max_expires=600)
    simulator.start()
    monkeypatch.setenv("BEELINE_API_URL", simulator.base_url)
    monkeypatch.setenv("BEELINE_API_TOKEN", TOKEN)
    monkeypatch.setenv("BEELINE_MISSED_PUBLIC_URL", HOOK)
    yield simulator
    simulator.stop()


@pytest.fixture
def client(sim: Simulator) -> Iterator[PbxClient]:
    with PbxClient(sim.base_url, TOKEN) as pbx:
        yield pbx


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def run_json(*args: str) -> object:
    # stdout only: a command that starts the register says so on stderr.
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def held(register: Register) -> list[Subscription]:
    return register.subscriptions.rows(("active",))


# -- subscribe ----------------------------------------------------------------------------


def test_subscribe_one_pattern_keeps_granted_expires(sim: Simulator, db_path: Path) -> None:
    (row,) = run_json("subscribe", "--pattern", "201", "--expires", "3600")
    assert row["pattern"] == "201" and row["expires"] == 600
    assert row["subscriptionType"] == "BASIC_CALL" and row["url"] == HOOK
    assert row["expires_at"].endswith("+03:00")  # ISO 8601 in local time (TZ=Europe/Moscow)
    (live,) = sim.live_subscriptions()
    assert live.id == row["subscriptionId"] and live.pattern == "201"
    register = Register.open(db_path)
    (stored,) = held(register)
    assert (stored.id, stored.expires, stored.requested) == (live.id, 600, 3600)
    lifetime = timefmt.parse_stored(stored.expires_at) - timefmt.parse_stored(stored.created_at)
    assert lifetime == timedelta(seconds=600)


def test_subscribe_several_patterns_human_table(sim: Simulator) -> None:
    code, output = run(
        "subscribe", "--pattern", "201", "--pattern", "202", "--type", "ADVANCED_CALL"
    )
    assert code == 0, output
    assert "201" in output and "202" in output
    assert "The PBX granted 600 s of the 3600 s asked" in output
    for live in sim.live_subscriptions():
        assert live.id in output  # whole, for `unsubscribe ID`
    assert sorted(s.pattern for s in sim.live_subscriptions()) == ["201", "202"]
    assert {s.subscription_type for s in sim.live_subscriptions()} == {"ADVANCED_CALL"}


def test_repeated_pattern_is_subscribed_once(sim: Simulator) -> None:
    rows = run_json("subscribe", "--pattern", "201", "--pattern", "202", "--pattern", "201")
    assert [row["pattern"] for row in rows] == ["201", "202"]
    assert sorted(s.pattern for s in sim.live_subscriptions()) == ["201", "202"]


def test_subscribe_all_abonents(sim: Simulator, db_path: Path) -> None:
    rows = run_json("subscribe", "--all-abonents", "--url", "https://shop.example/hook/x")
    patterns = [row["pattern"] for row in rows]
    assert patterns == [f"900111220{n}@ip.beeline.ru" for n in range(1, 6)]
    assert {s.url for s in sim.live_subscriptions()} == {"https://shop.example/hook/x"}
    assert len(held(Register.open(db_path))) == 5


def test_subscribing_a_held_pattern_again_renews_it(sim: Simulator, db_path: Path) -> None:
    (first,) = run_json("subscribe", "--pattern", "201")
    (second,) = run_json("subscribe", "--pattern", "201")
    assert first["subscriptionId"] != second["subscriptionId"]
    assert [s.id for s in sim.live_subscriptions()] == [second["subscriptionId"]]
    old = Register.open(db_path).subscriptions.get(first["subscriptionId"])
    assert old.state == "replaced" and old.replaced_by == second["subscriptionId"]


def test_subscribe_needs_a_url_a_token_and_a_pattern(sim: Simulator, monkeypatch) -> None:
    code, output = run("subscribe", "--pattern", "201")
    assert code == 0, output
    monkeypatch.delenv("BEELINE_MISSED_PUBLIC_URL")
    code, output = run("subscribe", "--pattern", "202")
    assert code == 1 and "BEELINE_MISSED_PUBLIC_URL" in output
    assert output.count("Error:") == 1
    monkeypatch.setenv("BEELINE_MISSED_PUBLIC_URL", HOOK)
    monkeypatch.delenv("BEELINE_API_TOKEN")
    code, output = run("subscribe", "--pattern", "202")
    assert code == 1 and "BEELINE_API_TOKEN" in output
    code, output = run("subscribe")
    assert code == 1 and "--all-abonents" in output
    code, output = run("subscribe", "--pattern", "202", "--type", "FANCY", "--url", HOOK)
    assert code == 1 and "BASIC_CALL" in output
    assert len(sim.live_subscriptions()) == 1


def test_unknown_pattern_is_the_pbx_error_in_one_sentence(sim: Simulator) -> None:
    code, output = run("subscribe", "--pattern", "201", "--pattern", "777")
    assert code == 1
    assert "BadRequest" in output and "777" in output
    assert "the 1 subscription(s) made before it are recorded." in output
    assert [s.pattern for s in sim.live_subscriptions()] == ["201"]


# -- failures reach the user as one sentence ----------------------------------------------


def test_bad_token(sim: Simulator, monkeypatch) -> None:
    monkeypatch.setenv("BEELINE_API_TOKEN", "wrong-token-value-xyz")
    code, output = run("subscribe", "--pattern", "201")
    assert code == 1
    assert "rejected the API token" in output and "wrong-token-value-xyz" not in output


def test_unreachable_host(sim: Simulator, monkeypatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("BEELINE_API_URL", f"http://127.0.0.1:{port}/apis/portal")
    code, output = run("subscribe", "--pattern", "201")
    assert code == 1 and f"Cannot reach the PBX at 127.0.0.1:{port}" in output
    assert TOKEN not in output


def test_server_error(sim: Simulator) -> None:
    sim.fail("5xx", status=503)
    code, output = run("subscribe", "--pattern", "201")
    assert code == 1 and "HTTP 503" in output


def test_timeout(sim: Simulator, home: Path) -> None:
    (home / "config.toml").write_text("api_timeout = 0.3\n")
    sim.fail("slow", seconds=1.5)
    code, output = run("subscribe", "--pattern", "201")
    assert code == 1 and "did not answer in time" in output


# -- status -------------------------------------------------------------------------------


def test_status_states_active_expired_gone(sim: Simulator, db_path: Path) -> None:
    rows = run_json("subscribe", "--pattern", "201", "--pattern", "202", "--pattern", "203")
    active, expired, gone = (row["subscriptionId"] for row in rows)
    register = Register.open(db_path)
    past = timefmt.to_stored(timefmt.now_utc() - timedelta(seconds=5))
    register.subscriptions.update(expired, expires_at=past)
    sim.terminate(expired, notify=False)
    sim.terminate(gone, notify=False)
    register.meta.set("last_event_at", "2026-11-27T11:05:00Z")
    register.meta.set("keeper_error", "Cannot reach the PBX at example: refused.")

    shown = run_json("status")
    states = {row["subscriptionId"]: row["state"] for row in shown["subscriptions"]}
    assert states == {active: "active", expired: "expired", gone: "gone"}
    by_id = {row["subscriptionId"]: row for row in shown["subscriptions"]}
    assert 590 <= by_id[active]["seconds_left"] <= 600
    assert by_id[expired]["seconds_left"] == 0
    assert shown["last_event_at"] == "2026-11-27T14:05:00+03:00"
    assert shown["upkeep_error"] == "Cannot reach the PBX at example: refused."
    # Looking does not retire anything: the daemon's check() re-subscribes the gone one.
    assert len(held(register)) == 3

    code, output = run("status")
    assert code == 0
    assert "expired" in output and "gone" in output and "active" in output
    assert all(sub_id in output for sub_id in (active, expired, gone))
    assert "Last event received: 27.11.2026 14:05." in output
    assert "could not keep the subscriptions alive: Cannot reach" in output


def test_status_without_subscriptions_needs_no_pbx(register: Register) -> None:
    code, output = run("status")
    assert code == 0
    assert "No subscriptions held" in output and "No event received yet." in output
    shown = run_json("status")
    assert shown["subscriptions"] == []
    assert shown["last_event_at"] is None and shown["upkeep_error"] is None


# -- unsubscribe --------------------------------------------------------------------------


def test_unsubscribe_ids_then_all(sim: Simulator, db_path: Path) -> None:
    rows = run_json("subscribe", "--pattern", "201", "--pattern", "202", "--pattern", "203")
    first, second, third = (row["subscriptionId"] for row in rows)
    (result,) = run_json("unsubscribe", first)
    assert result == {"subscriptionId": first, "pattern": "201", "result": "deleted"}
    assert {s.id for s in sim.live_subscriptions()} == {second, third}
    sim.terminate(third, notify=False)
    results = run_json("unsubscribe", "--all")
    assert {r["subscriptionId"]: r["result"] for r in results} == {
        second: "deleted",
        third: "already gone at the PBX",
    }
    assert sim.live_subscriptions() == []
    register = Register.open(db_path)
    assert {r.state for r in register.subscriptions.rows(None)} == {"deleted"}
    code, output = run("unsubscribe", "--all")
    assert code == 0 and "nothing to delete" in output
    code, output = run("unsubscribe")
    assert code == 1 and "--all" in output


def test_unsubscribe_failure_keeps_it_held(sim: Simulator, db_path: Path) -> None:
    (row,) = run_json("subscribe", "--pattern", "201")
    sim.fail("5xx", count=1)
    code, output = run("unsubscribe", row["subscriptionId"])
    assert code == 1 and "HTTP 503" in output
    (stored,) = held(Register.open(db_path))
    assert "HTTP 503" in stored.last_error


# -- the daemon's side: keep_alive, check, on_terminated ----------------------------------


def test_keep_alive_renews_new_before_old_deleted(
    sim: Simulator, client: PbxClient, register: Register
) -> None:
    settings = load()
    (row,) = subscriptions.subscribe(register, client, ["201"], 3600, "BASIC_CALL", HOOK)
    created = timefmt.parse_stored(row.created_at)
    # 600 s granted, renew_fraction 0.25: not yet with 500 s left, due with 140 s left.
    early, due = created + timedelta(seconds=100), created + timedelta(seconds=460)
    assert subscriptions.keep_alive(register, client, settings, early) == []
    sim.requests.clear()
    actions = subscriptions.keep_alive(register, client, settings, due)
    assert len(actions) == 1 and actions[0].startswith("renewed 201:")
    assert [method for method, _ in sim.requests] == ["PUT", "DELETE"]
    (new,) = held(register)
    old = register.subscriptions.get(row.id)
    assert (old.state, old.replaced_by) == ("replaced", new.id)
    assert (new.pattern, new.expires, new.requested) == ("201", 600, 3600)
    assert [s.id for s in sim.live_subscriptions()] == [new.id]


def test_keep_alive_records_errors_and_keeps_the_row(
    sim: Simulator, client: PbxClient, register: Register
) -> None:
    settings = load()
    (row,) = subscriptions.subscribe(register, client, ["201"], 60, "BASIC_CALL", HOOK)
    late = timefmt.parse_stored(row.expires_at) - timedelta(seconds=5)
    sim.fail("5xx", status=502)
    with pytest.raises(subscriptions.KeepAliveError) as caught:
        subscriptions.keep_alive(register, client, settings, late)
    assert caught.value.retryable and "HTTP 502" in str(caught.value)
    (still,) = held(register)
    assert still.id == row.id and "HTTP 502" in still.last_error
    sim.recover()
    (action,) = subscriptions.keep_alive(register, client, settings, late)
    (new,) = held(register)
    assert new.id != row.id and new.last_error is None
    assert action.startswith("renewed 201:")


def test_failed_delete_of_replaced_one_is_retried(
    sim: Simulator, client: PbxClient, register: Register
) -> None:
    settings = load()
    (row,) = subscriptions.subscribe(register, client, ["202"], 600, "BASIC_CALL", HOOK)
    late = timefmt.parse_stored(row.expires_at) - timedelta(seconds=60)
    sim.fail("5xx", methods=["DELETE"])
    # The successor is live, so a failed DELETE is not an error to back off on.
    (action,) = subscriptions.keep_alive(register, client, settings, late)
    assert action.startswith("renewed 202:")
    (new,) = held(register)
    old = register.subscriptions.get(row.id)
    assert old.state == "replaced" and "HTTP 503" in old.last_error
    assert {s.id for s in sim.live_subscriptions()} == {row.id, new.id}
    assert subscriptions.keep_alive(register, client, settings, late) == []  # still failing
    sim.recover()
    (action,) = subscriptions.keep_alive(register, client, settings, late)
    assert action == f"deleted replaced subscription {row.id}"
    assert [s.id for s in sim.live_subscriptions()] == [new.id]
    assert register.subscriptions.get(row.id).last_error is None


def test_check_resubscribes_one_the_pbx_forgot(
    sim: Simulator, client: PbxClient, register: Register
) -> None:
    rows = subscriptions.subscribe(register, client, ["201", "202"], 600, "BASIC_CALL", HOOK)
    kept, lost = rows
    sim.terminate(lost.id, notify=False)
    (action,) = subscriptions.check(register, client)
    assert action.startswith("re-subscribed gone 202:")
    old = register.subscriptions.get(lost.id)
    assert old.state == "gone"
    successor = register.subscriptions.get(old.replaced_by)
    assert (successor.state, successor.pattern) == ("active", "202")
    assert {s.id for s in sim.live_subscriptions()} == {kept.id, successor.id}
    assert subscriptions.check(register, client) == []


def test_check_failure_is_recorded(sim: Simulator, client: PbxClient, register: Register) -> None:
    (row,) = subscriptions.subscribe(register, client, ["201"], 600, "BASIC_CALL", HOOK)
    sim.fail("down", seconds=0)
    with pytest.raises(subscriptions.KeepAliveError) as caught:
        subscriptions.check(register, client)
    assert caught.value.retryable and "Cannot reach the PBX" in str(caught.value)
    assert "Cannot reach the PBX" in register.subscriptions.get(row.id).last_error


def test_on_terminated_resubscribes_only_what_we_hold(
    sim: Simulator, client: PbxClient, register: Register
) -> None:
    (row,) = subscriptions.subscribe(register, client, ["203"], 600, "BASIC_CALL", HOOK)
    sim.terminate(row.id, notify=False)
    action = subscriptions.on_terminated(register, client, row.id)
    assert action is not None and action.startswith("re-subscribed terminated 203:")
    old = register.subscriptions.get(row.id)
    assert old.state == "terminated"
    (new,) = held(register)
    assert new.id == old.replaced_by and new.pattern == "203"
    # Not ours any more, or never ours: nothing to do.
    assert subscriptions.on_terminated(register, client, row.id) is None
    assert subscriptions.on_terminated(register, client, "someone-elses") is None
    assert [s.id for s in sim.live_subscriptions()] == [new.id]


def test_on_terminated_failure_keeps_it_active(
    sim: Simulator, client: PbxClient, register: Register
) -> None:
    (row,) = subscriptions.subscribe(register, client, ["204"], 600, "BASIC_CALL", HOOK)
    sim.fail("5xx")
    with pytest.raises(subscriptions.KeepAliveError):
        subscriptions.on_terminated(register, client, row.id)
    (still,) = held(register)
    assert still.id == row.id and "HTTP 503" in still.last_error


def test_lifecycle_accepts_epoch_seconds_as_now(
    sim: Simulator, client: PbxClient, register: Register
) -> None:
    (row,) = subscriptions.subscribe(register, client, ["205"], 600, "BASIC_CALL", HOOK)
    due = timefmt.parse_stored(row.expires_at).timestamp() - 30  # the daemon's time.time()
    (action,) = subscriptions.keep_alive(register, client, load(), due)
    assert action.startswith("renewed 205:")
    assert subscriptions.check(register, client, due) == []
