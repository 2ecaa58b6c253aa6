"""Client for the Beeline Cloud PBX portal API (subscriptions, abonents, call statistics).

Every failure becomes one PbxError subclass whose message is one sentence for the user; the
token is sent only in the X-MPBX-API-AUTH-TOKEN header and never appears in a message or repr.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import httpx

from beeline_missed import timefmt
from beeline_missed.errors import UserError

if TYPE_CHECKING:
    from beeline_missed.config import Settings

TOKEN_HEADER = "X-MPBX-API-AUTH-TOKEN"
SUBSCRIPTION_TYPES = ("BASIC_CALL", "ADVANCED_CALL")
# The statistics API refuses larger pages.
MAX_PAGE_SIZE = 100
# Error codes the PBX uses for a subscription it does not know (seen: GetSubscriptionInfoError).
NOT_FOUND_CODES = {"GetSubscriptionInfoError", "NotFound", "SubscriptionNotFound"}


class PbxError(UserError):
    """The PBX refused or failed a request; the message is one sentence for the user."""

    # Worth retrying later with backoff (network trouble, overload) rather than a wrong request.
    retryable = False

    def __init__(
        self, message: str, *, status: int | None = None, error_code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code


class PbxAuthError(PbxError):
    """401/403: the token is wrong, revoked or lacks the right."""


class PbxUnreachable(PbxError):
    retryable = True


class PbxTimeout(PbxError):
    retryable = True


class PbxServerError(PbxError):
    retryable = True


class PbxNotFound(PbxError):
    """The subscription (or abonent) is unknown to the PBX: expired, deleted or never existed."""


def _host(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url


class PbxClient:
    """One connection pool to the PBX API. Use as a context manager or call close()."""

    def __init__(
        self,
        api_url: str,
        token: str,
        timeout: float = 10.0,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not token:
            raise UserError("No API token: set BEELINE_API_TOKEN or api_token in config.toml.")
        self.api_url = api_url.rstrip("/")
        self.host = _host(self.api_url)
        self._token = token
        # Connecting should fail fast; a slow answer gets the whole budget.
        timeouts = httpx.Timeout(timeout, connect=min(timeout, 5.0))
        self._http = httpx.Client(
            base_url=self.api_url + "/",
            headers={TOKEN_HEADER: token, "Accept": "application/json"},
            timeout=timeouts,
            transport=transport,
            follow_redirects=False,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> PbxClient:
        return cls(settings.api_url, settings.require_token(), settings.api_timeout)

    def __repr__(self) -> str:
        return f"PbxClient(api_url={self.api_url!r}, token='********')"

    def __enter__(self) -> PbxClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- transport ------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        """Never let the token reach a message, whatever a server or library echoes back."""
        return text.replace(self._token, "********") if self._token else text

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        what: str,
    ) -> Any:
        try:
            response = self._http.request(method, path, params=params, json=json)
        except httpx.TimeoutException:
            raise PbxTimeout(
                f"The PBX at {self.host} did not answer in time while trying to {what}."
            ) from None
        except httpx.TransportError as exc:
            reason = self._scrub(str(exc)) or type(exc).__name__
            raise PbxUnreachable(f"Cannot reach the PBX at {self.host}: {reason}.") from None
        if response.is_success:
            if not response.content.strip():
                return None
            try:
                return response.json()
            except ValueError:
                raise PbxError(
                    f"The PBX at {self.host} answered {what} with something that is not JSON.",
                    status=response.status_code,
                ) from None
        raise self._error(response, what)

    def _error(self, response: httpx.Response, what: str) -> PbxError:
        status = response.status_code
        code: str | None = None
        description = ""
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            code = str(body.get("errorCode") or "") or None
            description = str(body.get("description") or "").strip().rstrip(".")
        description = self._scrub(description)
        detail = f" ({code}: {description})" if code and description else ""
        if not detail and (code or description):
            detail = f" ({code or description})"
        if status in (401, 403):
            return PbxAuthError(
                f"The PBX rejected the API token (HTTP {status}); check BEELINE_API_TOKEN.",
                status=status,
                error_code=code,
            )
        if status == 404 or code in NOT_FOUND_CODES:
            return PbxNotFound(
                f"The PBX could not {what}: it is unknown or has expired{detail}.",
                status=status,
                error_code=code,
            )
        if status >= 500:
            return PbxServerError(
                f"The PBX at {self.host} failed to {what}: HTTP {status}{detail}.",
                status=status,
                error_code=code,
            )
        return PbxError(
            f"The PBX refused to {what}: HTTP {status}{detail}.", status=status, error_code=code
        )

    # -- subscriptions --------------------------------------------------------------------

    def subscribe(
        self,
        pattern: str | None,
        expires: int,
        subscription_type: str,
        url: str,
    ) -> dict[str, Any]:
        """PUT subscription. Returns {"subscriptionId", "expires"} with the expires GRANTED."""
        body: dict[str, Any] = {
            "expires": int(expires),
            "subscriptionType": subscription_type,
            "url": url,
        }
        if pattern:
            body["pattern"] = pattern
        target = f"subscribe {pattern}" if pattern else "subscribe the whole PBX"
        answer = self._request("PUT", "subscription", json=body, what=target)
        if not isinstance(answer, dict) or not answer.get("subscriptionId"):
            raise PbxError(f"The PBX answered '{target}' without a subscriptionId.")
        granted = answer.get("expires")
        try:
            # Keep what the PBX granted; only when it says nothing do we assume what we asked.
            granted = int(granted) if granted is not None else int(expires)
        except (TypeError, ValueError):
            granted = int(expires)
        return {"subscriptionId": str(answer["subscriptionId"]), "expires": granted}

    def get_subscription(self, subscription_id: str) -> dict[str, Any]:
        answer = self._request(
            "GET",
            "subscription",
            params={"subscriptionId": subscription_id},
            what=f"look up subscription {subscription_id}",
        )
        if not isinstance(answer, dict):
            raise PbxNotFound(f"The PBX does not know subscription {subscription_id}.")
        return answer

    def unsubscribe(self, subscription_id: str) -> None:
        self._request(
            "DELETE",
            "subscription",
            params={"subscriptionId": subscription_id},
            what=f"delete subscription {subscription_id}",
        )

    # -- abonents -------------------------------------------------------------------------

    def abonents(self) -> list[dict[str, Any]]:
        answer = self._request("GET", "abonents", what="list the abonents")
        if not isinstance(answer, list):
            raise PbxError("The PBX answered the abonents list with something that is not a list.")
        return [a for a in answer if isinstance(a, dict)]

    def abonent(self, pattern: str) -> dict[str, Any]:
        answer = self._request("GET", f"abonents/{pattern}", what=f"find abonent {pattern}")
        if not isinstance(answer, dict):
            raise PbxNotFound(f"The PBX does not know abonent {pattern}.")
        return answer

    def call(self, abonent: str, number: str) -> Any:
        """Click-to-call: POST abonents/{abonent}/call?phoneNumber=NUMBER. The PBX rings the
        abonent, then the number. What it answers is not known (seen: nothing, or an id); it
        is returned as is."""
        return self._request(
            "POST",
            f"abonents/{quote(abonent, safe='@')}/call",
            params={"phoneNumber": number},
            what=f"call {number} from abonent {abonent}",
        )

    # -- call statistics ------------------------------------------------------------------

    def statistics(
        self,
        date_from: datetime | str,
        date_to: datetime | str,
        page: int = 0,
        page_size: int = MAX_PAGE_SIZE,
        user_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """One page of GET v2/statistics; an empty list means there are no more pages."""
        params: dict[str, Any] = {
            "dateFrom": _stat_time(date_from),
            "dateTo": _stat_time(date_to),
            "page": int(page),
            "pageSize": max(1, min(int(page_size), MAX_PAGE_SIZE)),
        }
        if user_id:
            params["userId"] = user_id
        answer = self._request("GET", "v2/statistics", params=params, what="read call statistics")
        if answer is None:
            return []
        if not isinstance(answer, list):
            raise PbxError("The PBX answered the call statistics with something not a list.")
        return [item for item in answer if isinstance(item, dict)]

    def iter_statistics(
        self,
        date_from: datetime | str,
        date_to: datetime | str,
        page_size: int = MAX_PAGE_SIZE,
        user_id: str | None = None,
        first_page: int = 0,
        max_pages: int = 10_000,
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield page after page until an empty one; max_pages guards against a PBX that loops.

        A short page does not end it: the PBX may cap pageSize below what we asked."""
        size = max(1, min(int(page_size), MAX_PAGE_SIZE))
        for page in range(first_page, first_page + max_pages):
            items = self.statistics(date_from, date_to, page, size, user_id)
            if not items:
                return
            yield items


def _stat_time(value: datetime | str) -> str:
    if isinstance(value, datetime):
        return timefmt.to_stored(value)
    return value
