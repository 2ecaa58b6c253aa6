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
    release_cause: str | None = None  # 'Busy' … (only on a leg that failed)
    redirect_address: str | None = None  # 'tel:+79031234567': forwarded there
    redirect_reason: str = "unconditional"
    acd_user_id: str | None = None  # the queue that rang this agent
    redirected_via: tuple[str, ...] = ()  # services the call came through (hunt groups)
    releasing_party: str = "remoteRelease"


@dataclass(frozen=True)
class Step:
    """One event to deliver: which event, about which leg, and its state at that moment."""

    event_type: str
    leg: Leg


def _state(step: Step) -> str:
    if step.event_type == RELEASED:
        return "Released"
    if step.leg.redirect_address:
        return "Detached"  # forwarded: the leg can only be released now
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
            el(call, "releasingParty", leg.releasing_party)
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
        if leg.release_cause and step.event_type == RELEASED:
            cause = el(call, "releaseCause")
            el(cause, "internalReleaseCause", leg.release_cause)
        if leg.redirect_address:
            redirect = el(call, "redirect")
            el(redirect, "address", leg.redirect_address)
            el(redirect, "reason", leg.redirect_reason)
            el(redirect, "redirectTime", str(leg.start_ms + 1_000))
        if leg.redirected_via:
            redirections = el(call, "redirections")
            for user_id in leg.redirected_via:
                redirection = el(redirections, "redirection")
                party = el(redirection, "party")
                el(party, "userId", user_id)
                el(party, "callType", "Group")
                el(redirection, "reason", "hunt-group")
        if leg.acd_user_id:
            acd = el(call, "acdCallInfo")
            el(acd, "acdUserId", leg.acd_user_id)
            el(acd, "numCallsInQueue", "1")
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
    redirected_via: tuple[str, ...] = (),
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
            redirected_via=redirected_via,
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


# Service ids of the simulated PBX, in the forms public integrations have seen (shared/beeline).
VOICE_MENU_ID = "0000100001_vxml@ip.beeline.ru"
QUEUE_ID = "MPBX_E_000001_CC_0001@ip.beeline.ru"
HUNT_GROUP_ID = "0000100002_hg_1@ip.beeline.ru"


def voice_menu_call(
    caller: str | None,
    start_ms: int,
    *,
    menu: str = VOICE_MENU_ID,
    then: list[str] | None = None,
    answered_by: str | None = None,
    menu_ms: int = 12_000,
    ring_ms: int = 15_000,
) -> list[Step]:
    """A voice menu answers the call to play its greeting; the caller hangs up in it (`then`
    None) or is sent on to `then`, a hunt group's members, one of whom may answer."""
    session = new_session()
    address = f"tel:{caller}" if caller else None
    greeting = Leg(menu, session, start_ms, remote_address=address, answer_ms=start_ms + 1_000)
    steps = [Step(RECEIVED, greeting), Step(ANSWERED, greeting)]
    left = start_ms + menu_ms
    if not then:
        return [*steps, Step(RELEASED, replace(greeting, release_ms=left))]
    steps.append(Step(RELEASED, replace(greeting, release_ms=left, releasing_party="localRelease")))
    return steps + incoming_call(
        then,
        caller,
        left,
        answered_by=answered_by,
        ring_ms=ring_ms,
        session=session,
        redirected_via=(HUNT_GROUP_ID,),
    )


def queue_call(
    agents: list[str],
    caller: str | None,
    start_ms: int,
    *,
    queue: str = QUEUE_ID,
    answered_by: str | None = None,
    agent_ring_ms: int = 10_000,
    gap_ms: int = 0,
    talk_ms: int = 60_000,
) -> list[Step]:
    """A call-centre queue answers the call (music) and rings its agents one after another,
    `gap_ms` apart; an agent answers, or the caller gives up in the queue."""
    session = new_session()
    address = f"tel:{caller}" if caller else None
    waiting = Leg(queue, session, start_ms, remote_address=address, answer_ms=start_ms + 500)
    steps = [Step(RECEIVED, waiting), Step(ANSWERED, waiting)]
    at = start_ms + 2_000
    for agent in agents:
        leg = Leg(agent, session, at, remote_address=address, acd_user_id=queue)
        steps.append(Step(RECEIVED, leg))
        if agent == answered_by:
            answer = at + agent_ring_ms // 2
            leg = replace(leg, answer_ms=answer)
            steps.append(Step(ANSWERED, leg))
            steps.append(
                Step(RELEASED, replace(waiting, release_ms=answer, releasing_party="localRelease"))
            )
            steps.append(Step(RELEASED, replace(leg, release_ms=answer + talk_ms)))
            return steps
        at += agent_ring_ms
        steps.append(Step(RELEASED, replace(leg, release_ms=at)))
        at += gap_ms
    if answered_by is not None:
        raise ValueError(f"{answered_by} is not among the queue's agents")
    return [*steps, Step(RELEASED, replace(waiting, release_ms=at))]


def pickup_call(
    target: str, colleague: str, caller: str, start_ms: int, *, talk_ms: int = 60_000
) -> list[Step]:
    """A colleague picks up the call ringing at `target`: the ringing leg is released unanswered
    and the colleague gets a call of their own, in a new session, with the client's number."""
    address = f"tel:{caller}"
    ringing = Leg(target, new_session(), start_ms, remote_address=address)
    picked = start_ms + 5_000
    taken = Leg(
        colleague,
        new_session(),
        picked,
        remote_address=address,
        personality="Originator",
        answer_ms=picked,
    )
    return [
        Step(RECEIVED, ringing),
        Step(ORIGINATED, taken),
        Step(ANSWERED, taken),
        Step(RELEASED, replace(ringing, release_ms=picked)),
        Step(RELEASED, replace(taken, release_ms=picked + talk_ms)),
    ]


def busy_call(
    targets: list[str], caller: str | None, start_ms: int, *, cause: str = "Busy"
) -> list[Step]:
    """Every target is busy (or in do-not-disturb): each leg is released at once with the cause,
    and no CallReceivedEvent (the phones never rang)."""
    session = new_session()
    address = f"tel:{caller}" if caller else None
    return [
        Step(
            RELEASED,
            Leg(
                target,
                session,
                start_ms,
                remote_address=address,
                release_ms=start_ms + 500,
                release_cause=cause,
                releasing_party="localRelease",
            ),
        )
        for target in targets
    ]


def forwarded_call(target: str, caller: str | None, to: str, start_ms: int) -> list[Step]:
    """The abonent forwards the call to an outside number: the leg rings, is redirected
    (state Detached, a `redirect` element) and released."""
    address = f"tel:{caller}" if caller else None
    leg = Leg(target, new_session(), start_ms, remote_address=address)
    forwarded = replace(leg, redirect_address=f"tel:{to}", release_ms=start_ms + 20_000)
    return [Step(RECEIVED, leg), Step(RELEASED, forwarded)]


def transferred_call(first: str, second: str, caller: str, start_ms: int) -> list[Step]:
    """`first` answers, then transfers the client to `second`, who does not answer."""
    session = new_session()
    address = f"tel:{caller}"
    talk = Leg(first, session, start_ms, remote_address=address, answer_ms=start_ms + 5_000)
    onward = Leg(second, session, start_ms + 60_000, remote_address=address)
    end = start_ms + 80_000
    return [
        Step(RECEIVED, talk),
        Step(ANSWERED, talk),
        Step(RECEIVED, onward),
        Step(RELEASED, replace(onward, release_ms=end)),
        Step(RELEASED, replace(talk, release_ms=end)),
    ]


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


CLICK_TO_DIAL = "Click-to-Dial"


def click_to_call(
    abonent: str,
    callee: str,
    start_ms: int,
    *,
    answered: bool = True,
    ring_ms: int = 3_000,
    talk_ms: int = 60_000,
) -> list[Step]:
    """Click-to-call (`POST abonents/{abonent}/call`): the PBX rings the abonent's own phone
    (personality Click-to-Dial, the client's number as the remote party [schema]); once they
    pick up it rings the client, who answers (`answered`) or not."""
    leg = Leg(
        target_id=abonent,
        ext_tracking_id=new_session(),
        start_ms=start_ms,
        remote_address=f"tel:{callee}",
        personality=CLICK_TO_DIAL,
    )
    steps = [Step(ORIGINATED, leg)]
    client_rings = start_ms + ring_ms
    if answered:
        answer = client_rings + 5_000
        leg = replace(leg, answer_ms=answer)
        steps.append(Step(ANSWERED, leg))
        steps.append(Step(RELEASED, replace(leg, release_ms=answer + talk_ms)))
    else:
        steps.append(Step(RELEASED, replace(leg, release_ms=client_rings + 30_000)))
    return steps
