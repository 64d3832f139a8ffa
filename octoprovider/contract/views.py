"""The base of every contract endpoint: parameters from anywhere, `{"value": ...}` or an empty 200."""

import functools
import json

from django.http import HttpResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework import permissions
from rest_framework.response import Response
from rest_framework.views import APIView

from octoprovider.contract.authentication import MayCallContract, authenticated_client
from octoprovider.contract.signals import contract_call_answered
from octoprovider.core.exceptions import ServiceError
from octoprovider.core.http import CONTENT_TYPE


@functools.lru_cache(maxsize=64)
def _value_body(value: str) -> bytes:
    """Render `{"value": value}` as ContractJSONRenderer does; a state is one of a handful of words."""
    return json.dumps({"value": value}, ensure_ascii=False, separators=(",", ":")).encode()


# Each view's `Allow` header; computed on a view set up for a request, which gains `head` then.
_allow_headers: dict[type, str] = {}


class ContractView(APIView):
    """Base for the contract's endpoints: parameters read from the query string and the body together.

    A view whose GET OctoPerf polls defines `poll(**path_kwargs) -> str`, the value that GET answers.
    A poll that succeeds is then answered without DRF's request machinery (the wrapped request,
    content negotiation, the renderer), which cost more than the rest of the request together; the
    same token check and the same JSON come out. Anything else (no token or a wrong one, an unknown
    id) goes the usual way, through the one error path.
    """

    poll = None
    # A read-only token (made for the allow-list) authenticates, and is refused with a 403.
    permission_classes = [permissions.IsAuthenticated, MayCallContract]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # Django's View.setup answers HEAD like GET by storing `self.head = self.get` on each view it
        # makes: a bound method pointing back at its view, a reference cycle that keeps the request
        # and all it refers to alive until the garbage collector runs, on every poll. Set on the
        # class, the same HEAD costs nothing.
        if hasattr(cls, "get") and not hasattr(cls, "head"):
            cls.head = cls.get

    def dispatch(self, request, *args, **kwargs):
        if self.poll is not None and request.method == "GET":
            client = authenticated_client(request)
            if client is not None and client.may_call_contract:
                try:
                    value = self.poll(**kwargs)
                except ServiceError:
                    pass  # answered below, in the contract's error shape
                else:
                    request.user = client  # as DRF's authentication would have set it
                    return self.polled(value)
        return super().dispatch(request, *args, **kwargs)

    def polled(self, value: str) -> HttpResponse:
        """Answer a successful poll as DRF would: the renderer's compact JSON, the same headers."""
        response = HttpResponse(_value_body(value), status=200, content_type=CONTENT_TYPE)
        allow = _allow_headers.get(type(self))
        if allow is None:
            allow = _allow_headers[type(self)] = ", ".join(self.allowed_methods)
        response["Allow"] = allow
        return response

    def params(self) -> dict[str, str]:
        """Merge query-string and body parameters; the body wins where both name one."""
        merged = {key: self.request.query_params.get(key) for key in self.request.query_params}
        data = self.request.data
        if hasattr(data, "dict"):
            data = data.dict()
        if isinstance(data, dict):
            merged.update({key: value for key, value in data.items() if value is not None})
        elif data:
            raise drf_exceptions.ParseError("The request body must be a form or a JSON object.")
        return merged

    def validated(self, serializer_class):
        params = self.params()
        # Every parameter of the contract is text; DRF would quietly turn a JSON 0 into "0".
        # Unknown parameters are ignored, whatever their type.
        for name in serializer_class().fields:
            if name in params and not isinstance(params[name], str):
                raise drf_exceptions.ValidationError({name: ["Must be a string."]})
        serializer = serializer_class(data=params)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def value(self, value: str) -> Response:
        return Response({"value": value}, status=200)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        contract_call_answered.send(sender=type(self), request=request, response=response, view_kwargs=kwargs)
        return response

    def void(self) -> HttpResponse:
        # DRF drops Content-Type from an empty Response; the contract wants it on every answer.
        return HttpResponse(b"", status=200, content_type=CONTENT_TYPE)
