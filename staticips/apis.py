"""The static-IP half of OctoPerf's contract, and the allow-list for customers' scripts: thin views."""

import hashlib
import ipaddress
import json

from django.http import HttpResponse
from django.utils.cache import get_conditional_response
from rest_framework import exceptions as drf_exceptions
from rest_framework import permissions
from rest_framework.views import APIView

from instances import services as instance_services
from octoprovider.contract.authentication import MayReadAllowList
from octoprovider.contract.schema import contract_operation, id_field, link, value_response, void_response
from octoprovider.contract.views import ContractView
from octoprovider.core.exceptions import InvalidInput
from octoprovider.core.http import CONTENT_TYPE
from octoprovider.hetzner import catalog
from staticips import selectors, serializers, services


class StaticIPAllocateApi(ContractView):
    """POST /static-ips/allocate: a new static IP in the region; answer its ipId."""

    @contract_operation(
        operation_id="static_ip_allocate",
        summary="Allocate a static IP (a Hetzner Primary IPv4 in the region's location)",
        request=serializers.AllocateInput,
        responses=value_response("StaticIpIdValue", id_field("ip"), "The new static IP's id."),
        errors=(400, 429),
        links={"release": link("static_ip_release", id="$response.body#/value")},
    )
    def post(self, request):
        data = self.validated(serializers.AllocateInput)
        static_ip = services.static_ip_allocate(region=data["region"], zone=data["zone"])
        return self.value(static_ip.id)


class StaticIPAssociateApi(ContractView):
    """PUT /static-ips/associate: make the static IP the instance's address; answer the associationId."""

    @contract_operation(
        operation_id="static_ip_associate",
        summary="Associate a static IP with an instance (the server is power-cycled)",
        request=serializers.AssociateInput,
        responses=value_response("AssociationIdValue", id_field("assoc"), "The association's id."),
        errors=(400, 404, 409),
    )
    def put(self, request):
        data = self.validated(serializers.AssociateInput)
        instance_services.instance_claim(instance_id=data["instanceId"])  # OctoPerf knows it (UNCLAIMED_INSTANCE_GRACE)
        association = services.static_ip_associate(
            static_ip_id=data["id"], instance_id=data["instanceId"], region=data["region"], zone=data["zone"]
        )
        return self.value(association.id)


class StaticIPDissociateApi(ContractView):
    """PUT /static-ips/dissociate: end an association (idempotent)."""

    @contract_operation(
        operation_id="static_ip_dissociate",
        summary="End an association (again: 200)",
        request=serializers.DissociateInput,
        responses=void_response(),
        errors=(400, 404, 409),
    )
    def put(self, request):
        data = self.validated(serializers.DissociateInput)
        services.static_ip_dissociate(
            static_ip_id=data["id"],
            instance_id=data["instanceId"],
            association_id=data["associationId"],
            region=data["region"],
            zone=data["zone"],
        )
        return self.void()


class StaticIPReleaseApi(ContractView):
    """DELETE /static-ips/release: give the static IP back (idempotent)."""

    @contract_operation(
        operation_id="static_ip_release",
        summary="Release a static IP (again: 200)",
        parameters=[serializers.ReleaseInput],
        responses=void_response(),
        errors=(400, 404, 409),
    )
    def delete(self, request):
        data = self.validated(serializers.ReleaseInput)
        services.static_ip_release(static_ip_id=data["id"], region=data["region"], zone=data["zone"])
        return self.void()


class AllowListApi(APIView):
    """GET /api/allow-list: the static IPs' addresses, for customers' firewalls (Terraform, Ansible, cron).

    Text, one address per line, or `?format=json`: `{"addresses": [...], "regions": {"fsn1": [...]}}`;
    `?region=` keeps one region. Sorted by address, so that the same list is the same bytes: the ETag
    is their digest, and a poll with `If-None-Match` answers 304 until the list changes. Only a
    read-only token (made in the console) may read it; see MayReadAllowList.
    """

    permission_classes = [permissions.IsAuthenticated, MayReadAllowList]

    def get(self, request):
        answer_format = request.query_params.get("format", "text")
        if answer_format not in ("text", "json"):
            raise InvalidInput(f"format must be text or json, not {answer_format[:20]!r}.")
        region = request.query_params.get("region", "")
        location = catalog.location_for(region) if region else ""  # any case, or an operator's alias
        regions = {
            location: sorted({row.address for row in rows}, key=ipaddress.ip_address)
            for location, rows in selectors.static_ip_allow_list(location=location).items()
        }
        addresses = sorted({address for listed in regions.values() for address in listed}, key=ipaddress.ip_address)
        if answer_format == "json":
            body = json.dumps({"addresses": addresses, "regions": regions}, sort_keys=True).encode()
            response = HttpResponse(body, content_type=CONTENT_TYPE)
        else:
            body = "".join(f"{address}\n" for address in addresses).encode()
            response = HttpResponse(body, content_type="text/plain; charset=utf-8")
        response["ETag"] = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
        # Any cache must ask again each time (the ETag makes that cheap), and none but the client's may keep it.
        response["Cache-Control"] = "private, no-cache"
        return get_conditional_response(request._request, etag=response["ETag"], response=response) or response

    def permission_denied(self, request, message=None, code=None):
        if request.authenticators and not request.successful_authenticator:
            # Not the contract's message: this path takes no token in it.
            raise drf_exceptions.AuthenticationFailed(
                "Missing API token: send Authorization: Bearer <token>, a read-only token made in the console."
            )
        super().permission_denied(request, message, code)
