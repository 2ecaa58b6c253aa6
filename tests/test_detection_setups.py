"""Detection in the PBX set-ups shops run: voice menus, queues, pickups, busy, forwarding.

Through the real processor and a real register file; the same cases end to end through the
daemon and the simulator are in test_daemon_setups.py.
"""

from __future__ import annotations

import random

import pytest

from beeline_missed.daemon.processing import Processor, replay
from beeline_missed.rules import detection
from beeline_missed.simulator import xsi_build
from beeline_missed.simulator.xsi_build import Step
from beeline_missed.store import Abonent, Register

T0 = 1795766400000
pytestmark = pytest.mark.both_engines

AGENTS = ["9001112201@ip.beeline.ru", "9001112202@ip.beeline.ru"]
GROUP = ["9001112202@ip.beeline.ru", "9001112203@ip.beeline.ru"]
CALLER = "+79161234567"
ABONENTS = [
    Abonent("9001112201@ip.beeline.ru", phone="9001112201", extension="201"),
    Abonent("9001112202@ip.beeline.ru", phone="9001112202", extension="202"),
    Abonent("9001112203@ip.beeline.ru", phone="9001112203", extension="203"),
]


def deliver(register: Register, steps: list[Step], at_ms: int = T0) -> None:
    for seq, step in enumerate(steps, 1):
        body = xsi_build.event_document(step, subscription_id="sub-1", sequence=seq)
        register.inbox.add(body, at_ms)


def known_people(abonents: list[Abonent]) -> detection.Targets:
    return detection.Targets.build(
        person_patterns=detection.DEFAULT_PERSON_PATTERNS, abonents=abonents
    )


def processor(register: Register, *, abonents: list[Abonent] | None = None, **kwargs) -> Processor:
    people = ABONENTS if abonents is None else abonents
    return Processor(register, settle=1.0, targets_from=lambda _: known_people(people), **kwargs)


def settle_all(register: Register, **kwargs) -> list[dict]:
    processor(register, **kwargs).run_once(at_ms=T0 + 10_000_000)
    return register.calls.rows(include_handled=True)


def test_caller_who_gave_up_in_the_voice_menu_is_missed_though_no_phone_rang(
    register: Register,
) -> None:
    deliver(register, xsi_build.voice_menu_call(CALLER, T0))
    (call,) = settle_all(register)
    assert call.phone == CALLER
    assert call.lost_at == detection.LOST_VOICE_MENU
    assert call.line == "0000100001_vxml"


def test_voice_menu_answer_alone_does_not_make_a_call_answered(register: Register) -> None:
    steps = xsi_build.voice_menu_call(CALLER, T0, then=GROUP)
    deliver(register, steps)
    (call,) = settle_all(register)
    # The menu answered, then the hunt group rang and nobody picked up.
    assert call.lost_at == detection.LOST_RINGING
    assert call.line == "9001112202, 9001112203"


def test_voice_menu_then_a_person_answers_is_not_missed(register: Register) -> None:
    deliver(register, xsi_build.voice_menu_call(CALLER, T0, then=GROUP, answered_by=GROUP[1]))
    assert settle_all(register) == []


def test_caller_who_gave_up_in_the_queue_is_missed_with_where(register: Register) -> None:
    deliver(register, xsi_build.queue_call(AGENTS, CALLER, T0))
    (call,) = settle_all(register)
    assert call.lost_at == detection.LOST_QUEUE
    assert call.line == "9001112201, 9001112202"


def test_queue_call_an_agent_answered_is_not_missed(register: Register) -> None:
    deliver(register, xsi_build.queue_call(AGENTS, CALLER, T0, answered_by=AGENTS[1]))
    assert settle_all(register) == []


def test_caller_waiting_in_the_queue_is_not_missed_however_long_the_silence(
    register: Register,
) -> None:
    steps = xsi_build.queue_call(AGENTS, CALLER, T0, gap_ms=600_000)
    waiting = steps[:-1]  # every agent rang and was released; the queue still holds the caller
    deliver(register, waiting, at_ms=0)
    proc = processor(register, stale_after=3600)
    assert proc.run_once(at_ms=1_200_000) == []  # 20 minutes of quiet, settle is 1 s
    deliver(register, steps[-1:], at_ms=1_300_000)
    (row,) = proc.run_once(at_ms=1_302_000)
    assert register.calls.get(row).lost_at == detection.LOST_QUEUE


def test_sequential_hunt_group_with_gaps_waits_for_its_pilot(register: Register) -> None:
    session = xsi_build.new_session()
    pilot = xsi_build.Leg(xsi_build.HUNT_GROUP_ID, session, T0, remote_address=f"tel:{CALLER}")
    first = xsi_build.Leg(GROUP[0], session, T0, remote_address=f"tel:{CALLER}")
    second = xsi_build.Leg(GROUP[1], session, T0 + 60_000, remote_address=f"tel:{CALLER}")
    deliver(
        register,
        [
            Step(xsi_build.RECEIVED, pilot),
            Step(xsi_build.RECEIVED, first),
            Step(xsi_build.RELEASED, first),
        ],
        at_ms=0,
    )
    proc = processor(register)
    assert proc.run_once(at_ms=50_000) == []  # a gap between members: the pilot is still up
    deliver(register, [Step(xsi_build.RECEIVED, second)], at_ms=60_000)
    answered = xsi_build.Step(xsi_build.ANSWERED, xsi_build.replace(second, answer_ms=T0 + 65_000))
    deliver(register, [answered, Step(xsi_build.RELEASED, pilot)], at_ms=65_000)
    assert proc.run_once(at_ms=200_000) == []
    assert register.calls.count() == 0


def test_pickup_by_a_colleague_is_answered_and_never_registered(register: Register) -> None:
    deliver(register, xsi_build.pickup_call(GROUP[0], GROUP[1], CALLER, T0))
    assert settle_all(register) == []


def test_pickup_heard_after_the_ringing_leg_is_still_answered(register: Register) -> None:
    steps = xsi_build.pickup_call(GROUP[0], GROUP[1], CALLER, T0)
    ringing = [s for s in steps if s.leg.target_id == GROUP[0]]
    deliver(register, ringing + [s for s in steps if s not in ringing])
    assert settle_all(register) == []


def test_a_colleagues_answered_call_long_after_is_not_a_pickup(register: Register) -> None:
    deliver(register, xsi_build.incoming_call(GROUP[:1], CALLER, T0))
    later = xsi_build.outgoing_call(GROUP[1], CALLER, T0 + 3_600_000)
    deliver(register, later)
    (call,) = settle_all(register)
    assert call.status == "missed"


def test_busy_is_missed_and_says_busy_without_received_events(register: Register) -> None:
    deliver(register, xsi_build.busy_call(GROUP, CALLER, T0))
    (call,) = settle_all(register)
    assert call.lost_at == detection.LOST_BUSY
    assert call.line == "9001112202, 9001112203"


def test_do_not_disturb_counts_as_busy(register: Register) -> None:
    deliver(register, xsi_build.busy_call(GROUP[:1], CALLER, T0, cause="Do Not Disturb"))
    (call,) = settle_all(register)
    assert call.lost_at == detection.LOST_BUSY


def test_one_busy_one_ringing_is_lost_ringing(register: Register) -> None:
    session_busy = xsi_build.busy_call(GROUP[:1], CALLER, T0)
    ringing = xsi_build.incoming_call(
        GROUP[1:], CALLER, T0, session=session_busy[0].leg.ext_tracking_id
    )
    deliver(register, session_busy + ringing)
    (call,) = settle_all(register)
    assert call.lost_at == detection.LOST_RINGING


def test_forwarded_to_an_outside_number_keeps_where(register: Register) -> None:
    deliver(register, xsi_build.forwarded_call(GROUP[0], CALLER, "+79031234567", T0))
    (call,) = settle_all(register)
    assert call.lost_at == detection.LOST_FORWARDED
    assert call.forwarded_to == "+79031234567"


def test_forwarded_to_a_colleagues_phone_is_not_forwarded_outside(register: Register) -> None:
    deliver(register, xsi_build.forwarded_call(GROUP[0], CALLER, "+79001112203", T0))
    (call,) = settle_all(register)
    assert call.lost_at == detection.LOST_RINGING
    assert call.forwarded_to is None


def test_answered_then_transferred_to_nobody_is_not_missed(register: Register) -> None:
    deliver(register, xsi_build.transferred_call(GROUP[0], GROUP[1], CALLER, T0))
    assert settle_all(register) == []


def test_sip_named_abonent_answering_makes_the_call_answered(register: Register) -> None:
    sip = "SIP00SLQU00A0J@mpbx.sip.beeline.ru"
    deliver(register, xsi_build.incoming_call([sip, GROUP[0]], CALLER, T0, answered_by=sip))
    assert settle_all(register) == []


def test_unknown_target_answering_counts_only_when_configured_as_a_person(
    register: Register, tmp_path
) -> None:
    stranger = "0000999999@ip.beeline.ru"
    steps = xsi_build.incoming_call([stranger], CALLER, T0, answered_by=stranger)
    deliver(register, steps)
    (call,) = settle_all(register)
    assert call.lost_at == detection.LOST_RINGING

    other = Register.open(tmp_path / "other.sqlite")
    try:
        deliver(other, steps)
        lenient = detection.Targets.build(abonents=ABONENTS, unknown_is_person=True)
        Processor(other, settle=1.0, targets_from=lambda _: lenient).run_once(at_ms=T0 + 10_000_000)
        assert other.calls.count() == 0
    finally:
        other.close()


def test_without_an_abonent_list_every_non_service_target_is_a_person(
    register: Register,
) -> None:
    stranger = "0000999999@ip.beeline.ru"
    deliver(register, xsi_build.incoming_call([stranger], CALLER, T0, answered_by=stranger))
    assert settle_all(register, abonents=[]) == []


def test_unknown_target_asks_for_the_abonent_list(register: Register) -> None:
    asked: list[str] = []
    deliver(register, xsi_build.incoming_call(["0000999999@ip.beeline.ru"], CALLER, T0))
    deliver(register, xsi_build.queue_call(AGENTS, CALLER, T0 + 100_000))
    processor(register, on_unknown_target=[asked.append]).run_once(at_ms=T0 + 10_000_000)
    assert set(asked) == {"0000999999@ip.beeline.ru"}  # a service (the queue) is not unknown


def test_queue_agent_leg_is_a_person_even_when_not_on_the_list(register: Register) -> None:
    agent = "0000777777@ip.beeline.ru"
    deliver(register, xsi_build.queue_call([agent], CALLER, T0, answered_by=agent))
    assert settle_all(register) == []


def test_hunt_group_member_reached_through_redirections_is_a_person(register: Register) -> None:
    member = "0000777777@ip.beeline.ru"
    steps = xsi_build.voice_menu_call(CALLER, T0, then=[member], answered_by=member)
    deliver(register, steps)
    assert settle_all(register) == []


def test_status_events_are_acknowledged_and_register_nothing(register: Register) -> None:
    for kind in ("CallSubscriptionEvent", "HookStatusEvent"):
        register.inbox.add(xsi_build.event_document(None, subscription_id="s", event_type=kind), T0)
    settle_all(register)
    assert register.calls.count() == 0
    assert register.inbox.counts() == {"ignored": 2}


SCENARIOS = {
    "voice menu, gave up": (lambda: xsi_build.voice_menu_call(CALLER, T0), "voice_menu"),
    "queue, gave up": (lambda: xsi_build.queue_call(AGENTS, CALLER, T0), "queue"),
    "queue, answered": (
        lambda: xsi_build.queue_call(AGENTS, CALLER, T0, answered_by=AGENTS[0]),
        None,
    ),
    "pickup": (lambda: xsi_build.pickup_call(GROUP[0], GROUP[1], CALLER, T0), None),
    "busy": (lambda: xsi_build.busy_call(GROUP, CALLER, T0), "busy"),
    "forwarded": (
        lambda: xsi_build.forwarded_call(GROUP[0], CALLER, "+79031234567", T0),
        "forwarded",
    ),
    "transferred": (lambda: xsi_build.transferred_call(GROUP[0], GROUP[1], CALLER, T0), None),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_any_order_and_duplicates_give_the_same_decision(
    register: Register, name: str, seed: int
) -> None:
    build, lost_at = SCENARIOS[name]
    steps = build()
    rng = random.Random(seed)
    shuffled = steps + rng.sample(steps, k=len(steps) // 2)
    rng.shuffle(shuffled)
    deliver(register, shuffled)
    calls = settle_all(register)
    assert [c.lost_at for c in calls] == ([lost_at] if lost_at else [])


def test_replay_rederives_under_the_new_rule_and_keeps_staffs_work(register: Register) -> None:
    menu = xsi_build.voice_menu_call(CALLER, T0)
    queue = xsi_build.queue_call(AGENTS, "+79031112233", T0 + 100_000)
    handled = xsi_build.incoming_call(GROUP[:1], "+79265554433", T0 + 200_000)
    for steps in (menu, queue, handled):
        deliver(register, steps)
    # The old rule: any answer, a voice menu's or a queue's too, made a call answered.
    old_rule = detection.Targets.build(service_patterns={})
    Processor(register, settle=1.0, targets_from=lambda _: old_rule).run_once(at_ms=T0 + 10_000_000)
    (before,) = register.calls.rows(include_handled=True)
    register.calls.save(
        int(before.id),
        int(before.version),
        status="called_back",
        result="Перезвонили",
        user="anna",
        handled_at="2026-11-27T09:00:00Z",
    )

    summary = replay(register, settle=1.0, targets_from=lambda _: known_people(ABONENTS))

    calls = {c.phone: c for c in register.calls.rows(include_handled=True)}
    assert summary["added"] == 2
    assert calls[CALLER].lost_at == "voice_menu"
    assert calls["+79031112233"].lost_at == "queue"
    kept = calls["+79265554433"]
    assert (kept.status, kept.result, kept.user) == ("called_back", "Перезвонили", "anna")
    assert kept.lost_at == "ringing"  # derived fields brought up to date


def test_replay_closes_an_untouched_row_that_turned_out_answered(register: Register) -> None:
    steps = xsi_build.pickup_call(GROUP[0], GROUP[1], CALLER, T0)
    deliver(register, steps)
    # An old rule that knew nothing of pickups had registered the ringing leg's session.
    with register.transaction():
        register.calls.insert(
            session_key=steps[0].leg.ext_tracking_id,
            phone=CALLER,
            phone_raw=f"tel:{CALLER}",
            called_at="2026-11-27T08:00:00Z",
            line="9001112202",
        )

    summary = replay(register, settle=1.0, targets_from=lambda _: known_people(ABONENTS))

    (call,) = register.calls.rows(include_handled=True)
    assert summary["closed"] == 1
    assert (call.status, call.closed_by) == ("called_back", "auto")
    assert call.result == "Звонок был принят (ответил 9001112203)"
