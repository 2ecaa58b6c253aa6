"""The call card's rules, tested directly (card.py), and their saving against a real register."""

from __future__ import annotations

from dataclasses import replace

import pytest

from beeline_missed import card
from beeline_missed import register as register_module
from beeline_missed.errors import ConflictError, UserError
from beeline_missed.register import Register
from tests.factories import add_call

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


def test_labels_match_the_register() -> None:
    assert card.STATUS_LABELS == register_module.STATUS_LABELS
    assert (card.MISSED, card.CALLED_BACK) == (register_module.MISSED, register_module.CALLED_BACK)


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
    first_open = card.Card.from_row(register.get_call(call_id))
    second_open = card.Card.from_row(register.get_call(call_id))
    saved = card.store(
        register,
        [card.decide(first_open, card.Edit(user="Анна", status="called_back", result="A"), NOW)],
    )
    assert saved[0]["result"] == "A" and saved[0]["version"] == 2

    late = card.decide(second_open, card.Edit(user="Борис", status="called_back", result="B"), NOW)
    with pytest.raises(ConflictError) as caught:
        card.store(register, [late])
    assert caught.value.exit_code == 3
    assert "Анна" in str(caught.value) and "откройте карточку заново" in str(caught.value)
    row = register.get_call(call_id)
    assert (row["result"], row["user"], row["version"]) == ("A", "Анна", 2)
