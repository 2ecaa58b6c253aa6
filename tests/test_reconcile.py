"""Catch-up from the call statistics: the simulator's v2/statistics over real HTTP, a real
register file, the real processor; the daemon as a subprocess for down-and-restarted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from beeline_missed import config
from beeline_missed.cli import app
from beeline_missed.daemon.processing import Processor
from beeline_missed.errors import UserError
from beeline_missed.pbx.api import PbxClient
from beeline_missed.rules import reconcile
from beeline_missed.simulator import xsi_build
from beeline_missed.simulator.pbx import Simulator
from beeline_missed.store import Register
from tests.support.daemon import Daemon, wait_for
from tests.support.e2e import GROUP, now_ms, rows, start_daemon

T0 = 1795766400000  # 2026-11-27 08:00 UTC, 11:00 in Moscow
pytestmark = pytest.mark.both_engines

CALLER = "+79161234567"
OTHER = "+79031112233"
DAY_FROM = datetime(2026, 11, 27, tzinfo=UTC)
DAY_TO = datetime(2026, 11, 28, tzinfo=UTC)
runner = CliRunner()


def settings_for(sim: Simulator, **changes: Any) -> config.Settings:
    return config.with_overrides(
        config.load(), api_url=sim.base_url, api_token=sim.token, **changes
    )


def run(register: Register, sim: Simulator, **changes: Any) -> reconcile.Summary:
    settings = settings_for(sim, **changes)
    with PbxClient.from_settings(settings) as client:
        return reconcile.run(register, client, settings, DAY_FROM, DAY_TO)


def hear(register: Register, steps: list[xsi_build.Step]) -> None:
    """The hook heard these events: the real processor applies and decides them."""
    for seq, step in enumerate(steps, 1):
        body = xsi_build.event_document(step, subscription_id="sub-1", sequence=seq)
        register.inbox.add(body, step.leg.start_ms)
    Processor(register, settle=1.0).run_once(at_ms=T0 + 10_000_000)


def stat_record(start_ms: int, phone_from: str, status: str = "MISSED", **extra: Any) -> dict:
    return {
        "id": f"r{start_ms}",
        "startDate": start_ms,
        "abonent": {"userId": GROUP[1], "phone": "9001112202"},
        "direction": "INBOUND",
        "status": status,
        "phone_from": phone_from,
        "phone_to": "9001112202",
        **extra,
    }


def test_missed_inbound_calls_are_registered_once(register: Register, sim: Simulator) -> None:
    sim.play(xsi_build.incoming_call(GROUP[:1], CALLER, T0), deliver=False)
    # Answered (RECIEVED) and outgoing (PLACED) calls are not missed ones.
    sim.play(xsi_build.incoming_call(GROUP, OTHER, T0 + 1000, answered_by=GROUP[1]), deliver=False)
    sim.play(xsi_build.outgoing_call(GROUP[0], OTHER, T0 + 2000), deliver=False)

    first = run(register, sim)
    assert (first.records, first.missed, first.known, len(first.registered)) == (3, 1, 0, 1)
    (call,) = register.calls.rows(include_handled=True)
    assert call.id == first.registered[0]
    assert call.phone == CALLER
    assert call.source == "reconcile"
    assert call.called_at == "2026-11-27T08:00:00Z"
    assert call.line == "9001112201"
    assert call.session_key == f"stat:{CALLER}:{T0}"
    assert call.status == "missed"

    again = run(register, sim)
    assert (again.missed, again.known, again.registered) == (1, 1, [])
    assert register.calls.count() == 1
    last = reconcile.last_run(register)
    assert last is not None
    assert last["recovered"] == 0 and last["recovered_total"] == 1
    assert last["reconciled_to"] == "2026-11-28T00:00:00Z"


def test_calls_the_hook_heard_are_not_registered_again(register: Register, sim: Simulator) -> None:
    missed = xsi_build.incoming_call(GROUP[:1], CALLER, T0)
    answered = xsi_build.incoming_call(GROUP, OTHER, T0 + 60_000, answered_by=GROUP[2])
    hear(register, missed + answered)
    assert [c.phone for c in register.calls.rows()] == [CALLER]
    sim.play(missed, deliver=False)
    # Statistics that list a hunt-group member who did not pick up as MISSED, 30 s off our
    # clock: the hook knows the call was answered, so it is no missed call.
    sim.calls.append(stat_record(T0 + 90_000, "79031112233"))

    summary = run(register, sim)
    assert (summary.missed, summary.known, summary.registered) == (2, 2, [])
    assert register.calls.count() == 1


def test_a_record_outside_the_tolerance_is_another_call(register: Register, sim: Simulator) -> None:
    hear(register, xsi_build.incoming_call(GROUP[:1], CALLER, T0))
    sim.calls.append(stat_record(T0 + 121_000, "79161234567"))
    assert len(run(register, sim).registered) == 1
    sim.calls.append(stat_record(T0 + 600_000, "79161234567"))
    assert len(run(register, sim, reconcile_tolerance=700.0).registered) == 0
    assert register.calls.count() == 2


@pytest.mark.parametrize("first_answered", [True, False], ids=["answered", "missed"])
def test_a_second_call_whose_events_were_lost_is_recovered_next_to_a_heard_one(
    register: Register, sim: Simulator, first_answered: bool
) -> None:
    # The hook heard the client's call (answered, or missed and registered); a minute later
    # the client called again and every event of that call was lost. The statistics list
    # both: the heard call is the first record, so the second is a call of its own.
    answered_by = {"answered_by": GROUP[0]} if first_answered else {}
    first = xsi_build.incoming_call(GROUP[:1], CALLER, T0, **answered_by)
    second = xsi_build.incoming_call(GROUP[:1], CALLER, T0 + 60_000)
    hear(register, first)
    # Listed before them: an outgoing call to someone else.
    sim.play(xsi_build.outgoing_call(GROUP[0], OTHER, T0 - 30_000), deliver=False)
    sim.play(first + second, deliver=False)

    summary = run(register, sim)

    assert (summary.known, len(summary.registered)) == (0 if first_answered else 1, 1)
    recovered = register.calls.get(summary.registered[0])
    assert (recovered.called_at, recovered.source) == ("2026-11-27T08:01:00Z", "reconcile")
    assert register.calls.count() == (1 if first_answered else 2)


def test_a_heard_call_stands_for_its_nearest_record_whichever_page_holds_it(
    register: Register, sim: Simulator
) -> None:
    # Heard at T0 + 20 s; the statistics, 20 s off our clock, list it at T0 on one page and
    # another call at T0 + 50 s on the next (a page holds one record here). The heard call
    # is the nearer record, so the other one is recovered.
    hear(register, xsi_build.incoming_call(GROUP[:1], CALLER, T0 + 20_000))
    sim.calls.append(stat_record(T0, "79161234567"))
    sim.calls.append(stat_record(T0 + 50_000, "79161234567"))

    settings = settings_for(sim)
    with PbxClient.from_settings(settings) as client:
        client.iter_statistics = partial(client.iter_statistics, page_size=1)  # type: ignore[method-assign]
        summary = reconcile.run(register, client, settings, DAY_FROM, DAY_TO)

    assert (summary.records, summary.known) == (2, 1)
    (recovered,) = summary.registered
    assert register.calls.get(recovered).called_at == "2026-11-27T08:00:50Z"


@pytest.mark.parametrize(
    ("moment", "heard", "others", "expected"),
    [
        (100, [100], [160], True),  # the heard call's own record
        (160, [100], [100], False),  # a minute later: another call
        (100, [130], [160], False),  # as near as another record: kept, not dropped
        (100, [129], [160], True),
        (100, [], [], False),  # nothing heard
        (100, [40, 160], [40], True),  # of two heard calls, the second is this one
    ],
)
def test_heard_as(moment: int, heard: list[int], others: list[int], expected: bool) -> None:
    assert reconcile.heard_as(moment, heard, others) is expected


def test_events_arriving_after_reconciliation_join_its_row(
    register: Register, sim: Simulator
) -> None:
    steps = xsi_build.incoming_call(GROUP[:1], CALLER, T0)
    sim.play(steps, deliver=False)
    (row_id,) = run(register, sim).registered
    hear(register, steps)  # the PBX delivered the events late
    (call,) = register.calls.rows()
    assert call.id == row_id
    with register.transaction():
        session = register.sessions.get(steps[0].leg.ext_tracking_id)
    assert session is not None
    assert (session.state, session.call_row) == ("missed", row_id)


def test_a_second_call_a_minute_later_is_not_taken_for_the_reconciled_first(
    register: Register, sim: Simulator
) -> None:
    # The client calls, nobody answers, and calls again a minute later. Reconciliation
    # found the first call before its events were decided (the PBX lists a call once it
    # ends; the hook's decision waits for the settle time).
    first = xsi_build.incoming_call(GROUP[:1], CALLER, T0)
    second = xsi_build.incoming_call(GROUP[:2], CALLER, T0 + 60_000)
    sim.play(first, deliver=False)
    (reconciled,) = run(register, sim).registered

    hear(register, first + second)

    calls = sorted(register.calls.rows(include_handled=True), key=lambda call: call.called_at)
    assert [(c.id == reconciled, c.called_at) for c in calls] == [
        (True, "2026-11-27T08:00:00Z"),
        (False, "2026-11-27T08:01:00Z"),
    ]


def test_a_heard_call_joins_the_reconciled_row_nearest_it(
    register: Register, sim: Simulator
) -> None:
    # Two calls 100 s apart, both found by reconciliation; then their late events, the later
    # call's first. Both rows are within its tolerance; it joins its own, the nearer.
    first = xsi_build.incoming_call(GROUP[:1], CALLER, T0)
    second = xsi_build.incoming_call(GROUP[:1], CALLER, T0 + 100_000)
    sim.play(first + second, deliver=False)
    early, late = run(register, sim, reconcile_tolerance=60.0).registered

    hear(register, second)
    hear(register, first)

    assert register.calls.count() == 2
    with register.transaction():
        joined = [register.sessions.get(s[0].leg.ext_tracking_id) for s in (first, second)]
    assert [session.call_row for session in joined] == [early, late]


def test_a_reconciled_row_takes_what_the_heard_events_tell(
    register: Register, sim: Simulator
) -> None:
    """Found first by the catch-up, then decided from the late events: the row is the heard
    session's, and says which line rang and where the call was lost (here, busy); the card
    staff may have open keeps its version."""
    busy = xsi_build.busy_call(GROUP, CALLER, T0)
    sim.play(busy, deliver=False)
    (row_id,) = run(register, sim).registered
    found = register.calls.get(row_id)
    assert (found.lost_at, found.session_key.startswith("stat:")) == (None, True)

    hear(register, busy)

    (row,) = register.calls.rows(include_handled=True)
    assert row.id == row_id and row.source == "reconcile"
    assert row.session_key == busy[0].leg.ext_tracking_id
    assert row.lost_at == "busy"
    assert row.line == ", ".join(member.partition("@")[0] for member in GROUP)  # all rang
    assert (row.version, row.called_at) == (found.version, found.called_at)


def test_status_mapping_is_configurable_and_odd_records_are_survived(
    register: Register, sim: Simulator
) -> None:
    sim.calls.append(stat_record(T0, "79161234567", status="REDIRECTED"))  # forwarded away
    sim.calls.append(stat_record(T0 + 5000, "", status="missed"))  # hidden number, lower case
    sim.calls.append({**stat_record(T0 + 9500, "79031112233"), "direction": "OUTBOUND"})

    default = run(register, sim)
    assert (default.missed, default.unusable, len(default.registered)) == (1, 0, 1)
    (hidden,) = register.calls.rows()
    assert hidden.phone is None and hidden.phone_raw == "номер скрыт"

    mapped = run(register, sim, statistics_missed_statuses=("MISSED", "REDIRECTED"))
    assert len(mapped.registered) == 1
    assert register.calls.get(mapped.registered[0]).phone == CALLER
    assert register.calls.count() == 2

    odd = reconcile.Summary("", "")
    garbage = {**stat_record(T0 + 9000, "79031112233"), "startDate": "not a time"}
    reconcile.apply_records(register, [garbage], odd, statuses=("MISSED",), tolerance=120)
    assert (odd.missed, odd.unusable, odd.registered) == (1, 1, [])


def test_start_dates_in_other_shapes() -> None:
    assert reconcile.start_ms({"startDate": T0}) == T0
    assert reconcile.start_ms({"startDate": str(T0)}) == T0
    assert reconcile.start_ms({"startDate": T0 // 1000}) == T0
    assert reconcile.start_ms({"startDate": "2026-11-27T08:00:00Z"}) == T0
    assert reconcile.start_ms({"startDate": True}) is None
    assert reconcile.start_ms({}) is None


@pytest.fixture
def pbx_env(monkeypatch: pytest.MonkeyPatch, sim: Simulator) -> Simulator:
    monkeypatch.setenv("BEELINE_API_URL", sim.base_url)
    monkeypatch.setenv("BEELINE_API_TOKEN", sim.token)
    return sim


def test_cli_reconcile_prints_a_summary_and_status_shows_it(
    register: Register, pbx_env: Simulator
) -> None:
    pbx_env.play(xsi_build.incoming_call(GROUP[:1], CALLER, T0), deliver=False)
    pbx_env.play(xsi_build.incoming_call(GROUP[:1], OTHER, T0 + 60_000), deliver=False)
    result = runner.invoke(
        app, ["reconcile", "--from", "2026-11-27", "--to", "2026-11-27", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert len(data["registered"]) == 2
    assert data["recovered"] == 2 and data["known"] == 0
    assert data["date_from"] == "2026-11-27T00:00:00+03:00"
    assert data["date_to"] == "2026-11-28T00:00:00+03:00"

    human = runner.invoke(app, ["reconcile", "--from", "2026-11-27 10:00", "--to", "2026-11-28"])
    assert human.exit_code == 0, human.output
    assert "Nothing to recover" in human.output

    status = runner.invoke(app, ["status", "--json"])
    assert status.exit_code == 0, status.output
    shown = json.loads(status.output)["reconciliation"]
    assert shown["recovered"] == 0 and shown["recovered_total"] == 2
    assert shown["error"] is None
    status_text = runner.invoke(app, ["status"]).output
    assert "Last reconciliation:" in status_text and "2 in total" in status_text


def test_cli_reconcile_errors_are_one_sentence(register: Register, pbx_env: Simulator) -> None:
    bad = runner.invoke(app, ["reconcile", "--from", "yesterday"])
    assert bad.exit_code == 1
    assert "'yesterday' is not a date or time" in bad.output
    empty = runner.invoke(app, ["reconcile", "--from", "2026-11-28", "--to", "2026-11-27 12:00"])
    assert empty.exit_code == 1
    assert "--from must be before --to" in empty.output


@pytest.mark.e2e
def test_daemon_down_then_restarted_calls_appear_once(home: Path, sim: Simulator) -> None:
    first = start_daemon(home, sim)
    try:
        wait_for(lambda: json.loads(first.cli("status", "--json").stdout)["reconciliation"])
        base = now_ms() - 120_000
        heard = xsi_build.incoming_call(GROUP[:1], "+79160000001", base)
        sim.play(heard)
        wait_for(lambda: [r for r in rows(home) if r["phone"] == "+79160000001"])
    finally:
        first.stop()
    # Down: the PBX cannot deliver one call, and forwards another before it rings.
    lost = sim.play(xsi_build.incoming_call(GROUP[:2], "+79160000002", base + 10_000))
    assert lost and all(d.status is None for d in lost)
    sim.play(xsi_build.incoming_call(GROUP[:1], "+79160000003", base + 20_000), deliver=False)

    second = Daemon(home, api_url=sim.base_url, token=sim.token).start()
    try:
        found = wait_for(
            lambda: (
                {r["phone"]: r for r in rows(home) if r["source"] == "reconcile"}
                if len([r for r in rows(home) if r["source"] == "reconcile"]) >= 2
                else None
            ),
            timeout=30,
        )
        assert set(found) == {"+79160000002", "+79160000003"}
        assert found["+79160000002"]["line"] == "9001112201"
        since = datetime.fromtimestamp((base - 60_000) / 1000, UTC).isoformat()
        again = second.cli("reconcile", "--from", since, "--json")
        assert again.returncode == 0, again.stderr
        assert (json.loads(again.stdout)["recovered"], json.loads(again.stdout)["known"]) == (0, 3)
        status = json.loads(second.cli("status", "--json").stdout)["reconciliation"]
        assert status["recovered_total"] == 2
    finally:
        second.stop()
    phones = sorted(r["phone"] for r in rows(home))
    assert phones == ["+79160000001", "+79160000002", "+79160000003"]
    assert "reconciliation recovered 2 missed call(s)" in second.log()


def test_catch_up_follows_the_hooks_rules_for_menus_and_pickups(
    register: Register, sim: Simulator
) -> None:
    # Neither call reached the hook (the daemon was down): only the statistics know them.
    sim.play(xsi_build.voice_menu_call(CALLER, T0), deliver=False)
    sim.play(xsi_build.pickup_call(GROUP[0], GROUP[1], OTHER, T0 + 60_000), deliver=False)
    summary = run(register, sim)
    (call,) = register.calls.rows(include_handled=True)
    # The caller who gave up in the menu is missed (the menu's greeting is not an answer)...
    assert call.phone == CALLER
    assert call.source == "reconcile"
    # ...the picked-up call is not: a person took the number's call moments later.
    assert summary.registered == [call.id]


def test_a_caller_still_waiting_in_the_queue_is_not_recovered_before_hanging_up(
    register: Register, sim: Simulator
) -> None:
    # The statistics list a call once it has ended: a catch-up while the caller still hears
    # the queue's music finds nothing to recover (the CI flake of test_daemon_setups).
    steps = xsi_build.queue_call(GROUP, CALLER, T0)
    sim.play(steps[:-1], deliver=False)  # both agents rang and were released
    assert run(register, sim).registered == []
    sim.play(steps[-1:], deliver=False)  # the caller gives up
    (recovered,) = run(register, sim).registered
    assert register.calls.get(recovered).phone == CALLER


# -- the rules without the simulator ----------------------------------------------------------


class FakeStatistics:
    """A PBX client whose statistics are a list; it remembers the windows asked for."""

    def __init__(self, records: list[dict]) -> None:
        self.records = records
        self.asked: list[tuple[datetime, datetime]] = []

    def iter_statistics(self, start: datetime, end: datetime) -> Iterator[list[dict]]:
        self.asked.append((start, end))
        low, high = start.timestamp() * 1000, end.timestamp() * 1000
        yield [r for r in self.records if low <= r["startDate"] < high]


def rule_settings(**changes: Any) -> SimpleNamespace:
    values = {
        "statistics_missed_statuses": ("MISSED",),
        "reconcile_tolerance": 120.0,
        "reconcile_lookback": 3600.0,
        "reconcile_overlap": 300.0,
        "settle": 10.0,
    }
    return SimpleNamespace(**{**values, **changes})


NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


def test_a_missed_record_answered_within_the_tolerance_is_known(register: Register) -> None:
    tolerance = 120_000
    answered = {"status": "RECIEVED"}
    items = [
        # A hunt group: one member missed the call, another took it (the same start).
        stat_record(T0, "79161234567"),
        stat_record(T0, "79161234567", **answered),
        # Picked up by a colleague at the tolerance's very end.
        stat_record(T0 + 1000, "79031112233"),
        stat_record(T0 + 1000 + tolerance, "79031112233", **answered),
        # Called back by staff (outgoing, the client's number is `phone_to`).
        stat_record(T0 + 2000, "79035550001"),
        stat_record(
            T0 + 32_000,
            "9001112202",
            status="PLACED",
            direction="OUTBOUND",
            phone_to="79035550001",
        ),
        # An answered record without a start tells nothing; nor does one after the tolerance.
        stat_record(T0 + 3000, "79035550002"),
        {**stat_record(0, "79035550002", **answered), "startDate": None},
        stat_record(T0 + 4000, "79035550003"),
        stat_record(T0 + 4001 + tolerance, "79035550003", **answered),
    ]
    summary = reconcile.Summary("", "")

    reconcile.apply_records(
        register, items, summary, statuses=("MISSED",), tolerance=tolerance / 1000
    )

    assert (summary.records, summary.missed, summary.known) == (10, 5, 3)
    assert [register.calls.get(row).phone for row in summary.registered] == [
        "+79035550002",
        "+79035550003",
    ]


def test_a_hook_row_is_a_heard_call_even_without_its_legs(register: Register) -> None:
    # The hook's row of a call whose legs are gone (a register moved without them): the
    # statistics' record of it is known, the client's next call a minute later is not.
    with register.transaction():
        register.calls.insert(
            session_key="track-1",
            phone=CALLER,
            phone_raw=CALLER,
            called_at="2026-11-27T08:00:00Z",
            line="9001112201",
        )
    items = [stat_record(T0, "79161234567"), stat_record(T0 + 60_000, "79161234567")]
    summary = reconcile.Summary("", "")

    reconcile.apply_records(register, items, summary, statuses=("MISSED",), tolerance=120.0)

    assert summary.known == 1
    assert [register.calls.get(row).called_at for row in summary.registered] == [
        "2026-11-27T08:01:00Z"
    ]


def test_the_scheduled_window_without_and_with_a_last_run(register: Register) -> None:
    settings = rule_settings()
    # First run: the lookback and the overlap back from now, to now less settle + 1 s.
    assert reconcile.scheduled_window(register, settings, NOW) == (
        datetime(2026, 11, 27, 10, 55, tzinfo=UTC),
        datetime(2026, 11, 27, 11, 59, 49, tzinfo=UTC),
    )
    # A short settle still leaves the hook 2 s.
    assert reconcile.scheduled_window(register, rule_settings(settle=0.5), NOW)[1] == datetime(
        2026, 11, 27, 11, 59, 58, tzinfo=UTC
    )
    register.meta.set(reconcile.META_TO, "2026-11-27T11:30:00Z")
    assert reconcile.scheduled_window(register, settings, NOW) == (
        datetime(2026, 11, 27, 11, 25, tzinfo=UTC),
        datetime(2026, 11, 27, 11, 59, 49, tzinfo=UTC),
    )
    # Reconciled up to a moment ago: the window is one second, never empty or backwards.
    register.meta.set(reconcile.META_TO, "2026-11-27T11:59:59Z")
    assert reconcile.scheduled_window(register, rule_settings(reconcile_overlap=0.0), NOW) == (
        datetime(2026, 11, 27, 11, 59, 59, tzinfo=UTC),
        datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC),
    )


def test_a_scheduled_run_reads_its_window_and_records_it(register: Register) -> None:
    register.meta.set(reconcile.META_ERROR, "the PBX was down")
    start = int(datetime(2026, 11, 27, 11, 30, tzinfo=UTC).timestamp() * 1000)
    client = FakeStatistics([stat_record(start, "79161234567")])
    summary = reconcile.run_scheduled(
        register, client, rule_settings(), now=NOW, outside_hours=lambda ms: ms == start
    )
    assert client.asked == [
        (datetime(2026, 11, 27, 10, 55, tzinfo=UTC), datetime(2026, 11, 27, 11, 59, 49, tzinfo=UTC))
    ]
    assert (summary.date_from, summary.date_to, summary.at) == (
        "2026-11-27T10:55:00Z",
        "2026-11-27T11:59:49Z",
        "2026-11-27T12:00:00Z",
    )
    (row_id,) = summary.registered
    assert register.calls.get(row_id).outside_hours == 1
    assert register.meta.get(reconcile.META_ERROR) is None
    assert register.meta.get(reconcile.META_TO) == "2026-11-27T11:59:49Z"
    last = reconcile.last_run(register)
    assert last is not None
    assert (last["recovered"], last["recovered_total"], last["error"]) == (1, 1, None)
    register.meta.set(reconcile.META_ERROR, "timeout")
    assert reconcile.last_run(register)["error"] == "timeout"  # type: ignore[index]


def test_a_run_goes_day_by_day_and_refuses_an_empty_window(register: Register) -> None:
    client = FakeStatistics([stat_record(T0, "79161234567")])
    steps: list[tuple[int, int, int]] = []

    def progress(done: int, total: int, summary: reconcile.Summary) -> None:
        steps.append((done, total, summary.records))

    end = datetime(2026, 11, 29, tzinfo=UTC)
    reconcile.run(register, client, rule_settings(), DAY_FROM, end, progress=progress, now=NOW)
    assert steps == [(1, 2, 1), (2, 2, 1)]
    assert [c.outside_hours for c in register.calls.rows()] == [0]
    with pytest.raises(UserError) as caught:
        reconcile.run(register, client, rule_settings(), DAY_FROM, DAY_FROM)
    assert str(caught.value) == "The reconciliation window is empty: --from must be before --to."


@pytest.mark.parametrize(
    ("previous", "moves"),
    [
        (None, True),
        ("2026-11-27T00:00:00Z", True),  # the window starts where the last one ended
        ("2026-11-27T12:00:00Z", True),  # overlapping
        ("2026-11-28T00:00:00Z", False),  # already reconciled up to this window's end
        ("2026-11-26T00:00:00Z", False),  # a gap before the window: not joined
    ],
)
def test_the_reconciled_moment_moves_only_over_a_joined_window(
    register: Register, previous: str | None, moves: bool
) -> None:
    if previous:
        register.meta.set(reconcile.META_TO, previous)
    reconcile.run(register, FakeStatistics([]), rule_settings(), DAY_FROM, DAY_TO, now=NOW)
    expected = "2026-11-28T00:00:00Z" if moves else previous
    assert register.meta.get(reconcile.META_TO) == expected


@pytest.mark.parametrize(
    ("item", "line"),
    [
        ({"abonent": {"userId": "9001112202@ip.beeline.ru", "phone": "x"}}, "9001112202"),
        ({"abonent": {"phone": "9001112205", "extension": "205"}}, "9001112205"),
        ({"abonent": {"extension": "205"}}, "205"),
        ({"abonent": {}}, ""),
        ({"abonent": "?", "phone_to": "9001112207"}, "9001112207"),
        ({}, ""),
    ],
)
def test_the_line_of_a_record(item: dict, line: str) -> None:
    assert reconcile._line(item) == line


def test_more_start_date_shapes() -> None:
    assert reconcile.start_ms({"startDate": "-5"}) == -5000
    assert reconcile.start_ms({"startDate": "X5"}) is None
    assert reconcile.start_ms({"startDate": "2026-11-27T08:00:00"}) == T0  # naive: UTC
    assert reconcile.start_ms({"startDate": "2026-11-27T11:00:00+03:00"}) == T0
    assert reconcile.start_ms({"startDate": 99_999_999_999}) == 99_999_999_999_000  # seconds
    assert reconcile.start_ms({"startDate": 100_000_000_000}) == 100_000_000_000  # ms
    assert reconcile.start_ms({"startDate": 1.5e12}) == 1_500_000_000_000
    assert reconcile.start_ms({"startDate": [T0]}) is None


def test_moments_typed_by_hand() -> None:
    moscow = ZoneInfo("Europe/Moscow")
    for text, end_of_day, expected in [
        ("2026-11-27", False, datetime(2026, 11, 26, 21, tzinfo=UTC)),
        ("2026-11-27", True, datetime(2026, 11, 27, 21, tzinfo=UTC)),
        ("2026-11-27 14:05", True, datetime(2026, 11, 27, 11, 5, tzinfo=UTC)),
        ("2026-11-27T14:05+05:00", False, datetime(2026, 11, 27, 9, 5, tzinfo=UTC)),
        ("2026-11-27T09:05Z", False, datetime(2026, 11, 27, 9, 5, tzinfo=UTC)),
    ]:
        moment = reconcile.parse_moment(text, moscow, end_of_day=end_of_day)
        assert (moment, moment.utcoffset()) == (expected, timedelta(0)), text
    with pytest.raises(UserError) as caught:
        reconcile.parse_moment("27/11", moscow)
    assert str(caught.value) == (
        "'27/11' is not a date or time; use 2026-11-27 or '2026-11-27 14:05'."
    )
    with pytest.raises(UserError) as caught:
        reconcile.parse_moment("1900-01-01", moscow)
    assert str(caught.value) == "'1900-01-01' is out of range: give a date from 1970 to 9998."


def test_counts_tracking_ids_and_hidden_numbers(register: Register) -> None:
    with register.transaction():
        register.calls.insert(session_key="track-known", phone=OTHER, phone_raw=OTHER,
            called_at="2026-11-26T08:00:00Z", line="1",
        )  # fmt: skip
    items = [
        {**stat_record(T0, "79161234567"), "startDate": "soon"},
        {**stat_record(T0, "79161234567"), "startDate": None},
        {**stat_record(T0 + 10_000, "79031112233"), "extTrackingId": "track-known"},
        {**stat_record(T0 + 20_000, "79031112233"), "trackingId": "track-new"},
        stat_record(T0 + 30_000, ""),
    ]
    summary = reconcile.Summary("", "")
    reconcile.apply_records(
        register, items, summary, statuses=("MISSED",), tolerance=1, outside_hours=None
    )
    assert (summary.records, summary.missed, summary.unusable, summary.known) == (5, 5, 2, 1)
    assert len(summary.registered) == 2
    keys = {register.calls.get(i).session_key for i in summary.registered}
    assert keys == {f"stat:{OTHER}:{T0 + 20_000}", f"stat:hidden:{T0 + 30_000}"}


def test_last_run_is_none_before_any_run_and_shows_a_failure_alone(register: Register) -> None:
    assert reconcile.last_run(register) is None
    register.meta.set(reconcile.META_ERROR, "the PBX did not answer")
    assert reconcile.last_run(register) == {
        "recovered_total": 0,
        "reconciled_to": None,
        "error": "the PBX did not answer",
    }


def test_a_moment_without_an_offset_is_in_the_given_zone() -> None:
    vladivostok = ZoneInfo("Asia/Vladivostok")
    moment = reconcile.parse_moment("2026-11-27 14:05", vladivostok)
    assert moment == datetime(2026, 11, 27, 4, 5, tzinfo=UTC)
    assert reconcile.parse_moment("2026-11-27", vladivostok, end_of_day=True) == datetime(
        2026, 11, 27, 14, tzinfo=UTC
    )
