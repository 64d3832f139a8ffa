"""Prometheus metrics, served at `/metrics` to whoever holds METRICS_TOKEN.

Counters and histograms are updated where things happen (the request-log middleware, the Hetzner
session hook, the reconciler); the fleet (instances by state and region) is counted from the database
at scrape time, by one GROUP BY query.

Under gunicorn, each worker and the reconciler are separate processes. With PROMETHEUS_MULTIPROC_DIR
set (docs/deployment.md), prometheus-client keeps every process's values in files in that directory
and a scrape adds them up, so one scrape of any worker sees the web workers and the reconciler
together. Without it (`make run`, tests) a scrape sees only the process that answers it.
"""

import functools
import hmac
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar

from django.conf import settings
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from octoprovider.core.http import bearer_token
from octoprovider.core.logs import request_id

R = TypeVar("R")

CONTRACT_REQUESTS = Counter(
    "octoprovider_contract_requests_total",
    "Contract requests answered, by route name, method and HTTP status.",
    ["endpoint", "method", "status"],
)
CONTRACT_DURATION = Histogram(
    "octoprovider_contract_request_duration_seconds",
    "Time to answer a contract request, by route name and method.",
    ["endpoint", "method"],
)
HETZNER_CALLS = Counter(
    "octoprovider_hetzner_requests_total",
    'Requests to the Hetzner Cloud API, by method, templated path and error code ("ok" for success; '
    '"timeout" and "connection" when no answer came).',
    ["method", "endpoint", "code"],
)
HETZNER_DURATION = Histogram(
    "octoprovider_hetzner_request_duration_seconds",
    "Time Hetzner took to answer, by method and templated path.",
    ["method", "endpoint"],
)
# "mostrecent": across processes, the value of the latest answer is the project's budget now.
HETZNER_RATE_REMAINING = Gauge(
    "octoprovider_hetzner_ratelimit_remaining",
    "Hetzner API requests left in the project's budget (RateLimit-Remaining of the latest answer).",
    multiprocess_mode="mostrecent",
)
HETZNER_RATE_LIMIT = Gauge(
    "octoprovider_hetzner_ratelimit_limit",
    "The Hetzner project's request budget (RateLimit-Limit of the latest answer).",
    multiprocess_mode="mostrecent",
)
RECONCILE_DURATION = Histogram(
    "octoprovider_reconcile_pass_duration_seconds",
    "Duration of one reconcile pass, by kind (full: the whole fleet; quick: instances in transition).",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
RECONCILE_DRIFT = Counter(
    "octoprovider_reconcile_drift_total",
    "What reconcile passes found changed at Hetzner: instances whose state changed, instances found terminated.",
    ["kind"],
)
RECONCILE_ERRORS = Counter(
    "octoprovider_reconcile_errors_total",
    "Errors reported by reconcile passes (a pass cut short by Hetzner counts one).",
)
RECONCILE_LAST_PASS = Gauge(
    "octoprovider_reconcile_last_pass_timestamp_seconds",
    "When the last reconcile pass finished (Unix time): alert when it stops moving.",
    multiprocess_mode="max",
)


# The counter and histogram of each (endpoint, method, status) seen: `labels()` costs more than the
# update itself, on every state poll. Route names and methods are bounded (the request log sees to
# it), and so are HTTP statuses.
_contract_series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def observe_contract_request(*, endpoint: str, method: str, status: int, seconds: float) -> None:
    series = _contract_series.get((endpoint, method, status))
    if series is None:
        series = _contract_series[endpoint, method, status] = (
            CONTRACT_REQUESTS.labels(endpoint=endpoint, method=method, status=str(status)),
            CONTRACT_DURATION.labels(endpoint=endpoint, method=method),
        )
    counter, histogram = series
    counter.inc()
    histogram.observe(seconds)


def observe_hetzner_call(
    *, method: str, endpoint: str, code: str, seconds: float, remaining: str | None = None, limit: str | None = None
) -> None:
    HETZNER_CALLS.labels(method=method, endpoint=endpoint, code=code).inc()
    HETZNER_DURATION.labels(method=method, endpoint=endpoint).observe(seconds)
    for gauge, header in ((HETZNER_RATE_REMAINING, remaining), (HETZNER_RATE_LIMIT, limit)):
        if header is not None and header.strip().isdigit():
            gauge.set(int(header))


def observed_reconcile_pass(reconcile_pass: Callable[..., R]) -> Callable[..., R]:
    """Time a reconcile pass and count the drift it reports; give its log lines one id.

    The report needs `changed`, `terminated` and `errors`; `full` comes as a keyword.
    """

    @functools.wraps(reconcile_pass)
    def observed(*args, full: bool, **kwargs) -> R:
        reset_token = request_id.set(f"reconcile-{uuid.uuid4().hex[:12]}")
        started = time.perf_counter()
        try:
            report = reconcile_pass(*args, full=full, **kwargs)
        finally:
            request_id.reset(reset_token)
        RECONCILE_DURATION.labels(kind="full" if full else "quick").observe(time.perf_counter() - started)
        RECONCILE_DRIFT.labels(kind="changed").inc(report.changed)
        RECONCILE_DRIFT.labels(kind="terminated").inc(report.terminated)
        RECONCILE_ERRORS.inc(len(report.errors))
        RECONCILE_LAST_PASS.set_to_current_time()
        return report

    return observed


class InstancesCollector:
    """Count instances by state and region (the Hetzner location) with one query, at scrape time."""

    def collect(self) -> Iterator[Metric]:
        from instances.models import Instance

        family = GaugeMetricFamily(
            "octoprovider_instances",
            "Instances in the database, by status (ours: creating and deleting included) and region "
            "(the Hetzner location).",
            labels=["state", "region"],
        )
        rows = Instance.objects.order_by().values("status", "location").annotate(count=Count("pk"))
        for row in rows:
            family.add_metric([row["status"], row["location"]], row["count"])
        yield family


class _Forward:
    """Collect what another registry holds (single-process mode: this process's own metrics)."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        return self.registry.collect()


def scrape() -> bytes:
    """Render every metric in Prometheus' text format, merging processes in multiprocess mode."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(_Forward(REGISTRY))
    registry.register(InstancesCollector())
    return generate_latest(registry)


def _authorized(request: HttpRequest) -> bool:
    presented = bearer_token(request.headers.get("Authorization", ""))
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode(), settings.METRICS_TOKEN.encode())


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Serve the metrics to a scraper with METRICS_TOKEN; the endpoint does not exist without one."""
    if not settings.METRICS_TOKEN:
        raise Http404("Metrics are disabled: METRICS_TOKEN is not set.")
    if not _authorized(request):
        response = HttpResponse(b"Missing or wrong METRICS_TOKEN.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="octoprovider-metrics"'
        return response
    return HttpResponse(scrape(), content_type=CONTENT_TYPE_LATEST)
