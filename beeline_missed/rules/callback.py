"""Click-to-call rules, pure: whose phone rings first, and the client's number as the PBX wants it.

`POST abonents/{abonent}/call?phoneNumber=…` makes the PBX ring the staff member's own phone
and, once they pick up, the client. The abonent comes from the person's `[staff.<login>]`
table; the number's form is the `call_number_format` setting, because public clients of this
API disagree (10 digits, 8…, +7…). Messages reach staff, so they are in Russian.
"""

from __future__ import annotations

from beeline_missed.config import CALL_NUMBER_FORMATS, StaffMember
from beeline_missed.errors import UserError

RINGING = "Звоним: возьмите трубку — после неё АТС наберёт клиента."
HIDDEN = "Номер клиента скрыт: позвонить ему нельзя."


def dial_number(e164: str | None, number_format: str) -> str:
    """The client's number in the form the PBX is sent: `e164` +79161234567, `digits`
    79161234567, `national` 89161234567, `ten` 9161234567 (the last two only change Russian
    numbers; another country's stays E.164, the only form it can be dialled in everywhere)."""
    if not e164:
        raise UserError(HIDDEN)
    if number_format not in CALL_NUMBER_FORMATS:
        raise ValueError(number_format)
    digits = e164.lstrip("+")
    russian = e164.startswith("+7") and len(digits) == 11
    if number_format == "digits":
        return digits
    if number_format == "national" and russian:
        return "8" + digits[1:]
    if number_format == "ten" and russian:
        return digits[1:]
    return e164


def staff_abonent(member: StaffMember | None, user: str) -> str:
    """The abonent that rings first for `user`; a one-sentence error when there is none."""
    if member is None:
        raise UserError(
            f"Для пользователя «{user}» нет таблицы [staff.{user}] в config.toml: "
            f"укажите его телефон в АТС командой `beeline-missed staff link {user} АБОНЕНТ`."
        )
    if not member.abonent:
        raise UserError(
            f"У пользователя «{member.display}» не указан абонент АТС: "
            f"`beeline-missed staff link {member.login} АБОНЕНТ`."
        )
    return member.abonent
