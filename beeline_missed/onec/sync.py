"""Sync the clients directory with 1C:Альфа-Авто's «Контрагенты» over OData.

Reads every client (paged, folders and items marked for deletion skipped), takes their phones
from the contact information rows of type «Телефон» (several numbers in one string are split,
and each must be a real number, exactly as `clients import` reads a file), and hands them to
`Register.sync_onec_clients`: added, updated, removed (a client deleted or marked in 1C
leaves), never duplicated. A record with bad data is reported and skipped, and its client in
the directory stays as it was; a failure half-way changes nothing. `check` says, from
`$metadata`, which configured entity sets and fields the base publishes.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from beeline_missed import phones, timefmt
from beeline_missed.directory.clients_file import BAD_NUMBER, NO_NAME, NO_NUMBER
from beeline_missed.onec.client import Metadata, OnecClient, OnecError

if TYPE_CHECKING:
    from beeline_missed.config import Settings
    from beeline_missed.store import Register

META_LAST = "onec_sync"  # the last successful sync: JSON {at, added, updated, removed, total}
META_ERROR = "onec_sync_error"  # the latest failure: JSON {at, error}; None after a success
NO_REF = "no Ref_Key"
MAX_EXAMPLES = 10
SKIP_LABELS = {
    NO_NAME: "нет имени",
    NO_NUMBER: "нет номера телефона",
    BAD_NUMBER: "номер не распознан",
    NO_REF: "нет Ref_Key",
}


@dataclass
class Report:
    """What a sync read, and what it skipped and why."""

    read: int = 0
    folders: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    # (client as 1C names it, the text that is not a phone number), first few only.
    unrecognised: list[tuple[str, str]] = field(default_factory=list)
    unrecognised_count: int = 0


def _text(value: Any) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def record_of(
    item: dict[str, Any], settings: Settings, report: Report
) -> tuple[str, str | None, str, list[tuple[str, str]], bool] | None:
    """One 1C record as (ref, code, name, numbers, usable), or None for a folder or an item
    marked for deletion (a client no longer, so it leaves the directory)."""
    if item.get("IsFolder") is True:
        report.folders += 1
        return None
    if item.get("DeletionMark") is True:
        return None
    report.read += 1
    ref = _text(item.get("Ref_Key"))
    if not ref:
        report.skipped[NO_REF] += 1
        return None
    code = _text(item.get("Code")) or None
    name = _text(item.get(settings.onec_client_name))
    numbers: dict[str, str] = {}
    bad: list[str] = []
    rows = item.get(settings.onec_contacts)
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, dict) or _text(row.get(settings.onec_contact_type)) != (
            settings.onec_phone_type
        ):
            continue
        texts: list[str] = []
        for column in settings.onec_phone_fields:
            texts += phones.split_cell(_text(row.get(column)))
        row_numbers = {}
        row_bad = []
        for text in texts:
            e164 = phones.directory_number(text)
            if e164 is None:
                row_bad.append(text)
            else:
                row_numbers.setdefault(e164, text)
        numbers.update({k: v for k, v in row_numbers.items() if k not in numbers})
        # A column that repeats a number the row already has in a good form is not an error.
        bad += [t for t in row_bad if not row_numbers]
    if bad:
        report.unrecognised_count += len(bad)
        for text in bad:
            if len(report.unrecognised) < MAX_EXAMPLES:
                report.unrecognised.append((name or code or ref, text))
    if not name:
        report.skipped[NO_NAME] += 1
        return ref, code, name or ref, [], False
    if not numbers:
        report.skipped[BAD_NUMBER if bad else NO_NUMBER] += 1
        return ref, code, name, [], False
    return ref, code, name, list(numbers.items()), True


def fields_to_read(metadata: Metadata, settings: Settings) -> list[str]:
    """The clients catalog's fields to $select, checked against `$metadata`: a missing
    catalog, name or contact table is an error in one sentence."""
    problems = check(metadata, settings, only_clients=True)
    if problems:
        raise OnecError(
            problems[0],
            ru=f"Клиентов из 1С не получить: {problems[0]} (подробнее: beeline-missed onec check)",
        )
    props = metadata.sets[settings.onec_clients]
    wanted = ["Ref_Key", "Code", "DeletionMark", "IsFolder", settings.onec_client_name]
    return [f for f in wanted if f in props] + [settings.onec_contacts]


def read_clients(
    client: OnecClient,
    settings: Settings,
    report: Report,
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> Iterator[tuple[str, str | None, str, list[tuple[str, str]], bool]]:
    """Every client of 1C's catalog as `Register.sync_onec_clients` takes them, page by page."""
    select = fields_to_read(client.metadata(), settings)
    wanted_filter = "DeletionMark eq false" if "DeletionMark" in select else None
    for page in client.pages(
        settings.onec_clients,
        page_size=settings.onec_page_size,
        select=select,
        filter=wanted_filter,
        on_total=on_total,
    ):
        for item in page:
            record = record_of(item, settings, report)
            if record is not None:
                yield record
        if progress is not None:
            progress(len(page))


def sync(
    register: Register,
    client: OnecClient,
    settings: Settings,
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
    now: Any = None,
) -> tuple[dict[str, Any], Report]:
    """One sync: the register's counts ({added, updated, removed, total, …}) and what was
    read. The outcome is kept for `status` (the error too, then re-raised)."""
    report = Report()
    at = timefmt.to_stored(now or timefmt.now_utc())
    try:
        counts = register.onec.sync_clients(
            read_clients(client, settings, report, progress, on_total)
        )
    except Exception as exc:  # kept for `status` whatever it was, then raised as it was
        error = client.scrub(str(exc)) or type(exc).__name__
        register.meta.set(META_ERROR, json.dumps({"at": at, "error": error}, ensure_ascii=False))
        raise
    summary = {
        "at": at,
        **{key: counts[key] for key in ("added", "updated", "removed", "total")},
        "skipped": sum(report.skipped.values()),
    }
    register.meta.set(META_LAST, json.dumps(summary, ensure_ascii=False))
    register.meta.set(META_ERROR, None)
    return {**counts, **summary}, report


def last_sync(register: Register) -> dict[str, Any] | None:
    """The last sync for `status`: its counts, and `error` when the latest attempt failed."""
    last = register.meta.get(META_LAST)
    error = register.meta.get(META_ERROR)
    if last is None and error is None:
        return None
    shown: dict[str, Any] = json.loads(last) if last else {}
    if error:
        failed = json.loads(error)
        shown["error"] = failed.get("error")
        shown["error_at"] = failed.get("at")
    return shown


def check(metadata: Metadata, settings: Settings, only_clients: bool = False) -> list[str]:
    """What the base lacks of the configured names, one sentence each (empty: all there)."""
    problems: list[str] = []
    wanted: list[tuple[str, list[str], dict[str, list[str]]]] = [
        (
            settings.onec_clients,
            ["Ref_Key", settings.onec_client_name],
            {settings.onec_contacts: [settings.onec_contact_type, *settings.onec_phone_fields]},
        )
    ]
    if not only_clients:
        wanted += extra_sets(settings)
    for entity, fields, tables in wanted:
        if entity not in metadata.sets:
            problems.append(
                f"The base does not publish {entity}: have the 1C administrator add it to the "
                "standard OData interface's content (for instance with the «Настройка "
                "стандартного интерфейса OData» data processor), or set its name in "
                "config.toml if your release calls it otherwise."
            )
            continue
        props = metadata.sets[entity]
        for name in fields:
            if name not in props:
                problems.append(f"{entity} has no field {name}; set its name in config.toml.")
        for table, columns in tables.items():
            if table not in props:
                problems.append(f"{entity} has no table {table}; set onec_contacts in config.toml.")
                continue
            have = metadata.tables.get(entity, {}).get(table, set())
            for column in columns:
                if have and column not in have:
                    problems.append(
                        f"{entity}.{table} has no column {column}; set its name in config.toml."
                    )
    return problems


def extra_sets(settings: Settings) -> list[tuple[str, list[str], dict[str, list[str]]]]:
    """Entity sets other features use: the booking «Записаться» creates (its client and
    comment fields, and the shop's fixed fields), and the cars and repair orders the card
    shows."""
    booking_fields = [
        "Ref_Key",
        "Number",
        settings.onec_booking_client,
        settings.onec_booking_comment,
        *settings.onec_booking_fields,
    ]
    return [
        (settings.onec_bookings, booking_fields, {}),
        (settings.onec_cars, ["Ref_Key", settings.onec_car_owner, *settings.onec_car_fields], {}),
        (
            settings.onec_orders,
            ["Ref_Key", "Number", "Date", settings.onec_order_client, settings.onec_order_state],
            {},
        ),
    ]


def diagnose(client: OnecClient, settings: Settings) -> dict[str, Any]:
    """`onec check`: reachable, authorised, what the base publishes of the configured names,
    with the problems in plain words (`ok` when there are none)."""
    from beeline_missed.onec.client import OnecAuthError, OnecNotJson, OnecTimeout, OnecUnreachable

    found: dict[str, Any] = {
        "url": client.url,
        "user": client.user,
        "reachable": False,
        "authorised": False,
        "sets": {},
        "problems": [],
    }
    try:
        metadata = client.metadata()
    except OnecError as exc:
        found["reachable"] = not isinstance(exc, OnecUnreachable | OnecTimeout)
        # A web page instead of OData tells nothing of the user: not shown as authorised.
        found["authorised"] = found["reachable"] and not isinstance(
            exc, OnecAuthError | OnecNotJson
        )
        found["problems"].append(str(exc))
        return {**found, "ok": False}
    found["reachable"] = found["authorised"] = True
    wanted = [settings.onec_clients] + [entity for entity, _, _ in extra_sets(settings)]
    found["sets"] = {entity: entity in metadata.sets for entity in wanted}
    found["problems"] = check(metadata, settings)
    return {**found, "ok": not found["problems"]}


SUMMARY_LABELS = {
    "total": "клиентов в 1С с номерами",
    "added": "добавлено",
    "updated": "обновлено",
    "unchanged": "без изменений",
    "removed": "удалено (нет в 1С или помечены на удаление)",
    "calls_relinked": "звонков теперь с другим клиентом",
}


def summary_rows(counts: dict[str, Any], report: Report) -> list[tuple[str, int]]:
    """The sync's figures as table rows for staff, each skip reason on its own row."""
    rows = [(label, int(counts.get(key, 0))) for key, label in SUMMARY_LABELS.items()]
    rows += [
        (f"пропущено: {SKIP_LABELS[reason]}", n) for reason, n in sorted(report.skipped.items())
    ]
    if report.unrecognised_count:
        rows.append(("номеров не распознано", report.unrecognised_count))
    return rows


def diagnosis_lines(found: dict[str, Any]) -> list[str]:
    """`onec check` in plain words, one line each."""
    lines = [f"1C OData at {found['url']}, user «{found['user']}»:"]
    lines.append("  reachable: " + ("yes" if found["reachable"] else "no"))
    if found["reachable"]:
        lines.append("  authorised: " + ("yes" if found["authorised"] else "no"))
    for entity, published in found["sets"].items():
        lines.append(f"  {entity}: " + ("published" if published else "NOT published"))
    for problem in found["problems"]:
        lines.append(f"  problem: {problem}")
    if found["ok"]:
        lines.append("Everything the configured features need is there.")
    return lines
