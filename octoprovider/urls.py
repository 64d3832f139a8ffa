"""Root URLs: the contract under /octoperf/ (the token, when in the path, is stripped by middleware)."""

from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from octoprovider.contract import errors
from octoprovider.contract import schema as openapi
from octoprovider.operations import health, metrics
from staticips.apis import AllowListApi

urlpatterns = [
    # First: Django tries the patterns in order, and OctoPerf's state polls are most of the traffic.
    path("octoperf/", include("instances.urls")),
    # What `make run` prints is the root: a person opening it wants the console.
    path("", RedirectView.as_view(pattern_name="admin:index"), name="root"),
    path("octoperf/openapi.json", openapi.ContractSchemaView.as_view(), name="openapi"),
    path("octoperf/", include("staticips.urls")),
    path("admin/", admin.site.urls),
    # Customers' scripts read our static addresses here, with a read-only token (not OctoPerf's contract).
    re_path(r"^api/allow-list/?$", AllowListApi.as_view(), name="allow-list"),
    # Operations: unauthenticated probes, and the metrics behind METRICS_TOKEN.
    re_path(r"^healthz/?$", health.healthz, name="healthz"),
    re_path(r"^readyz/?$", health.readyz, name="readyz"),
    re_path(r"^metrics/?$", metrics.metrics_view, name="metrics"),
    # Anything else under /octoperf/ is a JSON 404, even with DEBUG on (which bypasses handler404).
    re_path(r"^octoperf(?:/.*)?$", errors.not_found),
]

handler404 = "octoprovider.contract.errors.not_found"
handler500 = "octoprovider.contract.errors.server_error"
