from rest_framework import serializers


class AllocateInput(serializers.Serializer):
    region = serializers.CharField(max_length=64)
    zone = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")


class AssociateInput(AllocateInput):
    instanceId = serializers.CharField(max_length=64)
    id = serializers.CharField(max_length=64)


class DissociateInput(AssociateInput):
    # The contract sends it; we accept its absence and find the live association of the pair.
    associationId = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")


class ReleaseInput(serializers.Serializer):
    id = serializers.CharField(max_length=64)
    region = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    zone = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
