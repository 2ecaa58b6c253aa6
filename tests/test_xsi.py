from __future__ import annotations

from pathlib import Path

import pytest

from beeline_missed.pbx import xsi
from beeline_missed.simulator import xsi_build

# Copies of shared/beeline/samples, so that the suite runs from any clone.
SAMPLES = Path(__file__).parent / "data" / "beeline-samples"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def test_parses_the_published_samples() -> None:
    received = xsi.parse_event(sample("missed-1-received.xml"))
    assert received.event_type == "CallReceivedEvent"
    assert received.event_id == "6248b8f0-509f-475f-8146-d4ac432fb8ac"
    assert received.target_id == "9001112201@ip.beeline.ru"
    (call,) = received.calls
    assert call.personality == "Terminator"
    assert call.call_type == "Network"
    assert call.remote_address == "tel:+79161234567"
    assert call.start_ms == 1795766400000
    answered = xsi.parse_event(sample("answered-2-answered.xml"))
    assert answered.calls[0].answer_ms == 1795767007000
    released = xsi.parse_event(sample("missed-2-released.xml"))
    assert released.calls[0].release_ms == 1795766421000
    terminated = xsi.parse_event(sample("subscription-terminated.xml"))
    assert terminated.event_type == "SubscriptionTerminatedEvent"
    assert terminated.calls == ()


def test_default_namespace_document_parses_the_same() -> None:
    steps = xsi_build.incoming_call(["200@x"], "+79161234567", 1795766400000)
    prefixed = xsi.parse_event(
        xsi_build.event_document(steps[0], subscription_id="s", event_id="e1")
    )
    plain = xsi.parse_event(
        xsi_build.event_document(
            steps[0], subscription_id="s", event_id="e1", default_namespace=True
        )
    )
    assert prefixed == plain


def test_other_prefix_layout_parses() -> None:
    body = (
        sample("missed-1-received.xml")
        .replace(b"xsi:", b"bw:")
        .replace(b"xmlns:xsi=", b"xmlns:bw=")
    )
    assert xsi.parse_event(body).event_type == "CallReceivedEvent"


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"", 400, "empty"),
        (b"<Event", 400, "well-formed"),
        (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', 400, "DTD"),
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
            b"<x>&e;</x>",
            400,
            "DTD",
        ),
        (b"<root xmlns='urn:other'/>", 422, "root element"),
        (b'{"json": true}', 400, "well-formed"),
    ],
)
def test_bad_documents_say_why(body: bytes, status: int, words: str) -> None:
    with pytest.raises(xsi.BadDocument) as info:
        xsi.parse_event(body)
    assert info.value.status == status
    assert words in info.value.reason


def test_wrong_types_and_missing_fields() -> None:
    good = sample("missed-1-received.xml")
    with pytest.raises(xsi.BadDocument, match="epoch"):
        xsi.parse_event(good.replace(b"1795766400000", b"yesterday"))
    with pytest.raises(xsi.BadDocument, match="epoch"):
        xsi.parse_event(good.replace(b"1795766400000", b"9" * 40))
    with pytest.raises(xsi.BadDocument, match="eventID"):
        xsi.parse_event(good.replace(b"6248b8f0-509f-475f-8146-d4ac432fb8ac", b""))
    with pytest.raises(xsi.BadDocument, match="extTrackingId"):
        xsi.parse_event(good.replace(b"1b7fb63e-833c-a481-983f-7478b2cc9f32", b""))


def test_hidden_number_has_no_address() -> None:
    steps = xsi_build.incoming_call(["200@x"], None, 1795766400000)
    event = xsi.parse_event(xsi_build.event_document(steps[0], subscription_id="s"))
    assert event.calls[0].remote_address is None
