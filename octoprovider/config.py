"""Strict readers for the environment: a bad value stops start-up and names its variable.

django-environ parses; these wrappers refuse what it would silently accept (``DEBUG=maybe`` is
not False, ``MAX_INSTANCES=ten`` is not a crash deep inside a request).
"""

import json
import re
from decimal import Decimal, InvalidOperation

import environ
from django.core.exceptions import ImproperlyConfigured, ValidationError

env = environ.Env()

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

# Hetzner label values: at most 63 characters, alphanumerics with - _ . inside.
_LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)$")


def _raw(name: str) -> str | None:
    value = env.str(name, default=None)
    return None if value is None else value.strip()


def read_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def read_str(name: str, default: str = "") -> str:
    value = _raw(name)
    return default if value is None else value


def read_int(name: str, default: int, *, minimum: int = 0) -> int:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {number}")
    return number


def read_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {number}")
    return number


def read_decimal(name: str) -> Decimal | None:
    """Read an amount of money (``12.50``); unset or empty means no amount (no limit)."""
    value = _raw(name)
    if value is None or value == "":
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ImproperlyConfigured(f"{name} must be an amount like 12.50, not {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ImproperlyConfigured(f"{name} must be an amount of at least 0, not {value!r}")
    return amount


def read_list(name: str, default: list[str] | None = None) -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default or [])
    return [item.strip() for item in value.split(",") if item.strip()]


def read_mapping(name: str) -> dict[str, str]:
    """Read ``key=value,key=value`` (keys lower-cased, as regions are matched without case)."""
    mapping = {}
    for item in read_list(name):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ImproperlyConfigured(f"{name} must look like alias=location,alias=location; got {item!r}")
        mapping[key.strip().lower()] = value.strip()
    return mapping


def read_fallbacks(name: str) -> dict[str, list[str]]:
    """Read ``location:next,next;location:next`` (locations lower-cased)."""
    fallbacks = {}
    value = _raw(name) or ""
    for item in value.split(";"):
        if not item.strip():
            continue
        key, sep, rest = item.partition(":")
        nexts = [location.strip().lower() for location in rest.split(",") if location.strip()]
        if not sep or not key.strip() or not nexts:
            raise ImproperlyConfigured(f"{name} must look like fsn1:nbg1,hel1;ash:hil; got {item.strip()!r}")
        fallbacks[key.strip().lower()] = nexts
    return fallbacks


def read_json_object(name: str) -> dict:
    value = _raw(name)
    if not value:
        return {}
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise ImproperlyConfigured(f"{name} must be a JSON object")
    return parsed


def read_server_type_candidates(name: str, defaults: dict[str, list[str]]) -> dict[str, list[str]]:
    """Read JSON like ``{"SMALL": ["cpx22", "cx23"]}`` merged over `defaults`, whose keys are the sizes."""
    candidates = {size: list(names) for size, names in defaults.items()}
    for size, names in read_json_object(name).items():
        if (
            size not in defaults
            or not isinstance(names, list)
            or not names
            or not all(isinstance(server_type, str) and server_type for server_type in names)
        ):
            raise ImproperlyConfigured(f"{name} must map some of {', '.join(defaults)} to lists of server types")
        candidates[size] = list(names)
    return candidates


def read_per_location(
    name: str, *, locations: list[str], sizes: list[str], lists: bool = False
) -> dict[str, dict[str, str | list[str]]]:
    """Read JSON like ``{"*": {"XLARGE": "ccx33"}, "ash": {"SMALL": "cpx32"}}``: per location, per size,
    a server type name (or, with `lists`, a list of names).

    "*" applies to every location in `locations`; a location's own entries win over it; a key that is
    not in `locations` adds a location.
    """
    what = "lists of server types" if lists else "server type names"

    def valid(value) -> bool:
        if lists:
            return isinstance(value, list) and all(isinstance(item, str) and item for item in value)
        return isinstance(value, str) and bool(value)

    given = read_json_object(name)
    for key, entries in given.items():
        if not isinstance(entries, dict) or not all(size in sizes and valid(value) for size, value in entries.items()):
            raise ImproperlyConfigured(f"{name}[{key!r}] must map some of {', '.join(sizes)} to {what}")
    per_location = {location: dict(given.get("*", {})) for location in locations}
    for key, entries in given.items():
        if key != "*":
            per_location.setdefault(key, {}).update(entries)
    return per_location


def read_choices(name: str, default: list[str], choices: tuple[str, ...]) -> list[str]:
    """Read a comma-separated list (lower-cased) whose every item is one of `choices`."""
    values = [value.lower() for value in read_list(name, default)]
    for value in values:
        if value not in choices:
            raise ImproperlyConfigured(f"{name} names {value!r}; expected {', '.join(choices)} or several")
    return values


def read_database(name: str, default: str) -> dict:
    value = _raw(name) or default
    scheme = value.split(":", 1)[0]
    if scheme not in ("sqlite", "postgres", "postgresql", "pgsql"):
        raise ImproperlyConfigured(f"{name} must be a sqlite:// or postgres:// URL, not a {scheme!r} URL")
    try:
        return env.db_url_config(value)
    except Exception as exc:  # django-environ raises a mix of types for malformed URLs
        raise ImproperlyConfigured(f"{name} is not a valid database URL: {exc}") from None


def read_email_url(name: str) -> dict:
    """Read Django's e-mail settings from one URL (``smtp+tls://user:password@host:587``); unset: none.

    The URL holds a password: a bad one is named, never shown.
    """
    value = _raw(name)
    if not value:
        return {}
    try:
        config = env.email_url_config(value)
    except Exception:  # django-environ raises a mix of types for malformed URLs
        raise ImproperlyConfigured(
            f"{name} must be an e-mail URL like smtp://user:password@host:25 or smtp+tls://…:587"
        ) from None
    if config.get("EMAIL_BACKEND", "").endswith("smtp.EmailBackend") and not config.get("EMAIL_HOST"):
        raise ImproperlyConfigured(f"{name} names no host (smtp://host:port)")
    return config


def read_emails(name: str) -> list[str]:
    """Read e-mail addresses, comma separated."""
    from django.core.validators import validate_email

    addresses = read_list(name)
    for address in addresses:
        try:
            validate_email(address)
        except ValidationError:
            raise ImproperlyConfigured(f"{name}: {address!r} is not an e-mail address") from None
    return addresses


def read_secret_url(name: str) -> str:
    """Read an http(s) URL that holds a secret (a webhook's): a bad one is named, never shown."""
    from django.core.validators import URLValidator

    value = read_str(name)
    if not value:
        return ""
    try:
        URLValidator(schemes=["http", "https"])(value)
    except ValidationError:
        raise ImproperlyConfigured(f"{name} must be an http:// or https:// URL") from None
    return value


def check_label_value(name: str, value: str) -> str:
    if not _LABEL_VALUE.match(value):
        raise ImproperlyConfigured(
            f"{name} must be a valid Hetzner label value (1-63 letters, digits, '-', '_', '.'), not {value!r}"
        )
    return value


# The contract's resources: a token in the path can never be one of these words.
_CONTRACT_WORDS = ("instances", "static-ips")


def read_api_tokens(name: str) -> list[str]:
    """Read OctoPerf's tokens: each must fit in one path segment (`/octoperf/<token>/instances`)."""
    tokens = read_list(name)
    for token in tokens:
        if "/" in token or token in _CONTRACT_WORDS or any(c.isspace() for c in token):
            raise ImproperlyConfigured(
                f"{name}: a token may not contain '/' or spaces, nor be 'instances' or 'static-ips'"
            )
    return tokens


def read_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """Read one of `choices` (without case)."""
    value = read_str(name, default).lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be {' or '.join(choices)}, not {value!r}")
    return value


def read_reserve(name: str, default: str) -> str:
    """Read a number of requests, or a percentage ("10%") of a limit."""
    value = read_str(name, default)
    number = value[:-1] if value.endswith("%") else value
    if not number.isdigit() or (value.endswith("%") and int(number) > 100):
        raise ImproperlyConfigured(f"{name} must be a number of requests or a percentage (10%), not {value!r}")
    return value


def logging_config(*, level: str, log_format: str) -> dict:
    """Return Django's LOGGING: one line per record, text or JSON, request id stamped, tokens masked."""
    filters = ["mask_tokens", "request_id"]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "mask_tokens": {"()": "octoprovider.core.logmask.MaskTokensFilter"},
            "request_id": {"()": "octoprovider.core.logs.RequestIdFilter"},
            "one_line_warning": {"()": "octoprovider.core.logs.OneLineWarning"},
        },
        "formatters": {
            "plain": {"()": "octoprovider.core.logs.TextFormatter"},
            "json": {"()": "octoprovider.core.logs.JsonFormatter"},
            "django.server": {
                "()": "django.utils.log.ServerFormatter",
                "format": "[{server_time}] {message}",
                "style": "{",
            },
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format if log_format == "json" else "plain",
                "filters": filters,
            },
            "django.server": {"class": "logging.StreamHandler", "formatter": "django.server", "filters": filters},
        },
        "root": {"handlers": ["console"], "level": level.upper()},
        "loggers": {
            # Replace Django's own console handler, which would print every record twice and unfiltered.
            "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
            "django.server": {"handlers": ["django.server"], "level": "INFO", "propagate": False},
            # A request naming a host not in ALLOWED_HOSTS is a client's mistake (or a scanner): one line,
            # no traceback.
            "django.security.DisallowedHost": {"filters": ["one_line_warning"]},
        },
    }
