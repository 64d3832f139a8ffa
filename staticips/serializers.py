from rest_framework import serializers


class AllocateInput(serializers.Serializer):
    region = serializers.CharField()
    zone = serializers.CharField(required=False, allow_blank=True, default="")


class AssociateInput(AllocateInput):
    instanceId = serializers.CharField()
    id = serializers.CharField()


class DissociateInput(AssociateInput):
    # The contract sends it; we accept its absence and find the live association of the pair.
    associationId = serializers.CharField(required=False, allow_blank=True, default="")


class ReleaseInput(serializers.Serializer):
    id = serializers.CharField()
    region = serializers.CharField(required=False, allow_blank=True, default="")
    zone = serializers.CharField(required=False, allow_blank=True, default="")
