"""Where a big import's time goes: one `clients import` in this process (no daemon, a fresh
register in a temporary folder), timed by phase, then every SQL statement's total.

Phases: reading and checking the file (`parse`, the generator's own time), staging into the
temporary tables (`stage`, less `parse`), matching, writing (`write`: the batches' SQL),
commits and pauses between batches (most of `the rest`), and the shared-number report.

    .venv/bin/python bench/profile_import.py [FILE]   # default: bench_import's 600,000 rows
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_import import write_export

from beeline_missed.directory import clients_file
from beeline_missed.store import Register, base
from beeline_missed.store.clients import Clients

PHASES: dict[str, float] = {}
STATEMENTS: dict[str, tuple[int, float]] = {}


def add(table: dict[str, Any], key: str, seconds: float) -> None:
    table[key] = table.get(key, 0.0) + seconds


def timed_method(name: str, phase: str) -> None:
    original = getattr(Clients, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            add(PHASES, phase, time.perf_counter() - started)

    setattr(Clients, name, wrapper)


class TimedConnection:
    """The register's connection, each statement's time added up by its text."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def _timed(self, run: Callable[..., Any], sql: str, *args: Any) -> Any:
        started = time.perf_counter()
        result = run(sql, *args)
        key = re.sub(r"\s+", " ", sql).strip()[:100]
        count, total = STATEMENTS.get(key, (0, 0.0))
        STATEMENTS[key] = (count + 1, total + time.perf_counter() - started)
        return result

    def execute(self, sql: str, *args: Any) -> Any:
        return self._timed(self._conn.execute, sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        return self._timed(self._conn.executemany, sql, *args)


def timed_parse() -> None:
    original = clients_file.parse_rows

    def parse_rows(*args: Any, **kwargs: Any) -> Iterator[Any]:
        rows = original(*args, **kwargs)
        while True:
            started = time.perf_counter()
            try:
                entry = next(rows)
            except StopIteration:
                add(PHASES, "parse", time.perf_counter() - started)
                return
            add(PHASES, "parse", time.perf_counter() - started)
            yield entry

    clients_file.parse_rows = parse_rows  # type: ignore[assignment]


def main() -> None:
    if len(sys.argv) > 1:
        path = Path(sys.argv[1])
    else:
        path = Path(tempfile.gettempdir()) / "beeline-missed-bench-600000.csv"
        if not path.exists():
            write_export(path, 600_000)
    for name, phase in [
        ("_stage", "stage"),
        ("_match", "match"),
        ("_apply", "write"),
        ("_next_changed", "write"),
        ("_shared_numbers", "shared"),
    ]:
        timed_method(name, phase)
    timed_parse()
    conn_of = base.Part.conn.fget
    assert conn_of is not None
    base.Part.conn = property(lambda part: TimedConnection(conn_of(part)))  # type: ignore[assignment]
    with tempfile.TemporaryDirectory(prefix="profile-import-") as home:
        register = Register.open(Path(home) / "register.sqlite")
        started = time.perf_counter()
        cpu = time.process_time()
        _, parsed, counts = clients_file.import_file(register, path)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    PHASES["stage"] -= PHASES.get("parse", 0.0)
    PHASES["the rest"] = wall - sum(PHASES.values())
    print(f"file: {path}, {parsed.rows_read:,} rows, {counts['added']:,} added")
    print(f"total: {wall:.2f} s wall, {cpu:.2f} s CPU")
    for phase, seconds in PHASES.items():
        print(f"  {phase:<13} {seconds:6.2f} s")
    print(f"SQL statements ({sum(t for _, t in STATEMENTS.values()):.2f} s), largest first:")
    for sql, (count, seconds) in sorted(STATEMENTS.items(), key=lambda kv: -kv[1][1])[:15]:
        print(f"  {seconds:6.2f} s {count:5d}×  {sql}")


if __name__ == "__main__":
    main()
