"""The PBX simulator: real HTTP both ways (its API, and the events it posts to a receiver)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from lxml import etree

from beeline_missed.pbx.api import PbxClient
from beeline_missed.simulator import xsi_build
from beeline_missed.simulator.pbx import Simulator

TOKEN = "sim-test-token"
XSI = "{http://schema.broadsoft.com/xsi}"
RECEPTION = "9001112201@ip.beeline.ru"
MASTER = "9001112202@ip.beeline.ru"


class Receiver:
    """A web hook on loopback that keeps every POST it gets: (path, parsed document)."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.path, self.headers["Content-Type"], body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def events(self, path: str | None = None) -> list[dict[str, str]]:
        out = []
        for got_path, _, body in list(self.received):
            if path is not None and got_path != path:
                continue
            root = etree.fromstring(body)
            data = root.find(f"{XSI}eventData")
            out.append(
                {
                    "path": got_path,
                    "type": data.get("{http://www.w3.org/2001/XMLSchema-instance}type"),
                    "subscriptionId": root.findtext(f"{XSI}subscriptionId"),
                    "targetId": root.findtext(f"{XSI}targetId"),
                    "sequence": root.findtext(f"{XSI}sequenceNumber"),
                    "eventID": root.findtext(f"{XSI}eventID"),
                }
            )
        return out

    def wait_for(self, count: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"got {len(self.received)} of {count} events"
            time.sleep(0.02)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.close()


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = Simulator(token=TOKEN, max_expires=3600)
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def client(sim: Simulator) -> Iterator[PbxClient]:
    with PbxClient(sim.base_url, TOKEN) as pbx:
        yield pbx


def test_events_go_to_matching_subscriptions_only(
    sim: Simulator, client: PbxClient, receiver: Receiver
) -> None:
    by_phone = client.subscribe("9001112201", 3600, "BASIC_CALL", receiver.url + "/a")
    by_ext = client.subscribe("202", 3600, "BASIC_CALL", receiver.url + "/b")
    everyone = client.subscribe(None, 3600, "BASIC_CALL", receiver.url + "/all")
    steps = xsi_build.incoming_call([RECEPTION, MASTER], "+79161234567", 1_795_766_400_000)
    done = sim.play(steps)
    # 2 legs x (received + released), each to its own subscription and to the all-abonents one.
    assert len(done) == 8 and all(d.status == 200 for d in done)
    a, b, everything = receiver.events("/a"), receiver.events("/b"), receiver.events("/all")
    assert [e["type"] for e in a] == ["xsi:CallReceivedEvent", "xsi:CallReleasedEvent"]
    assert {e["targetId"] for e in a} == {RECEPTION}
    assert {e["targetId"] for e in b} == {MASTER}
    assert {e["subscriptionId"] for e in a} == {by_phone["subscriptionId"]}
    assert {e["subscriptionId"] for e in b} == {by_ext["subscriptionId"]}
    assert {e["subscriptionId"] for e in everything} == {everyone["subscriptionId"]}
    assert [e["sequence"] for e in everything] == ["1", "2", "3", "4"]
    assert len({e["eventID"] for e in receiver.events()}) == 8
    _, content_type, _ = receiver.received[0]
    assert content_type == "application/xml; charset=UTF-8"


def test_deliver_raw_document(sim: Simulator, client: PbxClient, receiver: Receiver) -> None:
    client.subscribe("201", 3600, "BASIC_CALL", receiver.url + "/raw")
    client.subscribe("203", 3600, "BASIC_CALL", receiver.url + "/other")
    (step,) = xsi_build.incoming_call([RECEPTION], "+79161234567", 1)[:1]
    document = xsi_build.event_document(step, subscription_id="fixed", default_namespace=True)
    done = sim.deliver(RECEPTION, document)
    assert [d.status for d in done] == [200]
    assert receiver.received == [("/raw", "application/xml; charset=UTF-8", document)]


def test_expiry_on_its_own_clock_posts_termination(
    sim: Simulator, client: PbxClient, receiver: Receiver
) -> None:
    sub = client.subscribe("201", 600, "BASIC_CALL", receiver.url + "/t")
    assert sim.advance(599) == []
    assert sim.advance(2) == [sub["subscriptionId"]]
    (event,) = receiver.events("/t")
    assert event["type"] == "xsi:SubscriptionTerminatedEvent"
    assert event["subscriptionId"] == sub["subscriptionId"]
    assert sim.live_subscriptions() == []
    # Events for that abonent reach nobody now.
    assert sim.play(xsi_build.incoming_call([RECEPTION], "+79160000001", 1)) == []


def test_short_real_expiry_is_reaped_in_the_background(receiver: Receiver) -> None:
    with Simulator(token=TOKEN, max_expires=1) as sim, PbxClient(sim.base_url, TOKEN) as pbx:
        sub = pbx.subscribe("205", 3600, "BASIC_CALL", receiver.url + "/short")
        assert sub["expires"] == 1
        receiver.wait_for(1)
    assert receiver.events()[0]["subscriptionId"] == sub["subscriptionId"]


def test_delete_notifies_afterwards(sim: Simulator, client: PbxClient, receiver: Receiver) -> None:
    sub = client.subscribe("204", 3600, "BASIC_CALL", receiver.url + "/d")
    client.unsubscribe(sub["subscriptionId"])
    receiver.wait_for(1)
    assert receiver.events()[0]["type"] == "xsi:SubscriptionTerminatedEvent"


def test_statistics_record_calls_played(sim: Simulator) -> None:
    sim.play(xsi_build.incoming_call([RECEPTION, MASTER], "+79161112233", 1000, answered_by=MASTER))
    sim.play(xsi_build.incoming_call([RECEPTION], None, 2000), deliver=False)
    sim.play(xsi_build.outgoing_call(RECEPTION, "+79161112233", 3000))
    answered, hidden, outgoing = sim.statistics(0, 10_000)
    assert (answered["status"], answered["direction"]) == ("RECIEVED", "INBOUND")
    assert answered["abonent"]["userId"] == MASTER
    assert answered["phone_from"] == "79161112233" and answered["phone_to"] == "9001112202"
    assert (hidden["status"], hidden["phone_from"]) == ("MISSED", "")
    assert (outgoing["status"], outgoing["direction"]) == ("PLACED", "OUTBOUND")
    assert outgoing["phone_to"] == "79161112233"


def test_control_endpoints_drive_it_over_http(
    sim: Simulator, client: PbxClient, receiver: Receiver
) -> None:
    sub = client.subscribe(None, 3600, "BASIC_CALL", receiver.url + "/c")
    control = httpx.Client(base_url=sim.root_url)
    answer = control.post(
        "/_sim/call", json={"targets": ["201", "202"], "caller": "+79161234567"}
    ).json()
    assert len(answer["deliveries"]) == 4
    assert {e["targetId"] for e in receiver.events()} == {RECEPTION, MASTER}
    assert control.get("/_sim/state").json()["calls"] == 1
    assert control.post("/_sim/fault", json={"mode": "5xx", "count": 1}).status_code == 200
    assert (
        httpx.get(sim.base_url + "/abonents", headers={"X-MPBX-API-AUTH-TOKEN": TOKEN}).status_code
        == 503
    )
    assert len(client.abonents()) == 5
    expired = control.post("/_sim/advance", json={"seconds": 3601}).json()["expired"]
    assert expired == [sub["subscriptionId"]]
    assert control.get("/_sim/state").json()["subscriptions"] == []
    control.close()


def test_api_errors_come_in_the_pbx_shape(sim: Simulator) -> None:
    api = httpx.Client(base_url=sim.base_url, headers={"X-MPBX-API-AUTH-TOKEN": TOKEN})
    bad = api.put("/subscription", json={"expires": 60, "subscriptionType": "X", "url": "ftp://"})
    assert bad.status_code == 400 and bad.json()["errorCode"] == "BadRequest"
    unknown = api.get("/subscription", params={"subscriptionId": "nope"})
    assert unknown.json() == {
        "errorCode": "GetSubscriptionInfoError",
        "description": "Subscription not found",
    }
    no_token = httpx.get(sim.base_url + "/abonents")
    assert no_token.status_code == 401 and no_token.json()["errorCode"] == "Unauthorized"
    big = api.get(
        "/v2/statistics",
        params={
            "dateFrom": "2026-11-27T00:00:00Z",
            "dateTo": "2026-11-28T00:00:00Z",
            "pageSize": 101,
        },
    )
    assert big.status_code == 400
    api.close()


def test_simulator_command_runs_as_a_process() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "beeline_missed",
            "simulator",
            "--token",
            TOKEN,
            "--max-expires",
            "90",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("BEELINE_API_URL=http://127.0.0.1:"), line
        with PbxClient(line.split("=", 1)[1], TOKEN) as pbx:
            assert pbx.subscribe("201", 3600, "BASIC_CALL", "http://127.0.0.1:9/h")["expires"] == 90
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0, proc.stderr.read()


def test_expiry_found_while_delivering_does_not_deadlock(
    sim: Simulator, client: PbxClient, receiver: Receiver
) -> None:
    short = client.subscribe("201", 600, "BASIC_CALL", receiver.url + "/short")
    client.subscribe("201", 3600, "BASIC_CALL", receiver.url + "/long")
    with sim._lock:
        sim._offset += 601  # past the short one's expiry, without reaping it yet
    step = xsi_build.incoming_call([RECEPTION], "+79161234567", 1)[0]
    done = sim.deliver(RECEPTION, xsi_build.event_document(step, subscription_id="x"))
    assert [d.url for d in done] == [receiver.url + "/long"]
    assert [e["subscriptionId"] for e in receiver.events("/short")] == [short["subscriptionId"]]


def test_control_endpoint_plays_menus_queues_and_the_rest(
    sim: Simulator, client: PbxClient, receiver: Receiver
) -> None:
    client.subscribe(None, 3600, "BASIC_CALL", receiver.url + "/c")
    control = httpx.Client(base_url=sim.root_url)
    calls = {
        "voice_menu": {"targets": []},
        "queue": {"targets": ["202", "203"], "answered_by": "203"},
        "pickup": {"targets": ["201"], "answered_by": "202"},
        "busy": {"targets": ["202"]},
        "forwarded": {"targets": ["204"], "forward_to": "+79037654321"},
    }
    for kind, extra in calls.items():
        answer = control.post("/_sim/call", json={"caller": "+79161234567", "kind": kind, **extra})
        assert answer.status_code == 200, (kind, answer.text)
    targets = {e["targetId"] for e in receiver.events()}
    # The whole-PBX subscription sees the services' legs too.
    assert {xsi_build.VOICE_MENU_ID, xsi_build.QUEUE_ID} <= targets
    bad = control.post("/_sim/call", json={"caller": "+79161234567", "kind": "teleport"})
    assert bad.status_code == 400 and "unknown kind" in bad.json()["description"]
    control.close()


# The statistics list a call once it has ended, as the PBX does (shared/beeline: v2/statistics).
STAT_FROM, STAT_TO = (
    datetime(2026, 11, 27, 8, 0, tzinfo=UTC),
    datetime(2026, 11, 27, 10, 0, tzinfo=UTC),
)
STAT_T0 = int(datetime(2026, 11, 27, 9, 0, tzinfo=UTC).timestamp() * 1000)


def test_statistics_leave_out_a_call_still_ringing_or_waiting_in_the_queue(
    sim: Simulator, client: PbxClient
) -> None:
    ringing = xsi_build.incoming_call([RECEPTION, MASTER], "+79161112233", STAT_T0)
    queued = xsi_build.queue_call([MASTER], "+79031112233", STAT_T0 + 1000)
    sim.play(ringing[:2])  # both phones ring
    sim.play(queued[:-1])  # the agent rang and was released; the caller still hears music
    assert client.statistics(STAT_FROM, STAT_TO) == []
    sim.play(ringing[2:])
    sim.play(queued[-1:])  # the caller hangs up in the queue
    listed = client.statistics(STAT_FROM, STAT_TO)
    assert [(c["phone_from"], c["status"]) for c in listed] == [
        ("79161112233", "MISSED"),
        ("79031112233", "MISSED"),
    ]


def test_statistics_list_a_session_played_in_two_plays_once_with_its_final_status(
    sim: Simulator, client: PbxClient
) -> None:
    steps = xsi_build.incoming_call(
        [RECEPTION, MASTER], "+79161112233", STAT_T0, answered_by=MASTER
    )
    sim.play(steps[:2])  # it rings
    sim.play(steps[2:])  # then the master answers, talks and hangs up
    (call,) = client.statistics(STAT_FROM, STAT_TO)
    assert (call["status"], call["abonent"]["userId"]) == ("RECIEVED", MASTER)
    assert call["duration"] == 60_000


def test_statistics_list_an_ended_session_once_whatever_of_it_is_played_later(
    sim: Simulator, client: PbxClient
) -> None:
    steps = xsi_build.incoming_call([RECEPTION], "+79161112233", STAT_T0)
    sim.play(steps)
    sim.play(steps[-1:])  # its release again (a PBX would not send it twice)
    (call,) = client.statistics(STAT_FROM, STAT_TO)
    assert call["status"] == "MISSED"


def test_statistics_take_a_voice_menu_handing_the_call_on_as_one_call(
    sim: Simulator, client: PbxClient
) -> None:
    # The menu releases its leg before the hunt group rings: the call has not ended there.
    steps = xsi_build.voice_menu_call(
        "+79161112233", STAT_T0, then=[RECEPTION, MASTER], answered_by=MASTER
    )
    sim.play(steps)
    (call,) = client.statistics(STAT_FROM, STAT_TO)
    assert (call["status"], call["abonent"]["userId"]) == ("RECIEVED", MASTER)
