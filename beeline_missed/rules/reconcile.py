"""Catch up from the PBX's call statistics: missed calls the hook never heard of.

While the daemon is down, the PBX fails to deliver, or a call is forwarded or rejected before it
rings (no events at all), a missed call leaves no trace but the statistics. Reconciliation reads
`GET v2/statistics` for a window and registers the inbound calls whose status means missed
(settings.statistics_missed_statuses: the published values are uncertain) that the register lacks,
with source 'reconcile'. Nothing is registered twice: a record is "known" when the hook heard an
external incoming call from that number (answered or not) within the tolerance and no other
record of the number is nearer to that call (a heard call is one call of the statistics: a
second call a minute later, whose events were lost, is still recovered), when reconciliation
registered a row for the number within the tolerance (a call listed again), or when its
tracking id (rarely present) is known; the row's session key 'stat:<phone>:<startDate>' makes a
rerun a no-op.

The daemon runs it on start and every reconcile_interval from the last reconciled moment (kept in
meta); `beeline-missed reconcile --from --to` runs it by hand.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from beeline_missed import phones, timefmt
from beeline_missed.errors import UserError
from beeline_missed.rules.detection import HIDDEN, abonent_name
from beeline_missed.store import Register
from beeline_missed.vocabulary import Source

if TYPE_CHECKING:
    from beeline_missed.config import Settings

log = logging.getLogger("beeline_missed.reconcile")

SOURCE = Source.RECONCILE
META_TO = "reconcile_to"  # the last reconciled moment (stored UTC)
META_LAST = "reconcile_last"  # JSON: the last run's summary
META_TOTAL = "reconcile_recovered_total"  # calls recovered by every run so far
META_ERROR = "reconcile_error"  # the last scheduled run's failure, None after a success
TRACKING_KEYS = ("extTrackingId", "externalTrackingId", "trackingId")
CHUNK = timedelta(days=1)


@dataclass
class Summary:
    """What one run did."""

    date_from: str
    date_to: str
    records: int = 0  # statistics records read
    missed: int = 0  # inbound records with a missed status
    known: int = 0  # of those, already in the register or heard by the hook
    unusable: int = 0  # records without a usable start time
    registered: list[int] = field(default_factory=list)  # new register rows
    at: str = ""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["recovered"] = len(self.registered)
        return data


def start_ms(item: dict[str, Any]) -> int | None:
    """startDate as epoch ms (the PBX sends ms; tolerate seconds and ISO text)."""
    value = item.get("startDate")
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        number = int(value)
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value.strip())
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())  # 3.11 reads a trailing Z
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)
    else:
        return None
    # Seconds since the epoch are below 1e11 until the year 5138; ms are above it since 1973.
    return number * 1000 if number < 100_000_000_000 else number


def _line(item: dict[str, Any]) -> str:
    abonent = item.get("abonent")
    if isinstance(abonent, dict):
        user_id = abonent.get("userId")
        if user_id:
            return abonent_name(str(user_id))
        return str(abonent.get("phone") or abonent.get("extension") or "")
    return str(item.get("phone_to") or "")


def is_missed_inbound(item: dict[str, Any], statuses: Iterable[str]) -> bool:
    wanted = {s.strip().upper() for s in statuses}
    direction = str(item.get("direction") or "").upper()
    return direction == "INBOUND" and str(item.get("status") or "").upper() in wanted


# Statistics statuses of a call a person took: 'RECIEVED' (sic, the PBX's spelling) inbound,
# 'PLACED' outbound. A missed record whose number such a call reached moments later was picked
# up by a colleague or put through: the same rule as the hook's (detection: pickups).
ANSWERED_STATUSES = ("RECIEVED", "RECEIVED", "PLACED")


def _answered_numbers(items: Iterable[dict[str, Any]]) -> dict[str, list[int]]:
    """E.164 number → start times of the answered calls with it, among these records."""
    found: dict[str, list[int]] = {}
    for item in items:
        if str(item.get("status") or "").upper() not in ANSWERED_STATUSES:
            continue
        outbound = str(item.get("direction") or "").upper() == "OUTBOUND"
        phone = phones.normalise(str(item.get("phone_to" if outbound else "phone_from") or ""))
        moment = start_ms(item)
        if phone and moment is not None:
            found.setdefault(phone, []).append(moment)
    return found


def inbound_starts(items: Iterable[dict[str, Any]]) -> dict[str | None, list[int]]:
    """E.164 number (None: hidden) → start times of the inbound records from it, answered or
    not: the calls the statistics list, each of which a call the hook heard may be."""
    found: dict[str | None, list[int]] = {}
    for item in items:
        if str(item.get("direction") or "").upper() != "INBOUND":
            continue
        moment = start_ms(item)
        if moment is not None:
            phone = phones.normalise(str(item.get("phone_from") or "").strip())
            found.setdefault(phone, []).append(moment)
    return found


def heard_as(moment: int, heard: Iterable[int], others: Iterable[int]) -> bool:
    """Is the record starting at `moment` one of the calls the hook heard (starting at
    `heard`, all within the tolerance)? Yes when every other record of the number (`others`)
    starts farther from that call: a heard call stands for one call of the statistics, so a
    second call a minute after a heard one is not taken for it. Two records as near as each
    other are both kept: a call registered twice is better than a call lost."""
    others = list(others)
    return any(all(abs(at - other) > abs(at - moment) for other in others) for at in heard)


def apply_records(
    register: Register,
    items: Iterable[dict[str, Any]],
    summary: Summary,
    *,
    statuses: Iterable[str],
    tolerance: float,
    outside_hours: Callable[[int], bool] | None = None,
    inbound: dict[str | None, list[int]] | None = None,
) -> None:
    """Register the missed inbound records the register lacks; counts go into `summary`.
    `inbound`: the inbound records' starts by number (`inbound_starts`) over more than these
    items (the whole window), so that a heard call is matched to its nearest record."""
    statuses = tuple(statuses)
    tolerance_ms = int(tolerance * 1000)
    items = list(items)
    answered = _answered_numbers(items)
    if inbound is None:
        inbound = inbound_starts(items)
    # One transaction per page: one fsync for up to 100 records, and the checks see the rows
    # registered just before them (a hunt group listed once per member is one call).
    with register.transaction():
        for item in items:
            summary.records += 1
            if not is_missed_inbound(item, statuses):
                continue
            summary.missed += 1
            moment = start_ms(item)
            if moment is None:
                summary.unusable += 1
                continue
            raw = str(item.get("phone_from") or "").strip()
            phone = phones.normalise(raw)
            tracking = next((str(item[k]) for k in TRACKING_KEYS if item.get(k)), None)
            if phone and any(
                moment <= at <= moment + tolerance_ms for at in answered.get(phone, ())
            ):
                summary.known += 1  # picked up or put through: answered, as the hook decides
                continue
            rows = register.calls.starts_near(phone, moment, tolerance_ms)
            heard = register.sessions.heard_calls_near(phone, moment, tolerance_ms)
            heard += [at for at, source in rows if source != SOURCE]
            others = [at for at in inbound.get(phone, ()) if at != moment]
            if (
                (tracking and register.sessions.known(tracking))
                # A row reconciliation made within the tolerance: the same call listed again
                # (a hunt group may be listed once per member).
                or any(source == SOURCE for _, source in rows)
                or heard_as(moment, heard, others)
            ):
                summary.known += 1
                continue
            row = register.calls.insert(
                session_key=f"stat:{phone or 'hidden'}:{moment}",
                phone=phone,
                phone_raw=raw or HIDDEN,
                called_at=timefmt.ms_to_stored(moment),
                line=_line(item),
                source=SOURCE,
                outside_hours=bool(outside_hours and outside_hours(moment)),
            )
            if row is None:
                summary.known += 1
            else:
                summary.registered.append(row)


def windows(date_from: datetime, date_to: datetime, chunk: timedelta = CHUNK) -> list[tuple]:
    """The window cut in chunks (one progress step each)."""
    parts = []
    start = date_from
    while start < date_to:
        end = min(date_to, start + chunk)
        parts.append((start, end))
        start = end
    return parts


def run(
    register: Register,
    client: Any,
    settings: Settings,
    date_from: datetime,
    date_to: datetime,
    *,
    progress: Callable[[int, int, Summary], None] | None = None,
    outside_hours: Callable[[int], bool] | None = None,
    now: datetime | None = None,
) -> Summary:
    """Reconcile [date_from, date_to) from the statistics; records the run in meta."""
    if date_to <= date_from:
        raise UserError("The reconciliation window is empty: --from must be before --to.")
    summary = Summary(timefmt.to_stored(date_from), timefmt.to_stored(date_to))
    parts = windows(date_from, date_to)
    for index, (start, end) in enumerate(parts):
        # The chunk's pages read first: a heard call is matched to the nearest record of
        # the whole chunk, whichever page holds it.
        pages = list(client.iter_statistics(start, end))
        inbound = inbound_starts(item for page in pages for item in page)
        for page in pages:
            apply_records(
                register,
                page,
                summary,
                statuses=settings.statistics_missed_statuses,
                tolerance=settings.reconcile_tolerance,
                outside_hours=outside_hours,
                inbound=inbound,
            )
        if progress:
            progress(index + 1, len(parts), summary)
    summary.at = timefmt.to_stored(now or timefmt.now_utc())
    _remember(register, summary, date_from, date_to)
    return summary


def _remember(register: Register, summary: Summary, date_from: datetime, date_to: datetime) -> None:
    previous = register.meta.get(META_TO)
    # The reconciled moment moves on only over a window that joins the reconciled past.
    if previous is None or date_from <= timefmt.parse_stored(previous) < date_to:
        register.meta.set(META_TO, timefmt.to_stored(date_to))
    register.meta.set(META_LAST, json.dumps(summary.as_dict(), ensure_ascii=False))
    total = int(register.meta.get(META_TOTAL) or 0) + len(summary.registered)
    register.meta.set(META_TOTAL, str(total))


def scheduled_window(
    register: Register, settings: Settings, now: datetime
) -> tuple[datetime, datetime]:
    """From the last reconciled moment (less the overlap) to now, less a short lag so that the
    hook's own events of calls ending right now are processed first."""
    last = register.meta.get(META_TO)
    start = (
        timefmt.parse_stored(last)
        if last
        else now - timedelta(seconds=float(settings.reconcile_lookback))
    )
    start -= timedelta(seconds=float(settings.reconcile_overlap))
    end = now - timedelta(seconds=max(2.0, float(settings.settle) + 1.0))
    return start, max(start + timedelta(seconds=1), end)


def run_scheduled(
    register: Register,
    client: Any,
    settings: Settings,
    *,
    now: datetime | None = None,
    outside_hours: Callable[[int], bool] | None = None,
) -> Summary:
    now = now or timefmt.now_utc()
    start, end = scheduled_window(register, settings, now)
    summary = run(register, client, settings, start, end, outside_hours=outside_hours, now=now)
    register.meta.set(META_ERROR, None)
    return summary


def last_run(register: Register) -> dict[str, Any] | None:
    """What `status` shows: the last run's summary, the total recovered and the last error."""
    text = register.meta.get(META_LAST)
    error = register.meta.get(META_ERROR)
    if text is None and error is None:
        return None
    data: dict[str, Any] = json.loads(text) if text else {}
    data["recovered_total"] = int(register.meta.get(META_TOTAL) or 0)
    data["reconciled_to"] = register.meta.get(META_TO)
    data["error"] = error
    return data


def parse_moment(text: str, zone: tzinfo, *, end_of_day: bool = False) -> datetime:
    """A local date ('2026-11-27'), date and time ('2026-11-27 14:05') or ISO with an offset."""
    value = text.strip()
    try:
        moment = datetime.fromisoformat(value)  # 3.11 reads a trailing Z
    except ValueError:
        raise UserError(
            f"{text!r} is not a date or time; use 2026-11-27 or '2026-11-27 14:05'."
        ) from None
    timefmt.check_year(moment, text)
    date_only = len(value) == 10
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    if date_only and end_of_day:
        moment += timedelta(days=1)
    return moment.astimezone(UTC)
