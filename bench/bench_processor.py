"""Benchmark: the processor's CPU per event, in-process, without the hook.

A register with `--calls` two-leg unanswered calls in its inbox (four events each); the
processor applies them (`Processor.process_inbox`) and then decides the sessions. Baseline,
same run: the same inbox read and parsed only (`xsi.parse_event`), the floor any processor
pays. The processor shares the daemon's process with the hook, so its cost per event is what
intake competes with.

    .venv/bin/python bench/bench_processor.py [--calls 1500]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from beeline_missed.daemon.processing import Processor
from beeline_missed.pbx import xsi
from beeline_missed.simulator import xsi_build
from beeline_missed.store import Register

START_MS = 1_795_766_400_000
GROUP = ["9001112201@ip.beeline.ru", "9001112202@ip.beeline.ru"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        register = Register.open(Path(folder) / "register.sqlite")
        bodies = [
            xsi_build.event_document(step, subscription_id="bench")
            for i in range(args.calls)
            for step in xsi_build.incoming_call(GROUP, f"+7916{i:07d}", START_MS + i * 1000)
        ]
        for body in bodies:
            register.inbox.add(body, START_MS)
        cpu = time.process_time()
        for body in bodies:
            xsi.parse_event(body)
        parse_cpu = time.process_time() - cpu
        processor = Processor(register, settle=1.0)
        wall, cpu = time.perf_counter(), time.process_time()
        while processor.process_inbox(500):
            pass
        apply_wall, apply_cpu = time.perf_counter() - wall, time.process_time() - cpu
        cpu = time.process_time()
        written = processor.decide_due(START_MS + 10**8)
        decide_cpu = time.process_time() - cpu
        register.close()
    per_event = apply_cpu / len(bodies) * 1e6
    print(
        f"processor: {len(bodies):,} events applied in {apply_wall:.2f} s wall, "
        f"{apply_cpu:.2f} s CPU ({per_event:.0f} µs CPU per event); "
        f"{len(written):,} sessions decided in {decide_cpu:.2f} s CPU"
    )
    print(
        f"baseline:  parsing alone {parse_cpu:.2f} s CPU "
        f"({parse_cpu / len(bodies) * 1e6:.0f} µs per event)"
    )


if __name__ == "__main__":
    main()
