"""gunicorn settings for the web process: `gunicorn octoprovider.wsgi --config gunicorn.conf.py`."""

import functools
import gc
import os
import sys

from gunicorn.glogging import Logger

from octoprovider.core import gunicorn_errors
from octoprovider.core.logmask import MaskTokensFilter, mask_path
from octoprovider.core.logs import JsonFormatter

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Threads, so that state polls never queue behind a burst of creates waiting on Hetzner: enough for
# every agent a test creates at once, plus the polls (docs/deployment.md, "Sizing"). Each thread
# would keep a database connection open for CONN_MAX_AGE; threads connect per request instead.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "128"))
worker_connections = threads  # a worker takes no connection it has no thread for: the others do
os.environ.setdefault("CONN_MAX_AGE", "0")
# Hetzner calls are bounded by HCLOUD_TIMEOUT and short retries; a request taking longer is stuck.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
# With LOG_FORMAT=json, Django's own request lines (octoprovider.operations.requestlog, JSON) replace the
# access log, whose plain lines would break a JSON log stream.
JSON_LOGS = os.environ.get("LOG_FORMAT", "").strip().lower() == "json"
accesslog = None if JSON_LOGS else "-"
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %({x-request-id}o)s'
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


class TokenMaskingLogger(Logger):
    """Mask OctoPerf's path token in every line gunicorn writes; with LOG_FORMAT=json, write its own lines as JSON."""

    def setup(self, cfg):
        super().setup(cfg)
        # Access lines quote the request line and the Referer; error lines quote a malformed request
        # line or the URI of a request that failed: any of them may carry the token.
        for handler in self.error_log.handlers + self.access_log.handlers:
            handler.addFilter(MaskTokensFilter())
        if JSON_LOGS:
            for handler in self.error_log.handlers:
                handler.setFormatter(JsonFormatter())

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "U"):
            if key in atoms:
                atoms[key] = mask_path(atoms[key])
        return atoms


logger_class = TokenMaskingLogger


def post_worker_init(worker):
    """Answer gunicorn's own errors as the contract does; freeze what the worker loaded out of the collector's reach."""
    # gunicorn's own answers (a malformed request line, a URL over its limit) in the contract's JSON,
    # the request line never echoed. An instance attribute, so that any worker class (sync, gthread) has it.
    worker.handle_error = functools.partial(gunicorn_errors.handle_error, worker)

    # A full collection walks every tracked object, and the worker's threads all wait meanwhile.
    # Django, DRF, the admin and octoprovider make that tens of milliseconds: the slowest state
    # polls were those waiting for it. What start-up loads lives as long as the worker; the
    # URLconf is loaded first, as Django would only import it at the first request.
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 (imports the URLconf)
    gc.freeze()


def child_exit(server, worker):
    """Let prometheus-client drop a dead worker's live gauges (multiprocess mode, docs/deployment.md)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_starting(server):
    """Stop before any worker starts, in one line, when a setting is missing or wrong.

    Each worker loads Django on its own: a missing SECRET_KEY or a DATABASE_URL of no known scheme
    made every worker print a traceback before the master gave up (130 lines, the one that matters
    in the middle). The master reads the settings first, as `manage.py` does, and says what is wrong.
    """
    if (getattr(server.app, "app_uri", None) or "").split(":")[0] != "octoprovider.wsgi":
        return  # another application under this config (bench/floor.py's bare Django) has settings of its own
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "octoprovider.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        settings.SECRET_KEY  # noqa: B018 (imports the settings module, which checks every variable)
    except ImproperlyConfigured as exc:
        server.log.error("octoprovider: configuration error: %s", " ".join(str(exc).split()))
        sys.exit(1)
