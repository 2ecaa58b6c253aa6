"""Benchmark: reconciling a day of call statistics against a register that already holds a year.

The simulator serves `--records` inbound records for one day over real HTTP (pages of 100);
a share of them were heard by the hook (legs), the rest are missed calls the register lacks.
The register already holds `--history` legs and rows from earlier days, so the matching
queries run against a full-size table. Times the first run (registers the missing calls) and
a second run over the same window (all known: the steady state of the daemon's schedule).
Goal: a day of 5,000 records in <= 3 s on the first run (one transaction per page).

    .venv/bin/python bench/bench_reconcile.py [--records 5000] [--history 200000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import ROOT, verdict  # noqa: F401  (ROOT puts the project on sys.path)

from beeline_missed import config, timefmt
from beeline_missed.pbx.api import PbxClient
from beeline_missed.rules import reconcile
from beeline_missed.rules.detection import LegState
from beeline_missed.simulator.pbx import Simulator
from beeline_missed.store import Register

GOAL_S = 3.0
DAY = datetime(2026, 11, 27, tzinfo=UTC)
USER = "9001112201@ip.beeline.ru"


def fill(register: Register, records: int, history: int, heard_share: float) -> list[dict]:
    """Legs and rows of the past, legs of the day's heard calls; returns the day's records."""
    day_ms = int(DAY.timestamp() * 1000)
    step = 86_400_000 // records
    items = []
    with register.transaction():
        for i in range(history):
            start = day_ms - 1_000 - i * 60_000
            phone = f"+7916{i % 9_000_000:07d}"
            register.sessions.put_leg(_leg(f"h{i}", phone, start))
            if i % 10 == 0:
                register.calls.insert(
                    session_key=f"h{i}",
                    phone=phone,
                    phone_raw=phone,
                    called_at=timefmt.ms_to_stored(start),
                    line="9001112201",
                )
        for i in range(records):
            start = day_ms + i * step
            phone = f"+7903{i:07d}"
            if i < records * heard_share:
                register.sessions.put_leg(_leg(f"d{i}", phone, start + 3_000))
            items.append(
                {
                    "startDate": start,
                    "abonent": {"userId": USER, "phone": "9001112201"},
                    "direction": "INBOUND",
                    "status": "MISSED",
                    "phone_from": phone[1:],
                    "phone_to": "9001112201",
                }
            )
    return items


def _leg(key: str, phone: str, start: int) -> LegState:
    return LegState(
        target_id=USER,
        call_id=f"callhalf-{key}:0",
        ext_tracking_id=key,
        personality="Terminator",
        call_type="Network",
        remote_raw=f"tel:{phone}",
        start_ms=start,
        release_ms=start + 20_000,
        released=True,
    )


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5_000)
    parser.add_argument("--history", type=int, default=200_000)
    parser.add_argument("--heard", type=float, default=0.5, help="share the hook heard")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, Simulator() as sim:
        register = Register.open(Path(folder) / "register.sqlite")
        sim.calls.extend(fill(register, args.records, args.history, args.heard))
        settings = config.with_overrides(
            config.load(environ={"BEELINE_MISSED_HOME": folder}),
            api_url=sim.base_url,
            api_token=sim.token,
        )
        with PbxClient.from_settings(settings) as client:
            t0 = time.perf_counter()
            first = reconcile.run(register, client, settings, DAY, DAY + timedelta(days=1))
            first_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            second = reconcile.run(register, client, settings, DAY, DAY + timedelta(days=1))
            second_s = time.perf_counter() - t0
        register.close()
    expected_new = args.records - int(args.records * args.heard + 0.999999)
    assert len(first.registered) == expected_new, (len(first.registered), expected_new)
    assert second.registered == [] and second.known == args.records
    pages = -(-args.records // 100)
    print(
        f"first run:  {first_s:.2f} s for {args.records} records ({pages} pages), "
        f"{len(first.registered)} registered, {first.known} known; history {args.history} legs"
    )
    print(f"second run: {second_s:.2f} s, all {second.known} known")
    print(f"goal:       first run <= {GOAL_S:.0f} s -> {verdict(first_s <= GOAL_S)}")
    return {"first_s": first_s, "second_s": second_s, "records": args.records}


if __name__ == "__main__":
    main()
