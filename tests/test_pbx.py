"""The PBX client over real HTTP against the simulator on loopback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from beeline_missed.config import load
from beeline_missed.errors import UserError
from beeline_missed.pbx.api import (
    PbxAuthError,
    PbxClient,
    PbxError,
    PbxNotFound,
    PbxServerError,
    PbxTimeout,
    PbxUnreachable,
)
from beeline_missed.simulator import xsi_build
from beeline_missed.simulator.pbx import Simulator

TOKEN = "t0ken-5ecret-value-42"
HOOK = "http://127.0.0.1:9/hook/secret"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = Simulator(token=TOKEN, max_expires=600)
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def client(sim: Simulator) -> Iterator[PbxClient]:
    with PbxClient(sim.base_url, TOKEN, timeout=3) as pbx:
        yield pbx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_subscribe_keeps_granted_expires_and_get_delete(client: PbxClient, sim: Simulator) -> None:
    answer = client.subscribe("201", 3600, "BASIC_CALL", HOOK)
    assert answer["expires"] == 600  # the simulator grants at most 600
    info = client.get_subscription(answer["subscriptionId"])
    assert info["targetId"] == "9001112201@ip.beeline.ru"
    assert info["subscriptionType"] == "BASIC_CALL"
    assert info["url"] == HOOK
    assert 0 < info["expires"] <= 600
    client.unsubscribe(answer["subscriptionId"])
    with pytest.raises(PbxNotFound) as caught:
        client.get_subscription(answer["subscriptionId"])
    assert caught.value.error_code == "GetSubscriptionInfoError"
    with pytest.raises(PbxNotFound):
        client.unsubscribe(answer["subscriptionId"])


def test_subscribe_without_pattern_sends_none(client: PbxClient, sim: Simulator) -> None:
    answer = client.subscribe(None, 120, "ADVANCED_CALL", HOOK)
    assert answer["expires"] == 120
    (live,) = sim.live_subscriptions()
    assert live.pattern is None and live.subscription_type == "ADVANCED_CALL"


def test_bad_request_is_one_pbx_error_with_its_code(client: PbxClient) -> None:
    with pytest.raises(PbxError) as caught:
        client.subscribe("999", 3600, "BASIC_CALL", HOOK)
    assert type(caught.value) is PbxError
    assert caught.value.status == 400
    assert "BadRequest" in str(caught.value) and "999" in str(caught.value)


def test_abonents_and_one_abonent(client: PbxClient) -> None:
    abonents = client.abonents()
    assert [a["extension"] for a in abonents] == ["201", "202", "203", "204", "205"]
    assert client.abonent("9001112204")["lastName"] == "Иванова"
    with pytest.raises(PbxNotFound):
        client.abonent("777")


def test_rejected_token_is_auth_error_without_the_token(sim: Simulator) -> None:
    wrong = "wrong-token-do-not-print"
    with PbxClient(sim.base_url, wrong) as pbx, pytest.raises(PbxAuthError) as caught:
        pbx.abonents()
    message = str(caught.value)
    assert "rejected the API token" in message
    assert wrong not in message and wrong not in repr(pbx)
    assert isinstance(caught.value, UserError)


def test_token_revoked_midway(client: PbxClient, sim: Simulator) -> None:
    sim.fail("401", count=1)
    with pytest.raises(PbxAuthError):
        client.subscribe("201", 3600, "BASIC_CALL", HOOK)
    assert client.subscribe("201", 3600, "BASIC_CALL", HOOK)["expires"] == 600


def test_unreachable_host(sim: Simulator) -> None:
    url = f"http://127.0.0.1:{free_port()}/apis/portal"
    with PbxClient(url, TOKEN, timeout=2) as pbx, pytest.raises(PbxUnreachable) as caught:
        pbx.abonents()
    assert "Cannot reach the PBX at 127.0.0.1:" in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert caught.value.retryable


def test_server_error_then_recovers(client: PbxClient, sim: Simulator) -> None:
    sim.fail("5xx", count=1, status=503)
    with pytest.raises(PbxServerError) as caught:
        client.subscribe("202", 3600, "BASIC_CALL", HOOK)
    assert "HTTP 503" in str(caught.value) and caught.value.retryable
    assert client.subscribe("202", 3600, "BASIC_CALL", HOOK)["expires"] == 600


def test_timeout(sim: Simulator) -> None:
    sim.fail("slow", seconds=1.5)
    with PbxClient(sim.base_url, TOKEN, timeout=0.3) as pbx, pytest.raises(PbxTimeout) as caught:
        pbx.abonents()
    assert "did not answer in time" in str(caught.value)


def test_simulator_down_is_unreachable(client: PbxClient, sim: Simulator) -> None:
    sim.fail("down", seconds=0)
    with pytest.raises(PbxUnreachable):
        client.abonents()
    sim.recover()
    assert len(client.abonents()) == 5


def test_statistics_pages_until_empty(client: PbxClient, sim: Simulator) -> None:
    base = int(datetime(2026, 11, 27, 9, 0, tzinfo=UTC).timestamp() * 1000)
    for n in range(7):
        sim.play(
            xsi_build.incoming_call(["9001112201@ip.beeline.ru"], f"+7916000000{n}", base + n),
            deliver=False,
        )
    sim.play(
        xsi_build.incoming_call(
            ["9001112202@ip.beeline.ru"], "+79160000099", base + 50, answered_by=None
        ),
        deliver=False,
    )
    start, end = datetime(2026, 11, 27, 8, 0, tzinfo=UTC), datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    pages = list(client.iter_statistics(start, end, page_size=3))
    assert [len(p) for p in pages] == [3, 3, 2]
    items = [item for page in pages for item in page]
    assert [i["phone_from"] for i in items][:2] == ["79160000000", "79160000001"]
    assert {i["status"] for i in items} == {"MISSED"}
    assert {i["direction"] for i in items} == {"INBOUND"}
    only = client.statistics(start, end, 0, 100, user_id="9001112202@ip.beeline.ru")
    assert [i["phone_from"] for i in only] == ["79160000099"]
    assert client.statistics(start, end, 5, 100) == []


def test_from_settings_requires_token() -> None:
    with pytest.raises(UserError, match="BEELINE_API_TOKEN"):
        PbxClient.from_settings(load())
