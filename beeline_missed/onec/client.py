"""Client for 1C:Enterprise's standard OData interface (1C:Альфа-Авто's clients, cars, orders).

Every failure becomes one OnecError subclass whose message is one sentence for the user. The
password is sent only in the Basic authorization header and never appears in a message, a
repr or a log line, whatever a server or library echoes back. Entity set names are Cyrillic
(`Catalog_Контрагенты`): they are percent-encoded as UTF-8 in the URL, as 1C expects.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit
from xml.etree import ElementTree

import httpx

from beeline_missed.config import ENV_ONEC_PASSWORD as ENV_PASSWORD
from beeline_missed.config import ENV_ONEC_URL as ENV_URL
from beeline_missed.config import ENV_ONEC_USER as ENV_USER
from beeline_missed.errors import UserError

if TYPE_CHECKING:
    from beeline_missed.config import Settings

MASK = "********"
# Characters left as they are in a query value: OData's own punctuation.
QUERY_SAFE = "$,'()"


class OnecError(UserError):
    """1C refused or failed a request; the message is one sentence for the user."""

    # Worth retrying later (1C down, slow, overloaded) rather than a wrong request.
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        ru: str | None = None,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, ru=ru)
        self.status = status
        self.code = code


class OnecAuthError(OnecError):
    """401/403: the user name or password is wrong, or the user lacks the right."""


class OnecUnreachable(OnecError):
    retryable = True


class OnecTimeout(OnecError):
    retryable = True


class OnecNotJson(OnecError):
    """An HTML page (a login form, a web server's error page) where OData JSON was expected."""


class OnecNotPublished(OnecError):
    """The entity set is not in the base's OData content."""


@dataclass
class Metadata:
    """What `$metadata` says the base publishes: entity set -> its properties, and for each
    property that is a tabular section, its row fields."""

    sets: dict[str, set[str]] = field(default_factory=dict)
    tables: dict[str, dict[str, set[str]]] = field(default_factory=dict)


def _host(url: str) -> str:
    parts = urlsplit(url)
    # Without user:password@, should a URL carry them.
    return (parts.hostname or url) + (f":{parts.port}" if parts.port else "")


def not_configured() -> UserError:
    return UserError(
        f"1C is not configured: set {ENV_URL} (the …/odata/standard.odata address), "
        f"{ENV_USER} and {ENV_PASSWORD}, or onec_url and onec_user in config.toml.",
        ru=f"Связь с 1С не настроена: задайте {ENV_URL}, {ENV_USER} и {ENV_PASSWORD} "
        "(или onec_url и onec_user в config.toml).",
    )


class OnecClient:
    """One connection pool to a 1C base's OData. Use as a context manager or call close()."""

    def __init__(
        self,
        url: str,
        user: str,
        password: str,
        timeout: float = 10.0,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.host = _host(self.url)
        self.user = user
        self.timeout = timeout
        self._password = password
        timeouts = httpx.Timeout(timeout, connect=min(timeout, 5.0))
        self._http = httpx.Client(
            base_url=self.url + "/",
            auth=httpx.BasicAuth(user, password),
            headers={"Accept": "application/json"},
            timeout=timeouts,
            transport=transport,
            follow_redirects=False,
        )

    @classmethod
    def from_settings(cls, settings: Settings, timeout: float | None = None) -> OnecClient:
        if not settings.onec_url or not settings.onec_user:
            raise not_configured()
        return cls(
            settings.onec_url,
            settings.onec_user,
            settings.onec_password or "",
            settings.onec_timeout if timeout is None else timeout,
        )

    def __repr__(self) -> str:
        return f"OnecClient(url={self.url!r}, user={self.user!r}, password={MASK!r})"

    def __enter__(self) -> OnecClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- transport ------------------------------------------------------------------------

    def scrub(self, text: str) -> str:
        """Never let the password reach a message."""
        return text.replace(self._password, MASK) if self._password else text

    @staticmethod
    def path(entity: str, ref: str | None = None) -> str:
        """An entity set's (or object's) path, its Cyrillic name percent-encoded as UTF-8."""
        path = quote(entity, safe="_$")
        if ref is not None:
            path += quote(f"(guid'{ref}')", safe="()'")
        return path

    def _send(
        self,
        method: str,
        path: str,
        what: str,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        if params:
            # Built by hand: `$` stays as it is and a space is %20 (OData reads "+" as a plus).
            path += "?" + "&".join(
                f"{key}={quote(str(value), safe=QUERY_SAFE)}" for key, value in params.items()
            )
        try:
            response = self._http.request(method, path, json=json)
        except httpx.TimeoutException:
            raise OnecTimeout(
                f"1C at {self.host} did not answer within {self.timeout:g} s while trying to "
                f"{what}.",
                ru=f"1С ({self.host}) не ответила за {self.timeout:g} с.",
            ) from None
        except httpx.TransportError as exc:
            reason = self.scrub(str(exc)) or type(exc).__name__
            raise OnecUnreachable(
                f"Cannot reach 1C at {self.host}: {reason}.",
                ru=f"Нет связи с 1С ({self.host}): {reason}.",
            ) from None
        if response.is_success:
            return response
        raise self._error(response, what)

    def _json(self, response: httpx.Response, what: str) -> Any:
        self._refuse_html(response, what)
        try:
            return response.json()
        except ValueError:
            raise OnecNotJson(
                f"1C at {self.host} answered {what} with something that is not JSON.",
                ru=f"1С ({self.host}) ответила не в формате JSON.",
                status=response.status_code,
            ) from None

    def _refuse_html(self, response: httpx.Response, what: str) -> None:
        """A web page (a login form, a proxy's page) where 1C's data was expected."""
        kind = response.headers.get("content-type", "").lower()
        head = response.content[:200].lstrip().lower()
        if "html" in kind or head.startswith((b"<!doctype", b"<html")):
            raise OnecNotJson(
                f"1C at {self.host} answered {what} with a web page, not OData JSON: check that "
                "onec_url is the base's …/odata/standard.odata address and that OData is "
                "published for it.",
                ru=f"1С ({self.host}) ответила веб-страницей, а не данными OData: проверьте "
                "адрес onec_url (…/odata/standard.odata) и публикацию OData.",
                status=response.status_code,
            )

    def _error(self, response: httpx.Response, what: str) -> OnecError:
        status = response.status_code
        if status in (401, 403):
            return OnecAuthError(
                f"1C at {self.host} refused the user «{self.user}» (HTTP {status}): check "
                f"{ENV_USER} and {ENV_PASSWORD}, and that the user may use OData.",
                ru=f"1С ({self.host}) не пускает пользователя «{self.user}»: проверьте имя и "
                "пароль пользователя 1С для OData.",
                status=status,
            )
        code, message = None, ""
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("odata.error"), dict):
            error = body["odata.error"]
            code = str(error.get("code") or "") or None
            text = error.get("message")
            message = str(text.get("value") if isinstance(text, dict) else text or "")
        message = self.scrub(" ".join(message.split())).rstrip(".")
        if status == 404 and message:
            return OnecNotPublished(
                f"1C could not {what}: {message} (add it to the base's OData content).",
                ru=f"1С не отдаёт эти данные: {message} (их нужно добавить в состав OData).",
                status=status,
                code=code,
            )
        if not message:
            kind = response.headers.get("content-type", "").lower()
            if "html" in kind:
                message = "it answered with a web page"
        detail = f": {message}" if message else ""
        error_class = OnecUnreachable if status >= 500 and not message else OnecError
        made = error_class(
            f"1C at {self.host} could not {what} (HTTP {status}){detail}.",
            ru=f"1С ({self.host}) ответила ошибкой (HTTP {status}){detail}.",
            status=status,
            code=code,
        )
        made.retryable = status >= 500 or status == 429
        return made

    # -- reading --------------------------------------------------------------------------

    def metadata(self) -> Metadata:
        """The published entity sets and their properties, from `$metadata`."""
        response = self._send("GET", "$metadata", "read its $metadata")
        self._refuse_html(response, "read its $metadata")
        try:
            root = ElementTree.fromstring(response.content)
            if not root.tag.endswith("Edmx"):
                raise ElementTree.ParseError("not EDMX")
        except ElementTree.ParseError:
            raise OnecNotJson(
                f"1C at {self.host} answered $metadata with something that is not OData "
                "metadata; check onec_url.",
                status=response.status_code,
            ) from None
        types: dict[str, ElementTree.Element] = {}
        for element in root.iter():
            tag = element.tag.rsplit("}", 1)[-1]
            if tag in ("EntityType", "ComplexType") and element.get("Name"):
                types[element.get("Name", "")] = element
        found = Metadata()
        for element in root.iter():
            if element.tag.rsplit("}", 1)[-1] != "EntitySet":
                continue
            name = element.get("Name", "")
            type_name = element.get("EntityType", "").rsplit(".", 1)[-1]
            props: set[str] = set()
            tables: dict[str, set[str]] = {}
            for prop in types.get(type_name, ElementTree.Element("x")).iter():
                if prop.tag.rsplit("}", 1)[-1] not in ("Property", "NavigationProperty"):
                    continue
                prop_name = prop.get("Name", "")
                props.add(prop_name)
                kind = prop.get("Type", "")
                if kind.startswith("Collection("):
                    row_type = kind[len("Collection(") : -1].rsplit(".", 1)[-1]
                    row = types.get(row_type)
                    tables[prop_name] = (
                        {p.get("Name", "") for p in row.iter() if p.tag.endswith("Property")}
                        if row is not None
                        else set()
                    )
            found.sets[name] = props
            found.tables[name] = tables
        return found

    def page(
        self,
        entity: str,
        *,
        top: int | None = None,
        skip: int = 0,
        select: list[str] | None = None,
        filter: str | None = None,
        orderby: str | None = None,
        count: bool = False,
        what: str | None = None,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """One page of an entity set: its records and, with `count`, the total."""
        params: dict[str, Any] = {"$format": "json"}
        if top is not None:
            params["$top"] = top
        if skip:
            params["$skip"] = skip
        if select:
            params["$select"] = ",".join(select)
        if filter:
            params["$filter"] = filter
        if orderby:
            params["$orderby"] = orderby
        if count:
            params["$inlinecount"] = "allpages"
        what = what or f"read {entity}"
        body = self._json(self._send("GET", self.path(entity), what, params), what)
        if not isinstance(body, dict) or not isinstance(body.get("value"), list):
            raise OnecError(f"1C at {self.host} answered {what} without a list of records.")
        total = body.get("odata.count")
        try:
            total = int(total) if total is not None else None
        except (TypeError, ValueError):
            total = None
        return [r for r in body["value"] if isinstance(r, dict)], total

    def pages(
        self,
        entity: str,
        *,
        page_size: int = 1000,
        select: list[str] | None = None,
        filter: str | None = None,
        on_total: Any = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Every record of an entity set, page by page ($top/$skip, in Ref_Key order so that
        pages neither overlap nor miss a record). `on_total(n)` hears the total once.

        A sync removes the clients it does not read, so a read that stops early must fail,
        not end: paging goes on until an empty page (or the total counted), whatever size
        the server gives a page, and a server that answers the same page again, or lists
        fewer records than it counted (some deleted meanwhile shift the pages), is an error."""
        skip = 0
        expected: int | None = None
        first_keys: set[Any] = set()
        while True:
            records, total = self.page(
                entity,
                top=page_size,
                skip=skip,
                select=select,
                filter=filter,
                orderby="Ref_Key",
                count=skip == 0,
            )
            if skip == 0:
                expected = total
                if on_total is not None and total is not None:
                    on_total(total)
            if not records:
                break
            first = records[0].get("Ref_Key")
            if first is not None and first in first_keys:
                raise OnecError(
                    f"1C at {self.host} answered the same page of {entity} again at "
                    f"$skip={skip}: it does not page as OData says; nothing was changed."
                )
            first_keys.add(first)
            yield records
            skip += len(records)
            if expected is not None and skip >= expected:
                break
        if expected is not None and skip < expected:
            raise OnecError(
                f"1C at {self.host} listed {skip} of the {expected} records of {entity} it "
                "counted (some were deleted while they were read, say); nothing was changed: "
                "try again."
            )

    def create(self, entity: str, body: dict[str, Any], what: str | None = None) -> dict[str, Any]:
        """POST a new object; returns it as 1C answers (with `Ref_Key` and `Number`)."""
        what = what or f"create {entity}"
        response = self._send("POST", self.path(entity), what, {"$format": "json"}, json=body)
        made = self._json(response, what)
        if not isinstance(made, dict) or not made.get("Ref_Key"):
            raise OnecError(f"1C at {self.host} did not return the new object after {what}.")
        return made
