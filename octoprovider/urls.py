"""Root URLs: the contract under /octoperf/ (the token, when in the path, is stripped by middleware)."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("octoperf/", include("instances.urls")),
    path("octoperf/", include("staticips.urls")),
    path("admin/", admin.site.urls),
]

handler404 = "octoprovider.api.not_found"
handler500 = "octoprovider.api.server_error"
