"""The clients directory («Контрагенты») as exported from 1C: CSV or XLSX into the register.

Reading is split from writing so each step can be tested: `read_table` gives rows of text
(CSV `;`/`,`/tab, UTF-8 or Windows-1251, or the first sheet of an XLSX), `find_layout` finds
the header row and the name / phone / code columns, `parse` turns rows into clients and
counts what it skipped and why, and `Register.upsert_clients` writes them in one transaction.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from beeline_missed import phones
from beeline_missed.errors import UserError

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


@dataclass(frozen=True)
class Entry:
    external_id: str | None
    name: str
    numbers: tuple[tuple[str, str], ...]  # (E.164, as written)


@dataclass
class Parsed:
    entries: list[Entry] = field(default_factory=list)
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


def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM), else Windows-1251, as 1C writes either; UTF-16 with its
    BOM, as Excel's «Unicode text» export writes."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1251")
    except UnicodeDecodeError:  # bytes Windows-1251 leaves undefined: not a text table
        raise UserError(
            "Файл не похож ни на таблицу CSV в UTF-8 или Windows-1251, ни на книгу XLSX."
        ) from None


def _split(text: str, delimiter: str) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    return [[_cell(value) for value in row] for row in reader]


def _score(rows: list[list[str]]) -> tuple[bool, int]:
    """How well a delimiter splits the file: a recognisable header first, then how many of
    the first rows share the most common column count (more than one column)."""
    head = rows[:HEADER_SEARCH_ROWS]
    header = any(_detect(row)[0] is not None and _detect(row)[1] for row in head)
    widths = Counter(len(row) for row in rows[:200] if any(row))
    width, count = widths.most_common(1)[0] if widths else (0, 0)
    return header, count if width > 1 else 0


def read_csv_text(text: str) -> list[list[str]]:
    """Rows split by ';', ',' or tab, whichever splits this file best.

    The first line alone misleads: 1C puts a title line («Контрагенты») above the header,
    and phone cells hold commas inside ';' files.
    """
    candidates = {d: _split(text, d) for d in (";", ",", "\t")}
    best = max(candidates, key=lambda d: _score(candidates[d]))
    return candidates[best]


def read_xlsx(path: Path) -> list[list[str]]:
    """The first (active) sheet. Opened from a handle: openpyxl judges a path by its suffix,
    and a workbook saved as «clients.csv» is still a workbook."""
    import zipfile

    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        with path.open("rb") as handle:
            book = openpyxl.load_workbook(handle, read_only=True, data_only=True)
            try:
                sheet = book.active if book.active is not None else book.worksheets[0]
                return [[_cell(v) for v in row] for row in sheet.iter_rows(values_only=True)]
            finally:
                book.close()
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise UserError(f"Не удаётся прочитать {path} как книгу XLSX: {exc}.") from None
    except OSError as exc:
        raise UserError(f"Не удаётся прочитать {path}: {exc.strerror}.") from None


def read_table(path: Path) -> list[list[str]]:
    """The file's rows as text cells."""
    if not path.is_file():
        raise UserError(f"Файла {path} нет.")
    if path.suffix.lower() in {".xlsx", ".xlsm"}:
        return read_xlsx(path)
    if path.suffix.lower() == ".xls":
        raise UserError(f"{path} — старая книга .xls; сохраните её в 1С как .xlsx или CSV.")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"Не удаётся прочитать {path}: {exc.strerror}.") from None
    if data.startswith(b"PK\x03\x04"):  # an XLSX under another name
        return read_xlsx(path)
    return read_csv_text(decode(data))


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
    shown = ", ".join(f"«{h}»" for h in headers if h) or "никаких"
    raise UserError(f"Столбца {what} «{wanted}» нет; столбцы в файле: {shown}.")


def _detect(headers: Sequence[str]) -> tuple[int | None, list[int], int | None]:
    keys = [_key(h) for h in headers]
    name = next((keys.index(word) for word in NAME_HEADERS if word in keys), None)
    if name is None:
        name = next(
            (i for i, k in enumerate(keys) if any(w.startswith(NAME_STEMS) for w in k.split())),
            None,
        )
    phone_cols = [i for i, h in enumerate(headers) if h and _is_phone_header(h)]
    code = next((keys.index(word) for word in CODE_HEADERS if word in keys), None)
    return name, [i for i in phone_cols if i != name], code


def find_layout(
    rows: Sequence[Sequence[str]],
    name_column: str | None = None,
    phone_columns: Sequence[str] = (),
) -> Layout:
    """Find the header row (1C exports may start with a title) and the columns."""
    explicit_numbers = (name_column is None or name_column.strip().isdigit()) and all(
        p.strip().isdigit() for p in phone_columns
    )
    for index, row in enumerate(rows[:HEADER_SEARCH_ROWS]):
        headers = [str(h) for h in row]
        name, phone_cols, code = _detect(headers)
        try:
            if name_column is not None:
                name = _pick(headers, name_column, NAME)
            if phone_columns:
                phone_cols = [_pick(headers, p, PHONE) for p in phone_columns]
        except UserError:
            continue
        if explicit_numbers and name_column is not None and phone_columns:
            # Columns given by number: the first row with a number in them is data, and
            # the row above it (if any) is the header.
            if any(
                phones.normalise(part)
                for i in phone_cols
                if i < len(row)
                for part in phones.split_cell(row[i])
            ):
                above = tuple(str(h) for h in rows[index - 1]) if index else ()
                return Layout(index - 1, name, tuple(phone_cols), None, above)
            continue
        if name is not None and phone_cols:
            return Layout(index, name, tuple(phone_cols), code, tuple(headers))
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


# -- parsing --------------------------------------------------------------------------------

MAX_EXAMPLES = 10


def parse(
    rows: Sequence[Sequence[str]],
    layout: Layout,
    progress: Callable[[int], None] | None = None,
) -> Parsed:
    """Clients from the rows under the header; rows with one code or name are merged."""
    out = Parsed()
    merged: dict[str, Entry] = {}
    first_data = layout.header_row + 1
    for offset, row in enumerate(rows[first_data:]):
        if progress is not None:
            progress(1)
        if not any(cell.strip() for cell in row):
            continue  # blank lines between blocks are not data
        out.rows_read += 1
        line_no = first_data + offset + 1

        def cell(i: int | None, row: Sequence[str] = row) -> str:
            return row[i].strip() if i is not None and i < len(row) else ""

        name = " ".join(cell(layout.name).split())
        if not name:
            out.skipped[NO_NAME] += 1
            continue
        numbers: dict[str, str] = {}
        texts = [part for col in layout.phones for part in phones.split_cell(cell(col))]
        bad = []
        for text in texts:
            e164 = phones.normalise(text)
            if e164 is None:
                bad.append(text)
            else:
                numbers.setdefault(e164, text)
        out.unrecognised_count += len(bad)
        for text in bad:
            if len(out.unrecognised) < MAX_EXAMPLES:
                out.unrecognised.append((line_no, text))
        if not numbers:
            out.skipped[BAD_NUMBER if texts else NO_NUMBER] += 1
            continue
        out.numbers_recognised += len(numbers)
        code = cell(layout.code) or None
        key = f"code:{code}" if code else f"name:{_key(name)}"
        if key in merged:
            before = merged[key]
            numbers = {**dict(before.numbers), **numbers}
        merged[key] = Entry(code, name, tuple(numbers.items()))
    out.entries = list(merged.values())
    return out


def entries_for_register(
    entries: Iterable[Entry],
) -> list[tuple[str | None, str, tuple[tuple[str, str], ...]]]:
    return [(e.external_id, e.name, e.numbers) for e in entries]


def parse_numbers(texts: Iterable[str]) -> list[tuple[str, str]]:
    """Numbers typed on the command line (`clients add`); any bad one is an error."""
    numbers: dict[str, str] = {}
    for text in texts:
        for part in phones.split_cell(text):
            e164 = phones.normalise(part)
            if e164 is None:
                raise UserError(f"«{part}» — не номер телефона.")
            numbers.setdefault(e164, part)
    if not numbers:
        raise UserError("Укажите хотя бы один номер телефона.")
    return list(numbers.items())


# Staff read the summary: Russian labels (the --json keys stay as they are).
SUMMARY_LABELS = {
    "rows_read": "строк прочитано",
    "numbers_recognised": "номеров распознано",
    "numbers_not_recognised": "номеров не распознано",
    "clients_added": "клиентов добавлено",
    "clients_updated": "клиентов обновлено",
    "clients_unchanged": "клиентов без изменений",
    "calls_relinked": "звонков теперь с другим клиентом",
    "rows_skipped": "строк пропущено",
}
SKIP_LABELS = {
    NO_NAME: "нет имени",
    NO_NUMBER: "нет номера телефона",
    BAD_NUMBER: "номер не распознан",
}


def summary(parsed: Parsed, counts: dict[str, int]) -> dict[str, int]:
    """The import's figures, keyed as `--json` prints them (labels in SUMMARY_LABELS)."""
    return {
        "rows_read": parsed.rows_read,
        "numbers_recognised": parsed.numbers_recognised,
        "numbers_not_recognised": parsed.unrecognised_count,
        "clients_added": counts.get("added", 0),
        "clients_updated": counts.get("updated", 0),
        "clients_unchanged": counts.get("unchanged", 0),
        "calls_relinked": counts.get("calls_relinked", 0),
        "rows_skipped": sum(parsed.skipped.values()),
    }


def summary_rows(parsed: Parsed, counts: dict[str, int]) -> list[tuple[str, int]]:
    """The summary as table rows, each skip reason under «rows skipped»."""
    rows = [(SUMMARY_LABELS[key], value) for key, value in summary(parsed, counts).items()]
    rows += [
        (f"  пропущено: {SKIP_LABELS.get(reason, reason)}", n)
        for reason, n in sorted(parsed.skipped.items())
    ]
    return rows
