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

from bench_common import EXE, PYTHON, compile_package, timed_cpu, verdict

GOAL_S = 0.300


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    compile_package()
    ours, ours_cpu, out = timed_cpu([EXE, "--help"], args.runs)
    base, base_cpu, _ = timed_cpu([PYTHON, "-c", "pass"], args.runs)
    typer_only, typer_cpu, _ = timed_cpu([PYTHON, "-c", "import typer"], args.runs)
    assert "Usage" in out
    print(
        f"--help:   {ours * 1000:.0f} ms whole process, CPU {ours_cpu * 1000:.0f} ms "
        f"(medians of {args.runs})"
    )
    print(
        f"baseline: {base * 1000:.0f} ms (CPU {base_cpu * 1000:.0f} ms) for `python -c pass`; "
        f"ratio {ours / base:.1f}x"
    )
    print(
        f"floor:    {typer_only * 1000:.0f} ms (CPU {typer_cpu * 1000:.0f} ms) for "
        "`python -c 'import typer'`"
    )
    print(f"goal:     <= {GOAL_S * 1000:.0f} ms -> {verdict(ours <= GOAL_S)}")
    return {"help_s": ours, "python_s": base, "typer_s": typer_only}


if __name__ == "__main__":
    main()
