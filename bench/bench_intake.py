"""Benchmark: hook intake, events acknowledged per second, each durably in the inbox.

The daemon runs as a subprocess; the load comes from a second process (bench_loadgen.py, an
async httpx client) on loopback, bounded in count and time. Baseline, same run, same disk: a
bare loop of single-row SQLite commits with the same durability settings (WAL,
synchronous=FULL) and the same body sizes. Prints our rate, the baseline's and our share of it;
then checks that every acknowledged event is in the inbox. Goal: >= 1,000/s sustained.

    .venv/bin/python bench/bench_intake.py [--count 20000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import PYTHON, ROOT, event_bodies, machine, verdict

from tests.daemon_harness import Daemon

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
            result = load(
                daemon.public_url, args.count, args.concurrency, args.max_seconds, 1_795_766_400_000
            )
        finally:
            daemon.stop()
        stored = inbox_rows(daemon.home / "register.sqlite")

    ours = float(result["per_second"])
    acked = int(result["acknowledged"]) + 500
    print(
        f"intake:   {ours:,.0f} events/s acknowledged ({result['acknowledged']:,} of "
        f"{result['sent']:,} in {result['elapsed_s']} s, {args.concurrency} connections; "
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
