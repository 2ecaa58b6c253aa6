"""Benchmark: the `list --json` path in one process, without the start-up: read the rows, add
the claims and the callback deadlines, shape and dump the JSON. Minimum CPU time of 40 runs
(the minimum: the machine is shared, and other load only ever adds). It isolates what the
store's typed rows (`store/rows.py`) cost per row, which the whole-process `bench_list.py`
hides under the interpreter's start-up.

    .venv/bin/python bench/bench_list_rows.py [--db PATH] [--all N]

The register is `bench_list.py`'s (build it with that script first). To compare with another
commit, run the same command with PYTHONPATH pointing at a checkout of it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from beeline_missed import calls_view, casework, config, deadlines, timefmt
from beeline_missed.store import Register


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=Path("/tmp/bench-list.sqlite"))
    parser.add_argument("--all", type=int, default=0, metavar="N", help="list --all, N rows")
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    os.environ.setdefault("BEELINE_MISSED_HOME", str(args.db.parent))
    settings = config.load({"db": args.db})
    zone = timefmt.local_zone("Europe/Moscow")
    register = Register.open(args.db)
    times, shown, size = [], 0, 0
    for _ in range(args.runs):
        started = time.process_time()
        rows = register.calls.rows(include_handled=bool(args.all), limit=args.all or None)
        rows = casework.with_claims(register, settings, rows, timefmt.now_utc())
        limits = deadlines.Deadlines.from_settings(settings)
        annotated = limits.annotate(rows, timefmt.now_ms())
        # Before typed rows, annotate changed the dicts in place and returned None.
        rows = deadlines.sort_rows(annotated if annotated is not None else rows, "time")
        text = json.dumps(calls_view.calls_json(rows, zone), ensure_ascii=False, default=str)
        times.append(time.process_time() - started)
        shown, size = len(rows), len(text)
    register.close()
    print(
        f"list path: {min(times) * 1000:.1f} ms CPU (min of {args.runs}), {shown} rows, "
        f"{size:,} bytes of JSON"
    )


if __name__ == "__main__":
    main()
