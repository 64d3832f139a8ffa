"""JSON in UTF-8 for every response, whatever `Accept` says, and JSON bodies read safely.

Java's default `Accept` asks for HTML first.
"""

from rest_framework.exceptions import ParseError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer


class ContractJSONRenderer(JSONRenderer):
    """JSON with the charset spelled out, as the contract asks."""

    charset = "utf-8"


class AlwaysJSONNegotiation(DefaultContentNegotiation):
    """Answer JSON whatever the client accepts: there is nothing else to offer."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return (renderers[0], renderers[0].media_type)


class ContractJSONParser(JSONParser):
    """DRF's JSON parser, with a body nested too deep for Python's parser answered 400 rather than 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
