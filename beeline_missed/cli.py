"""The command line: parses options and calls the modules that hold the rules.

Heavy imports stay inside the commands so that `--help` answers fast. No
`from __future__ import annotations` here: Typer would evaluate every option's string annotation
at each start (~20 ms).
"""

import math
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from beeline_missed.config import MAX_SECONDS, Settings, show_number
from beeline_missed.errors import UserError
from beeline_missed.store import INBOX_STATES, MAX_ROWID

if TYPE_CHECKING:
    from beeline_missed.store import Call, Register

# Commands staff use: they speak Russian, errors included. The others are for admins.
STAFF_COMMANDS = {"list", "watch", "card", "clients", "panel"}


class AppGroup(TyperGroup):
    """Turns every user-facing error into one sentence on stderr and a non-zero exit."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        # Kept for invoke(): the words are checked there, where errors become sentences.
        ctx.meta["words"] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: typer.Context) -> Any:
        from beeline_missed.output import fail

        words: list[str] = ctx.meta.get("words", [])
        # The sub-command's name is the first word the group did not take as its own option.
        rest = len(ctx.args) + 1
        command = words[-rest] if len(words) >= rest else None
        staff = command in STAFF_COMMANDS
        try:
            check_words(words)
            return super().invoke(ctx)
        except UserError as exc:
            fail(exc.text(staff), russian=staff)
            ctx.exit(exc.exit_code)
        except sqlite3.Error as exc:
            if staff:
                fail(f"Реестром звонков не удалось воспользоваться: {exc}.", russian=True)
            else:
                fail(f"The register could not be used: {exc}.")
            ctx.exit(1)
        except KeyboardInterrupt:
            ctx.exit(130)


def check_words(words: list[str]) -> None:
    """Every word of the command line, before any command sees it: text that is not UTF-8
    (Python hands it over with lone surrogates) could be neither stored nor printed, and a
    NUL cannot be a file name; both are refused in one sentence rather than a traceback."""
    from beeline_missed.config import check_text

    for word in words:
        check_text(word, "An argument")
        if "\x00" in word:
            raise UserError(f"An argument contains a NUL character: {word!r}.")


app = typer.Typer(
    cls=AppGroup,
    help="Never lose a client's call: missed calls from the Beeline Cloud PBX, in a register.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
config_app = typer.Typer(help="Show or create the configuration file.", no_args_is_help=True)
app.add_typer(config_app, name="config")


class State:
    """What the global options say, and the settings resolved from them once."""

    def __init__(self, db: Path | None) -> None:
        self.db = db
        self._settings: Settings | None = None

    def settings(self, **flags: Any) -> Settings:
        from beeline_missed import config

        if self._settings is None:
            self._settings = config.load({"db": self.db})
        if flags:
            return config.with_overrides(self._settings, **flags)
        return self._settings

    def existing_db(self) -> Path:
        """The register's path; it must exist. A read command never creates a register: a typo
        in --db or BEELINE_MISSED_HOME would otherwise read as "no missed calls"."""
        path = self.settings().db
        if not path.exists():
            from beeline_missed.store import missing

            raise missing(path)
        return path

    def register(self, create: str | None = None) -> Any:
        """Open the register. Only commands that are meant to start one pass `create`: the
        notice said when they do, so that the new file's place is never a surprise."""
        from beeline_missed.output import notice
        from beeline_missed.store import Register

        if create is None:
            return Register.open(self.existing_db())
        path = self.settings().db
        new = not path.exists()
        register = Register.open(path)
        if new:
            notice(create.format(path=path))
        return register


NEW_REGISTER = "Created a new register at {path}."
NEW_REGISTER_RU = "Создан новый реестр звонков: {path}."


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    if obj is None:  # a sub-command invoked on its own, as in some tests
        obj = ctx.find_root().obj = State(None)
    return obj


@app.callback()
def root(
    ctx: typer.Context,
    db: Annotated[
        Path | None,
        typer.Option("--db", help="Path of the SQLite register, for this command only."),
    ] = None,
) -> None:
    ctx.obj = State(db)


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


# -- numbers on the command line: every one goes through a bounded type ------------------


def seconds(low: float, high: float = MAX_SECONDS) -> Any:
    """A parser for a finite number of seconds within bounds. A plain float option (and its
    min=) lets NaN through, as every comparison with it is false, and has no upper bound, so
    `nan`, `inf` or `1e999` would only fail later, far from the option, in a sleep or a date."""

    def parse(value: Any) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise typer.BadParameter(f"{value!r} is not a number of seconds.") from None
        if not (math.isfinite(number) and low <= number <= high):
            shown = f"{show_number(low)} to {show_number(high)}"
            raise typer.BadParameter(f"{value!r} is not a number from {shown}.")
        return number

    parse.__name__ = "seconds"  # the option's type as --help names it
    return parse


def choice(values: tuple[str, ...]) -> Any:
    """A parser that takes one of `values` and refuses anything else, naming the valid ones."""

    def parse(value: str) -> str:
        if value not in values:
            raise typer.BadParameter(f"{value!r} is not one of: {', '.join(values)}.")
        return value

    return parse


def _count(value: Any) -> int:
    """A row number or a count: a whole number from 1. SQLite's integers end at MAX_ROWID, and
    binding a greater one overflows (a traceback, not a sentence)."""
    try:
        number = int(str(value), 10)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a whole number.") from None
    if not 1 <= number <= MAX_ROWID:
        raise typer.BadParameter(f"{value!r} is not a whole number from 1 to {MAX_ROWID}.")
    return number


_count.__name__ = "integer"
COUNT = {"parser": _count}


# -- config -------------------------------------------------------------------------------


@config_app.command("show")
def config_show(ctx: typer.Context, json_: JsonOption = False) -> None:
    """Print the effective settings (the token masked)."""
    from beeline_missed import config
    from beeline_missed.output import print_json, print_table

    shown = config.effective(state(ctx).settings())
    if json_:
        print_json(shown)
    else:
        print_table(["setting", "value"], sorted(shown.items()))


@config_app.command("init")
def config_init(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented config.toml (mode 0600) into the home folder."""
    from beeline_missed import config
    from beeline_missed.output import say

    path = config.init_file(state(ctx).settings().home, force=force)
    say(f"Wrote {path}")
    # The register too, so that staff's commands work (and show an empty list) from now on.
    state(ctx).register(create=NEW_REGISTER).close()


# -- staff: clients directory, list, watch, card ------------------------------------------

clients_app = typer.Typer(
    help="The shop's clients directory («Контрагенты»): import, list, find, add.",
    no_args_is_help=True,
)
app.add_typer(clients_app, name="clients")

LimitOption = Annotated[
    int | None,
    typer.Option("--limit", **COUNT, help="Show at most N rows (1 or more).", metavar="N"),
]
CLIENT_HEADERS = ["№", "Клиент", "Телефоны", "Код", "Звонков"]
FmtOption = Annotated[
    str | None,
    typer.Option(
        "--fmt",
        metavar="STYLE",
        help="Print a plain-text table in this style instead: github, grid, plain, simple, pipe, "
        "psql, rst, tsv, html, latex or any other format of the tabulate library.",
    ),
]


def _sort(value: str) -> str:
    from beeline_missed.deadlines import SORTS

    word = value.strip().lower()
    if word not in SORTS:
        raise typer.BadParameter(f"use {' or '.join(SORTS)}, not {value!r}")
    return word


SortOption = Annotated[
    str,
    typer.Option(
        "--sort",
        parser=_sort,
        metavar="ORDER",
        help="time (newest first, the default) or age (the longest waiting case first).",
    ),
]


def _zone(ctx: typer.Context) -> Any:
    from beeline_missed import timefmt

    return timefmt.local_zone(state(ctx).settings().timezone)


def _print_clients(rows: list[dict[str, Any]], json_: bool, empty: str) -> None:
    from rich.markup import escape

    from beeline_missed import phones
    from beeline_missed.output import print_json, print_table, say

    if json_:
        print_json(rows)
    elif not rows:
        say(escape(empty))
    else:
        table = [
            [
                r["id"],
                escape(r["name"]),
                ", ".join(phones.display(p) for p in r["phones"]),
                escape(r["external_id"] or ""),
                r["calls"],
            ]
            for r in rows
        ]
        print_table(CLIENT_HEADERS, table)


@clients_app.command("import")
def clients_import(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(metavar="FILE", help="CSV (; or ,, UTF-8 or Windows-1251) or XLSX."),
    ],
    name_column: Annotated[
        str | None,
        typer.Option(
            "--name-column",
            metavar="COLUMN",
            help="Header (or 1-based number) of the name column.",
        ),
    ] = None,
    phone_column: Annotated[
        list[str] | None,
        typer.Option(
            "--phone-column",
            metavar="COLUMN",
            help="Header (or 1-based number) of a phone column; repeatable.",
        ),
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Import the clients list exported from 1C; importing again updates, never duplicates."""
    from rich.markup import escape
    from rich.progress import Progress

    from beeline_missed import clients
    from beeline_missed.output import err_console, print_json, print_table, say

    # The bar goes to stderr and only to a terminal: scripts and pipes get the summary only.
    # The file is streamed, so its length is not known in advance: the bar counts rows.
    with Progress(console=err_console, transient=True, disable=not err_console.is_terminal) as bar:
        task = bar.add_task("Чтение", total=None)
        layout, parsed, counts = clients.import_file(
            lambda: state(ctx).register(create=NEW_REGISTER_RU),
            file,
            name_column,
            phone_column or (),
            progress=lambda n: bar.advance(task, n),
        )

    def header(i: int | None) -> str | None:
        if i is None:
            return None
        # An unnamed column under a merged phone header is named by its number.
        named = i < len(layout.headers) and layout.headers[i]
        return layout.headers[i] if named else f"столбец {i + 1}"

    columns = {
        "name": header(layout.name),
        "phones": [header(i) for i in layout.phones],
        "code": header(layout.code),
    }
    if json_:
        print_json(
            {
                "file": str(file),
                "columns": columns,
                **clients.summary(parsed, counts),
                "skipped": dict(parsed.skipped),
                "unrecognised": [{"row": n, "text": t} for n, t in parsed.unrecognised],
                "shared_numbers": counts["shared"],
            }
        )
        return
    code = f", код «{columns['code']}»" if columns["code"] else ""
    phone_cols = ", ".join(f"«{c}»" for c in columns["phones"])
    say(escape(f"Столбцы: имя «{columns['name']}», телефоны {phone_cols}{code}."))
    print_table(
        ["", "Количество"],
        clients.summary_rows(parsed, counts),
        title=escape(f"Импорт {file.name}"),
    )
    for line_no, text in parsed.unrecognised:
        say(escape(f"Строка {line_no}: «{text}» — не номер телефона."))
    if parsed.unrecognised_count > len(parsed.unrecognised):
        say(f"… и ещё {parsed.unrecognised_count - len(parsed.unrecognised)}.")
    for line in clients.shared_lines(counts):
        say(escape(line))


@clients_app.command("list")
def clients_list(ctx: typer.Context, limit: LimitOption = None, json_: JsonOption = False) -> None:
    """The clients directory by name, with their numbers."""
    rows = state(ctx).register().clients.rows(limit)
    empty = "Справочник клиентов пуст; загрузите его командой `clients import`."
    _print_clients(rows, json_, empty)


@clients_app.command("find")
def clients_find(
    ctx: typer.Context,
    text: Annotated[
        str, typer.Argument(metavar="TEXT", help="Part of a name, or a phone number in any form.")
    ],
    json_: JsonOption = False,
) -> None:
    """Find clients by part of the name or by number (8 916 …, +7 916 …, 916…)."""
    from beeline_missed import phones

    if not text.strip():
        raise UserError("Укажите часть имени или номер телефона.")
    rows = state(ctx).register().clients.find(text, phones.normalise(text))
    _print_clients(rows, json_, f"Клиентов по запросу «{text}» не найдено.")


@clients_app.command("add")
def clients_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The client's name.")],
    phone: Annotated[
        list[str], typer.Argument(metavar="PHONE...", help="One or more phone numbers.")
    ],
    json_: JsonOption = False,
) -> None:
    """Add a client (or add numbers to the client of that name); calls are re-linked."""
    from rich.markup import escape

    from beeline_missed import clients
    from beeline_missed.output import print_json, say

    name = " ".join(name.split())
    if not name:
        raise UserError("Имя клиента пустое.")
    numbers = clients.parse_numbers(phone)
    register = state(ctx).register(create=NEW_REGISTER_RU)
    counts = register.clients.upsert([(None, name, numbers)], replace_phones=False)
    key = register.clients.name_key(name)
    found = [r for r in register.clients.find(name) if register.clients.name_key(r["name"]) == key]
    if json_:
        print_json({"client": found[0] if found else None, **counts})
        return
    verb = "Добавлен" if counts["added"] else "Обновлён" if counts["updated"] else "Уже есть:"
    numbers_text = ", ".join(e164 for e164, _ in numbers)
    relinked = counts["calls_relinked"]
    linked = f"; звонков с этим именем теперь: {relinked}" if relinked else ""
    say(escape(f"{verb} «{name}» ({numbers_text}){linked}."))
    for line in clients.shared_lines(counts):
        say(escape(line))


# -- 1C:Альфа-Авто over OData: clients sync, check, the stand-in ---------------------------


@clients_app.command("sync")
def clients_sync(ctx: typer.Context, json_: JsonOption = False) -> None:
    """Update the directory from 1C (Catalog_Контрагенты over OData): added, updated, removed."""
    from rich.markup import escape
    from rich.progress import Progress

    from beeline_missed import onec_sync
    from beeline_missed.onec import OnecClient
    from beeline_missed.output import err_console, print_json, print_table, say

    settings = state(ctx).settings()
    with OnecClient.from_settings(settings) as client:
        register = state(ctx).register(create=NEW_REGISTER_RU)
        # The bar goes to stderr and only to a terminal; 1C tells the total on the first page.
        with Progress(
            console=err_console, transient=True, disable=not err_console.is_terminal
        ) as bar:
            task = bar.add_task("Клиенты из 1С", total=None)
            counts, report = onec_sync.sync(
                register,
                client,
                settings,
                progress=lambda n: bar.advance(task, n),
                on_total=lambda n: bar.update(task, total=n),
            )
    unrecognised = [{"client": c, "text": t} for c, t in report.unrecognised]
    if json_:
        print_json(
            {
                "added": counts["added"],
                "updated": counts["updated"],
                "removed": counts["removed"],
                "total": counts["total"],
                "unchanged": counts.get("unchanged", 0),
                "skipped": dict(report.skipped),
                "unrecognised": unrecognised,
                "shared_numbers": counts.get("shared", []),
            }
        )
        return
    print_table(["", "Количество"], onec_sync.summary_rows(counts, report), title="Клиенты из 1С")
    for item in unrecognised:
        say(escape(f"«{item['client']}»: «{item['text']}» — не номер телефона."))
    if report.unrecognised_count > len(unrecognised):
        say(f"… и ещё {report.unrecognised_count - len(unrecognised)}.")
    from beeline_missed import clients

    for line in clients.shared_lines(counts):
        say(escape(line))


onec_app = typer.Typer(
    help="1C:Альфа-Авто over 1C's standard OData interface: check the connection.",
    no_args_is_help=True,
)
app.add_typer(onec_app, name="onec")


@onec_app.command("check")
def onec_check(ctx: typer.Context, json_: JsonOption = False) -> None:
    """Say in plain words what works: reachable, authorised, which configured entity sets and
    fields the base publishes over OData, and what is missing. Exits 1 when anything is."""
    from beeline_missed import onec_sync
    from beeline_missed.onec import OnecClient
    from beeline_missed.output import print_json, say

    settings = state(ctx).settings()
    with OnecClient.from_settings(settings) as client:
        found = onec_sync.diagnose(client, settings)
    if json_:
        print_json(found)
    else:
        for line in onec_sync.diagnosis_lines(found):
            say(line)
    if not found["ok"]:
        raise typer.Exit(1)


@onec_app.command("simulator")
def onec_simulator_command(
    listen: Annotated[
        str, typer.Option("--listen", metavar="HOST:PORT", help="Address; port 0 picks a free one.")
    ] = "127.0.0.1:0",
    user: Annotated[
        str, typer.Option("--user", metavar="NAME", help="The 1C user it accepts.")
    ] = "odata",
    clients_count: Annotated[
        int,
        typer.Option(
            "--clients",
            min=0,
            max=10_000_000,
            metavar="N",
            help="Serve N made-up clients with two numbers each instead of the demo's.",
        ),
    ] = 0,
) -> None:
    """For tests, the demo and benchmarks: a stand-in for a 1C:Альфа-Авто base's OData.

    Serves the standard OData interface (Catalog_Контрагенты, Catalog_Автомобили,
    Document_ЗаявкаНаРемонт, Document_ЗаказНаряд) with HTTP Basic; the password is
    BEELINE_MISSED_1C_PASSWORD or a fixed one. Prints BEELINE_MISSED_1C_URL=... on its first
    line. Stops on Ctrl-C or SIGTERM.
    """
    import os
    import sys

    from beeline_missed import onec_sim
    from beeline_missed.config import ENV_ONEC_PASSWORD
    from beeline_missed.daemon import parse_listen

    host, port = parse_listen(listen)
    sim = onec_sim.OnecSimulator(
        user, os.environ.get(ENV_ONEC_PASSWORD) or onec_sim.DEFAULT_PASSWORD, host=host, port=port
    )
    if clients_count:
        sim.sets[onec_sim.CLIENTS] = onec_sim.SyntheticClients(clients_count)
    else:
        onec_sim.demo_base(sim, onec_sim.demo_clients())

    def ready(url: str) -> None:
        sys.stdout.write(f"BEELINE_MISSED_1C_URL={url}\n")
        sys.stdout.flush()
        sys.stderr.write(f"1C OData stand-in at {url}; Ctrl-C stops.\n")

    try:
        onec_sim.serve_forever(sim, ready)
    except OSError as exc:
        raise UserError(f"Cannot listen on {listen}: {exc.strerror or exc}.") from None


@app.command("list")
def list_calls(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Include calls already called back.")] = False,
    limit: LimitOption = None,
    json_: JsonOption = False,
    fmt: FmtOption = None,
    sort: SortOption = "time",
) -> None:
    """Missed calls, newest first: one line per caller still «Пропущен».

    A caller who tried several times is one line with the number of attempts and the time of
    the last one. --all lists every call of the register on its own line, handled ones too.
    On a narrow terminal (and in a pipe, 80 columns) the number, date and client stay whole
    and the other columns give way; --fmt prints every column as plain text. On a terminal
    each case is coloured by how long it has waited (callback_deadlines: green, yellow, red);
    --sort age puts the longest waiting first.
    """
    from beeline_missed import calls_view, casework, deadlines, timefmt
    from beeline_missed.output import console, print_json, print_text, say, table_style

    style = None if fmt is None else table_style(fmt)
    if style and json_:
        raise UserError("Укажите --json или --fmt, но не оба сразу.")
    zone = _zone(ctx)
    register = state(ctx).register()
    rows = register.calls.rows(include_handled=all_, limit=limit)
    rows = casework.with_claims(register, state(ctx).settings(), rows, timefmt.now_utc())
    limits = deadlines.Deadlines.from_settings(state(ctx).settings())
    rows = deadlines.sort_rows(limits.annotate(rows, timefmt.now_ms()), sort)
    if json_:
        print_json(calls_view.calls_json(rows, zone))
    elif not rows:
        say("Звонков нет." if all_ else "Пропущенных звонков нет.")
    elif style:
        print_text(calls_view.plain_table(rows, zone, style))
    else:
        title = "Все звонки" if all_ else "Пропущенные звонки"
        console.print(
            calls_view.CallTable(
                rows, zone, title=title, style=lambda row: deadlines.row_style(row, limits)
            )
        )


@app.command("watch")
def watch_calls(
    ctx: typer.Context,
    interval: Annotated[
        float,
        typer.Option(
            "--interval",
            parser=seconds(0.1),
            metavar="S",
            help="Seconds between checks (at least 0.1).",
        ),
    ] = 2.0,
    duration: Annotated[
        float | None,
        typer.Option(
            "--duration",
            parser=seconds(0),
            metavar="S",
            help="Stop after this many seconds, 0 or more (default: Ctrl-C).",
        ),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include calls already called back.")] = False,
    limit: LimitOption = None,
    sort: SortOption = "time",
) -> None:
    """The list, live: refreshes by itself and marks calls that arrived since you started.

    Cases are coloured by how long they have waited (callback_deadlines), as the clock moves.
    """
    from beeline_missed import casework, deadlines, timefmt, watch
    from beeline_missed.output import console

    zone = _zone(ctx)
    settings = state(ctx).settings()
    limits = deadlines.Deadlines.from_settings(settings)

    def claimed(register: "Register", rows: "list[Call]") -> "list[Call]":
        return casework.with_claims(register, settings, rows, timefmt.now_utc())

    watch.run_live(
        state(ctx).existing_db(),
        zone=zone,
        interval=interval,
        duration=duration,
        include_handled=all_,
        limit=limit,
        console=console,
        intro=f"Слежу за списком звонков (проверка каждые {interval:g} с). Ctrl-C — выход.",
        decorate=claimed,
        deadlines=limits,
        sort=sort,
    )


@app.command("card")
def call_card(
    ctx: typer.Context,
    call_id: Annotated[int, typer.Argument(metavar="ID", help="The call's number in the list.")],
    status: Annotated[
        str | None,
        typer.Option(
            "--status", help="missed | called_back | Пропущен | Перезвонили.", metavar="STATUS"
        ),
    ] = None,
    result: Annotated[
        str | None, typer.Option("--result", help="What came of the call.", metavar="TEXT")
    ] = None,
    book: Annotated[
        bool,
        typer.Option(
            "--book", help="«Записаться»: «Перезвонили» + «Записался на ремонт», open the journal."
        ),
    ] = False,
    user: Annotated[
        str | None,
        typer.Option(
            "--user",
            metavar="NAME",
            help="Who calls back: a [staff] login or a name (default: setting user, else OS "
            "login).",
        ),
    ] = None,
    expect_version: Annotated[
        int | None,
        typer.Option(
            "--expect-version",
            **COUNT,
            metavar="VERSION",
            help="Save only if the card is still at this version (from --json); else exit 3.",
        ),
    ] = None,
    call: Annotated[
        bool,
        typer.Option(
            "--call",
            help="Click-to-call: take the case, then the PBX rings your phone ([staff] abonent) "
            "and then the client.",
        ),
    ] = False,
    claim: Annotated[
        bool,
        typer.Option(
            "--claim", help="«Взять в работу»: mark the caller as being called back by you."
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="With --claim or --call: take over someone else's claim."),
    ] = False,
    json_: JsonOption = False,
) -> None:
    """The call card: with no flags it asks in the terminal; with flags it saves for scripts.

    --claim takes the caller's case for you (others see «перезванивает …»; a live claim of
    someone else is refused unless --force; it lapses after claim_ttl, and saving the card or
    closing the case ends it). --call takes the case the same way and asks the PBX to ring
    your phone, then the client; answered, the call closes the case by itself (auto_close).
    """
    from rich.markup import escape
    from rich.prompt import Prompt

    from beeline_missed import calls_view, card, card_session, casework, config, timefmt
    from beeline_missed.output import console, err_console, print_json, say

    settings = state(ctx).settings()
    register = state(ctx).register()
    zone = _zone(ctx)
    editing = status is not None or result is not None or book
    from beeline_missed import onec_card

    if (call or claim) and editing:
        raise UserError("--call и --claim не сочетаются с --status, --result и --book.")
    if force and not (call or claim):
        raise UserError("--force нужен только вместе с --claim или --call.")
    now = timefmt.now_utc()
    if not editing and not (call or claim) and json_:
        from beeline_missed import deadlines

        row = card_session.case_row(register, call_id)
        row = deadlines.Deadlines.from_settings(settings).annotate_one(row, timefmt.now_ms())
        row = casework.with_claims(register, settings, [row], now)[0]
        shown = calls_view.call_json(row, zone)
        found = onec_card.for_call(register, settings, row.phone)
        if found is not None:
            shown["onec"] = found.as_json()
        print_json(shown)
        return
    who = card.current_user(user, settings.user)
    # The register keeps who called back as people read it (the [staff] name), as auto-close
    # does: reports group one person's calls together whichever way they were closed.
    name = config.display_name(settings, who) or who
    if call or claim:
        if call:
            messages = casework.call_client(
                register, settings, call_id, who, now, lambda: _pbx(ctx), force=force
            )
        else:
            messages = [casework.claim(register, settings, call_id, who, now, force=force)]
        if json_:
            row = casework.with_claims(register, settings, [register.calls.get(call_id)], now)[0]
            print_json(
                {
                    "claimed": True,
                    "calling": call,
                    "message": " ".join(messages),
                    "call": calls_view.call_json(row, zone),
                }
            )
            return
        for message in messages:
            say(escape(message))
        return
    from beeline_missed import onec_booking

    booker = onec_booking.booker_for(register, settings, zone)
    if not editing:

        def ask(question: str, default: str) -> str:
            try:
                answer = Prompt.ask(question, default=default, console=console, show_default=True)
                # Typed bytes that are not UTF-8 arrive as lone surrogates (as in argv, see
                # check_words) or, with a strict stdin, fail to decode: either way, refused.
                answer.encode("utf-8")
            except EOFError:
                raise UserError("Ввод закончился: карточка закрыта без сохранения.") from None
            except UnicodeError:
                raise UserError(
                    "Ответ — не текст в UTF-8 (проверьте кодировку терминала): "
                    "карточка закрыта без сохранения."
                ) from None
            return answer

        outcome = card_session.interactive(
            register,
            call_id,
            name,
            zone,
            settings.journal,
            ask,
            console.print,
            booker=booker,
            workshop=lambda row: onec_card.card_lines(
                onec_card.for_call(register, settings, row.phone)
            ),
            decorate=lambda row: casework.card_row(register, settings, row, now),
        )
        say(escape(outcome.message))
        if outcome.booking_message:
            say(escape(outcome.booking_message))
        if outcome.journal:
            say(escape(outcome.journal))
        return
    opened = card_session.open_card(register, call_id, expect_version)
    edit = card.Edit.parse(user=name, status=status, result=result, book=book)
    outcome = card_session.apply(register, opened, edit, settings.journal, booker=booker)
    if outcome.refused:
        raise UserError(outcome.message)
    if json_:
        row = outcome.saved or register.calls.get(call_id)
        print_json(
            {
                "saved": outcome.saved is not None,
                "message": outcome.message,
                "journal": outcome.journal,
                "booking": outcome.booking,
                "call": calls_view.call_json(row, zone),
            }
        )
        return
    say(escape(outcome.message))
    if outcome.booking_message:
        say(escape(outcome.booking_message))
    if outcome.journal:
        (err_console if "не открылся" in outcome.journal else console).print(
            outcome.journal, markup=False
        )


# -- staff: people of the PBX ---------------------------------------------------------------

staff_app = typer.Typer(
    help="Staff as people of the PBX: the [staff.LOGIN] tables of config.toml.",
    no_args_is_help=True,
)
app.add_typer(staff_app, name="staff")


def _abonent_list(ctx: typer.Context, refresh: bool) -> tuple[list[dict[str, Any]], str]:
    """The PBX's abonents: the register's cache (the daemon keeps it fresh), or the PBX itself
    with --refresh or when the cache is empty and a token is set. Where they came from."""
    settings = state(ctx).settings()
    path = settings.db
    cached: list[dict[str, Any]] = []
    register = None
    if path.exists():
        register = state(ctx).register()
        cached = register.abonents.rows()
    if not refresh and (cached or not settings.api_token):
        return cached, "cache" if cached else "none"
    with _pbx(ctx) as pbx:
        fetched = pbx.abonents()
    if register is not None:
        register.abonents.replace(fetched)
        return register.abonents.rows(), "pbx"
    from beeline_missed import staff

    return staff.as_cached(fetched), "pbx"  # no register to cache them in: shown as they came


@staff_app.command("list")
def staff_list(
    ctx: typer.Context,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Ask the PBX for its abonent list (needs the token).")
    ] = False,
    json_: JsonOption = False,
) -> None:
    """The [staff] tables next to the PBX's abonents; staff with no abonent are pointed out.

    The abonent list is the register's cache (the daemon refreshes it), else the PBX's own
    when a token is set; --refresh always asks the PBX. PBX abonents no staff member names
    are listed after the staff.
    """
    from rich.markup import escape

    from beeline_missed import staff
    from beeline_missed.output import print_json, print_table, say

    settings = state(ctx).settings()
    abonents, source = _abonent_list(ctx, refresh)
    known = source != "none"
    shown = staff.lines(settings.staff, abonents, known)
    free = staff.unlinked(settings.staff, abonents)
    if json_:
        print_json(
            {
                "staff": [line.as_json() for line in shown],
                "unlinked_abonents": [
                    {
                        "userId": row.get("user_id"),
                        "phone": row.get("phone"),
                        "extension": row.get("extension"),
                        "name": staff.pbx_name(row) or None,
                    }
                    for row in free
                ],
                "abonents_from": source,
            }
        )
        return
    if not shown:
        say(escape(f"No [staff.LOGIN] tables in {settings.config_file}; add one: `staff link`."))
    else:
        table = []
        for line in shown:
            pbx = line.pbx
            found = ""
            if pbx is not None:
                ids = [str(pbx.get(k)) for k in ("extension", "phone") if pbx.get(k)]
                found = f"{staff.pbx_name(pbx)} ({', '.join(ids)})".strip()
            cells = [line.login, line.name, line.abonent or "", found, line.problem or ""]
            table.append([escape(cell) for cell in cells])
        print_table(["login", "name", "abonent", "PBX abonent", "problem"], table, title="Staff")
    if free:
        print_table(
            ["PBX abonent", "extension", "phone", "last name", "first name"],
            [
                [
                    escape(str(r.get(k) or ""))
                    for k in ("user_id", "extension", "phone", "last_name", "first_name")
                ]
                for r in free
            ],
            title="PBX abonents no staff member names",
        )
    if not known:
        say("The PBX's abonent list is not known yet: set the API token, or run the daemon.")
    missing = [line.login for line in shown if line.problem == staff.NO_ABONENT]
    if missing:
        say(f"No abonent for: {', '.join(missing)} (click-to-call needs one: `staff link`).")


@staff_app.command("link")
def staff_link(
    ctx: typer.Context,
    login: Annotated[str, typer.Argument(metavar="LOGIN", help="The login (--user, user).")],
    abonent: Annotated[
        str, typer.Argument(metavar="ABONENT", help="PBX abonent: phone, extension or userId.")
    ],
    name: Annotated[
        str | None, typer.Option("--name", metavar="NAME", help="The name people read.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Write it even if the PBX's list lacks it.")
    ] = False,
) -> None:
    """Write [staff.LOGIN] abonent = ABONENT (and name) into config.toml, other lines kept.

    An abonent the PBX's list (the register's cache) does not have is refused unless --force.
    """
    from rich.markup import escape

    from beeline_missed import config, staff
    from beeline_missed.output import notice, say

    settings = state(ctx).settings()
    abonent = abonent.strip()
    abonents = state(ctx).register().abonents.rows() if settings.db.exists() else []
    if abonents and staff.find_abonent(abonent, abonents) is None and not force:
        raise UserError(
            f"The PBX has no abonent {abonent!r} (see `staff list`); give --force to write it "
            "anyway."
        )
    path = settings.config_file
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    staff.write_config(path, staff.link_text(text, login, abonent, name))
    config.load({"db": state(ctx).db})  # the whole file still reads as settings
    if not abonents:
        notice("The PBX's abonent list is not known yet, so the abonent was not checked.")
    say(escape(f"Wrote [staff.{login}] abonent = {abonent!r} to {path}."))


# -- daemon and inbox ---------------------------------------------------------------------


@app.command("daemon")
def daemon_command(
    ctx: typer.Context,
    listen: Annotated[
        str | None, typer.Option("--listen", metavar="HOST:PORT", help="Address to serve on.")
    ] = None,
    settle: Annotated[
        float | None,
        typer.Option(
            "--settle",
            parser=seconds(0),
            metavar="SECONDS",
            help="Grace period before a call is missed (0 or more).",
        ),
    ] = None,
    detach: Annotated[bool, typer.Option("--detach", help="Run in the background.")] = False,
    pidfile: Annotated[
        Path | None, typer.Option("--pidfile", help="With --detach: where to write the pid.")
    ] = None,
    log_file: Annotated[
        Path | None, typer.Option("--log-file", help="Write the log here instead of stderr.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    """Serve the PBX hook, register missed calls and keep the subscriptions alive.

    Serves POST on the path of BEELINE_MISSED_PUBLIC_URL and GET /healthz. Stops cleanly on
    SIGTERM or SIGINT.
    """
    from beeline_missed import daemon

    settings = state(ctx).settings(listen=listen, settle=settle)
    daemon.run(settings, detach=detach, pidfile=pidfile, log_file=log_file, verbose=verbose)


@app.command("replay")
def replay_command(ctx: typer.Context, json_: JsonOption = False) -> None:
    """Rebuild the register's call decisions from the inbox under the current detection rules.

    Staff's handling is kept; calls now found answered (by a person, or picked up) that nobody
    handled yet are closed as answered.
    """
    from beeline_missed.output import print_json, say
    from beeline_missed.processing import replay, targets_from_settings

    settings = state(ctx).settings()
    targets_from = targets_from_settings(settings)
    register = state(ctx).register()
    summary = replay(
        register,
        settle=settings.settle,
        stale_after=settings.stale_after,
        targets_from=targets_from,
    )
    if json_:
        print_json(summary)
    else:
        say(
            f"Replayed {summary['events']} events: {summary['calls_after']} calls in the "
            f"register, {summary['added']} added, {summary['closed']} closed as answered."
        )


@app.command("inbox")
def inbox_command(
    ctx: typer.Context,
    state_: Annotated[
        str | None,
        typer.Option(
            "--state",
            parser=choice(INBOX_STATES),
            metavar="STATE",
            help="Only rows in this state: new, processed, duplicate, ignored, rejected.",
        ),
    ] = None,
    show: Annotated[
        int | None,
        typer.Option("--show", **COUNT, help="Print the raw body of one row."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", **COUNT, help="How many rows, newest first.")
    ] = 50,
    json_: JsonOption = False,
) -> None:
    """Inspect the raw events the hook received; rejected documents are kept here."""
    import sys

    from beeline_missed.output import print_json, print_table

    register = state(ctx).register()
    if show is not None:
        sys.stdout.buffer.write(register.inbox.body(show))
        return
    rows = register.inbox.rows(state_, limit)
    if json_:
        print_json(rows)
        return
    columns = ["id", "received_at", "state", "event_type", "target_id", "reason"]
    print_table(columns, [[row[c] for c in columns] for row in rows])
    counts = register.inbox.counts()
    print_table(["state", "events"], sorted(counts.items()), title="Inbox")


# -- subscriptions ------------------------------------------------------------------------

SUBSCRIPTION_HEADERS = ["pattern", "subscription", "state", "time left", "expires at"]


def _print_subscriptions(rows: list[list[Any]], title: str) -> None:
    """The output.py table, except that ids are never cut: `unsubscribe ID` needs them whole."""
    from rich.table import Table

    from beeline_missed.output import console

    table = Table(title=title)
    for header in SUBSCRIPTION_HEADERS:
        if header == "subscription":
            table.add_column(header, no_wrap=True, min_width=36)
        else:  # wrap inside the cell rather than cut: a cut pattern or date misleads
            table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    console.print(table)


def _pbx(ctx: typer.Context) -> Any:
    from beeline_missed.pbx import PbxClient

    return PbxClient.from_settings(state(ctx).settings())


def _subscription_json(row: dict[str, Any], zone: Any) -> dict[str, Any]:
    from beeline_missed import timefmt

    shown = {
        "subscriptionId": row["id"],
        "pattern": row["pattern"],
        "subscriptionType": row["subscription_type"],
        "url": row["url"],
        "expires": row["expires"],
        "requested": row.get("requested"),
        "created_at": timefmt.iso_local(row["created_at"], zone),
        "expires_at": timefmt.iso_local(row["expires_at"], zone),
        "last_checked_at": timefmt.iso_local(row.get("last_checked_at"), zone),
        "last_error": row.get("last_error"),
    }
    if "live_state" in row:
        shown["state"] = row["live_state"]
        shown["seconds_left"] = row["seconds_left"]
    return shown


def _duration(seconds: int) -> str:
    from beeline_missed.timefmt import duration

    return duration(seconds, "en")


@app.command("subscribe")
def subscribe_command(
    ctx: typer.Context,
    patterns: Annotated[
        list[str] | None,
        typer.Option(
            "--pattern",
            metavar="P",
            help="Abonent to subscribe: phone, extension or userId. Repeat for several.",
        ),
    ] = None,
    all_abonents: Annotated[
        bool, typer.Option("--all-abonents", help="Subscribe every abonent the PBX lists.")
    ] = False,
    enterprise: Annotated[
        bool,
        typer.Option(
            "--enterprise",
            help="One subscription with no pattern: the whole PBX, voice menus and queues "
            "included (recommended).",
        ),
    ] = False,
    expires: Annotated[
        int | None,
        typer.Option(
            "--expires",
            metavar="SECONDS",
            min=1,
            max=int(MAX_SECONDS),
            help="Lifetime to ask for (the PBX may grant less; the granted one is kept).",
        ),
    ] = None,
    type_: Annotated[
        str | None,
        typer.Option("--type", metavar="BASIC_CALL|ADVANCED_CALL", help="Subscription type."),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            metavar="URL",
            help="Where the PBX posts events; default BEELINE_MISSED_PUBLIC_URL.",
        ),
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Subscribe to the PBX's call events: one subscription per pattern, or one for the whole PBX.

    --enterprise sees every call of the PBX, its voice menus and queues too, so a caller who
    gave up in a menu or a queue is registered; per-abonent subscriptions see only calls that
    rang a person's phone. Each is recorded with the lifetime the PBX granted. A pattern
    already held for the same URL and type is renewed (the new one made first, then the old
    one deleted), never doubled. The daemon keeps the recorded subscriptions alive.
    """
    from beeline_missed import subscriptions, timefmt
    from beeline_missed.output import print_json, say

    settings = state(ctx).settings()
    chosen: list[str | None] = list(patterns or [])
    if enterprise and (chosen or all_abonents):
        raise UserError(
            "--enterprise covers every abonent: give it without --pattern or --all-abonents."
        )
    if enterprise:
        chosen = [None]
    if not chosen and not all_abonents:
        raise UserError(
            "Say what to subscribe: --enterprise, --pattern P (repeatable) or --all-abonents."
        )
    kind = (type_ or settings.subscription_type).upper()
    asked = expires or settings.subscription_expires
    target = subscriptions.validate(asked, kind, url or settings.public_url)
    register = state(ctx).register(create=NEW_REGISTER)
    with _pbx(ctx) as pbx:
        if all_abonents:
            chosen += [p for p in subscriptions.abonent_patterns(pbx) if p not in chosen]
        rows = subscriptions.subscribe(register, pbx, chosen, asked, kind, target)
    zone = _zone(ctx)
    if json_:
        print_json([_subscription_json(row, zone) for row in rows])
        return
    table = [
        [
            row["pattern"] or subscriptions.WHOLE_PBX,
            row["id"],
            "active",
            _duration(row["expires"]),
            timefmt.show_local(row["expires_at"], zone),
        ]
        for row in rows
    ]
    _print_subscriptions(table, title=f"Subscribed, events go to {target}")
    granted = sorted({row["expires"] for row in rows if row["expires"] < asked})
    if granted:
        shown = ", ".join(f"{g} s" for g in granted)
        say(f"The PBX granted {shown} of the {asked} s asked; the daemon renews them in time.")


@app.command("status")
def status_command(ctx: typer.Context, json_: JsonOption = False) -> None:
    """Every subscription we hold, checked live at the PBX: active, expired or gone.

    Also shows when the daemon last received an event.
    """
    from beeline_missed import subscriptions, timefmt
    from beeline_missed.output import console, print_json, say

    register = state(ctx).register()
    zone = _zone(ctx)
    rows: list[dict[str, Any]] = []
    if register.subscriptions.rows(("active",)):
        with _pbx(ctx) as pbx:
            rows = subscriptions.status(register, pbx)
    last_event = subscriptions.last_event_at(register)
    upkeep_error = subscriptions.upkeep_error(register)
    # The last reconciliation and what it recovered.
    from beeline_missed import reconcile

    last_reconcile = reconcile.last_run(register)
    onec_status = _onec_status(register, zone)
    onec_line = onec_status.pop("line") if onec_status else None
    waiting = register.onec.bookings("waiting")
    if json_:
        print_json(
            {
                "subscriptions": [_subscription_json(row, zone) for row in rows],
                "last_event_at": timefmt.iso_local(last_event, zone),
                "upkeep_error": upkeep_error,
                "reconciliation": _reconcile_json(last_reconcile, zone),
                "onec_sync": onec_status,
                "onec_bookings_waiting": [
                    {
                        "call_id": b["call_id"],
                        "phone": b["phone"],
                        "since": timefmt.iso_local(b["created_at"], zone),
                        "attempts": b["attempts"],
                        "error": b["last_error"],
                    }
                    for b in waiting
                ],
            }
        )
        return
    if rows:
        table = [
            [
                row["pattern"] or subscriptions.WHOLE_PBX,
                row["id"],
                row["live_state"],
                _duration(row["seconds_left"]) if row["live_state"] == "active" else "",
                timefmt.show_local(row["expires_at"], zone),
            ]
            for row in rows
        ]
        _print_subscriptions(table, title="Subscriptions")
        for row in rows:
            if row["last_error"]:
                console.print(f"{row['id']}: last error: {row['last_error']}", markup=False)
    else:
        say("No subscriptions held; make one with `beeline-missed subscribe`.")
    if last_event:
        say(f"Last event received: {timefmt.show_local(last_event, zone)}.")
    else:
        say("No event received yet.")
    if upkeep_error:
        say(f"The daemon could not keep the subscriptions alive: {upkeep_error}")
    say(_reconcile_line(last_reconcile, zone))
    if onec_line or waiting:
        from rich.markup import escape

        from beeline_missed import phones

        if onec_line:
            say(escape(onec_line))
        if waiting:
            say(f"Bookings waiting for 1C: {len(waiting)}.")
        for b in waiting:
            say(
                escape(
                    f"  call {b['call_id']} ({phones.display(b['phone'])}) since "
                    f"{timefmt.show_local(b['created_at'], zone)}, {b['attempts']} attempt(s): "
                    f"{b['last_error'] or 'not tried yet'}"
                )
            )


def _onec_status(register: Any, zone: Any) -> dict[str, Any] | None:
    """The last 1C sync for `status --json`, times local; None when 1C was never synced."""
    from beeline_missed import onec_sync, timefmt

    last = onec_sync.last_sync(register)
    if last is not None:
        last["line"] = _onec_line(last, zone)
        for key in ("at", "error_at"):
            last[key] = timefmt.iso_local(last.get(key) or None, zone)
    return last


def _onec_line(last: dict[str, Any], zone: Any) -> str:
    from beeline_missed.timefmt import show_local

    text = "No 1C sync has succeeded yet"
    if last.get("at"):
        text = (
            f"Last 1C sync: {show_local(last['at'], zone)}, {last['total']} clients (added "
            f"{last['added']}, updated {last['updated']}, removed {last['removed']}, "
            f"skipped {last['skipped']})"
        )
    if last.get("error"):
        text += f"; the latest attempt ({show_local(last['error_at'], zone)}) failed: "
        text += last["error"]
    return text + "."


def _reconcile_json(last: dict[str, Any] | None, zone: Any) -> dict[str, Any] | None:
    """`status --json`'s reconciliation object, times local."""
    from beeline_missed import timefmt

    if last is None:
        return None
    shown = dict(last)
    for key in ("at", "date_from", "date_to", "reconciled_to"):
        shown[key] = timefmt.iso_local(last.get(key) or None, zone)
    return shown


def _reconcile_line(last: dict[str, Any] | None, zone: Any) -> str:
    from beeline_missed import timefmt

    if last is None:
        return "No reconciliation with the call statistics yet."
    text = "Last reconciliation"
    if last.get("at"):
        text += (
            f": {timefmt.show_local(last['at'], zone)}, {last.get('recovered', 0)} recovered, "
            f"{last['recovered_total']} in total"
        )
    if last.get("error"):
        text += f"; the latest attempt failed: {last['error']}"
    return text + "."


@app.command("unsubscribe")
def unsubscribe_command(
    ctx: typer.Context,
    ids: Annotated[
        list[str] | None, typer.Argument(metavar="ID...", help="Subscription ids to delete.")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Delete every subscription we hold.")] = False,
    json_: JsonOption = False,
) -> None:
    """Delete subscriptions at the PBX and mark them deleted in the register."""
    from beeline_missed import subscriptions
    from beeline_missed.output import print_json, print_table, say

    if bool(ids) == all_:
        raise UserError("Give subscription ids or --all (not both).")
    register = state(ctx).register()
    if all_ and not register.subscriptions.rows(("active",)):
        results: list[dict[str, Any]] = []
    else:
        with _pbx(ctx) as pbx:
            results = subscriptions.unsubscribe(register, pbx, None if all_ else ids)
    if json_:
        print_json(results)
    elif not results:
        say("No subscriptions held; nothing to delete.")
    else:
        table = [[r["pattern"] or "", r["subscriptionId"], r["result"]] for r in results]
        print_table(["pattern", "subscription", "result"], table)


@app.command("simulator")
def simulator_command(
    listen: Annotated[
        str, typer.Option("--listen", metavar="HOST:PORT", help="Address; port 0 picks a free one.")
    ] = "127.0.0.1:0",
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            metavar="TOKEN",
            help="Token it accepts; default BEELINE_API_TOKEN or a fixed one.",
        ),
    ] = None,
    max_expires: Annotated[
        int | None,
        typer.Option(
            "--max-expires",
            min=1,
            max=int(MAX_SECONDS),
            metavar="SECONDS",
            help="Grant at most this lifetime.",
        ),
    ] = None,
) -> None:
    """For tests, the demo and benchmarks: run the built-in PBX simulator (not a real PBX).

    Serves the portal API (subscriptions, abonents, statistics) and posts call events to the
    subscribed URLs. Prints BEELINE_API_URL=... on its first line; control endpoints are under
    /_sim/. Stops on Ctrl-C or SIGTERM.
    """
    import os
    import sys

    from beeline_missed.config import ENV_API_TOKEN
    from beeline_missed.daemon import parse_listen
    from beeline_missed.simulator import DEFAULT_TOKEN, Simulator, serve_forever

    host, port = parse_listen(listen)
    sim = Simulator(
        token=token or os.environ.get(ENV_API_TOKEN) or DEFAULT_TOKEN,
        max_expires=max_expires,
        host=host,
        port=port,
    )

    def ready(url: str) -> None:
        sys.stdout.write(f"BEELINE_API_URL={url}\n")
        sys.stdout.flush()
        sys.stderr.write(
            f"PBX simulator at {url}; control at {sim.root_url}/_sim/; Ctrl-C stops.\n"
        )

    try:
        serve_forever(sim, ready)
    except OSError as exc:
        raise UserError(f"Cannot listen on {listen}: {exc.strerror or exc}.") from None


# -- reports ------------------------------------------------------------------------------


class ReportCommand(TyperCommand):
    """Lets `--where FIELD OP VALUE` come as three words, as well as one ('user=Иванов')."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        from beeline_missed.reports import OPERATORS

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

    from beeline_missed import report_formats, reports
    from beeline_missed.output import console, print_text, table_style

    settings = state(ctx).settings()
    chosen = "json" if json_ else fmt
    if chosen is None:
        suffix = output.suffix.lower().lstrip(".") if output else ""
        chosen = suffix if suffix in report_formats.FORMATS else "table"
    chosen = chosen.lower()
    if chosen not in report_formats.FORMATS:
        raise UserError(
            f"Unknown format {chosen!r}; use one of: {', '.join(report_formats.FORMATS)}."
        )
    if style is not None:
        style = table_style(style)
        if chosen != "table":  # from --format, --json or the --output suffix
            raise UserError(f"--fmt styles the table, not {chosen} output.")
    zone = reports.report_zone(settings.timezone)
    spec = reports.Spec(
        period=reports.resolve_period(period, date_from, date_to, zone),
        group_by=tuple(reports.get_field(name).name for name in group_by or []),
        filters=tuple(reports.parse_where(text) for text in where or []),
        zone_name=str(getattr(zone, "key", None) or settings.timezone or zone),
        deadlines=tuple(minutes * 60 for minutes in settings.callback_deadlines),
    )
    if chosen == "xlsx" and output is None and sys.stdout.isatty():
        raise UserError("An xlsx report is binary: give --output FILE or redirect stdout.")
    result = reports.build_report(settings.db, spec)
    if style is not None:
        text = report_formats.plain_table(result, style)
        if output is not None:
            report_formats.write_atomic(output, (text + "\n").encode("utf-8"))
        else:
            print_text(text)
    elif output is not None:
        report_formats.write_atomic(output, report_formats.render(result, chosen))
    elif chosen == "table" and console.is_terminal:
        report_formats.print_table(result, console)
    else:  # a pipe or a cron mail: plain text, wide enough not to wrap the figures
        sys.stdout.flush()
        sys.stdout.buffer.write(report_formats.render(result, chosen))
        sys.stdout.buffer.flush()


# -- panel and demo -----------------------------------------------------------------------


@app.command("panel")
def panel_command(
    ctx: typer.Context,
    interval: Annotated[
        float,
        typer.Option(
            "--interval",
            parser=seconds(0.2),
            help="Seconds between checks for new calls (at least 0.2).",
        ),
    ] = 1.0,
    user: Annotated[
        str | None,
        typer.Option("--user", help="Who calls back (default: setting user, else OS login)."),
    ] = None,
) -> None:
    """The «Автосервис» panel: missed calls with their cards, reports, subscriptions."""
    from beeline_missed.panel.app import PanelApp

    settings = state(ctx).settings()
    state(ctx).existing_db()
    PanelApp(settings, zone=_zone(ctx), user=user, interval=interval).run()


@app.command("demo")
def demo_command(
    home: Annotated[
        Path,
        typer.Option("--home", help="Demo folder; nothing is written outside it."),
    ] = Path("demo-home"),
    no_tui: Annotated[
        bool, typer.Option("--no-tui", help="Show the rich live list instead of the panel.")
    ] = False,
    duration: Annotated[
        float | None,
        typer.Option(
            "--duration",
            parser=seconds(1),
            help="Stop after this many seconds, at least 1 (default: never).",
        ),
    ] = None,
    settle: Annotated[
        float,
        typer.Option(
            "--settle",
            parser=seconds(0.2),
            help="Seconds of silence before a call is missed (at least 0.2).",
        ),
    ] = 2.0,
) -> None:
    """The whole product with no account: a simulated PBX, the daemon and the panel.

    Runs in one process on 127.0.0.1: the PBX simulator plays a car-repair shop's calls
    (answered, missed, hunt groups, repeat callers, hidden numbers) and missed calls appear
    live. The register, log and reports stay in the demo folder.
    """
    from beeline_missed import demo
    from beeline_missed.output import console, say

    counts = demo.run(home, tui=not no_tui, duration=duration, settle=settle, console=console)
    say(
        f"Демо закончено. Пропущенных звонков в реестре: {counts['missed']} "
        f"(всего звонков: {counts['calls']}, клиентов в справочнике: {counts['clients']}). "
        f"Всё записано только в папку {home}."
    )


# -- reconcile ----------------------------------------------------------------------------


@app.command("reconcile")
def reconcile_command(
    ctx: typer.Context,
    from_: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="WHEN",
            help="Start, local time: 2026-11-27 or '2026-11-27 14:05'. "
            "Default: the last reconciled moment (or a day ago).",
        ),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option(
            "--to", metavar="WHEN", help="End, local time (a date alone: to its end). Default: now."
        ),
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Register missed calls the PBX's call statistics show and the register lacks.

    Catches up on calls missed while the daemon was down, lost by the PBX, or forwarded or
    rejected before they rang. Nothing is registered twice. The daemon does this by itself on
    start and every reconcile_interval seconds (and notifies about what it finds; this command
    does not notify).
    """
    from datetime import timedelta

    from beeline_missed import autoclose, hours, reconcile, timefmt
    from beeline_missed.output import console, print_json, print_table, say

    settings = state(ctx).settings()
    settings.require_token()
    zone = _zone(ctx)
    register = state(ctx).register()
    now = timefmt.now_utc()
    end = reconcile.parse_moment(to, zone, end_of_day=True) if to else now
    if from_:
        start = reconcile.parse_moment(from_, zone)
    else:
        last = register.meta.get(reconcile.META_TO)
        start = timefmt.parse_stored(last) if last else end - timedelta(days=1)
    working = hours.from_settings(settings)
    with _pbx(ctx) as pbx:
        if json_ or not console.is_terminal:
            summary = reconcile.run(
                register, pbx, settings, start, end, outside_hours=working.is_outside
            )
        else:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("recovered {task.fields[found]}"),
            )
            with Progress(*columns, console=console, transient=True) as progress:
                task = progress.add_task("Reading call statistics (days)", total=None, found=0)

                def step(done: int, total: int, partial: Any) -> None:
                    progress.update(
                        task, completed=done, total=total, found=len(partial.registered)
                    )

                summary = reconcile.run(
                    register,
                    pbx,
                    settings,
                    start,
                    end,
                    progress=step,
                    outside_hours=working.is_outside,
                )
    closed, _ = autoclose.settle_new_rows(register, settings, summary.registered)
    data = summary.as_dict()
    data["auto_closed"] = closed
    if json_:
        data["date_from"] = timefmt.iso_local(summary.date_from, zone)
        data["date_to"] = timefmt.iso_local(summary.date_to, zone)
        data["at"] = timefmt.iso_local(summary.at, zone)
        print_json(data)
        return
    shown_from = timefmt.show_local(summary.date_from, zone)
    window = f"{shown_from} – {timefmt.show_local(summary.date_to, zone)}"
    print_table(
        ["window", "records", "missed inbound", "already known", "recovered", "auto-closed"],
        [
            [
                window,
                summary.records,
                summary.missed,
                summary.known,
                len(summary.registered),
                len(closed),
            ]
        ],
        title="Reconciliation",
    )
    if summary.unusable:
        say(f"{summary.unusable} statistics record(s) had no usable start time and were skipped.")
    if summary.registered:
        ids = ", ".join(map(str, summary.registered))
        say(f"Recovered missed calls: {ids} (see `beeline-missed list`).")
    else:
        say("Nothing to recover: the register has every missed call of the window.")


def main() -> None:
    app()
