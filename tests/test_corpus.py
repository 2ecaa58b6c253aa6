"""Replays every document of tests/corpus/ against one real daemon: each gets the 4xx its name
says, is kept in the inbox as rejected with the reason it was answered, and the daemon lives
on to register a real call afterwards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from beeline_missed.simulator import xsi_build
from tests.support.daemon import Daemon, wait_for

CORPUS = Path(__file__).parent / "corpus"
DOCUMENTS = sorted(p for p in CORPUS.iterdir() if p.name[:3].isdigit())
GENERATED = {"413-oversize-body.xml": b"<a>" + b"x" * 300_000 + b"</a>"}
CASES = [(p.name, p.read_bytes()) for p in DOCUMENTS] + list(GENERATED.items())


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    home = tmp_path_factory.mktemp("corpus-home")
    proc = Daemon(home).start()
    yield proc
    proc.stop()


def newest_rejected(daemon: Daemon) -> dict:
    result = daemon.cli("inbox", "--state", "rejected", "--limit", "1", "--json")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    return row


def test_the_corpus_covers_every_kind_of_hostile_input() -> None:
    names = " ".join(name for name, _ in CASES)
    for kind in (
        "malformed",
        "encoding",
        "external-entity",
        "billion-laughs",
        "deep-nesting",
        "huge-number",
        "missing",
        "text-start-time",  # a wrong type
        "not-xsi",
        "json",
        "empty",
        "oversize",
    ):
        assert kind in names, kind


@pytest.mark.parametrize(("name", "body"), CASES, ids=[name for name, _ in CASES])
def test_hostile_document_is_refused_and_kept(daemon: Daemon, name: str, body: bytes) -> None:
    response = daemon.post(body)
    assert response.status_code == int(name[:3]), response.text
    reason = response.text
    assert reason.endswith(".") and "\n" not in reason  # one sentence, says why
    assert "Traceback" not in reason
    row = newest_rejected(daemon)
    assert row["reason"] == reason
    assert daemon.healthy()


def test_daemon_lives_on_after_the_corpus(daemon: Daemon) -> None:
    for _, body in CASES:  # all of it once more, back to back
        assert 400 <= daemon.post(body).status_code < 500
    rejected = daemon.cli("inbox", "--state", "rejected", "--limit", "1000", "--json")
    assert len(json.loads(rejected.stdout)) >= len(CASES)
    steps = xsi_build.incoming_call(["9001112201@ip.beeline.ru"], "+79161234567", 1795766400000)
    for step in steps:
        assert daemon.post(xsi_build.event_document(step, subscription_id="s")).status_code == 200
    (call,) = wait_for(daemon.calls)
    assert call["phone"] == "+79161234567"
    # Nothing hostile leaked into the register or was processed as an event.
    assert "root:" not in daemon.cli("inbox", "--json", "--limit", "1000").stdout
