"""The hook's spool: while another process holds the register's write lock (a big clients
import, an admin's shell), the daemon keeps acknowledging events, keeps them in a file beside
the register, and moves them into the inbox once the lock is free, losing and doubling none,
crash or not."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from beeline_missed.daemon.hook import Intake
from beeline_missed.daemon.spool import (
    Spool,
    SpooledEvent,
    count_waiting,
    spool_path,
    waiting_events,
)
from beeline_missed.simulator import xsi_build
from tests.support.daemon import Daemon, wait_for
from tests.support.peek import (
    inbox_bodies,
    inbox_event_ids,
    rows,
    spooled_event_ids,
    write_lock_held_elsewhere,
)

GROUP = ["9001112201@ip.beeline.ru"]
T0 = 1795766400000


def missed_calls(calls: int, prefix: str = "+7916300") -> list[bytes]:
    """Every event of `calls` unanswered calls, in the order the PBX sends them."""
    return [
        xsi_build.event_document(step, subscription_id="s")
        for i in range(calls)
        for step in xsi_build.incoming_call(GROUP, f"{prefix}{i:04d}", T0 + i * 60_000)
    ]


def event_id(body: bytes) -> str:
    from beeline_missed.pbx import xsi

    return xsi.parse_event(body).event_id


@pytest.mark.e2e
def test_events_are_acknowledged_while_another_process_holds_the_register(home: Path) -> None:
    daemon = Daemon(home).start()
    db = home / "register.sqlite"
    bodies = missed_calls(3)
    try:
        with write_lock_held_elsewhere(db):
            # Without the spool each post would wait for the lock until it failed (503).
            answers = [daemon.post(body) for body in bodies]
            assert [a.status_code for a in answers] == [200] * len(bodies)
            assert inbox_event_ids(db) == []  # nothing could be written to the register
            assert spool_path(db).exists()
            # `status` tells the admin.
            status = daemon.cli("status", "--json")
            assert json.loads(status.stdout)["spooled_events"] == len(bodies), status.stderr
            said = daemon.cli("status").stdout
            assert f"{len(bodies)} events acknowledged while another process held" in said
        wait_for(lambda: len(inbox_event_ids(db)) == len(bodies))
        # In the order they arrived, once each; then the spool is gone.
        assert inbox_event_ids(db) == [event_id(body) for body in bodies]
        wait_for(lambda: not spool_path(db).exists())
        wait_for(lambda: len(rows(home)) == 3)
        assert sorted(r["phone"] for r in rows(home)) == [f"+7916300{i:04d}" for i in range(3)]
        assert "events are kept in" in daemon.log() and "moved" in daemon.log()
        assert json.loads(daemon.cli("status", "--json").stdout)["spooled_events"] == 0
    finally:
        assert daemon.stop() == 0


@pytest.mark.e2e
def test_events_in_the_spool_survive_a_crash(home: Path) -> None:
    daemon = Daemon(home).start()
    db = home / "register.sqlite"
    bodies = missed_calls(2, "+7916310")
    with write_lock_held_elsewhere(db):
        assert all(daemon.post(body).status_code == 200 for body in bodies)
        daemon.kill()
    assert inbox_event_ids(db) == []
    assert spooled_event_ids(db) == [event_id(body) for body in bodies]
    restarted = Daemon(home).start()
    try:
        wait_for(lambda: len(inbox_event_ids(db)) == len(bodies))
        assert inbox_event_ids(db) == [event_id(body) for body in bodies]
        wait_for(lambda: len(rows(home)) == 2)
    finally:
        assert restarted.stop() == 0


def spooled(bodies: list[bytes]) -> list[SpooledEvent]:
    return [SpooledEvent(body, T0, {"event_id": event_id(body)}) for body in bodies]


def moved_by_a_new_intake(db: Path) -> None:
    """Start an intake on the register (it moves what the spool holds) and wait for it."""
    intake = Intake(db, 65536, threading.Event())
    try:
        wait_for(lambda: not spool_path(db).exists())
    finally:
        intake.close()


def test_a_crash_after_moving_but_before_deleting_the_spool_doubles_nothing(
    tmp_path: Path,
) -> None:
    db = tmp_path / "register.sqlite"
    Intake(db, 65536, threading.Event()).close()  # a migrated register
    bodies = missed_calls(2, "+7916320")
    Spool(spool_path(db)).append(spooled(bodies))
    left_behind = tmp_path / "copy"
    shutil.copy(spool_path(db), left_behind)
    moved_by_a_new_intake(db)
    assert inbox_event_ids(db) == [event_id(body) for body in bodies]
    # The file is back as a crash right after the commit would have left it.
    shutil.copy(left_behind, spool_path(db))
    moved_by_a_new_intake(db)
    assert inbox_bodies(db) == bodies  # once each, byte for byte


def test_an_append_cut_short_by_a_crash_is_dropped_and_the_rest_kept(tmp_path: Path) -> None:
    db = tmp_path / "register.sqlite"
    Intake(db, 65536, threading.Event()).close()
    bodies = missed_calls(3, "+7916330")
    Spool(spool_path(db)).append(spooled(bodies[:3]))
    with spool_path(db).open("ab") as f:  # the crash came halfway through the next append
        f.write(b'{"ms": 1, "len": 500, "fields": {}}\n<?xml version="1.0"')
    spool = Spool(spool_path(db))
    assert spool.end == spool_path(db).stat().st_size  # the torn tail is cut off
    spool.append(spooled(bodies[3:]))  # acknowledged after the restart
    assert spool.end == spool_path(db).stat().st_size
    moved_by_a_new_intake(db)
    assert inbox_bodies(db) == bodies


def test_a_spool_whose_header_was_cut_short_is_discarded(tmp_path: Path) -> None:
    db = tmp_path / "register.sqlite"
    Intake(db, 65536, threading.Event()).close()
    spool_path(db).write_bytes(b"beeline-missed sp")
    assert not Spool(spool_path(db)).waiting
    assert not spool_path(db).exists()


def test_events_acknowledged_after_earlier_spooled_ones_follow_them(tmp_path: Path) -> None:
    db = tmp_path / "register.sqlite"
    Intake(db, 65536, threading.Event()).close()
    bodies = missed_calls(8, "+7916340")
    Spool(spool_path(db)).append(spooled(bodies[:8]))  # left by the previous run

    async def post(intake: Intake, later: list[bytes]) -> list[int]:
        return [await intake.store_async(body, event_id=event_id(body)) for body in later]

    with write_lock_held_elsewhere(db):
        intake = Intake(db, 65536, threading.Event())
        # Acknowledged (no inbox id yet) while the earlier ones still wait.
        assert asyncio.run(post(intake, bodies[8:])) == [0] * 8
    try:
        wait_for(lambda: len(inbox_event_ids(db)) == len(bodies))
        wait_for(lambda: not spool_path(db).exists())
    finally:
        intake.close()
    assert inbox_event_ids(db) == [event_id(body) for body in bodies]


def test_a_big_spool_is_read_a_chunk_at_a_time_and_nothing_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from beeline_missed.daemon import spool as spool_module

    bodies = missed_calls(5, "+7916350")
    spool = Spool(tmp_path / "r-spool")
    spool.append(spooled(bodies))
    # A chunk smaller than one event: each read must still return whole events, in order.
    monkeypatch.setattr(spool_module, "READ_CHUNK", 64)
    offset, seen = spool.start_offset(None), []
    while True:
        events, offset = spool.read(offset, spool.end, 3)
        if not events:
            break
        assert len(events) <= 3
        seen += [e.body for e in events]
    assert seen == bodies and offset == spool.end


def test_status_counts_only_the_events_not_yet_moved(tmp_path: Path) -> None:
    bodies = missed_calls(2, "+7916360")
    spool = Spool(tmp_path / "r-spool")
    assert count_waiting(spool.path, None) == 0  # no spool at all
    spool.append(spooled(bodies))
    assert count_waiting(spool.path, None) == 4
    _, after_one = spool.read(spool.start_offset(None), spool.end, 1)
    assert count_waiting(spool.path, spool.position(after_one)) == 3
    # The position of an earlier spool file says nothing about this one.
    assert count_waiting(spool.path, f"0123abcd {after_one}") == 4
    assert count_waiting(spool.path, spool.position(spool.end)) == 0
    # The events themselves, for a look at what waits (the kill -9 tests read them).
    assert [e.body for e in waiting_events(spool.path, spool.position(after_one))] == bodies[1:]
    assert waiting_events(spool.path, spool.position(spool.end)) == []


def test_the_spool_is_as_private_as_the_register(tmp_path: Path) -> None:
    db = tmp_path / "register.sqlite"
    Intake(db, 65536, threading.Event()).close()
    db.chmod(0o640)
    bodies = missed_calls(1, "+7916370")

    async def post(intake: Intake) -> list[int]:
        return [await intake.store_async(body, event_id=event_id(body)) for body in bodies]

    umask = os.umask(0o077)  # a detached daemon's: the register's mode is kept even so
    try:
        with write_lock_held_elsewhere(db):
            intake = Intake(db, 65536, threading.Event())
            asyncio.run(post(intake))
            assert spool_path(db).stat().st_mode & 0o777 == 0o640
        intake.close()
    finally:
        os.umask(umask)


def test_an_event_whose_length_does_not_match_its_body_is_not_taken(tmp_path: Path) -> None:
    bodies = missed_calls(1, "+7916380")
    spool = Spool(tmp_path / "r-spool")
    spool.append(spooled(bodies))
    with spool.path.open("ab") as f:  # says 3 bytes, holds 5 before the line's end
        f.write(b'{"ms": 1, "len": 3, "fields": {}}\nabcde\n')
    again = Spool(spool.path)
    events, _ = again.read(again.start_offset(None), again.end, 10)
    assert [e.body for e in events] == bodies


def test_a_file_at_the_spools_place_without_its_header_is_discarded(tmp_path: Path) -> None:
    path = tmp_path / "r-spool"
    path.write_bytes(b"something else\n")
    assert not Spool(path).waiting and not path.exists()


def test_events_appended_after_a_read_began_wait_for_the_next_read(tmp_path: Path) -> None:
    first, later = missed_calls(1, "+7916390"), missed_calls(1, "+7916391")
    spool = Spool(tmp_path / "r-spool")
    spool.append(spooled(first))
    end = spool.end  # where the mover looked
    spool.append(spooled(later))
    offset = spool.start_offset(None)
    events, after = spool.read(offset, end, 10)
    assert [e.body for e in events] == first and after == end
    events, after = spool.read(after, spool.end, 10)
    assert [e.body for e in events] == later and after == spool.end


def test_the_position_of_another_spool_file_is_not_used(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "r-spool")
    spool.append(spooled(missed_calls(1, "+7916392")))
    start = spool.start_offset(None)
    assert start == len(spool.path.read_bytes().split(b"\n", 1)[0]) + 1
    assert spool.start_offset(f"0123abcd {spool.end}") == start
    assert spool.start_offset(spool.position(spool.end)) == spool.end


def test_an_append_that_fails_leaves_whole_events_and_the_next_one_works(
    tmp_path: Path,
) -> None:
    import resource

    bodies = missed_calls(2, "+7916393")
    # A new file that cannot be created: nothing is left, and the next append starts afresh.
    spool = Spool(tmp_path / "not-yet" / "r-spool")
    with pytest.raises(OSError):
        spool.append(spooled(bodies[:1]))
    assert not spool.waiting
    spool.path.parent.mkdir()
    spool.append(spooled(bodies[:1]))
    # An append cut short by the disk (here a file size limit): the file ends on an event.
    size = spool.path.stat().st_size
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 10, hard))
    try:
        with pytest.raises(OSError):
            spool.append(spooled(bodies[1:]))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert spool.path.stat().st_size == size == spool.end
    spool.append(spooled(bodies[2:]))
    again = Spool(spool.path)
    events, _ = again.read(again.start_offset(None), again.end, 10)
    assert [e.body for e in events] == bodies[:1] + bodies[2:]


def test_once_the_spool_is_moved_events_go_straight_to_the_inbox(tmp_path: Path) -> None:
    db = tmp_path / "register.sqlite"
    Intake(db, 65536, threading.Event()).close()
    bodies = missed_calls(2, "+7916394")
    Spool(spool_path(db)).append(spooled(bodies[:2]))  # left by the previous run

    async def post(intake: Intake) -> list[int]:
        return [await intake.store_async(body, event_id=event_id(body)) for body in bodies[2:]]

    intake = Intake(db, 65536, threading.Event())
    try:
        wait_for(lambda: not spool_path(db).exists())
        ids = asyncio.run(post(intake))
    finally:
        intake.close()
    assert all(ids) and not spool_path(db).exists()  # real inbox ids: not spooled
    assert inbox_bodies(db) == bodies


def test_the_spool_lives_beside_the_register_under_its_name() -> None:
    assert spool_path(Path("/srv/shop/register.sqlite")) == Path("/srv/shop/register.sqlite-spool")


def test_a_spool_emptied_and_started_again_keeps_its_end_at_the_files_end(
    tmp_path: Path,
) -> None:
    bodies = missed_calls(2, "+7916395")
    spool = Spool(tmp_path / "r-spool")
    spool.append(spooled(bodies[:2]))
    first_id = spool.file_id
    spool.remove()
    assert not spool.waiting and not spool.path.exists()
    spool.remove()  # already gone: nothing to do
    spool.append(spooled(bodies[2:]))
    assert spool.file_id != first_id  # a new file: no old position applies to it
    assert spool.end == spool.path.stat().st_size
    events, _ = spool.read(spool.start_offset(None), spool.end, 10)
    assert [e.body for e in events] == bodies[2:]


def test_a_read_from_the_middle_stops_at_the_end_it_was_given(tmp_path: Path) -> None:
    bodies, later = missed_calls(3, "+7916396"), missed_calls(1, "+7916397")
    spool = Spool(tmp_path / "r-spool")
    spool.append(spooled(bodies))
    end = spool.end
    spool.append(spooled(later))
    _, middle = spool.read(spool.start_offset(None), end, 2)
    events, after = spool.read(middle, end, 10)
    assert [e.body for e in events] == bodies[2:] and after == end


def test_status_reads_no_spool_into_a_file_that_is_not_one(tmp_path: Path) -> None:
    from beeline_missed.errors import UserError

    junk = tmp_path / "junk-spool"
    junk.write_bytes(b"something else\n")
    assert count_waiting(junk, None) == 0 and junk.exists()  # status changes nothing
    folder = tmp_path / "folder-spool"
    folder.mkdir()
    with pytest.raises(UserError, match=r"Cannot read the hook's spool .*folder-spool"):
        count_waiting(folder, None)


def test_a_damaged_event_is_reported_and_the_spool_kept_aside(tmp_path: Path) -> None:
    from beeline_missed.daemon.spool import SpoolDamaged

    bodies = missed_calls(2, "+7916398")
    spool = Spool(tmp_path / "r-spool")
    spool.append(spooled(bodies[:2]))
    damaged_at = spool.end
    spool.append(spooled(bodies[2:]))
    with spool.path.open("r+b") as f:  # the disk garbled the third event's line
        f.seek(damaged_at)
        f.write(b"#")
    events, after = spool.read(spool.start_offset(None), spool.end, 2)
    assert [e.body for e in events] == bodies[:2] and after == damaged_at
    with pytest.raises(SpoolDamaged):
        spool.read(after, spool.end, 10)
    file_id = spool.file_id
    aside = spool.keep_aside()
    assert aside.name == f"r-spool.damaged-{file_id}" and aside.exists()
    assert not spool.path.exists() and not spool.waiting
    spool.append(spooled(bodies[:1]))  # the next event starts a new spool
    assert spool.end == spool.path.stat().st_size
