"""A stand-in for a 1C:Альфа-Авто base's standard OData interface: real HTTP on loopback.

No 1C base can be reached from here, so the tests, the demo and the benchmark talk to this
instead. It answers as `../shared/onec/README.md` says 1C does: entity sets under
`/<base>/odata/standard.odata/` named with their Cyrillic names (percent-encoded in the URL; a
raw non-ASCII path is refused, so a client that forgets to encode fails here too), HTTP Basic,
`$format=json` (anything else gets Atom XML, which a JSON client cannot read), `$metadata`,
`$top/$skip/$orderby/$select/$inlinecount` and the `$filter` forms integrations use (`eq`, `ne`,
`and`, `substringof`, `guid'…'`, `datetime'…'`), errors as `{"odata.error": …}`, and POST of a
document answering the new object with `Ref_Key` and `Number`.

Faults for tests: `fail("401" | "login_page" | "error" | "slow" | "down")`. A catalog may be a
`SyntheticClients` sequence that makes records on demand, so 100,000 clients cost no memory.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, overload
from urllib.parse import unquote
from xml.sax.saxutils import escape, quoteattr

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from beeline_missed.simulator.faults import Fault, FaultyStandIn
from beeline_missed.simulator.loopback import LoopbackServer

PUBLICATION = "/alfa/odata/standard.odata"
DEFAULT_USER = "odata"
DEFAULT_PASSWORD = "odata-secret"
EMPTY_REF = "00000000-0000-0000-0000-000000000000"

CLIENTS = "Catalog_Контрагенты"
CARS = "Catalog_Автомобили"
BOOKINGS = "Document_ЗаявкаНаРемонт"
ORDERS = "Document_ЗаказНаряд"

# Properties of each entity set as $metadata lists them (tabular sections: their row fields).
SCHEMA: dict[str, dict[str, Any]] = {
    CLIENTS: {
        "fields": [
            "Ref_Key",
            "DataVersion",
            "DeletionMark",
            "Parent_Key",
            "IsFolder",
            "Code",
            "Description",
            "НаименованиеПолное",
            "Комментарий",
        ],
        "tables": {
            "КонтактнаяИнформация": [
                "LineNumber",
                "Тип",
                "Вид_Key",
                "Представление",
                "НомерТелефона",
                "НомерТелефонаБезКодов",
                "Значение",
            ]
        },
    },
    CARS: {
        "fields": [
            "Ref_Key",
            "DataVersion",
            "DeletionMark",
            "Code",
            "Description",
            "VIN",
            "ГосНомер",
            "Владелец_Key",
        ],
        "tables": {},
    },
    BOOKINGS: {
        "fields": [
            "Ref_Key",
            "DataVersion",
            "DeletionMark",
            "Number",
            "Date",
            "Posted",
            "Заказчик_Key",
            "ДатаНачала",
            "ДатаОкончания",
            "Организация_Key",
            "ПодразделениеКомпании_Key",
            "ВидРемонта_Key",
            "Цех_Key",
            "Автор_Key",
            "Состояние",
            "Комментарий",
            "ПредставлениеТелефонаСтрокой",
        ],
        "tables": {},
    },
    ORDERS: {
        "fields": [
            "Ref_Key",
            "DataVersion",
            "DeletionMark",
            "Number",
            "Date",
            "Posted",
            "Заказчик_Key",
            "Автомобиль_Key",
            "Состояние",
            "Комментарий",
        ],
        "tables": {},
    },
}


def odata_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"odata.error": {"code": code, "message": {"lang": "ru", "value": message}}},
        status_code=status,
    )


def phone_row(line: int, text: str, number: str = "") -> dict[str, Any]:
    """A «Телефон» row of a client's contact information, as 1C lists it."""
    return {
        "LineNumber": str(line),
        "Тип": "Телефон",
        "Вид_Key": "2f3b1a8e-0000-4000-8000-000000000001",
        "Представление": text,
        "НомерТелефона": number,
        "НомерТелефонаБезКодов": "",
        "Значение": "",
    }


def make_client(
    name: str,
    phones: Iterable[str] = (),
    *,
    code: str = "",
    ref: str | None = None,
    folder: bool = False,
    deleted: bool = False,
    parent: str = EMPTY_REF,
    email: str | None = None,
) -> dict[str, Any]:
    """One `Catalog_Контрагенты` record: each phone text one «Телефон» row (a text may hold
    several numbers, as typed in 1C)."""
    rows = [phone_row(i, text) for i, text in enumerate(phones, 1)]
    if email:
        rows.append({**phone_row(len(rows) + 1, email), "Тип": "АдресЭлектроннойПочты"})
    return {
        "Ref_Key": ref or str(uuid.uuid4()),
        "DataVersion": "AAAAAQAAAAA=",
        "DeletionMark": deleted,
        "Parent_Key": parent,
        "IsFolder": folder,
        "Code": code,
        "Description": name,
        "НаименованиеПолное": name,
        "Комментарий": "",
        "КонтактнаяИнформация": [] if folder else rows,
    }


class SyntheticClients(Sequence[dict[str, Any]]):
    """`count` clients made on demand from their index (two numbers each): a big catalog for
    the benchmark without holding it in memory. They come in Ref_Key order, and fields in
    `uniform` are the same in every record: a page filtered on those or ordered by Ref_Key
    is made without making the whole catalog (as 1C's indexes spare it)."""

    sorted_by = "Ref_Key"
    uniform = frozenset({"DeletionMark", "IsFolder"})

    def __init__(self, count: int, phones_each: int = 2) -> None:
        self.count = count
        self.phones_each = phones_each

    def __len__(self) -> int:
        return self.count

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self._make(i) for i in range(*index.indices(self.count))]
        if index < 0:
            index += self.count
        if not 0 <= index < self.count:
            raise IndexError(index)
        return self._make(index)

    def _make(self, i: int) -> dict[str, Any]:
        numbers = [
            f"+7 (916) {(i * self.phones_each + k) // 10000 % 1000:03d}-"
            f"{(i * self.phones_each + k) // 100 % 100:02d}-{(i * self.phones_each + k) % 100:02d}"
            if k == 0
            else f"8 925 {(i * self.phones_each + k) % 10_000_000:07d}"
            for k in range(self.phones_each)
        ]
        return make_client(
            f"Клиент {i:07d}",
            numbers,
            code=f"{i:09d}",
            ref=str(uuid.UUID(int=i + 1)),
        )


# -- $filter, as far as integrations use it -----------------------------------------------

_LITERAL = r"(guid'[^']*'|datetime'[^']*'|'(?:[^']|'')*'|true|false|-?\d+(?:\.\d+)?)"
_COMPARE = re.compile(rf"^\s*([\w]+)\s+(eq|ne)\s+{_LITERAL}\s*$", re.UNICODE)
_SUBSTRING = re.compile(
    r"^\s*substringof\(\s*'((?:[^']|'')*)'\s*,\s*([\w]+)\s*\)(?:\s+eq\s+true)?\s*$", re.UNICODE
)


def _literal(text: str) -> Any:
    if text.startswith("guid'"):
        return text[5:-1]
    if text.startswith("datetime'"):
        return text[9:-1]
    if text.startswith("'"):
        return text[1:-1].replace("''", "'")
    if text in ("true", "false"):
        return text == "true"
    return float(text) if "." in text else int(text)


def _split_and(text: str) -> list[str]:
    """The clauses of `a and b and c`, quotes respected."""
    parts, current, quoted, i = [], "", False, 0
    while i < len(text):
        ch = text[i]
        if ch == "'":
            quoted = not quoted
        if not quoted and text[i : i + 5].lower() == " and ":
            parts.append(current)
            current, i = "", i + 5
            continue
        current += ch
        i += 1
    parts.append(current)
    return parts


def parse_filter(text: str, fields: set[str]) -> tuple[Callable[[dict[str, Any]], bool], set[str]]:
    """A predicate for `$filter` and the fields it reads; ValueError for what the stand-in
    (or 1C) cannot read."""
    tests: list[Callable[[dict[str, Any]], bool]] = []
    used: set[str] = set()
    for clause in _split_and(text):
        if m := _COMPARE.match(clause):
            name, op, value = m.group(1), m.group(2), _literal(m.group(3))
            used.add(name)
            if name not in fields:
                raise ValueError(f"Поле {name} не найдено")
            if op == "eq":
                tests.append(lambda r, n=name, v=value: r.get(n) == v)
            else:
                tests.append(lambda r, n=name, v=value: r.get(n) != v)
        elif m := _SUBSTRING.match(clause):
            needle, name = m.group(1).replace("''", "'").casefold(), m.group(2)
            used.add(name)
            if name not in fields:
                raise ValueError(f"Поле {name} не найдено")
            tests.append(lambda r, n=name, s=needle: s in str(r.get(n, "")).casefold())
        else:
            raise ValueError(f"Неправильное выражение отбора: {clause.strip()}")
    return (lambda record: all(test(record) for test in tests)), used


class OnecSimulator(FaultyStandIn):
    """A 1C base's standard OData interface on 127.0.0.1.

    `start()` serves it in a background thread and returns the OData base URL (use it as
    BEELINE_MISSED_1C_URL); `stop()` shuts it down. `sets` maps each published entity set to
    its records; a set not in `sets` is not published (its requests get an error, and
    `$metadata` does not list it). `required` names the fields a POST of a document must fill.
    """

    MODES = ("401", "login_page", "error", "slow")  # fail()'s modes besides 'down'

    def __init__(
        self,
        user: str = DEFAULT_USER,
        password: str = DEFAULT_PASSWORD,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        sets: dict[str, Sequence[dict[str, Any]]] | None = None,
        required: dict[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.user = user
        self.password = password
        self.host = host
        self.http = LoopbackServer(None, host, port, name="the 1C OData stand-in")
        self.sets: dict[str, Any] = {name: [] for name in SCHEMA} if sets is None else dict(sets)
        self.required = required or {BOOKINGS: ("Заказчик_Key",)}
        self._init_faults()
        # How 1C's paging might differ from the documented one (shared/onec: "no server-driven
        # paging" is a guess): a server that caps $top at `max_page` records, and one that
        # ignores $skip and answers the first page every time.
        self.max_page: int | None = None
        self.ignores_skip = False
        self.requests: list[tuple[str, str, str]] = []  # (method, raw path, query), for tests
        self.created: list[dict[str, Any]] = []  # documents POSTed, in order
        self._numbers: dict[str, int] = {}
        self.app = Starlette(
            routes=[Route(PUBLICATION + "/{rest:path}", self._handle, methods=["GET", "POST"])]
        )

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self.http.port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}{PUBLICATION}"

    def start(self) -> str:
        self._stopping.clear()
        self._serve()
        return self.base_url

    def stop(self) -> None:
        self._stop_serving()

    def __enter__(self) -> OnecSimulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults ---------------------------------------------------------------------------

    def fail(
        self,
        mode: str,
        *,
        count: int | None = None,
        seconds: float = 5.0,
        methods: Iterable[str] | None = None,
    ) -> None:
        """'401' (refuse the password), 'login_page' (an HTML page with 200, as a web server
        in front of 1C answers when the publication is wrong), 'error' (an OData error, 500),
        'slow' (answer after `seconds`) for the next `count` requests (all when None), only
        those of `methods` when given; or 'down' (stop listening for `seconds`; 0: until
        recover())."""
        self._inject(mode, count=count, seconds=seconds, methods=methods)

    # -- data -----------------------------------------------------------------------------

    def records(self, entity: str) -> Any:
        return self.sets.setdefault(entity, [])

    def add(self, entity: str, *records: dict[str, Any]) -> None:
        with self._lock:
            self.records(entity).extend(records)

    def find(self, entity: str, ref: str) -> dict[str, Any] | None:
        return next((r for r in self.records(entity) if r.get("Ref_Key") == ref), None)

    def metadata_xml(self) -> str:
        """EDMX as 1C writes it, for the published sets only."""
        types, sets = [], []
        for entity in self.sets:
            schema = SCHEMA.get(entity) or {"fields": _fields_of(self.sets[entity]), "tables": {}}
            props = [f'<Property Name={quoteattr(f)} Type="Edm.String"/>' for f in schema["fields"]]
            for table, row_fields in schema["tables"].items():
                row_type = f"{entity}_{table}_RowType"
                cols = "".join(
                    f'<Property Name={quoteattr(f)} Type="Edm.String"/>' for f in row_fields
                )
                types.append(f"<ComplexType Name={quoteattr(row_type)}>{cols}</ComplexType>")
                props.append(
                    f"<Property Name={quoteattr(table)} "
                    f'Type="Collection(StandardODATA.{escape(row_type)})" Nullable="false"/>'
                )
            types.append(
                f'<EntityType Name={quoteattr(entity)}><Key><PropertyRef Name="Ref_Key"/></Key>'
                + "".join(props)
                + "</EntityType>"
            )
            sets.append(
                f"<EntitySet Name={quoteattr(entity)} "
                f"EntityType={quoteattr('StandardODATA.' + entity)}/>"
            )
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<edmx:Edmx xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx" Version="1.0">'
            '<edmx:DataServices xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/'
            'metadata" m:DataServiceVersion="3.0">'
            '<Schema xmlns="http://schemas.microsoft.com/ado/2009/11/edm" '
            'Namespace="StandardODATA">'
            + "".join(types)
            + '<EntityContainer Name="InfoBase" m:IsDefaultEntityContainer="true">'
            + "".join(sets)
            + "</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>"
        )

    # -- HTTP -----------------------------------------------------------------------------

    def _authorised(self, request: Request) -> bool:
        import base64

        header = request.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return user == self.user and password == self.password

    async def _handle(self, request: Request) -> Response:
        raw_path = request.scope.get("raw_path", b"").decode("latin-1")
        with self._lock:
            self.requests.append((request.method, raw_path, request.url.query))
        fault = self._take_fault(request.method)
        if fault is not None and fault.mode == "slow":
            # The work is done, the answer is late: a client that gave up on a POST has
            # still created the document, as with a real 1C.
            answer = await self._answer(request, raw_path, None)
            await asyncio.sleep(fault.seconds)
            return answer
        return await self._answer(request, raw_path, fault)

    async def _answer(self, request: Request, raw_path: str, fault: Fault | None) -> Response:
        if fault is not None:
            if fault.mode == "401":
                return Response("Unauthorized", status_code=401)
            elif fault.mode == "login_page":
                page = (
                    "<!DOCTYPE html><html><head><title>1С:Предприятие</title></head>"
                    "<body>Вход в информационную базу</body></html>"
                )
                return Response(page, media_type="text/html; charset=utf-8")
            elif fault.mode == "error":
                return odata_error(500, "-1", "Ошибка при выполнении операции над данными")
        if not self._authorised(request):
            return Response(
                "Unauthorized",
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="1C:Enterprise"'},
            )
        # 1C's web extension reads percent-encoded UTF-8; raw bytes of a Cyrillic name are
        # not a valid URL, so the stand-in refuses them instead of guessing.
        if any(ord(ch) > 127 for ch in raw_path):
            return Response("Bad Request: the URL is not percent-encoded", status_code=400)
        if "+" in request.url.query:
            # OData reads "+" as a plus sign, not a space: a client must send %20.
            return odata_error(400, "14", "Неправильный параметр запроса: '+' в запросе")
        rest = unquote(raw_path.split(PUBLICATION, 1)[1].lstrip("/"))
        params = request.query_params
        if rest == "$metadata":
            return Response(self.metadata_xml(), media_type="application/xml; charset=utf-8")
        m = re.fullmatch(r"([\w]+)(?:\(guid'([0-9a-fA-F-]{36})'\))?", rest)
        if m is None or m.group(1) not in self.sets:
            name = m.group(1) if m else rest
            return odata_error(
                404,
                "9",
                f"Не найден объект с именем {name} в составе стандартного интерфейса OData",
            )
        entity, ref = m.group(1), m.group(2)
        if params.get("$format", "").lower() not in ("json", "application/json"):
            return Response(
                '<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom"/>',
                media_type="application/atom+xml; charset=utf-8",
            )
        if request.method == "POST":
            if ref is not None:
                return odata_error(400, "6", "Метод не поддерживается")
            return await self._create(entity, request)
        if ref is not None:
            found = self.find(entity, ref)
            if found is None:
                return odata_error(404, "10", "Объект не найден")
            return JSONResponse(self._with_meta(entity, found, element=True))
        return self._list(entity, params)

    def _with_meta(self, entity: str, record: dict[str, Any], element: bool) -> dict[str, Any]:
        suffix = "/@Element" if element else ""
        return {"odata.metadata": f"{self.base_url}/$metadata#{entity}{suffix}", **record}

    def _list(self, entity: str, params: Any) -> Response:
        records = self.records(entity)
        schema = SCHEMA.get(entity)
        known = (
            set(schema["fields"]) | set(schema["tables"]) if schema else set(_fields_of(records))
        )
        try:
            top = int(params.get("$top", len(records)))
            skip = int(params.get("$skip", 0))
            if top < 0 or skip < 0:
                raise ValueError("$top, $skip")
            if self.max_page is not None:
                top = min(top, self.max_page)
            if self.ignores_skip:
                skip = 0
            predicate, used = (
                parse_filter(params["$filter"], known) if params.get("$filter") else (None, set())
            )
        except ValueError as exc:
            return odata_error(400, "14", f"Неправильный параметр запроса: {exc}")
        select = [f.strip() for f in params.get("$select", "").split(",") if f.strip()]
        unknown = [f for f in select if f not in known]
        if unknown:
            return odata_error(400, "14", f"Поле {unknown[0]} не найдено")
        orderby = params.get("$orderby", "").strip()
        uniform = getattr(records, "uniform", frozenset())
        if predicate is not None and used <= uniform:
            # Every record answers as the first does: all of them, or none.
            if len(records) and not predicate(records[0]):
                records = []
            predicate = None
        in_order = getattr(records, "sorted_by", None)
        if in_order and orderby in (in_order, f"{in_order} asc"):
            orderby = ""  # already in that order
        if predicate is None and not orderby:
            total = len(records)
            page = records[skip : skip + top]  # a synthetic catalog makes only these
        else:
            chosen = [r for r in records if predicate is None or predicate(r)]
            if orderby:
                field, _, direction = orderby.partition(" ")
                if field not in known:
                    return odata_error(400, "14", f"Поле {field} не найдено")
                chosen.sort(key=lambda r: str(r.get(field, "")), reverse=direction == "desc")
            total = len(chosen)
            page = chosen[skip : skip + top]
        if select:
            page = [{k: r[k] for k in select if k in r} for r in page]
        body: dict[str, Any] = {"odata.metadata": f"{self.base_url}/$metadata#{entity}"}
        if params.get("$inlinecount") == "allpages":
            body["odata.count"] = str(total)
        body["value"] = page
        return JSONResponse(body)

    async def _create(self, entity: str, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return odata_error(400, "14", "Неправильный формат тела запроса")
        if not isinstance(body, dict):
            return odata_error(400, "14", "Неправильный формат тела запроса")
        schema = SCHEMA.get(entity)
        if schema:
            unknown = [k for k in body if k not in schema["fields"] and k not in schema["tables"]]
            if unknown:
                return odata_error(400, "14", f"Поле {unknown[0]} не найдено")
        missing = [f for f in self.required.get(entity, ()) if not body.get(f)]
        if missing:
            return odata_error(
                400, "15", f"Не заполнено обязательное поле {missing[0]}: запись невозможна"
            )
        with self._lock:
            self._numbers[entity] = self._numbers.get(entity, 0) + 1
            record = {
                **body,
                "Ref_Key": str(uuid.uuid4()),
                "DataVersion": "AAAAAQAAAAA=",
                "DeletionMark": False,
                "Number": f"ЗР-{self._numbers[entity]:06d}",
                "Date": body.get("Date") or datetime.now().strftime("%Y-%m-%dT%H:%M:%S"),
                "Posted": False,
            }
            self.records(entity).append(record)
            self.created.append({"entity": entity, **record})
        return JSONResponse(self._with_meta(entity, record, element=True), status_code=201)


def _fields_of(records: Sequence[dict[str, Any]]) -> list[str]:
    return list(records[0]) if len(records) else ["Ref_Key"]


def demo_base(sim: OnecSimulator, clients: Iterable[tuple[str, str, list[str]]]) -> None:
    """Fill a stand-in with a shop's clients ((code, name, phone texts)), a car for every
    other client and an open repair order for every fifth."""
    for i, (code, name, numbers) in enumerate(clients):
        client = make_client(name, numbers, code=code)
        sim.add(CLIENTS, client)
        if i % 2 == 0:
            car = {
                "Ref_Key": str(uuid.uuid4()),
                "DataVersion": "AAAAAQAAAAA=",
                "DeletionMark": False,
                "Code": f"{i + 1:09d}",
                "Description": ["Kia Rio", "Lada Vesta", "Hyundai Solaris", "Skoda Octavia"][i % 4],
                "VIN": f"XTA0000000000{i:04d}",
                "ГосНомер": f"А{100 + i}ВС77",
                "Владелец_Key": client["Ref_Key"],
            }
            sim.add(CARS, car)
            if i % 5 == 0:
                sim.add(
                    ORDERS,
                    {
                        "Ref_Key": str(uuid.uuid4()),
                        "DataVersion": "AAAAAQAAAAA=",
                        "DeletionMark": False,
                        "Number": f"ЗН-{i + 1:06d}",
                        "Date": datetime.now().strftime("%Y-%m-%dT09:00:00"),
                        "Posted": True,
                        "Заказчик_Key": client["Ref_Key"],
                        "Автомобиль_Key": car["Ref_Key"],
                        "Состояние": "В работе",
                        "Комментарий": "",
                    },
                )


def demo_clients() -> list[tuple[str, str, list[str]]]:
    """The demo shop's clients (simulator/shop.py): (code, name, phones)."""
    from beeline_missed.simulator import shop

    return shop.clients()
