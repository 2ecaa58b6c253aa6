"""Parses the XSI event documents the PBX posts: safely, by namespace URI and local name.

The hook is on the internet, so the parser loads no DTD, expands no entity, reaches no network,
and refuses any document that declares a DTD at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

XSI = "http://schema.broadsoft.com/xsi"
XSD_INSTANCE = "http://www.w3.org/2001/XMLSchema-instance"
TYPE_ATTR = f"{{{XSD_INSTANCE}}}type"

CALL_EVENTS = {
    "CallReceivedEvent",
    "CallAnsweredEvent",
    "CallReleasedEvent",
    "CallOriginatedEvent",
    "CallUpdatedEvent",
    "CallHeldEvent",
    "CallRetrievedEvent",
    "CallRedirectedEvent",
    "CallRecordingStartedEvent",
    "CallRecordingStoppedEvent",
    "CallTransferredEvent",
    "CallForwardedEvent",
}
TERMINATED = "SubscriptionTerminatedEvent"

# Epoch milliseconds must fit SQLite's 64-bit integers; anything larger is a broken document.
MAX_MS = 2**62
_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)

_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
)


class BadDocument(ValueError):
    """The body is not an XSI event we can use; the message says why in one sentence."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class Call:
    """The `call` element of an event: one leg."""

    call_id: str
    ext_tracking_id: str
    personality: str | None
    state: str | None
    remote_address: str | None
    remote_user_dn: str | None
    call_type: str | None
    start_ms: int | None
    answer_ms: int | None
    release_ms: int | None
    huntgroup_user_id: str | None
    # releaseCause/internalReleaseCause: why a leg failed ('Busy', 'Temporarily Unavailable'…).
    release_cause: str | None = None
    # redirect/address: the number the PBX forwarded this leg to.
    redirect_address: str | None = None
    # acdCallInfo/acdUserId: the queue that rang this agent's leg.
    acd_user_id: str | None = None
    # redirections/…/party/userId: the services (hunt groups, queues) the call came through.
    redirected_via: tuple[str, ...] = ()


@dataclass(frozen=True)
class Event:
    event_id: str
    event_type: str
    subscription_id: str | None
    target_id: str | None
    sequence: int | None
    calls: tuple[Call, ...]

    @property
    def is_call_event(self) -> bool:
        return self.event_type in CALL_EVENTS

    @property
    def call_id(self) -> str | None:
        return self.calls[0].call_id if self.calls else None


def _local_type(value: str | None) -> str:
    # 'xsi:CallReceivedEvent' and 'CallReceivedEvent' (default namespace) are the same type.
    return (value or "").rsplit(":", 1)[-1]


def _child(node: etree._Element, name: str) -> etree._Element | None:
    return node.find(f"{{{XSI}}}{name}")


def _text(node: etree._Element | None, name: str) -> str | None:
    if node is None:
        return None
    child = _child(node, name)
    if child is None or child.text is None:
        return None
    text = child.text.strip()
    return text or None


def _millis(node: etree._Element, name: str) -> int | None:
    text = _text(node, name)
    if text is None:
        return None
    # ASCII only: str.isdigit() and int() also take Arabic-Indic and other Unicode digits.
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_MS:
        raise BadDocument(f"{name} is not a time in epoch milliseconds: {text[:40]!r}.", 422)
    return int(text)


def _call(node: etree._Element) -> Call:
    call_id = _text(node, "callId")
    tracking = _text(node, "extTrackingId")
    if not call_id or not tracking:
        raise BadDocument("A call in the event has no callId or extTrackingId.", 422)
    remote = _child(node, "remoteParty")
    return Call(
        call_id=call_id,
        ext_tracking_id=tracking,
        personality=_text(node, "personality"),
        state=_text(node, "state"),
        remote_address=_text(remote, "address"),
        remote_user_dn=_text(remote, "userDN"),
        call_type=_text(remote, "callType"),
        start_ms=_millis(node, "startTime"),
        answer_ms=_millis(node, "answerTime"),
        release_ms=_millis(node, "releaseTime"),
        huntgroup_user_id=_text(node, "huntGroupUserId"),
        release_cause=_text(_child(node, "releaseCause"), "internalReleaseCause"),
        redirect_address=_text(_child(node, "redirect"), "address"),
        acd_user_id=_acd_user(node),
        redirected_via=_redirected_via(node),
    )


def _acd_user(node: etree._Element) -> str | None:
    info = _child(node, "acdCallInfo")
    if info is None:
        return None
    # An agent's leg is a queue's even when the queue's id is missing from the element.
    return _text(info, "acdUserId") or "acd"


def _redirected_via(node: etree._Element) -> tuple[str, ...]:
    redirections = _child(node, "redirections")
    if redirections is None:
        return ()
    ids = ((party.text or "").strip() for party in redirections.iter(f"{{{XSI}}}userId"))
    return tuple(sorted({i[:200] for i in ids if i}))[:20]


def parse_event(body: bytes) -> Event:
    """Parse one posted document, or raise BadDocument with the reason and HTTP status."""
    if not body or not body.strip():
        raise BadDocument("The body is empty.")
    if _DTD.search(body):
        raise BadDocument("Documents with a DTD or entity declarations are not accepted.")
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as exc:
        # libxml2's text may hold line breaks: one line, so the reason cannot forge log lines.
        message = " ".join(str(exc.msg).split())
        raise BadDocument(f"The body is not well-formed XML: {message}.") from None
    except ValueError as exc:  # e.g. an unknown encoding declaration
        raise BadDocument(
            f"The body cannot be read as XML: {' '.join(str(exc).split())}."
        ) from None
    if root.getroottree().docinfo.internalDTD is not None:
        raise BadDocument("Documents with a DTD or entity declarations are not accepted.")
    if root.tag != f"{{{XSI}}}Event":
        raise BadDocument(f"The root element is not an XSI Event: {root.tag[:80]!r}.", 422)

    event_id = _text(root, "eventID")
    if not event_id:
        raise BadDocument("The event has no eventID.", 422)
    data = _child(root, "eventData")
    if data is None:
        raise BadDocument("The event has no eventData.", 422)
    event_type = _local_type(data.get(TYPE_ATTR))
    if not event_type:
        raise BadDocument("The eventData has no type.", 422)
    sequence_text = _text(root, "sequenceNumber")
    ascii_digits = sequence_text and sequence_text.isascii() and sequence_text.isdigit()
    sequence = int(sequence_text) if ascii_digits else None
    if sequence is not None and sequence > MAX_MS:
        sequence = None

    calls: list[Call] = []
    if event_type in CALL_EVENTS:
        nodes = data.findall(f"{{{XSI}}}call")
        group = _child(data, "calls")  # CallRedirectedEvent carries a list
        if group is not None:
            nodes += group.findall(f"{{{XSI}}}call")
        if not nodes:
            raise BadDocument(f"The {event_type} carries no call.", 422)
        calls = [_call(node) for node in nodes]
        if not _text(root, "targetId"):
            raise BadDocument("The call event has no targetId.", 422)

    return Event(
        event_id=event_id[:200],
        event_type=event_type[:100],
        subscription_id=_text(root, "subscriptionId"),
        target_id=_text(root, "targetId"),
        sequence=sequence,
        calls=tuple(calls),
    )
