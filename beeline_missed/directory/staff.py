"""Staff as people of the PBX: the `[staff.<login>]` tables next to the PBX's abonent list, and
`staff link`'s edit of config.toml that keeps every other line of the file as it was.

Pure functions (the abonent list and the file's text are arguments), and `write_config`.
"""

from __future__ import annotations

import json
import re
import stat
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from beeline_missed.config import StaffMember
from beeline_missed.errors import UserError
from beeline_missed.store.rows import Abonent

NO_ABONENT = "no abonent"
NOT_ON_PBX = "not on the PBX"
BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def as_cached(answer: Iterable[Mapping[str, Any]]) -> list[Abonent]:
    """The PBX's answer (GET abonents) as the register caches it: by userId, none without."""
    abonents = (Abonent.from_pbx(entry) for entry in answer)
    return sorted((a for a in abonents if a.user_id), key=lambda a: a.user_id)


def abonent_ids(abonent: Abonent) -> set[str]:
    """Every way an abonent of the list may be named: userId, its part before '@', phone,
    extension."""
    user_id = abonent.user_id
    names = {user_id, user_id.partition("@")[0], abonent.phone or "", abonent.extension or ""}
    return {name for name in names if name}


def find_abonent(name: str, abonents: Iterable[Abonent]) -> Abonent | None:
    for abonent in abonents:
        if name in abonent_ids(abonent):
            return abonent
    return None


@dataclass(frozen=True)
class Line:
    """One member of staff next to the PBX abonent their table names."""

    login: str
    name: str
    abonent: str | None
    pbx: Abonent | None
    problem: str | None

    def as_json(self) -> dict[str, Any]:
        pbx = None
        if self.pbx is not None:
            pbx = {
                "userId": self.pbx.user_id,
                "phone": self.pbx.phone,
                "extension": self.pbx.extension,
                "name": self.pbx.pbx_name or None,
                "department": self.pbx.department,
            }
        return {
            "login": self.login,
            "name": self.name,
            "abonent": self.abonent,
            "pbx_abonent": pbx,
            "problem": self.problem,
        }


def lines(staff: Mapping[str, StaffMember], abonents: list[Abonent], known: bool) -> list[Line]:
    """Each member, by login; `problem` names a member with no abonent, or (when the PBX's list
    is `known`) one whose abonent the PBX does not have."""
    shown = []
    for login in sorted(staff):
        member = staff[login]
        row = find_abonent(member.abonent, abonents) if member.abonent else None
        problem = None
        if not member.abonent:
            problem = NO_ABONENT
        elif known and row is None:
            problem = NOT_ON_PBX
        shown.append(Line(login, member.display, member.abonent, row, problem))
    return shown


def unlinked(staff: Mapping[str, StaffMember], abonents: list[Abonent]) -> list[Abonent]:
    """The PBX's abonents no member of staff names."""
    used = {m.abonent for m in staff.values() if m.abonent}
    return [abonent for abonent in abonents if not (abonent_ids(abonent) & used)]


# -- staff link: edit config.toml as text ------------------------------------------------------


def _toml_string(value: str) -> str:
    # A JSON string is a valid TOML basic string (the same escapes).
    return json.dumps(value, ensure_ascii=False)


def _key(login: str) -> str:
    return login if BARE_KEY.match(login) else _toml_string(login)


def _header(login: str) -> re.Pattern[str]:
    quoted = "|".join(re.escape(k) for k in {login, _toml_string(login), f"'{login}'"})
    return re.compile(rf"^[ \t]*\[[ \t]*staff[ \t]*\.[ \t]*(?:{quoted})[ \t]*\][ \t]*(?:#.*)?$")


def link_text(text: str, login: str, abonent: str, name: str | None = None) -> str:
    """config.toml's text with `[staff.<login>]` saying `abonent` (and `name` when given): the
    table's line replaced or added, the table appended when there is none; every other line
    kept. UserError when the file is laid out so that a text edit cannot be sure (the result
    is checked by parsing it)."""
    for what, value in (("login", login), ("abonent", abonent), ("name", name)):
        if value is not None and (not value.strip() or any(c in value for c in "\r\n\x00")):
            raise UserError(f"The {what} must be one line of text, not {value!r}.")
    try:
        before = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"config.toml is not valid TOML ({exc}); fix it first.") from None
    wanted = {"abonent": abonent, **({"name": name} if name is not None else {})}
    rows = text.splitlines(keepends=True)
    header = _header(login)
    start = next((i for i, row in enumerate(rows) if header.match(row.rstrip("\r\n"))), None)
    if start is None:
        tail = "" if not text or text.endswith("\n") else "\n"
        gap = "\n" if text.strip() else ""
        table = [f"[staff.{_key(login)}]\n"] + [
            f"{key} = {_toml_string(value)}\n" for key, value in wanted.items()
        ]
        new = text + tail + gap + "".join(table)
    else:
        end = next(
            (i for i in range(start + 1, len(rows)) if rows[i].lstrip().startswith("[")),
            len(rows),
        )
        body = rows[start + 1 : end]
        for key, value in wanted.items():
            line = f"{key} = {_toml_string(value)}\n"
            pattern = re.compile(rf"^[ \t]*{key}[ \t]*=")
            found = next((i for i, row in enumerate(body) if pattern.match(row)), None)
            if found is None:
                body.insert(0, line)
            else:
                body[found] = line
        if not rows[start].endswith("\n"):
            rows[start] += "\n"
        new = "".join(rows[: start + 1] + body + rows[end:])
    expected = dict(before)
    tables = dict(expected.get("staff") or {})
    tables[login] = {**dict(tables.get(login) or {}), **wanted}
    expected["staff"] = tables
    try:
        after = tomllib.loads(new)
    except tomllib.TOMLDecodeError:
        after = None
    if after != expected:
        raise UserError(
            f"config.toml lays out [staff.{login}] in a way this command cannot edit safely; "
            f'add abonent = "{abonent}" to that table by hand.'
        )
    return new


def write_config(path: Path, text: str) -> None:
    """Replace config.toml atomically, keeping its mode (0600 for a new one: it may hold the
    token)."""
    from beeline_missed.files import file_in_the_way, write_atomic

    blocking = file_in_the_way(path.parent)
    if blocking is not None:
        raise UserError(f"Cannot write {path}: {blocking} is a file, not a folder.")
    try:
        mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o600
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"Cannot write {path}: {exc.strerror}.") from None
    write_atomic(path, text.encode("utf-8"), mode)
