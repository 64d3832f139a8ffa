"""What the static-IP endpoints accept: validated here, and published from here as OpenAPI."""

from rest_framework import serializers

from instances.serializers import RegionField, zone_field
from octoprovider.contract.schema import TextField


def instance_id_field() -> TextField:
    return TextField(max_length=64, help_text="The instance, as `POST /instances` answered it (`i-…`).")


def ip_id_field() -> TextField:
    return TextField(max_length=64, help_text="The static IP, as allocate answered it (`ip-…`).")


class AllocateInput(serializers.Serializer):
    region = RegionField()
    zone = zone_field()

    class Meta:
        ref_name = "StaticIpAllocateRequest"


class AssociateInput(serializers.Serializer):
    region = RegionField()
    zone = zone_field()
    instanceId = instance_id_field()
    id = ip_id_field()

    class Meta:
        ref_name = "StaticIpAssociateRequest"


class DissociateInput(serializers.Serializer):
    # The association knows its static IP and instance already: region and zone are not checked.
    region = TextField(max_length=64, help_text="The static IP's region, as OctoPerf sends it; not checked.")
    zone = zone_field()
    instanceId = instance_id_field()
    id = ip_id_field()
    # The contract sends it; we accept its absence and find the live association of the pair.
    associationId = TextField(
        max_length=64,
        required=False,
        allow_blank=True,
        allow_null=True,
        default="",
        help_text="The association, as associate answered it (`assoc-…`). When absent or blank, the live "
        "association of the static IP and the instance is ended.",
    )

    class Meta:
        ref_name = "StaticIpDissociateRequest"


class ReleaseInput(serializers.Serializer):
    id = ip_id_field()
    region = TextField(max_length=64, required=False, allow_blank=True, default="", help_text="Accepted and ignored.")
    zone = TextField(max_length=64, required=False, allow_blank=True, default="", help_text="Accepted and ignored.")
