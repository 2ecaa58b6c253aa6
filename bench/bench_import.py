"""Benchmark: `clients import` of a big 1C export while the daemon takes events.

A CSV of --rows clients (600,000 rows ≈ 50 MB: code, name, two phone columns, address,
comment; 1 % of numbers also listed by another client, 0.5 % not numbers) is imported by
`beeline-missed clients import` as its own process, into the register of a running daemon
(started as a subprocess, tests/daemon_harness.py) while a second process
(bench_loadgen.py) posts events to the hook at --rate per second. Measured: the import's wall
time and peak RSS (the process's own maximum resident set, from wait4), and the hook's answer
latency during the import. Then the same file again (every client unchanged). Baseline: the
hook's latency over the same span with no import running.
Goals: 600,000 rows in <= 15 s, <= 150 MB peak RSS, no hook answer over 100 ms.

    .venv/bin/python bench/bench_import.py [--rows 600000] [--rate 50]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import PYTHON, ROOT, machine, verdict

from tests.daemon_harness import Daemon

GOAL_SECONDS_PER_600K = 15.0
GOAL_RSS_MB = 150.0
GOAL_HOOK_MAX_MS = 100.0

SURNAMES = ["Иванов", "Петров", "Сидоров", "Козлов", "Ёлкин", "Смирнов", "Кузнецов", "Попов"]
FIRST = ["Иван", "Пётр", "Сергей", "Андрей", "Алексей", "Дмитрий", "Ольга", "Мария"]
STREETS = ["Ленина", "Мира", "Садовая", "Лесная", "Школьная"]


def write_export(path: Path, rows: int, seed: int = 1) -> int:
    """A 1C «Контрагенты» export in Windows-1251 with ';'; returns its size in bytes."""
    rnd = random.Random(seed)
    with path.open("w", encoding="cp1251", newline="") as out:
        out.write("Контрагенты\r\n\r\n")
        out.write("Код;Наименование;Телефон;Мобильный телефон;Адрес;Комментарий\r\n")
        for i in range(rows):
            name = f"{rnd.choice(SURNAMES)} {rnd.choice(FIRST)} {i}"
            mobile = f"8 ({rnd.choice(('916', '903', '925'))}) {i % 10_000_000:07d}"
            mobile = f"{mobile[:-4]}-{mobile[-4:-2]}-{mobile[-2:]}"
            if rnd.random() < 0.01:  # a number another client lists too
                other = rnd.randrange(max(i, 1))
                mobile = f"+7 916 {other % 10_000_000:07d}"
            landline = f"+7 495 {rnd.randrange(10_000_000):07d}" if i % 2 else ""
            if rnd.random() < 0.005:
                landline = "звонить вечером"
            address = f"г. Москва, ул. {rnd.choice(STREETS)}, д. {i % 200}"
            out.write(f"{i:09d};{name};{mobile};{landline};{address};\r\n")
    return path.stat().st_size


def import_once(env: dict[str, str], path: Path) -> tuple[float, float, dict]:
    """Wall seconds, peak RSS (MiB) and the JSON summary of one `clients import`."""
    command = [PYTHON, "-m", "beeline_missed", "clients", "import", str(path), "--json"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    # communicate() reaped it; its peak RSS is in the children's usage (one child at a time).
    if proc.returncode != 0:
        raise SystemExit(f"import failed: {err.decode()}")
    return wall, 0.0, json.loads(out)


def peak_rss_import(env: dict[str, str], path: Path) -> tuple[float, float, dict]:
    command = [PYTHON, "-m", "beeline_missed", "clients", "import", str(path), "--json"]
    out_file = tempfile.TemporaryFile()
    err_file = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=out_file, stderr=err_file)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    out_file.seek(0)
    err_file.seek(0)
    if proc.returncode != 0:
        raise SystemExit(f"import failed: {err_file.read().decode()}")
    return wall, usage.ru_maxrss / 1024, json.loads(out_file.read())


def loadgen(url: str, rate: float, seconds: float, start_ms: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            PYTHON,
            str(ROOT / "bench" / "bench_loadgen.py"),
            url,
            "--mode",
            "rate",
            "--rate",
            str(rate),
            "--count",
            str(int(rate * seconds)),
            "--concurrency",
            "8",
            "--max-seconds",
            str(seconds * 3),
            "--start-ms",
            str(start_ms),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )


def latency(proc: subprocess.Popen[str]) -> dict:
    out, _ = proc.communicate()
    return json.loads(out)


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=600_000)
    parser.add_argument("--rate", type=float, default=50.0, help="Hook events per second.")
    args = parser.parse_args()
    info = machine()
    print(
        f"machine:  {info['nproc']} cores, {info['cpu']}, {info['memory']}, "
        f"Python {info['python']}; load average {info['load']}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        home = Path(tmp)
        export = home / "kontragenty.csv"
        size = write_export(export, args.rows)
        print(f"file:     {args.rows:,} rows, {size / 1e6:.1f} MB (Windows-1251, ';')")
        daemon = Daemon(home, settle=1.0)
        daemon.start()
        try:
            # Baseline: the hook alone, for as long as the import is expected to take.
            span = max(5.0, 15.0 * args.rows / 600_000)
            base = latency(loadgen(daemon.public_url, args.rate, span, 1_795_766_400_000))
            results = []
            for label, start_ms in (("first", 1_795_866_400_000), ("again", 1_795_966_400_000)):
                # Events keep coming for the whole import (the generator is bounded by time).
                gen = loadgen(daemon.public_url, args.rate, span * 3, start_ms)
                time.sleep(0.5)
                wall, rss, summary = peak_rss_import(daemon.env, export)
                gen.terminate()
                hook = latency(gen)
                results.append((label, wall, rss, summary, hook))
        finally:
            daemon.stop()
    lat = base["latency_ms"]
    print(
        f"baseline: hook alone at {args.rate:g}/s: p50 {lat['p50']} ms, p99 {lat['p99']} ms, "
        f"max {lat['max']} ms"
    )
    goal_s = GOAL_SECONDS_PER_600K * args.rows / 600_000
    met = True
    for label, wall, rss, summary, hook in results:
        h = hook["latency_ms"]
        print(
            f"{label:9} {wall:.1f} s, peak RSS {rss:.0f} MiB; added {summary['clients_added']:,}, "
            f"updated {summary['clients_updated']:,}, unchanged {summary['clients_unchanged']:,}, "
            f"shared numbers {summary['numbers_shared']:,}, not numbers "
            f"{summary['numbers_not_recognised']:,}"
        )
        print(
            f"          hook meanwhile: {hook['acknowledged']:,} answered, p50 {h['p50']} ms, "
            f"p99 {h['p99']} ms, max {h['max']} ms"
        )
        met = met and wall <= goal_s and rss <= GOAL_RSS_MB and h["max"] <= GOAL_HOOK_MAX_MS
    print(
        f"goal:     <= {goal_s:g} s, <= {GOAL_RSS_MB:g} MiB, hook max <= {GOAL_HOOK_MAX_MS:g} ms "
        f"-> {verdict(met)}"
    )
    return {"results": results, "baseline": base}


if __name__ == "__main__":
    main()
