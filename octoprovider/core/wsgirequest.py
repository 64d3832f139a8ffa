"""The WSGI request octoprovider serves: Django's, minus one eager parse of the query string.

Django's `HttpRequest.encoding` setter asks `hasattr(self, "GET")`, which parses the query string;
a Content-Type with `charset=` sets the encoding while the request is being built, before any
middleware. A query string over DATA_UPLOAD_MAX_NUMBER_FIELDS then raised TooManyFieldsSent outside
Django's error handling: gunicorn logged "Error handling request" with the URI (token included) and
OctoPerf got no answer. Parsed lazily, it is refused where the contract's error path answers it.
"""

from django.core.handlers.wsgi import WSGIRequest


class LazyQueryWSGIRequest(WSGIRequest):
    """A WSGIRequest whose query string is parsed when first read, whatever its Content-Type says."""

    @WSGIRequest.encoding.setter
    def encoding(self, value):
        self._encoding = value
        # Drop what was parsed with the former encoding; never parse here (`hasattr` would).
        self.__dict__.pop("GET", None)
        if hasattr(self, "_post"):
            del self._post
