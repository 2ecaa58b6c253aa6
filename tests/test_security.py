"""Each claim of docs/security.md, checked against the real daemon and CLI where a test can."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from beeline_missed.cli import app
from beeline_missed.daemon import hook as hook_module
from beeline_missed.simulator import xsi_build
from beeline_missed.simulator.pbx import Simulator
from beeline_missed.store import Register
from tests.support.daemon import SECRET_PATH, Daemon, wait_for

TOKEN = "tok-5e1f0c9a7d3b4e2f8a6c1d0e9b7a5c3f"
SAMPLE = (Path(__file__).parent / "data" / "beeline-samples" / "missed-1-received.xml").read_bytes()
runner = CliRunner()


@pytest.fixture
def hook(home: Path) -> Iterator[Daemon]:
    """A daemon of the test's own: what one test posts never shows in another's inbox, so the
    tests hold in any order and alone."""
    proc = Daemon(home).start()
    yield proc
    proc.stop()


# -- the hook on the internet ----------------------------------------------------------------


def test_secret_path_is_compared_in_constant_time(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every request's path goes through hmac.compare_digest, never ==."""
    seen: list[tuple[bytes, bytes]] = []
    real = hook_module.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hook_module.hmac, "compare_digest", spy)
    intake = hook_module.Intake(tmp_path / "r.sqlite", 1024, threading.Event())
    hook_app = hook_module.build_app(intake, SECRET_PATH)

    async def post_both() -> list[int]:
        transport = httpx.ASGITransport(app=hook_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hook") as client:
            guessed = await client.post("/beeline/hook/guess", content=b"x")
            secret = await client.post(SECRET_PATH, content=b"<x/>")
        return [guessed.status_code, secret.status_code]

    try:
        assert asyncio.run(post_both()) == [404, 422]
    finally:
        intake.close()
    assert seen == [(b"/beeline/hook/guess", SECRET_PATH.encode()), (SECRET_PATH.encode(),) * 2]


WRONG = [
    ("POST", "/"),
    ("POST", "/beeline/hook"),
    ("POST", SECRET_PATH[:-1]),
    ("POST", SECRET_PATH + "0"),
    ("POST", SECRET_PATH + "/extra"),
    ("POST", SECRET_PATH.upper()),
    ("POST", SECRET_PATH.replace("/hook/", "/hook/%2E/")),
    ("POST", "/healthz"),
    ("GET", SECRET_PATH),
    ("PUT", SECRET_PATH),
    ("DELETE", SECRET_PATH),
    ("PATCH", SECRET_PATH),
    ("OPTIONS", SECRET_PATH),
    ("GET", "/.env"),
    ("GET", "/admin"),
]


def test_unknown_paths_and_methods_answer_the_same_404(hook: Daemon) -> None:
    answers = set()
    for method, path in WRONG:
        response = httpx.request(method, hook.base + path, content=SAMPLE, timeout=10)
        headers = {k: v for k, v in response.headers.items() if k != "date"}
        answers.add((response.status_code, response.text, json.dumps(headers, sort_keys=True)))
    assert len(answers) == 1, answers
    ((status, text, headers),) = answers
    assert status == 404 and text == "Not Found"
    assert "server" not in json.loads(headers)  # no version banner
    assert json.loads(hook.cli("inbox", "--json", "--limit", "100").stdout) == []


def test_body_size_limit_with_and_without_content_length(hook: Daemon) -> None:
    big = b"<a>" + b"x" * 300_000 + b"</a>"
    assert hook.post(big).status_code == 413

    def chunks() -> Iterator[bytes]:  # chunked: no Content-Length to trust
        for _ in range(40):
            yield b"x" * 10_000

    response = httpx.post(hook.public_url, content=chunks(), timeout=10)
    assert response.status_code == 413
    stored = json.loads(hook.cli("inbox", "--state", "rejected", "--json").stdout)
    assert all("larger than" in row["reason"] for row in stored[:2])


def test_header_size_limit(hook: Daemon) -> None:
    """Header blocks over 16 KiB are refused, on the secret path and elsewhere alike."""
    before = hook.cli("inbox", "--json", "--limit", "1000").stdout
    for path in (SECRET_PATH, "/guess"):
        for headers in ({"X-Padding": "a" * 20_000}, {f"X-{i}": "a" * 50 for i in range(400)}):
            response = httpx.post(hook.base + path, content=SAMPLE, headers=headers, timeout=10)
            assert response.status_code == 431
    try:  # far beyond: uvicorn drops it while reading
        response = httpx.post(hook.public_url, content=SAMPLE, headers={"X-P": "a" * 10**6})
        assert 400 <= response.status_code < 500
    except httpx.HTTPError:
        pass
    assert hook.cli("inbox", "--json", "--limit", "1000").stdout == before  # nothing stored
    assert hook.healthy()


def test_xml_never_reaches_the_network_or_files(hook: Daemon) -> None:
    """Entities, external DTDs and XInclude pointing at a listener we own: never contacted."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(1.0)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/x"
    bodies = [
        f'<!DOCTYPE x [<!ENTITY e SYSTEM "{url}">]><x>&e;</x>'.encode(),
        f'<!DOCTYPE x SYSTEM "{url}"><x/>'.encode(),
        f'<!DOCTYPE x [<!ENTITY % p SYSTEM "{url}"> %p;]><x/>'.encode(),
        SAMPLE.replace(
            b"<xsi:eventID>",
            f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{url}"/>'.encode()
            + b"<xsi:eventID>",
        ),
    ]
    try:
        for body in bodies:
            assert hook.post(body).status_code in (200, 400, 422)
        with pytest.raises(TimeoutError):
            listener.accept()
    finally:
        listener.close()


# -- the API token -----------------------------------------------------------------------------


def test_token_never_printed_nor_logged(home: Path) -> None:
    """The token goes to the PBX only: not to any CLI output, error, or the daemon log."""
    sim = Simulator(token=TOKEN)
    sim.start()
    daemon = Daemon(home, api_url=sim.base_url, token=TOKEN, extra_args=["--verbose"])
    outputs: list[str] = []
    try:

        def cli(*args: str) -> None:
            result = daemon.cli(*args)
            outputs.extend([result.stdout, result.stderr])

        cli("subscribe", "--pattern", "9001112201")
        cli("subscribe", "--pattern", "9001112201", "--json")
        daemon.start()
        steps = xsi_build.incoming_call(["9001112201@ip.beeline.ru"], "+79161234567", 1795766400000)
        for step in steps:
            daemon.post(xsi_build.event_document(step, subscription_id="s"))
        wait_for(daemon.calls)
        daemon.post(b"<broken")
        for args in (
            ["config", "show"],
            ["config", "show", "--json"],
            ["status"],
            ["status", "--json"],
            ["list", "--all", "--json"],
            ["inbox", "--json"],
            ["unsubscribe", "--all", "--json"],
            ["--help"],
        ):
            cli(*args)
        sim.fail("401")
        cli("subscribe", "--pattern", "9001112202")  # the PBX refuses the token
        cli("status")
    finally:
        daemon.stop()
        sim.stop()
    everything = "\n".join(outputs) + daemon.log()
    assert "********" in everything  # config show masks it
    assert TOKEN not in everything
    assert TOKEN[:12] not in everything and TOKEN[-12:] not in everything


def test_token_in_config_file_is_masked_and_file_is_private(home: Path) -> None:
    result = runner.invoke(app, ["config", "init"])
    assert result.exit_code == 0
    path = home / "config.toml"
    assert os.stat(path).st_mode & 0o777 == 0o600
    path.write_text(f'api_token = "{TOKEN}"\n')
    shown = runner.invoke(app, ["config", "show", "--json"])
    assert shown.exit_code == 0
    assert json.loads(shown.stdout)["api_token"] == "********"
    assert TOKEN not in shown.stdout + shown.stderr


# -- reports ------------------------------------------------------------------------------------

INJECTIONS = [
    "' OR 1=1 --",
    "'; DROP TABLE calls; --",
    '" OR ""="',
    "%' UNION SELECT name, 1, 1 FROM sqlite_master --",
    "Иванов') OR ('1'='1",
]


@pytest.mark.parametrize("value", INJECTIONS)
def test_report_filters_cannot_inject_sql(register: Register, value: str) -> None:
    for index, user in enumerate(["Иванов", "O'Brien"]):
        with register.transaction():
            call_id = register.calls.insert(
                session_key=f"s-{index}",
                phone=f"+7916000000{index}",
                phone_raw="",
                called_at="2026-11-27T08:00:00Z",
                line="201",
            )
        assert call_id is not None
        version = register.calls.get(call_id).version
        register.calls.save(
            call_id, version, status="called_back", result="", user=user, handled_at=None
        )
    for field, op in (("user", "="), ("client", "~"), ("result", "!="), ("line", "<")):
        result = runner.invoke(
            app,
            ["report", "--from", "2026-11-01", "--to", "2026-11-30",
             "--where", field, op, value, "--json"],
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        # The value is echoed among the filters, but nothing of the schema leaks into rows.
        assert "CREATE TABLE" not in result.stdout and "_migrations" not in result.stdout
        if op == "=":
            assert json.loads(result.stdout)["rows"] == []
    assert register.calls.count() == 2  # the table is still there, untouched
    # A literal quote is just a character: O'Brien is found, and only him.
    found = runner.invoke(
        app,
        ["report", "--from", "2026-11-01", "--to", "2026-11-30",
         "--where", "user", "=", "O'Brien", "--group-by", "user", "--json"],
    )  # fmt: skip
    assert found.exit_code == 0, found.stderr
    assert "O'Brien" in found.stdout and "Иванов" not in found.stdout


def test_report_group_by_unknown_field_is_refused(register: Register) -> None:
    result = runner.invoke(app, ["report", "--group-by", "user; DROP TABLE calls", "--json"])
    assert result.exit_code != 0
    assert result.stderr.startswith("Error: ") and "Traceback" not in result.stderr
    assert register.calls.count() == 0  # the table is still there, empty


def test_user_text_is_shown_literally_not_as_markup(home: Path) -> None:
    """A client's name or a card's text that looks like rich markup is printed as typed."""
    name = "[/red] Иванов [link=http://evil.example]клик[/link]"
    added = runner.invoke(app, ["clients", "add", name, "+79161234567"])
    assert added.exit_code == 0, added.stderr
    shown = runner.invoke(app, ["clients", "list"])
    assert shown.exit_code == 0, shown.stderr
    assert "[/red] Иванов" in shown.stdout and "[link=http://evil.example]" in shown.stdout
