"""Register rows as people and scripts see them: JSON objects, table rows, the card's text.

Pure functions of a row and a time zone, and the list's table; the CLI, the live view and the
panel share them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from typing import TYPE_CHECKING, Any, Literal

from beeline_missed import phones, timefmt
from beeline_missed.rules.card import status_label
from beeline_missed.store.register import FileState
from beeline_missed.vocabulary import LOST_AT_LABELS, Direction

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions
    from rich.measure import Measurement
    from rich.table import Table

    from beeline_missed.store import Register
    from beeline_missed.store.rows import Attempt, Call


@dataclass(frozen=True)
class Column:
    """One column of the list: its header, how a row fills it, how it behaves when short.

    A new field of the register is one more entry in LIST_COLUMNS: `list`, `watch` and the
    plain-text styles (`--fmt`) all follow it.
    """

    header: str
    cell: Callable[[Call, tzinfo], str]
    # Kept whole on one line, however narrow the terminal: what staff read out or dial.
    whole: bool = False
    # None: always shown. Otherwise the column gives way when the width is short, lowest first.
    give_way: int | None = None
    justify: Literal["left", "right"] = "left"


# Staff read these headers, so they are in Russian.
LIST_COLUMNS: tuple[Column, ...] = (
    Column("№", lambda row, zone: str(row.id), whole=True, justify="right"),
    Column("Дата и время", lambda row, zone: timefmt.show_local(row.called_at, zone), whole=True),
    Column("Номер", lambda row, zone: phones.display(row.phone), whole=True),
    # Never dropped either, but a long name may wrap between words.
    Column("Клиент", lambda row, zone: row.client or ""),
    Column("Попыток", lambda row, zone: str(row.attempts), give_way=6, justify="right"),
    Column("Линия", lambda row, zone: line_text(row.line), give_way=2),
    # Always «Пропущен» in the default list, whose title says so: the first to go.
    Column("Статус", lambda row, zone: status_label(row.status), give_way=1),
    Column("Результат", lambda row, zone: one_line(row.result), give_way=4),
    # Who called back, or who is calling back now («перезванивает Петров (5 мин)»).
    Column("Кто", lambda row, zone: who_text(row), give_way=3),
)
LIST_HEADERS = tuple(column.header for column in LIST_COLUMNS)
# A hunt group rings every abonent in it; the list names the first few and counts the rest.
LINE_NAMES_SHOWN = 2
NEW_MARK = "новый"
UNBOUNDED = 1_000_000  # columns: a width no table needs


def call_json(row: Call, zone: tzinfo) -> dict[str, Any]:
    """The object `list --json` and `card --json` print."""
    return {
        "id": row.id,
        "phone": row.phone or None,
        "client": row.client or None,
        "called_at": timefmt.iso_local(row.called_at, zone),
        "line": row.line,
        "status": row.status,
        "status_label": status_label(row.status),
        "result": row.result,
        "user": row.user or None,
        "handled_at": timefmt.iso_local(row.handled_at, zone),
        "closed_by": row.closed_by,
        "outside_hours": row.outside_hours,
        # Where the call was lost (voice_menu, queue, ringing, busy, forwarded; null when the
        # statistics catch-up registered it) and the outside number it was forwarded to.
        "lost_at": row.lost_at,
        "lost_at_label": LOST_AT_LABELS.get(row.lost_at or ""),
        "forwarded_to": row.forwarded_to,
        "version": row.version,
        # One open case per caller: how often they tried, since when, and which calls.
        "attempts": row.attempts,
        "first_called_at": timefmt.iso_local(row.first_called_at or row.called_at, zone),
        "call_ids": list(row.call_ids or [row.id]),
        # «Взять в работу»: a live claim on the caller's case (calling_back.with_claims), and
        # the staff names of the logins (the [staff] tables).
        "claimed_by": row.claimed_by,
        "claimed_by_name": row.claimed_by_name,
        "claimed_at": timefmt.iso_local(row.claimed_at, zone),
        "user_name": row.user_name or row.user or None,
        # Seconds the case has waited (working time when hours are set; null once handled) and
        # how many callback_deadlines it has passed (deadlines.py).
        "waiting_s": row.waiting_s,
        "deadline_level": row.deadline_level,
        **(
            {"callback_attempts": attempts_json(row, zone)}
            if row.callback_attempts is not None
            else {}
        ),
    }


def who_text(row: Call) -> str:
    """Who called back (by the staff name), else who is calling back now, else nothing."""
    return row.user_name or row.user or row.claim_label or ""


def calls_json(rows: Iterable[Call], zone: tzinfo) -> list[dict[str, Any]]:
    return [call_json(row, zone) for row in rows]


def one_line(text: str | None) -> str:
    """A multi-line result shown in one table cell."""
    return " / ".join(part.strip() for part in (text or "").splitlines() if part.strip())


def line_text(line: str | None) -> str:
    """'9001112201, 9001112202 +1998' for a hunt group of 2,000: one row stays one row."""
    names = [name.strip() for name in (line or "").split(",") if name.strip()]
    if len(names) <= LINE_NAMES_SHOWN:
        return ", ".join(names)
    shown = ", ".join(names[:LINE_NAMES_SHOWN])
    return f"{shown} +{len(names) - LINE_NAMES_SHOWN}"


def new_mark_column(new_ids: Collection[int]) -> Column:
    """The live list's first column: «новый» on calls that arrived since watching started."""
    # New rows are also bold, so on a narrow terminal the mark may give way.
    return Column("", lambda row, zone: NEW_MARK if is_new(row, new_ids) else "", give_way=5)


def plain_rows(
    rows: Iterable[Call], zone: tzinfo, columns: Sequence[Column] = LIST_COLUMNS
) -> list[list[str]]:
    """The cells as text, in `columns` order."""
    return [[column.cell(row, zone) for column in columns] for row in rows]


def plain_table(
    rows: Iterable[Call],
    zone: tzinfo,
    style: str,
    columns: Sequence[Column] = LIST_COLUMNS,
) -> str:
    """The list in one of tabulate's styles (`list --fmt`): every column, nothing fitted."""
    from tabulate import tabulate

    return tabulate(
        plain_rows(rows, zone, columns),
        headers=[column.header for column in columns],
        tablefmt=style,
        colalign=[column.justify for column in columns],
        disable_numparse=True,  # cells are shown as written: a line '007' stays '007'
    )


class CallTable:
    """The list as a rich renderable that fits the width it is drawn at.

    The number and the date and time are never cut or wrapped, the client never cut: when the
    width is short, whole columns give way (first those with the same value on every row, then
    by `give_way`) instead of every column being squeezed to «+7 916 55…». A caption names the
    hidden columns in which the rows differ.
    """

    def __init__(
        self,
        rows: Iterable[Call],
        zone: tzinfo,
        *,
        title: str | None = None,
        columns: Sequence[Column] = LIST_COLUMNS,
        bold: Callable[[Call], bool] | None = None,
        style: Callable[[Call], str | None] | None = None,
    ) -> None:
        rows = list(rows)
        self.title = title
        self.columns = list(columns)
        self.cells = plain_rows(rows, zone, self.columns)
        # `style` colours a row (its callback deadline); `bold` marks new rows on top of it.
        self.styles = [
            " ".join(
                part
                for part in (style(row) if style else None, "bold" if bold and bold(row) else None)
                if part
            )
            or None
            for row in rows
        ]
        # An empty column, or one saying «Пропущен» on every row of the default list, tells no
        # row from another: it gives way before those that do, and goes unmentioned.
        self.tells_rows_apart = [
            len({row[i] for row in self.cells}) > 1 for i in range(len(self.columns))
        ]
        self._fitted: dict[int, Table] = {}

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Table]:
        width = options.max_width
        if width not in self._fitted:  # the live view redraws often at the same width
            self._fitted[width] = self.fit(console, options)
        yield self._fitted[width]

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        from rich.measure import Measurement

        return Measurement.get(console, options, self.fit(console, options))

    def fit(self, console: Console, options: ConsoleOptions) -> Table:
        """The table with as many columns as fit `options.max_width`, most useful kept."""
        from rich.measure import Measurement

        # Measured unbounded: at the target width rich reports what it would squeeze to, not
        # what the columns need (each cell's longest word, the whole number and date).
        unbounded = options.update_width(UNBOUNDED)
        shown = list(range(len(self.columns)))
        for victim in self._give_way_order():
            table = self._table(shown)
            if Measurement.get(console, unbounded, table).minimum <= options.max_width:
                return table
            shown.remove(victim)
        return self._table(shown)

    def _give_way_order(self) -> list[int]:
        optional = [i for i, column in enumerate(self.columns) if column.give_way is not None]
        return sorted(optional, key=lambda i: (self.tells_rows_apart[i], self.columns[i].give_way))

    def _table(self, shown: list[int]) -> Table:
        from rich.cells import cell_len
        from rich.table import Table
        from rich.text import Text

        hidden = [
            self.columns[i].header
            for i in range(len(self.columns))
            if i not in shown and self.tells_rows_apart[i]
        ]
        caption = f"Не поместились: {', '.join(hidden)}." if hidden else None
        table = Table(title=self.title, caption=caption)
        for i in shown:
            column = self.columns[i]
            whole = [cell_len(row[i]) for row in self.cells] if column.whole else []
            table.add_column(
                column.header,
                justify=column.justify,
                no_wrap=column.whole,
                # Its longest cell: rich shrinks the other columns, never this one.
                min_width=max(whole, default=None),
                overflow="fold",  # a word longer than its column folds; nothing is cut off
            )
        for row, style in zip(self.cells, self.styles, strict=True):
            # Text, not markup: a client named «[b]…» prints as written.
            table.add_row(*(Text(row[i]) for i in shown), style=style)
        return table


def is_new(row: Call, new_ids: Collection[int]) -> bool:
    return row.id in new_ids


def card_lines(row: Call, zone: tzinfo) -> list[tuple[str, str]]:
    """The card's fields in the order staff read them."""
    number = phones.display(row.phone)
    client = row.client
    lines = [
        ("Номер", f"{number} — {client}" if client else number),
        ("Дата и время", timefmt.show_local(row.called_at, zone)),
        ("Попыток", attempts_text(row, zone)),
        # With staff names when the card was read through calling_back.card_row.
        ("Линия", row.line_label or row.line),
    ]
    lines += where_lost_lines(row)
    tried = [attempt_text(attempt, zone) for attempt in row.callback_attempts or ()]
    if tried:
        lines.append((ATTEMPTS_LABEL, "\n".join(tried)))
    lines += [
        ("Статус", status_label(row.status)),
        ("Результат", row.result),
        ("Кто перезвонил", row.user_name or row.user or ""),
    ]
    if row.claim_label:
        lines.append(("В работе", row.claim_label))
    return lines


ATTEMPTS_LABEL = "Попытки"


def attempt_text(attempt: Attempt, zone: tzinfo) -> str:
    """«Перезванивали 14:05, 4 с — не дозвонились»: an answered call too short to close the
    case (autoclose.py records it), as the card shows it."""
    moment = timefmt.parse_stored(attempt.attempted_at).astimezone(zone)
    when = moment.strftime("%d.%m %H:%M")
    talk = attempt.talk_seconds
    length = "длительность неизвестна" if talk is None else f"{talk} с"
    if attempt.direction == Direction.INCOMING:
        text = f"Клиент дозвонился {when}, {length} — разговор не состоялся"
    else:
        text = f"Перезванивали {when}, {length} — не дозвонились"
    return f"{text} ({attempt.who})" if attempt.who else text


def attempts_json(row: Call, zone: tzinfo) -> list[dict[str, Any]]:
    """The card's recorded attempts for `card --json`."""
    return [
        {
            "attempted_at": timefmt.iso_local(attempt.attempted_at, zone),
            "talk_seconds": attempt.talk_seconds,
            "direction": attempt.direction,
            "who": attempt.who,
            "text": attempt_text(attempt, zone),
        }
        for attempt in row.callback_attempts or ()
    ]


def where_lost_lines(row: Call) -> list[tuple[str, str]]:
    """«Где потерян» and «Переадресован на», when detection knows them."""
    lines = []
    label = LOST_AT_LABELS.get(row.lost_at or "")
    if label:
        lines.append(("Где потерян", label))
    if row.forwarded_to:
        lines.append(("Переадресован на", phones.display(row.forwarded_to)))
    return lines


def attempts_text(row: Call, zone: tzinfo) -> str:
    """'3, первая 27.11.2026 09:00' for a caller who tried several times; '1' otherwise."""
    if row.attempts == 1:
        return "1"
    return f"{row.attempts}, первая {timefmt.show_local(row.first_called_at, zone)}"


def file_lost_text(register: Register, state: FileState, view: str) -> str:
    """What staff read while the register's file is not the one the view (`просмотр`,
    `панель`) opened."""
    if state is FileState.REPLACED:
        # Reading on would need the new file's own WAL; SQLite keeps the old one's open.
        return (
            f"Файл реестра звонков {register.path} заменён другим: список не обновляется; "
            f"перезапустите {view}."
        )
    return (
        f"Файл реестра звонков {register.path} перемещён или удалён: список не обновляется, "
        "пока файл не вернётся."
    )


def unavailable_text(error: str) -> str:
    """What staff read while the register cannot be read (its database server away)."""
    return f"Реестр звонков недоступен ({error}): список не обновляется, пробую снова."
