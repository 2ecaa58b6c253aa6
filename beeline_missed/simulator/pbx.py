"""The project's own Beeline PBX simulator: a real HTTP server on loopback.

It speaks the portal API the client uses (subscriptions, abonents, call statistics), checks the
token, answers errors in the PBX's shape, grants at most `max_expires` seconds, expires
subscriptions on its own clock (then posts a SubscriptionTerminatedEvent), and delivers XSI event
documents (built by xsi_build) to every live subscription whose pattern matches the event's
abonent. Tests, the demo and the benchmarks drive it in-process (`Simulator`) or, when it runs in
another process, through the control endpoints under /_sim/.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from beeline_missed.simulator import shop, xsi_build
from beeline_missed.simulator.faults import FaultyStandIn
from beeline_missed.simulator.loopback import LoopbackServer
from beeline_missed.simulator.xsi_build import Step

API_PREFIX = "/apis/portal"
DEFAULT_TOKEN = "simulator-token"
SEQUENCE_WRAP = 2147483647
ENTERPRISE_ID = "MPBX_E_000001@ip.beeline.ru"
MAX_PAGE_SIZE = 100

# The demo shop's staff (simulator/shop.py): the abonents the simulated PBX lists.
DEFAULT_ABONENTS: list[dict[str, str]] = shop.ABONENTS

Document = bytes | Callable[[str, int], bytes]


def pbx_error(status: int, code: str, description: str) -> JSONResponse:
    return JSONResponse({"errorCode": code, "description": description}, status_code=status)


@dataclass
class SimSubscription:
    id: str
    pattern: str | None
    target_user_id: str | None  # None: every abonent
    subscription_type: str
    url: str
    expires: int  # granted seconds
    expires_at: float  # on the simulator's clock
    sequence: int = 0

    def next_sequence(self) -> int:
        self.sequence = 1 if self.sequence >= SEQUENCE_WRAP else self.sequence + 1
        return self.sequence


@dataclass
class Delivery:
    subscription_id: str
    url: str
    event_type: str
    status: int | None  # None: the receiver could not be reached
    at: float = field(default_factory=time.time)


class Simulator(FaultyStandIn):
    """A Beeline portal API and event source on 127.0.0.1.

    `start()` serves it in a background thread and returns the API base URL (use it as
    BEELINE_API_URL); `stop()` shuts it down. All state is kept in memory.
    """

    MODES = ("5xx", "401", "slow")  # fail()'s modes besides 'down'

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        abonents: Iterable[dict[str, str]] | None = None,
        max_expires: int | None = None,
        min_expires: int = 1,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        terminate_on_delete: bool = True,
        deliver_timeout: float = 5.0,
    ) -> None:
        self.token = token
        self.abonents = [dict(a) for a in (abonents or DEFAULT_ABONENTS)]
        self.max_expires = max_expires
        self.min_expires = min_expires
        self.host = host
        self.http = LoopbackServer(None, host, port, name="the PBX simulator")
        self.terminate_on_delete = terminate_on_delete
        self.subscriptions: dict[str, SimSubscription] = {}
        self.calls: list[dict[str, Any]] = []  # the call statistics
        # The steps played so far of each call session still going on, by extTrackingId, and
        # the sessions already listed: the PBX lists a call once, when it has ended.
        self._sessions: dict[str, list[Step]] = {}
        self._listed: set[str] = set()
        self.deliveries: list[Delivery] = []
        self.requests: list[tuple[str, str]] = []  # (method, path) of API calls, for tests
        # self.fault, and self._lock: it guards the state and is never held during outbound POSTs.
        self._init_faults()
        # Click-to-call: every request taken ({"abonent", "pattern", "phoneNumber"}), and how
        # the calls it places go: the client answers (or not) and talks this long; the events
        # are posted `click_pace` seconds apart, after the request was answered.
        self.click_calls: list[dict[str, str]] = []
        self.click_answered = True
        self.click_talk_ms = 60_000
        self.click_pace = 0.05
        self._offset = 0.0  # advance() moves the simulator's clock forward
        # Keeps deliveries in order; re-entrant because finding the matching subscriptions may
        # expire some, which posts their termination from inside a delivery.
        self._deliver_lock = threading.RLock()
        self._http = httpx.Client(timeout=deliver_timeout)
        self._reaper: threading.Thread | None = None
        self.app = self._build_app()

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self.http.port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}{API_PREFIX}"

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        """Serve in a background thread; returns the API base URL once it accepts connections."""
        self._stopping.clear()
        self._serve()
        if self._reaper is None or not self._reaper.is_alive():
            self._reaper = threading.Thread(target=self._reap_loop, name="sim-reaper", daemon=True)
            self._reaper.start()
        return self.base_url

    def stop(self) -> None:
        self._stop_serving()
        if self._reaper is not None:
            self._reaper.join(timeout=5)
            self._reaper = None
        self._http.close()

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- clock and faults -----------------------------------------------------------------

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> list[str]:
        """Move the simulator's clock forward; returns the ids of subscriptions that expired."""
        with self._lock:
            self._offset += seconds
        return self.expire_due()

    def fail(
        self,
        mode: str,
        *,
        count: int | None = None,
        status: int = 503,
        seconds: float = 5.0,
        methods: Iterable[str] | None = None,
    ) -> None:
        """Make the API misbehave: '5xx' (answer `status`), '401' (reject the token), 'slow'
        (answer after `seconds`) for the next `count` requests (all when None), only those of
        `methods` when given; or 'down' (stop listening for `seconds`; 0: until recover())."""
        self._inject(mode, count=count, status=status, seconds=seconds, methods=methods)

    # -- abonents and subscriptions -------------------------------------------------------

    def find_abonent(self, pattern: str) -> dict[str, str] | None:
        for abonent in self.abonents:
            if pattern in (abonent.get("userId"), abonent.get("phone"), abonent.get("extension")):
                return abonent
        return None

    def live_subscriptions(self) -> list[SimSubscription]:
        self.expire_due()
        with self._lock:
            return list(self.subscriptions.values())

    def subscribe(
        self, pattern: str | None, expires: int, subscription_type: str, url: str
    ) -> SimSubscription:
        """What PUT subscription does (also usable in-process)."""
        target = None
        if pattern:
            abonent = self.find_abonent(pattern)
            if abonent is None:
                raise LookupError(pattern)
            target = abonent["userId"]
        granted = max(self.min_expires, int(expires))
        if self.max_expires is not None:
            granted = min(granted, self.max_expires)
        sub = SimSubscription(
            id=str(uuid.uuid4()),
            pattern=pattern,
            target_user_id=target,
            subscription_type=subscription_type,
            url=url,
            expires=granted,
            expires_at=self.now() + granted,
        )
        with self._lock:
            self.subscriptions[sub.id] = sub
        return sub

    def terminate(self, subscription_id: str, notify: bool = True) -> bool:
        """End a subscription as an administrator would; posts SubscriptionTerminatedEvent."""
        with self._lock:
            sub = self.subscriptions.pop(subscription_id, None)
        if sub is None:
            return False
        if notify:
            self._post_terminated(sub)
        return True

    def expire_due(self) -> list[str]:
        now = self.now()
        with self._lock:
            due = [s for s in self.subscriptions.values() if s.expires_at <= now]
            for sub in due:
                del self.subscriptions[sub.id]
        for sub in due:
            self._post_terminated(sub)
        return [sub.id for sub in due]

    def _reap_loop(self) -> None:
        while not self._stopping.wait(0.1):
            with contextlib.suppress(Exception):  # the reaper must outlive a bad receiver
                self.expire_due()

    def _post_terminated(self, sub: SimSubscription) -> None:
        with self._deliver_lock:
            document = xsi_build.event_document(
                None,
                subscription_id=sub.id,
                target_id=sub.target_user_id or ENTERPRISE_ID,
                sequence=sub.next_sequence(),
                event_type=xsi_build.TERMINATED,
            )
            self._post(sub, document, xsi_build.TERMINATED)

    # -- events ---------------------------------------------------------------------------

    def matching(self, target_id: str) -> list[SimSubscription]:
        return [
            s
            for s in self.live_subscriptions()
            if s.target_user_id is None or s.target_user_id == target_id
        ]

    def deliver(self, target_id: str, document: Document, event_type: str = "") -> list[Delivery]:
        """POST one event about abonent `target_id` to every live subscription matching it.

        `document` is the XML bytes, or a function (subscription_id, sequence) -> bytes so each
        subscription gets its own envelope, as the PBX sends."""
        done = []
        with self._deliver_lock:
            for sub in self.matching(target_id):
                sequence = sub.next_sequence()
                body = document(sub.id, sequence) if callable(document) else document
                done.append(self._post(sub, body, event_type))
        return done

    def _post(self, sub: SimSubscription, body: bytes, event_type: str) -> Delivery:
        headers = {"Content-Type": "application/xml; charset=UTF-8"}
        try:
            status: int | None = self._http.post(sub.url, content=body, headers=headers).status_code
        except httpx.HTTPError:
            status = None  # like the PBX: the event is lost for this receiver
        delivery = Delivery(sub.id, sub.url, event_type, status)
        with self._lock:
            self.deliveries.append(delivery)
        return delivery

    def play(
        self,
        steps: Iterable[Step],
        *,
        deliver: bool = True,
        pace: float = 0.0,
        default_namespace: bool = False,
    ) -> list[Delivery]:
        """Deliver the events of calls in order and list each call in the statistics once it
        has ended (a call may be played in parts, over several plays).

        `deliver=False` records only the statistics, as for a call the PBX forwarded or rejected
        before it rang, or whose events were lost. `pace` waits between events (the demo)."""
        steps = list(steps)
        done: list[Delivery] = []
        if not deliver:
            self.record_statistics(steps)
            return done
        for index, step in enumerate(steps):
            if pace and index:
                time.sleep(pace)

            def build(sub_id: str, sequence: int, step: Step = step) -> bytes:
                return xsi_build.event_document(
                    step,
                    subscription_id=sub_id,
                    sequence=sequence,
                    default_namespace=default_namespace,
                )

            done += self.deliver(step.leg.target_id, build, step.event_type)
        # Listed after its events were sent: the PBX lists a call once it has ended.
        self.record_statistics(steps)
        return done

    # -- call statistics ------------------------------------------------------------------

    def record_statistics(self, steps: Iterable[Step]) -> list[dict[str, Any]]:
        """Take the steps of one play; list each call session that has ended by its last step,
        one record per session built from all its steps so far. Returns the records listed now.

        The steps are taken together, not one by one: a voice menu releases its leg before the
        hunt group it sends the call to rings, and that call has not ended."""
        with self._lock:
            touched: dict[str, None] = {}  # the sessions of these steps, in order
            for step in steps:
                session = step.leg.ext_tracking_id
                if session in self._listed:
                    continue  # an ended call is listed once, whatever of it comes later
                self._sessions.setdefault(session, []).append(step)
                touched[session] = None
            ended = [self._sessions.pop(s) for s in touched if _ended(self._sessions[s])]
            self._listed.update(played[0].leg.ext_tracking_id for played in ended)
        records = [self._statistics_record(played) for played in ended]
        with self._lock:
            self.calls.extend(records)
        return records

    def _statistics_record(self, steps: list[Step]) -> dict[str, Any]:
        """One session's record: who took it (or the first that rang)."""
        legs = [s.leg for s in steps]
        first = legs[0]
        # A person's answer: a voice menu's or a queue's greeting is not one.
        answered = next(
            (
                leg
                for leg in legs
                if leg.answer_ms is not None
                and (leg.acd_user_id or self.find_abonent(leg.target_id))
            ),
            None,
        )
        target = answered.target_id if answered else first.target_id
        abonent = self.find_abonent(target) or {"userId": target}
        remote = _digits(first.remote_address or first.remote_user_dn or "")
        outbound = first.personality in ("Originator", xsi_build.CLICK_TO_DIAL)
        release = max((leg.release_ms or 0) for leg in legs)
        duration = max(0, release - answered.answer_ms) if answered and release else 0
        # 'RECIEVED' (sic): the PBX's own spelling.
        status = "PLACED" if outbound else "RECIEVED" if answered else "MISSED"
        return {
            "id": str(uuid.uuid4()),
            "startDate": first.start_ms,
            "abonent": dict(abonent),
            "direction": "OUTBOUND" if outbound else "INBOUND",
            "status": status,
            "phone_from": abonent.get("phone", "") if outbound else remote,
            "phone_to": remote if outbound else abonent.get("phone", ""),
            "duration": duration,
        }

    def statistics(
        self, date_from_ms: int, date_to_ms: int, user_id: str | None = None
    ) -> list[dict[str, Any]]:
        with self._lock:
            calls = list(self.calls)
        chosen = [
            c
            for c in calls
            if date_from_ms <= c["startDate"] < date_to_ms
            and (user_id is None or c["abonent"].get("userId") == user_id)
        ]
        return sorted(chosen, key=lambda c: c["startDate"])

    # -- the HTTP app ---------------------------------------------------------------------

    def _build_app(self) -> Starlette:
        api = API_PREFIX
        routes = [
            Route(f"{api}/subscription", self._h_subscription, methods=["PUT", "GET", "DELETE"]),
            Route(f"{api}/abonents", self._h_abonents, methods=["GET"]),
            Route(f"{api}/abonents/{{pattern}}", self._h_abonent, methods=["GET"]),
            Route(f"{api}/abonents/{{pattern}}/call", self._h_click_to_call, methods=["POST"]),
            Route(f"{api}/v2/statistics", self._h_statistics, methods=["GET"]),
            Route("/_sim/state", self._c_state, methods=["GET"]),
            Route("/_sim/fault", self._c_fault, methods=["POST"]),
            Route("/_sim/recover", self._c_recover, methods=["POST"]),
            Route("/_sim/advance", self._c_advance, methods=["POST"]),
            Route("/_sim/terminate", self._c_terminate, methods=["POST"]),
            Route("/_sim/deliver", self._c_deliver, methods=["POST"]),
            Route("/_sim/call", self._c_call, methods=["POST"]),
            Route("/_sim/outgoing", self._c_outgoing, methods=["POST"]),
        ]
        return Starlette(routes=routes)

    async def _gate(self, request: Request) -> Response | None:
        """Faults, then the token: what every API request passes first."""
        with self._lock:
            self.requests.append((request.method, request.url.path))
        fault = self._take_fault(request.method)
        if fault is not None:
            if fault.mode == "slow":
                await asyncio.sleep(fault.seconds)
            elif fault.mode == "401":
                return pbx_error(401, "Unauthorized", "Authentication failed")
            elif fault.mode == "5xx":
                return pbx_error(fault.status, "ServiceUnavailable", "Service is unavailable")
        if request.headers.get("X-MPBX-API-AUTH-TOKEN") != self.token:
            return pbx_error(401, "Unauthorized", "Authentication failed")
        return None

    async def _h_subscription(self, request: Request) -> Response:
        if (denied := await self._gate(request)) is not None:
            return denied
        if request.method == "PUT":
            return await self._put_subscription(request)
        sub_id = request.query_params.get("subscriptionId")
        if not sub_id:
            return pbx_error(400, "BadRequest", "subscriptionId is required")
        await asyncio.to_thread(self.expire_due)
        with self._lock:
            sub = self.subscriptions.get(sub_id)
        if request.method == "GET":
            if sub is None:
                return pbx_error(400, "GetSubscriptionInfoError", "Subscription not found")
            remaining = max(0, math.ceil(sub.expires_at - self.now()))
            return JSONResponse(
                {
                    "subscriptionId": sub.id,
                    "targetType": "Abonent" if sub.target_user_id else "Enterprise",
                    "targetId": sub.target_user_id or ENTERPRISE_ID,
                    "subscriptionType": sub.subscription_type,
                    "expires": remaining,
                    "url": sub.url,
                }
            )
        if sub is None:
            return pbx_error(404, "SubscriptionNotFound", "Subscription not found")
        with self._lock:
            self.subscriptions.pop(sub_id, None)
        if self.terminate_on_delete:
            # The PBX tells the receiver afterwards, not before answering the DELETE.
            threading.Thread(target=self._post_terminated, args=(sub,), daemon=True).start()
        return Response(status_code=200)

    async def _put_subscription(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return pbx_error(400, "BadRequest", "Body is not JSON")
        if not isinstance(body, dict):
            return pbx_error(400, "BadRequest", "Body must be an object")
        expires, kind, url = body.get("expires"), body.get("subscriptionType"), body.get("url")
        pattern = body.get("pattern") or None
        if not isinstance(expires, int) or isinstance(expires, bool) or expires <= 0:
            return pbx_error(400, "BadRequest", "expires must be a positive number of seconds")
        if kind not in ("BASIC_CALL", "ADVANCED_CALL"):
            return pbx_error(400, "BadRequest", "subscriptionType must be BASIC_CALL")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return pbx_error(400, "BadRequest", "url must be an http(s) URL")
        try:
            sub = self.subscribe(pattern, expires, kind, url)
        except LookupError:
            return pbx_error(400, "BadRequest", f"Abonent {pattern} not found")
        return JSONResponse({"subscriptionId": sub.id, "expires": sub.expires})

    async def _h_abonents(self, request: Request) -> Response:
        if (denied := await self._gate(request)) is not None:
            return denied
        return JSONResponse(self.abonents)

    async def _h_abonent(self, request: Request) -> Response:
        if (denied := await self._gate(request)) is not None:
            return denied
        abonent = self.find_abonent(request.path_params["pattern"])
        if abonent is None:
            return pbx_error(404, "NotFound", "Abonent not found")
        return JSONResponse(abonent)

    async def _h_click_to_call(self, request: Request) -> Response:
        """POST abonents/{pattern}/call?phoneNumber=…: ring the abonent, then the number, and
        post the events of that outgoing call (personality Click-to-Dial) to the subscribers."""
        if (denied := await self._gate(request)) is not None:
            return denied
        pattern = request.path_params["pattern"]
        abonent = self.find_abonent(pattern)
        if abonent is None:
            return pbx_error(404, "NotFound", "Abonent not found")
        number = request.query_params.get("phoneNumber", "").strip()
        if not number or not _digits(number):
            return pbx_error(400, "BadRequest", "phoneNumber is required")
        with self._lock:
            self.click_calls.append(
                {"abonent": abonent["userId"], "pattern": pattern, "phoneNumber": number}
            )
        steps = xsi_build.click_to_call(
            abonent["userId"],
            number,
            int(self.now() * 1000),
            answered=self.click_answered,
            talk_ms=self.click_talk_ms,
        )
        # The PBX answers the request at once; the call goes on after it.
        threading.Thread(
            target=self.play, args=(steps,), kwargs={"pace": self.click_pace}, daemon=True
        ).start()
        return JSONResponse({"extTrackingId": steps[0].leg.ext_tracking_id})

    async def _h_statistics(self, request: Request) -> Response:
        if (denied := await self._gate(request)) is not None:
            return denied
        query = request.query_params
        try:
            date_from = _parse_stat_time(query["dateFrom"])
            date_to = _parse_stat_time(query["dateTo"])
            page = int(query.get("page", "0"))
            size = int(query.get("pageSize", str(MAX_PAGE_SIZE)))
        except (KeyError, ValueError):
            return pbx_error(400, "BadRequest", "dateFrom and dateTo (YYYY-MM-DDTHH:MM:SSZ) needed")
        if not 0 < size <= MAX_PAGE_SIZE or page < 0:
            return pbx_error(400, "BadRequest", f"pageSize must be 1..{MAX_PAGE_SIZE}")
        calls = self.statistics(date_from, date_to, query.get("userId"))
        return JSONResponse(calls[page * size : (page + 1) * size])

    # -- control endpoints (tests driving a simulator in another process) -----------------

    def state(self) -> dict[str, Any]:
        now = self.now()
        return {
            "subscriptions": [
                {
                    "subscriptionId": s.id,
                    "pattern": s.pattern,
                    "targetId": s.target_user_id,
                    "subscriptionType": s.subscription_type,
                    "url": s.url,
                    "expires": s.expires,
                    "remaining": round(s.expires_at - now, 3),
                }
                for s in self.live_subscriptions()
            ],
            "deliveries": len(self.deliveries),
            "calls": len(self.calls),
            "fault": self.fault.mode if self.fault else None,
            "click_calls": list(self.click_calls),
        }

    async def _c_state(self, request: Request) -> Response:
        return JSONResponse(await asyncio.to_thread(self.state))

    async def _c_fault(self, request: Request) -> Response:
        body = await _json(request)
        mode = str(body.get("mode", ""))
        if mode in ("", "none"):
            await asyncio.to_thread(self.recover)
            return JSONResponse({"fault": None})
        if mode not in ("5xx", "401", "slow", "down"):
            return pbx_error(400, "BadRequest", "mode must be 5xx, 401, slow, down or none")
        kwargs = {
            "count": body.get("count"),
            "status": int(body.get("status", 503)),
            "seconds": float(body.get("seconds", 5.0)),
            "methods": body.get("methods"),
        }
        if mode == "down":
            # Answer first, then stop listening.
            timer = threading.Timer(0.05, self.fail, args=(mode,), kwargs=kwargs)
            timer.daemon = True
            timer.start()
        else:
            self.fail(mode, **kwargs)
        return JSONResponse({"fault": mode})

    async def _c_recover(self, request: Request) -> Response:
        await asyncio.to_thread(self.recover)
        return JSONResponse({"fault": None})

    async def _c_advance(self, request: Request) -> Response:
        body = await _json(request)
        expired = await asyncio.to_thread(self.advance, float(body.get("seconds", 0)))
        return JSONResponse({"expired": expired})

    async def _c_terminate(self, request: Request) -> Response:
        body = await _json(request)
        found = await asyncio.to_thread(self.terminate, str(body.get("subscriptionId", "")))
        if not found:
            return pbx_error(404, "SubscriptionNotFound", "Subscription not found")
        return JSONResponse({"terminated": body.get("subscriptionId")})

    async def _c_deliver(self, request: Request) -> Response:
        body = await _json(request)
        target, xml = body.get("targetId"), body.get("xml")
        if not isinstance(target, str) or not isinstance(xml, str):
            return pbx_error(400, "BadRequest", "targetId and xml are required")
        done = await asyncio.to_thread(self.deliver, target, xml.encode("utf-8"))
        return JSONResponse(_deliveries(done))

    async def _c_call(self, request: Request) -> Response:
        """An incoming call: {"targets": [...], "caller": "+7..."|null, "answered_by": ...,
        "start_ms": ..., "ring_ms": ..., "call_type": "Network", "deliver": true, "kind":
        "plain"|"voice_menu"|"queue"|"pickup"|"busy"|"forwarded", "forward_to": "+7..."}."""
        body = await _json(request)
        try:
            steps = self._scenario(body)
        except (KeyError, TypeError, ValueError, AssertionError) as exc:
            return pbx_error(400, "BadRequest", f"bad call: {exc}")
        done = await asyncio.to_thread(
            self.play,
            steps,
            deliver=bool(body.get("deliver", True)),
            default_namespace=bool(body.get("default_namespace", False)),
        )
        return JSONResponse({"session": steps[0].leg.ext_tracking_id, **_deliveries(done)})

    def _scenario(self, body: dict[str, Any]) -> list[Step]:
        """The events of one call of the kind asked (xsi_build's scenarios)."""
        targets = [self._user_id(t) for t in body.get("targets") or []]
        caller = body.get("caller")
        start = int(body.get("start_ms") or time.time() * 1000)
        answered_by = self._user_id(body["answered_by"]) if body.get("answered_by") else None
        kind = str(body.get("kind", "plain"))
        if kind == "voice_menu":
            return xsi_build.voice_menu_call(
                caller, start, then=targets or None, answered_by=answered_by
            )
        if kind == "queue":
            return xsi_build.queue_call(targets, caller, start, answered_by=answered_by)
        if kind == "pickup":
            assert answered_by is not None, "a pickup needs answered_by (the colleague)"
            return xsi_build.pickup_call(targets[0], answered_by, str(caller), start)
        if kind == "busy":
            return xsi_build.busy_call(targets, caller, start)
        if kind == "forwarded":
            return xsi_build.forwarded_call(targets[0], caller, str(body["forward_to"]), start)
        if kind != "plain":
            raise ValueError(f"unknown kind {kind!r}")
        return xsi_build.incoming_call(
            targets,
            caller,
            start,
            answered_by=answered_by,
            ring_ms=int(body.get("ring_ms", 15_000)),
            call_type=str(body.get("call_type", "Network")),
        )

    async def _c_outgoing(self, request: Request) -> Response:
        body = await _json(request)
        try:
            steps = xsi_build.outgoing_call(
                self._user_id(body["abonent"]),
                body["callee"],
                int(body.get("start_ms") or time.time() * 1000),
                answered=bool(body.get("answered", True)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            return pbx_error(400, "BadRequest", f"bad call: {exc}")
        done = await asyncio.to_thread(self.play, steps, deliver=bool(body.get("deliver", True)))
        return JSONResponse({"session": steps[0].leg.ext_tracking_id, **_deliveries(done)})

    def _user_id(self, pattern: str) -> str:
        abonent = self.find_abonent(str(pattern))
        return abonent["userId"] if abonent else str(pattern)


def _deliveries(done: list[Delivery]) -> dict[str, Any]:
    return {
        "deliveries": [
            {"subscriptionId": d.subscription_id, "eventType": d.event_type, "status": d.status}
            for d in done
        ]
    }


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, json.JSONDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def _ended(steps: list[Step]) -> bool:
    """Whether a call session has ended: every leg seen has had its CallReleasedEvent (only
    that event carries a leg's releaseTime; a leg's `release_ms` is that event's data)."""
    legs = {(s.leg.target_id, s.leg.call_id) for s in steps}
    released = {
        (s.leg.target_id, s.leg.call_id) for s in steps if s.event_type == xsi_build.RELEASED
    }
    return legs == released


def _digits(address: str) -> str:
    return "".join(ch for ch in address if ch.isdigit())


def _parse_stat_time(text: str) -> int:
    """'YYYY-MM-DDTHH:MM:SSZ' (UTC) to epoch ms."""
    moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
