"""Settings, read once from the environment (and from `.env` when present).

Every variable is documented in README.md. A bad value raises ImproperlyConfigured naming it.
"""

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from octoprovider.config import (
    check_label_value,
    env,
    logging_config,
    read_api_tokens,
    read_bool,
    read_choice,
    read_choices,
    read_database,
    read_decimal,
    read_email_url,
    read_emails,
    read_fallbacks,
    read_float,
    read_int,
    read_list,
    read_mapping,
    read_per_location,
    read_reserve,
    read_secret_url,
    read_server_type_candidates,
    read_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent
if (BASE_DIR / ".env").is_file():
    env.read_env(BASE_DIR / ".env")

DEBUG = read_bool("DEBUG", False)

SECRET_KEY = read_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is False")
    SECRET_KEY = "insecure-development-key-only-used-with-debug-on"

ALLOWED_HOSTS = read_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "octoprovider",
    "instances",
    "staticips",
    "octoprovider.operations",
]

# Everything but the contract: the admin, the probes, the metrics, static files.
MIDDLEWARE = [
    # First: it sends /octoperf/ through CONTRACT_MIDDLEWARE instead of the rest of this list.
    "octoprovider.contract.middleware.ContractRouterMiddleware",
    "octoprovider.operations.requestlog.RequestLogMiddleware",
    "octoprovider.operations.health.LocalProbesMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
# OctoPerf's calls (/octoperf/...): the request log, the token out of the path, the contract's errors.
# No sessions, CSRF, users or messages: OctoPerf has none, and they cost every state poll.
CONTRACT_MIDDLEWARE = [
    "octoprovider.operations.requestlog.RequestLogMiddleware",
    "octoprovider.core.concurrency.HetznerCallSlotsMiddleware",  # before anything opens a connection
    "django.middleware.security.SecurityMiddleware",
    "octoprovider.contract.authentication.PathTokenMiddleware",
    "octoprovider.contract.errors.ContractErrorMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "octoprovider.urls"
WSGI_APPLICATION = "octoprovider.wsgi.application"

# OctoPerf's client follows no redirects for POST the way we would want: never redirect, and accept
# the contract's paths with or without a trailing slash in the URL patterns instead.
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "octoprovider.context_processors.hetzner",
                "octoprovider.context_processors.version",
            ],
        },
    },
]

# Database: PostgreSQL in production, an SQLite file to try it out.
DATABASES = {"default": read_database("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    if not read_str("DATABASE_URL"):
        (BASE_DIR / "var").mkdir(exist_ok=True)
    # The web server and the reconciler write at the same time: WAL lets readers go on, IMMEDIATE
    # takes the write lock up front (no deadlock on upgrade), and the timeout waits instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = read_int("CONN_MAX_AGE", 60)
    # A health check is one more round trip on every request, doubling the state endpoint's database
    # time. Without it, a connection broken by a database restart fails one request per worker and
    # is then replaced (Django closes connections that errored).
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = read_bool("CONN_HEALTH_CHECKS", False)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "octoprovider.core.staticfiles.StaticFilesStorage"},
}
# Until `collectstatic` has run, WhiteNoise serves the admin's files from the apps (never a 500).
WHITENOISE_USE_FINDERS = DEBUG or not (STATIC_ROOT / "staticfiles.json").is_file()

# Serve plain HTTP behind a TLS-terminating proxy by default; the proxy says what the client used.
SECURE_SSL_REDIRECT = read_bool("SECURE_SSL_REDIRECT", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = read_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = read_bool("CSRF_COOKIE_SECURE", not DEBUG)
CSRF_TRUSTED_ORIGINS = read_list("CSRF_TRUSTED_ORIGINS")
SECURE_HSTS_SECONDS = read_int("SECURE_HSTS_SECONDS", 0)

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["octoprovider.contract.rendering.ContractJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.FormParser",
        "octoprovider.contract.rendering.ContractJSONParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "octoprovider.contract.rendering.AlwaysJSONNegotiation",
    "DEFAULT_AUTHENTICATION_CLASSES": ["octoprovider.contract.authentication.OctoPerfTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "EXCEPTION_HANDLER": "octoprovider.contract.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# --- OctoPerf ----------------------------------------------------------------------------------

OCTOPERF_API_TOKENS = read_api_tokens("OCTOPERF_API_TOKENS")

# Hetzner's user_data limit, and ours: larger start-up scripts are refused with 400.
USER_DATA_MAX_BYTES = 32 * 1024

# --- Hetzner Cloud -----------------------------------------------------------------------------

HCLOUD_TOKEN = read_str("HCLOUD_TOKEN")
HCLOUD_ENDPOINT = read_str("HCLOUD_ENDPOINT", "https://api.hetzner.cloud/v1")
HCLOUD_TIMEOUT = read_float("HCLOUD_TIMEOUT", 15.0, minimum=1.0)
# hcloud retries conflict, rate limits, timeouts, 502 and 504 itself; keep its waits short so that
# OctoPerf's HTTP call does not hang for minutes: we answer 503 with Retry-After instead.
HCLOUD_RETRIES = read_int("HCLOUD_RETRIES", 2)
# Contract calls that may reach Hetzner (all but GETs) served at once per web worker; the others wait
# without a database connection (octoprovider/core/concurrency.py, docs/deployment.md's sizing).
HETZNER_CALLS_PER_WORKER = read_int("HETZNER_CALLS_PER_WORKER", 32, minimum=1)
# Of those, how many may run Python at once: a call gives its turn back while Hetzner answers.
CPU_TURNS_PER_WORKER = read_int("CPU_TURNS_PER_WORKER", 1, minimum=1)
HCLOUD_RETRY_BACKOFF = read_float("HCLOUD_RETRY_BACKOFF", 0.5)
HCLOUD_IMAGE = read_str("HCLOUD_IMAGE", "docker-ce")
HCLOUD_SSH_KEYS = read_list("HCLOUD_SSH_KEYS")
HCLOUD_FIREWALLS = read_list("HCLOUD_FIREWALLS")

# With no token and DEBUG on, a simulated Hetzner Cloud stands in (octoprovider/hetzner/sandbox), its state
# kept in a file that the web server and the reconciler share.
HETZNER_SANDBOX = not HCLOUD_TOKEN
if HETZNER_SANDBOX and not DEBUG:
    raise ImproperlyConfigured(
        "HCLOUD_TOKEN must be set when DEBUG is False "
        "(with DEBUG=True and no token, octoprovider uses a simulated Hetzner Cloud)"
    )
HCLOUD_SANDBOX_FILE = Path(read_str("HCLOUD_SANDBOX_FILE", str(BASE_DIR / "var" / "hetzner-sandbox.json")))
# How many times faster than Hetzner the simulated servers boot and power cycle (tests: 10).
HCLOUD_SANDBOX_SPEED = read_float("HCLOUD_SANDBOX_SPEED", 1.0, minimum=1.0)
# How long the simulated Hetzner takes to answer, per endpoint: "POST /servers=1.5,GET=0.2" (benchmarks).
SANDBOX_LATENCY = read_str("SANDBOX_LATENCY", "")

# With DEBUG on, the sandbox and no token configured, one well-known token lets `make run` be tried
# with curl. It can never reach a real Hetzner project.
if not OCTOPERF_API_TOKENS and DEBUG and HETZNER_SANDBOX:
    OCTOPERF_API_TOKENS = ["dev-token"]

OCTOPROVIDER_DEPLOYMENT = check_label_value("OCTOPROVIDER_DEPLOYMENT", read_str("OCTOPROVIDER_DEPLOYMENT", "default"))

# Regions: Hetzner locations, plus operators' aliases (eu-central=fsn1). Zones are only recorded.
HETZNER_LOCATIONS = ["fsn1", "nbg1", "hel1", "ash", "hil", "sin"]
REGION_ALIASES = read_mapping("REGION_ALIASES")

# Types: OctoPerf's four sizes, each mapped to an ordered list of candidate Hetzner server types: a
# create takes the first that Hetzner's /server_types lists as available and not deprecated in the
# location, of an architecture in SERVER_ARCHITECTURES (OctoPerf's agent image is x86).
# SERVER_TYPE_CANDIDATES is JSON merged over the defaults: {"SMALL": ["cpx22", "cx23"]}.
INSTANCE_TYPES = ["SMALL", "MEDIUM", "LARGE", "XLARGE"]
SERVER_TYPE_CANDIDATES = read_server_type_candidates(
    "SERVER_TYPE_CANDIDATES",
    {
        "SMALL": ["cx23", "cpx22", "cax11"],
        "MEDIUM": ["cx33", "cpx32", "cax21"],
        "LARGE": ["cx43", "cpx42", "cax31"],
        "XLARGE": ["cx53", "cpx52", "cax41"],
    },
)
SERVER_ARCHITECTURES = read_choices("SERVER_ARCHITECTURES", ["x86"], ("x86", "arm"))

# SERVER_TYPES pins a size to one server type, per location, over the candidates: JSON like
# {"*": {"XLARGE": "ccx33"}, "ash": {"SMALL": "cpx32"}}; a key that is not a known location adds one.
SERVER_TYPES = read_per_location("SERVER_TYPES", locations=HETZNER_LOCATIONS, sizes=INSTANCE_TYPES)
for _alias, _location in REGION_ALIASES.items():
    if _location not in SERVER_TYPES:
        raise ImproperlyConfigured(f"REGION_ALIASES maps {_alias!r} to {_location!r}, which is not a location")

# Guardrails: what a runaway caller or a leaked token can spend at most (429 beyond, no Hetzner call).
MAX_INSTANCES = read_int("MAX_INSTANCES", 100)
MAX_INSTANCES_PER_REGION = read_int("MAX_INSTANCES_PER_REGION", MAX_INSTANCES)
MAX_STATIC_IPS = read_int("MAX_STATIC_IPS", 20)
# In a location with static IPs, refuse (409) a create that cannot get a free one as its address,
# and an associate or release that would power-cycle another running agent off its static address,
# so that no agent ever leaves from an address outside the allow-list.
STATIC_IP_STRICT = read_bool("STATIC_IP_STRICT", False)
# Hours after which cleanup terminates an instance whatever OctoPerf thinks; 0 turns it off.
INSTANCE_MAX_LIFETIME = read_int("INSTANCE_MAX_LIFETIME", 24)
# Days of audit events cleanup keeps; 0 keeps them forever.
AUDIT_RETENTION_DAYS = read_int("AUDIT_RETENTION_DAYS", 90)
# Empty: every region and type is allowed.
ALLOWED_REGIONS = [region.lower() for region in read_list("ALLOWED_REGIONS")]
ALLOWED_TYPES = [size.upper() for size in read_list("ALLOWED_TYPES")]
for _size in ALLOWED_TYPES:
    if _size not in INSTANCE_TYPES:
        raise ImproperlyConfigured(f"ALLOWED_TYPES names {_size!r}; expected some of {', '.join(INSTANCE_TYPES)}")

# A type pinned by SERVER_TYPES falls back along these lists when Hetzner cannot deliver it (sold
# out, deprecated). JSON like SERVER_TYPES, with lists: {"*": {"SMALL": ["cpx22"]}}. None by default.
SERVER_TYPE_FALLBACKS = read_per_location(
    "SERVER_TYPE_FALLBACKS", locations=list(SERVER_TYPES), sizes=INSTANCE_TYPES, lists=True
)

# Opt-in: when no candidate type can be had in a location (resource_unavailable), try the next
# locations: "fsn1:nbg1,hel1;ash:hil". Never for a location holding static IPs (OctoPerf associates
# them with the region's instances, and a Primary IP only goes to a server in its own location).
LOCATION_FALLBACKS = read_fallbacks("LOCATION_FALLBACKS")
for _location, _nexts in LOCATION_FALLBACKS.items():
    for _name in [_location, *_nexts]:
        if _name not in SERVER_TYPES:
            raise ImproperlyConfigured(f"LOCATION_FALLBACKS names {_name!r}, which is not a location")

# Budgets in euros (README "Money safety"), from Hetzner's /pricing, checked under the same lock as
# MAX_INSTANCES: the hourly burn after a create or allocate, and what is billed in the day and the
# month (UTC) including the burn to the period's end of what exists. Unset: no budget.
MAX_HOURLY_SPEND_EUR = read_decimal("MAX_HOURLY_SPEND_EUR")
DAILY_BUDGET_EUR = read_decimal("DAILY_BUDGET_EUR")
MONTHLY_BUDGET_EUR = read_decimal("MONTHLY_BUDGET_EUR")
# Hetzner's prices with VAT (gross, what the invoice says for most customers) or without (net).
BUDGETS_INCLUDE_VAT = read_bool("BUDGETS_INCLUDE_VAT", True)
# Test runs: creates in one region less than RUN_GAP seconds apart belong to the same run.
RUN_GAP = read_int("RUN_GAP", 300, minimum=1)

# How fresh states stay: instances in transition are looked up every REFRESH_INTERVAL seconds (one
# batched call), the whole fleet every SWEEP_INTERVAL seconds. A create whose request died is
# abandoned (and its server, if any, deleted) after CREATE_GRACE seconds.
REFRESH_INTERVAL = read_float("REFRESH_INTERVAL", 2.0, minimum=0.1)
# Each web process answers state polls from one read of the whole live fleet, renewed after this
# many seconds (0: one query per poll).
STATE_SNAPSHOT_SECONDS = read_float("STATE_SNAPSHOT_SECONDS", 1.0)
SWEEP_INTERVAL = read_float("SWEEP_INTERVAL", 30.0, minimum=1.0)
CREATE_GRACE = read_int("CREATE_GRACE", 600, minimum=60)
# OctoPerf polls every instance it knows about. One it never calls about (poll, reboot, delete,
# associate) in this many seconds is the first server of a create whose answer it never received
# (its client gave up, and it retried): the reconciler deletes it. 0 turns this off.
UNCLAIMED_INSTANCE_GRACE = read_int("UNCLAIMED_INSTANCE_GRACE", 600)

# Hetzner bills every started hour of a server. `billed-hour`: a deleted instance whose server has more
# than REUSE_MIN_LEFT seconds of its billed hour left is parked (powered off at once) instead, and a
# create of the same location and server type takes it (rebuilt with the new userData); a parked server
# is deleted REUSE_MARGIN seconds before its next billed hour starts. `off`: every delete deletes.
SERVER_REUSE = read_choice("SERVER_REUSE", "billed-hour", ("billed-hour", "off"))
REUSE_MIN_LEFT = read_int("REUSE_MIN_LEFT", 600)
REUSE_MARGIN = read_int("REUSE_MARGIN", 240, minimum=60)
if not REUSE_MARGIN < REUSE_MIN_LEFT < 3600:
    raise ImproperlyConfigured(
        f"REUSE_MIN_LEFT ({REUSE_MIN_LEFT} s) must be more than REUSE_MARGIN ({REUSE_MARGIN} s) and less than 3600"
    )

# --- Fleet scale: Hetzner's rate budget and the drift sweep (README "Fleet scale and benchmarks") ---
# Requests of Hetzner's hourly budget kept for mutations (create, delete, power and IP actions): below
# it, refreshes and listings wait for the budget to refill. A number of requests, or a percentage of
# RateLimit-Limit ("10%").
HCLOUD_RATE_RESERVE = read_reserve("HCLOUD_RATE_RESERVE", "10%")
# Every SWEEP_INTERVAL the sweep asks Hetzner only for the servers that are not running and for how many
# servers there are (2 requests, whatever the fleet's size); it lists the whole fleet (one request per
# 50 servers) only when those disagree with the database, and at least every SWEEP_FULL_INTERVAL seconds.
SWEEP_FULL_INTERVAL = read_float("SWEEP_FULL_INTERVAL", 3600.0, minimum=1.0)
# --- end of fleet scale ---

# --- Operations: health, metrics, logs, the published contract, deployment checks ----------------
# (docs/deployment.md describes the production values; `check --deploy` must stay silent with them.)

# /metrics answers only to `Authorization: Bearer <METRICS_TOKEN>`; without a token it does not exist.
METRICS_TOKEN = read_str("METRICS_TOKEN")

# `text` (default) or `json`: one JSON object per line, for log shippers.
# Successful state polls are logged at DEBUG unless this is on: OctoPerf polls every instance every
# few seconds. Every other request is logged at INFO.
LOG_STATE_POLLS = read_bool("LOG_STATE_POLLS", False)
LOG_FORMAT = read_choice("LOG_FORMAT", "text", ("text", "json"))
# INFO by default; WARNING for manage.py's one-shot commands (manage.py sets this default), whose
# output is their answer.
LOGGING = logging_config(
    level=read_str("LOG_LEVEL", read_str("OCTOPROVIDER_COMMAND_LOG_LEVEL", "INFO")), log_format=LOG_FORMAT
)

# HSTS is set only when SECURE_HSTS_SECONDS is; on a host name of its own, its subdomains and the
# preload flag commit nothing else (docs/deployment.md).
SECURE_HSTS_INCLUDE_SUBDOMAINS = read_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = read_bool("SECURE_HSTS_PRELOAD", False)
# Probes and scrapers talk to gunicorn directly, over plain HTTP on the host: never redirect them.
SECURE_REDIRECT_EXEMPT = [r"^healthz/?$", r"^readyz/?$", r"^metrics/?$"]
SILENCED_SYSTEM_CHECKS = read_list("SILENCED_SYSTEM_CHECKS")

# Alerts (octoprovider/operations/alerts.py, docs/deployment.md#alerts): by e-mail through Django's mail,
# configured by one URL (smtp+tls://user:password@host:587), and/or as a JSON POST to a chat webhook.
globals().update(read_email_url("EMAIL_URL"))
EMAIL_TIMEOUT = 10  # seconds: a mail server that hangs must not hold the reconciler's pass for long
DEFAULT_FROM_EMAIL = read_str("DEFAULT_FROM_EMAIL", "octoprovider@localhost")
ALERT_EMAILS = read_emails("ALERT_EMAILS")
if ALERT_EMAILS and not read_str("EMAIL_URL"):
    raise ImproperlyConfigured("ALERT_EMAILS needs EMAIL_URL (smtp://host:25) to send them")
ALERT_WEBHOOK_URL = read_secret_url("ALERT_WEBHOOK_URL")  # holds the webhook's secret: never logged

SPECTACULAR_SETTINGS = {
    "TITLE": "octoprovider: OctoPerf's Custom HTTP provider on Hetzner Cloud",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/octoperf",
    "PREPROCESSING_HOOKS": ["octoprovider.contract.schema.only_contract_paths"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "octoprovider.contract.schema.merge_blank_alternatives",
        "octoprovider.contract.schema.describe_contract",
    ],
    "ENUM_ADD_EXPLICIT_BLANK_NULL_CHOICE": False,
    # The document lists the region aliases operators add in the admin, read from the database when
    # it is served, and `check --deploy` runs where there may be no database yet: the suite generates
    # it without a warning instead (tests/ops/test_openapi.py).
    "ENABLE_DJANGO_DEPLOY_CHECK": False,
}
