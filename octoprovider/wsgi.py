import os

from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

from octoprovider.core.wsgirequest import LazyQueryWSGIRequest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "octoprovider.settings")

application = get_wsgi_application()
application.request_class = LazyQueryWSGIRequest

from octoprovider.hetzner.deployment import deployment_label_refusal  # noqa: E402  (needs the apps loaded)

# gunicorn runs no system checks: refuse here to serve under another label than the fleet's.
if refusal := deployment_label_refusal():
    raise ImproperlyConfigured(refusal)
