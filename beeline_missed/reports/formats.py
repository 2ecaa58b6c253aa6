"""A report as people and programs read it: table, csv, json, xlsx, html.

Every format shows the same lines in the same order: each group followed by its nested
groups (a 1C report's layout), then the grand total. Labels are Russian; JSON keeps the
stored values and seconds for scripts.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from beeline_missed import timefmt
from beeline_missed.errors import UserError
from beeline_missed.reports.engine import (
    DEADLINE_LABELS,
    MEASURE_LABELS,
    Group,
    Measures,
    Report,
    deadline_label,
)

FORMATS = ("table", "csv", "json", "xlsx", "html")
# A file's suffix that names a format; any other suffix (.txt, none) gets the table as text.
SUFFIX_FORMATS = {".csv": "csv", ".json": "json", ".xlsx": "xlsx", ".html": "html", ".htm": "html"}
TOTAL = "Итого"
MEASURES = tuple(MEASURE_LABELS)
CHART_LIMIT = 60  # bars; a longer chart stops being readable in a mail


def choose(given: str | None, suffix: str) -> str:
    """The format of a report: the one given (--format, --json), else the one the output
    file's suffix names, else the table. A given format that contradicts the suffix (csv
    into report.xlsx) is refused: the file would not open as what its name says."""
    named = SUFFIX_FORMATS.get(suffix.lower())
    if given is None:
        return named or "table"
    chosen = given.lower()
    if chosen not in FORMATS:
        raise UserError(f"Unknown format {given!r}; use one of: {', '.join(FORMATS)}.")
    if named is not None and named != chosen:
        raise UserError(
            f"--format {chosen} does not match the output file's suffix {suffix}: "
            f"name the file for its format, or leave --format out to follow the suffix."
        )
    return chosen


@dataclass(frozen=True)
class Line:
    kind: str  # 'leaf' | 'subtotal' | 'total'
    level: int
    keys: list[str]  # display values, '' where the line has no value for that field
    measures: Measures


def lines(report: Report, repeat_parents: bool) -> Iterator[Line]:
    """The lines of every format; `repeat_parents` fills the parents' columns on each line."""
    depth = len(report.group_by)
    for group in report.walk():
        shown = [f.display(v) for f, v in zip(report.group_by, group.keys, strict=False)]
        if not repeat_parents:
            shown = [""] * (group.level - 1) + shown[group.level - 1 :]
        shown += [""] * (depth - group.level)
        kind = "leaf" if group.level == depth else "subtotal"
        yield Line(kind, group.level, shown, group.measures)
    keys = [TOTAL] + [""] * (depth - 1) if depth else [report.period.label()]
    yield Line("total", 0, keys, report.total)


def key_headers(report: Report) -> list[str]:
    return [f.label for f in report.group_by] if report.group_by else ["Период"]


def duration(seconds: float | None) -> str:
    """'45 с', '42 мин', '2 ч 05 мин', '3 д 4 ч' — how long until the callback."""
    return timefmt.duration(seconds)


def clock(seconds: float | None) -> str:
    """'1:05:00': hours may pass 24; Excel reads it as a duration."""
    if seconds is None:
        return ""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def percent(share: float | None, sign: bool = True) -> str:
    if share is None:
        return "—" if sign else ""
    text = f"{share * 100:.1f}".replace(".", ",")
    return f"{text} %" if sign else text


def human_measures(m: Measures) -> list[str]:
    return [
        str(m.calls),
        str(m.callers),
        str(m.called_back),
        str(m.missed),
        percent(m.share_called_back),
        duration(m.callback_median_seconds),
        duration(m.callback_max_seconds),
    ]


def deadline_headers(report: Report) -> list[str]:
    """The deadline measures' headers, after the others (csv, xlsx, html)."""
    return [
        *(deadline_label(limit) for limit in report.total.deadlines),
        *DEADLINE_LABELS.values(),
    ]


def deadline_values(m: Measures) -> list[Any]:
    """Counts as numbers, the 90th percentile in seconds (None when nobody was called back)."""
    within = list(m.returned_within or (0,) * len(m.deadlines))
    return [*within, m.returned_later, m.never_returned, m.backlog, m.callback_p90_seconds,
            m.attempts]  # fmt: skip


def human_deadlines(m: Measures) -> list[str]:
    values = deadline_values(m)
    values[-2] = duration(values[-2])
    return [str(v) for v in values]


def deadline_summary(report: Report) -> str:
    """One line under the terminal table: the total's deadline measures."""
    m = report.total
    within = m.returned_within or (0,) * len(m.deadlines)
    parts = [
        f"≤ {limit / 60:g} мин: {count}" for limit, count in zip(m.deadlines, within, strict=True)
    ]
    parts += [
        f"позже: {m.returned_later}",
        f"не перезвонили: {m.never_returned}",
        f"открыты на конец периода: {m.backlog}",
        f"90-й перцентиль: {duration(m.callback_p90_seconds)}",
        f"попыток без разговора: {m.attempts}",
    ]
    return "Перезвонили " + " · ".join(parts)


# -- table ------------------------------------------------------------------------------


def print_table(report: Report, console: Any) -> None:
    from rich.table import Table

    table = Table(title=report.title(), show_lines=False, caption=deadline_summary(report))
    for header in key_headers(report):
        table.add_column(header)
    for key in MEASURES:
        table.add_column(MEASURE_LABELS[key], justify="right", no_wrap=True)
    for line in lines(report, repeat_parents=False):
        style = "bold" if line.kind != "leaf" else None
        if line.kind == "total" and table.row_count:
            table.add_section()
        table.add_row(*line.keys, *human_measures(line.measures), style=style)
    console.print(table)


def table_text(report: Report, width: int = 160) -> bytes:
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, width=width, no_color=True, force_terminal=False)
    print_table(report, console)
    return buffer.getvalue().encode("utf-8")


def plain_table(report: Report, style: str) -> str:
    """The table in one of tabulate's styles (`report --fmt`), the same lines as on screen."""
    from tabulate import tabulate

    keys = key_headers(report)
    return tabulate(
        [[*line.keys, *human_measures(line.measures)] for line in lines(report, False)],
        headers=[*keys, *(MEASURE_LABELS[k] for k in MEASURES)],
        tablefmt=style,
        colalign=["left"] * len(keys) + ["right"] * len(MEASURES),
        disable_numparse=True,  # the figures are already written as people read them
    )


# -- csv --------------------------------------------------------------------------------


def to_csv(report: Report) -> bytes:
    """UTF-8 with a BOM and ';' between cells: what Russian Excel opens by double-click."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(
        [
            *key_headers(report),
            MEASURE_LABELS["calls"],
            MEASURE_LABELS["callers"],
            MEASURE_LABELS["called_back"],
            MEASURE_LABELS["missed"],
            MEASURE_LABELS["share_called_back"] + ", %",
            MEASURE_LABELS["callback_median_seconds"] + ", ч:мм:сс",
            MEASURE_LABELS["callback_max_seconds"] + ", ч:мм:сс",
            *[
                header + (", ч:мм:сс" if header == DEADLINE_LABELS["callback_p90_seconds"] else "")
                for header in deadline_headers(report)
            ],
        ]
    )
    for line in lines(report, repeat_parents=True):
        m = line.measures
        writer.writerow(
            [
                *line.keys,
                m.calls,
                m.callers,
                m.called_back,
                m.missed,
                percent(m.share_called_back, sign=False),
                clock(m.callback_median_seconds),
                clock(m.callback_max_seconds),
                *_with_clock(deadline_values(m)),
            ]
        )
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def _with_clock(values: list[Any]) -> list[Any]:
    values = list(values)
    values[-2] = clock(values[-2])
    return values


# -- json -------------------------------------------------------------------------------


def to_json(report: Report) -> bytes:
    return (json.dumps(report.as_json(), ensure_ascii=False, indent=2) + "\n").encode("utf-8")


# -- xlsx -------------------------------------------------------------------------------


def to_xlsx(report: Report) -> bytes:
    """A workbook with typed cells and Excel row outlines for the nested groups."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    book = Workbook()
    sheet = book.active
    sheet.title = "Отчёт"
    sheet.append([report.title()])
    sheet["A1"].font = Font(bold=True, size=13)
    headers = [
        *key_headers(report),
        *(MEASURE_LABELS[k] for k in MEASURES),
        *deadline_headers(report),
    ]
    sheet.append(headers)
    for cell in sheet[2]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    keys_width = len(key_headers(report))
    bold = Font(bold=True)
    for line in lines(report, repeat_parents=True):
        m = line.measures
        median = m.callback_median_seconds
        longest = m.callback_max_seconds
        sheet.append(
            [
                *(key or None for key in line.keys),  # an empty cell, not an empty string
                m.calls,
                m.callers,
                m.called_back,
                m.missed,
                m.share_called_back,
                None if median is None else median / 86400,
                None if longest is None else longest / 86400,
                *_p90_as_days(deadline_values(m)),
            ]
        )
        row = sheet.max_row
        sheet.cell(row, len(headers) - 1).number_format = "[h]:mm:ss"
        sheet.cell(row, keys_width + 5).number_format = "0.0%"
        sheet.cell(row, keys_width + 6).number_format = "[h]:mm:ss"
        sheet.cell(row, keys_width + 7).number_format = "[h]:mm:ss"
        if line.kind != "leaf":
            for cell in sheet[row]:
                cell.font = bold
        if line.kind != "total" and line.level > 1:
            sheet.row_dimensions[row].outline_level = line.level - 1
    sheet.sheet_properties.outlinePr.summaryBelow = False  # a group's line is above it
    sheet.freeze_panes = "A3"
    for index, header in enumerate(headers, 1):
        width = max(len(header) if index > keys_width else 10, 12)
        if index <= keys_width:
            width = max(
                [width] + [len(str(c.value or "")) for c in sheet[get_column_letter(index)][2:]]
            )
        sheet.column_dimensions[get_column_letter(index)].width = min(width + 2, 60)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _p90_as_days(values: list[Any]) -> list[Any]:
    values = list(values)
    values[-2] = None if values[-2] is None else values[-2] / 86400
    return values


# -- html -------------------------------------------------------------------------------

_STYLE = """
body { font: 14px/1.4 -apple-system, "Segoe UI", Roboto, Arial, sans-serif; color: #222;
       margin: 24px; }
h1 { font-size: 18px; margin: 0 0 4px; }
p.meta { color: #666; margin: 0 0 16px; }
table { border-collapse: collapse; margin-top: 16px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; }
th { background: #f3f3f3; text-align: left; vertical-align: top; }
td.n { text-align: right; white-space: nowrap; }
tr.subtotal td { font-weight: bold; background: #fafafa; }
tr.total td { font-weight: bold; background: #eef3fb; border-top: 2px solid #999; }
.legend span { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 12px; }
"""
_BACK = "#3b9b5b"
_MISSED = "#d9534f"
# The distribution of callback times: within each deadline, later, never.
_SHADES = ("#2e7d32", "#8bc34a", "#ffb300", "#fb8c00", "#e53935")


def _chart(report: Report) -> str:
    """Inline SVG: one bar per top-level group, split into called back and still missed."""
    groups: list[Group] = report.groups[:CHART_LIMIT]
    if report.group_by:
        bars = [(report.group_by[0].display(g.keys[0]), g.measures) for g in groups]
    else:
        bars = [(report.period.label(), report.total)]
    if not bars:
        return ""
    label_w, bar_w, row_h = 220, 440, 22
    top = max(m.calls for _, m in bars) or 1
    height = row_h * len(bars) + 8
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 80}" '
        f'height="{height}" role="img" aria-label="Звонков по группам">'
    ]
    for i, (label, m) in enumerate(bars):
        y = 4 + i * row_h
        back_w = bar_w * m.called_back / top
        missed_w = bar_w * m.missed / top
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" font-size="12">'
            f"{html.escape(label)}</text>"
            f'<rect x="{label_w}" y="{y + 2}" width="{back_w:.1f}" height="16" fill="{_BACK}">'
            f"<title>Перезвонили: {m.called_back}</title></rect>"
            f'<rect x="{label_w + back_w:.1f}" y="{y + 2}" width="{missed_w:.1f}" height="16" '
            f'fill="{_MISSED}"><title>Пропущены: {m.missed}</title></rect>'
            f'<text x="{label_w + back_w + missed_w + 6:.1f}" y="{y + 14}" font-size="12">'
            f"{m.calls}</text>"
        )
    parts.append("</svg>")
    note = ""
    if len(report.groups) > CHART_LIMIT:
        note = f"<p class='meta'>На графике первые {CHART_LIMIT} из {len(report.groups)} групп.</p>"
    legend = (
        f'<p class="legend">Звонков по группам:<span style="background:{_BACK}"></span>'
        f'перезвонили<span style="background:{_MISSED}"></span>пропущены</p>'
    )
    return legend + "".join(parts) + note


def distribution(m: Measures) -> list[tuple[str, int]]:
    """Callbacks by how long they took: (label, calls) from within the first deadline to
    never; each call in exactly one bucket."""
    within = list(m.returned_within or (0,) * len(m.deadlines))
    buckets = []
    low = 0.0
    for limit, count, before in zip(m.deadlines, within, [0, *within], strict=False):
        label = f"до {limit / 60:g} мин" if not low else f"{low / 60:g}–{limit / 60:g} мин"
        buckets.append((label, count - before))
        low = limit
    buckets.append((f"позже {low / 60:g} мин", m.returned_later))
    buckets.append(("не перезвонили", m.never_returned))
    return buckets


def _distribution_chart(report: Report) -> str:
    """Inline SVG: how long the callbacks took, one stacked bar per top-level group."""
    if report.group_by:
        bars = [
            (report.group_by[0].display(g.keys[0]), g.measures) for g in report.groups[:CHART_LIMIT]
        ]
    else:
        bars = [(report.period.label(), report.total)]
    if not bars or not report.total.calls:
        return ""
    label_w, bar_w, row_h = 220, 440, 22
    top = max(m.calls for _, m in bars) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 80}" '
        f'height="{row_h * len(bars) + 8}" role="img" aria-label="Время до перезвона">'
    ]
    for i, (label, m) in enumerate(bars):
        y = 4 + i * row_h
        x = float(label_w)
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" font-size="12">'
            f"{html.escape(label)}</text>"
        )
        for (name, count), shade in zip(distribution(m), _SHADES, strict=False):
            width = bar_w * count / top
            parts.append(
                f'<rect class="dist" x="{x:.1f}" y="{y + 2}" width="{width:.1f}" height="16" '
                f'fill="{shade}"><title>{html.escape(name)}: {count}</title></rect>'
            )
            x += width
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 14}" font-size="12">{m.calls}</text>')
    parts.append("</svg>")
    legend = "".join(
        f'<span style="background:{shade}"></span>{html.escape(name)}'
        for (name, _), shade in zip(distribution(report.total), _SHADES, strict=False)
    )
    return f'<p class="legend">Время до перезвона:{legend}</p>' + "".join(parts)


def to_html(report: Report) -> bytes:
    """One page with no external assets: safe to attach to a mail sent from cron."""
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in key_headers(report))
    head += "".join(f"<th>{esc(MEASURE_LABELS[k])}</th>" for k in MEASURES)
    head += "".join(f"<th>{esc(h)}</th>" for h in deadline_headers(report))
    body = []
    for line in lines(report, repeat_parents=False):
        cells = "".join(f"<td>{esc(k)}</td>" for k in line.keys)
        figures = [*human_measures(line.measures), *human_deadlines(line.measures)]
        cells += "".join(f'<td class="n">{esc(v)}</td>' for v in figures)
        body.append(f'<tr class="{line.kind}">{cells}</tr>')
    title = esc(report.title())
    zone = esc(report.zone_name)
    page = f"""<!DOCTYPE html>
<html lang="ru">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>{title}</h1>
<p class="meta">Время местное ({zone}).</p>
{_chart(report)}
{_distribution_chart(report)}
<table>
<thead><tr>{head}</tr></thead>
<tbody>
{chr(10).join(body)}
</tbody>
</table>
</body>
</html>
"""
    return page.encode("utf-8")


def render(report: Report, fmt: str) -> bytes:
    if fmt == "table":
        return table_text(report)
    if fmt == "csv":
        return to_csv(report)
    if fmt == "json":
        return to_json(report)
    if fmt == "xlsx":
        return to_xlsx(report)
    if fmt == "html":
        return to_html(report)
    raise ValueError(fmt)
