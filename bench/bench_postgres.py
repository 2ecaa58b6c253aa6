"""Benchmark: the register on PostgreSQL next to SQLite, same run, same machine.

1. Hook intake, one daemon: events acknowledged per second (each committed before its 200),
   with the register on SQLite, then on a local PostgreSQL 15 (fsync on, synchronous_commit
   on: as durable as SQLite's synchronous=FULL), each next to its engine's single-row commit
   rate (a pgbench-style loop of one-row INSERT commits; for SQLite WAL + FULL).
2. `beeline-missed list --json` (whole process) on a big register: built in SQLite as
   bench_list.py builds it, copied into PostgreSQL by `migrate-register`'s code (timed too).

The PostgreSQL server is a throwaway cluster on a unix socket (tests/support/postgres.py), so
the figures leave out a network hop; a server on another machine adds its round trips.

    .venv/bin/python bench/bench_postgres.py [--seconds 10] [--concurrency 16] [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import EXE, machine, timed_cpu
from bench_intake import baseline as sqlite_baseline
from bench_intake import load, load_wrk
from bench_list import build

from beeline_missed.store import Register, transfer
from beeline_missed.store.engine import PostgresURL
from tests.support.daemon import Daemon
from tests.support.postgres import Cluster


def pg_baseline(url: PostgresURL, bodies: list[bytes]) -> float:
    """Single-row commits per second through psycopg, autocommit: pgbench's simplest loop."""
    import psycopg

    with psycopg.connect(url.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE baseline (id BIGSERIAL PRIMARY KEY, ms BIGINT, body BYTEA)")
        t0 = time.perf_counter()
        for index, body in enumerate(bodies):
            conn.execute("INSERT INTO baseline (ms, body) VALUES (%s, %s)", [index, body])
        elapsed = time.perf_counter() - t0
        conn.execute("DROP TABLE baseline")
    return len(bodies) / elapsed


def intake(home: Path, env: dict[str, str], seconds: float, concurrency: int) -> dict:
    home.mkdir()
    daemon = Daemon(home, settle=1.0, extra_env=env).start()
    try:
        load(daemon.public_url, 500, concurrency, 30, start_ms=1_700_000_000_000)  # warm-up
        if shutil.which("wrk"):
            result = load_wrk(daemon.public_url, seconds, concurrency, home)
        else:
            result = load(daemon.public_url, 20_000, concurrency, seconds, 1_795_766_400_000)
            result["tool"] = "bench_loadgen.py (httpx)"
    finally:
        daemon.stop()
    return result


def intake_two(folder: Path, env: dict[str, str], seconds: float, concurrency: int) -> dict:
    """Two daemons on one PostgreSQL register, each loaded by its own wrk with half the
    connections at the same time (the load balancer's share)."""
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    daemons = []
    for name in ("two-a", "two-b"):
        (folder / name).mkdir()
        daemons.append(Daemon(folder / name, settle=1.0, extra_env=env).start())
    try:
        for daemon in daemons:
            load(daemon.public_url, 250, concurrency // 2, 30, start_ms=1_700_000_000_000)
        if not shutil.which("wrk"):
            raise SystemExit("the two-daemon intake needs wrk (apt-get install wrk)")
        with ThreadPoolExecutor(2) as pool:
            results = list(
                pool.map(
                    lambda d: load_wrk(d.public_url, seconds, concurrency // 2, d.home),
                    daemons,
                )
            )
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"wrk failed: {exc.stderr}") from None
    finally:
        for daemon in daemons:
            daemon.stop()
    return {
        "acknowledged": sum(r["acknowledged"] for r in results),
        "per_second": sum(r["per_second"] for r in results),
        "each": results,
    }


def main() -> dict:
    from bench_common import event_bodies

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--open", type=int, default=300)
    args = parser.parse_args()
    figures: dict = {"machine": machine()}
    cluster = Cluster(durable=True)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-pg-") as tmp:
            folder = Path(tmp)
            bodies = event_bodies(5000)
            cluster.admin("CREATE DATABASE intake")
            cluster.admin("CREATE DATABASE big")
            cluster.admin("CREATE DATABASE two")
            intake_url, big_url = cluster.url("intake"), cluster.url("big")
            figures["sqlite_commits_per_s"] = sqlite_baseline(folder, bodies)
            figures["pg_commits_per_s"] = pg_baseline(intake_url, bodies)
            lite = intake(folder / "lite", {}, args.seconds, args.concurrency)
            pg = intake(folder / "pg", {"BEELINE_MISSED_DB": intake_url.url}, args.seconds,
                        args.concurrency)  # fmt: skip
            two_url = cluster.url("two")
            two = intake_two(folder, {"BEELINE_MISSED_DB": two_url.url}, args.seconds,
                             args.concurrency)  # fmt: skip
            register = Register.open(intake_url)
            stored = sum(register.inbox.counts().values())
            register.close()
            figures["intake_two_daemons_per_s"] = two["per_second"]
            for name, result in (("sqlite", lite), ("postgresql", pg)):
                figures[f"intake_{name}_per_s"] = result["per_second"]
                figures[f"intake_{name}"] = result
            figures["intake_postgresql_stored"] = stored
            print(
                f"intake, SQLite:     {lite['per_second']:,.0f} events/s "
                f"({lite['acknowledged']:,} acknowledged; baseline "
                f"{figures['sqlite_commits_per_s']:,.0f} single-row commits/s, WAL + FULL)"
            )
            print(
                f"intake, PostgreSQL: {pg['per_second']:,.0f} events/s "
                f"({pg['acknowledged']:,} acknowledged, {stored:,} in the inbox incl. warm-up; "
                f"baseline {figures['pg_commits_per_s']:,.0f} single-row commits/s, fsync on)"
            )

            print(
                f"intake, PostgreSQL, two daemons: {two['per_second']:,.0f} events/s together "
                f"({two['acknowledged']:,} acknowledged, {args.concurrency // 2} connections "
                "each)"
            )

            db = folder / "big.sqlite"
            t0 = time.perf_counter()
            build(db, args.rows, args.open)
            built = time.perf_counter() - t0
            t0 = time.perf_counter()
            copied = transfer.copy(db, big_url)
            figures["migrate_register_s"] = time.perf_counter() - t0
            Register.open(big_url).conn.execute("ANALYZE")
            command = [str(EXE), "list", "--json"]
            import os

            env = {**os.environ, "BEELINE_MISSED_HOME": str(folder)}
            lite_wall, lite_cpu, out = timed_cpu(
                command, 5, env={**env, "BEELINE_MISSED_DB": str(db)}
            )
            pg_wall, pg_cpu, pg_out = timed_cpu(
                command, 5, env={**env, "BEELINE_MISSED_DB": big_url.url}
            )
            ids = [row["id"] for row in json.loads(out)]
            assert ids == [row["id"] for row in json.loads(pg_out)], "the engines' lists differ"
            figures.update(
                list_rows=args.rows, list_sqlite_s=lite_wall, list_postgresql_s=pg_wall,
                list_sqlite_cpu_s=lite_cpu, list_postgresql_cpu_s=pg_cpu,
            )  # fmt: skip
            print(
                f"big register: {args.rows:,} calls built in SQLite in {built:.1f} s, copied to "
                f"PostgreSQL by migrate-register in {figures['migrate_register_s']:.1f} s "
                f"({copied.rows:,} rows)"
            )
            report = [str(EXE), "report", "--from", "2025-01-01", "--to", "2026-11-30",
                      "--group-by", "month", "--group-by", "user", "--format", "json"]  # fmt: skip
            rl_wall, rl_cpu, rl_out = timed_cpu(
                report, 3, env={**env, "BEELINE_MISSED_DB": str(db)}
            )
            rp_wall, rp_cpu, rp_out = timed_cpu(
                report, 3, env={**env, "BEELINE_MISSED_DB": big_url.url}
            )
            same = json.loads(rl_out)["total"] == json.loads(rp_out)["total"]
            figures.update(report_sqlite_s=rl_wall, report_postgresql_s=rp_wall, report_same=same)
            print(
                f"report by month and user over the register: SQLite {rl_wall:.2f} s (cpu "
                f"{rl_cpu:.2f} s), PostgreSQL {rp_wall:.2f} s (cpu {rp_cpu:.2f} s), median of 3; "
                f"totals {'equal' if same else 'DIFFER'}"
            )
            print(
                f"list --json: SQLite {lite_wall * 1000:.0f} ms (cpu {lite_cpu * 1000:.0f} ms), "
                f"PostgreSQL {pg_wall * 1000:.0f} ms (cpu {pg_cpu * 1000:.0f} ms), median of 5"
            )
    finally:
        cluster.close()
    return figures


if __name__ == "__main__":
    main()
