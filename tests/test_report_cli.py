"""`beeline-missed report` end to end: every format parsed back, --output, errors."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from beeline_missed.cli import app
from beeline_missed.store import Register
from tests.support.report_data import fill

runner = CliRunner()
PERIOD = ["--from", "2026-10-26", "--to", "2026-11-08"]
NESTED = [*PERIOD, "--group-by", "week", "--group-by", "user"]


@pytest.fixture(autouse=True)
def filled(register: Register) -> None:
    fill(register)


def report(*args: str) -> str:
    result = runner.invoke(app, ["report", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_json_rows_and_total() -> None:
    data = json.loads(report(*NESTED, "--format", "json"))
    assert [(r["week"], r["user"], r["calls"]) for r in data["rows"]] == [
        ("2026-10-26", "Иванов", 1),
        ("2026-10-26", "Петрова", 1),
        ("2026-10-26", None, 1),
        ("2026-11-02", "Иванов", 1),
        ("2026-11-02", "Петрова", 1),
        ("2026-11-02", None, 1),
    ]
    assert [(s["week"], s["calls"], s["callers"]) for s in data["subtotals"]] == [
        ("2026-10-26", 3, 2),
        ("2026-11-02", 3, 2),
    ]
    assert data["total"] == {
        "calls": 6,
        "callers": 3,
        "called_back": 4,
        "missed": 2,
        "share_called_back": 0.6667,
        "callback_median_seconds": 2700,
        "callback_max_seconds": 7200,
        # Callbacks after 600, 1800, 3600 and 7200 s against the default 15 and 60 minutes.
        "returned_within_15_min": 1,
        "returned_within_60_min": 3,
        "returned_later": 1,
        "never_returned": 2,
        "backlog": 2,
        "callback_p90_seconds": 7200,
        "attempts": 0,
    }
    assert data["period"]["timezone"] == "Europe/Moscow"
    assert json.loads(report(*NESTED, "--json")) == data


def test_where_as_three_words_or_one() -> None:
    three = json.loads(report(*PERIOD, "--where", "user", "=", "Петрова", "--json"))
    one = json.loads(report(*PERIOD, "--where", "user=Петрова", "--json"))
    assert three["total"]["calls"] == one["total"]["calls"] == 2
    both = report(*PERIOD, "--where", "client", "~", "ромашка", "--where", "line=201", "--json")
    assert json.loads(both)["total"]["calls"] == 1
    spaced = report(*PERIOD, "--where", "client ~ ооо ромашка", "--json")
    assert json.loads(spaced)["filters"] == ["client ~ ооо ромашка"]
    assert json.loads(spaced)["total"]["calls"] == 1


def test_csv_opens_in_excel_and_parses_back() -> None:
    result = runner.invoke(app, ["report", *NESTED, "--format", "csv"])
    assert result.exit_code == 0, result.output
    raw = result.stdout_bytes
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    assert rows[0][:4] == ["Неделя", "Сотрудник", "Звонков", "Абонентов"]
    assert rows[0][6] == "Доля перезвонов, %"
    assert rows[1][:9] == ["26.10–01.11.2026", "", "3", "2", "2", "1", "66,7", "0:35:00", "1:00:00"]
    assert rows[0][9:] == [
        "Перезвонили ≤ 15 мин",
        "Перезвонили ≤ 60 мин",
        "Перезвонили позже",
        "Не перезвонили",
        "Открыты на конец периода",
        "90-й перцентиль до перезвона, ч:мм:сс",
        "Попыток без разговора",
    ]
    assert rows[1][9:] == ["1", "2", "0", "1", "1", "1:00:00", "0"]
    assert rows[2][:9] == [
        "26.10–01.11.2026",
        "Иванов",
        "1",
        "1",
        "1",
        "0",
        "100,0",
        "0:10:00",
        "0:10:00",
    ]
    assert rows[4][:3] == ["26.10–01.11.2026", "—", "1"]
    assert rows[-1] == ["Итого", "", "6", "3", "4", "2", "66,7", "0:45:00", "2:00:00",
                        "1", "3", "1", "2", "2", "2:00:00", "0"]  # fmt: skip
    assert len(rows) == 1 + 2 + 6 + 1


def test_xlsx_parses_back_with_outline(tmp_path: Path) -> None:
    path = tmp_path / "report.xlsx"
    report(*NESTED, "--output", str(path))  # the format follows the suffix
    sheet = load_workbook(path).active
    assert sheet["A1"].value.startswith("Пропущенные звонки за 26.10.2026 – 08.11.2026")
    assert [c.value for c in sheet[2]][:3] == ["Неделя", "Сотрудник", "Звонков"]
    values = [[c.value for c in row] for row in sheet.iter_rows(min_row=3)]
    assert values[0][:6] == ["26.10–01.11.2026", None, 3, 2, 2, 1]
    assert values[0][6] == pytest.approx(2 / 3)
    assert values[0][7] == timedelta(seconds=2100)  # typed: Excel can sum it
    assert values[1][:3] == ["26.10–01.11.2026", "Иванов", 1]
    assert values[-1][:3] == ["Итого", None, 6]
    assert values[-1][8] == timedelta(hours=2)
    assert sheet.row_dimensions[4].outline_level == 1  # a user under its week
    assert sheet.row_dimensions[3].outline_level == 0
    assert sheet.cell(3, 8).number_format == "[h]:mm:ss"


def test_html_is_self_contained_with_table_and_chart(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    report(*NESTED, "--format", "html", "--output", str(path))
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "<table>" in page and "<svg" in page
    assert not re.search(r"""(src|href)\s*=|@import|url\(""", page)  # nothing fetched
    assert '<tr class="total"><td>Итого</td><td></td><td class="n">6</td>' in page
    assert "<td>Иванов</td>" in page
    assert page.count("<rect") - page.count('<rect class="dist"') == 4  # called back + missed
    # The distribution: per week, within 15 min, 15–60 min, later, never.
    assert page.count('<rect class="dist"') == 8
    assert "<title>до 15 мин: 1</title>" in page and "<title>15–60 мин: 1</title>" in page
    assert "<title>позже 60 мин: 0</title>" in page and "<title>не перезвонили: 1</title>" in page
    assert "<title>Перезвонили: 2</title>" in page


def test_table_in_a_pipe_has_no_colour() -> None:
    out = report(*NESTED)
    assert "\x1b[" not in out
    assert "Итого" in out and "Медиана до перезвона" in out
    line = next(row for row in out.splitlines() if "Итого" in row)
    assert re.findall(r"\d+(?:,\d)? ?%?", line)[:6] == ["6 ", "3 ", "4 ", "2 ", "66,7 %", "45 "]
    assert "45 мин" in line and "2 ч 00 мин" in line


def test_output_is_written_atomically(tmp_path: Path) -> None:
    path = tmp_path / "out" / "r.json"
    path.parent.mkdir()
    path.write_text("old")
    result = runner.invoke(app, ["report", *PERIOD, "--json", "--output", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # quiet for cron
    assert json.loads(path.read_text())["total"]["calls"] == 6
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.json"]  # no temp file left


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--group-by", "colour"], "Unknown field 'colour'"),
        (["--where", "colour = red"], "Unknown field 'colour'"),
        (["--from", "2026-11-31"], "Bad --from date '2026-11-31'"),
        (["--from", "2026-11-08", "--to", "2026-11-01"], "The period is empty"),
        (["--period", "decade"], "Unknown period 'decade'"),
        (["--format", "pdf"], "Unknown format 'pdf'"),
        (["--where", "status ~ miss"], "works on text fields only"),
        (["--output", "/nonexistent-dir/r.csv"], "Cannot write /nonexistent-dir/r.csv"),
        (
            ["--format", "csv", "--output", "r.xlsx"],
            "--format csv does not match the output file's suffix .xlsx",
        ),
        (
            ["--json", "--output", "r.HTML"],
            "--format json does not match the output file's suffix .HTML",
        ),
    ],
)
def test_bad_input_is_one_sentence(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["report", *args])
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.output.startswith("Error: ")


def test_as_a_cron_job_would_run_it(db_path: Path, tmp_path: Path, home: Path) -> None:
    """A real process with no terminal: no prompt, no colour, the file in place, exit 0."""
    out = tmp_path / "weekly.csv"
    done = subprocess.run(
        [sys.executable, "-m", "beeline_missed", "--db", str(db_path), "report", *PERIOD,
         "--group-by", "day", "--output", str(out)],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""
    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8-sig")), delimiter=";"))
    assert [r[0] for r in rows[1:]] == [
        "31.10.2026",
        "01.11.2026",
        "02.11.2026",
        "03.11.2026",
        "Итого",
    ]
    bad = subprocess.run(
        [sys.executable, "-m", "beeline_missed", "report", "--group-by", "nope"],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60, check=False,
    )  # fmt: skip
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("Error: Unknown field 'nope'")


def test_a_format_that_agrees_with_the_suffix_is_written(tmp_path: Path) -> None:
    page = tmp_path / "week.htm"  # .htm names html as .html does
    report(*NESTED, "--output", str(page))
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    data = tmp_path / "week.JSON"
    report(*NESTED, "--format", "JSON", "--output", str(data))
    assert json.loads(data.read_text(encoding="utf-8"))["total"]["calls"] == 6


def test_table_to_a_file_is_plain_text(tmp_path: Path) -> None:
    path = tmp_path / "weekly.txt"  # not a format's suffix: the table, as on screen
    report(*NESTED, "--output", str(path))
    text = path.read_text(encoding="utf-8")
    assert "\x1b[" not in text
    assert text.lstrip().startswith("Пропущенные звонки за 26.10.2026 – 08.11.2026")
    assert "26.10–01.11.2026" in text and "Итого" in text


def test_fmt_github_is_a_markdown_table_of_the_same_lines() -> None:
    assert report(*NESTED, "--fmt", "github") == (
        "| Неделя           | Сотрудник   |   Звонков |   Абонентов |   Перезвонили |   Пропущены "
        "|   Доля перезвонов |   Медиана до перезвона |   Макс. до перезвона |\n"
        "|------------------|-------------|-----------|-------------|---------------|-------------"
        "|-------------------|------------------------|----------------------|\n"
        "| 26.10–01.11.2026 |             |         3 |           2 |             2 |           1 "
        "|            66,7 % |                 35 мин |           1 ч 00 мин |\n"
        "|                  | Иванов      |         1 |           1 |             1 |           0 "
        "|           100,0 % |                 10 мин |               10 мин |\n"
        "|                  | Петрова     |         1 |           1 |             1 |           0 "
        "|           100,0 % |             1 ч 00 мин |           1 ч 00 мин |\n"
        "|                  | —           |         1 |           1 |             0 |           1 "
        "|             0,0 % |                      — |                    — |\n"
        "| 02.11–08.11.2026 |             |         3 |           2 |             2 |           1 "
        "|            66,7 % |             1 ч 15 мин |           2 ч 00 мин |\n"
        "|                  | Иванов      |         1 |           1 |             1 |           0 "
        "|           100,0 % |                 30 мин |               30 мин |\n"
        "|                  | Петрова     |         1 |           0 |             1 |           0 "
        "|           100,0 % |             2 ч 00 мин |           2 ч 00 мин |\n"
        "|                  | —           |         1 |           1 |             0 |           1 "
        "|             0,0 % |                      — |                    — |\n"
        "| Итого            |             |         6 |           3 |             4 |           2 "
        "|            66,7 % |                 45 мин |           2 ч 00 мин |\n"
    )


def test_fmt_to_a_file_and_in_other_styles(tmp_path: Path) -> None:
    path = tmp_path / "weekly.txt"
    report(*PERIOD, "--fmt", "plain", "--output", str(path))
    assert path.read_text(encoding="utf-8") == (
        "Период                     Звонков    Абонентов    Перезвонили    Пропущены"
        "    Доля перезвонов    Медиана до перезвона    Макс. до перезвона\n"
        "26.10.2026 – 08.11.2026          6            3              4            2"
        "             66,7 %                  45 мин            2 ч 00 мин\n"
    )
    tsv = report(*PERIOD, "--group-by", "line", "--fmt", "tsv").splitlines()
    assert [[cell.strip() for cell in row.split("\t")[:3]] for row in tsv] == [
        ["Линия", "Звонков", "Абонентов"],
        ["200", "5", "2"],
        ["201", "1", "1"],
        ["Итого", "6", "3"],
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fmt", "fancy"], "Unknown table style 'fancy'; use one of: asciidoc, "),
        (["--fmt", "github", "--format", "csv"], "--fmt styles the table, not csv output."),
        (["--fmt", "github", "--json"], "--fmt styles the table, not json output."),
        (["--fmt", "github", "-o", "r.xlsx"], "--fmt styles the table, not xlsx output."),
    ],
)
def test_bad_fmt_is_one_sentence(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["report", *PERIOD, *args])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {message}")
    assert len(result.output.strip().splitlines()) == 1
