from __future__ import annotations

from pathlib import Path

import pytest
import sqlite_utils

from beeline_missed.errors import ConflictError
from beeline_missed.store import Register, connect
from beeline_missed.store.migrations import MIGRATIONS, migrate, pending
from tests.support.factories import add_call


def test_migrations_are_recorded_and_idempotent(db_path: Path) -> None:
    db = sqlite_utils.Database(connect(db_path))
    first = migrate(db)
    assert first == [name for name, _ in MIGRATIONS]
    assert migrate(db) == []
    assert not pending(db.conn)
    assert db.journal_mode == "wal"
    for table in ("calls", "inbox", "legs", "sessions", "subscriptions", "clients", "meta"):
        assert db[table].exists()


@pytest.mark.both_engines
def test_insert_is_unique_per_session(register: Register) -> None:
    add_call(register, "s1", called_at="2026-11-27T10:00:00Z")
    with register.transaction():
        again = register.calls.insert(
            session_key="s1",
            phone=None,
            phone_raw="",
            called_at="2026-11-27T10:00:00Z",
            line="",
        )
    assert again is None
    assert register.calls.count() == 1


@pytest.mark.both_engines
def test_list_newest_first_and_only_missed(register: Register) -> None:
    old = add_call(register, "a", called_at="2026-11-27T09:00:00Z", phone="+79161234567")
    new = add_call(register, "b", called_at="2026-11-27T11:00:00Z", phone="+79031112233")
    assert [c.id for c in register.calls.rows()] == [new, old]
    register.calls.save(
        old, 1, status="called_back", result="ok", user="u", handled_at="2026-11-27T12:00:00Z"
    )
    assert [c.id for c in register.calls.rows()] == [new]
    assert [c.id for c in register.calls.rows(include_handled=True)] == [new, old]


@pytest.mark.both_engines
def test_save_with_stale_version_conflicts(register: Register) -> None:
    call = add_call(register, "a", called_at="2026-11-27T09:00:00Z")
    register.calls.save(call, 1, status="called_back", result="first", user="a", handled_at=None)
    with pytest.raises(ConflictError):
        register.calls.save(
            call, 1, status="called_back", result="second", user="b", handled_at=None
        )
    assert register.calls.get(call).result == "first"


@pytest.mark.both_engines
def test_one_line_per_caller_with_attempts(register: Register) -> None:
    first = add_call(register, "a", called_at="2026-11-27T09:00:00Z", phone="+79161234567")
    other = add_call(register, "b", called_at="2026-11-27T09:30:00Z", phone="+79031112233")
    second = add_call(register, "c", called_at="2026-11-27T10:00:00Z", phone="+79161234567")
    hidden1 = add_call(register, "d", called_at="2026-11-27T08:00:00Z", phone=None)
    hidden2 = add_call(register, "e", called_at="2026-11-27T08:30:00Z", phone=None)
    third = add_call(register, "f", called_at="2026-11-27T09:45:00Z", phone="+79161234567")
    rows = register.calls.rows()
    assert [(r.id, r.attempts) for r in rows] == [
        (second, 3),
        (other, 1),
        (hidden2, 1),
        (hidden1, 1),
    ]
    assert rows[0].call_ids == (first, second, third)
    assert rows[0].first_called_at == "2026-11-27T09:00:00Z"
    assert [c.id for c in register.calls.case(first)] == [second, third, first]
    assert [c.id for c in register.calls.case(hidden1)] == [hidden1]
    assert len(register.calls.rows(include_handled=True)) == 6


@pytest.mark.both_engines
def test_save_calls_is_all_or_nothing(register: Register) -> None:
    a = add_call(register, "a", called_at="2026-11-27T09:00:00Z")
    b = add_call(register, "b", called_at="2026-11-27T10:00:00Z")
    register.calls.save(b, 1, status="called_back", result="x", user="u", handled_at=None)
    saves = [
        dict(
            call_id=call,
            expected_version=1,
            status="called_back",
            result="r",
            user="me",
            handled_at=None,
            closed_by="staff",
        )
        for call in (a, b)
    ]
    with pytest.raises(ConflictError):
        register.calls.save_many(saves)
    assert register.calls.get(a).status == "missed"
