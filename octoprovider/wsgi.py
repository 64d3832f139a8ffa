import os

from django.core.wsgi import get_wsgi_application

from octoprovider.core.wsgirequest import LazyQueryWSGIRequest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "octoprovider.settings")

application = get_wsgi_application()
application.request_class = LazyQueryWSGIRequest
