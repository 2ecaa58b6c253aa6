"""What staff's most frequent command loads: `list --json` (cron, scripts, the panel's
neighbours) must not pay for the libraries only tables, migrations or imports use
(docs/benchmarks.md, `list`: each costs 10-40 ms of every run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from beeline_missed.store import Register
from tests.support.factories import add_call

HEAVY = ("rich", "sqlite_utils", "phonenumbers", "openpyxl", "textual", "httpx")

PROBE = """
import json, sys
from beeline_missed.cli import app
sys.argv = ["beeline-missed", "--db", sys.argv[1], *sys.argv[2:]]
try:
    app()
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)
"""


def loaded_by(db: Path, *command: str) -> tuple[str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), str(db), *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout, json.loads(done.stderr.strip().splitlines()[-1])


def test_list_as_json_loads_none_of_the_heavy_libraries(tmp_path: Path) -> None:
    db = tmp_path / "register.sqlite"
    register = Register.open(db)
    add_call(register, "s1", "+79161234567")
    register.close()
    out, heavy = loaded_by(db, "list", "--json")
    assert [call["phone"] for call in json.loads(out)] == ["+79161234567"]
    assert heavy == []


def test_the_probe_sees_a_table_load_rich(tmp_path: Path) -> None:
    db = tmp_path / "register.sqlite"
    register = Register.open(db)
    add_call(register, "s1", "+79161234567")
    register.close()
    _, heavy = loaded_by(db, "list")
    assert "rich" in heavy
