"""Commands for admins who script the set-up: the daemon, PBX subscriptions and status, the
catch-up from the statistics, the inbox, configuration, staff records, 1C, the simulators and
the demo."""

from pathlib import Path
from typing import Annotated, Any

import typer

from beeline_missed.cli.common import (
    COUNT,
    NEW_REGISTER,
    JsonOption,
    _pbx,
    _zone,
    choice,
    seconds,
    state,
)
from beeline_missed.config import MAX_SECONDS
from beeline_missed.errors import UserError
from beeline_missed.store import INBOX_STATES, Abonent
from beeline_missed.views.status import onec_sync_status, reconcile_json, reconcile_line
from beeline_missed.views.subscriptions import duration, print_subscriptions, subscription_json

app = typer.Typer()
config_app = typer.Typer(help="Show or create the configuration file.", no_args_is_help=True)
app.add_typer(config_app, name="config")


# -- config -------------------------------------------------------------------------------


@config_app.command("show")
def config_show(ctx: typer.Context, json_: JsonOption = False) -> None:
    """Print the effective settings (the token masked)."""
    from beeline_missed import config
    from beeline_missed.views.output import print_json, print_table

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
    from beeline_missed.views.output import say

    path = config.init_file(state(ctx).settings().home, force=force)
    say(f"Wrote {path}")
    # The register too, so that staff's commands work (and show an empty list) from now on.
    state(ctx).register(create=NEW_REGISTER).close()


onec_app = typer.Typer(
    help="1C:Альфа-Авто over 1C's standard OData interface: check the connection.",
    no_args_is_help=True,
)
app.add_typer(onec_app, name="onec")


@onec_app.command("check")
def onec_check(ctx: typer.Context, json_: JsonOption = False) -> None:
    """Say in plain words what works: reachable, authorised, which configured entity sets and
    fields the base publishes over OData, and what is missing. Exits 1 when anything is."""
    from beeline_missed.onec import sync as onec_sync
    from beeline_missed.onec.client import OnecClient
    from beeline_missed.views.output import print_json, say

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

    from beeline_missed.config import ENV_ONEC_PASSWORD
    from beeline_missed.daemon.server import parse_listen
    from beeline_missed.simulator import onec as onec_sim
    from beeline_missed.simulator.loopback import serve_forever

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
        serve_forever(sim, ready)
    except OSError as exc:
        raise UserError(f"Cannot listen on {listen}: {exc.strerror or exc}.") from None


# -- staff: people of the PBX ---------------------------------------------------------------

staff_app = typer.Typer(
    help="Staff as people of the PBX: the [staff.LOGIN] tables of config.toml.",
    no_args_is_help=True,
)
app.add_typer(staff_app, name="staff")


def _abonent_list(ctx: typer.Context, refresh: bool) -> tuple[list[Abonent], str]:
    """The PBX's abonents: the register's cache (the daemon keeps it fresh), or the PBX itself
    with --refresh or when the cache is empty and a token is set. Where they came from."""
    settings = state(ctx).settings()
    path = settings.db
    cached: list[Abonent] = []
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
    from beeline_missed.directory import staff

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

    from beeline_missed.directory import staff
    from beeline_missed.views.output import print_json, print_table, say

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
                        "userId": abonent.user_id,
                        "phone": abonent.phone,
                        "extension": abonent.extension,
                        "name": abonent.pbx_name or None,
                    }
                    for abonent in free
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
                ids = [number for number in (pbx.extension, pbx.phone) if number]
                found = f"{pbx.pbx_name} ({', '.join(ids)})".strip()
            cells = [line.login, line.name, line.abonent or "", found, line.problem or ""]
            table.append([escape(cell) for cell in cells])
        print_table(["login", "name", "abonent", "PBX abonent", "problem"], table, title="Staff")
    if free:
        print_table(
            ["PBX abonent", "extension", "phone", "last name", "first name"],
            [
                [
                    escape(cell or "")
                    for cell in (a.user_id, a.extension, a.phone, a.last_name, a.first_name)
                ]
                for a in free
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

    from beeline_missed import config
    from beeline_missed.directory import staff
    from beeline_missed.views.output import notice, say

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
    from beeline_missed.daemon.main import run

    settings = state(ctx).settings(listen=listen, settle=settle)
    run(settings, detach=detach, pidfile=pidfile, log_file=log_file, verbose=verbose)


@app.command("replay")
def replay_command(ctx: typer.Context, json_: JsonOption = False) -> None:
    """Rebuild the register's call decisions from the inbox under the current detection rules.

    Staff's handling is kept; calls now found answered (by a person, or picked up) that nobody
    handled yet are closed as answered.
    """
    from beeline_missed.daemon.processing import replay, targets_from_settings
    from beeline_missed.views.output import print_json, say

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
    import dataclasses
    import sys

    from beeline_missed.views.output import print_json, print_table

    register = state(ctx).register()
    if show is not None:
        sys.stdout.buffer.write(register.inbox.body(show))
        return
    entries = register.inbox.rows(state_, limit)
    if json_:
        print_json([dataclasses.asdict(entry) for entry in entries])
        return
    columns = ["id", "received_at", "state", "event_type", "target_id", "reason"]
    print_table(columns, [[getattr(entry, c) for c in columns] for entry in entries])
    counts = register.inbox.counts()
    print_table(["state", "events"], sorted(counts.items()), title="Inbox")


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
    from beeline_missed import timefmt
    from beeline_missed.pbx import subscriptions
    from beeline_missed.views.output import print_json, say

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
        made = subscriptions.subscribe(register, pbx, chosen, asked, kind, target)
    zone = _zone(ctx)
    if json_:
        print_json([subscription_json(sub, zone) for sub in made])
        return
    table = [
        [
            subscriptions.label(sub),
            sub.id,
            sub.state,
            duration(sub.expires),
            timefmt.show_local(sub.expires_at, zone),
        ]
        for sub in made
    ]
    print_subscriptions(table, title=f"Subscribed, events go to {target}")
    granted = sorted({sub.expires for sub in made if sub.expires < asked})
    if granted:
        shown = ", ".join(f"{g} s" for g in granted)
        say(f"The PBX granted {shown} of the {asked} s asked; the daemon renews them in time.")


def _spooled_events(ctx: typer.Context, register: Any) -> tuple[Path | None, int]:
    """The hook's spool beside a SQLite register, and how many events in it wait."""
    from beeline_missed.daemon.spool import POSITION_KEY, count_waiting, spool_path

    db = state(ctx).settings().db
    if register.engine != "sqlite":
        return None, 0
    spool = spool_path(Path(db))
    return spool, count_waiting(spool, register.meta.get(POSITION_KEY))


@app.command("status")
def status_command(ctx: typer.Context, json_: JsonOption = False) -> None:
    """Every subscription we hold, checked live at the PBX: active, expired or gone.

    Also shows which daemon serves a SQLite register (pid and address), when the daemon last
    received an event, and the events its hook keeps in the spool while another process holds
    the register.
    """
    from beeline_missed import timefmt
    from beeline_missed.pbx import subscriptions
    from beeline_missed.views import output
    from beeline_missed.views.output import print_json, say
    from beeline_missed.vocabulary import LiveState

    register = state(ctx).register()
    zone = _zone(ctx)
    checked: list[subscriptions.Checked] = []
    if register.subscriptions.rows():
        with _pbx(ctx) as pbx:
            checked = subscriptions.status(register, pbx)
    last_event = subscriptions.last_event_at(register)
    upkeep_error = subscriptions.upkeep_error(register)
    # The last reconciliation and what it recovered.
    from beeline_missed.rules import reconcile

    last_reconcile = reconcile.last_run(register)
    onec_status = onec_sync_status(register, zone)
    onec_line = onec_status.pop("line") if onec_status else None
    waiting = register.onec.bookings("waiting")
    from beeline_missed.store import leases

    roles = leases.holders(register)  # several daemons on PostgreSQL: who does what
    spool, spooled = _spooled_events(ctx, register)
    from dataclasses import asdict

    from beeline_missed.daemon.register import SoleDaemon

    # On SQLite, the one daemon (or a migrate-register) holding the register.
    holder = SoleDaemon.holder(state(ctx).settings().db) if register.engine == "sqlite" else None
    if json_:
        print_json(
            {
                **({"roles": roles} if roles else {}),
                **({"daemon": holder and asdict(holder)} if register.engine == "sqlite" else {}),
                "spooled_events": spooled,
                "subscriptions": [subscription_json(c.subscription, zone, c) for c in checked],
                "last_event_at": timefmt.iso_local(last_event, zone),
                "upkeep_error": upkeep_error,
                "reconciliation": reconcile_json(last_reconcile, zone),
                "onec_sync": onec_status,
                "onec_bookings_waiting": [
                    {
                        "call_id": b.call_id,
                        "phone": b.phone,
                        "since": timefmt.iso_local(b.created_at, zone),
                        "attempts": b.attempts,
                        "error": b.last_error,
                    }
                    for b in waiting
                ],
            }
        )
        return
    if checked:
        table = [
            [
                subscriptions.label(c.subscription),
                c.subscription.id,
                c.live_state,
                duration(c.seconds_left) if c.live_state == LiveState.ACTIVE else "",
                timefmt.show_local(c.subscription.expires_at, zone),
            ]
            for c in checked
        ]
        print_subscriptions(table, title="Subscriptions")
        for c in checked:
            if c.subscription.last_error:
                output.console.print(
                    f"{c.subscription.id}: last error: {c.subscription.last_error}", markup=False
                )
    else:
        say("No subscriptions held; make one with `beeline-missed subscribe`.")
    if register.engine == "sqlite":
        say(f"Daemon: {holder}." if holder else "No daemon serves this register now.")
    if last_event:
        say(f"Last event received: {timefmt.show_local(last_event, zone)}.")
    else:
        say("No event received yet.")
    if spooled:
        say(
            f"{spooled} events acknowledged while another process held the register wait in "
            f"{spool} for the daemon to move them into it."
        )
    if upkeep_error:
        say(f"The daemon could not keep the subscriptions alive: {upkeep_error}")
    say(reconcile_line(last_reconcile, zone))
    for role, holder in roles.items():
        say(f"Role {role}: {holder or 'no daemon holds it'}.")
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
                    f"  call {b.call_id} ({phones.display(b.phone)}) since "
                    f"{timefmt.show_local(b.created_at, zone)}, {b.attempts} attempt(s): "
                    f"{b.last_error or 'not tried yet'}"
                )
            )


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
    from beeline_missed.pbx import subscriptions
    from beeline_missed.views.output import print_json, print_table, say

    if bool(ids) == all_:
        raise UserError("Give subscription ids or --all (not both).")
    register = state(ctx).register()
    if all_ and not register.subscriptions.rows():
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
    from beeline_missed.daemon.server import parse_listen
    from beeline_missed.simulator.loopback import serve_forever
    from beeline_missed.simulator.pbx import DEFAULT_TOKEN, Simulator

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
    from beeline_missed.simulator import demo
    from beeline_missed.views.output import console, say

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

    from beeline_missed import timefmt
    from beeline_missed.rules import autoclose, hours, reconcile
    from beeline_missed.views import output
    from beeline_missed.views import status as status_view
    from beeline_missed.views.output import print_json, print_table, say

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
        if json_ or not output.console.is_terminal:
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
            with Progress(*columns, console=output.console, transient=True) as progress:
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
    if json_:
        print_json(status_view.reconcile_run_json(summary, closed, zone))
        return
    row = status_view.reconcile_run_row(summary, closed, zone)
    print_table(status_view.RUN_HEADERS, [row], title="Reconciliation")
    for line in status_view.reconcile_run_lines(summary):
        say(line)
