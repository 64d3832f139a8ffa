"""The base of every contract endpoint: parameters from anywhere, `{"value": ...}` or an empty 200."""

from django.http import HttpResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import APIView

from octoprovider.contract.signals import contract_call_answered
from octoprovider.core.http import CONTENT_TYPE


class ContractView(APIView):
    """Base for the contract's endpoints: parameters read from the query string and the body together."""

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
