"""Benchmark: `beeline-missed list --json` on a register of 1,000,000 calls, whole process.

The register holds two years of calls: 1,000,000 rows, of which the last few hundred are still
«Пропущен» (staff call back within hours, so the open list stays short however large the
register grows). Baseline, same run: the `sqlite3` command-line shell running the very query
`list` runs (captured with SQLite's trace hook), printing JSON too. Goal: <= 150 ms wall.

    .venv/bin/python bench/bench_list.py [--rows 1000000] [--open 300] [--db PATH] [--rebuild]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import EXE, PYTHON, compile_package, timed_cpu, verdict

from beeline_missed.store import Register

GOAL_S = 0.150
STORED = "%Y-%m-%dT%H:%M:%SZ"
END = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def build(path: Path, rows: int, still_open: int, seed: int = 7) -> None:
    """`rows` calls over two years, the newest `still_open` of them not yet called back."""
    rnd = random.Random(seed)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    reg = Register.open(path)
    conn = reg.conn
    conn.execute("PRAGMA synchronous = OFF")  # a throw-away file: speed over durability
    now = END.strftime(STORED)
    step = timedelta(days=730) / rows
    with reg.transaction():
        conn.executemany(
            "INSERT INTO clients (id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
            [(i, f"Клиент {i}", now, now) for i in range(1, 5001)],
        )
        conn.executemany(
            "INSERT INTO client_phones (client_id, phone, raw) VALUES (?, ?, ?)",
            [(i, f"+7916{i:07d}", f"8916{i:07d}") for i in range(1, 5001)],
        )

        def calls():
            for i in range(rows):
                called = END - step * (rows - i)
                phone = f"+7916{rnd.randrange(1, 200_000):07d}"
                is_open = i >= rows - still_open
                handled = None if is_open else (called + timedelta(minutes=30)).strftime(STORED)
                yield (
                    f"bench-{i}",
                    phone,
                    phone,
                    rnd.randrange(1, 5001) if rnd.random() < 0.3 else None,
                    called.strftime(STORED),
                    "9001112201",
                    "missed" if is_open else "called_back",
                    "" if is_open else "Перезвонили, записан",
                    None if is_open else "Иванов",
                    handled,
                    None if is_open else "staff",
                    now,
                )

        conn.executemany(
            """
            INSERT INTO calls (session_key, phone, phone_raw, client_id, called_at, line, status,
                               result, user, handled_at, closed_by, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            calls(),
        )
    conn.execute("ANALYZE")
    reg.close()


def list_query(path: Path) -> str:
    """The SQL `list` runs, as SQLite saw it (parameters inlined)."""
    reg = Register.open(path)
    seen: list[str] = []
    reg.conn.set_trace_callback(seen.append)
    reg.calls.rows()
    reg.close()
    selects = [s for s in seen if s.lstrip().upper().startswith(("SELECT", "WITH"))]
    return selects[-1].strip().rstrip(";") + ";"


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--open", type=int, default=300, dest="still_open")
    parser.add_argument("--db", type=Path, default=Path("/tmp/bench-list.sqlite"))
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    compile_package()
    if args.rebuild or not args.db.exists():
        build(args.db, args.rows, args.still_open)
    env = dict(os.environ, TZ="Europe/Moscow", BEELINE_MISSED_HOME=str(args.db.parent))
    env.pop("BEELINE_MISSED_DB", None)
    ours, ours_cpu, out = timed_cpu([EXE, "--db", str(args.db), "list", "--json"], args.runs, env)
    shown = out.count('"id":')
    typer_only, typer_cpu, _ = timed_cpu([PYTHON, "-c", "import typer"], args.runs)
    sqlite = shutil.which("sqlite3")
    result = {"list_s": ours, "list_cpu_s": ours_cpu, "rows_shown": shown}
    print(
        f"list:     {ours * 1000:.0f} ms whole process (CPU {ours_cpu * 1000:.0f} ms), "
        f"{shown} calls shown, register of {args.rows:,} calls"
    )
    if sqlite:
        sql = list_query(args.db)
        base, base_cpu, _ = timed_cpu([sqlite, "-json", str(args.db), sql], args.runs, env)
        result["sqlite3_s"] = base
        print(
            f"sqlite3:  {base * 1000:.0f} ms (CPU {base_cpu * 1000:.0f} ms), the same query, -json"
        )
        print(f"ratio:    {ours / base:.1f}x the sqlite3 shell")
    else:
        print("sqlite3:  not installed, no baseline")
    print(
        f"floor:    {typer_only * 1000:.0f} ms (CPU {typer_cpu * 1000:.0f} ms) for "
        "`python -c 'import typer'`, which every command pays"
    )
    print(f"goal:     <= {GOAL_S * 1000:.0f} ms -> {verdict(ours <= GOAL_S)}")
    return result


if __name__ == "__main__":
    main()
