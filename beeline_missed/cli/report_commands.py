"""The managers' command: `report`, a period report with filters and groups, in every format
cron can export."""

from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperCommand

from beeline_missed.cli.common import FmtOption, state
from beeline_missed.errors import UserError

app = typer.Typer()


# -- reports ------------------------------------------------------------------------------


class ReportCommand(TyperCommand):
    """Lets `--where FIELD OP VALUE` come as three words, as well as one ('user=Иванов')."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        from beeline_missed.reports.spec import OPERATORS

        merged: list[str] = []
        i = 0
        while i < len(args):
            if args[i] == "--where" and i + 3 < len(args) and args[i + 2] in OPERATORS:
                merged += ["--where", f"{args[i + 1]} {args[i + 2]} {args[i + 3]}"]
                i += 4
                continue
            merged.append(args[i])
            i += 1
        return super().parse_args(ctx, merged)


@app.command("report", cls=ReportCommand)
def report(
    ctx: typer.Context,
    period: Annotated[
        str | None,
        typer.Option(
            "--period",
            metavar="PERIOD",
            help="today, yesterday, week, last-week, month or last-month (local calendar); "
            "default: today.",
        ),
    ] = None,
    date_from: Annotated[
        str | None,
        typer.Option("--from", metavar="DATE", help="First local day, YYYY-MM-DD or DD.MM.YYYY."),
    ] = None,
    date_to: Annotated[
        str | None,
        typer.Option("--to", metavar="DATE", help="Last local day, inclusive; default: today."),
    ] = None,
    where: Annotated[
        list[str] | None,
        typer.Option(
            "--where",
            metavar="FIELD OP VALUE",
            help="Keep calls where FIELD OP VALUE; OP is = != ~ (contains, any case) !~ < <= > "
            ">=. Repeat to combine with AND. Quote ~ < > for the shell, or write 'client~рога'.",
        ),
    ] = None,
    group_by: Annotated[
        list[str] | None,
        typer.Option(
            "--group-by",
            metavar="FIELD",
            help="Group by FIELD; repeat for nested groups with subtotals. Fields: day, week, "
            "month, hour, weekday, phone, client, line, status, result, user, handled, "
            "closed_by, source, outside_hours.",
        ),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            metavar="FORMAT",
            help="table, csv, json, xlsx or html; default: from the --output suffix, else table.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", metavar="FILE", help="Write to FILE atomically instead of stdout."
        ),
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    style: FmtOption = None,
) -> None:
    """Missed calls over a period: filtered, grouped, with subtotals; for people and cron.

    Measures: calls, distinct callers (hidden numbers not counted), called back, still
    missed, share called back, median and longest time from the call to the callback.
    Dates are local (timezone setting, else this machine's zone). week starts on Monday;
    hour is the hour of the day (0-23); weekday is 1 (Monday) to 7; status takes missed,
    called_back or «Пропущен», «Перезвонили»; phone = hidden picks hidden numbers.

    Examples:

    \b
      beeline-missed report --period yesterday --group-by user
      beeline-missed report --period last-month --group-by week --group-by line -o month.xlsx
      beeline-missed report --from 01.11.2026 --to 30.11.2026 --where status = missed --json
      beeline-missed report --period last-week --group-by user --fmt github   # for a wiki
      # crontab: last week's report as a page, every Monday at 07:00
      0 7 * * 1  beeline-missed report --period last-week --group-by day -o /srv/week.html
    """
    import sys

    from beeline_missed import timefmt
    from beeline_missed.files import write_atomic
    from beeline_missed.reports import engine as reports
    from beeline_missed.reports import formats as report_formats
    from beeline_missed.reports import spec as report_spec
    from beeline_missed.views.output import console, print_text, table_style

    settings = state(ctx).settings()
    chosen = report_formats.choose(
        "json" if json_ else fmt, output.suffix if output is not None else ""
    )
    if style is not None:
        style = table_style(style)
        if chosen != "table":  # from --format, --json or the --output suffix
            raise UserError(f"--fmt styles the table, not {chosen} output.")
    zone = timefmt.local_zone(settings.timezone)
    spec = report_spec.Spec(
        period=report_spec.resolve_period(period, date_from, date_to, zone),
        group_by=tuple(report_spec.get_field(name).name for name in group_by or []),
        filters=tuple(report_spec.parse_where(text) for text in where or []),
        zone_name=str(getattr(zone, "key", None) or settings.timezone or zone),
        deadlines=tuple(minutes * 60 for minutes in settings.callback_deadlines),
    )
    if chosen == "xlsx" and output is None and sys.stdout.isatty():
        raise UserError("An xlsx report is binary: give --output FILE or redirect stdout.")
    result = reports.build_report(settings.db, spec)
    if style is not None:
        text = report_formats.plain_table(result, style)
        if output is not None:
            write_atomic(output, (text + "\n").encode("utf-8"))
        else:
            print_text(text)
    elif output is not None:
        write_atomic(output, report_formats.render(result, chosen))
    elif chosen == "table" and console.is_terminal:
        report_formats.print_table(result, console)
    else:  # a pipe or a cron mail: plain text, wide enough not to wrap the figures
        sys.stdout.flush()
        sys.stdout.buffer.write(report_formats.render(result, chosen))
        sys.stdout.buffer.flush()
