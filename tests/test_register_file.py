"""The register's file moved, deleted or replaced while a view or a card has it open.

SQLite goes on reading and writing the file it opened even once no path leads to it: the daemon
refuses events then (test_faults.py); these are the staff's side. `watch` and the panel say
the list is no longer live instead of showing the old file's rows as live, and a card saved
meanwhile is refused rather than written into a file nobody will read again.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from rich.console import Console

from beeline_missed.cases import card_service
from beeline_missed.errors import UserError
from beeline_missed.rules import card
from beeline_missed.store import FileState, Register
from beeline_missed.views.watch import Watcher
from tests.support.factories import add_call
from tests.support.panel_data import MOSCOW, make_app, seed

T = "2026-11-27T09:00:00Z"  # the calls' own time; nothing here reads the clock


def move_away(path: Path) -> Path:
    moved = path.with_name("moved-" + path.name)
    os.rename(path, moved)
    return moved


def restore_another(path: Path) -> None:
    """What restoring a backup over the register does: another file takes the path."""
    backup = path.with_name("backup.sqlite")
    other = Register.open(backup)
    add_call(other, "s-backup", "+79031110000", T)
    other.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    other.close()
    os.replace(backup, path)


@pytest.fixture
def db(home: Path) -> Path:
    return home / "register.sqlite"


def test_file_state_follows_the_path_not_the_open_file(db: Path) -> None:
    register = Register.open(db)
    assert register.file_state() is FileState.SAME
    moved = move_away(db)
    assert register.file_state() is FileState.GONE
    os.rename(moved, db)  # put back: the same file again
    assert register.file_state() is FileState.SAME
    restore_another(db)
    assert register.file_state() is FileState.REPLACED
    register.close()


@pytest.mark.parametrize("change", ["moved", "replaced"])
def test_a_card_saved_after_its_register_file_changed_is_refused(db: Path, change: str) -> None:
    register = Register.open(db)
    call_id = add_call(register, "s-1", "+79161234567", T)
    opened = card_service.open_card(register, call_id)
    edit = card.Edit(user="Петров", status=card.CALLED_BACK, result="Перезвонил", book=False)
    if change == "moved":
        register.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # all of it in the file moved
        db = move_away(db)
        said = "перемещён или удалён после того, как его открыли: ничего не сохранено."
    else:
        restore_another(db)
        said = "заменён другим после того, как его открыли: ничего не сохранено"
    with pytest.raises(UserError) as refused:
        card_service.apply(register, opened, edit, None, now=T)
    assert said in refused.value.text(russian=True)
    register.close()
    # The save went nowhere: the call is still open in the file it was opened from.
    if change == "moved":
        again = Register.open(db)
        assert again.calls.get(call_id).status == "missed"
        again.close()


def test_the_same_save_goes_through_while_the_file_stays(db: Path) -> None:
    """The refusal above is the file's doing, not the card's."""
    register = Register.open(db)
    call_id = add_call(register, "s-1", "+79161234567", T)
    opened = card_service.open_card(register, call_id)
    edit = card.Edit(user="Петров", status=card.CALLED_BACK, result="Перезвонил", book=False)
    outcome = card_service.apply(register, opened, edit, None, now=T)
    assert outcome.saved is not None and outcome.saved.status == "called_back"
    register.close()


def render_text(watcher: Watcher) -> str:
    console = Console(width=120, record=True, color_system=None)
    console.print(watcher.render())
    return " ".join(console.export_text().split())  # wrapped lines joined


def test_watch_says_the_list_is_not_live_while_the_file_is_away(db: Path) -> None:
    register = Register.open(db)
    add_call(register, "s-1", "+79161234567", T)
    watcher = Watcher(register, MOSCOW)
    assert watcher.poll() is True
    moved = move_away(db)
    assert watcher.poll() is False
    text = render_text(watcher)
    assert f"Файл реестра звонков {db} перемещён или удалён: список не обновляется" in text
    assert "Пропущенных звонков:" not in text
    assert "+7 916 123-45-67" in text  # the last rows read stay, under the warning
    os.rename(moved, db)
    writer = Register.open(db)  # the daemon, writing again once the file is back
    add_call(writer, "s-2", "+79162223344", T)
    writer.close()
    assert watcher.poll() is True
    text = render_text(watcher)
    assert "Пропущенных звонков: 2" in text and "перемещён" not in text
    restore_another(db)
    assert watcher.poll() is False
    assert "заменён другим: список не обновляется; перезапустите просмотр." in render_text(watcher)
    register.close()


@pytest.mark.anyio
async def test_panel_says_once_that_the_register_file_is_away_and_when_it_is_back(
    db: Path,
) -> None:
    seed(db)
    app = make_app(interval=60)
    async with app.run_test(size=(110, 34)) as pilot:
        await pilot.pause()
        loads = app.loads
        moved = move_away(db)
        assert app.refresh_data(force=True) is False
        assert app.refresh_data(force=True) is False
        await pilot.pause()
        errors = [n for n in app._notifications if n.severity == "error"]
        assert [n.message for n in errors] == [
            f"Файл реестра звонков {db} перемещён или удалён: список не обновляется, пока файл "
            "не вернётся."
        ]
        assert app.loads == loads  # nothing read from the file nobody else will see
        os.rename(moved, db)
        app.refresh_data()  # nothing changed meanwhile: nothing to read, only to say
        await pilot.pause()
        assert [n.severity for n in app._notifications] == ["information"]
        assert "снова обновляется" in next(iter(app._notifications)).message


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
