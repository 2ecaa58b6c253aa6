"""Run every benchmark, one after another, and print each figure with its baseline ratio.

    make bench            # or: .venv/bin/python bench/run.py [--quick] [--only NAME ...]

Each benchmark is its own process (bench/bench_*.py, runnable alone with --help). Figures and
the machine they were measured on go into docs/benchmarks.md by hand: machines here are noisy,
so read ratios to the same-run baselines rather than absolute numbers.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import PYTHON, machine

HERE = Path(__file__).resolve().parent

# (name, arguments for the full run, arguments for --quick)
BENCHMARKS: list[tuple[str, list[str], list[str]]] = [
    ("help", [], ["--runs", "5"]),
    ("intake", [], ["--count", "3000"]),
    ("latency", [], ["--seconds", "5"]),
    ("visible", [], ["--calls", "3"]),
    ("list", [], ["--rows", "100000", "--db", "/tmp/bench-list-quick.sqlite", "--runs", "3"]),
    ("rss", [], ["--events", "5000"]),
    ("processor", [], ["--calls", "300"]),
    ("stalled", [], ["--stalled", "250", "--events", "50"]),
    ("report", [], ["--rows", "100000", "--db", "/tmp/bench-report-quick.sqlite", "--runs", "3"]),
    ("import", [], ["--rows", "50000"]),
    ("onec_sync", [], ["--sizes", "5000", "20000"]),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Small sizes: a smoke run.")
    parser.add_argument("--only", nargs="*", help="Run only these benchmarks by name.")
    args = parser.parse_args()
    info = machine()
    print(
        f"machine: {info['nproc']} cores, {info['cpu']}, {info['memory']}, "
        f"Python {info['python']}, {info['system']}; load average {info['load']}"
    )
    print(f"command: {' '.join([Path(PYTHON).name, *sys.argv])}")
    failed = []
    for name, full, quick in BENCHMARKS:
        if args.only and name not in args.only:
            continue
        script = HERE / f"bench_{name}.py"
        if not script.exists():  # bench_report.py comes with the reports feature
            print(f"\n== {name}: {script.name} not present, skipped")
            continue
        print(f"\n== {name}", flush=True)
        t0 = time.perf_counter()
        done = subprocess.run([PYTHON, str(script), *(quick if args.quick else full)])
        print(f"   ({time.perf_counter() - t0:.0f} s)", flush=True)
        if done.returncode != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed to run: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
