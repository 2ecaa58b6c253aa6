"""The register on PostgreSQL: the schema equals SQLite's head, migrations run on both engines,
the password is never shown, and the real daemon registers missed calls into PostgreSQL and
survives the server's restart without losing an acknowledged event.

Every test here uses the throwaway cluster of tests/support/postgres.py (started once)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from beeline_missed.rules.detection import LegState
from beeline_missed.simulator import xsi_build
from beeline_missed.simulator.pbx import Simulator
from beeline_missed.store import Register, migrations, pg_schema
from beeline_missed.store.engine import PostgresURL, connect, mask, translate
from beeline_missed.store.rows import Subscription
from tests.support import clock
from tests.support.daemon import Daemon, wait_for
from tests.support.factories import add_call
from tests.support.postgres import Cluster

START = clock.yesterday_at(11)
T0 = clock.ms(START)
GROUP = ["9001112201@ip.beeline.ru", "9001112202@ip.beeline.ru"]

SQLITE_TYPES = {"INTEGER": "bigint", "TEXT": "text", "BLOB": "bytea"}


# -- the schema ------------------------------------------------------------------------------


def sqlite_schema(path: Path) -> dict[str, Any]:
    """Tables (columns: type, not null, default, primary key), indexes (columns, unique,
    partial), foreign keys and triggers of a SQLite register, in engine-neutral words."""
    register = Register.open(path)
    conn = register.conn
    tables: dict[str, Any] = {}
    names = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    for table in names:
        columns = {}
        for _, name, type_, notnull, default, pk in conn.execute(f"PRAGMA table_info({table})"):
            columns[name] = (SQLITE_TYPES[type_], bool(notnull or pk), _default(default), pk > 0)
        fks = sorted(
            (row[3], row[2], row[4], row[6])
            for row in conn.execute(f"PRAGMA foreign_key_list({table})")
        )
        indexes = set()
        for _, name, unique, origin, partial in conn.execute(f"PRAGMA index_list({table})"):
            if origin == "pk":  # the primary key: compared with the columns
                continue
            cols = tuple(r[2] for r in conn.execute(f"PRAGMA index_info({name})"))
            indexes.add((cols, bool(unique), bool(partial)))
        tables[table] = {"columns": columns, "fks": fks, "indexes": indexes}
    triggers = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
    register.close()
    return {"tables": tables, "triggers": triggers}


def postgres_schema(url: PostgresURL) -> dict[str, Any]:
    conn = connect(url)
    tables: dict[str, Any] = {}
    names = [
        r[0]
        for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    ]
    for table in names:
        pk_cols = {
            r[0]
            for r in conn.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = CAST(? AS regclass) "
                "AND i.indisprimary",
                [table],
            )
        }
        columns = {}
        for name, type_, nullable, default in conn.execute(
            "SELECT column_name, data_type, is_nullable, column_default "
            "FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
            [table],
        ):
            columns[name] = (type_, nullable == "NO", _default(default), name in pk_cols)
        fks = sorted(
            (r[0], r[1], r[2], r[3])
            for r in conn.execute(
                "SELECT kcu.column_name, ccu.table_name, ccu.column_name, rc.delete_rule "
                "FROM information_schema.referential_constraints rc "
                "JOIN information_schema.key_column_usage kcu "
                "  ON kcu.constraint_name = rc.constraint_name "
                "JOIN information_schema.constraint_column_usage ccu "
                "  ON ccu.constraint_name = rc.unique_constraint_name "
                "WHERE kcu.table_name = ?",
                [table],
            )
        )
        indexes = set()
        for indkey, unique, partial in conn.execute(
            "SELECT CAST(indkey AS TEXT), indisunique, indpred IS NOT NULL FROM pg_index "
            "WHERE indrelid = CAST(? AS regclass) AND NOT indisprimary",
            [table],
        ):
            attnames = {
                r[0]: r[1]
                for r in conn.execute(
                    "SELECT attnum, attname FROM pg_attribute WHERE attrelid = CAST(? AS regclass)",
                    [table],
                )
            }
            cols = tuple(attnames[int(n)] for n in str(indkey).split())
            indexes.add((cols, bool(unique), bool(partial)))
        tables[table] = {"columns": columns, "fks": fks, "indexes": indexes}
    triggers = {r[0] for r in conn.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")}
    conn.close()
    return {"tables": tables, "triggers": triggers}


def _default(value: Any) -> str | None:
    """'0', '''', "'missed'::text" ... as one spelling; an identity column has none."""
    if value is None:
        return None
    text = str(value).split("::")[0].strip("()")
    return text


def test_the_postgresql_schema_equals_sqlites_head(home: Path, pg_url: PostgresURL) -> None:
    lite = sqlite_schema(home / "register.sqlite")
    pg = postgres_schema(pg_url)
    assert set(pg["tables"]) == set(lite["tables"])
    for table, expected in lite["tables"].items():
        got = pg["tables"][table]
        assert got["columns"] == expected["columns"], table
        # SQLite's ON DELETE 'SET NULL' / 'CASCADE', information_schema's the same words.
        assert got["fks"] == expected["fks"], table
        assert got["indexes"] == expected["indexes"], table
    assert pg["triggers"] == lite["triggers"]


def test_a_new_postgresql_register_records_the_same_migrations(pg_cluster: Cluster) -> None:
    url = pg_cluster.fresh(empty=True)
    register = Register.open(url)
    names = [r[0] for r in register.conn.execute("SELECT name FROM _migrations ORDER BY name")]
    assert names == sorted(name for name, _ in migrations.MIGRATIONS)
    assert not pg_schema.pending(register.conn)
    assert pg_schema.migrate(register.conn) == []  # run again: nothing to do
    register.close()


@pytest.mark.both_engines
def test_a_later_migration_runs_on_both_engines(
    db_path: Path, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    Register.open(db_path).close()  # at head

    def m999_probe(db: Any) -> None:
        # A migration after the baseline writes SQL both engines read.
        db.conn.execute("ALTER TABLE meta ADD COLUMN probe TEXT")

    monkeypatch.setattr(
        migrations, "MIGRATIONS", [*migrations.MIGRATIONS, ("m999_probe", m999_probe)]
    )
    register = Register.open(db_path)
    register.conn.execute("UPDATE meta SET probe = 'x'")
    done = [r[0] for r in register.conn.execute("SELECT name FROM _migrations")]
    assert "m999_probe" in done
    register.close()
    assert Register.open(db_path).conn.execute("SELECT count(*) FROM _migrations").fetchone()[
        0
    ] == len(done)


# -- the engine layer ------------------------------------------------------------------------


def test_sqlite_dialect_is_translated_where_the_engines_only_spell_it_differently() -> None:
    sql, returns_id, _ = translate("INSERT OR IGNORE INTO calls (user, phone) VALUES (?, ?)")
    assert (
        sql
        == 'INSERT INTO calls ("user", phone) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING id'
    )
    assert returns_id
    sql, _, _ = translate("SELECT group_concat(id) FROM calls WHERE phone IS ? AND x = 'a?b'")
    assert sql == (
        "SELECT string_agg(CAST(id AS TEXT), ',') FROM calls "
        "WHERE phone IS NOT DISTINCT FROM $1 AND x = 'a?b'"
    )
    sql, _, _ = translate("SELECT * FROM (SELECT max(a, b) AS m FROM t) WHERE m > 0")
    assert sql == "SELECT * FROM (SELECT greatest(a, b) AS m FROM t) AS _sub1 WHERE m > 0"


def test_the_password_is_never_shown(home: Path, pg_url: PostgresURL) -> None:
    secret_url = pg_url.url.replace("postgres@", "postgres:S3cretPw@")
    assert "S3cretPw" not in str(PostgresURL(secret_url))
    assert mask(secret_url).startswith("postgresql://postgres:***@")
    env = {"BEELINE_MISSED_DB": secret_url}
    shown = run_cli(home, env, "config", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    settings = json.loads(shown.stdout)
    assert settings["engine"] == "postgresql"
    assert "S3cretPw" not in shown.stdout
    # trust authentication ignores the password: the register opens, and says nothing of it.
    listed = run_cli(home, env, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "S3cretPw" not in listed.stdout + listed.stderr


def test_an_unreachable_server_is_one_sentence_without_the_password(home: Path) -> None:
    env = {"BEELINE_MISSED_DB": "postgresql://bm:Pw0rd@127.0.0.1:9/nothing?connect_timeout=2"}
    done = run_cli(home, env, "list")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "Pw0rd" not in done.stderr
    assert "127.0.0.1" in done.stderr


def test_sqlite_stays_the_default_engine(home: Path) -> None:
    shown = run_cli(home, {}, "config", "show", "--json")
    assert json.loads(shown.stdout)["engine"] == "sqlite"


def run_cli(home: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "beeline_missed", *args],
        env={**os.environ, "BEELINE_MISSED_HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


# -- the daemon on PostgreSQL ----------------------------------------------------------------


@pytest.fixture
def pg_daemon(home: Path, sim: Simulator, pg_url: PostgresURL) -> Iterator[Daemon]:
    proc = Daemon(home, extra_env={"BEELINE_MISSED_DB": pg_url.url}).start()
    sim.subscribe(None, 3600, "BASIC_CALL", proc.public_url)
    yield proc
    proc.stop()


@pytest.mark.e2e
def test_the_daemon_registers_a_missed_call_in_postgresql(
    pg_daemon: Daemon, sim: Simulator, pg_url: PostgresURL
) -> None:
    caller = "+79161234567"
    deliveries = sim.play(xsi_build.incoming_call(GROUP[:1], caller, T0))
    assert deliveries and {d.status for d in deliveries} == {200}
    (call,) = wait_for(pg_daemon.calls, timeout=30)
    assert (call["phone"], call["status_label"]) == (caller, "Пропущен")
    assert call["called_at"] == START.isoformat()
    # `list` (the staff's view) reads it from PostgreSQL too, and the row is there.
    listed = pg_daemon.cli("list", "--json")
    assert [c["phone"] for c in json.loads(listed.stdout)] == [caller]
    register = Register.open(pg_url)
    assert register.calls.count() == 1
    assert register.inbox.counts().get("processed", 0) == len(deliveries)
    register.close()


def health(daemon: Daemon) -> int:
    import httpx

    return httpx.get(daemon.base + "/healthz", timeout=5).status_code


@pytest.mark.e2e
def test_postgresql_down_is_503_then_the_daemon_reconnects_and_loses_nothing(
    pg_daemon: Daemon, sim: Simulator, pg_cluster: Cluster, pg_url: PostgresURL
) -> None:
    first = sim.play(xsi_build.incoming_call(GROUP[:1], "+79160000001", T0))
    wait_for(lambda: len(pg_daemon.calls()) == 1, timeout=30)
    pg_cluster.stop()
    try:
        down = sim.play(xsi_build.incoming_call(GROUP[:1], "+79160000002", T0 + 60_000))
        assert down and {d.status for d in down} == {503}
        # /healthz says so too (a load balancer then sends events to another daemon).
        assert wait_for(lambda: health(pg_daemon) == 503, timeout=30)
    finally:
        pg_cluster.start()
    assert wait_for(lambda: health(pg_daemon) == 200, timeout=30)
    log = pg_daemon.log()
    assert "503" in log
    assert "Traceback" not in log
    # Back: the next events are stored (the daemon reconnected by itself) and decided.
    after = sim.play(xsi_build.incoming_call(GROUP[:1], "+79160000003", T0 + 120_000))
    assert {d.status for d in after} == {200}
    calls = wait_for(lambda: len(pg_daemon.calls()) == 2 and pg_daemon.calls(), timeout=30)
    assert sorted(c["phone"] for c in calls) == ["+79160000001", "+79160000003"]
    # Every acknowledged body is in the inbox, once.
    register = Register.open(pg_url)
    acknowledged = sum(1 for d in first + after if d.status == 200)
    assert sum(register.inbox.counts().values()) == acknowledged
    register.close()


# -- migrate-register ------------------------------------------------------------------------


def fill_sqlite(home: Path) -> Path:
    """A SQLite register with rows in the tables a shop's register has: calls (one handled),
    a claim, an attempt, an escalation, clients and numbers, the inbox (bytes), legs,
    sessions, dedup keys, meta."""
    path = home / "register.sqlite"
    added = run_cli(home, {}, "clients", "add", "Иванов Иван", "+79161234567")
    assert added.returncode == 0, added.stderr
    register = Register.open(path)
    first = add_call(register, "s1", phone="+79161234567")
    second = add_call(register, "s2", phone="+79169999999", called_at="2026-11-27T11:00:00Z")
    add_call(register, "s3", phone=None, called_at="2026-11-27T12:00:00Z")
    call = register.calls.get(second)
    register.calls.save(
        second, call.version, status="called_back", result="Записался", user="petrov",
        handled_at="2026-11-27T11:30:00Z",
    )  # fmt: skip
    register.claims.claim("+79161234567", lambda _now: ("anna", "2026-11-27T10:05:00Z"))
    register.attempts.add(
        first, session_key="cb1", direction="outgoing", attempted_at="2026-11-27T10:10:00Z",
        talk_seconds=4, who="Анна",
    )  # fmt: skip
    register.escalations.mark([first], "2026-11-27T10:40:00Z")
    register.inbox.add(b"<xsi:Event>\x00\xff</xsi:Event>", T0, event_id="e1")
    register.sessions.claim_event("e1", "digest", ["leg1"], T0)
    register.sessions.touch("s1", T0)
    register.meta.set("last_event_at", "2026-11-27T10:00:00Z")
    register.sessions.put_leg(LegState(GROUP[0], "c1", "s1", start_ms=T0))
    register.attempts.await_release("s5", T0)
    register.abonents.replace([{"userId": GROUP[0], "phone": "9001112201"}])
    register.subscriptions.insert(
        Subscription(id="sub1", subscription_type="BASIC_CALL", url="https://x/hook",
         expires=3600, created_at="2026-11-27T09:00:00Z",
         expires_at="2026-11-27T10:00:00Z")
    )  # fmt: skip
    register.onec.add_booking(first, "ref-1", "tok-1", "{}", "2026-11-27T10:20:00Z")
    register.close()
    return path


def table_counts(conn: Any, tables: list[str]) -> dict[str, int]:
    return {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in tables}


def test_migrate_register_copies_everything_once_and_refuses_a_second_time(
    home: Path, pg_cluster: Cluster
) -> None:
    from beeline_missed.store.transfer import tables_in_order

    source = fill_sqlite(home)
    target = pg_cluster.fresh(empty=True)
    done = run_cli(home, {}, "migrate-register", "--to", target.url, "--json")
    assert done.returncode == 0, done.stderr
    lite = Register.open(source)
    pg = Register.open(target)
    tables = tables_in_order(lite.conn)
    expected = table_counts(lite.conn, tables)
    assert json.loads(done.stdout)["tables"] == expected
    assert table_counts(pg.conn, tables) == expected
    assert all(expected.values()), expected  # the test filled every table
    # Rows as they were: ids, the handled card, the claim, the raw body's bytes.
    assert pg.calls.rows(include_handled=True) == lite.calls.rows(include_handled=True)
    assert pg.claims.rows() == lite.claims.rows()
    assert pg.inbox.body(1) == lite.inbox.body(1)
    assert pg.clients.rows() == lite.clients.rows()
    # New rows continue after the copied ids.
    new_id = add_call(pg, "s4", called_at="2026-11-28T09:00:00Z")
    assert new_id == lite.calls.max_id() + 1
    lite.close()
    pg.close()

    # Again: refused in one sentence, nothing doubled.
    again = run_cli(home, {}, "migrate-register", "--to", target.url)
    assert again.returncode == 1
    assert "already holds rows" in again.stderr and "nothing was copied" in again.stderr
    assert "Traceback" not in again.stderr
    pg = Register.open(target)
    assert pg.calls.count() == expected["calls"] + 1
    pg.close()


def test_migrate_register_says_what_to_change_without_the_password(
    home: Path, pg_cluster: Cluster
) -> None:
    fill_sqlite(home)
    target = pg_cluster.fresh(empty=True)
    url = target.url.replace("postgres@", "postgres:Hush1@")
    done = run_cli(home, {}, "migrate-register", "--to", url)
    assert done.returncode == 0, done.stderr
    assert "BEELINE_MISSED_DB=postgresql://postgres:***@" in done.stdout + done.stderr
    assert "Hush1" not in done.stdout + done.stderr


def test_migrate_register_refuses_while_the_daemons_spool_holds_events(
    home: Path, pg_cluster: Cluster
) -> None:
    from beeline_missed.daemon.spool import Spool, SpooledEvent, spool_path

    source = fill_sqlite(home)
    Spool(spool_path(source)).append([SpooledEvent(b"<x/>", 1, {})])
    target = pg_cluster.fresh(empty=True)
    refused = run_cli(home, {}, "migrate-register", "--to", target.url)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "register.sqlite-spool holds events" in refused.stderr
    pg = Register.open(target)
    assert pg.calls.count() == 0
    pg.close()


def test_migrate_register_refuses_while_a_daemon_serves_the_sqlite_file(
    home: Path, pg_cluster: Cluster
) -> None:
    """A daemon still on the file would acknowledge events into it after the copy."""
    source = fill_sqlite(home)
    daemon = Daemon(home).start()
    try:
        target = pg_cluster.fresh(empty=True)
        refused = run_cli(home, {}, "migrate-register", "--to", target.url)
        assert refused.returncode == 1
        assert refused.stderr == (
            f"Error: Another process (pid {daemon.proc.pid}, listening on "
            f"127.0.0.1:{daemon.port}) already serves the register {source}; stop it first "
            "(one daemon per SQLite register, and migrate-register runs without one).\n"
        )
    finally:
        daemon.stop()
    pg = Register.open(target)
    assert pg.calls.count() == 0
    pg.close()
    assert run_cli(home, {}, "migrate-register", "--to", target.url).returncode == 0


# -- two daemons, one register ---------------------------------------------------------------


def test_a_role_is_held_by_one_daemon_and_taken_over_when_it_dies(pg_url: PostgresURL) -> None:
    from beeline_missed.store import leases

    first, second = Register.open(pg_url), Register.open(pg_url)
    try:
        assert leases.Lease(first, "keeper").held()
        assert leases.Lease(first, "keeper").held()  # its own: still held
        waiting = leases.Lease(second, "keeper")
        assert not waiting.held()
        assert leases.Lease(second, "reconcile").held()  # another role is free
        holders = leases.holders(second)
        assert holders["keeper"] == holders["reconcile"] == leases.daemon_name()
        assert holders["processor"] is None
        first.close()  # the holder's connection ends (a daemon killed): the role is free
        assert wait_for(waiting.held, timeout=10)
    finally:
        second.close()


@pytest.mark.e2e
def test_two_daemons_kill_9_one_mid_burst_every_acknowledged_event_once(
    home: Path, pg_url: PostgresURL
) -> None:
    import httpx

    from tests.support.daemon import SECRET_PATH

    env = {"BEELINE_MISSED_DB": pg_url.url}
    homes = [home / "a", home / "b"]
    daemons = []
    for folder in homes:
        folder.mkdir()
        daemons.append(Daemon(folder, extra_env=env).start())
    try:
        # Which daemon decides (the processor role): that is the one killed.
        roles = json.loads(daemons[0].cli("status", "--json").stdout)["roles"]
        holder = next(d for d in daemons if f"pid {d.proc.pid}" in str(roles["processor"]))
        survivor = next(d for d in daemons if d is not holder)
        callers = [f"+7916555{i:04d}" for i in range(40)]
        acknowledged = 0
        posted = 0
        for n, caller in enumerate(callers):
            if n == len(callers) // 2:
                holder.kill()  # mid-burst, the deciding daemon dies
            steps = xsi_build.incoming_call(GROUP[:1], caller, T0 + n * 1000)
            for step in steps:
                posted += 1
                body = xsi_build.event_document(step, subscription_id="sub-1", sequence=posted)
                # The load balancer: alternate, and retry on the other when one does not answer.
                order = daemons if posted % 2 else daemons[::-1]
                for daemon in order:
                    try:
                        answer = httpx.post(daemon.base + SECRET_PATH, content=body, timeout=10)
                    except httpx.HTTPError:
                        continue
                    if answer.status_code == 200:
                        acknowledged += 1
                        break
        assert acknowledged == posted  # the survivor took every event the dead one could not

        def registered() -> list[dict[str, Any]] | None:
            calls = survivor.calls()
            return calls if len(calls) >= len(callers) else None

        calls = wait_for(registered, timeout=60)
        phones = [c["phone"] for c in calls]
        assert sorted(phones) == sorted(callers)  # each missed call once: none lost, none doubled
        register = Register.open(pg_url)
        counts = register.inbox.counts()
        assert counts.get("new", 0) == 0
        assert sum(counts.values()) == acknowledged  # every acknowledged body, once
        register.close()
        # No call registered (and so notified) by both daemons: each id is logged at most once
        # across both logs (the killed one may die between its commit and its log line).
        import re

        line = re.compile(r"missed call registered: id (\d+)")
        logged = [int(m) for d in daemons for m in line.findall(d.log())]
        assert len(logged) == len(set(logged))
        assert set(logged) <= {c["id"] for c in calls}
        assert len(logged) >= len(callers) // 2  # the survivor's share at least
        roles = json.loads(survivor.cli("status", "--json").stdout)["roles"]
        assert f"pid {survivor.proc.pid}" in str(roles["processor"])
    finally:
        for daemon in daemons:
            daemon.stop()


@pytest.mark.e2e
def test_the_keeper_moves_to_the_surviving_daemon_and_the_subscription_stays_alive(
    home: Path, pg_url: PostgresURL
) -> None:
    # Grants of 4 s renewed at half their life: a keeper that stopped would lose the
    # subscription within seconds, so a live one long after the kill is the survivor's work.
    sim = Simulator(max_expires=4)
    sim.start()
    env = {"BEELINE_MISSED_DB": pg_url.url}
    daemons = []
    try:
        for name in ("a", "b"):
            folder = home / name
            folder.mkdir()
            (folder / "config.toml").write_text("renew_fraction = 0.5\ncheck_interval = 1\n")
            daemons.append(Daemon(folder, api_url=sim.base_url, token=sim.token, extra_env=env))
        subscribed = daemons[0].cli("subscribe", "--pattern", "201", "--json")
        assert subscribed.returncode == 0, subscribed.stderr
        for daemon in daemons:
            daemon.start()

        def keeper() -> str | None:
            roles = json.loads(daemons[0].cli("status", "--json").stdout).get("roles") or {}
            return roles.get("keeper")

        holder_name = wait_for(keeper, timeout=30)
        holder = next(d for d in daemons if f"pid {d.proc.pid}" in holder_name)
        survivor = next(d for d in daemons if d is not holder)
        holder.kill()

        def survivor_keeps() -> bool:
            roles = json.loads(survivor.cli("status", "--json").stdout).get("roles") or {}
            return f"pid {survivor.proc.pid}" in str(roles.get("keeper"))

        assert wait_for(survivor_keeps, timeout=60)  # within a minute, as promised
        live = lambda: {s.id for s in sim.live_subscriptions() if s.pattern == "201"}  # noqa: E731
        seen: set[str] = set()
        # Two more grants after the takeover: the survivor renews on its own.
        after = set(live())
        wait_for(lambda: seen.update(live()) or len(seen - after) >= 2, timeout=60)
        assert live()
    finally:
        for daemon in daemons:
            if daemon.proc is not None:
                daemon.stop()
        sim.stop()


# -- the live list ---------------------------------------------------------------------------


def test_watch_wakes_on_notify_from_another_connection_and_idles_without_asking(
    pg_url: PostgresURL,
) -> None:
    from beeline_missed.views.watch import Watcher

    viewer, writer = Register.open(pg_url), Register.open(pg_url)
    try:
        watcher = Watcher(viewer, clock.MOSCOW)
        assert watcher.poll()  # the first look
        assert not watcher.poll()  # nothing committed: nothing re-read
        add_call(writer, "w1", phone="+79161230001")  # another site's daemon commits

        def new_call_shown() -> bool:
            watcher.poll()
            return [r.phone for r in watcher.rows] == ["+79161230001"]

        assert wait_for(new_call_shown, timeout=10)
        # Idle again: no notification, no re-read.
        loads = watcher.loads
        assert not watcher.poll() and watcher.loads == loads
    finally:
        viewer.close()
        writer.close()


def test_watch_waits_for_the_server_and_reads_again_when_it_is_back(
    pg_cluster: Cluster, pg_url: PostgresURL
) -> None:
    """A staff screen left open all day ended with an error when the database server
    restarted. It now shows the last rows read, says the register is away, and reads again
    once the server answers."""
    from beeline_missed.views.watch import Watcher

    writer = Register.open(pg_url)
    add_call(writer, "w1", phone="+79161230001")
    writer.close()
    viewer = Register.open(pg_url)
    try:
        watcher = Watcher(viewer, clock.MOSCOW)
        assert watcher.poll()
        pg_cluster.stop()
        try:
            # An idle tick asks the server nothing; the listening connection hears it go.
            assert wait_for(lambda: watcher.poll() is False and watcher.unavailable, timeout=10)
            text = rendered(watcher)
            assert "Реестр звонков недоступен (" in text
            assert "список не обновляется, пробую снова." in text
            assert "+7 916 123-00-01" in text  # the last rows read stay
        finally:
            pg_cluster.start()
        writer = Register.open(pg_url)
        add_call(writer, "w2", phone="+79161230002")
        writer.close()

        def both_shown() -> bool:
            watcher.poll()
            return len(watcher.rows) == 2

        assert wait_for(both_shown, timeout=30)
        assert watcher.unavailable is None
        assert "недоступен" not in rendered(watcher)
    finally:
        viewer.close()


def rendered(watcher: Any) -> str:
    from rich.console import Console

    console = Console(width=200, record=True, color_system=None)
    console.print(watcher.render())
    return " ".join(console.export_text().split())


@pytest.mark.anyio
async def test_panel_waits_for_the_server_and_reads_again_when_it_is_back(
    pg_cluster: Cluster, pg_url: PostgresURL, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The panel's poll raised out of Textual's timer when the server went away: the panel
    closed with a traceback. It now says so once and reads again when the server is back."""
    from tests.support.panel_data import make_app

    monkeypatch.setenv("BEELINE_MISSED_DB", pg_url.url)
    writer = Register.open(pg_url)
    add_call(writer, "p1", phone="+79161230001")
    writer.close()
    app = make_app(interval=60)
    async with app.run_test(size=(110, 34)) as pilot:
        await pilot.pause()
        pg_cluster.stop()
        try:
            assert app.refresh_data(force=True) is False
            assert app.refresh_data(force=True) is False
            await pilot.pause()
            errors = [n.message for n in app._notifications if n.severity == "error"]
            assert len(errors) == 1 and errors[0].startswith("Реестр звонков недоступен (")
        finally:
            pg_cluster.start()
        writer = Register.open(pg_url)
        add_call(writer, "p2", phone="+79161230002")
        writer.close()
        assert wait_for(app.refresh_data, timeout=30)
        await pilot.pause()
        messages = [n.message for n in app._notifications]
        assert "Реестр звонков снова доступен: список обновлён." in messages
        assert not any(n.severity == "error" for n in app._notifications)
        assert len(app.missed.entries) == 2


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_missing_server_binaries_are_one_clear_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support import postgres

    monkeypatch.setattr(postgres.shutil, "which", lambda _name: None)
    monkeypatch.setattr(postgres, "DEBIAN_FOLDER", tmp_path / "none")
    with pytest.raises(postgres.ClusterError) as caught:
        postgres.bindir()
    message = str(caught.value)
    assert "initdb" in message and "pg_ctl" in message and message.count(".") == 1
