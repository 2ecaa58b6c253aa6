"""Mutation testing of the rule modules, one module at a time against its own fast tests.

    .venv/bin/python tools/mutation.py                 # every module in MODULES
    .venv/bin/python tools/mutation.py card hours      # some of them
    .venv/bin/python tools/mutation.py --show card     # the last run's figures and survivors

For each module it builds a workspace `build/mutation/<module>/` (a copy of the package and the
tests, and a pyproject.toml whose [tool.mutmut] is the project's with only that module to mutate
and only its test files to run), runs `mutmut run` there under `nice -n 19` and a time limit,
and prints killed/total. End-to-end tests (marked `e2e`: they start the daemon or a
subprocess) never run. `make mutation` runs this; it is not part of `make test`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "mutation"

# module -> its fast test files
MODULES: dict[str, list[str]] = {
    "detection": [
        "tests/test_detection_rules.py",
        "tests/test_detection.py",
        "tests/test_detection_setups.py",
    ],
    "card": ["tests/test_card.py"],
    "hours": ["tests/test_hours.py", "tests/test_timezones.py"],
    "timefmt": ["tests/test_timefmt.py", "tests/test_timezones.py"],
    "reports": ["tests/test_reports.py", "tests/test_timezones.py"],
    "autoclose": [
        "tests/test_autoclose.py",
        "tests/test_honest_autoclose.py",
        "tests/test_timezones.py",
    ],
    "reconcile": ["tests/test_reconcile.py"],
    "claims": ["tests/test_claims.py"],
    "callback": ["tests/test_claims.py"],
    "staff": ["tests/test_staff.py"],
    "deadlines": ["tests/test_deadlines.py", "tests/test_timezones.py"],
    "escalation": ["tests/test_escalation.py", "tests/test_timezones.py"],
    "spool": ["tests/test_spool.py"],
    "phones": ["tests/test_phones.py", "tests/test_clients_rules.py"],
    "clients_file": [
        "tests/test_clients_rules.py",
        "tests/test_clients.py",
        "tests/test_bad_files.py",
    ],
    "onec_sync": [
        "tests/test_onec_records.py",
        "tests/test_onec_reports.py",
        "tests/test_onec.py",
    ],
}


# module -> its files
FILES: dict[str, list[str]] = {
    "detection": ["beeline_missed/rules/detection.py"],
    "card": ["beeline_missed/rules/card.py"],
    "hours": ["beeline_missed/rules/hours.py"],
    "timefmt": ["beeline_missed/timefmt.py"],
    "reports": ["beeline_missed/reports/engine.py", "beeline_missed/reports/spec.py"],
    "autoclose": ["beeline_missed/rules/autoclose.py"],
    "reconcile": ["beeline_missed/rules/reconcile.py"],
    "claims": ["beeline_missed/rules/claims.py"],
    "callback": ["beeline_missed/rules/callback.py"],
    "staff": ["beeline_missed/directory/staff.py"],
    "deadlines": ["beeline_missed/rules/deadlines.py"],
    "escalation": ["beeline_missed/rules/escalation.py"],
    "spool": ["beeline_missed/daemon/spool.py"],
    "phones": ["beeline_missed/phones.py"],
    "clients_file": ["beeline_missed/directory/clients_file.py"],
    "onec_sync": ["beeline_missed/onec/sync.py"],
}


def _toml_value(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def workspace(module: str) -> Path:
    """A fresh copy of the package and tests with a config for this module alone."""
    folder = WORK / module
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "__snapshots__")
    shutil.copytree(ROOT / "beeline_missed", folder / "beeline_missed", ignore=ignore)
    shutil.copytree(ROOT / "tests", folder / "tests", ignore=ignore)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    settings = dict(project["tool"]["mutmut"])
    settings["only_mutate"] = FILES[module]
    settings["pytest_add_cli_args_test_selection"] = MODULES[module]
    pytest_ini = dict(project["tool"]["pytest"]["ini_options"])
    pytest_ini.pop("testpaths", None)
    lines = ["[tool.mutmut]"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in settings.items()]
    lines += ["", "[tool.pytest.ini_options]"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in pytest_ini.items()]
    (folder / "pyproject.toml").write_text("\n".join(lines) + "\n", "utf-8")
    return folder


def results(folder: Path) -> dict[str, str]:
    """mutant name -> status, as `mutmut results --all true` prints them."""
    out = subprocess.run(
        [str(Path(sys.executable).parent / "mutmut"), "results", "--all", "true"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    found = {}
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and name.startswith("beeline_missed."):
            found[name] = status.strip()
    return found


# mutmut's verdicts: a timeout means the tests never finished with the mutant (an endless
# loop), which is a detection too; survivors, mutants no test reaches and mutants left
# unchecked by the time limit are the ones to look at.
DETECTED = ("killed", "timeout")
NOT_KILLED = ("survived", "no tests", "suspicious", "skipped")


def run(module: str, limit: int, children: int) -> dict[str, list[str]]:
    folder = workspace(module)
    mutmut = str(Path(sys.executable).parent / "mutmut")
    command = ["nice", "-n", "19", "timeout", str(limit), mutmut, "run"]
    command += ["--max-children", str(children)]
    env = {**os.environ, "TZ": "Europe/Moscow"}
    with (folder / "mutmut.log").open("w") as log:
        done = subprocess.run(command, cwd=folder, env=env, stdout=log, stderr=log, check=False)
    if done.returncode == 124:
        print(f"{module}: stopped after {limit} s; the figures below are partial", flush=True)
    by_status: dict[str, list[str]] = {}
    for name, status in sorted(results(folder).items()):
        by_status.setdefault(status, []).append(name)
    return by_status


def summary(module: str, by_status: dict[str, list[str]]) -> None:
    total = sum(map(len, by_status.values()))
    detected = sum(len(by_status.get(status, [])) for status in DETECTED)
    share = f"{100 * detected / total:.1f} %" if total else "-"
    counts = ", ".join(f"{status} {len(names)}" for status, names in sorted(by_status.items()))
    print(f"{module:10} {detected}/{total} killed ({share}): {counts}")
    for status in NOT_KILLED:
        for name in by_status.get(status, []):
            print(f"    {status:10} {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"default: {' '.join(MODULES)}")
    parser.add_argument("--limit", type=int, default=1800, help="seconds per module")
    parser.add_argument("--children", type=int, default=2, help="mutants tested at once")
    parser.add_argument("--show", action="store_true", help="the last run's figures, no new run")
    args = parser.parse_args(argv)
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown module(s) {', '.join(unknown)}; known: {', '.join(MODULES)}")
    scores = []
    for module in args.modules or list(MODULES):
        if args.show:
            by_status: dict[str, list[str]] = {}
            for name, status in sorted(results(WORK / module).items()):
                by_status.setdefault(status, []).append(name)
            scores.append((module, by_status))
            continue
        scores.append((module, run(module, args.limit, args.children)))
    for module, by_status in scores:
        summary(module, by_status)
    return 0


if __name__ == "__main__":
    sys.exit(main())
