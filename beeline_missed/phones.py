"""Phone numbers: everything is compared in E.164, parsed with phonenumbers (region RU)."""

from __future__ import annotations

import functools
import re

REGION = "RU"
_SPLIT = re.compile(r"[;,\n]+")


# Each leg's events carry the caller's number again and again: parse each text once
# (phonenumbers' parse is the processor's largest cost after SQLite's commits).
@functools.lru_cache(maxsize=4096)
def normalise(raw: str | None, region: str = REGION) -> str | None:
    """E.164 for anything that looks like a phone number, else None.

    «8 (916) 123-45-67», «+7 916 1234567», «79161234567», «9161234567» and
    «tel:+79161234567» are the same number.
    """
    if not raw:
        return None
    text = raw.strip()
    if text.lower().startswith(("tel:", "sip:")):
        text = text[4:]
    text = text.split("@", 1)[0]
    digits = re.sub(r"\D", "", text)
    if not digits:
        return None
    # Russian habits phonenumbers does not guess by itself: 11 digits starting
    # with 7 (no plus) are already international.
    if not text.startswith("+") and len(digits) == 11 and digits[0] == "7":
        text = "+" + digits
    import phonenumbers  # imported on first use: ~25 ms that `list --json` does not need

    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# How staff write a Russian number, said when one is refused.
RUSSIAN_FORM = "10 цифр после +7 или 8, например 8 916 123-45-67"


def directory_number(raw: str | None) -> str | None:
    """E.164 for a number fit for the clients directory, else None.

    Stricter than `normalise` (which takes whatever the PBX sends): the number must be one
    phonenumbers calls valid, not merely possible, so «123-45-67» (no area code) and
    «8 916 123 45 6» (a digit short) are refused. Without «+» a number is read as Russian;
    with it, any country's valid number is taken.
    """
    if not raw:
        return None
    # A tab between the digits (Excel) is a space; phonenumbers alone would refuse it.
    text = raw.replace("\t", " ").strip()
    if ":" in text and text.lower().startswith(("tel:", "sip:")):
        text = text[4:]
    if "@" in text:
        text = text.split("@", 1)[0].strip()
    national = _russian_national(text)
    if national is not None:
        # The common case, a +7 number of 10 digits, skips phonenumbers.parse (~40 µs, the
        # bulk of a big import); validity is still phonenumbers' own verdict.
        return "+7" + national if _valid_plus7(national[:6]) else None
    import phonenumbers

    try:
        number = phonenumbers.parse(text, REGION)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _russian_national(text: str) -> str | None:
    """The 10 national digits of «+7 …», «8 …», «7 …» (11 digits) or a bare 10-digit number,
    written with digits, spaces (no-break ones too), brackets, dots and dashes only; else
    None (the full parser decides). These are the readings phonenumbers gives with region
    RU (tests/test_phones.py holds them to it)."""
    plus = text.startswith("+")
    digits = text[1:] if plus else text
    if not (digits.isascii() and digits.isdigit()):
        # Faster than str.translate, which looks each character up in a dict (a big import).
        digits = (
            digits.replace(" ", "")
            .replace("-", "")
            .replace("(", "")
            .replace(")", "")
            .replace(".", "")
            .replace("\xa0", "")
        )
        if not (digits.isascii() and digits.isdigit()):
            return None
    if plus:
        national = digits[1:] if len(digits) == 11 and digits[0] == "7" else None
    elif len(digits) == 11 and digits[0] in "78":
        national = digits[1:]
    elif len(digits) == 10:
        national = digits
    else:
        national = None
    if national is None or national[0] in "078":
        # 0…: not a +7 number at all; 7…/8… after a prefix: phonenumbers may read the
        # 8 as a trunk prefix again or the 7 as Kazakhstan's, so let it decide.
        return None
    return national


@functools.lru_cache(maxsize=4096)
def _valid_plus7(prefix: str) -> bool:
    """Whether +7 numbers of 10 national digits starting with `prefix` (6 digits) are valid.

    The Russian and Kazakh patterns in phonenumbers' metadata fix at most the first 6
    national digits and let the rest be any digits, so one check per prefix answers for all
    of them; tests/test_clients.py checks this against the full parse.
    """
    import phonenumbers

    number = phonenumbers.PhoneNumber(country_code=7, national_number=int(prefix + "0000"))
    return bool(phonenumbers.is_valid_number(number))


def split_cell(cell: str | None) -> list[str]:
    """A directory cell may hold several numbers separated by ',' or ';'."""
    if not cell:
        return []
    cell = str(cell)
    if "," not in cell and ";" not in cell and "\n" not in cell:  # one number: most cells
        cell = cell.strip()
        return [cell] if cell else []
    return [part.strip() for part in _SPLIT.split(cell) if part.strip()]


def display(e164: str | None) -> str:
    """A number as staff read it: +7 916 123-45-67."""
    if not e164:
        return "номер скрыт"
    import phonenumbers

    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
