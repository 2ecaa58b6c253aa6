"""The hook in a careless and hostile world: its register moved away under it, sockets that
never finish a request, compressed bodies. Each test runs the real daemon on loopback and talks
to it over real sockets."""

from __future__ import annotations

import gzip
import json
import os
import resource
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest

from beeline_missed.simulator import xsi_build
from tests.support.daemon import SECRET_PATH, Daemon, wait_for

GROUP = ["9001112201@ip.beeline.ru"]
SAMPLE = (Path(__file__).parent / "data" / "beeline-samples" / "missed-1-received.xml").read_bytes()
PARTIAL_REQUEST = (
    f"POST {SECRET_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/xml\r\n"
).encode()


def events(count: int, prefix: str) -> list[bytes]:
    """`count` distinct event documents (the first event of as many calls)."""
    start = int(time.time() * 1000) - 60_000
    return [
        xsi_build.event_document(
            xsi_build.incoming_call(GROUP, f"{prefix}{i:04d}", start + i * 1000)[0],
            subscription_id="s",
        )
        for i in range(count)
    ]


def post_encoded(daemon: Daemon, body: bytes, encoding: str) -> httpx.Response:
    headers = {"Content-Type": "application/xml", "Content-Encoding": encoding}
    return httpx.post(daemon.public_url, content=body, headers=headers, timeout=10)


def with_config(home: Path, **settings: object) -> Path:
    text = "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items())
    (home / "config.toml").write_text(text, encoding="utf-8")
    return home


def rejected(daemon: Daemon) -> list[dict]:
    result = daemon.cli("inbox", "--state", "rejected", "--json", "--limit", "100")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def connect(daemon: Daemon, first: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
    if first:
        sock.sendall(first)
    return sock


def still_open(sock: socket.socket) -> bool:
    """True when the daemon has neither closed the socket nor answered anything (no wait)."""
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)  # an answer, or b"" for a closed connection
    except BlockingIOError:  # nothing to read: still open, still waiting
        return True
    except OSError:
        return False
    return False


def read_until_closed(sock: socket.socket, timeout: float = 15.0) -> bytes:
    """Everything the daemon sends until it closes the connection; fails the test (timeout)
    when it keeps the connection open."""
    sock.settimeout(timeout)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except ConnectionResetError:
        pass
    return received


@contextmanager
def trickling(sockets: list[socket.socket], every: float = 0.5) -> Iterator[None]:
    """Send one more header byte on every socket now and then, as a slowloris client does,
    until the block ends. Sockets the daemon closed are skipped."""
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(every):
            for sock in sockets:
                with suppress(OSError):
                    sock.send(b"a", socket.MSG_DONTWAIT)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def sockets_held(pid: int) -> int:
    """How many sockets the process has open (its listening socket included)."""
    folder = Path(f"/proc/{pid}/fd")
    held = 0
    for fd in folder.iterdir():
        with suppress(OSError):  # closed meanwhile
            held += os.readlink(fd).startswith("socket:")
    return held


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


# -- the register moved or deleted under a running daemon ----------------------------------


def _move(db: Path) -> None:
    db.rename(db.with_name("moved.sqlite"))


def _delete(db: Path) -> None:
    db.unlink()


def _replace(db: Path) -> None:
    copy = db.with_name("copy.sqlite")
    shutil.copyfile(db, copy)
    os.replace(copy, db)  # e.g. a backup restored over it: same name, another file


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (_move, "moved or deleted"),
        (_delete, "moved or deleted"),
        (_replace, "replaced by another file"),
    ],
    ids=["moved", "deleted", "replaced"],
)
def test_register_moved_deleted_or_replaced_fails_loudly(home: Path, change, said: str) -> None:
    daemon = Daemon(home).start()
    try:
        first, second = events(2, "+7916200")
        assert daemon.post(first).status_code == 200
        change(home / "register.sqlite")
        # Noticed with nobody asking: the periodic check writes the line.
        wait_for(lambda: said in daemon.log(), timeout=15)
        lines = [line for line in daemon.log().splitlines() if said in line]
        assert len(lines) == 1 and "ERROR" in lines[0] and "503" in lines[0], lines
        health = httpx.get(daemon.base + "/healthz", timeout=10)
        assert health.status_code == 503 and said in health.text
        assert str(home) not in health.text  # the internet learns no paths
        response = daemon.post(second)
        assert response.status_code == 503 and said in response.text
        assert [line for line in daemon.log().splitlines() if said in line] == lines  # once
    finally:
        assert daemon.stop() == 0


def test_register_moved_back_is_accepted_again(home: Path) -> None:
    daemon = Daemon(home).start()
    db = home / "register.sqlite"
    try:
        db.rename(home / "moved.sqlite")
        wait_for(lambda: httpx.get(daemon.base + "/healthz", timeout=10).status_code == 503)
        (home / "moved.sqlite").rename(db)
        wait_for(daemon.healthy, timeout=15)
        assert daemon.post(events(1, "+7916201")[0]).status_code == 200
        assert "is back; accepting events again" in daemon.log()
    finally:
        assert daemon.stop() == 0


# -- sockets that never finish a request ---------------------------------------------------


def test_250_stalled_connections_do_not_lock_out_events(
    home: Path, sockets: list[socket.socket]
) -> None:
    """250 clients trickle their headers (no secret needed); real events still get 200."""
    # A long header timeout, so the stalled sockets are still there while events arrive.
    daemon = Daemon(with_config(home, header_timeout=300)).start()
    assert daemon.proc is not None
    try:
        sockets.extend(connect(daemon, PARTIAL_REQUEST + b"X-Slow: ") for _ in range(250))
        # The daemon really holds them (accepted, not waiting in the listen backlog).
        wait_for(lambda: sockets_held(daemon.proc.pid) > 250, timeout=15)
        with trickling(sockets):
            for body in events(20, "+7916300"):
                response = daemon.post(body)
                assert response.status_code == 200, response.text
        assert all(still_open(sock) for sock in sockets)
    finally:
        assert daemon.stop() == 0


def test_header_timeout_closes_silent_and_trickling_connections(
    home: Path, sockets: list[socket.socket]
) -> None:
    daemon = Daemon(with_config(home, header_timeout=1)).start()
    try:
        silent = connect(daemon)
        slow = connect(daemon, PARTIAL_REQUEST + b"X-Slow: ")
        # A kept-alive connection: one full request, then a next one that never completes.
        kept = connect(daemon, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        kept.settimeout(10)
        first = b""
        while not first.endswith(b"\r\n\r\nok"):
            first += kept.recv(4096)
        assert first.startswith(b"HTTP/1.1 200")
        kept.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
        sockets.extend([silent, slow, kept])
        with trickling([slow, kept], every=0.2):  # bytes keep coming, faster than the timeout
            for sock in sockets:
                answer = read_until_closed(sock)
                assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert daemon.post(events(1, "+7916400")[0]).status_code == 200
    finally:
        assert daemon.stop() == 0


def test_header_block_past_16_kib_is_refused_while_it_arrives(
    home: Path, sockets: list[socket.socket]
) -> None:
    """A header block that never ends is not collected without limit: 431 once it passes
    16 KiB, and the connection is closed."""
    daemon = Daemon(home).start()
    try:
        sock = connect(daemon, PARTIAL_REQUEST + b"X-Big: ")
        sockets.append(sock)
        for _ in range(40):  # up to 40 KiB, in pieces the daemon reads one by one
            sock.sendall(b"a" * 1024)
            time.sleep(0.02)
            if not still_open(sock):  # answered: stop before the daemon would reset
                break
        answer = read_until_closed(sock)
        assert answer.startswith(b"HTTP/1.1 431 "), answer
        assert daemon.healthy()
    finally:
        assert daemon.stop() == 0


def test_body_timeout_answers_408_and_keeps_it_aside(
    home: Path, sockets: list[socket.socket]
) -> None:
    daemon = Daemon(with_config(home, body_timeout=1)).start()
    try:
        sock = connect(daemon, PARTIAL_REQUEST + b"Content-Length: 5000\r\n\r\n" + SAMPLE[:100])
        sockets.append(sock)
        answer = read_until_closed(sock)
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"did not arrive within 1 s" in answer
        reasons = [row["reason"] for row in rejected(daemon)]
        assert reasons == ["The body did not arrive within 1 s."]
        assert daemon.post(events(1, "+7916500")[0]).status_code == 200
    finally:
        assert daemon.stop() == 0


def test_early_answer_closes_a_connection_whose_body_trickles(
    home: Path, sockets: list[socket.socket]
) -> None:
    """A 404 is given before any body is read; the connection must not stay open while the
    client trickles a body of a gigabyte."""
    daemon = Daemon(home).start()
    try:
        for path in ("/guess", "/healthz"):
            sock = connect(
                daemon,
                f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\nab".encode(),
            )
            sockets.append(sock)
            with trickling([sock]):
                answer = read_until_closed(sock)
            assert answer.startswith(b"HTTP/1.1 404 "), answer
    finally:
        assert daemon.stop() == 0


def test_events_limit_counts_posts_being_handled_not_connections(
    home: Path, sockets: list[socket.socket]
) -> None:
    daemon = Daemon(
        with_config(home, max_events_in_flight=3, header_timeout=300, body_timeout=300)
    ).start()
    try:
        bodies = iter(events(20, "+7916600"))
        # Connections still sending headers take no place.
        sockets.extend(connect(daemon, PARTIAL_REQUEST) for _ in range(50))
        assert daemon.post(next(bodies)).status_code == 200
        # Three posts whose bodies are being read take all three.
        slow_posts = [
            connect(daemon, PARTIAL_REQUEST + b"Content-Length: 5000\r\n\r\n<a>") for _ in range(3)
        ]
        sockets.extend(slow_posts)
        busy = wait_for(lambda: (r := daemon.post(next(bodies))).status_code == 503 and r)
        assert busy.headers["retry-after"] == "1" and "Too many events" in busy.text
        for sock in slow_posts:  # they give up: their places are free again
            sock.close()
        wait_for(lambda: daemon.post(SAMPLE).status_code == 200)
    finally:
        assert daemon.stop() == 0


def test_low_open_files_limit_is_raised_and_logged(
    home: Path, sockets: list[socket.socket]
) -> None:
    """Started with a soft limit of 256 open files, the daemon still holds 300 idle
    connections and answers a real event."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1024:
        pytest.skip(f"the hard limit on open files here is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        daemon = Daemon(home)
        daemon.start()  # the child inherits the low limit
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        sockets.extend(connect(daemon) for _ in range(300))
        assert daemon.post(events(1, "+7916700")[0]).status_code == 200
        assert all(still_open(sock) for sock in sockets)
        said = [line for line in daemon.log().splitlines() if "open files limit" in line]
        assert len(said) == 1 and "raised from 256" in said[0] and "room for about" in said[0]
    finally:
        assert daemon.stop() == 0


# -- compressed bodies -------------------------------------------------------------------------


def test_gzip_transfer_coding_is_refused_with_415_and_kept(
    home: Path, sockets: list[socket.socket]
) -> None:
    """The parser undoes `chunked` but leaves `gzip, chunked` compressed: refused the same."""
    daemon = Daemon(home).start()
    try:
        body = gzip.compress(SAMPLE)
        sock = connect(
            daemon,
            PARTIAL_REQUEST
            + b"Transfer-Encoding: gzip, chunked\r\n\r\n"
            + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body),
        )
        sockets.append(sock)
        sock.settimeout(10)
        reason = "Transfer-Encoding 'gzip' is not accepted; send the XML uncompressed."
        answer = b""
        while not answer.endswith(reason.encode()) and (chunk := sock.recv(4096)):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 415 "), answer
        assert [row["reason"] for row in rejected(daemon)] == [reason]
    finally:
        assert daemon.stop() == 0


@pytest.mark.parametrize(
    ("encoding", "coding"),
    [("gzip", "gzip"), ("GZIP", "GZIP"), ("br", "br"), ("deflate", "deflate"),
     ("identity, gzip", "gzip"), ("zstd", "zstd")],
)  # fmt: skip
def test_compressed_body_is_refused_with_415_and_kept(
    home: Path, encoding: str, coding: str
) -> None:
    daemon = Daemon(home).start()
    try:
        body = gzip.compress(SAMPLE) if "gzip" in encoding.lower() else SAMPLE
        response = post_encoded(daemon, body, encoding)
        assert response.status_code == 415, response.text
        reason = f"Content-Encoding '{coding}' is not accepted; send the XML uncompressed."
        assert response.text == reason
        assert [(row["reason"]) for row in rejected(daemon)] == [reason]
        assert reason in daemon.log()
        # The same document without the encoding is taken.
        assert post_encoded(daemon, SAMPLE, "identity").status_code == 200
    finally:
        assert daemon.stop() == 0


@pytest.mark.parametrize("name", ["header_timeout", "body_timeout", "max_events_in_flight"])
def test_zero_timeout_or_limit_is_refused_at_start(home: Path, name: str) -> None:
    """Zero would refuse every request; the daemon says so in one sentence and does not start."""
    daemon = Daemon(with_config(home, **{name: 0}))
    with pytest.raises(AssertionError, match=f"Setting '{name}' must be more than 0"):
        daemon.start()
