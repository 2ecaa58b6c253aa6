"""Phone numbers: everything is compared in E.164, parsed with phonenumbers (region RU)."""

from __future__ import annotations

import re

REGION = "RU"
_SPLIT = re.compile(r"[;,\n]+")


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


def split_cell(cell: str | None) -> list[str]:
    """A directory cell may hold several numbers separated by ',' or ';'."""
    if not cell:
        return []
    return [part.strip() for part in _SPLIT.split(str(cell)) if part.strip()]


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
