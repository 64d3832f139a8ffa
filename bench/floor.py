"""The floor: a bare Django project answering the state endpoint's path with a constant, for the benchmarks.

    gunicorn bench.floor --config gunicorn.conf.py

Only SecurityMiddleware and CommonMiddleware, one view, no database, no apps: what any Django service
pays per request. `bench/state_endpoint_http.py` serves it with the same gunicorn command line and
logging as octoprovider and compares the two.
"""

from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-floor-only",
    ALLOWED_HOSTS=["localhost", "127.0.0.1", "[::1]"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=["django.middleware.security.SecurityMiddleware", "django.middleware.common.CommonMiddleware"],
    INSTALLED_APPS=[],
    USE_TZ=True,
)

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import re_path  # noqa: E402


def state(request, instance_id):
    return JsonResponse({"value": "running"})


# The state endpoint's own path (a token in it), so that the same requests drive both servers.
urlpatterns = [re_path(r"^octoperf/[^/]+/instances/(?P<instance_id>[^/]+)/state/?$", state)]

application = get_wsgi_application()
