"""Numbered schema migrations, applied once each and recorded in `_migrations`.

Append new migrations at the end; never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils

Migration = Callable[["sqlite_utils.Database"], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(func: Migration) -> Migration:
    MIGRATIONS.append((func.__name__, func))
    return func


def run_script(db: sqlite_utils.Database, script: str) -> None:
    """Run statements one by one, inside the caller's transaction (executescript would commit)."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            db.conn.execute(buffer)
            buffer = ""


@migration
def m001_initial(db: sqlite_utils.Database) -> None:
    run_script(
        db,
        """
        -- The register: one row per missed call session.
        CREATE TABLE calls (
            id INTEGER PRIMARY KEY,
            session_key TEXT NOT NULL UNIQUE,      -- extTrackingId, or 'stat:...'
            phone TEXT,                            -- E.164; NULL when the number is hidden
            phone_raw TEXT NOT NULL DEFAULT '',    -- the number as received
            client_id INTEGER REFERENCES clients(id) ON DELETE SET NULL,
            called_at TEXT NOT NULL,               -- UTC, the call's startTime
            line TEXT NOT NULL DEFAULT '',         -- abonent(s) that rang
            status TEXT NOT NULL DEFAULT 'missed' CHECK (status IN ('missed', 'called_back')),
            result TEXT NOT NULL DEFAULT '',
            user TEXT,                             -- who called back
            handled_at TEXT,                       -- UTC
            closed_by TEXT CHECK (closed_by IN ('staff', 'auto')),
            source TEXT NOT NULL DEFAULT 'hook',   -- 'hook' | 'reconcile'
            outside_hours INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            version INTEGER NOT NULL DEFAULT 1     -- optimistic locking
        );
        CREATE INDEX calls_status_called_at ON calls(status, called_at);
        CREATE INDEX calls_called_at ON calls(called_at);
        CREATE INDEX calls_phone ON calls(phone);

        -- Every POST body the hook acknowledged or rejected, kept raw.
        CREATE TABLE inbox (
            id INTEGER PRIMARY KEY,
            received_at TEXT NOT NULL,
            received_ms INTEGER NOT NULL,          -- our clock, for the settle timer
            body BLOB NOT NULL,
            state TEXT NOT NULL DEFAULT 'new'
                CHECK (state IN ('new', 'processed', 'duplicate', 'ignored', 'rejected')),
            reason TEXT,
            event_id TEXT,
            event_type TEXT,
            subscription_id TEXT,
            target_id TEXT,
            call_id TEXT,
            processed_at TEXT
        );
        CREATE INDEX inbox_new ON inbox(id) WHERE state = 'new';
        CREATE INDEX inbox_event_id ON inbox(event_id);

        -- Events already applied: the dedup keys.
        CREATE TABLE seen_events (
            event_id TEXT PRIMARY KEY
        );
        CREATE TABLE seen_leg_events (
            target_id TEXT NOT NULL,
            call_id TEXT NOT NULL,
            event_type TEXT NOT NULL,
            PRIMARY KEY (target_id, call_id, event_type)
        );

        -- Call legs seen, merged across their events.
        CREATE TABLE legs (
            target_id TEXT NOT NULL,
            call_id TEXT NOT NULL,
            ext_tracking_id TEXT NOT NULL,
            personality TEXT,
            call_type TEXT,
            remote_raw TEXT,
            remote_phone TEXT,
            start_ms INTEGER,
            answer_ms INTEGER,
            release_ms INTEGER,
            answered INTEGER NOT NULL DEFAULT 0,
            released INTEGER NOT NULL DEFAULT 0,
            huntgroup TEXT,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (target_id, call_id)
        );
        CREATE INDEX legs_session ON legs(ext_tracking_id);

        -- Call sessions awaiting or having a decision.
        CREATE TABLE sessions (
            ext_tracking_id TEXT PRIMARY KEY,
            state TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'missed', 'answered', 'ignored')),
            last_event_ms INTEGER NOT NULL,        -- when we received its latest event
            decided_at TEXT,
            call_row INTEGER
        );
        CREATE INDEX sessions_pending ON sessions(last_event_ms) WHERE state = 'pending';

        -- PBX subscriptions we hold.
        CREATE TABLE subscriptions (
            id TEXT PRIMARY KEY,                   -- subscriptionId from the PBX
            pattern TEXT,
            subscription_type TEXT NOT NULL,
            url TEXT NOT NULL,
            expires INTEGER NOT NULL,              -- seconds granted
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'active'
                CHECK (state IN ('active', 'replaced', 'deleted', 'terminated', 'gone')),
            replaced_by TEXT,
            last_checked_at TEXT,
            last_error TEXT
        );

        -- The shop's clients directory («Контрагенты»).
        CREATE TABLE clients (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            external_id TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE UNIQUE INDEX clients_external_id ON clients(external_id)
            WHERE external_id IS NOT NULL;
        CREATE INDEX clients_name ON clients(name);
        CREATE TABLE client_phones (
            client_id INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
            phone TEXT NOT NULL,
            raw TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (client_id, phone)
        );
        CREATE INDEX client_phones_phone ON client_phones(phone);

        -- Small facts the daemon keeps: last event received, last reconciliation.
        CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT
        );
        """,
    )


def pending(conn: sqlite3.Connection) -> bool:
    """Whether any migration is still to apply: one cheap query on every open."""
    try:
        done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
    except sqlite3.OperationalError:  # no _migrations table: a new register
        return True
    return any(name not in done for name, _ in MIGRATIONS)


def migrate(db: sqlite_utils.Database) -> list[str]:
    """Apply pending migrations; returns the names applied. Safe to call every time."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    done = {row[0] for row in db.execute("SELECT name FROM _migrations").fetchall()}
    applied = []
    for name, func in MIGRATIONS:
        if name in done:
            continue
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have applied it while we waited for the lock.
            if db.conn.execute("SELECT 1 FROM _migrations WHERE name = ?", [name]).fetchone():
                db.conn.rollback()
                continue
            func(db)
            db.conn.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                [name, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")],
            )
        except BaseException:
            db.conn.rollback()
            raise
        db.conn.commit()
        applied.append(name)
    return applied


@migration
def m010_subscription_requested(db: sqlite_utils.Database) -> None:
    # What we asked for, so that a renewal asks the same again (the PBX may grant less).
    db.conn.execute("ALTER TABLE subscriptions ADD COLUMN requested INTEGER")
    db.conn.execute("CREATE INDEX subscriptions_state ON subscriptions(state)")


@migration
def m060_reconcile_and_autoclose(db: sqlite_utils.Database) -> None:
    # Statistics reconciliation and auto-closing match calls by the caller's number and time:
    # legs keep the remote number in E.164 (filled by the processor from now on, backfilled here).
    from beeline_missed import phones

    rows = db.conn.execute(
        "SELECT target_id, call_id, remote_raw FROM legs WHERE remote_raw IS NOT NULL"
    ).fetchall()
    db.conn.executemany(
        "UPDATE legs SET remote_phone = ? WHERE target_id = ? AND call_id = ?",
        [(phones.normalise(row[2]), row[0], row[1]) for row in rows],
    )
    run_script(
        db,
        """
        CREATE INDEX legs_remote_phone ON legs(remote_phone, start_ms);
        -- The PBX's abonents, cached so that the processor can name who answered without a
        -- network call.
        CREATE TABLE abonents (
            user_id TEXT PRIMARY KEY,
            phone TEXT,
            extension TEXT,
            first_name TEXT,
            last_name TEXT,
            department TEXT,
            fetched_at TEXT NOT NULL
        );
        """,
    )


@migration
def m070_people_services_and_where_lost(db: sqlite_utils.Database) -> None:
    # Detection tells people from the PBX's services, and says where a missed call was lost.
    # Legs are keyed by their session too: a PBX restart recycles call-half ids ('callhalf-N:0'),
    # and a new call on a recycled id must not be merged into an old one. Dedupe keys become a
    # digest of what an event says (bounded in time), so only true repeats are dropped; the old
    # keys cannot be converted and are not needed: merging a repeat again changes nothing.
    run_script(
        db,
        """
        ALTER TABLE calls ADD COLUMN lost_at TEXT;
        ALTER TABLE calls ADD COLUMN forwarded_to TEXT;

        CREATE TABLE legs_new (
            target_id TEXT NOT NULL,
            call_id TEXT NOT NULL,
            ext_tracking_id TEXT NOT NULL,
            personality TEXT,
            call_type TEXT,
            remote_raw TEXT,
            remote_phone TEXT,
            start_ms INTEGER,
            answer_ms INTEGER,
            release_ms INTEGER,
            answered INTEGER NOT NULL DEFAULT 0,
            released INTEGER NOT NULL DEFAULT 0,
            huntgroup TEXT,
            release_cause TEXT,
            redirect_to TEXT,
            member INTEGER NOT NULL DEFAULT 0,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (target_id, call_id, ext_tracking_id)
        );
        INSERT INTO legs_new (target_id, call_id, ext_tracking_id, personality, call_type,
                              remote_raw, remote_phone, start_ms, answer_ms, release_ms,
                              answered, released, huntgroup, updated_at)
            SELECT target_id, call_id, ext_tracking_id, personality, call_type, remote_raw,
                   remote_phone, start_ms, answer_ms, release_ms, answered, released, huntgroup,
                   updated_at
            FROM legs;
        DROP TABLE legs;
        ALTER TABLE legs_new RENAME TO legs;
        CREATE INDEX legs_session ON legs(ext_tracking_id);
        CREATE INDEX legs_remote_phone ON legs(remote_phone, start_ms);

        DROP TABLE seen_events;
        CREATE TABLE seen_events (
            event_id TEXT PRIMARY KEY,
            digest TEXT NOT NULL,
            seen_ms INTEGER NOT NULL
        );
        DROP TABLE seen_leg_events;
        CREATE TABLE seen_leg_events (
            digest TEXT PRIMARY KEY,
            seen_ms INTEGER NOT NULL
        );
        CREATE INDEX seen_events_seen ON seen_events(seen_ms);
        CREATE INDEX seen_leg_events_seen ON seen_leg_events(seen_ms);
        """,
    )


@migration
def m080_client_name_key(db: sqlite_utils.Database) -> None:
    # A client's name as matched and searched (case, spacing and ё folded), stored so that
    # re-import and `clients find` use an index instead of folding every name in Python.
    # (Clients.name_key as of this migration, copied: a migration must not change later.)
    db.conn.execute("ALTER TABLE clients ADD COLUMN name_key TEXT")
    rows = db.conn.execute("SELECT id, name FROM clients").fetchall()
    db.conn.executemany(
        "UPDATE clients SET name_key = ? WHERE id = ?",
        [(" ".join(str(name).split()).casefold().replace("ё", "е"), id_) for id_, name in rows],
    )
    db.conn.execute("CREATE INDEX clients_name_key ON clients(name_key)")


@migration
def m090_onec(db: sqlite_utils.Database) -> None:
    # 1C:Альфа-Авто: each client synced from 1C keeps its Ref_Key (the booking's Заказчик_Key,
    # and how a client deleted in 1C is found to leave the directory). Not unique: two 1C
    # items with one code are one directory client.
    db.conn.execute("ALTER TABLE clients ADD COLUMN onec_ref TEXT")
    db.conn.execute("CREATE INDEX clients_onec_ref ON clients(onec_ref)")


@migration
def m091_onec_bookings(db: sqlite_utils.Database) -> None:
    # «Записаться» creates a booking (Document_ЗаявкаНаРемонт) in 1C. Each is kept here first,
    # so that one 1C could not take is retried by the daemon; `token` is written into the
    # document's comment, so a retry finds a document whose creation 1C did but whose answer
    # was lost, instead of creating it twice.
    run_script(
        db,
        """
        CREATE TABLE onec_bookings (
            id INTEGER PRIMARY KEY,
            call_id INTEGER REFERENCES calls(id) ON DELETE SET NULL,
            client_ref TEXT NOT NULL,
            token TEXT NOT NULL UNIQUE,
            body TEXT NOT NULL,                    -- the JSON POSTed to 1C
            state TEXT NOT NULL DEFAULT 'waiting' CHECK (state IN ('waiting', 'created')),
            number TEXT,                           -- 1C's Number once created
            ref TEXT,                              -- 1C's Ref_Key once created
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX onec_bookings_state ON onec_bookings(state, id);
        """,
    )


@migration
def m100_claims(db: sqlite_utils.Database) -> None:
    # «Взять в работу»: who is calling a case back, since when. A case is a caller's open
    # calls (case_key: the number, or 'call:<id>' for a hidden one), so a claim holds over
    # a new attempt of the same caller. Closing the case's last open call (by the card, by
    # auto-close, by any path) ends the claim, whichever code wrote the status.
    run_script(
        db,
        """
        CREATE TABLE claims (
            case_key TEXT PRIMARY KEY,
            claimed_by TEXT NOT NULL,
            claimed_at TEXT NOT NULL        -- UTC
        );
        CREATE TRIGGER claims_released_on_close AFTER UPDATE OF status ON calls
        WHEN NEW.status != 'missed'
        BEGIN
            DELETE FROM claims WHERE case_key = 'call:' || NEW.id;
            DELETE FROM claims WHERE NEW.phone IS NOT NULL AND case_key = NEW.phone
                AND NOT EXISTS (SELECT 1 FROM calls
                                WHERE phone = NEW.phone AND status = 'missed');
        END;
        """,
    )


@migration
def m110_callback_attempts_and_escalations(db: sqlite_utils.Database) -> None:
    run_script(
        db,
        """
        -- An answered call with the number that was too short to count as a conversation
        -- (auto_close_min_talk): the case stays open, the attempt is shown and counted.
        CREATE TABLE callback_attempts (
            id INTEGER PRIMARY KEY,
            call_id INTEGER NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
            session_key TEXT NOT NULL,             -- extTrackingId of the answered call
            direction TEXT NOT NULL,               -- 'incoming' | 'outgoing'
            attempted_at TEXT NOT NULL,            -- UTC, when it was answered
            talk_seconds INTEGER,                  -- NULL: its release was never heard
            who TEXT,
            created_at TEXT NOT NULL,
            UNIQUE (call_id, session_key)
        );
        CREATE INDEX callback_attempts_call ON callback_attempts(call_id);
        -- Answered sessions whose auto-close waits for the release (the talk time).
        CREATE TABLE answers_awaiting_release (
            ext_tracking_id TEXT PRIMARY KEY,
            since_ms INTEGER NOT NULL
        );
        -- Open calls the managers were told about (escalate_after): never twice.
        CREATE TABLE escalations (
            call_id INTEGER PRIMARY KEY REFERENCES calls(id) ON DELETE CASCADE,
            escalated_at TEXT NOT NULL
        );
        """,
    )


@migration
def m120_drop_clients_name_index(db: sqlite_utils.Database) -> None:
    # The directory is listed by `name_key` (its own index, and «Ёлкин» among the Е as
    # Russian readers expect); an index on the raw name only cost a big import a random
    # page write per client. Runs on PostgreSQL too (after pg_schema.BASELINE_HEAD).
    db.conn.execute("DROP INDEX IF EXISTS clients_name")
