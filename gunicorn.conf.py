"""gunicorn settings for the web process: `gunicorn octoprovider.wsgi --config gunicorn.conf.py`."""

import gc
import os

from gunicorn.glogging import Logger

from octoprovider.core.logmask import mask_path
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
    """Mask OctoPerf's path token in access-log lines; with LOG_FORMAT=json, write gunicorn's own lines as JSON."""

    def setup(self, cfg):
        super().setup(cfg)
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
    """Freeze what the worker loaded at start-up out of the garbage collector's reach."""
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
