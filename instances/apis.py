"""The instances half of OctoPerf's contract: thin views, one service call each."""

from instances import serializers, services
from octoprovider.api import ContractView


class InstancesApi(ContractView):
    """POST and DELETE share `/instances` in the contract, so they share a view."""

    def post(self, request):
        """Create a host from a start-up script; answer its instanceId."""
        data = self.validated(serializers.InstanceCreateInput)
        instance = services.instance_create(
            region=data["region"], type=data["type"], user_data=data["userData"], zone=data["zone"]
        )
        return self.value(instance.id)

    def delete(self, request):
        """Terminate the host named by `instanceId` (idempotent)."""
        data = self.validated(serializers.InstanceDeleteInput)
        services.instance_delete(instance_id=data["instanceId"])
        return self.void()


class InstanceStateApi(ContractView):
    """GET /instances/{id}/state: the state in EC2's words, from the database alone."""

    def get(self, request, instance_id):
        return self.value(services.instance_get_state(instance_id=instance_id))


class InstanceRebootApi(ContractView):
    """PUT /instances/{id}: reboot the host."""

    def put(self, request, instance_id):
        services.instance_reboot(instance_id=instance_id)
        return self.void()
