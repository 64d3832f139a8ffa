"""The pre-flight (`manage.py preflight`): everything that must be right before the units are enabled.

One list of problems, each one line naming the setting to fix, and the figures an operator wants to
see once before real money is spent: the Hetzner project reached and what the caps let it bill an
hour. Secrets are named, never shown. `/readyz` keeps its own, narrower meaning (what takes a running
replica out of the load balancer); this is asked once, by a person, before the first start.
"""

from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.core import checks
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor

from octoprovider import hetzner
from octoprovider.core.exceptions import HetznerError, InvalidInput
from octoprovider.hetzner import catalog
from octoprovider.operations.cloud import Project, project_seen

# deploy/octoprovider.env.example's values all start so: any secret that still holds one was not replaced.
PLACEHOLDER = "change-me"
# Shortest accepted secrets (docs/deployment.md). SECRET_KEY's is Django's own (security.W009).
MIN_LENGTH = {"SECRET_KEY": 50, "OCTOPERF_API_TOKENS": 32, "METRICS_TOKEN": 32}
# Hetzner's answers that mean the token itself is refused (not that Hetzner is down).
_TOKEN_REFUSED = {"unauthorized", "forbidden", "token_readonly"}
# System checks whose subject the pre-flight checks itself, and says more precisely.
_CHECKED_HERE = {"octoprovider.W002", "octoprovider.W003", "octoprovider.W004"}


@dataclass(frozen=True)
class CostAtCaps:
    """The most the project can be billed an hour with MAX_INSTANCES and MAX_STATIC_IPS all in use."""

    per_hour: Decimal
    currency: str
    vat: bool
    server_type: str
    location: str
    server_price: Decimal
    instance_ipv4_price: Decimal
    static_ipv4_price: Decimal


@dataclass
class Preflight:
    problems: list[str] = field(default_factory=list)
    project: Project | None = None
    hetzner_not_asked: str | None = None  # why, when Hetzner was not asked
    cost: CostAtCaps | None = None


def preflight_run() -> Preflight:
    """Check the settings, the database and the Hetzner project; return the problems and the figures."""
    report = Preflight()
    report.problems += _secret_problems()
    if settings.DEBUG:
        report.problems.append("DEBUG is on: error pages show settings and code to anyone; set DEBUG=false")
    report.problems += _system_check_problems()
    database_problem = _database_problem()
    if database_problem:
        report.problems.append(database_problem)
    report.problems += _allowed_region_problems(database_usable=database_problem is None)

    if database_problem:
        # Every Hetzner call goes through the rate budget all processes share, kept in the database.
        report.hetzner_not_asked = "the database cannot be used yet"
    elif _is_placeholder(settings.HCLOUD_TOKEN):
        report.hetzner_not_asked = "HCLOUD_TOKEN is a placeholder"
    elif settings.HETZNER_SANDBOX:
        report.problems.append("HCLOUD_TOKEN is not set: servers would be simulated, not created at Hetzner")
        report.hetzner_not_asked = "no HCLOUD_TOKEN"
    else:
        _ask_hetzner(report)
    return report


def _is_placeholder(value: str | None) -> bool:
    return bool(value) and PLACEHOLDER in value.lower()


def _secret_problems() -> list[str]:
    problems = []
    secrets = [("SECRET_KEY", settings.SECRET_KEY), ("METRICS_TOKEN", settings.METRICS_TOKEN)]
    secrets += [
        (f"OCTOPERF_API_TOKENS (token {index + 1})", token) for index, token in enumerate(settings.OCTOPERF_API_TOKENS)
    ]
    for name, value in secrets:
        if not value:
            continue  # METRICS_TOKEN unset: /metrics does not exist
        minimum = MIN_LENGTH[name.split()[0]]
        if _is_placeholder(value):
            problems.append(
                f"{name} is the example's change-me placeholder: replace it with {minimum}+ random characters"
            )
        elif len(value) < minimum:
            problems.append(f"{name} is shorter than {minimum} characters: make it longer")
    if not settings.OCTOPERF_API_TOKENS:
        problems.append("OCTOPERF_API_TOKENS is empty: every call from OctoPerf would be refused with 401")
    if _is_placeholder(settings.HCLOUD_TOKEN):
        problems.append(
            "HCLOUD_TOKEN is the example's change-me placeholder: set a read & write API token of the Hetzner project"
        )
    if _is_placeholder(settings.DATABASES["default"].get("PASSWORD")):
        problems.append("DATABASE_URL's password is the example's change-me placeholder")
    return problems


def _system_check_problems() -> list[str]:
    """Return Django's deployment checks (and ours) as problem lines: `check --deploy` need not run too."""
    messages = checks.run_checks(include_deployment_checks=True)
    return [
        f"{message.id}: {' '.join(str(message.msg).split())}"
        for message in messages
        if message.level >= checks.WARNING and not message.is_silenced() and message.id not in _CHECKED_HERE
    ]


def _database_problem() -> str | None:
    try:
        executor = MigrationExecutor(connection)
        unapplied = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as exc:
        # The driver's message names host, user and database, never the password.
        return f"the database of DATABASE_URL cannot be used: {' '.join(str(exc).split())}"
    if unapplied:
        return f"the database is not migrated: {len(unapplied)} migrations to apply (manage.py migrate)"
    return None


def _allowed_region_problems(*, database_usable: bool) -> list[str]:
    problems = []
    for region in settings.ALLOWED_REGIONS:
        if database_usable:
            try:
                catalog.location_for(region)  # a location, or an alias of the settings or the admin's
                continue
            except InvalidInput:
                pass
        elif region in settings.SERVER_TYPES or region in settings.REGION_ALIASES:
            continue
        known = ", ".join(sorted(set(settings.SERVER_TYPES) | set(settings.REGION_ALIASES)))
        problems.append(
            f"ALLOWED_REGIONS names {region!r}, which is not a Hetzner location or region alias (known: {known})"
        )
    return problems


def _ask_hetzner(report: Preflight) -> None:
    try:
        hetzner.check_token()
    except HetznerError as exc:
        if exc.hetzner_code in _TOKEN_REFUSED:
            report.problems.append(
                f"Hetzner refuses HCLOUD_TOKEN ({exc.hetzner_code}): set a read & write API token of the project"
            )
            report.hetzner_not_asked = "it did not accept the token"
        else:
            # Down, rate-limited or out of reach: the token may be fine, but nothing here proves it.
            report.problems.append(f"Hetzner could not be asked whether it accepts HCLOUD_TOKEN: {exc.message}")
            report.hetzner_not_asked = "it could not be reached"
        return
    try:
        report.problems += hetzner.server_settings_problems(
            image=settings.HCLOUD_IMAGE, ssh_keys=settings.HCLOUD_SSH_KEYS, firewalls=settings.HCLOUD_FIREWALLS
        )
        report.cost = cost_at_caps(hetzner.hourly_prices())
        report.project = project_seen()
    except HetznerError as exc:
        report.problems.append(f"Hetzner stopped answering during the pre-flight: {exc.message}")


def cost_at_caps(prices: hetzner.Prices) -> CostAtCaps | None:
    """Price MAX_INSTANCES of the dearest configured server type, each with its IPv4, and MAX_STATIC_IPS.

    Dearest among every candidate (fallbacks included) of every allowed size, in every allowed location:
    the most a leaked token or a runaway test could cost an hour before the guardrails refuse.
    """
    if settings.ALLOWED_REGIONS:
        locations = set()
        for region in settings.ALLOWED_REGIONS:
            try:
                locations.add(catalog.location_for(region))
            except InvalidInput:
                continue  # reported as a problem
    else:
        locations = set(settings.SERVER_TYPES)
    sizes = settings.ALLOWED_TYPES or settings.INSTANCE_TYPES
    offers = [
        (server_price + (prices.ipv4(location) or 0), server_type, location, server_price)
        for location in sorted(locations)
        for size in sizes
        for server_type in catalog.server_type_candidates(location, size)
        if (server_price := prices.server(server_type, location)) is not None
    ]
    if not offers:
        return None
    per_instance, server_type, location, server_price = max(offers)
    static_ipv4 = max((prices.ipv4(location) or Decimal(0) for location in locations), default=Decimal(0))
    return CostAtCaps(
        per_hour=settings.MAX_INSTANCES * per_instance + settings.MAX_STATIC_IPS * static_ipv4,
        currency=prices.currency,
        vat=prices.vat,
        server_type=server_type,
        location=location,
        server_price=server_price,
        instance_ipv4_price=per_instance - server_price,
        static_ipv4_price=static_ipv4,
    )
