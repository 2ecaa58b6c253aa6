"""Benchmark: hook intake, events acknowledged per second, each durably in the inbox.

The daemon runs as a subprocess; the load comes from a second process on loopback, bounded in
count and time: `wrk` (Debian package `wrk`) with a Lua script that posts a distinct event each
time (own eventID, callId and tracking id, so the processor does real work), or, when wrk is not
installed, bench_loadgen.py (an async httpx client; it spends ~1.4 ms of CPU per request on the
same two cores, so it measures itself more than the daemon). Baseline, same run, same disk: a
bare loop of single-row SQLite commits with the same durability settings (WAL,
synchronous=FULL) and the same body sizes. Prints our rate, the baseline's and our share of it;
then checks that every acknowledged event is in the inbox. Goal: >= 1,000/s sustained.

    .venv/bin/python bench/bench_intake.py [--seconds 15] [--concurrency 16] [--python-load]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import PYTHON, ROOT, event_bodies, machine, verdict

from tests.support.daemon import Daemon

GOAL = 1000.0


def baseline(folder: Path, bodies: list[bytes]) -> float:
    """Single-row commits per second, WAL + synchronous=FULL, as fast as one loop goes."""
    conn = sqlite3.connect(str(folder / "baseline.sqlite"), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE inbox (id INTEGER PRIMARY KEY, received_ms INTEGER, body BLOB)")
    t0 = time.perf_counter()
    for index, body in enumerate(bodies):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO inbox (received_ms, body) VALUES (?, ?)", [index, body])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return len(bodies) / elapsed


def load(url: str, count: int, concurrency: int, max_seconds: float, start_ms: int) -> dict:
    done = subprocess.run(
        [
            PYTHON,
            str(ROOT / "bench" / "bench_loadgen.py"),
            url,
            "--mode",
            "burst",
            "--count",
            str(count),
            "--concurrency",
            str(concurrency),
            "--max-seconds",
            str(max_seconds),
            "--start-ms",
            str(start_ms),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


# wrk: each request is the received or the released event of call n // 2, made distinct by
# substituting placeholders in two templates. Bounded by time (wrk -d), hence in count too.
WRK_SCRIPT = r"""
local templates = { [==[RECEIVED]==], [==[RELEASED]==] }
local sent = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/xml; charset=UTF-8"
request = function()
  local n = sent
  sent = sent + 1
  local call = math.floor(n / 2)
  local body = templates[n % 2 + 1]
  body = body:gsub("@@EVENT@@", "bench-ev-" .. n)
  body = body:gsub("@@CALL@@", tostring(call))
  body = body:gsub("@@PHONE@@", string.format("%07d", call % 10000000))
  return wrk.format(nil, nil, nil, body)
end
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    "JSON {\"requests\": %d, \"non2xx\": %d, \"errors\": %d, \"seconds\": %f, " ..
    "\"p50_ms\": %f, \"p99_ms\": %f}\n",
    summary.requests, errors.status, errors.connect + errors.read + errors.write + errors.timeout,
    summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def wrk_templates() -> tuple[str, str]:
    """A received and a released event with placeholders for what must differ per request."""
    received, released = event_bodies(2)
    out = []
    for body in (received, released):
        text = body.decode()
        text = re.sub(r"(<xsi:eventID>)[^<]+", r"\1@@EVENT@@", text)
        text = re.sub(r"(<xsi:callId>)callhalf-\d+", r"\1callhalf-@@CALL@@", text)
        text = re.sub(r"(<xsi:extTrackingId>)[^<]+", r"\1bench-session-@@CALL@@", text)
        text = re.sub(r"tel:\+7916\d{7}", "tel:+7916@@PHONE@@", text)
        out.append(text)
    return out[0], out[1]


def load_wrk(url: str, seconds: float, concurrency: int, folder: Path) -> dict:
    received, released = wrk_templates()
    script = folder / "post.lua"
    script.write_text(WRK_SCRIPT.replace("RECEIVED", received).replace("RELEASED", released))
    started = time.perf_counter()
    done = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{int(seconds)}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    )
    elapsed = time.perf_counter() - started  # wrk's start and stop included: a bit pessimistic
    line = next(x for x in done.stdout.splitlines() if x.startswith("JSON "))
    figures = json.loads(line[5:])
    acknowledged = figures["requests"] - figures["non2xx"] - figures["errors"]
    return {
        "tool": "wrk",
        "sent": figures["requests"],
        "acknowledged": acknowledged,
        "statuses": {"200": acknowledged, "other": figures["non2xx"]},
        "elapsed_s": round(elapsed, 3),
        "per_second": acknowledged / elapsed,
        "latency_ms": {"p50": figures["p50_ms"], "p99": figures["p99_ms"]},
    }


def inbox_rows(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM inbox").fetchone()[0])
    finally:
        conn.close()


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument(
        "--seconds", type=float, default=15.0, help="How long wrk posts (wrk's load only)."
    )
    parser.add_argument(
        "--python-load",
        action="store_true",
        help="Use the httpx load generator even when wrk is installed.",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-intake-") as tmp:
        folder = Path(tmp)
        base = baseline(folder, event_bodies(min(args.count, 10_000)))
        daemon = Daemon(folder / "home", settle=1.0)
        daemon.home.mkdir()
        daemon.start()
        try:
            # A short warm-up (connections, caches) outside the measured burst.
            load(daemon.public_url, 500, args.concurrency, 30, start_ms=1_700_000_000_000)
            if shutil.which("wrk") and not args.python_load:
                result = load_wrk(daemon.public_url, args.seconds, args.concurrency, folder)
            else:
                result = load(
                    daemon.public_url,
                    args.count,
                    args.concurrency,
                    args.max_seconds,
                    1_795_766_400_000,
                )
                result["tool"] = "bench_loadgen.py (httpx)"
        finally:
            daemon.stop()
        stored = inbox_rows(daemon.home / "register.sqlite")

    ours = float(result["per_second"])
    acked = int(result["acknowledged"]) + 500
    print(
        f"intake:   {ours:,.0f} events/s acknowledged ({result['acknowledged']:,} of "
        f"{result['sent']:,} in {result['elapsed_s']} s, {args.concurrency} connections, "
        f"load by {result['tool']}; "
        f"statuses {result['statuses']})"
    )
    print(f"baseline: {base:,.0f} single-row commits/s (WAL, synchronous=FULL)")
    print(f"share:    {ours / base:.0%} of the baseline")
    print(
        f"durable:  {stored:,} rows in the inbox for {acked:,} acknowledged "
        f"({'all there' if stored >= acked else 'MISSING ROWS'})"
    )
    print(f"goal:     >= {GOAL:,.0f}/s -> {verdict(ours >= GOAL and stored >= acked)}")
    return {
        "intake_per_s": ours,
        "baseline_per_s": base,
        "share": ours / base,
        "latency_ms": result["latency_ms"],
        "machine": machine(),
    }


if __name__ == "__main__":
    main()
