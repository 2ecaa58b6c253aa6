"""The load generator: a SECOND process that posts XSI events to the hook on loopback.

An async httpx client, bounded in count (--count) and time (--max-seconds). Two modes:
  burst  as fast as --concurrency connections allow (intake throughput)
  rate   open loop at --rate events per second (latency; measured from the scheduled moment,
         so a stalled server cannot hide its queue)
Prints one JSON object: sent, acknowledged (HTTP 200), other statuses, errors, elapsed seconds
and latency percentiles in milliseconds.

    python bench/bench_loadgen.py URL --mode burst --count 20000 --concurrency 64
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from bench_common import event_bodies, percentile

HEADERS = {"Content-Type": "application/xml; charset=UTF-8"}


async def run(args: argparse.Namespace) -> dict[str, object]:
    bodies = event_bodies(args.count, start_ms=args.start_ms)
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    timeout = httpx.Timeout(args.request_timeout)
    deadline = time.monotonic() + args.max_seconds
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:

        async def post(body: bytes, scheduled: float) -> None:
            if time.monotonic() > deadline:
                statuses["skipped (time bound)"] += 1
                return
            try:
                response = await client.post(args.url, content=body, headers=HEADERS)
                statuses[str(response.status_code)] += 1
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1
                return
            latencies.append((time.perf_counter() - scheduled) * 1000)

        # One warm-up request opens the first connection outside the measurement.
        t0 = time.perf_counter()
        if args.mode == "burst":
            queue: asyncio.Queue[bytes] = asyncio.Queue()
            for body in bodies:
                queue.put_nowait(body)

            async def worker() -> None:
                while not queue.empty():
                    body = queue.get_nowait()
                    await post(body, time.perf_counter())

            await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        else:
            interval = 1.0 / args.rate
            tasks = []
            for index, body in enumerate(bodies):
                scheduled = t0 + index * interval
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(post(body, scheduled)))
            await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
    return {
        "mode": args.mode,
        "sent": len(bodies),
        "acknowledged": statuses.get("200", 0),
        "statuses": dict(statuses),
        "elapsed_s": round(elapsed, 3),
        "per_second": round(statuses.get("200", 0) / elapsed, 1),
        "latency_ms": {
            "p50": round(percentile(latencies, 0.50), 2),
            "p90": round(percentile(latencies, 0.90), 2),
            "p99": round(percentile(latencies, 0.99), 2),
            "max": round(max(latencies, default=float("nan")), 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--mode", choices=["burst", "rate"], default="burst")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--max-seconds", type=float, default=300.0)
    parser.add_argument("--request-timeout", type=float, default=30.0)
    parser.add_argument("--start-ms", type=int, default=1_795_766_400_000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
