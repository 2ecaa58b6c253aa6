"""Benchmark: hook answer latency at a steady 200 events/s (p50, p99, max).

The daemon runs as a subprocess; a second process (bench_loadgen.py) posts at a fixed rate, open
loop: each request's latency counts from the moment it was due, so a stalled server cannot
hide its queue. Every answer means the event is durably in the inbox. Goal: p99 <= 20 ms. No
baseline: the figure is an absolute service level.

    .venv/bin/python bench/bench_latency.py [--rate 200] [--seconds 15]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import PYTHON, ROOT, verdict

from tests.support.daemon import Daemon

GOAL_P99_MS = 20.0


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    count = int(args.rate * args.seconds)
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        daemon = Daemon(Path(tmp), settle=1.0)
        daemon.start()
        try:
            done = subprocess.run(
                [
                    PYTHON,
                    str(ROOT / "bench" / "bench_loadgen.py"),
                    daemon.public_url,
                    "--mode",
                    "rate",
                    "--rate",
                    str(args.rate),
                    "--count",
                    str(count),
                    "--concurrency",
                    "8",
                    "--max-seconds",
                    str(args.seconds * 3),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
        finally:
            daemon.stop()
    result = json.loads(done.stdout)
    lat = result["latency_ms"]
    print(
        f"latency:  p50 {lat['p50']} ms, p90 {lat['p90']} ms, p99 {lat['p99']} ms, "
        f"max {lat['max']} ms at {args.rate:g} events/s for {args.seconds:g} s "
        f"({result['acknowledged']:,} of {result['sent']:,} acknowledged; {result['statuses']})"
    )
    print(f"goal:     p99 <= {GOAL_P99_MS:g} ms -> {verdict(lat['p99'] <= GOAL_P99_MS)}")
    return {"latency_ms": lat, "rate": args.rate}


if __name__ == "__main__":
    main()
