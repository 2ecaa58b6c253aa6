"""The clients directory («Контрагенты») as exported from 1C: CSV or XLSX into the register.

Reading is split from writing so each step can be tested: `open_table` reads a file lazily
(CSV `;`/`,`/tab, UTF-8 or Windows-1251, or the sheet an XLSX was saved open at, merged
cells filled in), `find_layout` finds the header row and the name / phone / code columns,
`parse_rows` turns rows into clients one by one and counts what it skipped and why, and
`register.clients.upsert` stages and writes them in short transactions. `import_file` does
all four with memory that stays flat whatever the file's size.

Rules: importing again updates, never duplicates — a client is found by its code, else its
name (case, spacing and ё ignored), else its numbers. A number belongs to one client: when
several rows of the file list it, the last row wins (and the import says so); a number the
directory gave someone not in the file moves to the file's client.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from beeline_missed import phones
from beeline_missed.errors import UserError

if TYPE_CHECKING:
    from beeline_missed.store import Register

# Header words, compared with case and spacing ignored. Order matters: the first match wins.
NAME_HEADERS = (
    "наименование",
    "наименование полное",
    "полное наименование",
    "контрагент",
    "клиент",
    "фио",
    "название",
    "имя",
    "name",
    "full name",
    "client",
    "customer",
    "company",
)
# A header word that starts like these marks a phone column («Номер телефона», «Mobile»)...
PHONE_STEMS = ("телефон", "мобил", "phone", "telephone", "mobile")
# ...and so does one of these short forms as a whole word («Тел. сотовый»).
PHONE_WORDS = ("тел", "тел.", "моб", "моб.", "tel", "tel.", "cell")
# A header word that starts like these marks the name when no header is an exact match.
NAME_STEMS = ("наименован", "контрагент", "клиент", "name")
CODE_HEADERS = ("код", "code", "id", "external id", "external_id")
HEADER_SEARCH_ROWS = 30

# Skip reasons, as the summary prints them.
# Column roles, as error sentences name them ("Столбца имени «X» нет").
NAME = "имени"
PHONE = "телефона"
NO_NAME = "no name"
NO_NUMBER = "no phone number"
BAD_NUMBER = "no recognisable phone number"


@dataclass(frozen=True)
class Layout:
    header_row: int  # 0-based index of the header row; -1 when the file has none
    name: int
    phones: tuple[int, ...]
    code: int | None = None
    headers: tuple[str, ...] = ()
    header_end: int | None = None  # last row of a header spread over rows by merged cells

    @property
    def first_data(self) -> int:
        """0-based index of the first row under the header."""
        end = self.header_row if self.header_end is None else self.header_end
        return end + 1


@dataclass
class Parsed:
    """What reading a file found besides its clients: counts, skips and examples."""

    rows_read: int = 0
    numbers_recognised: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    # (row number in the file, text) of numbers that could not be read, first few only.
    unrecognised: list[tuple[int, str]] = field(default_factory=list)
    unrecognised_count: int = 0


def _key(text: object) -> str:
    return " ".join(str(text or "").replace("\ufeff", "").split()).casefold()


def _cell(value: object) -> str:
    """A cell as text; XLSX numbers such as 79161234567.0 become '79161234567'."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


# -- reading --------------------------------------------------------------------------------


NOT_A_TABLE = "Файл не похож ни на таблицу CSV в UTF-8 или Windows-1251, ни на книгу XLSX."
CUT_OFF = (
    "Файл {path} обрывается посреди буквы: похоже, он записан не до конца; "
    "выгрузите его из 1С заново."
)


def _encoding(path: Path) -> str:
    """UTF-8 (with or without BOM), else Windows-1251, as 1C writes either; UTF-16 with its
    BOM, as Excel's «Unicode text» export writes. The whole file is checked, a megabyte at a
    time, so a wrong guess cannot surface half-way through an import."""
    candidates = ["utf-8-sig", "cp1251"]
    try:
        with path.open("rb") as handle:
            if handle.read(2) in (b"\xff\xfe", b"\xfe\xff"):
                candidates.insert(0, "utf-16")
            for encoding in candidates:
                handle.seek(0)
                decoder = codecs.getincrementaldecoder(encoding)()
                try:
                    for chunk in iter(lambda: handle.read(1 << 20), b""):
                        decoder.decode(chunk)
                except UnicodeDecodeError:
                    continue
                try:
                    decoder.decode(b"", final=True)
                except UnicodeDecodeError:
                    # Text of this encoding all through, cut in the middle of its last
                    # letter: a file not written to the end (rows may be missing too), not
                    # Windows-1251, which would garble every name.
                    raise UserError(CUT_OFF.format(path=path)) from None
                return encoding
    except OSError as exc:
        raise UserError(f"Не удаётся прочитать {path}: {exc.strerror}.") from None
    # Bytes Windows-1251 leaves undefined: not a text table.
    raise UserError(NOT_A_TABLE)


def _split(text: str, delimiter: str) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[list[str]] = []
    # Judged on the rows before a broken one; reading the file then says what is wrong.
    with contextlib.suppress(csv.Error):
        rows.extend([_cell(value) for value in row] for row in reader)
    return rows


def _score(rows: list[list[str]]) -> tuple[bool, int]:
    """How well a delimiter splits the file: a recognisable header first, then how many of
    the first rows share the most common column count (more than one column)."""
    head = rows[:HEADER_SEARCH_ROWS]
    header = any(_detect(row)[0] is not None and _detect(row)[1] for row in head)
    widths = Counter(len(row) for row in rows[:200] if any(row))
    width, count = widths.most_common(1)[0] if widths else (0, 0)
    return header, count if width > 1 else 0


def _delimiter(sample: str) -> str:
    """';', ',' or tab, whichever splits the file's first lines best.

    The first line alone misleads: 1C puts a title line («Контрагенты») above the header,
    and phone cells hold commas inside ';' files.
    """
    candidates = {d: _split(sample, d) for d in (";", ",", "\t")}
    return max(candidates, key=lambda d: _score(candidates[d]))


# A merged range of cells, 0-based and inclusive: (first row, first column, last row, last
# column). Only the first cell holds the value; the table fills it into the others.
Merge = tuple[int, int, int, int]


class Table:
    """A file's rows as text cells, read lazily: `head` (the first rows, where the header
    is), `merges`, and `rows()`, which reads the whole file again from the start."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.merges: list[Merge] = []
        if path.is_dir():
            raise UserError(f"{path} — это папка; укажите файл выгрузки в ней.")
        if not path.is_file():
            raise UserError(f"Файла {path} нет.")
        suffix = path.suffix.lower()
        if suffix == ".xls":
            raise UserError(f"{path} — старая книга .xls; сохраните её в 1С как .xlsx или CSV.")
        try:
            with path.open("rb") as handle:
                magic = handle.read(4)
        except OSError as exc:
            raise UserError(f"Не удаётся прочитать {path}: {exc.strerror}.") from None
        # An XLSX under another name (a workbook saved as «clients.csv») is still one.
        self.kind = "xlsx" if suffix in {".xlsx", ".xlsm"} or magic == b"PK\x03\x04" else "csv"
        if self.kind == "csv":
            self.encoding = _encoding(path)
            with path.open(encoding=self.encoding, newline="") as handle:
                sample = "".join(itertools.islice(handle, 200))
            self.delimiter = _delimiter(sample)
        else:
            self.merges = _xlsx_merges(path)
        self.head = list(itertools.islice(self.rows(), HEADER_SEARCH_ROWS))

    def rows(self) -> Iterator[list[str]]:
        raw = self._csv_rows() if self.kind == "csv" else _xlsx_rows(self.path)
        return _fill_merges(raw, self.merges) if self.merges else raw

    def _csv_rows(self) -> Iterator[list[str]]:
        with self.path.open(encoding=self.encoding, newline="") as handle:
            strip = str.strip
            reader = csv.reader(handle, delimiter=self.delimiter)
            try:
                for row in reader:
                    yield list(map(strip, row))
            except csv.Error as exc:
                raise UserError(_csv_error(self.path, reader.line_num, exc)) from None


def _csv_error(path: Path, line: int, exc: csv.Error) -> str:
    reason = str(exc)
    if "field larger than field limit" in reason:
        # A cell of over 128 K characters is no client's name or number: a broken export
        # (a quote never closed swallows the rest of the file into one cell).
        reason = f"в ячейке больше {csv.field_size_limit():,} знаков".replace(",", " ")
    return (
        f"Файл {path} не читается как таблица CSV в строке {line}: {reason}; "
        "выгрузите его из 1С заново."
    )


def _fill_merges(rows: Iterable[list[str]], merges: Sequence[Merge]) -> Iterator[list[str]]:
    """Each merged range's value in all its cells: a header «Телефоны» merged over two
    columns names both, a name merged over two rows belongs to both."""
    by_first_row: dict[int, list[Merge]] = {}
    for merge in merges:
        by_first_row.setdefault(merge[0], []).append(merge)
    active: list[tuple[Merge, str]] = []
    for index, row in enumerate(rows):
        for merge in by_first_row.pop(index, []):
            active.append((merge, row[merge[1]] if merge[1] < len(row) else ""))
        if active:
            active = [(m, value) for m, value in active if m[2] >= index]
            for (_, first_col, _, last_col), value in active:
                if len(row) <= last_col:
                    row.extend([""] * (last_col + 1 - len(row)))
                row[first_col : last_col + 1] = [value] * (last_col + 1 - first_col)
        yield row


def _not_a_workbook(path: Path, exc: BaseException) -> UserError:
    # One sentence: openpyxl wraps what went wrong in three lines of its own (the cause
    # says more), and a message may be empty.
    cause = exc.__cause__ or exc
    reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0].rstrip(".")
    return UserError(f"Не удаётся прочитать {path} как книгу XLSX: {reason}.")


@contextmanager
def _open_xlsx(path: Path) -> Iterator[Any]:
    """The workbook, read-only. Opened from a handle: openpyxl judges a path by its suffix."""
    import warnings

    import openpyxl

    try:
        with path.open("rb") as handle:
            try:
                # openpyxl's warnings about odd parts of a book say nothing staff can act on.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    book = openpyxl.load_workbook(handle, read_only=True, data_only=True)
            # A broken book fails inside openpyxl with any exception (BadZipFile, KeyError,
            # TypeError for an unknown attribute, ParseError, …): whatever it is, the file
            # is not a book we can read.
            except Exception as exc:
                raise _not_a_workbook(path, exc) from None
            try:
                if not book.worksheets:
                    raise UserError(f"В книге {path} нет ни одного листа.")
                yield book
            finally:
                book.close()
    except OSError as exc:
        raise UserError(f"Не удаётся прочитать {path}: {exc.strerror}.") from None


def _sheet(book: Any) -> Any:
    """The sheet the book was saved open at (what whoever exported it saw), else the first."""
    return book.active if book.active is not None else book.worksheets[0]


def _xlsx_rows(path: Path) -> Iterator[list[str]]:
    """The sheet's rows (see `_sheet`), streamed."""
    with _open_xlsx(path) as book:
        rows = _sheet(book).iter_rows(values_only=True)
        while True:
            try:
                row = next(rows)
            except StopIteration:
                return
            except Exception as exc:  # inside openpyxl, reading a broken sheet (see above)
                raise _not_a_workbook(path, exc) from None
            yield [_cell(v) for v in row]


def _xlsx_merges(path: Path) -> list[Merge]:
    """The merged ranges of the sheet (see `_sheet`). openpyxl's read-only mode does not give
    them, so the sheet's XML is scanned for its <mergeCell ref="C1:D1"/> elements, streamed."""
    import zipfile
    from xml.etree.ElementTree import ParseError, iterparse

    from openpyxl.utils.cell import range_boundaries

    merges: list[Merge] = []
    with _open_xlsx(path) as book:
        # A private method, but the one way to the sheet's XML in read-only mode; without
        # it, a merged header still works for a phone column with an empty neighbour.
        source = getattr(_sheet(book), "_get_source", None)
        if source is None:
            return merges
        try:
            with source() as xml:
                for _, element in iterparse(xml):
                    ref = element.get("ref")
                    if element.tag.endswith("}mergeCell") and ref:
                        first_col, first_row, last_col, last_row = range_boundaries(ref)
                        merges.append((first_row - 1, first_col - 1, last_row - 1, last_col - 1))
                    element.clear()
        except (zipfile.BadZipFile, KeyError, ValueError, TypeError, ParseError, EOFError) as exc:
            raise _not_a_workbook(path, exc) from None
    return merges


def open_table(path: Path) -> Table:
    """The file, ready to be read row by row."""
    return Table(path)


def read_table(path: Path) -> list[list[str]]:
    """All the file's rows as text cells (small files; an import streams `open_table`)."""
    return list(open_table(path).rows())


# -- columns --------------------------------------------------------------------------------


def _is_phone_header(text: str) -> bool:
    words = _key(text).replace(",", " ").split()
    return any(w.startswith(PHONE_STEMS) or w in PHONE_WORDS for w in words)


def _pick(headers: Sequence[str], wanted: str, what: str) -> int:
    """A column by its header (any case) or its 1-based number."""
    if wanted.strip().isdigit():
        index = int(wanted) - 1
        if index < 0 or (headers and index >= len(headers)):
            raise UserError(f"Столбца {wanted} для {what} в файле нет.")
        return index
    keys = [_key(h) for h in headers]
    if _key(wanted) in keys:
        return keys.index(_key(wanted))
    shown = ", ".join(f"«{h}»" for h in headers if h) or "нет"
    raise UserError(f"Столбца {what} «{wanted}» нет; столбцы в файле: {shown}.")


def _detect(headers: Sequence[str]) -> tuple[int | None, list[int], int | None]:
    keys = [_key(h) for h in headers]
    name = next((keys.index(word) for word in NAME_HEADERS if word in keys), None)
    if name is None:
        name = next(
            (i for i, k in enumerate(keys) if any(w.startswith(NAME_STEMS) for w in k.split())),
            None,
        )
    code = next((keys.index(word) for word in CODE_HEADERS if word in keys), None)
    phone_cols: list[int] = []
    for i, h in enumerate(headers):
        if i == name or i in phone_cols:
            continue
        if h and _is_phone_header(h):
            phone_cols.append(i)
            # Unnamed columns right after a phone header are under it: a header merged over
            # them in Excel, or the same saved as CSV (where the merge is lost).
            j = i + 1
            while j < len(headers) and not keys[j] and j not in (name, code):
                phone_cols.append(j)
                j += 1
    return name, phone_cols, code


def find_layout(
    rows: Sequence[Sequence[str]],
    name_column: str | None = None,
    phone_columns: Sequence[str] = (),
    merges: Sequence[Merge] = (),
) -> Layout:
    """Find the header row (1C exports may start with a title) and the columns.

    A header may span rows by merged cells («Наименование» merged down over two rows,
    «Телефоны» across two columns with «Мобильный» and «Домашний» under it): the rows its
    merges reach are header too, and each column is named by all of them.
    """
    explicit_numbers = (name_column is None or name_column.strip().isdigit()) and all(
        p.strip().isdigit() for p in phone_columns
    )
    for index, row in enumerate(rows[:HEADER_SEARCH_ROWS]):
        headers = [str(h) for h in row]
        name, phone_cols, code = _detect(headers)
        try:
            if name_column is not None:
                name = _pick(headers, name_column, "name")
            if phone_columns:
                phone_cols = [_pick(headers, p, "phone") for p in phone_columns]
        except UserError:
            continue
        if explicit_numbers and name_column is not None and phone_columns:
            # Columns given by number: the first row with a number in them is data, and
            # the row above it (if any) is the header.
            if any(
                phones.directory_number(part)
                for i in phone_cols
                if i < len(row)
                for part in phones.split_cell(row[i])
            ):
                above = tuple(str(h) for h in rows[index - 1]) if index else ()
                return Layout(index - 1, name, tuple(phone_cols), None, above)
            continue
        if name is not None and phone_cols:
            end = max((m[2] for m in merges if m[0] <= index <= m[2]), default=index)
            if end > index:
                headers = _stacked_headers(rows[index : end + 1])
                if name_column is None and not phone_columns:
                    name, phone_cols, code = _detect(headers)
            return Layout(index, name, tuple(phone_cols), code, tuple(headers), end)
    first = next((row for row in rows if any(row)), [])
    if name_column is not None or phone_columns:
        # Say which given column is not there, judged by the first row (the usual header).
        _pick(first, name_column, NAME) if name_column is not None else None
        for wanted in phone_columns:
            _pick(first, wanted, PHONE)
    shown = ", ".join(f"«{h}»" for h in first if h) or "пустая"
    wanted = []
    if name_column is None:
        wanted.append("столбец имени («Наименование»)")
    if not phone_columns:
        wanted.append("столбец телефона («Телефон»)")
    what = " и ".join(wanted) or "указанные столбцы"
    raise UserError(
        f"Не удалось найти в файле {what} (первая строка: {shown}); "
        "укажите столбцы через --name-column и --phone-column."
    )


def _stacked_headers(rows: Sequence[Sequence[str]]) -> list[str]:
    """A header over several rows, one name per column: its distinct texts, top down."""
    width = max(len(row) for row in rows)
    headers = []
    for i in range(width):
        texts: list[str] = []
        for row in rows:
            text = str(row[i]).strip() if i < len(row) else ""
            if text and text not in texts:
                texts.append(text)
        headers.append(" / ".join(texts))
    return headers


# -- parsing --------------------------------------------------------------------------------

MAX_EXAMPLES = 10
PROGRESS_EVERY = 1000
split_cell, directory_number = phones.split_cell, phones.directory_number  # hot loop


def parse_rows(
    rows: Iterable[Sequence[str]],
    layout: Layout,
    out: Parsed,
    progress: Callable[[int], None] | None = None,
) -> Iterator[tuple[str | None, str, list[tuple[str, str]]]]:
    """Clients from the rows under the header, one per row in file order, as
    (code, name, [(E.164, as written), ...]); what is skipped and why is counted in `out`
    as the rows go by. `rows` is the whole table, header included."""
    first_data = layout.first_data
    name_at, code_at, phone_at = layout.name, layout.code, layout.phones
    unread = 0  # rows not yet told to `progress`: it is told every PROGRESS_EVERY rows
    # Counted in locals (a big file's hot loop) and added to `out` every PROGRESS_EVERY
    # rows and at the end.
    read = recognised = 0
    for index, row in enumerate(rows):
        if index < first_data:
            continue
        unread += 1
        if unread == PROGRESS_EVERY:
            out.rows_read += read
            out.numbers_recognised += recognised
            read = recognised = unread = 0
            if progress is not None:
                progress(PROGRESS_EVERY)
        if not any(row):
            continue  # blank lines between blocks are not data (cells come stripped)
        read += 1
        width = len(row)
        name = " ".join(row[name_at].split()) if name_at < width else ""
        if not name:
            out.skipped[NO_NAME] += 1
            continue
        numbers: dict[str, str] = {}
        texts: list[str] = []
        bad = None
        for col in phone_at:
            cell = row[col] if col < width else ""
            if not cell:
                continue
            # One number per cell, as most cells hold, needs no splitting.
            parts = split_cell(cell) if "," in cell or ";" in cell or "\n" in cell else (cell,)
            for text in parts:
                texts.append(text)
                e164 = directory_number(text)
                if e164 is None:
                    bad = [*(bad or ()), text]
                elif e164 not in numbers:
                    numbers[e164] = text
        if bad:
            out.unrecognised_count += len(bad)
            for text in bad:
                if len(out.unrecognised) < MAX_EXAMPLES:
                    out.unrecognised.append((index + 1, text))
        if not numbers:
            out.skipped[BAD_NUMBER if texts else NO_NUMBER] += 1
            continue
        recognised += len(numbers)
        code = row[code_at] if code_at is not None and code_at < width else ""
        yield code or None, name, list(numbers.items())
    out.rows_read += read
    out.numbers_recognised += recognised
    if progress is not None and unread:
        progress(unread)


def import_file(
    register: Register | Callable[[], Register],
    path: Path,
    name_column: str | None = None,
    phone_columns: Sequence[str] = (),
    progress: Callable[[int], None] | None = None,
) -> tuple[Layout, Parsed, dict[str, Any]]:
    """Read and import a file, streamed: the layout, what was read, and the register's
    counts (see `register.clients.upsert`). `register` may be a function that opens it: it is
    called only once the file is known to be a clients table, so a wrong file creates no
    register."""
    table = open_table(path)
    layout = find_layout(table.head, name_column, phone_columns, table.merges)
    parsed = Parsed()
    if callable(register):
        register = register()
    counts = register.clients.upsert(parse_rows(table.rows(), layout, parsed, progress))
    return layout, parsed, counts


def parse_numbers(texts: Iterable[str]) -> list[tuple[str, str]]:
    """Numbers typed on the command line (`clients add`); any bad one is an error."""
    numbers: dict[str, str] = {}
    for text in texts:
        for part in phones.split_cell(text):
            e164 = phones.directory_number(part)
            if e164 is None:
                raise UserError(
                    f"«{part}» — не номер телефона: российский номер — {phones.RUSSIAN_FORM}."
                )
            numbers.setdefault(e164, part)
    if not numbers:
        raise UserError("Укажите хотя бы один номер телефона.")
    return list(numbers.items())


SUMMARY_LABELS = {
    "rows_read": "строк прочитано",
    "numbers_recognised": "номеров распознано",
    "numbers_not_recognised": "номеров не распознано",
    "clients_added": "клиентов добавлено",
    "clients_updated": "клиентов обновлено",
    "clients_unchanged": "клиентов без изменений",
    "calls_relinked": "звонков теперь с другим клиентом",
    "numbers_shared": "номеров у нескольких клиентов",
    "rows_skipped": "строк пропущено",
}
SKIP_LABELS = {
    NO_NAME: "нет имени",
    NO_NUMBER: "нет номера телефона",
    BAD_NUMBER: "номер не распознан",
}


def summary(parsed: Parsed, counts: dict[str, Any]) -> dict[str, int]:
    """The import's figures, keyed as `--json` prints them (labels in SUMMARY_LABELS)."""
    return {
        "rows_read": parsed.rows_read,
        "numbers_recognised": parsed.numbers_recognised,
        "numbers_not_recognised": parsed.unrecognised_count,
        "clients_added": counts["added"],
        "clients_updated": counts["updated"],
        "clients_unchanged": counts["unchanged"],
        "calls_relinked": counts["calls_relinked"],
        "numbers_shared": counts["shared_count"],
        "rows_skipped": sum(parsed.skipped.values()),
    }


def summary_rows(parsed: Parsed, counts: dict[str, Any]) -> list[tuple[str, int]]:
    """The summary as table rows, each skip reason under «rows skipped»."""
    rows = [(SUMMARY_LABELS[key], value) for key, value in summary(parsed, counts).items()]
    rows += [
        (f"  пропущено: {SKIP_LABELS[reason]}", n) for reason, n in sorted(parsed.skipped.items())
    ]
    return rows


def shared_lines(counts: dict[str, Any], shown: int = MAX_EXAMPLES) -> list[str]:
    """The numbers claimed by several clients, one sentence each, for staff."""
    lines = []
    for item in counts["shared"][:shown]:
        names = ", ".join(f"«{name}»" for name in item["clients"])
        lines.append(
            f"Номер {phones.display(item['phone'])} указан у нескольких клиентов ({names}): "
            f"оставлен у «{item['kept_by']}»."
        )
    more = counts["shared_count"] - len(lines)
    if more > 0:
        lines.append(f"… и ещё таких номеров: {more}.")
    return lines
