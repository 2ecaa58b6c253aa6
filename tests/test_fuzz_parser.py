"""Fuzzes the event parser with hypothesis, bounded in examples and time.

Whatever the body, parse_event either returns an event with sane fields or raises BadDocument
with a 4xx status and a one-line reason; nothing else escapes (no lxml error, no
OverflowError, no UnicodeDecodeError), and an accepted event never breaks the processor.
Run `pytest tests/test_fuzz_parser.py --hypothesis-show-statistics` to see how many inputs ran.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beeline_missed.daemon.processing import Processor
from beeline_missed.pbx import xsi
from beeline_missed.store import Register

SAMPLES = sorted((Path(__file__).parent / "data" / "beeline-samples").glob("*.xml"))
SEEDS = [p.read_bytes() for p in SAMPLES]
NS = 'xmlns:xsi="http://schema.broadsoft.com/xsi" xmlns:xsi1="http://www.w3.org/2001/XMLSchema-instance"'
FIELDS = ["callId", "extTrackingId", "personality", "state", "startTime", "answerTime",
          "releaseTime", "huntGroupUserId"]  # fmt: skip
BOUNDED = settings(max_examples=2000, deadline=500, suppress_health_check=[HealthCheck.too_slow])


def check(body: bytes) -> xsi.Event | None:
    """The parser's contract, for any body."""
    try:
        event = xsi.parse_event(body)
    except xsi.BadDocument as exc:
        assert exc.status in (400, 422)
        assert exc.reason.endswith(".") and "\n" not in exc.reason and len(exc.reason) < 400
        return None
    assert event.event_id and len(event.event_id) <= 200
    assert event.event_type and len(event.event_type) <= 100
    for call in event.calls:
        assert call.call_id and call.ext_tracking_id
        for value in (call.start_ms, call.answer_ms, call.release_ms):
            assert value is None or 0 <= value <= xsi.MAX_MS
    if event.is_call_event:
        assert event.calls and event.target_id
    return event


@BOUNDED
@given(st.binary(max_size=4096))
def test_any_bytes(body: bytes) -> None:
    check(body)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A real sample with a few bytes flipped, inserted or cut."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["flip", "insert", "cut"]))
        if kind == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[at : at + draw(st.integers(1, 64))]
    return bytes(data)


@BOUNDED
@given(mutated())
def test_mutated_samples(body: bytes) -> None:
    check(body)


texts = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=40
)
numbers = st.one_of(
    st.integers(-(2**70), 2**70).map(str), texts, st.just("1795766400000"), st.just("")
)


@st.composite
def built_events(draw: st.DrawFn) -> bytes:
    """Well-formed XSI events whose fields hold anything: the wrong types, huge numbers,
    Unicode digits, markup-looking text (escaped), missing parts."""
    from xml.sax.saxutils import escape

    def field(name: str, value: str | None) -> str:
        return "" if value is None else f"<xsi:{name}>{escape(value)}</xsi:{name}>"

    maybe = st.one_of(st.none(), texts)
    call_fields = "".join(
        field(
            name,
            draw(st.one_of(st.none(), numbers)) if name.endswith("Time") else draw(maybe),
        )
        for name in FIELDS
    )
    remote = field("address", draw(maybe)) + field("callType", draw(maybe))
    event_type = draw(
        st.sampled_from(["CallReceivedEvent", "CallReleasedEvent", "CallAnsweredEvent",
                         "SubscriptionTerminatedEvent", "Nonsense", ""])
    )  # fmt: skip
    calls = draw(st.integers(0, 2))
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><xsi:Event {NS}>'
        + field("eventID", draw(maybe))
        + field("sequenceNumber", draw(st.one_of(st.none(), numbers)))
        + field("subscriptionId", draw(maybe))
        + field("targetId", draw(maybe))
        + f'<xsi:eventData xsi1:type="xsi:{event_type}">'
        + f"<xsi:call>{call_fields}<xsi:remoteParty>{remote}</xsi:remoteParty></xsi:call>" * calls
        + "</xsi:eventData></xsi:Event>"
    )
    return body.encode("utf-8")


@BOUNDED
@given(built_events())
def test_built_events(body: bytes) -> None:
    check(body)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(built_events(), min_size=1, max_size=5))
def test_accepted_events_never_break_the_processor(register: Register, bodies: list[bytes]) -> None:
    """Whatever the parser lets through, the processor applies without an exception (the
    daemon would otherwise retry it forever)."""
    processor = Processor(register, settle=0)
    for body in bodies:
        register.inbox.add(body, 1795766400000)
    processor.run_once(at_ms=1795766400000 + 7 * 86_400_000)
    assert register.inbox.counts().get("new", 0) == 0
