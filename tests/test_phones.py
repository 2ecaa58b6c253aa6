"""Phone numbers (beeline_missed/phones.py): which directory numbers are real, how a cell is
split, and how a number is shown to staff.

`directory_number` reads the common +7 forms without phonenumbers' parse (a big import's
largest cost); the properties below hold it to phonenumbers' own verdict for any writing of
any digits, so the shortcut can never take a number phonenumbers refuses or read one
otherwise."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beeline_missed import phones


def _phonenumbers_verdict(text: str) -> str | None:
    """phonenumbers alone: E.164 of a valid number read with region RU, else None."""
    try:
        number = phonenumbers.parse(text, "RU")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _documented_reading(text: str) -> str | None:
    """What directory_number promises: a «tel:»/«sip:» scheme and anything from «@» on are
    not the number, a tab is a space (Excel cells), and phonenumbers decides the rest."""
    text = text.strip()
    if text.lower().startswith(("tel:", "sip:")):
        text = text[4:]
    text = text.split("@", 1)[0]
    return _phonenumbers_verdict(text.replace("\t", " ").strip())


# How people write numbers: a country or trunk prefix, then digits with punctuation between
# (and now and then a letter or a slash, which only phonenumbers may judge).
LEADS = ["", "+", "+7", "+7 ", "8", "8 ", "7", "+3", "+375", "+44 ", "+1", "+8", "(", "8 ("]
PUNCTUATION = ["", "", "", "", " ", "-", "(", ")", ".", "\t", "\xa0", "  ", "x", "б", "/"]


@st.composite
def written_numbers(draw: st.DrawFn) -> str:
    digits = draw(st.text("0123456789", min_size=6, max_size=14))
    text = draw(st.sampled_from(LEADS))
    for digit in digits:
        text += digit + draw(st.sampled_from(PUNCTUATION))
    scheme = draw(st.sampled_from(["", "", "", "tel:", "TEL:", "sip:", "Sip:"]))
    host = draw(st.sampled_from(["", "", "", "@pbx.example", " @ 10.0.0.1"]))
    return scheme + text + host


@settings(max_examples=1500, deadline=None)
@given(text=written_numbers())
def test_directory_number_is_phonenumbers_verdict_however_the_number_is_written(
    text: str,
) -> None:
    assert phones.directory_number(text) == _documented_reading(text)


@settings(max_examples=300, deadline=None)
@given(
    # Where the metadata looks deepest (9300xx mobiles, Kazakh 7xxxx), and any.
    prefix=st.sampled_from(["", "9", "93", "930", "9300", "93000", "3", "49", "70", "71", "4"]),
    digits=st.text("0123456789", min_size=10, max_size=10),
)
def test_the_plus7_shortcut_agrees_with_phonenumbers_on_every_national_prefix(
    prefix: str, digits: str
) -> None:
    national = (prefix + digits)[:10]
    for text in (f"+7{national}", f"8{national}", national, f"7{national}"):
        assert phones.directory_number(text) == _phonenumbers_verdict(text), text


def test_common_russian_writings_are_one_number() -> None:
    for text in (
        "8 (916) 123-45-67",
        "+7 916 123 45 67",
        "79161234567",
        "9161234567",
        "8-916-123-45-67",
        "8.916.123.45.67",
        "+7\xa0916\xa0123\xa045\xa067",
        "8\t916\t1234567",
        " tel:+79161234567 ",
        "sip:89161234567@pbx.example",
    ):
        assert phones.directory_number(text) == "+79161234567", text
    assert phones.directory_number("8 (3412) 12-34-56") == "+73412123456"  # a 4-digit code


def test_common_writings_are_read_without_phonenumbers_parse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The shortcut a big import relies on (parse is ~40 µs a number): the +7 forms staff
    write, with or without a scheme, are read without phonenumbers.parse."""

    def no_parse(*args: object, **kwargs: object) -> None:
        raise AssertionError("phonenumbers.parse was called")

    monkeypatch.setattr(phonenumbers, "parse", no_parse)
    for text in (
        "8 (903) 123-45-67",
        "+7 903 123 45 67",
        "79031234567",
        "9031234567",
        "8-903-123-45-67",
        "8.903.123.45.67",
        "+7\xa0903\xa0123\xa045\xa067",
        "8\t903\t1234567",
        "tel:+79031234567",
        "TEL:89031234567",
        "sip:89031234567@pbx.example",
        "Sip:+79031234567",
    ):
        assert phones.directory_number(text) == "+79031234567", text


def test_an_extension_written_after_the_number_is_left_out() -> None:
    assert phones.directory_number("8 916 123-45-67 доб: 12") == "+79161234567"


def test_a_foreign_number_keeps_its_country() -> None:
    assert phones.directory_number("+375 29 123-45-67") == "+375291234567"
    assert phones.directory_number("+44 20 7946 0958") == "+442079460958"
    assert phones.directory_number("+1 202 555 0143") == "+12025550143"
    assert phones.directory_number("+7 701 234 56 78") == "+77012345678"  # Kazakhstan


def test_numbers_that_cannot_be_numbers_are_refused() -> None:
    for text in (
        "123-45-67",  # no area code
        "8 916 123 45 6",  # a digit short
        "8 916 123 45 678",  # a digit too many
        "+7 916 123 45 678",
        "0916 123 45 67",
        "+7 016 123 45 67",
        "звонить вечером",
        "",
        None,
        "tel:",
    ):
        assert phones.directory_number(text) is None, text


def test_a_cell_splits_on_commas_semicolons_and_line_breaks() -> None:
    assert phones.split_cell("8 916 123-45-67, 8 903 555-00-11") == [
        "8 916 123-45-67",
        "8 903 555-00-11",
    ]
    assert phones.split_cell("89161234567;89035550011") == ["89161234567", "89035550011"]
    assert phones.split_cell("8 916 123-45-67\n8 903 555-00-11") == [
        "8 916 123-45-67",
        "8 903 555-00-11",
    ]
    assert phones.split_cell(" a ;; b,\n c ") == ["a", "b", "c"]


def test_a_cell_of_one_number_is_that_number_without_spaces_round_it() -> None:
    assert phones.split_cell("  8 916 123-45-67 ") == ["8 916 123-45-67"]


def test_an_empty_or_blank_cell_has_no_numbers() -> None:
    assert phones.split_cell(None) == []
    assert phones.split_cell("") == []
    assert phones.split_cell("   ") == []
    assert phones.split_cell(" , ; ") == []


def test_numbers_are_shown_as_staff_read_them() -> None:
    assert phones.display("+79161234567") == "+7 916 123-45-67"
    assert phones.display("+375291234567") == "+375 29 123-45-67"
    assert phones.display("+12025550143") == "+1 202-555-0143"


def test_a_hidden_number_is_said_so() -> None:
    assert phones.display(None) == "номер скрыт"
    assert phones.display("") == "номер скрыт"


def test_what_is_not_a_number_is_shown_as_it_came() -> None:
    assert phones.display("anonymous") == "anonymous"


def test_pbx_numbers_are_read_leniently() -> None:
    """Callers' numbers from the PBX: possible, not necessarily valid, and in any habit."""
    assert phones.normalise("tel:+79161234567") == "+79161234567"
    assert phones.normalise("sip:+79161234567@pbx.example") == "+79161234567"
    assert phones.normalise("89161234567") == "+79161234567"
    assert phones.normalise("79161234567") == "+79161234567"
    assert phones.normalise("tel:+375291234567") == "+375291234567"
    assert phones.normalise("123-45-67") == "+71234567"
    assert phones.normalise("anonymous") is None
    assert phones.normalise("") is None
    assert phones.normalise(None) is None
