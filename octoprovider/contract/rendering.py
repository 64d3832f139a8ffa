"""JSON in UTF-8 for every response, whatever `Accept` says (Java's default asks for HTML first)."""

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer


class ContractJSONRenderer(JSONRenderer):
    """JSON with the charset spelled out, as the contract asks."""

    charset = "utf-8"


class AlwaysJSONNegotiation(DefaultContentNegotiation):
    """Answer JSON whatever the client accepts: there is nothing else to offer."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return (renderers[0], renderers[0].media_type)
