"""The call card's rules, tested directly (card.py), and their saving against a real register."""

from __future__ import annotations

from dataclasses import replace

import pytest

from beeline_missed.errors import ConflictError, UserError
from beeline_missed.rules import card
from beeline_missed.store import Call, Register
from tests.support.factories import add_call, call_row

NOW = "2026-11-27T12:00:00Z"
LATER = "2026-11-27T15:00:00Z"
MISSED_CARD = card.Card(
    id=7,
    version=4,
    status="missed",
    result="",
    user=None,
    handled_at=None,
    phone="+79161234567",
    client="Иванов Иван",
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("missed", "missed"),
        ("called_back", "called_back"),
        ("Пропущен", "missed"),
        ("Перезвонили", "called_back"),
        ("  перезвонили ", "called_back"),
        ("ПРОПУЩЕН", "missed"),
    ],
)
def test_status_accepts_stored_values_and_labels(text: str, expected: str) -> None:
    assert card.parse_status(text) == expected


def test_unknown_status_is_a_sentence() -> None:
    with pytest.raises(UserError, match="Неизвестный статус «done»"):
        card.parse_status("done")


def test_statuses_are_the_registers_words_and_the_staffs() -> None:
    # One vocabulary: the stored values (the schema's CHECK) and exactly these labels.
    assert card.STATUS_LABELS == {"missed": "Пропущен", "called_back": "Перезвонили"}
    assert (card.MISSED, card.CALLED_BACK) == ("missed", "called_back")


def test_changes_are_not_saved_while_status_stays_missed() -> None:
    edit = card.Edit(user="Анна", result="Не берёт трубку")
    decision = card.decide(MISSED_CARD, edit, NOW)
    assert decision == card.Discard(7, card.NOT_SAVED_MISSED, refused=True)
    explicit = card.decide(MISSED_CARD, card.Edit.parse("Анна", status="Пропущен", result="x"), NOW)
    assert isinstance(explicit, card.Discard) and explicit.refused


@pytest.mark.parametrize("result", [None, "", "   \n "])
def test_called_back_needs_a_result(result: str | None) -> None:
    edit = card.Edit(user="Анна", status="called_back", result=result)
    with pytest.raises(UserError) as caught:
        card.decide(MISSED_CARD, edit, NOW)
    assert str(caught.value) == card.NEED_RESULT


def test_called_back_with_result_saves_at_the_version_read() -> None:
    edit = card.Edit.parse("Анна", status="Перезвонили", result="  Приедет завтра  ")
    decision = card.decide(MISSED_CARD, edit, NOW)
    assert decision == card.Save(
        call_id=7,
        expected_version=4,
        status="called_back",
        result="Приедет завтра",
        user="Анна",
        handled_at=NOW,
        closed_by="staff",
        booked=False,
    )


def test_book_sets_called_back_appends_booking_and_user() -> None:
    decision = card.decide(MISSED_CARD, card.Edit(user="Анна", book=True), NOW)
    assert isinstance(decision, card.Save)
    assert (decision.status, decision.result, decision.user, decision.booked) == (
        "called_back",
        "Записался на ремонт",
        "Анна",
        True,
    )
    with_text = replace(MISSED_CARD, result="Спросил про цену")
    decision = card.decide(with_text, card.Edit(user="Борис", book=True), NOW)
    assert isinstance(decision, card.Save)
    assert decision.result == "Спросил про цену\nЗаписался на ремонт"
    given = card.decide(with_text, card.Edit(user="Борис", result="Едет в 15:00", book=True), NOW)
    assert isinstance(given, card.Save)
    assert given.result == "Едет в 15:00\nЗаписался на ремонт"


def test_booking_twice_does_not_repeat_the_line() -> None:
    assert card.add_booking("Звонил\nЗаписался на ремонт") == "Звонил\nЗаписался на ремонт"
    assert card.add_booking("  ") == "Записался на ремонт"


def test_book_refuses_an_explicit_missed_status() -> None:
    with pytest.raises(UserError, match="«Записаться»"):
        card.Edit.parse("Анна", status="missed", book=True)


def test_resaving_a_handled_card_unchanged_keeps_who_called_back() -> None:
    handled = replace(
        MISSED_CARD, status="called_back", result="Приедет", user="Анна", handled_at=NOW
    )
    same = card.decide(handled, card.Edit(user="Борис", result="Приедет "), NOW)
    assert same == card.Discard(7, "Ничего не изменилось.", refused=False)
    corrected = card.decide(handled, card.Edit(user="Борис", result="Приедет в пятницу"), LATER)
    assert isinstance(corrected, card.Save)
    # A correction is by Борис, but the client was reached when Анна called.
    assert (corrected.user, corrected.handled_at) == ("Борис", NOW)


def test_one_decision_for_several_calls_of_one_caller() -> None:
    cards = [replace(MISSED_CARD, id=i, version=i) for i in (1, 2, 3)]
    decisions = card.decide_many(cards, card.Edit(user="Анна", book=True), NOW)
    assert [(d.call_id, d.expected_version) for d in decisions if isinstance(d, card.Save)] == [
        (1, 1),
        (2, 2),
        (3, 3),
    ]


def test_auto_close_has_no_user_and_skips_handled_calls() -> None:
    decision = card.auto_close(MISSED_CARD, "Клиент дозвонился сам", NOW)
    assert isinstance(decision, card.Save)
    assert (decision.closed_by, decision.user, decision.status) == ("auto", None, "called_back")
    handled = replace(MISSED_CARD, status="called_back", result="x")
    assert isinstance(card.auto_close(handled, "again", NOW), card.Discard)


def test_current_user_is_flag_then_setting_then_os_login(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOGNAME", "oslogin")
    assert card.current_user("  Анна ", "Борис") == "Анна"
    assert card.current_user(None, "Борис") == "Борис"
    assert card.current_user("", " ") == "oslogin"


def test_store_writes_and_second_saver_gets_a_conflict(register: Register) -> None:
    call_id = add_call(register)
    first_open = card.Card.from_row(register.calls.get(call_id))
    second_open = card.Card.from_row(register.calls.get(call_id))
    saved = card.store(
        register.calls,
        [card.decide(first_open, card.Edit(user="Анна", status="called_back", result="A"), NOW)],
    )
    assert saved[0].result == "A" and saved[0].version == 2

    late = card.decide(second_open, card.Edit(user="Борис", status="called_back", result="B"), NOW)
    with pytest.raises(ConflictError) as caught:
        card.store(register.calls, [late])
    assert caught.value.exit_code == 3
    assert str(caught.value) == (
        f"Карточку звонка {call_id} уже сохранили (Анна, статус «Перезвонили»), пока вы её "
        "редактировали: ваши изменения не записаны, откройте карточку заново."
    )
    row = register.calls.get(call_id)
    assert (row.result, row.user, row.version) == ("A", "Анна", 2)


# -- each rule, checked so that a wrong value fails ------------------------------------------


def test_status_words_are_matched_whole_after_trimming() -> None:
    assert card.parse_status("\tcalled-back\n") == "called_back"
    assert card.parse_status("CalledBack") == "called_back"
    for text in ("called back", "пере звонили", "miss", ""):
        with pytest.raises(UserError) as caught:
            card.parse_status(text)
        assert str(caught.value) == (
            f"Неизвестный статус «{text}»: укажите Пропущен или Перезвонили "
            "(missed или called_back)."
        )


def test_status_label_names_known_statuses_and_passes_others_through() -> None:
    assert card.status_label("missed") == "Пропущен"
    assert card.status_label("called_back") == "Перезвонили"
    assert card.status_label("archived") == "archived"


def test_no_login_name_anywhere_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    message = "Не удалось узнать, кто вы: укажите --user или user в config.toml."
    for failure in (KeyError("uid"), OSError("no tty")):

        def getuser(failure: Exception = failure) -> str:
            raise failure

        monkeypatch.setattr(card.getpass, "getuser", getuser)
        with pytest.raises(UserError) as caught:
            card.current_user(None, None)
        assert str(caught.value) == message
    monkeypatch.setattr(card.getpass, "getuser", lambda: "")
    with pytest.raises(UserError) as caught:
        card.current_user("  ", "")
    assert str(caught.value) == message


def test_booking_keeps_leading_text_and_drops_trailing_blank_lines() -> None:
    assert card.add_booking("  Звонил\n\n") == "  Звонил\nЗаписался на ремонт"
    assert card.add_booking("Звонил\n  Записался на ремонт  \n") == (
        "Звонил\n  Записался на ремонт"
    )
    assert card.add_booking("Записался на ремонт, но передумал") == (
        "Записался на ремонт, но передумал\nЗаписался на ремонт"
    )


def test_a_card_is_read_from_every_column_of_its_row() -> None:
    row = call_row(
        id=12,
        version=5,
        status="called_back",
        result="Приедет",
        user="Анна",
        handled_at=NOW,
        phone="+79161234567",
        client="Иванов Иван",
        called_at="2026-11-27T09:00:00Z",
        line="200",
    )
    assert card.Card.from_row(row) == card.Card(
        id=12,
        version=5,
        status="called_back",
        result="Приедет",
        user="Анна",
        handled_at=NOW,
        phone="+79161234567",
        client="Иванов Иван",
        called_at="2026-11-27T09:00:00Z",
        line="200",
    )
    bare = card.Card.from_row(call_row(id=3, phone=None, called_at="2026-11-27T09:00:00Z"))
    assert bare == card.Card(
        id=3, version=1, status="missed", result="", user=None, handled_at=None, line="",
        called_at="2026-11-27T09:00:00Z",
    )  # fmt: skip
    assert (bare.phone, bare.client) == (None, None)


def test_edit_parse_keeps_an_absent_status_absent_and_the_booking_flag() -> None:
    assert card.Edit.parse("Анна", result="x") == card.Edit(user="Анна", result="x")
    booked = card.Edit.parse("Анна", status="перезвонили", result="y", book=True)
    assert booked == card.Edit(user="Анна", status="called_back", result="y", book=True)
    with pytest.raises(UserError) as caught:
        card.Edit.parse("Анна", status="Пропущен", book=True)
    assert str(caught.value) == (
        "«Записаться» ставит статус «Перезвонили»; не указывайте «Пропущен»."
    )


def test_booking_saves_even_when_the_edit_names_no_status() -> None:
    decision = card.decide(MISSED_CARD, card.Edit(user="Анна", status="missed", book=True), NOW)
    assert decision == card.Save(
        call_id=7,
        expected_version=4,
        status="called_back",
        result="Записался на ремонт",
        user="Анна",
        handled_at=NOW,
        closed_by="staff",
        booked=True,
    )


def test_a_missed_card_never_keeps_an_old_handled_time() -> None:
    # Only a card already «Перезвонили» keeps the moment the client was first reached.
    stale = replace(MISSED_CARD, handled_at="2026-11-01T08:00:00Z")
    decision = card.decide(stale, card.Edit(user="Анна", status="called_back", result="x"), NOW)
    assert isinstance(decision, card.Save) and decision.handled_at == NOW
    handled = replace(MISSED_CARD, status="called_back", result="a", handled_at=None)
    decision = card.decide(handled, card.Edit(user="Анна", result="b"), LATER)
    assert isinstance(decision, card.Save) and decision.handled_at == LATER


def test_decide_many_saves_each_call_at_now() -> None:
    cards = [replace(MISSED_CARD, id=i, version=i) for i in (1, 2)]
    edit = card.Edit(user="Анна", status="called_back", result="x")
    decisions = card.decide_many(cards, edit, NOW)
    assert [d.handled_at for d in decisions if isinstance(d, card.Save)] == [NOW, NOW]


def test_auto_close_saves_exactly_the_reason_and_never_a_handled_card() -> None:
    decision = card.auto_close(MISSED_CARD, "  Клиент дозвонился сам  ", NOW)
    assert decision == card.Save(
        call_id=7,
        expected_version=4,
        status="called_back",
        result="Клиент дозвонился сам",
        user=None,
        handled_at=NOW,
        closed_by="auto",
        booked=False,
    )
    saved_by_staff = replace(
        MISSED_CARD, status="called_back", result="Записан на пятницу", user="Анна", handled_at=NOW
    )
    assert card.auto_close(saved_by_staff, "Клиент дозвонился сам", LATER) == card.Discard(
        7, "Звонок уже обработан.", refused=False
    )
    with pytest.raises(UserError) as caught:
        card.auto_close(MISSED_CARD, " \n", NOW)
    assert str(caught.value) == card.NEED_RESULT


def test_auto_close_does_not_overwrite_what_staff_saved(register: Register) -> None:
    call_id = add_call(register)
    opened = card.Card.from_row(register.calls.get(call_id))
    staff = card.decide(opened, card.Edit(user="Анна", status="called_back", result="Записан"), NOW)
    card.store(register.calls, [staff])
    # The daemon's late answer: once from the row as it is now, once from a row read before.
    now_row = card.Card.from_row(register.calls.get(call_id))
    assert isinstance(card.auto_close(now_row, "Клиент дозвонился сам", LATER), card.Discard)
    stale = card.auto_close(opened, "Клиент дозвонился сам", LATER)
    assert isinstance(stale, card.Save)
    with pytest.raises(ConflictError):
        card.store(register.calls, [stale])
    row = register.calls.get(call_id)
    assert (row.status, row.result, row.user, row.closed_by, row.handled_at) == (
        "called_back",
        "Записан",
        "Анна",
        "staff",
        NOW,
    )


class _ConflictingStore:
    """A register whose save always loses to someone, naming the call or not."""

    def __init__(self, call_id: int | None) -> None:
        self.call_id = call_id
        self.asked: list[int] = []

    def save_many(self, saves: list[dict]) -> list[Call]:
        conflict = ConflictError("changed")
        conflict.call_id = self.call_id
        raise conflict

    def get(self, call_id: int) -> Call:
        self.asked.append(call_id)
        return call_row(id=call_id, status="called_back", user=None, closed_by="auto")


def test_a_conflict_names_the_call_the_register_names_else_the_first() -> None:
    saves = [
        card.Save(call_id=i, expected_version=1, status="called_back", result="x", user="Анна",
                  handled_at=NOW, closed_by="staff")
        for i in (5, 6)
    ]  # fmt: skip
    named = _ConflictingStore(6)
    with pytest.raises(ConflictError) as caught:
        card.store(named, saves)
    assert named.asked == [6]
    assert str(caught.value).startswith("Карточку звонка 6 уже сохранили (автоматически,")
    unnamed = _ConflictingStore(None)
    with pytest.raises(ConflictError):
        card.store(unnamed, saves)
    assert unnamed.asked == [5]


@pytest.mark.parametrize(
    ("row", "who"),
    [
        ({"user": "Анна", "closed_by": "staff", "status": "called_back"}, "Анна"),
        ({"user": None, "closed_by": "auto", "status": "called_back"}, "автоматически"),
        ({"user": "", "closed_by": "staff", "status": "called_back"}, "кто-то другой"),
        ({"user": None, "closed_by": None, "status": "called_back"}, "кто-то другой"),
    ],
)
def test_conflict_message_says_who_saved_and_the_status_now(row: dict, who: str) -> None:
    assert card.conflict_message(call_row(id=9, **row)) == (
        f"Карточку звонка 9 уже сохранили ({who}, статус «Перезвонили»), пока вы её "
        "редактировали: ваши изменения не записаны, откройте карточку заново."
    )
    missed = card.conflict_message(call_row(**{"id": 9, **row, "status": "missed"}))
    assert "статус «Пропущен»" in missed
