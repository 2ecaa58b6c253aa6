"""The claim rules (claims.py) and the click-to-call rules (callback.py), as pure functions: the
clock is an argument, built from the tests' "now"."""

from __future__ import annotations

from datetime import timedelta

import pytest

from beeline_missed.config import StaffMember
from beeline_missed.errors import UserError
from beeline_missed.rules import callback, claims
from beeline_missed.store import StoredClaim
from tests.support import clock

pytestmark = pytest.mark.both_engines

TTL = 1800.0
NOW = clock.moment(clock.today(), 14, 35)
NAMES = {"petrov": "Петров", "anna": "Смирнова"}.get


def names(login: str) -> str:
    return NAMES(login) or login


def held(by: str, minutes_ago: float) -> claims.Claim:
    return claims.Claim(by, NOW - timedelta(minutes=minutes_ago))


def test_a_free_case_is_taken_now() -> None:
    assert claims.decide(None, "anna", NOW, TTL) == claims.Take(claims.Claim("anna", NOW))


def test_someone_elses_live_claim_is_refused_with_who_and_since_when() -> None:
    current = held("petrov", 5)
    refused = claims.decide(current, "anna", NOW, TTL, names=names, zone=clock.MOSCOW)
    assert refused == claims.Refuse(
        current, "Этого клиента уже перезванивает Петров с 14:30 (5 мин)."
    )


def test_the_refusal_tells_the_time_in_the_shops_zone() -> None:
    from datetime import UTC

    refused = claims.decide(held("petrov", 5), "anna", NOW, TTL, zone=UTC)
    assert isinstance(refused, claims.Refuse)
    assert refused.message == "Этого клиента уже перезванивает petrov с 11:30 (5 мин)."


def test_without_a_zone_the_refusal_says_how_long_ago() -> None:
    refused = claims.decide(held("petrov", 12), "anna", NOW, TTL)
    assert isinstance(refused, claims.Refuse)
    assert refused.message == "Этого клиента уже перезванивает petrov 12 мин назад."


@pytest.mark.parametrize(("minutes", "live"), [(0, True), (29.99, True), (30, False), (31, False)])
def test_a_claim_lapses_after_ttl(minutes: float, live: bool) -> None:
    current = held("petrov", minutes)
    assert claims.is_live(current, NOW, TTL) is live
    taken = claims.decide(current, "anna", NOW, TTL)
    assert isinstance(taken, claims.Refuse if live else claims.Take)
    if not live:
        assert taken == claims.Take(claims.Claim("anna", NOW))  # not counted as forced


def test_no_claim_is_not_live() -> None:
    assert claims.is_live(None, NOW, TTL) is False


def test_the_holder_claiming_again_renews_from_now() -> None:
    assert claims.decide(held("anna", 20), "anna", NOW, TTL) == claims.Take(
        claims.Claim("anna", NOW), renewed=True
    )


def test_force_takes_a_live_claim_and_says_whose_it_was() -> None:
    current = held("petrov", 1)
    taken = claims.decide(current, "anna", NOW, TTL, force=True)
    assert taken == claims.Take(claims.Claim("anna", NOW), replaced=current)
    assert claims.taken_message(taken, names) == (
        "Звонок взят в работу: Смирнова (вместо Петров). Сохраните карточку, когда дозвонитесь."
    )


def test_taken_and_renewed_messages() -> None:
    fresh = claims.Take(claims.Claim("anna", NOW))
    again = claims.Take(claims.Claim("anna", NOW), renewed=True)
    tail = "Сохраните карточку, когда дозвонитесь."
    assert claims.taken_message(fresh, names) == f"Взято в работу: перезванивает Смирнова. {tail}"
    assert claims.taken_message(again, names) == f"Продлено: перезванивает Смирнова. {tail}"


@pytest.mark.parametrize(
    ("minutes", "text"),
    [
        (0, "перезванивает Петров (0 с)"),
        (5, "перезванивает Петров (5 мин)"),
        (75, "перезванивает Петров (1 ч 15 мин)"),
    ],
)
def test_label_as_the_lists_show_it(minutes: int, text: str) -> None:
    assert claims.label(held("petrov", minutes), NOW, names) == text


def test_case_key_is_the_number_or_the_hidden_call() -> None:
    assert claims.case_key("+79161234567", 7) == "+79161234567"
    assert claims.case_key(None, 7) == "call:7"
    assert claims.case_key("", 7) == "call:7"


def test_claim_from_a_stored_row() -> None:
    row = StoredClaim("+79161234567", "anna", clock.stored(NOW))
    assert claims.Claim.from_row(row) == claims.Claim("anna", NOW)


# -- click-to-call ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "russian", "foreign"),
    [
        ("e164", "+79161234567", "+380441234567"),
        ("digits", "79161234567", "380441234567"),
        ("national", "89161234567", "+380441234567"),
        ("ten", "9161234567", "+380441234567"),
    ],
)
def test_dial_number_formats(fmt: str, russian: str, foreign: str) -> None:
    assert callback.dial_number("+79161234567", fmt) == russian
    assert callback.dial_number("+380441234567", fmt) == foreign


def test_a_short_plus7_number_is_not_treated_as_russian() -> None:
    assert callback.dial_number("+7123", "ten") == "+7123"


def test_hidden_number_cannot_be_called() -> None:
    with pytest.raises(UserError, match=r"^Номер клиента скрыт: позвонить ему нельзя\.$"):
        callback.dial_number(None, "e164")


def test_unknown_format_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match=r"^weird$"):
        callback.dial_number("+79161234567", "weird")


def test_staff_abonent_or_one_sentence() -> None:
    assert callback.staff_abonent(StaffMember("petrov", "Петров", "202"), "petrov") == "202"
    with pytest.raises(UserError, match=r"нет таблицы \[staff.ivan\]"):
        callback.staff_abonent(None, "ivan")
    with pytest.raises(UserError, match="У пользователя «Петров» не указан абонент АТС"):
        callback.staff_abonent(StaffMember("petrov", "Петров", None), "petrov")
