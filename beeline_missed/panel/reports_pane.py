"""The «Отчёты» tab: a period, up to three grouping levels and filters from the register's
fields, the report's table, and export. The report itself is reports.py's (the same engine as
`beeline-missed report`); its lines and number formats are report_formats.py's."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Input, Label, Select, Static

from beeline_missed import timefmt
from beeline_missed.config import Settings
from beeline_missed.errors import UserError

PERIOD_LABELS = {
    "today": "Сегодня",
    "yesterday": "Вчера",
    "week": "Эта неделя",
    "last-week": "Прошлая неделя",
    "month": "Этот месяц",
    "last-month": "Прошлый месяц",
    "range": "С … по …",
}
EXPORT_FORMATS = {"xlsx": "Excel (xlsx)", "csv": "CSV", "html": "HTML", "json": "JSON"}
OPERATOR_LABELS = {
    "=": "равно",
    "!=": "не равно",
    "~": "содержит",
    "!~": "не содержит",
    ">=": "не раньше / не меньше",
    "<=": "не позже / не больше",
}
GROUP_LEVELS = 3


class ReportsPane(Vertical):
    def __init__(
        self,
        settings: Settings,
        zone: tzinfo,
        clock: Callable[[], datetime] = timefmt.now_utc,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.zone = zone
        self.clock = clock
        self.filters: list[Any] = []  # report_spec.Filter
        self.report: Any = None  # the last reports.Report shown

    def compose(self) -> ComposeResult:
        from beeline_missed.reports import spec as report_spec

        field_options = [(f.label, f.name) for f in report_spec.FIELDS.values()]
        with Horizontal(classes="report-row"):
            yield Label("Период", classes="report-label")
            yield Select(
                [(label, key) for key, label in PERIOD_LABELS.items()],
                value="today",
                allow_blank=False,
                id="report-period",
                compact=True,
            )
            for edge, hint in (("from", "с ДД.ММ.ГГГГ"), ("to", "по ДД.ММ.ГГГГ")):
                yield Input(
                    placeholder=hint, id=f"report-{edge}", classes="date hidden", compact=True
                )
        with Horizontal(classes="report-row"):
            yield Label("Группировки", classes="report-label")
            for level in range(1, GROUP_LEVELS + 1):
                yield Select(
                    field_options,
                    prompt="—",
                    value="day" if level == 1 else Select.NULL,
                    id=f"report-group-{level}",
                    classes="report-group",
                    compact=True,
                )
        with Horizontal(classes="report-row"):
            yield Label("Отбор", classes="report-label")
            yield Select(field_options, prompt="поле", id="filter-field", compact=True)
            yield Select(
                [(label, op) for op, label in OPERATOR_LABELS.items()],
                value="=",
                allow_blank=False,
                id="filter-op",
                compact=True,
            )
            yield Input(placeholder="значение", id="filter-value", compact=True)
            yield Button("Добавить", id="filter-add", compact=True)
            yield Button("Сбросить", id="filter-clear", compact=True)
        yield Static("Отбор: все звонки", id="report-filters")
        with Horizontal(classes="report-row"):
            yield Button("Сформировать", id="report-run", variant="primary", compact=True)
            yield Select(
                [(label, key) for key, label in EXPORT_FORMATS.items()],
                value="xlsx",
                allow_blank=False,
                id="export-format",
                compact=True,
            )
            yield Button("Выгрузить", id="report-export", compact=True)
        yield Static("", id="report-title")
        yield Static("", id="report-error", classes="hidden")
        yield DataTable(id="report-table", cursor_type="row", zebra_stripes=True)

    # -- choices --------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.run_report()

    @on(Select.Changed, "#report-period")
    def _period_changed(self, event: Select.Changed) -> None:
        custom = event.value == "range"
        for widget in self.query(".date"):
            widget.set_class(not custom, "hidden")
        if not custom:
            self.run_report()

    @on(Select.Changed, ".report-group")
    def _groups_changed(self) -> None:
        self.run_report()

    def spec(self) -> Any:
        """The chosen report as a report_spec.Spec; UserError for a bad date or grouping."""
        from beeline_missed.reports import spec as report_spec

        period_key = str(self.query_one("#report-period", Select).value)
        today = self.clock().astimezone(self.zone).date()
        if period_key == "range":
            period = report_spec.resolve_period(
                None,
                self.query_one("#report-from", Input).value.strip() or None,
                self.query_one("#report-to", Input).value.strip() or None,
                self.zone,
                today=today,
            )
        else:
            period = report_spec.resolve_period(period_key, None, None, self.zone, today=today)
        groups: list[str] = []
        for level in range(1, GROUP_LEVELS + 1):
            value = self.query_one(f"#report-group-{level}", Select).value
            if value is not Select.NULL and str(value) not in groups:
                groups.append(str(value))
        return report_spec.Spec(
            period=period,
            group_by=tuple(groups),
            filters=tuple(self.filters),
            zone_name=str(getattr(self.zone, "key", self.zone)),
            deadlines=tuple(minutes * 60 for minutes in self.settings.callback_deadlines),
        )

    def show_error(self, text: str) -> None:
        error = self.query_one("#report-error", Static)
        error.update(text)
        error.set_class(not text, "hidden")

    @on(Button.Pressed, "#filter-add")
    @on(Input.Submitted, "#filter-value")
    def add_filter(self) -> None:
        from beeline_missed.reports import spec as report_spec

        field = self.query_one("#filter-field", Select).value
        if field is Select.NULL:
            self.show_error("Выберите поле для отбора.")
            return
        op = str(self.query_one("#filter-op", Select).value)
        value = self.query_one("#filter-value", Input).value.strip()
        try:
            self.filters.append(report_spec.make_filter(str(field), op, value))
        except UserError as exc:
            self.show_error(exc.text(russian=True))
            return
        self.query_one("#filter-value", Input).value = ""
        self._show_filters()
        self.run_report()

    @on(Button.Pressed, "#filter-clear")
    def clear_filters(self) -> None:
        self.filters.clear()
        self._show_filters()
        self.run_report()

    def _show_filters(self) -> None:
        if not self.filters:
            text = "Отбор: все звонки"
        else:
            parts = [
                f"{f.field.label} {OPERATOR_LABELS.get(f.op, f.op)} «{f.value}»"
                for f in self.filters
            ]
            text = "Отбор: " + "; ".join(parts)
        self.query_one("#report-filters", Static).update(text)

    # -- the report -----------------------------------------------------------------------

    @on(Button.Pressed, "#report-run")
    @on(Input.Submitted, "#report-from, #report-to")
    def run_report(self) -> None:
        self.show_error("")
        try:
            spec = self.spec()
        except UserError as exc:
            self.show_error(exc.text(russian=True))
            return
        self.build(spec)

    @work(thread=True, exclusive=True, group="report")
    def build(self, spec: Any) -> None:
        """reports.build_report opens its own read-only connection: safe in a thread."""
        from beeline_missed.reports import engine as reports

        try:
            report = reports.build_report(self.settings.db, spec)
        except UserError as exc:
            self.app.call_from_thread(self.show_error, exc.text(russian=True))
            return
        self.app.call_from_thread(self.show_report, report)

    def show_report(self, report: Any) -> None:
        from beeline_missed.reports import formats as rf
        from beeline_missed.reports.engine import MEASURE_LABELS

        self.report = report
        table = self.query_one("#report-table", DataTable)
        table.clear(columns=True)
        for header in rf.key_headers(report):
            table.add_column(header)
        for key in rf.MEASURES:
            table.add_column(MEASURE_LABELS[key])
        for line in rf.lines(report, repeat_parents=False):
            style = "bold" if line.kind != "leaf" else ""
            cells = [*line.keys, *rf.human_measures(line.measures)]
            table.add_row(*(Text(cell, style=style) for cell in cells))
        self.query_one("#report-title", Static).update(report.title())

    @on(Button.Pressed, "#report-export")
    def export(self) -> None:
        from beeline_missed.files import write_atomic
        from beeline_missed.reports import formats as rf

        if self.report is None:
            self.show_error("Сначала сформируйте отчёт.")
            return
        fmt = str(self.query_one("#export-format", Select).value)
        period = self.report.period
        name = f"report-{period.first:%Y-%m-%d}-{period.last:%Y-%m-%d}.{fmt}"
        path = self.settings.home / "reports" / name
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, rf.render(self.report, fmt))
        except OSError as exc:
            self.show_error(f"Не удалось записать {path}: {exc.strerror or exc}.")
            return
        except UserError as exc:
            self.show_error(exc.text(russian=True))
            return
        self.show_error("")
        self.notify(f"Отчёт выгружен: {path}", title="Выгрузка", timeout=10)
