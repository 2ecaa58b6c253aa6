"""detection.py's rules as pure functions: merging a leg's views, telling people from services,
deciding a session, where it was lost, and the answered call auto-closing needs."""

from __future__ import annotations

from dataclasses import fields, replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beeline_missed.errors import UserError
from beeline_missed.rules import detection
from beeline_missed.rules.detection import LegState, Targets
from beeline_missed.store import Abonent

PERSON = "9001112201@ip.beeline.ru"
COLLEAGUE = "9001112202@ip.beeline.ru"
MENU = "0000100001_vxml@ip.beeline.ru"
QUEUE = "MPBX_E_000001_CC_0001@ip.beeline.ru"
ABONENTS = [Abonent(PERSON, phone="9001112201", extension="201")]


def leg(target: str = PERSON, **values: object) -> LegState:
    base = {"call_id": "callhalf-1:0", "ext_tracking_id": "s1", "personality": "Terminator"}
    return LegState(target_id=target, **{**base, "call_type": "Network", **values})


def decide(legs: list[LegState], since: float = 100.0, **kwargs: object) -> detection.Decision:
    return detection.decide(legs, seconds_since_last_event=since, settle=10.0, stale_after=3600.0,
                            **kwargs)  # fmt: skip


# -- merge --------------------------------------------------------------------------------------

FULL = leg(
    personality="Terminator",
    call_type="Network",
    remote_raw="tel:+79161234567",
    start_ms=1_000,
    answer_ms=2_000,
    release_ms=3_000,
    answered=True,
    released=True,
    huntgroup="hg@ip.beeline.ru",
    release_cause="Busy",
    redirect_to="tel:+79031234567",
    member=True,
)
EMPTY = LegState(target_id=PERSON, call_id="callhalf-1:0", ext_tracking_id="s1")


def test_merge_keeps_what_either_side_knows() -> None:
    assert detection.merge(FULL, EMPTY) == FULL
    assert detection.merge(EMPTY, FULL) == FULL


def test_merge_of_nothing_known_stays_unknown() -> None:
    merged = detection.merge(EMPTY, EMPTY)
    assert merged == EMPTY
    assert (merged.release_ms, merged.answer_ms, merged.start_ms) == (None, None, None)


def test_merge_takes_the_earliest_start_and_answer_and_the_latest_release() -> None:
    early = replace(FULL, start_ms=1_000, answer_ms=2_000, release_ms=3_000)
    late = replace(FULL, start_ms=1_500, answer_ms=2_500, release_ms=9_000)
    for merged in (detection.merge(early, late), detection.merge(late, early)):
        assert (merged.start_ms, merged.answer_ms, merged.release_ms) == (1_000, 2_000, 9_000)


TEXT = st.none() | st.sampled_from(["a", "b", "Busy", "tel:+79161234567"])
TIME = st.none() | st.integers(0, 10**6)
LEGS = st.builds(
    LegState,
    target_id=st.just(PERSON),
    call_id=st.just("c"),
    ext_tracking_id=st.just("s"),
    personality=TEXT,
    call_type=TEXT,
    remote_raw=TEXT,
    start_ms=TIME,
    answer_ms=TIME,
    release_ms=TIME,
    answered=st.booleans(),
    released=st.booleans(),
    huntgroup=TEXT,
    release_cause=TEXT,
    redirect_to=TEXT,
    member=st.booleans(),
)


@given(LEGS, LEGS, LEGS)
def test_merge_is_order_free_and_idempotent(a: LegState, b: LegState, c: LegState) -> None:
    assert detection.merge(a, b) == detection.merge(b, a)
    assert detection.merge(detection.merge(a, b), c) == detection.merge(a, detection.merge(b, c))
    assert detection.merge(a, a) == a
    merged = detection.merge(a, b)
    for flag in ("answered", "released", "member"):
        assert getattr(merged, flag) == (getattr(a, flag) or getattr(b, flag))
    assert {f.name for f in fields(LegState)} >= {"release_cause", "redirect_to", "member"}


# -- people and services ------------------------------------------------------------------------


def test_services_are_told_by_their_ids_in_any_case() -> None:
    targets = Targets.build(abonents=ABONENTS)
    assert targets.kind(MENU) == detection.VOICE_MENU
    assert targets.kind(MENU.upper()) == detection.VOICE_MENU
    assert targets.kind(QUEUE) == detection.QUEUE
    assert targets.kind("mpbx_e_000001_cc_0002@ip.beeline.ru") == detection.QUEUE
    assert targets.kind("0000100002_hg_1@ip.beeline.ru") == detection.HUNT_GROUP
    assert targets.kind("VoiceMail@ip.beeline.ru") == detection.VOICEMAIL


@pytest.mark.parametrize(
    "abonent",
    [
        Abonent(PERSON),
        Abonent("", phone="9001112201"),
        Abonent("", extension="9001112201"),
        Abonent("9001112201@other.host"),  # the part before '@' is the abonent
        Abonent("9001112201@odd@host"),  # before the first '@'
    ],
)
def test_a_person_is_found_on_the_list_by_any_of_its_ids(abonent: Abonent) -> None:
    targets = Targets.build(abonents=[abonent, Abonent("9009999999@ip.beeline.ru")])
    assert targets.kind(PERSON) == detection.PERSON
    assert targets.kind(PERSON.upper()) == detection.PERSON
    assert targets.kind("9007777777@ip.beeline.ru") == detection.UNKNOWN


def test_person_patterns_and_unknown_targets() -> None:
    strict = Targets.build(abonents=ABONENTS, person_patterns=detection.DEFAULT_PERSON_PATTERNS)
    assert strict.kind("SIP00SLQU00A0J@mpbx.sip.beeline.ru") == detection.PERSON
    assert strict.kind("SIP00SLQU00A0J@ip.beeline.ru") == detection.UNKNOWN
    stranger = leg("0000999999@ip.beeline.ru")
    assert not strict.is_person(stranger)
    assert Targets.build(abonents=ABONENTS, unknown_is_person=True).is_person(stranger)
    assert strict.is_person(replace(stranger, member=True))  # a queue's agent, a group member
    assert not strict.is_person(leg(MENU))
    assert not Targets.build(abonents=ABONENTS, unknown_is_person=True).is_person(leg(MENU))


def test_without_an_abonent_list_every_non_service_is_a_person() -> None:
    assert detection.PLAIN.kind("0000999999@ip.beeline.ru") == detection.PERSON
    assert detection.PLAIN.kind(MENU) == detection.VOICE_MENU


def test_no_service_patterns_means_no_services() -> None:
    assert Targets.build(service_patterns={}).kind(MENU) == detection.PERSON


@pytest.mark.parametrize(
    ("kwargs", "sentence"),
    [
        (
            {"service_patterns": {detection.VOICE_MENU: ["_vxml("]}},
            "The voice menu pattern '_vxml(' is not a regular expression: "
            "missing ), unterminated subpattern at position 5.",
        ),
        (
            {"person_patterns": ["[SIP"]},
            "The person pattern '[SIP' is not a regular expression: "
            "unterminated character set at position 0.",
        ),
    ],
)
def test_a_bad_pattern_is_one_sentence(kwargs: dict, sentence: str) -> None:
    with pytest.raises(UserError) as caught:
        Targets.build(**kwargs)
    assert str(caught.value) == sentence


def test_outside_numbers_are_those_no_abonent_has() -> None:
    targets = Targets.build(abonents=[*ABONENTS, Abonent("x@ip.beeline.ru")])
    assert not targets.is_outside("+79001112201")
    assert targets.is_outside("+79031234567")
    assert not targets.is_outside(None)
    assert targets.abonent_phones == frozenset({"+79001112201"})


# -- decide -------------------------------------------------------------------------------------


def test_nothing_to_decide_is_pending() -> None:
    assert decide([]) == detection.Decision(detection.PENDING)


def test_an_answer_flag_alone_or_an_answer_time_alone_is_an_answer() -> None:
    flag_only = leg(answered=True, released=True)
    time_only = leg(answer_ms=5_000, released=True)
    for answered in (flag_only, time_only):
        decision = decide([answered], since=0.0)
        assert (decision.state, decision.answered_by) == (detection.ANSWERED, "9001112201")


def test_the_first_person_to_answer_is_who_answered() -> None:
    first = leg(PERSON, answer_ms=5_000, released=True)
    second = leg(COLLEAGUE, call_id="callhalf-2:0", answer_ms=9_000, released=True)
    flag_only = leg("9001112203@ip.beeline.ru", call_id="callhalf-3:0", answered=True)
    for legs in ([first, second, flag_only], [flag_only, second, first]):
        assert detection.person_answer(legs, detection.PLAIN) == first
        assert decide(legs).answered_by == "9001112201"
    assert detection.person_answer([second, flag_only], detection.PLAIN) == second
    assert detection.person_answer([flag_only], detection.PLAIN) == flag_only


def test_the_earliest_answer_wins_over_the_smaller_id() -> None:
    early = leg(COLLEAGUE, answer_ms=5_000)
    late = leg(PERSON, call_id="callhalf-2:0", answer_ms=9_000)
    assert detection.person_answer([late, early], detection.PLAIN) == early


def test_same_answer_time_is_settled_by_target() -> None:
    a = leg(COLLEAGUE, answer_ms=5_000)
    b = leg(PERSON, call_id="callhalf-2:0", answer_ms=5_000)
    assert detection.person_answer([a, b], detection.PLAIN) == b
    assert detection.person_answer([b, a], detection.PLAIN) == b


def test_a_service_answer_is_not_an_answer() -> None:
    decision = decide([leg(MENU, answer_ms=5_000, released=True, remote_raw="tel:+79161234567")])
    assert (decision.state, decision.lost_at) == (detection.MISSED, detection.LOST_VOICE_MENU)


def test_answered_elsewhere_is_answered_by_that_person() -> None:
    decision = decide([leg(released=True)], answered_elsewhere="9001112202")
    assert decision == detection.Decision(detection.ANSWERED, answered_by="9001112202")


def test_settle_is_reached_at_exactly_settle_seconds() -> None:
    legs = [leg(released=True, remote_raw="tel:+79161234567")]
    assert decide(legs, since=9.999).state == detection.PENDING
    assert decide(legs, since=10.0).state == detection.MISSED


def test_a_leg_still_up_waits_until_stale_after() -> None:
    legs = [leg(QUEUE, answer_ms=1, remote_raw="tel:+79161234567"), leg(released=True)]
    assert decide(legs, since=3599.0).state == detection.PENDING
    assert decide(legs, since=3600.0).state == detection.MISSED


def test_only_outgoing_or_internal_legs_are_ignored() -> None:
    outgoing = leg(personality="Originator", released=True)
    internal = leg(call_type="Group", released=True)
    assert decide([outgoing, internal]).state == detection.IGNORED


def test_a_missed_decision_says_who_what_and_when() -> None:
    legs = [
        leg(PERSON, remote_raw="tel:+79161234567", start_ms=2_000, released=True),
        leg(MENU, call_id="c2", remote_raw="tel:+79161234567", start_ms=1_000, answer_ms=1_500,
            released=True),
        leg(COLLEAGUE, call_id="c3", personality="Originator", start_ms=500, released=True),
    ]  # fmt: skip
    decision = decide(legs)
    assert decision == detection.Decision(
        detection.MISSED,
        phone="+79161234567",
        phone_raw="tel:+79161234567",
        start_ms=500,
        line="9001112201",  # the people rung, not the menu
        lost_at=detection.LOST_RINGING,
    )


def test_a_missed_call_with_no_start_time_or_number() -> None:
    decision = decide([leg(released=True)])
    assert (decision.start_ms, decision.phone, decision.phone_raw) == (None, None, "номер скрыт")


def test_a_missed_call_only_a_service_took_shows_the_service() -> None:
    assert decide([leg(QUEUE, released=True, answer_ms=1)]).line == "MPBX_E_000001_CC_0001"


# -- where it was lost --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("legs", "where"),
    [
        (
            [leg(redirect_to="tel:+79031234567"), leg(QUEUE), leg(MENU)],
            ("forwarded", "+79031234567"),
        ),
        ([leg(QUEUE), leg(call_id="c2", member=True), leg(MENU)], ("queue", None)),
        ([leg(release_cause="Busy"), leg(COLLEAGUE), leg(MENU)], ("ringing", None)),
        ([leg(release_cause="User Busy"), leg(MENU)], ("busy", None)),
        ([leg(release_cause="Do Not Disturb")], ("busy", None)),
        ([leg(release_cause="Temporarily Unavailable")], ("ringing", None)),
        ([leg(MENU)], ("voice_menu", None)),
        ([leg("0000100002_hg_1@ip.beeline.ru")], ("ringing", None)),
        ([leg(redirect_to="tel:+79001112201")], ("ringing", None)),  # to a colleague's phone
        ([leg(redirect_to="voicemail")], ("ringing", None)),  # not a number
    ],
)
def test_where_a_call_was_lost_the_furthest_stage_wins(
    legs: list[LegState], where: tuple[str, str | None]
) -> None:
    targets = Targets.build(abonents=[*ABONENTS, Abonent(COLLEAGUE, phone="9001112202")])
    assert detection.lost_where(legs, targets) == where
    assert detection.lost_where(list(reversed(legs)), targets) == where


def test_two_forwards_keep_the_same_one_in_any_order() -> None:
    legs = [leg(redirect_to="tel:+79037654321"), leg(redirect_to="tel:+79031234567")]
    assert detection.lost_where(legs, detection.PLAIN) == ("forwarded", "+79031234567")
    assert detection.lost_where(legs[::-1], detection.PLAIN) == ("forwarded", "+79031234567")


# -- the answered call auto-closing needs -------------------------------------------------------


def test_an_incoming_call_a_person_answered() -> None:
    answered = leg(COLLEAGUE, remote_raw="tel:+79161234567", answer_ms=5_000)
    ringing = leg(PERSON, call_id="c2")
    call = detection.answered_call([ringing, answered])
    # Still talking: no release, so the talk time is not known yet (auto-close waits for it).
    assert call == detection.AnsweredCall(
        ext_tracking_id="s1",
        phone="+79161234567",
        direction="incoming",
        answered_by="9001112202",
        answer_ms=5_000,
        release_ms=None,
        ended=False,
    )
    hung_up = replace(answered, released=True, release_ms=9_000)
    ended = detection.answered_call([ringing, hung_up])
    assert ended == replace(call, release_ms=9_000, ended=True)
    assert ended is not None and ended.talk_seconds == 4
    # A release time without the release itself (a document that lists one early): still on.
    early = replace(answered, release_ms=9_000)
    assert detection.answered_call([ringing, early]) == call


def test_an_outgoing_call_that_was_answered() -> None:
    staff = leg(personality="Originator", answer_ms=7_000)
    other = leg(MENU, call_id="c2", remote_raw="tel:+79161234567")
    call = detection.answered_call([staff, other])  # the number from another leg
    assert call is not None
    assert (call.direction, call.phone, call.answered_by) == ("outgoing", "+79161234567",
                                                              "9001112201")  # fmt: skip


@pytest.mark.parametrize(
    "legs",
    [
        [leg(remote_raw="tel:+79161234567")],  # nobody answered
        [leg(MENU, remote_raw="tel:+79161234567", answer_ms=1)],  # only the menu
        # Internal calls, even with a full number, and a leg of no known call type.
        [
            leg(
                personality="Originator",
                call_type="Group",
                remote_raw="tel:+79161234567",
                answer_ms=1,
            )
        ],
        [
            leg(
                personality="Terminator",
                call_type="Group",
                remote_raw="tel:+79161234567",
                answer_ms=1,
            )
        ],
        [leg(personality="Terminator", call_type=None, remote_raw="tel:+79161234567", answer_ms=1)],
        [leg(answer_ms=1)],  # hidden number
    ],
)
def test_no_answered_call_to_close_anything_with(legs: list[LegState]) -> None:
    assert detection.answered_call(legs) is None


def test_abonent_name_is_the_part_before_the_at() -> None:
    assert detection.abonent_name("9001112201@ip.beeline.ru") == "9001112201"
    assert detection.abonent_name("a@b@c") == "a"
    assert detection.abonent_name("201") == "201"
