"""Builds BroadWorks XSI event documents as the Beeline PBX sends them, and call scenarios.

Used by the simulator (and so by the demo, tests and benchmarks). The layout follows the samples in
shared/beeline/samples: root `xsi:Event`, types in `xsi1:type` attributes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from itertools import count

from lxml import etree

XSI = "http://schema.broadsoft.com/xsi"
XSD_INSTANCE = "http://www.w3.org/2001/XMLSchema-instance"

RECEIVED = "CallReceivedEvent"
ANSWERED = "CallAnsweredEvent"
RELEASED = "CallReleasedEvent"
ORIGINATED = "CallOriginatedEvent"
UPDATED = "CallUpdatedEvent"
TERMINATED = "SubscriptionTerminatedEvent"

_call_numbers = count(8_400_000)


@dataclass(frozen=True)
class Leg:
    """One half of a call as one abonent (the event's target) sees it."""

    target_id: str
    ext_tracking_id: str
    start_ms: int
    remote_address: str | None = None  # 'tel:+79161234567'; None when the caller hid it
    remote_user_dn: str | None = None
    personality: str = "Terminator"
    call_type: str = "Network"
    call_id: str = field(default_factory=lambda: f"callhalf-{next(_call_numbers)}:0")
    answer_ms: int | None = None
    release_ms: int | None = None
    huntgroup_user_id: str | None = None


@dataclass(frozen=True)
class Step:
    """One event to deliver: which event, about which leg, and its state at that moment."""

    event_type: str
    leg: Leg


def _state(step: Step) -> str:
    if step.event_type == RELEASED:
        return "Released"
    if step.event_type == RECEIVED:
        return "Alerting"
    return "Active" if step.leg.answer_ms else "Alerting"


def event_document(
    step: Step | None,
    *,
    subscription_id: str,
    target_id: str | None = None,
    sequence: int = 1,
    event_id: str | None = None,
    default_namespace: bool = False,
    event_type: str | None = None,
) -> bytes:
    """One XSI event document. `step` None with `event_type` builds an envelope-only event
    (SubscriptionTerminatedEvent). `default_namespace` writes the XSI namespace without a prefix,
    the other layout seen in the wild."""
    prefix = None if default_namespace else "xsi"
    nsmap = {prefix: XSI, "xsi1": XSD_INSTANCE}

    def el(parent: etree._Element | None, name: str, text: str | None = None) -> etree._Element:
        tag = f"{{{XSI}}}{name}"
        node = etree.Element(tag, nsmap=nsmap) if parent is None else etree.SubElement(parent, tag)
        if text is not None:
            node.text = text
        return node

    def xsi_type(node: etree._Element, value: str) -> None:
        node.set(f"{{{XSD_INSTANCE}}}type", f"xsi:{value}" if prefix else value)

    kind = event_type or (step.event_type if step else TERMINATED)
    target = target_id or (step.leg.target_id if step else "unknown@ip.beeline.ru")
    root = el(None, "Event")
    xsi_type(root, "SubscriptionEvent")
    el(root, "eventID", event_id or str(uuid.uuid4()))
    el(root, "sequenceNumber", str(sequence))
    el(root, "userId", "MPBX_E_000001_0000000000_EventSubscription@ip.beeline.ru")
    el(root, "externalApplicationId", "0000000000_beeline_missed_simulator")
    el(root, "subscriptionId", subscription_id)
    contact = el(root, "httpContact")
    el(contact, "uri", "http://127.0.0.1/hook")
    el(root, "targetId", target)
    data = el(root, "eventData")
    xsi_type(data, kind)
    if step is not None:
        leg = step.leg
        call = el(data, "call")
        el(call, "callId", leg.call_id)
        el(call, "extTrackingId", leg.ext_tracking_id)
        el(call, "networkCallId", f"BW{abs(hash(leg.call_id)) % 10**12}@10.0.0.1")
        el(call, "personality", leg.personality)
        el(call, "state", _state(step))
        if step.event_type == RELEASED:
            el(call, "releasingParty", "remoteRelease")
        remote = el(call, "remoteParty")
        if leg.remote_address:
            address = el(remote, "address", leg.remote_address)
            address.set("countryCode", "7")
        if leg.remote_user_dn:
            el(remote, "userDN", leg.remote_user_dn)
        el(remote, "callType", leg.call_type)
        endpoint = el(call, "endpoint")
        xsi_type(endpoint, "AccessEndpoint")
        el(endpoint, "addressOfRecord", leg.target_id)
        el(call, "startTime", str(leg.start_ms))
        if leg.answer_ms is not None and step.event_type in (ANSWERED, RELEASED, UPDATED):
            el(call, "answerTime", str(leg.answer_ms))
        if step.event_type == RELEASED and leg.release_ms is not None:
            el(call, "releaseTime", str(leg.release_ms))
        if leg.huntgroup_user_id:
            el(call, "huntGroupUserId", leg.huntgroup_user_id)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


# -- scenarios: the events of whole calls, in the order a PBX would send them -----------------


def new_session() -> str:
    return str(uuid.uuid4())


def incoming_call(
    targets: list[str],
    caller: str | None,
    start_ms: int,
    *,
    answered_by: str | None = None,
    ring_ms: int = 15_000,
    talk_ms: int = 60_000,
    call_type: str = "Network",
    session: str | None = None,
) -> list[Step]:
    """An incoming call ringing `targets` at once (a hunt group when several).

    Nobody answers when `answered_by` is None. When someone answers, the other legs are released
    unanswered at the moment of the answer — exactly what makes naive per-leg tools report false
    missed calls. `caller` is '+79161234567', or None for a hidden number.
    """
    session = session or new_session()
    address = f"tel:{caller}" if caller else None
    legs = [
        Leg(
            target_id=target,
            ext_tracking_id=session,
            start_ms=start_ms,
            remote_address=address,
            call_type=call_type,
        )
        for target in targets
    ]
    steps = [Step(RECEIVED, leg) for leg in legs]
    if answered_by is None:
        end = start_ms + ring_ms
        steps += [Step(RELEASED, replace(leg, release_ms=end)) for leg in legs]
        return steps
    if answered_by not in targets:
        raise ValueError(f"{answered_by} is not among the ringing abonents")
    answer = start_ms + ring_ms // 2
    winner = next(leg for leg in legs if leg.target_id == answered_by)
    winner = replace(winner, answer_ms=answer)
    # The order a PBX sends: the answer, the other legs' releases, then the end of the talk.
    steps.append(Step(ANSWERED, winner))
    steps += [
        Step(RELEASED, replace(leg, release_ms=answer))
        for leg in legs
        if leg.target_id != answered_by
    ]
    steps.append(Step(RELEASED, replace(winner, release_ms=answer + talk_ms)))
    return steps


def outgoing_call(
    abonent: str, callee: str, start_ms: int, *, answered: bool = True, talk_ms: int = 60_000
) -> list[Step]:
    """Staff calling a client: an Originator leg."""
    leg = Leg(
        target_id=abonent,
        ext_tracking_id=new_session(),
        start_ms=start_ms,
        remote_address=f"tel:{callee}",
        personality="Originator",
    )
    steps = [Step(ORIGINATED, leg)]
    if answered:
        answer = start_ms + 5_000
        leg = replace(leg, answer_ms=answer)
        steps.append(Step(ANSWERED, leg))
        steps.append(Step(RELEASED, replace(leg, release_ms=answer + talk_ms)))
    else:
        steps.append(Step(RELEASED, replace(leg, release_ms=start_ms + 30_000)))
    return steps
