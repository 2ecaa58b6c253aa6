"""Helpers shared by the benchmarks: the machine, timing whole processes, event bodies, RSS.

Not a benchmark itself; `bench/run.py` lists the benchmarks it runs.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PYTHON = sys.executable
EXE = str(Path(PYTHON).with_name("beeline-missed"))
GROUP = ["9001112201@ip.beeline.ru"]


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        memory = f"{mem_kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration):
        memory = "unknown"
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": memory,
        "python": platform.python_version(),
        "system": platform.platform(),
        # Others' work on a shared machine shows here; read the figures with it.
        "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }


def timed(
    command: Sequence[str], runs: int, env: dict[str, str] | None = None, warmup: int = 1
) -> tuple[float, str]:
    """Median wall time of a whole process over `runs` (after `warmup` untimed runs)."""
    times = []
    out = ""
    for index in range(warmup + runs):
        t0 = time.perf_counter()
        done = subprocess.run(list(command), capture_output=True, text=True, env=env, check=True)
        elapsed = time.perf_counter() - t0
        if index >= warmup:
            times.append(elapsed)
        out = done.stdout
    return statistics.median(times), out


def compile_package() -> None:
    """Byte-compile the package, as installing it with pip does. A whole-process timing
    otherwise includes compiling every module from source on each run wherever
    PYTHONDONTWRITEBYTECODE is set (as on the machines these figures come from: ~40 ms of
    `list`), which no installed copy pays."""
    import compileall

    compileall.compile_dir(ROOT / "beeline_missed", quiet=1)


def timed_cpu(
    command: Sequence[str], runs: int, env: dict[str, str] | None = None, warmup: int = 1
) -> tuple[float, float, str]:
    """Median wall time and median CPU time (user + system) of a whole process. On a shared
    machine the CPU time is the steadier figure: waiting for a core does not count."""
    import resource

    walls, cpus = [], []
    out = ""
    for index in range(warmup + runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        done = subprocess.run(list(command), capture_output=True, text=True, env=env, check=True)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if index >= warmup:
            walls.append(wall)
            cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        out = done.stdout
    return statistics.median(walls), statistics.median(cpus), out


def event_bodies(count: int, start_ms: int = 1_795_766_400_000) -> list[bytes]:
    """`count` XSI documents: unanswered single-leg calls (received, then released), so the
    processor registers a missed call for every second event, as on a busy day."""
    from beeline_missed.simulator import xsi_build

    bodies: list[bytes] = []
    index = 0
    while len(bodies) < count:
        caller = f"+7916{index % 10_000_000:07d}"
        steps = xsi_build.incoming_call(GROUP, caller, start_ms + index * 1000)
        for step in steps:
            bodies.append(xsi_build.event_document(step, subscription_id="bench"))
        index += 1
    return bodies[:count]


def rss_mb(pid: int) -> float:
    """Resident memory of a process (VmRSS), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"
