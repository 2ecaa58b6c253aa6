"""Detection through the real processor and a real register file, without a server."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beeline_missed.daemon.processing import Processor
from beeline_missed.simulator import xsi_build
from beeline_missed.store import Register

T0 = 1795766400000
pytestmark = pytest.mark.both_engines

GROUP = ["201@ip.beeline.ru", "202@ip.beeline.ru", "203@ip.beeline.ru"]


def deliver(register: Register, steps: list[xsi_build.Step], at_ms: int = T0, **kwargs) -> None:
    for seq, step in enumerate(steps, 1):
        body = xsi_build.event_document(step, subscription_id="sub-1", sequence=seq, **kwargs)
        register.inbox.add(body, at_ms)


def settle_all(register: Register, settle: float = 1.0) -> Processor:
    processor = Processor(register, settle=settle)
    processor.run_once(at_ms=T0 + 10_000_000)
    return processor


def test_single_missed_call_is_one_row(register: Register) -> None:
    deliver(register, xsi_build.incoming_call(GROUP[:1], "+79161234567", T0))
    settle_all(register)
    (call,) = register.calls.rows()
    assert call.phone == "+79161234567"
    assert call.phone_raw == "tel:+79161234567"
    assert call.called_at == "2026-11-27T08:00:00Z"
    assert call.line == "201"
    assert call.status == "missed"


def test_answered_call_is_not_missed(register: Register) -> None:
    deliver(register, xsi_build.incoming_call(GROUP[:1], "+79161234567", T0, answered_by=GROUP[0]))
    settle_all(register)
    assert register.calls.count() == 0


def test_hunt_group_answered_with_releases_before_the_answer(register: Register) -> None:
    steps = xsi_build.incoming_call(GROUP, "+79161234567", T0, answered_by=GROUP[1])
    releases_first = sorted(steps, key=lambda s: s.event_type != "CallReleasedEvent")
    deliver(register, releases_first)
    settle_all(register)
    assert register.calls.count() == 0


def test_hunt_group_nobody_answered_is_one_row(register: Register) -> None:
    deliver(register, xsi_build.incoming_call(GROUP, "+79161234567", T0))
    settle_all(register)
    (call,) = register.calls.rows()
    assert call.line == "201, 202, 203"


def test_nothing_is_decided_before_the_settle_period(register: Register) -> None:
    deliver(register, xsi_build.incoming_call(GROUP, "+79161234567", T0), at_ms=5_000)
    processor = Processor(register, settle=10.0)
    assert processor.run_once(at_ms=14_000) == []
    assert len(processor.run_once(at_ms=15_001)) == 1


def test_ringing_call_waits_for_its_release(register: Register) -> None:
    steps = xsi_build.incoming_call(GROUP[:2], "+79161234567", T0)
    deliver(register, steps[:-1], at_ms=0)  # one leg's release not heard yet
    processor = Processor(register, settle=1.0, stale_after=3600)
    assert processor.run_once(at_ms=60_000) == []
    deliver(register, steps[-1:], at_ms=61_000)
    assert len(processor.run_once(at_ms=62_500)) == 1


def test_lost_release_still_registers_after_stale_period(register: Register) -> None:
    steps = xsi_build.incoming_call(GROUP[:1], "+79161234567", T0)
    deliver(register, steps[:1], at_ms=0)
    processor = Processor(register, settle=1.0, stale_after=600)
    assert processor.run_once(at_ms=599_000) == []
    assert len(processor.run_once(at_ms=600_000)) == 1


def test_duplicates_by_event_id_and_by_leg_key(register: Register) -> None:
    steps = xsi_build.incoming_call(GROUP[:1], "+79161234567", T0)
    for step in steps:
        same = xsi_build.event_document(
            step, subscription_id="a", event_id="fixed-" + step.event_type
        )
        register.inbox.add(same, T0)
        register.inbox.add(same, T0)
        # An overlapping subscription: same leg and type, another eventID.
        register.inbox.add(xsi_build.event_document(step, subscription_id="b"), T0)
    settle_all(register)
    assert register.calls.count() == 1
    assert register.inbox.counts() == {"processed": 2, "duplicate": 4}


def test_internal_and_outgoing_calls_are_not_missed(register: Register) -> None:
    deliver(register, xsi_build.incoming_call(GROUP[:1], "+79161234567", T0, call_type="Group"))
    deliver(register, xsi_build.outgoing_call(GROUP[0], "+79161234567", T0, answered=False))
    settle_all(register)
    assert register.calls.count() == 0


def test_hidden_number_is_registered_as_hidden(register: Register) -> None:
    deliver(register, xsi_build.incoming_call(GROUP[:1], None, T0))
    settle_all(register)
    (call,) = register.calls.rows()
    assert call.phone is None
    assert call.phone_raw == "номер скрыт"


def test_late_answer_closes_the_registered_call(register: Register) -> None:
    steps = xsi_build.incoming_call(GROUP[:2], "+79161234567", T0, answered_by=GROUP[0])
    # The winner's answer and release are delayed past the stale period.
    late = [s for s in steps if s.leg.target_id == GROUP[0] and s.event_type != "CallReceivedEvent"]
    early = [s for s in steps if s not in late]
    deliver(register, early)
    processor = Processor(register, settle=1.0, stale_after=5)
    processor.run_once(at_ms=T0 + 10_000_000)
    assert register.calls.count("missed") == 1
    deliver(register, late)
    processor.run_once(at_ms=T0 + 10_000_000)
    assert register.calls.count("missed") == 0
    (call,) = register.calls.rows(include_handled=True)
    assert call.closed_by == "auto"


def test_absurd_pbx_clock_gives_a_sane_called_at(register: Register) -> None:
    deliver(register, xsi_build.incoming_call(GROUP[:1], "+79161234567", 1000), at_ms=T0)
    deliver(register, xsi_build.incoming_call(GROUP[:1], "+79031112233", 2**61), at_ms=T0)
    Processor(register, settle=1.0).run_once(at_ms=T0 + 5_000)
    assert [c.called_at for c in register.calls.rows()] == ["2026-11-27T08:00:00Z"] * 2


CALLS = st.lists(
    st.tuples(
        st.sampled_from([None, "+79161234567", "+79031112233", "+74951234567"]),
        st.integers(min_value=1, max_value=3),  # legs
        st.one_of(st.none(), st.integers(min_value=0, max_value=2)),  # who answered
        st.sampled_from(["Network", "Group"]),
    ),
    min_size=1,
    max_size=5,
)


def register_of(tmp_path, name: str, bodies: list[bytes]) -> list[tuple]:
    reg = Register.open(tmp_path / f"{name}.sqlite")
    try:
        for body in bodies:
            reg.inbox.add(body, T0)
        Processor(reg, settle=1.0).run_once(at_ms=T0 + 10_000_000)
        return sorted(
            (c.session_key, c.phone, c.line, c.called_at)
            for c in reg.calls.rows(include_handled=True)
        )
    finally:
        reg.close()


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(calls=CALLS, seed=st.integers(min_value=0, max_value=2**32), dup=st.floats(0, 1))
def test_any_order_and_duplication_gives_the_same_register(tmp_path_factory, calls, seed, dup):
    tmp_path = tmp_path_factory.mktemp("prop")
    bodies = []
    expected_missed = 0
    for i, (caller, legs, answered, call_type) in enumerate(calls):
        targets = GROUP[:legs]
        who = targets[answered] if answered is not None and answered < legs else None
        steps = xsi_build.incoming_call(
            targets,
            caller,
            T0 + i * 60_000,
            answered_by=who,
            call_type=call_type,
        )
        bodies += [xsi_build.event_document(s, subscription_id="s") for s in steps]
        expected_missed += who is None and call_type == "Network"
    in_order = register_of(tmp_path, "ordered", bodies)
    rng = random.Random(seed)
    shuffled = bodies + [b for b in bodies if rng.random() < dup]
    rng.shuffle(shuffled)
    assert register_of(tmp_path, "shuffled", shuffled) == in_order
    assert len(in_order) == expected_missed


def test_a_recycled_call_half_id_on_a_new_session_is_a_new_call(register: Register) -> None:
    first = xsi_build.incoming_call(GROUP[:1], "+79161234567", T0)
    # After a PBX restart the same abonent's next call reuses 'callhalf-N:0'.
    recycled = [
        xsi_build.Step(s.event_type, xsi_build.replace(s.leg, call_id=first[0].leg.call_id))
        for s in xsi_build.incoming_call(GROUP[:1], "+79031112233", T0 + 600_000)
    ]
    assert recycled[0].leg.ext_tracking_id != first[0].leg.ext_tracking_id
    deliver(register, first + recycled)
    settle_all(register)
    assert sorted(c.phone for c in register.calls.rows()) == ["+79031112233", "+79161234567"]
    assert register.inbox.counts() == {"processed": 4}


def test_a_repeated_event_id_with_other_content_is_kept_not_dropped(register: Register) -> None:
    first = xsi_build.incoming_call(GROUP[:1], "+79161234567", T0)
    other = xsi_build.incoming_call(GROUP[:1], "+79031112233", T0 + 600_000)
    for index, (a, b) in enumerate(zip(first, other, strict=True)):
        same_id = f"event-{index}"
        register.inbox.add(xsi_build.event_document(a, subscription_id="s", event_id=same_id), T0)
        register.inbox.add(xsi_build.event_document(b, subscription_id="s", event_id=same_id), T0)
    settle_all(register)
    assert register.calls.count() == 2
    assert register.inbox.counts() == {"processed": 4}


def test_an_old_duplicate_key_is_forgotten_and_the_repeat_changes_nothing(
    register: Register,
) -> None:
    steps = xsi_build.incoming_call(GROUP[:1], "+79161234567", T0)
    deliver(register, steps, at_ms=T0)
    processor = Processor(register, settle=1.0)
    processor.run_once(at_ms=T0 + 60_000)
    with register.transaction():
        assert register.sessions.forget_seen(T0 + 1) == 4  # two event ids, two leg updates
    deliver(register, steps, at_ms=T0 + 8 * 86_400_000)  # the same events, a week later
    processor.run_once(at_ms=T0 + 8 * 86_400_000 + 60_000)
    assert register.calls.count() == 1
