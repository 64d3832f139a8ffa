"""The static-IP half of OctoPerf's contract: thin views, one service call each."""

from octoprovider.api import ContractView
from staticips import serializers, services


class StaticIPAllocateApi(ContractView):
    """POST /static-ips/allocate: a new static IP in the region; answer its ipId."""

    def post(self, request):
        data = self.validated(serializers.AllocateInput)
        static_ip = services.static_ip_allocate(region=data["region"], zone=data["zone"])
        return self.value(static_ip.id)


class StaticIPAssociateApi(ContractView):
    """PUT /static-ips/associate: make the static IP the instance's address; answer the associationId."""

    def put(self, request):
        data = self.validated(serializers.AssociateInput)
        association = services.static_ip_associate(
            static_ip_id=data["id"], instance_id=data["instanceId"], region=data["region"], zone=data["zone"]
        )
        return self.value(association.id)


class StaticIPDissociateApi(ContractView):
    """PUT /static-ips/dissociate: end an association (idempotent)."""

    def put(self, request):
        data = self.validated(serializers.DissociateInput)
        services.static_ip_dissociate(
            static_ip_id=data["id"], instance_id=data["instanceId"], association_id=data["associationId"],
            region=data["region"], zone=data["zone"],
        )
        return self.void()


class StaticIPReleaseApi(ContractView):
    """DELETE /static-ips/release: give the static IP back (idempotent)."""

    def delete(self, request):
        data = self.validated(serializers.ReleaseInput)
        services.static_ip_release(static_ip_id=data["id"], region=data["region"], zone=data["zone"])
        return self.void()
