"""«Взять в работу»: the rules of claiming a case, pure (the clock is a parameter).

A claim says who is calling a caller back and since when, so that two people do not call the
same client at once. Whoever claims a free case, or one whose claim has lapsed (`ttl`), gets
it; the holder claiming again renews it; someone else's live claim is refused with who holds
it and since when, unless forced. Closing the case ends it (in the register, whoever closed
it: migration m100). Opening a card claims nothing.

Messages reach the shop's staff, so they are in Russian.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING

from beeline_missed import timefmt

if TYPE_CHECKING:
    from beeline_missed.store.rows import StoredClaim

Names = Callable[[str], str]


def same(name: str) -> str:
    return name


def case_key(phone: str | None, call_id: int) -> str:
    """A caller's open calls are one case: keyed by the number, a hidden one by its call."""
    return phone if phone else f"call:{call_id}"


@dataclass(frozen=True)
class Claim:
    """Who holds a case, since when (aware datetime)."""

    holder: str
    since: datetime

    @classmethod
    def from_row(cls, row: StoredClaim) -> Claim:
        return cls(row.claimed_by, timefmt.parse_stored(row.claimed_at))


def is_live(claim: Claim | None, now: datetime, ttl: float) -> bool:
    """A claim holds for `ttl` seconds from when it was taken (or renewed)."""
    return claim is not None and now - claim.since < timedelta(seconds=ttl)


@dataclass(frozen=True)
class Take:
    """Write this claim. `replaced` is the live claim of someone else that --force overrode."""

    claim: Claim
    renewed: bool = False
    replaced: Claim | None = None


@dataclass(frozen=True)
class Refuse:
    """Someone else holds the case; nothing written."""

    holder: Claim
    message: str


def decide(
    current: Claim | None,
    user: str,
    now: datetime,
    ttl: float,
    *,
    force: bool = False,
    names: Names = same,
    zone: tzinfo | None = None,
) -> Take | Refuse:
    """Whether `user` may take the case now, given the claim stored for it."""
    mine = Claim(user, now)
    if not is_live(current, now, ttl):
        return Take(mine)
    assert current is not None
    if current.holder == user:
        return Take(mine, renewed=True)
    if force:
        return Take(mine, replaced=current)
    return Refuse(current, refused_message(current, now, names, zone))


def refused_message(current: Claim, now: datetime, names: Names, zone: tzinfo | None) -> str:
    since = current.since.astimezone(zone).strftime("%H:%M") if zone else None
    ago = timefmt.duration((now - current.since).total_seconds())
    when = f"с {since} ({ago})" if since else f"{ago} назад"
    return f"Этого клиента уже перезванивает {names(current.holder)} {when}."


def label(claim: Claim, now: datetime, names: Names = same) -> str:
    """«перезванивает Петров (5 мин)», as the list, the live view and the panel show it."""
    ago = timefmt.duration((now - claim.since).total_seconds())
    return f"перезванивает {names(claim.holder)} ({ago})"


def taken_message(take: Take, names: Names = same) -> str:
    """What the person who claimed is told."""
    who = names(take.claim.holder)
    if take.replaced is not None:
        return (
            f"Звонок взят в работу: {who} (вместо {names(take.replaced.holder)}). "
            "Сохраните карточку, когда дозвонитесь."
        )
    verb = "Продлено" if take.renewed else "Взято в работу"
    return f"{verb}: перезванивает {who}. Сохраните карточку, когда дозвонитесь."
