"""Benchmark: a missed call is visible in the register at most settle + 0.5 s after its last
release was acknowledged.

The daemon runs as a subprocess with --settle; this process posts each call's events over
loopback and polls the register (read-only, every 10 ms) for the call's row. Prints the median
and worst delay after the release, and the delay beyond the settle period. No baseline: the
goal is absolute (the settle period is a deliberate wait for hunt-group legs).

    .venv/bin/python bench/bench_visible.py [--calls 10] [--settle 2]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import GROUP, verdict

from beeline_missed.simulator import xsi_build
from tests.support.daemon import Daemon

SLACK = 0.5


def wait_row(db: Path, session: str, timeout: float) -> float:
    """Seconds until the call of `session` is in the register."""
    t0 = time.perf_counter()
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        while time.perf_counter() - t0 < timeout:
            found = conn.execute("SELECT 1 FROM calls WHERE session_key = ?", [session]).fetchone()
            if found:
                return time.perf_counter() - t0
            time.sleep(0.01)
    finally:
        conn.close()
    return float("inf")


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--settle", type=float, default=2.0)
    args = parser.parse_args()
    delays = []
    with tempfile.TemporaryDirectory(prefix="bench-visible-") as tmp:
        daemon = Daemon(Path(tmp), settle=args.settle)
        daemon.start()
        db = Path(tmp) / "register.sqlite"
        try:
            for index in range(args.calls):
                start_ms = int(time.time() * 1000) - 20_000
                steps = xsi_build.incoming_call(GROUP, f"+7916555{index:04d}", start_ms)
                *first, last = [xsi_build.event_document(s, subscription_id="b") for s in steps]
                for body in first:
                    assert daemon.post(body).status_code == 200
                assert daemon.post(last).status_code == 200
                delays.append(wait_row(db, steps[0].leg.ext_tracking_id, args.settle + 10))
        finally:
            daemon.stop()
    worst = max(delays)
    median = statistics.median(delays)
    goal = args.settle + SLACK
    print(
        f"visible:  median {median:.3f} s, worst {worst:.3f} s after the last release "
        f"(settle {args.settle:g} s, so {worst - args.settle:+.3f} s beyond it; {args.calls} calls)"
    )
    print(f"goal:     <= settle + {SLACK} s = {goal:g} s -> {verdict(worst <= goal)}")
    return {"median_s": median, "worst_s": worst, "settle": args.settle}


if __name__ == "__main__":
    main()
