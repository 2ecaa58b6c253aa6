"""Commands for staff at a terminal: the list of missed calls, the live list, the call card,
the panel, and the clients directory. Staff speak Russian: so do these commands."""

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from beeline_missed.cli.common import (
    COUNT,
    NEW_REGISTER_RU,
    FmtOption,
    JsonOption,
    LimitOption,
    SortOption,
    _pbx,
    _zone,
    seconds,
    state,
)
from beeline_missed.errors import UserError

app = typer.Typer()


# -- staff: clients directory, list, watch, card ------------------------------------------

clients_app = typer.Typer(
    help="The shop's clients directory («Контрагенты»): import, list, find, add.",
    no_args_is_help=True,
)

if TYPE_CHECKING:
    from beeline_missed.store import Call, Register
    from beeline_missed.store.rows import Client
app.add_typer(clients_app, name="clients")
CLIENT_HEADERS = ["№", "Клиент", "Телефоны", "Код", "Звонков"]


def _print_clients(rows: "list[Client]", json_: bool, empty: str) -> None:
    from rich.markup import escape

    from beeline_missed import phones
    from beeline_missed.views.output import print_json, print_table, say

    if json_:
        print_json([dataclasses.asdict(client) for client in rows])
    elif not rows:
        say(escape(empty))
    else:
        table = [
            [
                c.id,
                escape(c.name),
                ", ".join(phones.display(p) for p in c.phones),
                escape(c.external_id or ""),
                c.calls,
            ]
            for c in rows
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

    from beeline_missed.directory import clients_file as clients
    from beeline_missed.views.output import err_console, print_json, print_table, say

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

    from beeline_missed.directory import clients_file as clients
    from beeline_missed.views.output import print_json, say

    name = " ".join(name.split())
    if not name:
        raise UserError("Имя клиента пустое.")
    numbers = clients.parse_numbers(phone)
    register = state(ctx).register(create=NEW_REGISTER_RU)
    counts = register.clients.upsert([(None, name, numbers)], replace_phones=False)
    key = register.clients.name_key(name)
    found = [c for c in register.clients.find(name) if register.clients.name_key(c.name) == key]
    if json_:
        print_json({"client": dataclasses.asdict(found[0]) if found else None, **counts})
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

    from beeline_missed.onec import sync as onec_sync
    from beeline_missed.onec.client import OnecClient
    from beeline_missed.views.output import err_console, print_json, print_table, say

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
    from beeline_missed.directory import clients_file as clients

    for line in clients.shared_lines(counts):
        say(escape(line))


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
    from beeline_missed import timefmt
    from beeline_missed.cases import calling_back
    from beeline_missed.rules import deadlines
    from beeline_missed.views import calls as calls_view
    from beeline_missed.views import output
    from beeline_missed.views.output import print_json, print_text, say, table_style

    style = None if fmt is None else table_style(fmt)
    if style and json_:
        raise UserError("Укажите --json или --fmt, но не оба сразу.")
    zone = _zone(ctx)
    register = state(ctx).register()
    rows = register.calls.rows(include_handled=all_, limit=limit)
    rows = calling_back.with_claims(register, state(ctx).settings(), rows, timefmt.now_utc())
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
        # Named only here: the console (and rich) is made on first use, never for --json.
        output.console.print(
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
    from beeline_missed import timefmt
    from beeline_missed.cases import calling_back
    from beeline_missed.rules import deadlines
    from beeline_missed.views import watch
    from beeline_missed.views.output import console

    zone = _zone(ctx)
    settings = state(ctx).settings()
    limits = deadlines.Deadlines.from_settings(settings)

    def claimed(register: "Register", rows: "list[Call]") -> "list[Call]":
        return calling_back.with_claims(register, settings, rows, timefmt.now_utc())

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

    from beeline_missed import config, timefmt
    from beeline_missed.cases import calling_back, card_service
    from beeline_missed.cli import card_dialog
    from beeline_missed.rules import card
    from beeline_missed.views import calls as calls_view
    from beeline_missed.views import output
    from beeline_missed.views.output import print_json, say

    settings = state(ctx).settings()
    register = state(ctx).register()
    zone = _zone(ctx)
    editing = status is not None or result is not None or book
    from beeline_missed.onec import card_info as onec_card

    if (call or claim) and editing:
        raise UserError("--call и --claim не сочетаются с --status, --result и --book.")
    if force and not (call or claim):
        raise UserError("--force нужен только вместе с --claim или --call.")
    now = timefmt.now_utc()
    if not editing and not (call or claim) and json_:
        from beeline_missed.rules import deadlines

        row = card_service.case_row(register, call_id)
        row = deadlines.Deadlines.from_settings(settings).annotate_one(row, timefmt.now_ms())
        row = calling_back.with_claims(register, settings, [row], now)[0]
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
            messages = calling_back.call_client(
                register, settings, call_id, who, now, lambda: _pbx(ctx), force=force
            )
        else:
            messages = [calling_back.claim(register, settings, call_id, who, now, force=force)]
        if json_:
            stored = register.calls.get(call_id)
            row = calling_back.with_claims(register, settings, [stored], now)[0]
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
    from beeline_missed.onec import booking as onec_booking

    booker = onec_booking.booker_for(register, settings, zone)
    if not editing:

        def ask(question: str, default: str) -> str:
            try:
                answer = Prompt.ask(
                    question, default=default, console=output.console, show_default=True
                )
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

        outcome = card_dialog.interactive(
            register,
            call_id,
            name,
            zone,
            settings.journal,
            ask,
            output.console.print,
            booker=booker,
            workshop=lambda row: onec_card.card_lines(
                onec_card.for_call(register, settings, row.phone)
            ),
            decorate=lambda row: calling_back.card_row(register, settings, row, now),
        )
        say(escape(outcome.message))
        if outcome.booking_message:
            say(escape(outcome.booking_message))
        if outcome.journal:
            say(escape(outcome.journal))
        return
    opened = card_service.open_card(register, call_id, expect_version)
    edit = card.Edit.parse(user=name, status=status, result=result, book=book)
    outcome = card_service.apply(register, opened, edit, settings.journal, booker=booker)
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
        (output.err_console if "не открылся" in outcome.journal else output.console).print(
            outcome.journal, markup=False
        )


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
