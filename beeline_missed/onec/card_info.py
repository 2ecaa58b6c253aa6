"""The client's cars and open repair orders on the call card, from 1C.

A caller whose car is in the workshop is asking "is it ready?": staff should know before
calling back. Asked of 1C when the card opens, with `onec_card_timeout` (2 s): the card never
waits longer, and a 1C that does not answer is one line on the card, nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from beeline_missed.onec.client import OnecClient, OnecError

if TYPE_CHECKING:
    from beeline_missed.config import Settings
    from beeline_missed.store import Register

MAX_SHOWN = 5


@dataclass(frozen=True)
class Workshop:
    """What 1C says of a client: cars as text, open orders {number, date, state}, or the
    reason it could not say."""

    cars: list[str] = field(default_factory=list)
    orders: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"cars": self.cars, "open_orders": self.orders, "error": self.error}


def _day(text: str) -> str:
    try:
        return datetime.fromisoformat(text).strftime("%d.%m.%Y")
    except ValueError:
        return text


def fetch(settings: Settings, client_ref: str) -> Workshop:
    """The client's cars and open orders, within onec_card_timeout."""
    try:
        with OnecClient.from_settings(settings, timeout=settings.onec_card_timeout) as client:
            cars, _ = client.page(
                settings.onec_cars,
                top=20,
                filter=f"{settings.onec_car_owner} eq guid'{client_ref}' and DeletionMark eq false",
                select=list(settings.onec_car_fields),
                what="read the client's cars",
            )
            orders, _ = client.page(
                settings.onec_orders,
                top=50,
                filter=(
                    f"{settings.onec_order_client} eq guid'{client_ref}' and DeletionMark eq false"
                ),
                select=["Number", "Date", settings.onec_order_state],
                orderby="Date desc",
                what="read the client's repair orders",
            )
    except OnecError as exc:
        return Workshop(error=exc.text(russian=True))
    shown_cars = []
    for car in cars[:MAX_SHOWN]:
        parts = [str(car.get(f) or "").strip() for f in settings.onec_car_fields]
        shown_cars.append(", ".join(p for p in parts if p))
    closed = {state.casefold() for state in settings.onec_order_closed_states}
    open_orders = [
        {
            "number": str(order.get("Number") or "").strip(),
            "date": _day(str(order.get("Date") or "")),
            "state": str(order.get(settings.onec_order_state) or "").strip(),
        }
        for order in orders
        if str(order.get(settings.onec_order_state) or "").strip().casefold() not in closed
    ]
    return Workshop([c for c in shown_cars if c], open_orders[:MAX_SHOWN])


def for_call(register: Register, settings: Settings, phone: str | None) -> Workshop | None:
    """The workshop view for a caller; None when 1C is not configured or the caller is not a
    client synced from it."""
    if not (settings.onec_url and settings.onec_user):
        return None
    holder = register.onec.client_of(phone)
    if holder is None or not holder.onec_ref:
        return None
    return fetch(settings, holder.onec_ref)


def card_lines(found: Workshop | None) -> list[tuple[str, str]]:
    """The card's 1C lines («Автомобили», «Заказ-наряд»), as staff read them."""
    if found is None:
        return []
    if found.error:
        return [("1С", f"нет данных: {found.error}")]
    lines = [("Автомобили", "; ".join(found.cars) or "нет в 1С")]
    for order in found.orders:
        lines.append(("Заказ-наряд", f"№ {order['number']} от {order['date']}, {order['state']}"))
    if not found.orders:
        lines.append(("Заказ-наряд", "открытых нет"))
    return lines
