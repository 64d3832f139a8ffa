"""The contract's own middleware chain: OctoPerf's calls skip the admin's browser middleware.

OctoPerf never has a session, a CSRF cookie, a logged-in user or a message waiting, yet running that
middleware cost a state poll more than the rest of its stack. So the first entry of MIDDLEWARE sends
every request under /octoperf/ down a second chain, built from CONTRACT_MIDDLEWARE the way Django
builds MIDDLEWARE's, and leaves every other request (the admin, the probes) to MIDDLEWARE unchanged.
Django's checks keep reading MIDDLEWARE, which still holds everything the admin needs.
"""

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, MiddlewareNotUsed
from django.core.handlers.base import BaseHandler
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

from octoprovider.core.http import is_contract_path


class _ContractHandler(BaseHandler):
    """A request handler whose middleware is CONTRACT_MIDDLEWARE (synchronous, as under gunicorn)."""

    def load_middleware(self, is_async: bool = False) -> None:
        if is_async:
            raise ImproperlyConfigured("CONTRACT_MIDDLEWARE is served synchronously only (WSGI).")
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        handler = convert_exception_to_response(self._get_response)
        # As BaseHandler.load_middleware does for MIDDLEWARE: the last entry wraps the view first.
        for path in reversed(settings.CONTRACT_MIDDLEWARE):
            try:
                middleware = import_string(path)(handler)
            except MiddlewareNotUsed:
                continue
            if hasattr(middleware, "process_view"):
                self._view_middleware.insert(0, middleware.process_view)
            if hasattr(middleware, "process_template_response"):
                self._template_response_middleware.append(middleware.process_template_response)
            if hasattr(middleware, "process_exception"):
                self._exception_middleware.append(middleware.process_exception)
            handler = convert_exception_to_response(middleware)
        self._middleware_chain = handler


class ContractRouterMiddleware:
    """Serve /octoperf/ through CONTRACT_MIDDLEWARE, and everything else through the rest of MIDDLEWARE.

    It must come first in MIDDLEWARE: whatever comes before it would run for the contract too.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        contract = _ContractHandler()
        contract.load_middleware()
        self.contract_chain = contract._middleware_chain

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # path_info is what the URLconf resolves, token included: the contract chain strips it.
        if is_contract_path(request.path_info):
            return self.contract_chain(request)
        return self.get_response(request)
