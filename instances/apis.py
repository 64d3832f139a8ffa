"""The instances half of OctoPerf's contract: thin views, one service call each."""

from rest_framework import serializers as drf_serializers

from instances import serializers, services
from instances.models import Instance
from octoprovider.contract.schema import (
    contract_operation,
    id_field,
    ignored_query_parameter,
    link,
    value_response,
    void_response,
)
from octoprovider.contract.views import ContractView


class InstancesApi(ContractView):
    """POST and DELETE share `/instances` in the contract, so they share a view."""

    @contract_operation(
        operation_id="instance_create",
        summary="Create a host that runs userData at start-up",
        request=serializers.InstanceCreateInput,
        responses=value_response("InstanceIdValue", id_field("i"), "The new instance's id."),
        errors={
            400: "A parameter is missing, `type` or `region` is unknown, `userData` is over its limit in bytes, "
            "or the server type is not sold in the location.",
            409: "STATIC_IP_STRICT is on and every static IP of the location is in use (`no_free_static_ip`).",
            429: "",
        },
        links={
            "state": link("instance_state", instance_id="$response.body#/value"),
            "reboot": link("instance_reboot", instance_id="$response.body#/value"),
            "delete": link("instance_delete", instanceId="$response.body#/value"),
        },
    )
    def post(self, request):
        """Create a host from a start-up script; answer its instanceId."""
        data = self.validated(serializers.InstanceCreateInput)
        instance = services.instance_create(
            region=data["region"], type=data["type"], user_data=data["userData"], zone=data["zone"]
        )
        return self.value(instance.id)

    @contract_operation(
        operation_id="instance_delete",
        summary="Terminate a host (again: 200)",
        parameters=[serializers.InstanceDeleteInput],
        responses=void_response("Deleted, or being deleted, or already gone."),
        errors=(400, 404),
    )
    def delete(self, request):
        """Terminate the host named by `instanceId` (idempotent)."""
        data = self.validated(serializers.InstanceDeleteInput)
        services.instance_claim(instance_id=data["instanceId"])  # OctoPerf knows it (UNCLAIMED_INSTANCE_GRACE)
        services.instance_delete(instance_id=data["instanceId"])
        return self.void()


class InstanceStateApi(ContractView):
    """GET /instances/{id}/state: the state in EC2's words, from the database alone."""

    @contract_operation(
        operation_id="instance_state",
        summary="Read a host's state (from the database: no Hetzner call)",
        parameters=[ignored_query_parameter("region"), ignored_query_parameter("zone")],
        responses=value_response(
            "InstanceStateValue",
            drf_serializers.ChoiceField(choices=sorted(set(Instance.CONTRACT_STATES.values()))),
            "The state in EC2's words; OctoPerf waits for `running`.",
        ),
        errors=(404,),
    )
    def get(self, request, instance_id):
        return self.value(self.poll(instance_id=instance_id))

    def poll(self, *, instance_id):
        return services.instance_get_state(instance_id=instance_id)


class InstanceRebootApi(ContractView):
    """PUT /instances/{id}: reboot the host."""

    @contract_operation(
        operation_id="instance_reboot",
        summary="Reboot a host",
        responses=void_response("Rebooted, or the reboot is queued until Hetzner frees the server."),
        errors=(404, 409),
    )
    def put(self, request, instance_id):
        services.instance_claim(instance_id=instance_id)  # OctoPerf knows it (UNCLAIMED_INSTANCE_GRACE)
        services.instance_reboot(instance_id=instance_id)
        return self.void()
