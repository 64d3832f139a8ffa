"""The static-IP half of OctoPerf's contract: thin views, one service call each."""

from instances import services as instance_services
from octoprovider.contract.schema import contract_operation, id_field, link, value_response, void_response
from octoprovider.contract.views import ContractView
from staticips import serializers, services


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
