"""Benchmark: the daemon's resident memory after 100,000 events.

The daemon runs as a subprocess; a second process (bench_loadgen.py) posts 100,000 events
(50,000 unanswered calls, so the processor registers 50,000 missed calls too). RSS (VmRSS) is
read before the load, right after it, and once the processor has drained the inbox. Baseline,
same run: the RSS of the idle daemon just started. Goal: <= 80 MB.

    .venv/bin/python bench/bench_rss.py [--events 100000]
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

from bench_common import PYTHON, ROOT, rss_mb, verdict

from tests.support.daemon import Daemon

GOAL_MB = 80.0


def inbox_new(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM inbox WHERE state = 'new'").fetchone()[0])
    finally:
        conn.close()


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--max-seconds", type=float, default=900.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-rss-") as tmp:
        daemon = Daemon(Path(tmp), settle=1.0)
        daemon.start()
        assert daemon.proc is not None
        pid = daemon.proc.pid
        try:
            idle = rss_mb(pid)
            done = subprocess.run(
                [
                    PYTHON,
                    str(ROOT / "bench" / "bench_loadgen.py"),
                    daemon.public_url,
                    "--count",
                    str(args.events),
                    "--concurrency",
                    "16",
                    "--max-seconds",
                    str(args.max_seconds),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            result = json.loads(done.stdout)
            loaded = rss_mb(pid)
            deadline = time.monotonic() + 300
            while inbox_new(Path(tmp) / "register.sqlite") and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(2)  # the last sessions settle
            drained = rss_mb(pid)
        finally:
            daemon.stop()
    worst = max(loaded, drained)
    print(
        f"rss:      {loaded:.1f} MB right after {result['acknowledged']:,} events, "
        f"{drained:.1f} MB once processed ({result['per_second']:,.0f} events/s on the way)"
    )
    print(f"baseline: {idle:.1f} MB idle daemon; growth {worst - idle:+.1f} MB")
    print(f"goal:     <= {GOAL_MB:g} MB -> {verdict(worst <= GOAL_MB)}")
    return {"idle_mb": idle, "loaded_mb": loaded, "drained_mb": drained}


if __name__ == "__main__":
    main()
