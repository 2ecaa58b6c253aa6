"""Benchmark: `beeline-missed report` over a 1,000,000-row register, grouped by two fields.

Builds the register (or reuses one given with --db), then times the whole report process
against the same GROUP BY run by the `sqlite3` command-line shell, and prints both figures
and their ratio. The goal is under 2 s for the report on the project's 2-core machine.

    .venv/bin/python bench/bench_report.py [--rows 1000000] [--db /tmp/bench-report.sqlite]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from beeline_missed.store import Register  # noqa: E402

START = datetime(2025, 1, 1, tzinfo=UTC)
END = datetime(2026, 11, 27, tzinfo=UTC)
USERS = ["Иванов", "Петрова", "Сидоров", "Кузнецова", "Смирнов", "Попова", "Васильев", "Орлова"]
RESULTS = ["Записан на ремонт", "Консультация", "Не дозвонились", "Отказ", "Перезвонит сам", ""]
LINES = [f"{200 + i}" for i in range(12)]
STORED = "%Y-%m-%dT%H:%M:%SZ"

# The report the benchmark times, and the plain GROUP BY it is compared with.
REPORT_ARGS = [
    "--from",
    "2025-01-01",
    "--to",
    "2026-11-30",
    "--group-by",
    "month",
    "--group-by",
    "user",
]
PLAIN_SQL = (
    "SELECT strftime('%Y-%m', called_at, '+180 minutes') AS month, user, count(*), "
    "count(DISTINCT phone), sum(status = 'called_back'), sum(status = 'missed') "
    "FROM calls WHERE called_at >= '2024-12-31T21:00:00Z' AND called_at < '2026-11-30T21:00:00Z' "
    "GROUP BY 1, 2;"
)


def build(path: Path, rows: int, seed: int = 5) -> None:
    """A register with `rows` calls spread over two years, written in one transaction."""
    rnd = random.Random(seed)
    if path.exists():
        path.unlink()
    reg = Register.open(path)
    conn = reg.conn
    conn.execute("PRAGMA synchronous = OFF")  # a throw-away file: speed over durability
    now = datetime.now(UTC).strftime(STORED)
    span = int((END - START).total_seconds())
    with reg.transaction():
        conn.executemany(
            "INSERT INTO clients (id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
            [(i, f"Клиент {i}", now, now) for i in range(1, 5001)],
        )

        # Calls are registered as they happen, so rowids follow called_at as in a real one.
        moments = sorted(rnd.randrange(span) for _ in range(rows))

        def calls():
            for i, offset in enumerate(moments):
                called = START + timedelta(seconds=offset)
                hidden = rnd.random() < 0.05
                phone = None if hidden else f"+7916{rnd.randrange(200_000):07d}"
                back = rnd.random() < 0.7
                handled = (
                    (called + timedelta(seconds=int(rnd.expovariate(1 / 3600)) + 30)).strftime(
                        STORED
                    )
                    if back
                    else None
                )
                yield (
                    f"bench-{i}",
                    phone,
                    phone or "",
                    rnd.randrange(1, 5001) if phone and rnd.random() < 0.6 else None,
                    called.strftime(STORED),
                    rnd.choice(LINES),
                    "called_back" if back else "missed",
                    rnd.choice(RESULTS) if back else "",
                    rnd.choice(USERS) if back else None,
                    handled,
                    ("staff" if rnd.random() < 0.85 else "auto") if back else None,
                    "hook" if rnd.random() < 0.95 else "reconcile",
                    int(rnd.random() < 0.2),
                    now,
                )

        conn.executemany(
            """
            INSERT INTO calls (session_key, phone, phone_raw, client_id, called_at, line, status,
                               result, user, handled_at, closed_by, source, outside_hours,
                               created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            calls(),
        )
    conn.execute("ANALYZE")
    reg.close()


def timed(command: list[str], runs: int, env: dict[str, str]) -> tuple[float, float, str]:
    """Median wall time and median CPU time (user + system) of a whole process, and its output.

    The CPU figure is what the process itself cost; the wall figure also pays for
    whatever else the machine is doing, so both are printed, with the load average.
    """
    walls, cpus = [], []
    out = ""
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        out = done.stdout
    return statistics.median(walls), statistics.median(cpus), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=Path("/tmp/bench-report.sqlite"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rebuild", action="store_true", help="Build even if --db exists.")
    args = parser.parse_args()

    env = dict(os.environ, TZ="Europe/Moscow", BEELINE_MISSED_HOME=str(args.db.parent))
    env.pop("BEELINE_MISSED_DB", None)
    if args.rebuild or not args.db.exists():
        t0 = time.perf_counter()
        build(args.db, args.rows)
        print(f"built {args.rows:,} rows in {time.perf_counter() - t0:.1f} s: {args.db}")
    exe = shutil.which("beeline-missed", path=str(ROOT / ".venv" / "bin")) or "beeline-missed"
    report_cmd = [exe, "--db", str(args.db), "report", *REPORT_ARGS, "--format", "json"]
    report_s, report_cpu, report_out = timed(report_cmd, args.runs, env)
    print(f"report:  {report_s:.2f} s wall, {report_cpu:.2f} s CPU  ({' '.join(report_cmd[1:])})")
    sqlite = shutil.which("sqlite3")
    if sqlite:
        plain_s, plain_cpu, _ = timed([sqlite, str(args.db), PLAIN_SQL], args.runs, env)
        print(
            f"sqlite3: {plain_s:.2f} s wall, {plain_cpu:.2f} s CPU  "
            "(the same GROUP BY in the sqlite3 shell, leaf level only: no subtotals, no medians)"
        )
        print(f"ratio:   {report_s / plain_s:.2f}x wall")
    else:
        print("sqlite3 CLI not found: no comparison")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}")
    print(f"load:    {load} (1, 5, 15 min) at the end of the run")
    print(f"goal:    < 2 s wall -> {'met' if report_s < 2 else 'NOT met'}")
    assert report_out.startswith("{")


if __name__ == "__main__":
    main()
