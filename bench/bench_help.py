"""Benchmark: `beeline-missed --help`, whole process, against `python -c pass`.

Baseline, same run: the bare interpreter start of the same virtualenv's Python. Also prints
the start of the bare `import typer` (the CLI framework), the floor any Typer command pays.
Goal: <= 300 ms.

    .venv/bin/python bench/bench_help.py [--runs 15]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import EXE, PYTHON, timed, verdict

GOAL_S = 0.300


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    ours, out = timed([EXE, "--help"], args.runs)
    base, _ = timed([PYTHON, "-c", "pass"], args.runs)
    typer_only, _ = timed([PYTHON, "-c", "import typer"], args.runs)
    assert "Usage" in out
    print(f"--help:   {ours * 1000:.0f} ms whole process (median of {args.runs})")
    print(f"baseline: {base * 1000:.0f} ms for `python -c pass`; ratio {ours / base:.1f}x")
    print(f"floor:    {typer_only * 1000:.0f} ms for `python -c 'import typer'`")
    print(f"goal:     <= {GOAL_S * 1000:.0f} ms -> {verdict(ours <= GOAL_S)}")
    return {"help_s": ours, "python_s": base, "typer_s": typer_only}


if __name__ == "__main__":
    main()
