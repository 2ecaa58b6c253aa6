"""Benchmark: `clients sync` of a big 1C catalog from the OData stand-in.

The 1C stand-in runs as its own process (`beeline-missed onec simulator --clients N`: N
clients with two numbers each, made on demand, in «Телефон» rows of the contact information)
and `beeline-missed clients sync --json` runs as another, into a fresh register. Measured: the
sync's wall time, CPU time and peak RSS (the process's own maximum resident set, from wait4)
for each size in --sizes (memory must stay flat as the catalog grows), then the largest again
(every client unchanged). The stand-in's own CPU is not the sync's: it is its own process.
Goals: 100,000 clients in < 60 s (and as fast per client at every size), and memory flat as
the catalog grows: the peak RSS of the largest size within 15 % of the one before it (at least
twice smaller). It is bounded by SQLite's page caches, not by the catalog.

    .venv/bin/python bench/bench_onec_sync.py [--sizes 100000 200000 400000] [--page-size 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import PYTHON, machine, verdict

GOAL_SECONDS_PER_100K = 60.0
GOAL_RSS_GROWTH = 0.15
USER, PASSWORD = "odata", "bench-secret"


def start_stand_in(clients: int) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "BEELINE_MISSED_1C_PASSWORD": PASSWORD}
    command = [PYTHON, "-m", "beeline_missed", "onec", "simulator", "--clients", str(clients)]
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("BEELINE_MISSED_1C_URL="):
        proc.kill()
        raise SystemExit(f"the stand-in did not start: {line!r}")
    return proc, line.split("=", 1)[1]


def sync(home: Path, url: str, page_size: int) -> tuple[float, float, float, dict]:
    """Wall seconds, CPU seconds, peak RSS (MiB) and the JSON summary of one sync."""
    env = {
        **os.environ,
        "BEELINE_MISSED_HOME": str(home),
        "BEELINE_MISSED_1C_URL": url,
        "BEELINE_MISSED_1C_USER": USER,
        "BEELINE_MISSED_1C_PASSWORD": PASSWORD,
    }
    (home / "config.toml").write_text(f"onec_page_size = {page_size}\n", encoding="utf-8")
    command = [PYTHON, "-m", "beeline_missed", "clients", "sync", "--json"]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"sync failed: {err.read().decode()}")
        return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, json.loads(out.read())


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 200_000, 400_000])
    parser.add_argument("--page-size", type=int, default=1000)
    args = parser.parse_args()
    info = machine()
    print(f"command:  {' '.join([Path(PYTHON).name, *sys.argv])}")
    print(
        f"machine:  {info['nproc']} cores, {info['cpu']}, {info['memory']}, "
        f"Python {info['python']}; load average {info['load']}"
    )
    results = []
    sizes = sorted(args.sizes)
    for size in sizes:
        stand_in, url = start_stand_in(size)
        try:
            with tempfile.TemporaryDirectory(prefix="bench-onec-") as tmp:
                runs = ["first"] + (["again"] if size == sizes[-1] else [])
                for label in runs:
                    wall, cpu, rss, summary = sync(Path(tmp), url, args.page_size)
                    results.append((size, label, wall, cpu, rss, summary))
        finally:
            stand_in.terminate()
            stand_in.wait(timeout=30)
    met = True
    for size, label, wall, cpu, rss, summary in results:
        print(
            f"{size:>9,} {label:6} {wall:6.1f} s ({cpu:.1f} s CPU), peak RSS {rss:.0f} MiB; "
            f"added {summary['added']:,}, updated {summary['updated']:,}, "
            f"unchanged {summary['unchanged']:,}, removed {summary['removed']:,}"
        )
        met = met and wall <= GOAL_SECONDS_PER_100K * size / 100_000
    firsts = [(size, rss) for size, label, _, _, rss, _ in results if label == "first"]
    if len(firsts) >= 2:
        (small, rss_small), (large, rss_large) = firsts[-2], firsts[-1]
        growth = rss_large / rss_small - 1
        print(
            f"memory:   peak RSS {rss_small:.0f} MiB at {small:,} clients, {rss_large:.0f} MiB "
            f"at {large:,} ({growth:+.0%})"
        )
        met = met and growth <= GOAL_RSS_GROWTH
    print(
        f"goal:     <= {GOAL_SECONDS_PER_100K:g} s per 100,000 clients, peak RSS growth <= "
        f"{GOAL_RSS_GROWTH:.0%} -> {verdict(met)}"
    )
    return {"results": results}


if __name__ == "__main__":
    main()
