"""Benchmark: real events while thousands of sockets trickle their headers (slowloris).

The daemon runs as a subprocess on loopback with a header timeout longer than the run, so the
stalled sockets stay. This process opens `--stalled` sockets, sends each a partial request line
and headers, and adds one header byte to every socket each second (no secret needed for
this). Figures: answer time of `--events` real events posted one after another, first with no
stalled socket (the baseline, same run), then with all of them held; the daemon's resident
memory and open sockets both times. Goal: every event acknowledged with 200 while the sockets
are held, and p99 no worse than 2x the baseline's plus 5 ms. Bounded: at most 10,000 sockets,
and each phase stops after `--max-seconds`.

    .venv/bin/python bench/bench_stalled.py [--stalled 2000] [--events 300]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from bench_common import event_bodies, percentile, rss_mb, verdict

from tests.support.daemon import SECRET_PATH, Daemon, wait_for

PARTIAL = f"POST {SECRET_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".encode()


def sockets_held(pid: int) -> int:
    held = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            held += os.readlink(fd).startswith("socket:")
    return held


def post_all(daemon: Daemon, bodies: list[bytes], max_seconds: float) -> tuple[list[float], int]:
    """Answer times (ms) of the bodies posted one after another, and how many got 200."""
    times: list[float] = []
    ok = 0
    deadline = time.monotonic() + max_seconds
    headers = {"Content-Type": "application/xml; charset=UTF-8"}
    with httpx.Client(timeout=10) as client:
        for body in bodies:
            if time.monotonic() > deadline:
                break
            t0 = time.perf_counter()
            response = client.post(daemon.public_url, content=body, headers=headers)
            times.append((time.perf_counter() - t0) * 1000)
            ok += response.status_code == 200
    return times, ok


def summary(times: list[float]) -> str:
    return (
        f"p50 {percentile(times, 0.5):.1f} ms, p99 {percentile(times, 0.99):.1f} ms, "
        f"max {max(times):.1f} ms"
    )


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stalled", type=int, default=2000)
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    args = parser.parse_args()
    stalled_count = min(args.stalled, 10_000)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < stalled_count + 100:  # this process holds the sockets too
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, stalled_count + 1000), hard))
    bodies = event_bodies(2 * args.events + 50)
    stop = threading.Event()
    stalled: list[socket.socket] = []

    def trickle() -> None:
        while not stop.wait(1.0):
            for sock in stalled:
                with contextlib.suppress(OSError):
                    sock.send(b"a", socket.MSG_DONTWAIT)

    with tempfile.TemporaryDirectory(prefix="bench-stalled-") as tmp:
        home = Path(tmp)
        (home / "config.toml").write_text("header_timeout = 3600\n", encoding="utf-8")
        daemon = Daemon(home, settle=1.0).start()
        assert daemon.proc is not None
        pid = daemon.proc.pid
        trickler = threading.Thread(target=trickle, daemon=True)
        try:
            post_all(daemon, bodies[-50:], args.max_seconds)  # warm-up, not counted
            base_times, base_ok = post_all(daemon, bodies[: args.events], args.max_seconds)
            base_rss, base_sockets = rss_mb(pid), sockets_held(pid)
            t0 = time.monotonic()
            for _ in range(stalled_count):
                sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
                sock.sendall(PARTIAL)
                stalled.append(sock)
            wait_for(lambda: sockets_held(pid) >= stalled_count, timeout=args.max_seconds)
            opened_in = time.monotonic() - t0
            trickler.start()
            held = bodies[args.events : 2 * args.events]
            held_times, held_ok = post_all(daemon, held, args.max_seconds)
            held_rss, held_sockets = rss_mb(pid), sockets_held(pid)
            still = sum(1 for sock in stalled if _open(sock))
        finally:
            stop.set()
            for sock in stalled:
                sock.close()
            daemon.stop()
    goal = (
        held_ok == len(held_times) == args.events
        and percentile(held_times, 0.99) <= 2 * percentile(base_times, 0.99) + 5
    )
    print(
        f"stalled:  {stalled_count:,} sockets opened in {opened_in:.1f} s, "
        f"{still:,} still held at the end; daemon {held_sockets:,} sockets, {held_rss:.1f} MB"
    )
    print(f"held:     {held_ok} of {len(held_times)} events got 200; {summary(held_times)}")
    print(
        f"baseline: {base_ok} of {len(base_times)} events got 200 with no stalled socket; "
        f"{summary(base_times)}; daemon {base_sockets} sockets, {base_rss:.1f} MB"
    )
    print(f"goal:     all 200, p99 <= 2x baseline + 5 ms -> {verdict(goal)}")
    return {"held_ok": held_ok, "held_p99": percentile(held_times, 0.99)}


def _open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


if __name__ == "__main__":
    main()
