"""Settings: built-in defaults < config.toml < environment < command-line flags."""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from beeline_missed.errors import UserError

DEFAULT_API_URL = "https://cloudpbx.beeline.ru/apis/portal"

# Environment variables that are part of the public interface.
ENV_API_URL = "BEELINE_API_URL"
ENV_API_TOKEN = "BEELINE_API_TOKEN"
ENV_HOME = "BEELINE_MISSED_HOME"
ENV_DB = "BEELINE_MISSED_DB"
ENV_PUBLIC_URL = "BEELINE_MISSED_PUBLIC_URL"
# 1C:Альфа-Авто over 1C's standard OData interface (onec.py).
ENV_ONEC_URL = "BEELINE_MISSED_1C_URL"
ENV_ONEC_USER = "BEELINE_MISSED_1C_USER"
ENV_ONEC_PASSWORD = "BEELINE_MISSED_1C_PASSWORD"


@dataclass(frozen=True)
class StaffMember:
    """A `[staff.<login>]` table: who a login is to people and to the PBX."""

    login: str
    name: str | None = None
    # The PBX abonent that rings on this person's desk: a phone, an extension or a userId.
    abonent: str | None = None

    @property
    def display(self) -> str:
        return self.name or self.login


# The number format the PBX wants in click-to-call (`POST abonents/{abonent}/call`): public
# clients disagree (10 digits, 8…, +7…), so it is a setting. e164: +79161234567;
# digits: 79161234567; national: 89161234567 (Russian numbers; others stay E.164);
# ten: 9161234567 (Russian numbers; others stay E.164).
CALL_NUMBER_FORMATS = ("e164", "digits", "national", "ten")


@dataclass(frozen=True)
class Settings:
    """The effective settings. Field names are the keys of config.toml."""

    home: Path
    db: Path
    api_url: str = DEFAULT_API_URL
    api_token: str | None = None
    public_url: str | None = None
    # Daemon
    listen: str = "127.0.0.1:8088"
    settle: float = 10.0
    # A session still ringing with no event for this long lost its release: declare it missed.
    stale_after: float = 3600.0
    max_body_bytes: int = 256 * 1024
    # The hook on the internet: seconds a client has to send a request's headers, then its
    # body, and how many posts may be handled at once (more get 503; idle sockets do not count).
    header_timeout: float = 10.0
    body_timeout: float = 20.0
    max_events_in_flight: int = 200
    subscription_expires: int = 3600
    subscription_type: str = "BASIC_CALL"
    # Renew when less than this share of the granted lifetime is left.
    renew_fraction: float = 0.25
    check_interval: float = 300.0
    api_timeout: float = 10.0
    # Staff
    user: str | None = None
    timezone: str | None = None
    journal: str | None = None
    # Statistics reconciliation and auto-closing (see docs: the values are uncertain).
    reconcile_interval: float = 600.0
    reconcile_tolerance: float = 120.0
    statistics_missed_statuses: tuple[str, ...] = ("MISSED",)
    auto_close: bool = True
    # Who is a person and what is the PBX's own service, by target id (regular expressions,
    # case-insensitive). The id forms are known from public integrations only: docs, "Who is a
    # person". A voice menu's or queue's answer does not make a call answered.
    voice_menu_targets: tuple[str, ...] = ("_vxml",)
    queue_targets: tuple[str, ...] = ("^MPBX",)
    hunt_group_targets: tuple[str, ...] = ("_hg_",)
    voicemail_targets: tuple[str, ...] = ("voicemail",)
    person_targets: tuple[str, ...] = (r"^SIP[^@]*@mpbx\.sip\.beeline\.ru$",)
    # A target neither on the abonent list nor a service: "service" (its answer does not count;
    # the list is refreshed at once) or "person".
    unknown_targets: str = "service"
    abonents_refresh_interval: float = 3600.0
    # -- reconcile, auto-close, hours, notifications --
    # Each run re-reads this much before the last reconciled moment: a call still ringing at
    # the previous run reaches the statistics only once it ended.
    reconcile_overlap: float = 900.0
    # The very first run (nothing reconciled yet) looks back this far.
    reconcile_lookback: float = 86400.0
    # Who answered, as staff read it: abonent (userId, phone or extension) -> name. Abonents
    # not listed are named by the PBX's abonent list (last name).
    staff_names: dict[str, str] = field(default_factory=dict)
    # Working hours per weekday (mon..sun): "09:00-19:00", several ranges comma-separated,
    # "" = closed. Empty table: no hours, nothing is marked outside hours.
    working_hours: dict[str, str] = field(default_factory=dict)
    # [staff.<login>] tables: display name and PBX abonent of each member of staff. Their
    # abonents also name who answered (staff_names, when it does not say otherwise).
    staff: dict[str, StaffMember] = field(default_factory=dict)
    # Click-to-call: the client's number as the PBX is sent it (CALL_NUMBER_FORMATS).
    call_number_format: str = "e164"
    # A claim («Взять в работу») lapses after this many seconds.
    claim_ttl: float = 1800.0
    holidays: tuple[str, ...] = ()
    telegram_token: str | None = None
    telegram_chat_id: str | None = None
    telegram_api_url: str = "https://api.telegram.org"
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    mail_from: str | None = None
    mail_to: tuple[str, ...] = ()
    notify_timeout: float = 10.0
    # -- 1C:Альфа-Авто (standard OData). Names differ between releases: all are settings. --
    onec_url: str | None = None
    onec_user: str | None = None
    onec_password: str | None = None
    onec_timeout: float = 30.0
    # The card asks 1C for the client's cars and orders with this short timeout.
    onec_card_timeout: float = 2.0
    onec_sync_interval: float = 900.0
    onec_page_size: int = 1000
    onec_clients: str = "Catalog_Контрагенты"
    onec_client_name: str = "Description"
    onec_contacts: str = "КонтактнаяИнформация"
    onec_contact_type: str = "Тип"
    onec_phone_type: str = "Телефон"
    onec_phone_fields: tuple[str, ...] = ("Представление", "НомерТелефона")
    # «Записаться» creates this document in 1C: the client and comment fields, and the shop's
    # fixed fields (organisation, department, workshop, repair kind… as its base requires).
    onec_bookings: str = "Document_ЗаявкаНаРемонт"
    onec_booking_client: str = "Заказчик_Key"
    onec_booking_comment: str = "Комментарий"
    onec_booking_fields: dict[str, str] = field(default_factory=dict)
    onec_booking_timeout: float = 5.0
    # The daemon retries bookings 1C could not take this often (seconds).
    onec_booking_retry: float = 60.0
    # The card shows the client's cars (found by their owner field) and open repair orders
    # (any state but those listed as closed).
    onec_cars: str = "Catalog_Автомобили"
    onec_car_owner: str = "Владелец_Key"
    onec_car_fields: tuple[str, ...] = ("Description", "ГосНомер", "VIN")
    onec_orders: str = "Document_ЗаказНаряд"
    onec_order_client: str = "Заказчик_Key"
    onec_order_state: str = "Состояние"
    onec_order_closed_states: tuple[str, ...] = ("Закрыт", "Выполнен", "Отменен")
    # -- deadlines, escalation, honest auto-close --
    # An answered call closes a case only after this many seconds of talk (answer to release);
    # a shorter one is recorded on the case as an attempt. 0: any answer closes.
    auto_close_min_talk: float = 10.0
    # Auto-close waits this long for the release of an answered call (its talk time); after it
    # the talk time is unknown and the call is recorded as an attempt.
    auto_close_release_wait: float = 3600.0
    # Minutes a case may wait for its callback: the list colours by them, reports count by them.
    callback_deadlines: tuple[float, ...] = (15.0, 60.0)
    # Minutes (working time) after which a case still open is sent once to the managers'
    # channels (Telegram / e-mail above). 0: off.
    escalate_after: float = 0.0
    # Seconds between the daemon's checks for cases past escalate_after.
    escalate_interval: float = 60.0

    @property
    def config_file(self) -> Path:
        return self.home / "config.toml"

    def masked_token(self) -> str | None:
        return mask(self.api_token)

    def require_token(self) -> str:
        if not self.api_token:
            raise UserError(
                f"No API token: set {ENV_API_TOKEN} or api_token in {self.config_file}."
            )
        return self.api_token


def mask(secret: str | None) -> str | None:
    """Show only whether a secret is set, never any of it."""
    return "********" if secret else None


def default_home() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("beeline-missed", appauthor=False))


_KNOWN = {f.name for f in fields(Settings)} - {"home", "db"}

# The longest any duration setting may be: beyond it the date arithmetic overflows, and no
# grace period, timeout or interval is sensibly longer than a year.
MAX_SECONDS = 366 * 86400.0
# (lowest, highest) for each number; durations not listed here are 0 .. MAX_SECONDS.
LIMITS: dict[str, tuple[float, float]] = {
    "max_body_bytes": (1, 1 << 30),
    "subscription_expires": (1, MAX_SECONDS),
    "renew_fraction": (0.01, 1),
    # 0 would make a loop that asks the PBX or waits on a socket spin or give up at once.
    "check_interval": (1, MAX_SECONDS),
    "reconcile_interval": (1, MAX_SECONDS),
    "abonents_refresh_interval": (1, MAX_SECONDS),
    "api_timeout": (0.1, 3600),
    "notify_timeout": (0.1, 3600),
    "smtp_port": (1, 65535),
    "onec_timeout": (0.1, 3600),
    "onec_card_timeout": (0.1, 60),
    "onec_sync_interval": (10, MAX_SECONDS),
    "onec_page_size": (1, 100_000),
    "onec_booking_timeout": (0.1, 600),
    "onec_booking_retry": (1, MAX_SECONDS),
    "claim_ttl": (60, MAX_SECONDS),
    "auto_close_release_wait": (1, MAX_SECONDS),
    # Minutes, not seconds: a year of them at most.
    "callback_deadlines": (1, MAX_SECONDS / 60),
    "escalate_after": (0, MAX_SECONDS / 60),
    "escalate_interval": (1, MAX_SECONDS),
}
# Text settings that take one of a few words; anything else is a typo, not a new meaning.
CHOICES: dict[str, tuple[str, ...]] = {
    "unknown_targets": ("service", "person"),
    "call_number_format": CALL_NUMBER_FORMATS,
}
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def check_text(value: str, where: str) -> str:
    """Text from the command line or the environment that is not UTF-8 arrives with lone
    surrogates; it could be neither stored nor printed, so it is refused where it enters."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        shown = value.encode("utf-8", "backslashreplace").decode("ascii", "replace")
        raise UserError(f"{where} is not valid UTF-8 text: {shown!r}.") from None
    return value


def _number(name: str, value: Any, kind: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(value)
    number = float(value)  # "nan", "inf" and "1e999" parse; the range check below refuses them
    low, high = LIMITS.get(name, (0, MAX_SECONDS))
    if not (math.isfinite(number) and low <= number <= high):
        raise ValueError(value)
    if kind == "int":
        if number != int(number):
            raise ValueError(value)
        return int(number)
    return number


def show_number(number: float) -> str:
    """31622400, not 3.16224e+07: bounds are read by people."""
    return str(int(number)) if number == int(number) else f"{number:g}"


def expected(name: str) -> str:
    """What a setting takes, as the end of a sentence."""
    kind = Settings.__dataclass_fields__[name].type
    if name == "staff":
        return "tables [staff.LOGIN] with name and abonent (texts)"
    if kind in ("float", "int"):
        low, high = LIMITS.get(name, (0, MAX_SECONDS))
        whole = "a whole number" if kind == "int" else "a number"
        return f"{whole} from {show_number(low)} to {show_number(high)}"
    if kind == "bool":
        return "true or false"
    if kind.startswith("dict"):
        return "a table of texts"
    if kind == "tuple[float, ...]":
        low, high = LIMITS.get(name, (0, MAX_SECONDS))
        return f"a list of numbers from {show_number(low)} to {show_number(high)}, ascending"
    if kind.startswith("tuple"):
        return "a list of texts"
    if name in CHOICES:
        return "one of: " + ", ".join(CHOICES[name])
    return "text"


def _coerce(name: str, value: Any, source: str) -> Any:
    """The one check every setting passes, from the file, the environment or a flag."""
    kind = Settings.__dataclass_fields__[name].type
    try:
        if name == "staff":
            return _staff(value, source)
        if kind in ("float", "int"):
            return _number(name, value, kind)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            word = str(value).strip().lower() if isinstance(value, str | int) else None
            if word in TRUE_WORDS:
                return True
            if word in FALSE_WORDS:
                return False
            raise ValueError(value)
        if kind.startswith("dict"):
            if not isinstance(value, dict):
                raise TypeError(name)
            return {str(k): _scalar_text(v) for k, v in value.items()}
        if kind == "tuple[float, ...]":
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list | tuple) or not value:
                raise TypeError(name)
            numbers = tuple(float(_number(name, v, "float")) for v in value)
            if list(numbers) != sorted(set(numbers)):
                raise ValueError(value)
            return numbers
        if kind.startswith("tuple"):
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list | tuple):
                raise TypeError(name)
            return tuple(_scalar_text(v) for v in value)
        if value is None:
            return None
        text = _scalar_text(value)
        if name in CHOICES and text not in CHOICES[name]:
            raise ValueError(text)
        return text
    except (TypeError, ValueError):
        if source == COMMAND_LINE:
            option = "--" + name.replace("_", "-")
            raise UserError(f"{option} must be {expected(name)}, not {value!r}.") from None
        raise UserError(
            f"Setting {name!r} in {source} has a bad value: {value!r} (it takes {expected(name)})."
        ) from None


def _scalar_text(value: Any) -> str:
    # A number is fine where text is expected (a chat id, an extension); a float, a bool, a
    # table or a list there is a mistake, not something to turn into text.
    if isinstance(value, str):
        value.encode("utf-8")  # UnicodeEncodeError (a ValueError) for text that is not UTF-8
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise TypeError(value)


COMMAND_LINE = "the command line"
STAFF_KEYS = ("name", "abonent")


def _staff(value: Any, source: str) -> dict[str, StaffMember]:
    """`[staff.<login>]` tables; a wrong key or value is named with its table."""
    if not isinstance(value, dict):
        raise TypeError("staff")
    members: dict[str, StaffMember] = {}
    for login, table in value.items():
        where = f"Setting staff.{login} in {source}"
        if not str(login).strip():
            raise UserError(f"A [staff] table in {source} has an empty login.")
        if not isinstance(table, dict):
            raise UserError(f"{where} must be a table with name and abonent.")
        for key in table:
            if key not in STAFF_KEYS:
                raise UserError(f"{where} has an unknown key {key!r}; it takes name and abonent.")
        texts: dict[str, str | None] = {}
        for key in STAFF_KEYS:
            raw = table.get(key)
            try:
                text = None if raw is None else _scalar_text(raw).strip()
            except (TypeError, ValueError):
                raise UserError(f"{where}: {key} must be text, not {raw!r}.") from None
            texts[key] = text or None
        members[str(login)] = StaffMember(str(login), texts["name"], texts["abonent"])
    return members


def staff_member(settings: Settings, user: str) -> StaffMember | None:
    """The staff table of `user`: by login, else by display name (any case), else None."""
    if user in settings.staff:
        return settings.staff[user]
    key = user.strip().casefold()
    for member in settings.staff.values():
        if member.login.casefold() == key or (member.name and member.name.casefold() == key):
            return member
    return None


def display_name(settings: Settings, user: str | None) -> str | None:
    """A login as people read it: the staff table's name, else the login itself."""
    if not user:
        return user
    member = settings.staff.get(user)
    return member.display if member else user


def _path(value: Any, where: str) -> Path:
    if isinstance(value, Path):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{where} must be a file path (text), not {value!r}.")
    return Path(check_text(value, where)).expanduser()


def _db(value: Any, where: str) -> Path:
    """The register: a SQLite file's path, or a postgresql:// URL (engine.PostgresURL, which
    stands in for the path and never prints its password)."""
    from beeline_missed.store.engine import PostgresURL, is_url

    if isinstance(value, str) and is_url(value.strip()):
        return PostgresURL(check_text(value.strip(), where))  # type: ignore[return-value]
    return _path(value, where)


def _unknown_key(key: str, path: Path) -> UserError:
    import difflib

    close = difflib.get_close_matches(key, sorted(_KNOWN | {"db"}), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "."
    return UserError(f"Unknown setting {key!r} in {path}{hint}")


def read_config_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"Config file {path} is not valid TOML: {exc}.") from None
    except UnicodeDecodeError:
        raise UserError(f"Config file {path} is not UTF-8 text; save it as UTF-8.") from None
    except OSError as exc:
        raise UserError(f"Cannot read config file {path}: {exc.strerror}.") from None
    return data


def load(
    overrides: dict[str, Any] | None = None, environ: dict[str, str] | None = None
) -> Settings:
    """Resolve the settings. `overrides` are command-line flags (None values are ignored)."""
    env = os.environ if environ is None else environ
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if overrides.get("home"):
        home = _path(overrides["home"], "--home")
    elif env.get(ENV_HOME):
        home = _path(env[ENV_HOME], ENV_HOME)
    else:
        home = default_home()
    config_path = home / "config.toml"
    data = read_config_file(config_path)

    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in _KNOWN:
            values[key] = _coerce(key, value, str(config_path))
        elif key != "db":
            raise _unknown_key(key, config_path)
    if data.get("onec_password"):
        check_private(config_path, "onec_password")
    env_map = {
        ENV_API_URL: "api_url",
        ENV_API_TOKEN: "api_token",
        ENV_PUBLIC_URL: "public_url",
        ENV_ONEC_URL: "onec_url",
        ENV_ONEC_USER: "onec_user",
        ENV_ONEC_PASSWORD: "onec_password",
    }
    for var, key in env_map.items():
        if env.get(var):
            values[key] = _coerce(key, env[var], f"the environment variable {var}")
    for key, value in overrides.items():
        if key in _KNOWN:
            values[key] = _coerce(key, value, COMMAND_LINE)

    if overrides.get("db"):
        db = _db(overrides["db"], "--db")
    elif env.get(ENV_DB):
        db = _db(env[ENV_DB], ENV_DB)
    elif "db" in data:
        db = _db(data["db"], f"Setting 'db' in {config_path}")
    else:
        db = home / "register.sqlite"
    values["api_url"] = str(values.get("api_url", DEFAULT_API_URL)).rstrip("/")
    if values.get("onec_url"):
        values["onec_url"] = str(values["onec_url"]).rstrip("/")
    # A staff member's abonent names who answered, unless staff_names says otherwise.
    named = {m.abonent: m.display for m in values.get("staff", {}).values() if m.abonent}
    if named:
        values["staff_names"] = {**named, **values.get("staff_names", {})}
    return Settings(home=home, db=db, **values)


def with_overrides(settings: Settings, **changes: Any) -> Settings:
    """Command-line flags over loaded settings, checked as the file's values are."""
    checked = {
        key: _coerce(key, value, COMMAND_LINE) if key in _KNOWN else value
        for key, value in changes.items()
        if value is not None
    }
    return replace(settings, **checked)


SECRETS = {"api_token", "telegram_token", "smtp_password", "onec_password"}


def check_private(path: Path, key: str) -> None:
    """A password is read from a file only when nobody else can read that file."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & 0o077:
        raise UserError(
            f"{path} holds {key} but others can read it (mode {mode & 0o777:o}); "
            f"run `chmod 600 {path}` or set the password in the environment instead."
        )


def effective(settings: Settings) -> dict[str, Any]:
    """The settings as shown by `config show`: the token masked."""
    shown: dict[str, Any] = {}
    for f in fields(Settings):
        value = getattr(settings, f.name)
        if f.name in SECRETS:
            value = mask(value)
        elif isinstance(value, Path) or f.name == "db":
            value = str(value)  # a PostgreSQL URL prints with its password masked
        elif isinstance(value, tuple):
            value = list(value)
        elif f.name == "staff":
            value = {k: {"name": m.name, "abonent": m.abonent} for k, m in value.items()}
        shown[f.name] = value
    # Which engine holds the register: 'sqlite' (a file) or 'postgresql' (a server).
    shown["engine"] = "postgresql" if not isinstance(settings.db, Path) else "sqlite"
    return shown


CONFIG_TEMPLATE = """\
# beeline-missed configuration. Environment variables override these values,
# and command-line flags override both. Remove the leading '#' to set a value.

# Base URL of the Beeline Cloud PBX portal API (BEELINE_API_URL).
# api_url = "https://cloudpbx.beeline.ru/apis/portal"

# The X-MPBX-API-AUTH-TOKEN value (BEELINE_API_TOKEN). Keep this file mode 0600.
# api_token = ""

# Full URL the PBX posts events to, secret path included (BEELINE_MISSED_PUBLIC_URL).
# public_url = "https://shop.example.ru/beeline/hook/CHANGE-ME-long-random-secret"

# Path of the SQLite register (BEELINE_MISSED_DB); default: register.sqlite here.
# db = "/var/lib/beeline-missed/register.sqlite"
# Or a PostgreSQL register (README: "Outgrowing one machine"); the password goes in
# PGPASSWORD or ~/.pgpass rather than here.
# db = "postgresql://beeline@db.example.ru/beeline_missed"

# Address the daemon listens on, and the grace period (seconds) before an
# unanswered call is declared missed.
# listen = "127.0.0.1:8088"
# settle = 10

# The hook's limits against slow or hostile clients: seconds to send a request's
# headers and then its body (else 408 and the connection is closed), the largest
# body in bytes (else 413), and how many posts are handled at once (else 503;
# idle or stalled connections do not count).
# header_timeout = 10
# body_timeout = 20
# max_body_bytes = 262144
# max_events_in_flight = 200

# Subscription lifetime asked of the PBX (it may grant less) and type.
# subscription_expires = 3600
# subscription_type = "BASIC_CALL"

# Name written as "who called back"; default: the OS login.
# user = "Иванов"

# Time zone for showing times and for reports; default: this machine's.
# timezone = "Europe/Moscow"

# Appointment journal opened by «Записаться»: a URL or a command, with {phone}
# and {client} placeholders (and {booking_number}, {booking_ref} of the booking
# just created in 1C, when 1C is configured).
# journal = "https://1c.example.ru/alfa/#e1cib/list/Документ.ЗаписьНаРемонт?phone={phone}"

# Statistics reconciliation: how often (seconds), how far apart a call and a
# statistics record may be to count as one (seconds), and which statistics
# statuses mean "missed" (the published values are uncertain).
# reconcile_interval = 600
# reconcile_tolerance = 120
# statistics_missed_statuses = ["MISSED"]

# Close open missed calls when the client gets through later or staff reach them.
# auto_close = true

# Who is a person: only a person's answer makes a call answered. The PBX's own
# services (voice menu, call-centre queue, hunt group pilot, voicemail) answer calls
# too; they are told by their target ids (regular expressions, case-insensitive; the
# forms come from public integrations, so check them against your PBX's events).
# voice_menu_targets = ["_vxml"]
# queue_targets = ["^MPBX"]
# hunt_group_targets = ["_hg_"]
# voicemail_targets = ["voicemail"]
# People are the PBX's abonents (GET abonents, refreshed every
# abonents_refresh_interval seconds and when an unknown target shows up) and targets
# matching person_targets. A target that is neither: "service" (its answer does not
# count) or "person".
# person_targets = ['^SIP[^@]*@mpbx\\.sip\\.beeline\\.ru$']
# unknown_targets = "service"
# abonents_refresh_interval = 3600

# Reconciliation re-reads this many seconds before the last reconciled moment
# (calls still ringing then), and its first run ever looks this far back.
# reconcile_overlap = 900
# reconcile_lookback = 86400

# Who answered, as written in auto-closed cards: abonent (userId, phone or
# extension) = name. Others are named from the PBX's abonent list (last name).
# staff_names."201" = "Смирнова"
# staff_names."9001112202" = "Петров"

# Click-to-call sends the client's number in this form (public clients disagree):
# "e164" +79161234567, "digits" 79161234567, "national" 89161234567,
# "ten" 9161234567 (the last two for Russian numbers only).
# call_number_format = "e164"

# A claim («Взять в работу») lapses after this many seconds (30 minutes).
# claim_ttl = 1800

# Working hours per weekday (mon tue wed thu fri sat sun), several ranges
# comma-separated, "" or a missing day for a day off; calls outside them and on holidays are
# marked "outside hours" (reports can filter them). No table: nothing is marked.
# working_hours.mon = "09:00-19:00"
# working_hours.tue = "09:00-19:00"
# working_hours.wed = "09:00-19:00"
# working_hours.thu = "09:00-19:00"
# working_hours.fri = "09:00-13:00, 14:00-18:00"
# working_hours.sat = "10:00-15:00"
# holidays = ["2026-12-31", "2027-01-01"]

# Notifications for every new missed call (optional; failures never block intake).
# Telegram: the bot token from @BotFather and the chat to post to.
# telegram_token = ""
# telegram_chat_id = ""
# telegram_api_url = "https://api.telegram.org"
# E-mail over SMTP (smtp_starttls = true for port 587).
# smtp_host = "smtp.example.ru"
# smtp_port = 25
# smtp_user = ""
# smtp_password = ""
# smtp_starttls = false
# mail_from = "missed@example.ru"
# mail_to = ["manager@example.ru"]
# notify_timeout = 10

# Honest auto-close: an answered call closes the client's case only after this
# many seconds of talk, from answer to release (voicemail or an instant hang-up
# does not); a shorter one stays on the case as an attempt. 0: any answer closes.
# auto_close_min_talk = 10
# Auto-close waits this many seconds for the end of an answered call; a call whose
# end is never heard is recorded as an attempt with the talk time unknown.
# auto_close_release_wait = 3600

# Callback deadlines in minutes, ascending: the list colours a case's age by them
# (within the first: green; past the last: red) and reports count callbacks within
# each. Ages count working hours only when working_hours are set.
# callback_deadlines = [15, 60]
# Escalation: a case still open this many minutes (working time) is sent once to
# the Telegram / e-mail channels above, only within working hours. 0: off.
# escalate_after = 0
# escalate_interval = 60

# 1C:Альфа-Авто over 1C's standard OData interface (platform 8.3.5 or later; 8.2
# bases have none: use `clients import` instead). The address of the publication's
# OData (BEELINE_MISSED_1C_URL), a 1C user allowed to use it (BEELINE_MISSED_1C_USER)
# and its password: BEELINE_MISSED_1C_PASSWORD, or onec_password here only while this
# file is mode 0600. `beeline-missed onec check` says what the base publishes.
# onec_url = "https://1c.example.ru/alfa/odata/standard.odata"
# onec_user = "odata"
# onec_password = ""
# Seconds to wait for 1C (the card waits onec_card_timeout at most), how often the
# daemon syncs the clients directory (seconds), and records read per request.
# onec_timeout = 30
# onec_card_timeout = 2
# onec_sync_interval = 900
# onec_page_size = 1000
# Names in the base (Альфа-Авто defaults; releases differ, `onec check` tells): the
# clients catalog, its name field, its contact information table, the column that
# tells a row's type, the type of phone rows and the columns holding the number.
# onec_clients = "Catalog_Контрагенты"
# onec_client_name = "Description"
# onec_contacts = "КонтактнаяИнформация"
# onec_contact_type = "Тип"
# onec_phone_type = "Телефон"
# onec_phone_fields = ["Представление", "НомерТелефона"]
# «Записаться» creates a booking in 1C for a client synced from it: the document,
# its client and comment fields, and the fields your base requires filled, with
# fixed values (Ref_Key guids from your base; `onec check` lists what is missing).
# A booking 1C cannot take is kept, retried by the daemon every onec_booking_retry
# seconds, and listed by `status`.
# onec_bookings = "Document_ЗаявкаНаРемонт"
# onec_booking_client = "Заказчик_Key"
# onec_booking_comment = "Комментарий"
# onec_booking_fields."Организация_Key" = "00000000-0000-0000-0000-000000000000"
# onec_booking_fields."ВидРемонта_Key" = "00000000-0000-0000-0000-000000000000"
# onec_booking_fields."Цех_Key" = "00000000-0000-0000-0000-000000000000"
# onec_booking_timeout = 5
# onec_booking_retry = 60
# The card shows the client's cars and open repair orders, asked of 1C when it opens
# (never waiting more than onec_card_timeout): the cars catalog, the field naming
# the owner and the fields shown; the orders document, its client and state
# fields, and the states that mean closed (releases differ: check yours).
# onec_cars = "Catalog_Автомобили"
# onec_car_owner = "Владелец_Key"
# onec_car_fields = ["Description", "ГосНомер", "VIN"]
# onec_orders = "Document_ЗаказНаряд"
# onec_order_client = "Заказчик_Key"
# onec_order_state = "Состояние"
# onec_order_closed_states = ["Закрыт", "Выполнен", "Отменен"]
# Staff: one table per login (the name `card --user` and the panel's --user take,
# else the user setting, else the OS login), with the name people read and the PBX
# abonent that rings on their desk (phone, extension or userId). Click-to-call rings
# that abonent first. `beeline-missed staff link LOGIN ABONENT` writes one.
# [staff.petrov]
# name = "Петров"
# abonent = "9001112202"
# (Tables come last in this file: a key written below a [table] line belongs to it.)
"""


def init_file(home: Path, force: bool = False) -> Path:
    path = home / "config.toml"
    if path.exists() and not force:
        raise UserError(f"{path} already exists; use --force to overwrite it.")
    from beeline_missed.files import file_in_the_way

    blocking = file_in_the_way(home)
    if blocking is not None:
        raise UserError(
            f"Cannot make the home folder {home}: {blocking} is a file, not a folder; "
            "set BEELINE_MISSED_HOME to a folder."
        )
    try:
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(CONFIG_TEMPLATE)
        os.chmod(path, 0o600)
    except OSError as exc:
        raise UserError(f"Cannot write {path}: {exc.strerror}.") from None
    return path
