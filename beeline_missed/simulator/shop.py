"""The demo shop, once: the staff the simulated PBX lists as abonents, and the clients its
directory and its 1C stand-in hold (demo_data/clients.csv, a 1C-style export).

The PBX simulator, the 1C stand-in, the demo and the tests all take the shop from here, so a
member of staff or a client is changed in one place.
"""

from __future__ import annotations

import csv
import io
from importlib import resources

# A small car-repair shop: reception, two masters, a manager and the owner.
ABONENTS: list[dict[str, str]] = [
    {
        "userId": "9001112201@ip.beeline.ru",
        "phone": "9001112201",
        "extension": "201",
        "firstName": "Анна",
        "lastName": "Смирнова",
        "email": "reception@avtoservis.example.ru",
        "department": "Ресепшн",
    },
    {
        "userId": "9001112202@ip.beeline.ru",
        "phone": "9001112202",
        "extension": "202",
        "firstName": "Игорь",
        "lastName": "Петров",
        "email": "petrov@avtoservis.example.ru",
        "department": "Мастера",
    },
    {
        "userId": "9001112203@ip.beeline.ru",
        "phone": "9001112203",
        "extension": "203",
        "firstName": "Сергей",
        "lastName": "Кузнецов",
        "email": "kuznetsov@avtoservis.example.ru",
        "department": "Мастера",
    },
    {
        "userId": "9001112204@ip.beeline.ru",
        "phone": "9001112204",
        "extension": "204",
        "firstName": "Ольга",
        "lastName": "Иванова",
        "email": "ivanova@avtoservis.example.ru",
        "department": "Менеджеры",
    },
    {
        "userId": "9001112205@ip.beeline.ru",
        "phone": "9001112205",
        "extension": "205",
        "firstName": "Дмитрий",
        "lastName": "Соколов",
        "email": "director@avtoservis.example.ru",
        "department": "Руководство",
    },
]


def user_id(extension: str) -> str:
    """The PBX's id of the abonent with this extension ('201' → '9001112201@ip.beeline.ru')."""
    return next(a["userId"] for a in ABONENTS if a["extension"] == extension)


def full_name(user: str) -> str:
    """«Анна Смирнова» for an abonent's id."""
    abonent = next(a for a in ABONENTS if a["userId"] == user)
    return f"{abonent['firstName']} {abonent['lastName']}"


RECEPTION = user_id("201")
MASTER_1 = user_id("202")
MASTER_2 = user_id("203")
MANAGER = user_id("204")
OWNER = user_id("205")


def clients() -> list[tuple[str, str, list[str]]]:
    """The shop's clients, as its 1C-style CSV lists them: (code, name, phones)."""
    text = clients_csv().read_text("utf-8")
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))[1:]
    return [(row[0], row[1], [cell for cell in row[2:] if cell.strip()]) for row in rows if row]


def clients_csv() -> resources.abc.Traversable:
    """The clients directory file the demo imports (and `clients import` could)."""
    return resources.files("beeline_missed.simulator") / "demo_data" / "clients.csv"
